//! What actions do to the state: filters, sort, selection, replay control.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::{
    source::replay::Player,
    ui::{Action, TaskFilter, TaskSort},
};

fn selected_comm(app: &App) -> String {
    let key = app.task_table().selected_key().expect("a selected task");
    app.model().tasks.get(key).unwrap().task.comm.clone()
}

fn replay_app() -> App {
    let player = Player::new(blocked_transition(), 1.0);
    let header = Header {
        kernel: None,
        mode: "replay test.jsonl".into(),
        skipped_lines: 2,
    };
    let mut app = App::replay(header, player, Theme::colored());
    app.resize(200, 50);
    app
}

#[test]
fn filter_cycles_all_blocked_kthreads() {
    let mut app = scenario_app(80, 24);
    assert_eq!(app.task_table().rows.len(), 22);

    app.handle_key(KeyEvent::from(KeyCode::Char('f')));
    assert_eq!(app.task_table().filter, TaskFilter::Blocked);
    assert_eq!(app.task_table().rows.len(), 2);

    app.handle_key(KeyEvent::from(KeyCode::Char('f')));
    assert_eq!(app.task_table().filter, TaskFilter::Kthreads);
    assert_eq!(app.task_table().rows.len(), 1);

    app.handle_key(KeyEvent::from(KeyCode::Char('f')));
    assert_eq!(app.task_table().filter, TaskFilter::All);
}

#[test]
fn sort_cycles_and_orders_rows() {
    let mut app = scenario_app(80, 24);
    assert_eq!(selected_comm(&app), "kworker/0:1");

    let expected_first = [
        // bash first failed half a second after the start, before the kworker.
        (TaskSort::Waited, "bash"),
        (TaskSort::Pid, "kworker/0:1"),
        (TaskSort::Comm, "bash"),
        (TaskSort::Attempts, "kworker/0:1"),
    ];
    for (sort, comm) in expected_first {
        app.perform(Action::CycleSort);
        app.refresh();
        app.perform(Action::Top);
        assert_eq!(app.task_table().sort, sort);
        assert_eq!(selected_comm(&app), comm, "{sort:?}");
    }
}

#[test]
fn name_filter_case_insensitive() {
    let mut app = scenario_app(80, 24);
    app.perform(Action::EditNameFilter);
    for c in "BASH".chars() {
        app.handle_key(KeyEvent::from(KeyCode::Char(c)));
    }
    app.handle_key(KeyEvent::from(KeyCode::Enter));
    assert!(!app.task_table().editing);
    assert_eq!(app.task_table().rows.len(), 1);
    assert_eq!(selected_comm(&app), "bash");

    app.handle_key(KeyEvent::from(KeyCode::Esc));
    assert_eq!(app.task_table().rows.len(), 22);
}

#[test]
fn selection_follows_task_when_rows_move() {
    let mut app = scenario_app(80, 24);
    app.perform(Action::Down);
    assert_eq!(selected_comm(&app), "bash");

    // bash now fails more checks than the kworker and moves to the top.
    let bash = task(900, "bash", TaskKind::User);
    let event = Event::TaskBlocked {
        task: bash,
        reason: BlockReason::Running,
        function: None,
        attempts: 100,
        cpu: Some(1),
    };
    app.apply(&[Record::new(T1 + 60 * SECOND, event)]);
    app.refresh();
    assert_eq!(app.task_table().selected, 0);
    assert_eq!(selected_comm(&app), "bash");
}

#[test]
fn page_down_stays_in_rows() {
    let mut app = scenario_app(80, 24);
    app.perform(Action::PageDown);
    app.perform(Action::PageDown);
    app.perform(Action::PageDown);
    assert_eq!(app.task_table().selected, 21);
    app.perform(Action::Top);
    assert_eq!(app.task_table().selected, 0);
}

#[test]
fn selected_row_stays_on_screen() {
    let mut app = scenario_app(80, 24);
    app.perform(Action::Bottom);
    let screen = screen(&app, 80, 24);
    let last = selected_comm(&app);
    assert!(screen.contains(&last), "{last}:\n{screen}");
}

#[test]
fn replay_plays_on_tick() {
    let mut app = replay_app();
    app.tick(0, None);
    assert_eq!(app.model().probes.len(), 3);
    assert!(app.model().transition.is_none());

    app.tick(20 * SECOND, None);
    assert!(app.model().transition.is_some());
    assert_eq!(app.model().tasks.len(), 22);
}

#[test]
fn replay_pause_step_and_jump() {
    let mut app = replay_app();
    app.handle_key(KeyEvent::from(KeyCode::Char(' ')));
    app.tick(0, None);
    let played = app.model().recent.len();
    app.tick(100 * SECOND, None);
    assert_eq!(app.model().recent.len(), played, "paused replay moved on");
    assert!(screen(&app, 200, 50).contains("‖ PAUSED"));

    app.handle_key(KeyEvent::from(KeyCode::Char('n')));
    assert_eq!(app.model().recent.len(), played + 1);
    let transition = app
        .model()
        .transition
        .as_ref()
        .expect("stepped into a transition");
    assert_eq!(transition.patch, "livepatch_old");

    app.handle_key(KeyEvent::new(KeyCode::Char('N'), KeyModifiers::SHIFT));
    let transition = app
        .model()
        .transition
        .as_ref()
        .expect("jumped to a transition");
    assert_eq!(transition.patch, "livepatch_busymod");
    assert!(screen(&app, 200, 50).contains("jumped to the next transition"));
}

#[test]
fn replay_speed_doubles_and_halves() {
    let mut app = replay_app();
    app.handle_key(KeyEvent::from(KeyCode::Char('+')));
    app.handle_key(KeyEvent::from(KeyCode::Char('+')));
    assert!(screen(&app, 200, 50).contains("4×"));
    for _ in 0..4 {
        app.handle_key(KeyEvent::from(KeyCode::Char('-')));
    }
    assert!(screen(&app, 200, 50).contains("0.25×"));
}

#[test]
fn replay_header_shows_position() {
    let mut app = replay_app();
    app.tick(0, None);
    app.tick(2 * SECOND, None);
    let screen = screen(&app, 200, 50);
    let header = screen.lines().next().unwrap();
    assert!(header.contains("replay test.jsonl"), "{header}");
    assert!(header.contains("▶ 2.00 s / 44.00 s 1×"), "{header}");
}

#[test]
fn replay_header_counts_skipped_lines() {
    let app = replay_app();
    let screen = screen(&app, 200, 50);
    let counters = screen.lines().nth(1).unwrap();
    assert!(counters.contains("2 lines skipped"), "{counters}");
}

#[test]
fn replay_keys_in_live_mode_explain() {
    let mut app = scenario_app(80, 24);
    app.handle_key(KeyEvent::from(KeyCode::Char(' ')));
    let screen = screen(&app, 80, 24);
    assert!(screen.contains("act on replays only"), "{screen}");
}

#[test]
fn notice_expires() {
    let mut app = scenario_app(80, 24);
    app.handle_key(KeyEvent::from(KeyCode::Char(' ')));
    app.tick(5 * SECOND, None);
    assert!(!screen(&app, 80, 24).contains("act on replays only"));
}

#[test]
fn live_clock_grows_waits() {
    let mut app = scenario_app(200, 50);
    let now = T1 + 100 * SECOND;
    app.tick(0, Some(now));
    let screen = screen(&app, 200, 50);
    // The kworker first failed at T1 + 1 s.
    assert!(screen.contains("waited      1m 39s"), "{screen}");
}

#[test]
fn sparkline_resamples_over_time() {
    let app = scenario_app(200, 50);
    let transition = app.model().transition.as_ref().unwrap();
    let columns = crate::ui::draw::transition::resample(transition, app.model().now_ns, 34);
    assert_eq!(columns.len(), 34);
    assert_eq!(columns.last().copied().flatten(), Some(2));
    assert!(columns.iter().all(|c| c.is_some()));
}

#[test]
fn idle_tasks_ordered_by_cpu() {
    let mut records = blocked_transition();
    for cpu in [1, 0] {
        let idle = task(0, &format!("swapper/{cpu}"), TaskKind::Idle);
        let event = Event::TaskSwitched {
            task: idle,
            to: PatchState::Patched,
            via: SwitchVia::IdleLoop,
        };
        records.push(Record::new(T1 + 50 * SECOND, event));
    }
    let mut app = live_app(&records, Theme::colored(), 80, 24);
    app.perform(Action::CycleSort);
    app.perform(Action::CycleSort);
    app.refresh();
    assert_eq!(app.task_table().sort, TaskSort::Pid);
    assert_eq!(selected_comm(&app), "kworker/0:1");

    app.perform(Action::Top);
    assert_eq!(selected_comm(&app), "swapper/0");
    app.perform(Action::Down);
    assert_eq!(selected_comm(&app), "swapper/1");
}

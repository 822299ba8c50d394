//! What each pane shows, at 80x24 and at 200x50.

use ratatui::style::Color;

use super::*;
use crate::ui::{Action, Pane};

fn focus(app: &mut App, pane: Pane) {
    while app.focus() != pane {
        app.perform(Action::FocusNext);
    }
}

#[test]
fn stuck_task_called_out() {
    for (width, height) in SIZES {
        let app = scenario_app(width, height);
        let screen = screen(&app, width, height);
        assert!(
            screen.contains("kworker/0:1"),
            "{width}x{height}:\n{screen}"
        );
        assert!(
            screen.contains("sleeping_in_function"),
            "{width}x{height}:\n{screen}"
        );
        assert!(
            screen.contains("busymod_work_func"),
            "{width}x{height}:\n{screen}"
        );
        assert!(screen.contains("STUCK"), "{width}x{height}:\n{screen}");
    }
}

#[test]
fn detail_shows_selected_task() {
    let app = scenario_app(200, 50);
    let screen = screen(&app, 200, 50);
    let attempts = format!("attempts    {STUCK_ATTEMPTS} ({STUCK_ATTEMPTS} in a row the same way)");
    assert!(screen.contains(&attempts), "{screen}");
    assert!(screen.contains("first tried +1.00 s"), "{screen}");
    assert!(
        screen.contains("last tried  +34.0 s") || screen.contains("last tried  +34.00 s"),
        "{screen}"
    );
    assert!(screen.contains("waited      33.00 s"), "{screen}");
    assert!(screen.contains("switched    not yet"), "{screen}");
}

#[test]
fn detail_marks_patched_function_in_stack() {
    let app = scenario_app(200, 50);
    let screen = screen(&app, 200, 50);
    assert!(screen.contains("kernel stack"), "{screen}");
    assert!(
        screen.contains("> busymod_work_func+0x2c [test_klp_callbacks_busy]"),
        "{screen}"
    );
    assert!(screen.contains("  msleep+0x29"), "{screen}");
}

#[test]
fn detail_shows_how_task_switched() {
    let mut app = scenario_app(200, 50);
    app.perform(Action::CycleSort);
    app.perform(Action::CycleSort);
    app.refresh();
    // Sorted by pid: 77 kworker, 900 bash, then worker-0 (pid 1000).
    app.perform(Action::Down);
    app.perform(Action::Down);
    let screen = screen(&app, 200, 50);
    assert!(screen.contains("worker-0  pid 1000"), "{screen}");
    assert!(
        screen.contains("+0 µs via stack_check → patched"),
        "{screen}"
    );
}

#[test]
fn gauge_counts_switched_of_seen() {
    for (width, height) in SIZES {
        let screen = screen(&scenario_app(width, height), width, height);
        assert!(
            screen.contains("switched 20 / 22 seen (91%)"),
            "{width}x{height}:\n{screen}"
        );
        assert!(screen.contains("blocked 2"), "{width}x{height}:\n{screen}");
        assert!(screen.contains("STUCK 1"), "{width}x{height}:\n{screen}");
    }
}

#[test]
fn transition_line_shows_passes() {
    let screen = screen(&scenario_app(200, 50), 200, 50);
    assert!(screen.contains("livepatch_busymod → patched"), "{screen}");
    assert!(screen.contains("elapsed 34.00 s"), "{screen}");
    assert!(screen.contains("passes 1 (last 41 µs, 2 left)"), "{screen}");
}

#[test]
fn header_counts_always_visible() {
    for (width, height) in SIZES {
        let screen = screen(&scenario_app(width, height), width, height);
        let header: Vec<&str> = screen.lines().take(2).collect();
        let header = header.join("\n");
        assert!(
            header.contains("events lost 7"),
            "{width}x{height}:\n{header}"
        );
        assert!(header.contains("probes 2/3"), "{width}x{height}:\n{header}");
        assert!(
            header.contains("findings 1 (1 error)"),
            "{width}x{height}:\n{header}"
        );
        assert!(
            header.contains("kernel 6.1.0-test-amd64"),
            "{width}x{height}:\n{header}"
        );
        assert!(header.contains("live"), "{width}x{height}:\n{header}");
    }
}

#[test]
fn events_lost_uses_alert_style() {
    let app = scenario_app(200, 50);
    let buffer = draw(&app, 200, 50);
    let screen = text(&buffer);
    let line = screen.lines().nth(1).unwrap();
    let column = line.chars().collect::<Vec<_>>();
    let label = line.find("events lost ").unwrap();
    let x = line[..label].chars().count() + "events lost ".len();
    assert_eq!(column[x], '7');
    assert_eq!(buffer[(x as u16, 1)].fg, Color::Red);
}

#[test]
fn findings_listed_with_missing_probes() {
    for (width, height) in SIZES {
        let mut app = scenario_app(width, height);
        focus(&mut app, Pane::Findings);
        let screen = screen(&app, width, height);
        assert!(
            screen.contains("cross-set-function"),
            "{width}x{height}:\n{screen}"
        );
        assert!(
            screen.contains("vmlinux:cmdline_proc_show,0"),
            "{width}x{height}:\n{screen}"
        );
        assert!(
            screen.contains("not attached: 1 probe"),
            "{width}x{height}:\n{screen}"
        );
        assert!(
            screen.contains("klp_try_complete_transition"),
            "{width}x{height}:\n{screen}"
        );
    }
}

#[test]
fn wide_layout_shows_every_pane() {
    let screen = screen(&scenario_app(200, 50), 200, 50);
    for title in [
        "Patches 2",
        "Transition",
        "Tasks 22 of 22",
        "Task",
        "Events",
        "History 1",
        "Findings 1",
    ] {
        assert!(screen.contains(title), "missing {title}:\n{screen}");
    }
}

#[test]
fn compact_layout_lists_panes_in_footer() {
    let screen = screen(&scenario_app(80, 24), 80, 24);
    let footer = screen.lines().last().unwrap();
    assert!(footer.contains("[Tasks]"), "{footer}");
    assert!(footer.contains("Findings 1"), "{footer}");
    assert!(!screen.contains("History 1"), "{screen}");
}

#[test]
fn patch_tree_shows_flags_and_functions() {
    for (width, height) in SIZES {
        let mut app = scenario_app(width, height);
        focus(&mut app, Pane::Patches);
        let screen = screen(&app, width, height);
        assert!(
            screen.contains("livepatch_busymod  cumulative  enabled  TRANSITION"),
            "{screen}"
        );
        assert!(
            screen.contains("livepatch_old  stacked  enabled"),
            "{screen}"
        );
        assert!(screen.contains("busymod  patched  1 function"), "{screen}");
        assert!(screen.contains("busymod_work_func,0"), "{screen}");
    }
}

#[test]
fn patch_tree_groups_replace_sets() {
    let mut patches = match inventory() {
        Event::Inventory { patches } => patches,
        _ => unreachable!(),
    };
    patches[0].replace_set = Some(0);
    patches[1].replace_set = Some(1);
    let records = [Record::new(T0, Event::Inventory { patches })];
    let mut app = live_app(&records, Theme::colored(), 200, 50);
    focus(&mut app, Pane::Patches);
    let screen = screen(&app, 200, 50);
    assert!(screen.contains("▾ replace set 0"), "{screen}");
    assert!(screen.contains("▾ replace set 1"), "{screen}");
    assert!(!screen.contains("cumulative"), "{screen}");
}

#[test]
fn enter_collapses_patch() {
    let mut app = scenario_app(200, 50);
    focus(&mut app, Pane::Patches);
    // Patches without load order come by name: livepatch_busymod first.
    app.perform(Action::Toggle);
    let screen = screen(&app, 200, 50);
    assert!(screen.contains("▸ livepatch_busymod"), "{screen}");
    assert!(!screen.contains("busymod_work_func,0"), "{screen}");

    app.perform(Action::Toggle);
    let screen = super::screen(&app, 200, 50);
    assert!(screen.contains("busymod_work_func,0"), "{screen}");
}

#[test]
fn overridden_function_names_running_patch() {
    let mut patches = match inventory() {
        Event::Inventory { patches } => patches,
        _ => unreachable!(),
    };
    patches[0].stack_order = Some(1);
    patches[1].stack_order = Some(2);
    let records = [Record::new(T0, Event::Inventory { patches })];
    let mut app = live_app(&records, Theme::colored(), 200, 50);
    focus(&mut app, Pane::Patches);
    let screen = screen(&app, 200, 50);
    assert!(
        screen.contains("cmdline_proc_show,0  runs livepatch_busymod's version"),
        "{screen}"
    );
}

#[test]
fn events_pane_one_line_per_event() {
    for (width, height) in SIZES {
        let mut app = scenario_app(width, height);
        focus(&mut app, Pane::Events);
        let screen = screen(&app, width, height);
        assert!(
            screen.contains("events lost: 7 dropped by the kernel"),
            "{screen}"
        );
        assert!(screen.contains(" 1044.000000 "), "{screen}");
    }
}

#[test]
fn events_pane_scrolls_back() {
    let mut app = scenario_app(200, 50);
    focus(&mut app, Pane::Events);
    app.perform(Action::Top);
    let screen = screen(&app, 200, 50);
    assert!(
        screen.contains("probe attached: klp_init_transition"),
        "{screen}"
    );
    assert!(screen.contains("scrolled back"), "{screen}");
    assert!(!screen.contains("events lost: 7"), "{screen}");
}

#[test]
fn history_shows_duration_and_blocker() {
    for (width, height) in SIZES {
        let mut app = scenario_app(width, height);
        focus(&mut app, Pane::History);
        let screen = screen(&app, width, height);
        assert!(
            screen.contains("livepatch_old → patched completed in 1.50 s"),
            "{screen}"
        );
        assert!(
            screen.contains("longest blocker: bash[900] running, 1 attempt"),
            "{screen}"
        );
    }
}

#[test]
fn idle_transition_shows_last() {
    let records = blocked_transition();
    let mut app = live_app(&records, Theme::colored(), 200, 50);
    app.apply(&[Record::new(
        T1 + 40 * SECOND,
        Event::TransitionCompleted {
            patch: "livepatch_busymod".into(),
            target: PatchState::Patched,
            duration_ms: 40_000.0,
            forced: true,
        },
    )]);
    app.refresh();
    let screen = screen(&app, 200, 50);
    assert!(
        screen.contains(
            "no transition in progress; last: livepatch_busymod → patched completed in 40.00 s"
        ),
        "{screen}"
    );
    assert!(screen.contains("FORCED"), "{screen}");
}

#[test]
fn empty_model_says_so() {
    for (width, height) in SIZES {
        let app = live_app(&[], Theme::colored(), width, height);
        let screen = screen(&app, width, height);
        assert!(screen.contains("no transition seen yet"), "{screen}");
        assert!(
            screen.contains("no task seen in a transition yet"),
            "{screen}"
        );
        assert!(screen.contains("events lost 0"), "{screen}");
    }
}

#[test]
fn closed_feed_shown_in_header() {
    let mut app = scenario_app(80, 24);
    app.feed_closed();
    let screen = screen(&app, 80, 24);
    assert!(
        screen.lines().next().unwrap().contains("LIVE FEED CLOSED"),
        "{screen}"
    );
    assert!(!app.should_quit());
}

#[test]
fn no_color_draws_without_colors() {
    for (width, height) in SIZES {
        let mut app = live_app(&blocked_transition(), Theme::plain(), width, height);
        for pane in Pane::ALL {
            focus(&mut app, pane);
            let buffer = draw(&app, width, height);
            for cell in buffer.content() {
                assert_eq!(cell.fg, Color::Reset, "{pane:?} {width}x{height}: {cell:?}");
                assert_eq!(cell.bg, Color::Reset, "{pane:?} {width}x{height}: {cell:?}");
            }
        }
    }
}

#[test]
fn no_color_marks_with_text() {
    let app = live_app(&blocked_transition(), Theme::plain(), 200, 50);
    let screen = screen(&app, 200, 50);
    assert!(screen.contains("▶ Tasks"), "{screen}");
    assert!(screen.contains("! "), "{screen}");
}

#[test]
fn colored_theme_uses_colors() {
    let buffer = draw(&scenario_app(200, 50), 200, 50);
    assert!(buffer.content().iter().any(|cell| cell.fg != Color::Reset));
}

#[test]
fn tiny_terminal_says_too_small() {
    let screen = screen(&scenario_app(30, 8), 30, 8);
    assert!(screen.contains("terminal too small"), "{screen}");
    assert!(screen.contains("events lost 7"), "{screen}");
}

#[test]
fn help_lists_every_binding() {
    for (width, height) in SIZES {
        let mut app = scenario_app(width, height);
        app.perform(Action::Help);
        let screen = screen(&app, width, height);
        let tables = [crate::ui::BINDINGS, crate::ui::keys::NAME_FILTER_BINDINGS];
        for binding in tables.iter().flat_map(|t| t.iter()) {
            assert!(
                screen.contains(binding.description),
                "{width}x{height} {binding:?}:\n{screen}"
            );
            assert!(
                screen.contains(&binding.keys_label()),
                "{width}x{height} {binding:?}:\n{screen}"
            );
        }
    }
}

#[test]
fn name_prompt_in_footer() {
    let mut app = scenario_app(80, 24);
    app.perform(Action::EditNameFilter);
    for c in "kwo".chars() {
        app.handle_key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Char(c),
        ));
    }
    let screen = screen(&app, 80, 24);
    assert!(
        screen.lines().last().unwrap().contains("/ name: kwo"),
        "{screen}"
    );
    assert!(screen.contains("Tasks 1 of 22"), "{screen}");
}

#[test]
fn patch_tree_shows_call_counts() {
    let mut records = blocked_transition();
    let patched = std::collections::BTreeMap::from([("livepatch_busymod".to_owned(), 30)]);
    records.push(Record::new(
        T1,
        Event::Calls {
            object: "busymod".into(),
            function: "busymod_work_func".into(),
            sympos: 0,
            entered: 42,
            original: 12,
            patched,
            interval_ms: 1000,
            blind_spot: Some("entry probe missing".into()),
        },
    ));
    let mut app = live_app(&records, Theme::colored(), 200, 50);
    focus(&mut app, Pane::Patches);
    let screen = screen(&app, 200, 50);
    let expected =
        "busymod_work_func,0  calls in 1.00 s (unreliable): original 12, livepatch_busymod";
    assert!(screen.contains(expected), "{screen}");
    let reason = "busymod:busymod_work_func,0: entry probe missing";
    assert!(screen.contains(reason), "{screen}");
}

#[test]
fn reversed_and_forced_marked() {
    let mut records = blocked_transition();
    let end = T1 + 40 * SECOND;
    records.push(Record::new(
        end,
        Event::TransitionReversed {
            patch: "livepatch_busymod".into(),
            target: PatchState::Unpatched,
        },
    ));
    records.push(Record::new(
        end + SECOND,
        Event::TransitionForced {
            patch: "livepatch_busymod".into(),
        },
    ));
    for (width, height) in SIZES {
        let app = live_app(&records, Theme::colored(), width, height);
        let screen = screen(&app, width, height);
        assert!(screen.contains("livepatch_busymod → unpatched"), "{screen}");
        assert!(screen.contains("REVERSED ×1"), "{screen}");
        assert!(screen.contains("FORCED"), "{screen}");
    }
}

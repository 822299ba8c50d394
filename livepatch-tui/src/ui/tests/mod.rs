//! Rendered-buffer and key tests of the dashboard, on models built from
//! records as the live source and the replay reader produce them.

mod actions;
mod keys;
mod views;

use ratatui::{Terminal, backend::TestBackend, buffer::Buffer};

use super::{App, Header, Theme};
use crate::{
    event::{
        BlockReason, Event, Finding, FunctionInfo, ObjectInfo, PatchInfo, PatchState, Record,
        Severity, SwitchVia, TaskKind, TaskRef,
    },
    model::STUCK_STREAK,
};

const SECOND: u64 = 1_000_000_000;

/// Start of the scenario, in CLOCK_MONOTONIC nanoseconds.
pub const T0: u64 = 1_000 * SECOND;

/// Start of the blocked transition.
pub const T1: u64 = T0 + 10 * SECOND;

/// Failed checks of the stuck kworker: enough for [`crate::model::Tasks::stuck`].
pub const STUCK_ATTEMPTS: u32 = STUCK_STREAK + 4;

/// Tasks that switch in the blocked transition.
pub const SWITCHED: u32 = 20;

pub fn task(pid: u32, comm: &str, task_kind: TaskKind) -> TaskRef {
    TaskRef {
        pid,
        tgid: pid,
        comm: comm.into(),
        task_kind,
    }
}

fn function(name: &str) -> FunctionInfo {
    FunctionInfo {
        name: name.into(),
        sympos: 0,
    }
}

fn object(name: &str, functions: &[&str]) -> ObjectInfo {
    ObjectInfo {
        name: name.into(),
        patched: Some(true),
        functions: functions.iter().map(|f| function(f)).collect(),
    }
}

/// Two patches on a kernel without replace sets: a stacked one, and a
/// cumulative one in transition.
pub fn inventory() -> Event {
    let old = PatchInfo {
        name: "livepatch_old".into(),
        enabled: true,
        cumulative: Some(false),
        objects: vec![object("vmlinux", &["cmdline_proc_show"])],
        ..PatchInfo::default()
    };
    let busymod = PatchInfo {
        name: "livepatch_busymod".into(),
        enabled: true,
        transition: true,
        cumulative: Some(true),
        objects: vec![
            object("vmlinux", &["cmdline_proc_show"]),
            object("busymod", &["busymod_work_func"]),
        ],
        ..PatchInfo::default()
    };
    Event::Inventory {
        patches: vec![old, busymod],
    }
}

fn probe(name: &str, attached: bool, feature: &str) -> Event {
    Event::ProbeStatus {
        probe: name.into(),
        attached,
        reason: (!attached).then(|| "symbol not found".into()),
        feature: feature.into(),
    }
}

fn blocked(
    task: TaskRef,
    reason: BlockReason,
    function: Option<&str>,
    attempts: u32,
    cpu: Option<u32>,
) -> Event {
    Event::TaskBlocked {
        task,
        reason,
        function: function.map(Into::into),
        attempts,
        cpu,
    }
}

/// Builds a finished transition of `livepatch_old` that bash held once.
fn earlier_transition() -> Vec<Record> {
    let bash = task(900, "bash", TaskKind::User);
    vec![
        Record::new(
            T0 + SECOND,
            Event::TransitionStarted {
                patch: "livepatch_old".into(),
                target: PatchState::Patched,
            },
        ),
        Record::new(
            T0 + SECOND + 1_000,
            blocked(bash.clone(), BlockReason::Running, None, 1, Some(3)),
        ),
        Record::new(
            T0 + 2 * SECOND,
            Event::TaskSwitched {
                task: bash,
                to: PatchState::Patched,
                via: SwitchVia::KernelExit,
            },
        ),
        Record::new(
            T0 + 2 * SECOND + 500_000_000,
            Event::TransitionCompleted {
                patch: "livepatch_old".into(),
                target: PatchState::Patched,
                duration_ms: 1500.0,
                forced: false,
            },
        ),
    ]
}

/// Builds a transition of `livepatch_busymod` that 20 tasks passed, bash
/// blocks running on a CPU, and a kworker sleeping in `busymod_work_func`
/// holds long enough to be stuck. The run also has one validator error, one
/// missing probe and seven lost events.
pub fn blocked_transition() -> Vec<Record> {
    let mut records = vec![
        Record::new(T0, probe("klp_init_transition", true, "transitions")),
        Record::new(
            T0,
            probe("klp_check_and_switch_task", true, "per-task reasons"),
        ),
        Record::new(
            T0,
            probe("klp_try_complete_transition", false, "transition passes"),
        ),
        Record::new(T0, inventory()),
    ];
    records.extend(earlier_transition());
    records.push(Record::new(
        T0 + 5 * SECOND,
        Event::Finding(Finding {
            rule: "cross-set-function".into(),
            severity: Severity::Error,
            message: "cmdline_proc_show is patched by two replace sets".into(),
            function: Some("vmlinux:cmdline_proc_show,0".into()),
            state_id: None,
            patches: vec!["livepatch_old".into(), "livepatch_busymod".into()],
        }),
    ));

    records.push(Record::new(
        T1,
        Event::TransitionStarted {
            patch: "livepatch_busymod".into(),
            target: PatchState::Patched,
        },
    ));
    for n in 0..SWITCHED {
        let worker = task(1000 + n, &format!("worker-{n}"), TaskKind::User);
        records.push(Record::new(
            T1 + u64::from(n) * 1_000_000,
            Event::TaskSwitched {
                task: worker,
                to: PatchState::Patched,
                via: SwitchVia::StackCheck,
            },
        ));
    }
    let bash = task(900, "bash", TaskKind::User);
    records.push(Record::new(
        T1 + SECOND / 2,
        blocked(bash, BlockReason::Running, None, 1, Some(3)),
    ));
    let kworker = task(77, "kworker/0:1", TaskKind::Kthread);
    for attempt in 1..=STUCK_ATTEMPTS {
        let event = blocked(
            kworker.clone(),
            BlockReason::SleepingInFunction,
            Some("busymod_work_func"),
            attempt,
            None,
        );
        records.push(Record::new(T1 + u64::from(attempt) * SECOND, event));
    }
    let end = T1 + u64::from(STUCK_ATTEMPTS) * SECOND;
    let stack = Event::TaskStack {
        task: kworker.clone(),
        function: Some("busymod_work_func".into()),
        frames: vec![
            "__schedule+0x2d4".into(),
            "schedule_timeout+0x95".into(),
            "msleep+0x29".into(),
            "busymod_work_func+0x2c [test_klp_callbacks_busy]".into(),
            "process_one_work+0x1c4".into(),
        ],
    };
    records.push(Record::new(end, stack));
    records.push(Record::new(
        end,
        Event::TransitionPass {
            patch: "livepatch_busymod".into(),
            pass: STUCK_ATTEMPTS,
            duration_us: 41,
            tasks_left: 2,
        },
    ));
    records.push(Record::new(end, Event::EventsLost { count: 7 }));
    records
}

pub fn header() -> Header {
    Header {
        kernel: Some("6.1.0-test-amd64".into()),
        mode: "live".into(),
        skipped_lines: 0,
    }
}

/// Builds a live dashboard that has applied `records`, sized `width` x `height`.
pub fn live_app(records: &[Record], theme: Theme, width: u16, height: u16) -> App {
    let mut app = App::live(header(), theme);
    app.resize(width, height);
    app.apply(records);
    app.refresh();
    app
}

/// Builds the blocked-transition dashboard, colored.
pub fn scenario_app(width: u16, height: u16) -> App {
    live_app(&blocked_transition(), Theme::colored(), width, height)
}

pub fn draw(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| app.render(frame)).unwrap();
    terminal.backend().buffer().clone()
}

/// Returns the buffer's text, one line per row.
pub fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            out.push_str(buffer[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// Draws and returns the text, for tests that only read it.
pub fn screen(app: &App, width: u16, height: u16) -> String {
    text(&draw(app, width, height))
}

/// The sizes every view is checked at: a classic 80x24 terminal, where
/// panes collapse, and a large one that shows them all.
pub const SIZES: [(u16, u16); 2] = [(80, 24), (200, 50)];

use super::*;
use crate::event::{BlockReason, PatchState, SwitchVia, TaskKind, TaskRef};

fn task(pid: u32, comm: &str) -> TaskRef {
    TaskRef {
        pid,
        tgid: pid,
        comm: comm.into(),
        task_kind: TaskKind::User,
    }
}

fn apply(model: &mut Model, ts_ns: u64, event: Event) {
    model.apply(&Record::new(ts_ns, event));
}

fn started(model: &mut Model, ts_ns: u64) {
    apply(
        model,
        ts_ns,
        Event::TransitionStarted {
            patch: "lp".into(),
            target: PatchState::Patched,
        },
    );
}

fn blocked(model: &mut Model, ts_ns: u64, pid: u32, attempts: u32) {
    apply(
        model,
        ts_ns,
        Event::TaskBlocked {
            task: task(pid, "busy"),
            reason: BlockReason::SleepingInFunction,
            function: Some("busy_func".into()),
            attempts,
            cpu: None,
        },
    );
}

fn switched(model: &mut Model, ts_ns: u64, pid: u32, via: SwitchVia) {
    apply(
        model,
        ts_ns,
        Event::TaskSwitched {
            task: task(pid, "t"),
            to: PatchState::Patched,
            via,
        },
    );
}

#[test]
fn blocked_task_counted_until_switch() {
    let mut model = Model::new();
    started(&mut model, 0);
    switched(&mut model, 1, 1, SwitchVia::StackCheck);
    blocked(&mut model, 2, 42, 1);
    blocked(&mut model, 1_000_000_002, 42, 2);

    assert_eq!(model.tasks.len(), 2);
    assert_eq!(model.tasks.pending_count(), 1);
    assert_eq!(model.tasks.blocked_count(), 1);
    let busy = model.tasks.get(42).unwrap();
    assert_eq!(busy.status, TaskStatus::Blocked);
    assert_eq!(busy.attempts, 2);
    assert_eq!(busy.function.as_deref(), Some("busy_func"));
    assert_eq!(busy.waited_ns(2_000_000_002), 2_000_000_000);

    switched(&mut model, 3_000_000_000, 42, SwitchVia::StackCheck);
    assert_eq!(model.tasks.pending_count(), 0);
    let busy = model.tasks.get(42).unwrap();
    assert_eq!(
        busy.reason,
        Some(BlockReason::SleepingInFunction),
        "last reason kept after the switch"
    );
    assert_eq!(busy.waited_ns(9_000_000_000), 2_999_999_998);
}

#[test]
fn completion_moves_transition_to_history() {
    let mut model = Model::new();
    started(&mut model, 0);
    blocked(&mut model, 2, 42, 5);
    apply(
        &mut model,
        10,
        Event::TransitionPass {
            patch: "lp".into(),
            pass: 1,
            duration_us: 3,
            tasks_left: 1,
        },
    );
    assert_eq!(model.transition.as_ref().unwrap().passes.len(), 1);
    apply(
        &mut model,
        5_000_000,
        Event::TransitionCompleted {
            patch: "lp".into(),
            target: PatchState::Patched,
            duration_ms: 5.0,
            forced: false,
        },
    );

    assert!(model.transition.is_none());
    let summary = model.history.back().unwrap();
    assert_eq!(summary.outcome, TransitionOutcome::Completed);
    assert_eq!(summary.duration_ms, 5.0);
    assert_eq!(summary.passes, 1);
    assert_eq!(summary.tasks_blocked, 1);
    let blocker = summary.longest_blocker.as_ref().unwrap();
    assert_eq!((blocker.pid, blocker.attempts), (42, 5));
}

#[test]
fn reversal_flips_task_states() {
    let mut model = Model::new();
    started(&mut model, 0);
    switched(&mut model, 1, 1, SwitchVia::StackCheck);
    blocked(&mut model, 2, 42, 1);
    apply(
        &mut model,
        3,
        Event::TransitionReversed {
            patch: "lp".into(),
            target: PatchState::Unpatched,
        },
    );

    let transition = model.transition.as_ref().unwrap();
    assert_eq!(transition.target, PatchState::Unpatched);
    assert_eq!(transition.reversals, vec![3]);
    assert_eq!(model.tasks.get(1).unwrap().status, TaskStatus::Pending);
    assert_eq!(model.tasks.get(42).unwrap().via, Some(SwitchVia::Reversal));
    assert_eq!(model.tasks.pending_count(), 1);
}

#[test]
fn forced_patch_stays_marked() {
    let mut model = Model::new();
    started(&mut model, 0);
    apply(
        &mut model,
        1,
        Event::TransitionForced { patch: "lp".into() },
    );
    apply(
        &mut model,
        2,
        Event::TransitionCompleted {
            patch: "lp".into(),
            target: PatchState::Patched,
            duration_ms: 0.0,
            forced: true,
        },
    );
    assert!(model.is_forced("lp"));
    assert!(model.history.back().unwrap().forced);
}

#[test]
fn stuck_task_called_out() {
    let mut model = Model::new();
    started(&mut model, 0);
    for attempt in 1..=STUCK_STREAK {
        blocked(&mut model, u64::from(attempt), 42, attempt);
    }
    let stuck: Vec<u32> = model.tasks.stuck().map(|t| t.task.pid).collect();
    assert_eq!(stuck, vec![42]);
}

#[test]
fn events_lost_summed_and_probes_counted() {
    let mut model = Model::new();
    apply(&mut model, 1, Event::EventsLost { count: 3 });
    apply(&mut model, 2, Event::EventsLost { count: 4 });
    for (probe, attached) in [("a", true), ("b", false)] {
        apply(
            &mut model,
            3,
            Event::ProbeStatus {
                probe: probe.into(),
                attached,
                reason: None,
                feature: String::new(),
            },
        );
    }
    assert_eq!(model.events_lost, 7);
    assert_eq!(model.probe_counts(), (1, 2));
}

#[test]
fn recent_events_bounded_and_skip_switches() {
    let mut model = Model::new();
    for i in 0..(RECENT_EVENTS as u64 + 10) {
        apply(&mut model, i, Event::EventsLost { count: 1 });
    }
    switched(&mut model, 99_999, 1, SwitchVia::KernelExit);
    assert_eq!(model.recent.len(), RECENT_EVENTS);
    assert!(model.recent.iter().all(|r| r.event.kind() == "events_lost"));
}

#[test]
fn inventory_replaces_patches_and_findings() {
    let mut model = Model::new();
    let patch = crate::event::PatchInfo {
        name: "a".into(),
        enabled: true,
        ..Default::default()
    };
    apply(
        &mut model,
        1,
        Event::Inventory {
            patches: vec![patch],
        },
    );
    apply(
        &mut model,
        1,
        Event::Finding(crate::event::Finding {
            rule: "r".into(),
            severity: crate::event::Severity::Warning,
            message: "m".into(),
            function: None,
            state_id: None,
            patches: vec![],
        }),
    );
    assert_eq!(model.findings.len(), 1);
    apply(&mut model, 2, Event::Inventory { patches: vec![] });
    assert!(model.patches.is_empty());
    assert!(model.findings.is_empty());
}

#[test]
fn calls_accumulate_per_function() {
    let mut model = Model::new();
    let patched = |n: u64| std::collections::BTreeMap::from([("lp".to_string(), n)]);
    for (original, on_patch) in [(5, 0), (2, 8)] {
        apply(
            &mut model,
            1,
            Event::Calls {
                object: "vmlinux".into(),
                function: "f".into(),
                sympos: 0,
                entered: original + on_patch,
                original,
                patched: patched(on_patch),
                interval_ms: 1000,
                blind_spot: None,
            },
        );
    }
    let stats = &model.calls["vmlinux:f,0"];
    assert_eq!(stats.original_total, 7);
    assert_eq!(stats.patched_total["lp"], 8);
    assert_eq!(stats.entered_total, 15);
    assert_eq!(stats.last_patched_share(), Some(0.8));
}

fn enabled_patch(name: &str, stack_order: Option<u32>) -> crate::event::PatchInfo {
    crate::event::PatchInfo {
        name: name.into(),
        enabled: true,
        stack_order,
        objects: vec![crate::event::ObjectInfo {
            name: "vmlinux".into(),
            patched: Some(true),
            functions: vec![crate::event::FunctionInfo {
                name: "f".into(),
                sympos: 1,
            }],
        }],
        ..Default::default()
    }
}

#[test]
fn owner_is_last_patch_seen_loading() {
    let mut model = Model::new();
    apply(
        &mut model,
        1,
        Event::Inventory {
            patches: vec![enabled_patch("old", None)],
        },
    );
    apply(
        &mut model,
        2,
        Event::TransitionStarted {
            patch: "new".into(),
            target: PatchState::Patched,
        },
    );
    apply(
        &mut model,
        3,
        Event::Inventory {
            patches: vec![enabled_patch("old", None), enabled_patch("new", None)],
        },
    );
    assert_eq!(model.function_owner("vmlinux", "f", 1), Some("new"));
    assert_eq!(model.function_owner("vmlinux", "g", 1), None);
}

#[test]
fn owner_unknown_for_patches_loaded_before_run() {
    let mut model = Model::new();
    let patches = vec![enabled_patch("a", None), enabled_patch("b", None)];
    apply(&mut model, 1, Event::Inventory { patches });
    assert_eq!(model.function_owner("vmlinux", "f", 1), None);
}

#[test]
fn owner_follows_stack_order() {
    let mut model = Model::new();
    let patches = vec![enabled_patch("a", Some(2)), enabled_patch("b", Some(1))];
    apply(&mut model, 1, Event::Inventory { patches });
    assert_eq!(model.function_owner("vmlinux", "f", 1), Some("a"));
}

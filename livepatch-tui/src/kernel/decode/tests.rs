use livepatch_common::{NAME_LEN, RawEvent, RawKind};

use super::*;

fn raw(kind: RawKind, ts_ns: u64) -> RawEvent {
    let mut event = RawEvent::zeroed();
    event.kind = kind as u32;
    event.ts_ns = ts_ns;
    event
}

fn named(kind: RawKind, ts_ns: u64, name: &str, value: i64) -> RawEvent {
    let mut event = raw(kind, ts_ns);
    event.name[..name.len()].copy_from_slice(name.as_bytes());
    event.value = value;
    event
}

fn task(kind: RawKind, ts_ns: u64, pid: u32, comm: &str, value: i64) -> RawEvent {
    let mut event = raw(kind, ts_ns);
    event.pid = pid;
    event.tgid = pid;
    event.comm[..comm.len()].copy_from_slice(comm.as_bytes());
    event.value = value;
    event
}

fn decode_all(decoder: &mut Decoder, raws: &[RawEvent]) -> Vec<Event> {
    raws.iter()
        .flat_map(|r| decoder.decode(r))
        .map(|r| r.event)
        .collect()
}

#[test]
fn blocked_task_then_completion() {
    let mut decoder = Decoder::new();
    let mut sleeping = task(RawKind::TaskChecked, 20, 42, "busy", -98);
    sleeping.name[..8].copy_from_slice(b"busyfunc");
    let events = decode_all(
        &mut decoder,
        &[
            named(RawKind::TransitionInit, 1_000_000, "lp", 1),
            raw(RawKind::PassBegin, 10),
            task(RawKind::TaskChecked, 11, 1, "init", 0),
            sleeping,
            raw(RawKind::PassEnd, 3_010),
            raw(RawKind::PassBegin, 4_000),
            task(RawKind::TaskChecked, 4_001, 42, "busy", 0),
            raw(RawKind::TransitionComplete, 5_000_000),
            raw(RawKind::PassEnd, 5_002_000),
        ],
    );
    assert_eq!(
        events[0],
        Event::TransitionStarted {
            patch: "lp".into(),
            target: PatchState::Patched
        }
    );
    assert!(matches!(
        &events[1],
        Event::TaskSwitched {
            via: SwitchVia::StackCheck,
            ..
        }
    ));
    let Event::TaskBlocked {
        task,
        reason,
        function,
        attempts,
        ..
    } = &events[2]
    else {
        panic!("expected task_blocked, got {:?}", events[2]);
    };
    assert_eq!(task.pid, 42);
    assert_eq!(*reason, BlockReason::SleepingInFunction);
    assert_eq!(function.as_deref(), Some("busyfunc"));
    assert_eq!(*attempts, 1);
    assert_eq!(
        events[3],
        Event::TransitionPass {
            patch: "lp".into(),
            pass: 1,
            duration_us: 3,
            tasks_left: 1
        }
    );
    assert!(matches!(&events[4], Event::TaskSwitched { .. }));
    assert!(matches!(
        &events[5],
        Event::TransitionPass {
            pass: 2,
            tasks_left: 0,
            ..
        }
    ));
    let Event::TransitionCompleted {
        duration_ms,
        forced,
        target,
        ..
    } = &events[6]
    else {
        panic!("expected transition_completed, got {:?}", events[6]);
    };
    assert_eq!(*duration_ms, 4.0);
    assert!(!forced);
    assert_eq!(*target, PatchState::Patched);
    assert_eq!(events.len(), 7);
}

#[test]
fn attempts_count_per_task() {
    let mut decoder = Decoder::new();
    decoder.decode(&named(RawKind::TransitionInit, 0, "lp", 1));
    for _ in 0..3 {
        decoder.decode(&task(RawKind::TaskChecked, 1, 7, "a", -16));
    }
    let events = decode_all(&mut decoder, &[task(RawKind::TaskChecked, 2, 7, "a", -22)]);
    let Event::TaskBlocked {
        attempts, reason, ..
    } = &events[0]
    else {
        panic!()
    };
    assert_eq!(*attempts, 4);
    assert_eq!(*reason, BlockReason::UnreliableStack);
}

#[test]
fn running_task_reports_cpu() {
    let mut decoder = Decoder::new();
    decoder.decode(&named(RawKind::TransitionInit, 0, "lp", 1));
    let mut running = task(RawKind::TaskChecked, 1, 9, "spin", -16);
    running.task_cpu = 1;
    let events = decode_all(&mut decoder, &[running]);
    let Event::TaskBlocked { cpu, function, .. } = &events[0] else {
        panic!()
    };
    assert_eq!(*cpu, Some(1));
    assert_eq!(*function, None);
}

#[test]
fn reverse_flips_target() {
    let mut decoder = Decoder::new();
    let events = decode_all(
        &mut decoder,
        &[
            named(RawKind::TransitionInit, 0, "lp", 1),
            raw(RawKind::TransitionReverse, 5),
            raw(RawKind::TransitionComplete, 1_000_005),
        ],
    );
    assert_eq!(
        events[1],
        Event::TransitionReversed {
            patch: "lp".into(),
            target: PatchState::Unpatched
        }
    );
    assert!(matches!(
        &events[2],
        Event::TransitionCompleted {
            target: PatchState::Unpatched,
            ..
        }
    ));
}

#[test]
fn force_switches_by_other_task() {
    let mut decoder = Decoder::new();
    let events = decode_all(
        &mut decoder,
        &[
            named(RawKind::TransitionInit, 0, "lp", 1),
            raw(RawKind::TransitionForce, 5),
            task(RawKind::TaskUpdate, 6, 42, "busy", 0),
            task(RawKind::TaskUpdate, 7, 0, "swapper/1", 1),
            task(RawKind::TaskUpdate, 8, 43, "sh", 1),
            raw(RawKind::TransitionComplete, 9),
        ],
    );
    assert_eq!(events[1], Event::TransitionForced { patch: "lp".into() });
    assert!(matches!(
        &events[2],
        Event::TaskSwitched {
            via: SwitchVia::Force,
            ..
        }
    ));
    assert!(matches!(
        &events[3],
        Event::TaskSwitched {
            via: SwitchVia::IdleLoop,
            ..
        }
    ));
    assert!(matches!(
        &events[4],
        Event::TaskSwitched {
            via: SwitchVia::KernelExit,
            ..
        }
    ));
    assert!(matches!(
        &events[5],
        Event::TransitionCompleted { forced: true, .. }
    ));
}

#[test]
fn cancel_ends_without_completion() {
    let mut decoder = Decoder::new();
    let events = decode_all(
        &mut decoder,
        &[
            named(RawKind::TransitionInit, 0, "lp", 1),
            raw(RawKind::TransitionCancel, 5),
            raw(RawKind::TransitionComplete, 6),
        ],
    );
    assert_eq!(events[1], Event::TransitionCancelled { patch: "lp".into() });
    assert_eq!(events.len(), 2);
}

#[test]
fn fork_inherits_parent_state() {
    let mut decoder = Decoder::new();
    decoder.decode(&named(RawKind::TransitionInit, 0, "lp", 1));
    let switched_child = decode_all(&mut decoder, &[task(RawKind::TaskFork, 1, 100, "child", 1)]);
    assert!(matches!(
        &switched_child[0],
        Event::TaskSwitched {
            via: SwitchVia::Fork,
            ..
        }
    ));
    let pending_child = decode_all(&mut decoder, &[task(RawKind::TaskFork, 2, 101, "child", 0)]);
    assert!(pending_child.is_empty());
}

#[test]
fn duplicate_switch_reported_once() {
    let mut decoder = Decoder::new();
    decoder.decode(&named(RawKind::TransitionInit, 0, "lp", 1));
    let events = decode_all(
        &mut decoder,
        &[
            task(RawKind::TaskUpdate, 1, 5, "a", 1),
            task(RawKind::TaskChecked, 2, 5, "a", 0),
        ],
    );
    assert_eq!(events.len(), 1);
}

#[test]
fn failed_load_reported_with_cumulative_flag() {
    let mut decoder = Decoder::new();
    let mut enable = named(RawKind::PatchEnable, 0, "lp", 1);
    enable.pid = 3;
    let mut result = raw(RawKind::PatchEnableResult, 1);
    result.pid = 3;
    result.value = -22;
    let events = decode_all(&mut decoder, &[enable, result]);
    assert_eq!(
        events,
        vec![Event::PatchLoadFailed {
            patch: "lp".into(),
            error: -22,
            conflicts: Vec::new(),
        }]
    );
    assert_eq!(decoder.cumulative("lp"), Some(true));
}

#[test]
fn short_and_unknown_records_counted() {
    let mut decoder = Decoder::new();
    assert!(decoder.decode_bytes(&[0u8; 8]).is_empty());
    let mut unknown = RawEvent::zeroed();
    unknown.kind = 999;
    assert!(decoder.decode(&unknown).is_empty());
    assert_eq!(decoder.unknown_records, 2);
}

#[test]
fn long_names_cut_at_nul() {
    let mut event = named(RawKind::ModuleComing, 0, "", 0);
    event.name = [b'x'; NAME_LEN];
    let events = Decoder::new().decode(&event);
    let Event::ModuleComing { module } = &events[0].event else {
        panic!()
    };
    assert_eq!(module.len(), NAME_LEN);
}

fn stack_bytes(pid: u32, ips: &[u64]) -> Vec<u8> {
    let mut raw = livepatch_common::RawStack {
        ts_ns: 9,
        kind: RawKind::TaskStack as u32,
        pid,
        frames: ips.len() as u32,
        reserved: 0,
        ips: [0; livepatch_common::STACK_FRAMES],
    };
    raw.ips[..ips.len()].copy_from_slice(ips);
    // SAFETY: RawStack is plain integers without padding.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&raw as *const livepatch_common::RawStack).cast::<u8>(),
            std::mem::size_of_val(&raw),
        )
    };
    bytes.to_vec()
}

#[test]
fn stack_follows_failed_check_once() {
    let mut decoder = Decoder::new();
    decoder.decode(&named(RawKind::TransitionInit, 0, "lp", 1));
    let mut sleeping = task(RawKind::TaskChecked, 1, 42, "busy", -98);
    sleeping.name[..8].copy_from_slice(b"busyfunc");

    decoder.decode(&sleeping);
    let first = decoder.decode_bytes(&stack_bytes(42, &[0x10, 0x20]));
    let Event::TaskStack {
        task,
        function,
        frames,
    } = &first[0].event
    else {
        panic!("expected task_stack, got {:?}", first);
    };
    assert_eq!(task.pid, 42);
    assert_eq!(function.as_deref(), Some("busyfunc"));
    assert_eq!(frames, &vec!["0x10".to_string(), "0x20".to_string()]);

    decoder.decode(&sleeping);
    assert!(
        decoder
            .decode_bytes(&stack_bytes(42, &[0x10, 0x20]))
            .is_empty(),
        "same stack again"
    );
    decoder.decode(&sleeping);
    assert_eq!(
        decoder.decode_bytes(&stack_bytes(42, &[0x30])).len(),
        1,
        "changed stack"
    );
}

#[test]
fn replace_set_read_on_replace_set_kernel() {
    let mut decoder = Decoder::for_kernel(true);
    decoder.decode(&named(RawKind::PatchEnable, 0, "set2", 2));
    assert_eq!(decoder.replace_set("set2"), Some(2));
    assert_eq!(decoder.cumulative("set2"), Some(true));

    let mut old_kernel = Decoder::for_kernel(false);
    old_kernel.decode(&named(RawKind::PatchEnable, 0, "stacked", 0));
    assert_eq!(old_kernel.replace_set("stacked"), None);
    assert_eq!(old_kernel.cumulative("stacked"), Some(false));
}

#[test]
fn addresses_kept_out_of_stream() {
    let raw = livepatch_common::RawAddress {
        ts_ns: 5,
        kind: RawKind::FunctionAddress as u32,
        reserved: 0,
        old_func: 0xffff_ffff_8110_0000,
        new_func: 0xffff_ffff_c000_1000,
    };
    // SAFETY: RawAddress is repr(C) integers without padding.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&raw as *const livepatch_common::RawAddress).cast::<u8>(),
            std::mem::size_of_val(&raw),
        )
    };
    let mut decoder = Decoder::new();
    assert!(decoder.decode_bytes(bytes).is_empty());
    assert_eq!(
        decoder.take_addresses(),
        vec![(0xffff_ffff_8110_0000, 0xffff_ffff_c000_1000)]
    );
    assert!(decoder.take_addresses().is_empty());
    assert!(decoder.decode_bytes(&bytes[..16]).is_empty());
    assert_eq!(decoder.unknown_records, 1, "a cut record is counted");
}

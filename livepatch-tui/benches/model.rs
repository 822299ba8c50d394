//! Cost of the model per event, on the log of the lab's "scale" scenario: a
//! held transition over about 5,000 tasks, then the transition back to
//! unpatched.
//!
//! Run with `cargo bench -p livepatch-tui --bench model`. It reads the file in
//! `LIVEPATCH_BENCH_LOG` if set, else `target/lab-recordings/scale.jsonl`,
//! which `cargo xtask lab scale` writes. Without either it builds a synthetic
//! log of the same shape and prints that it does. It prints figures and
//! asserts nothing, because timings depend on the machine.

use std::{
    hint::black_box,
    path::PathBuf,
    time::{Duration, Instant},
};

use livepatch_tui::{
    event::{
        BlockReason, Event, FunctionInfo, ObjectInfo, PatchInfo, PatchState, Record, SwitchVia,
        TaskKind, TaskRef,
    },
    model::Model,
    source::replay,
};

/// Number of times the whole log is applied. The bench reports the median.
const ROUNDS: usize = 30;
/// Tasks in the synthetic log, as many as the scale scenario starts.
const SYNTHETIC_TASKS: u32 = 5_000;
/// Retry passes in the synthetic log while one kworker blocks the transition.
const SYNTHETIC_PASSES: u32 = 4;
const PATCH: &str = "test_klp_callbacks_demo";

fn recording_path() -> PathBuf {
    match std::env::var_os("LIVEPATCH_BENCH_LOG") {
        Some(path) => PathBuf::from(path),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/lab-recordings/scale.jsonl")
        }
    }
}

fn task(pid: u32, comm: &str, task_kind: TaskKind) -> TaskRef {
    TaskRef {
        pid,
        tgid: pid,
        comm: comm.into(),
        task_kind,
    }
}

fn inventory(enabled: bool, transition: bool) -> Event {
    let patch = PatchInfo {
        name: PATCH.into(),
        enabled,
        transition,
        cumulative: Some(false),
        objects: vec![ObjectInfo {
            name: "test_klp_callbacks_busy".into(),
            patched: Some(true),
            functions: vec![FunctionInfo {
                name: "busymod_work_func".into(),
                sympos: 0,
            }],
        }],
        ..PatchInfo::default()
    };
    Event::Inventory {
        patches: vec![patch],
    }
}

/// Appends one transition to `target` in the shape the lab records: every task
/// switches in the first pass but one kworker, which blocks `blocked_passes`
/// passes.
fn transition(records: &mut Vec<Record>, start_ns: u64, target: PatchState, blocked_passes: u32) {
    let second = 1_000_000_000;
    let kworker = task(17, "kworker/0:1", TaskKind::Kthread);
    records.push(Record::new(
        start_ns,
        Event::TransitionStarted {
            patch: PATCH.into(),
            target,
        },
    ));
    for n in 0..SYNTHETIC_TASKS {
        let switched = Event::TaskSwitched {
            task: task(1_000 + n, "sleep", TaskKind::User),
            to: target,
            via: SwitchVia::StackCheck,
        };
        records.push(Record::new(start_ns + u64::from(n) * 20_000, switched));
    }
    for pass in 1..=blocked_passes {
        let ts = start_ns + u64::from(pass - 1) * second;
        let blocked = Event::TaskBlocked {
            task: kworker.clone(),
            reason: BlockReason::SleepingInFunction,
            function: Some("busymod_work_func".into()),
            attempts: pass,
            cpu: None,
        };
        records.push(Record::new(ts + 100_000_000, blocked));
        let summary = Event::TransitionPass {
            patch: PATCH.into(),
            pass,
            duration_us: if pass == 1 { 140_000 } else { 800 },
            tasks_left: 1,
        };
        records.push(Record::new(ts + 150_000_000, summary));
    }
    let end_ns = start_ns + u64::from(blocked_passes) * second;
    let switched = Event::TaskSwitched {
        task: kworker,
        to: target,
        via: SwitchVia::StackCheck,
    };
    records.push(Record::new(end_ns, switched));
    records.push(Record::new(
        end_ns,
        Event::TransitionCompleted {
            patch: PATCH.into(),
            target,
            duration_ms: (end_ns - start_ns) as f64 / 1e6,
            forced: false,
        },
    ));
}

/// Builds a log of the scale scenario's shape: an inventory, a held patching
/// transition over [`SYNTHETIC_TASKS`] tasks, and the unpatching one.
fn synthetic_records() -> Vec<Record> {
    let second = 1_000_000_000;
    let mut records = vec![Record::new(30 * second, inventory(true, true))];
    transition(
        &mut records,
        30 * second,
        PatchState::Patched,
        SYNTHETIC_PASSES,
    );
    records.push(Record::new(35 * second, inventory(true, false)));
    transition(&mut records, 36 * second, PatchState::Unpatched, 0);
    records
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn main() {
    let path = recording_path();
    let (records, source) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let started = Instant::now();
            let recording = replay::parse_log(&text);
            let parsed = started.elapsed();
            let lines = recording.records.len() + recording.skipped.len();
            println!(
                "parse: {lines} lines in {:.1} ms ({:.0} ns per line), {} skipped",
                parsed.as_secs_f64() * 1e3,
                parsed.as_nanos() as f64 / lines as f64,
                recording.skipped.len()
            );
            (recording.records, format!("recording {}", path.display()))
        }
        Err(error) => {
            println!(
                "no recording at {} ({error}): using a synthetic log of the same shape; \
                 `cargo xtask lab scale` records one",
                path.display()
            );
            (synthetic_records(), "synthetic log".to_owned())
        }
    };
    let tasks = records
        .iter()
        .filter(|record| matches!(record.event, Event::TaskSwitched { .. }))
        .count();
    println!(
        "{source}: {} events, {tasks} of them task_switched",
        records.len()
    );

    let mut samples: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            let mut model = Model::new();
            for record in &records {
                model.apply(record);
            }
            let elapsed = started.elapsed();
            black_box(model);
            elapsed
        })
        .collect();
    let median = median(&mut samples);
    println!(
        "apply: median {:.2} ms for the whole log over {ROUNDS} rounds, \
         {:.0} ns per event (max {:.2} ms)",
        median.as_secs_f64() * 1e3,
        median.as_nanos() as f64 / records.len() as f64,
        samples.last().unwrap().as_secs_f64() * 1e3
    );
}

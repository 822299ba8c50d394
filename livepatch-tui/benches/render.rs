//! Frame time and memory of the dashboard during a transition over 10,000
//! tasks, a few hundred of them blocked.
//!
//! Run with `cargo bench -p livepatch-tui --bench render`. Prints figures and
//! the target (one frame in under 16 ms at 200x50). It asserts nothing,
//! because timings depend on the machine.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use livepatch_tui::{
    event::{
        BlockReason, Event, FunctionInfo, ObjectInfo, PatchInfo, PatchState, Record, SwitchVia,
        TaskKind, TaskRef,
    },
    model::Model,
    ui::{App, Header, Theme},
};
use ratatui::{Terminal, backend::TestBackend};

const TASKS: u32 = 10_000;
const BLOCKED: u32 = 300;
/// Blocked tasks that fail often enough to be called out as stuck.
const STUCK: u32 = 12;
const PASSES: u32 = 40;
const FRAMES: usize = 200;
const TARGET: Duration = Duration::from_millis(16);

/// Counts the bytes allocated and not yet freed.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged, and the
// counter only observes sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn task(n: u32) -> TaskRef {
    let (comm, task_kind) = match n % 4 {
        0 => (format!("kworker/{}:{}", n % 64, n % 7), TaskKind::Kthread),
        _ => (format!("worker-{n}"), TaskKind::User),
    };
    TaskRef {
        pid: 100 + n,
        tgid: 100 + n - n % 8,
        comm,
        task_kind,
    }
}

fn inventory() -> Event {
    let functions = (0..40)
        .map(|i| FunctionInfo {
            name: format!("patched_function_{i}"),
            sympos: 0,
        })
        .collect();
    let patch = PatchInfo {
        name: "livepatch_bench".into(),
        enabled: true,
        transition: true,
        cumulative: Some(true),
        objects: vec![ObjectInfo {
            name: "vmlinux".into(),
            patched: Some(true),
            functions,
        }],
        ..PatchInfo::default()
    };
    Event::Inventory {
        patches: vec![patch],
    }
}

/// Builds a failed check of task `n`. `variant` picks the reason and function.
fn blocked(n: u32, variant: u32, attempts: u32) -> Event {
    let (reason, function, cpu) = match variant % 3 {
        0 => (
            BlockReason::SleepingInFunction,
            Some(format!("patched_function_{}", variant % 40)),
            None,
        ),
        1 => (BlockReason::Running, None, Some(variant % 64)),
        _ => (BlockReason::UnreliableStack, None, None),
    };
    Event::TaskBlocked {
        task: task(n),
        reason,
        function,
        attempts,
        cpu,
    }
}

/// Builds a transition in progress: every task seen, the first [`BLOCKED`] still
/// blocked after [`PASSES`] passes, and the first [`STUCK`] of those failing
/// the same way every pass.
fn records() -> Vec<Record> {
    let second = 1_000_000_000;
    let start = 5_000 * second;
    let mut records = vec![
        Record::new(start, inventory()),
        Record::new(
            start,
            Event::TransitionStarted {
                patch: "livepatch_bench".into(),
                target: PatchState::Patched,
            },
        ),
    ];
    for n in BLOCKED..TASKS {
        records.push(Record::new(
            start + u64::from(n) * 1_000,
            Event::TaskSwitched {
                task: task(n),
                to: PatchState::Patched,
                via: SwitchVia::StackCheck,
            },
        ));
    }
    for pass in 1..=PASSES {
        let ts = start + u64::from(pass) * second;
        for n in 0..BLOCKED {
            // The stuck tasks fail the same way every pass, and the others
            // change reason, so their streak starts over.
            let variant = if n < STUCK { n } else { n + pass };
            let event = blocked(n, variant, pass);
            records.push(Record::new(ts, event));
        }
        records.push(Record::new(
            ts,
            Event::TransitionPass {
                patch: "livepatch_bench".into(),
                pass,
                duration_us: 900,
                tasks_left: BLOCKED,
            },
        ));
    }
    records
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn percentile(samples: &[Duration], percent: usize) -> Duration {
    samples[(samples.len() * percent / 100).min(samples.len() - 1)]
}

/// Times `frame` over [`FRAMES`] runs after a warm-up, and prints the
/// median, the 95th percentile and the maximum.
fn time_frames(label: &str, mut frame: impl FnMut()) {
    for _ in 0..10 {
        frame();
    }
    let mut samples: Vec<Duration> = (0..FRAMES)
        .map(|_| {
            let started = Instant::now();
            frame();
            started.elapsed()
        })
        .collect();
    let median = median(&mut samples);
    println!(
        "{label:<44} median {:>8.3} ms  p95 {:>8.3} ms  max {:>8.3} ms  (target < {} ms: {})",
        median.as_secs_f64() * 1e3,
        percentile(&samples, 95).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        TARGET.as_millis(),
        if median < TARGET { "met" } else { "MISSED" },
    );
}

/// Applies the records to a bare model and prints the time it took and the
/// heap the model keeps.
fn measure_model(records: &[Record]) {
    let before = live_bytes();
    let started = Instant::now();
    let mut model = Model::new();
    for record in records {
        model.apply(record);
    }
    let applied = started.elapsed();
    let model_bytes = live_bytes() - before;
    println!(
        "apply: {:.1} ms for {} records ({:.2} M records/s)",
        applied.as_secs_f64() * 1e3,
        records.len(),
        records.len() as f64 / applied.as_secs_f64() / 1e6
    );
    println!(
        "model heap: {:.2} MiB ({} bytes per task), counted by the global allocator",
        model_bytes as f64 / (1 << 20) as f64,
        model_bytes / TASKS as usize
    );
    drop(black_box(model));
}

fn main() {
    let records = records();
    println!(
        "{} records: {TASKS} tasks, {BLOCKED} blocked over {PASSES} passes, {STUCK} stuck",
        records.len()
    );

    measure_model(&records);

    let header = Header {
        kernel: Some("bench".into()),
        mode: "live".into(),
        skipped_lines: 0,
    };
    let before = live_bytes();
    let mut app = App::live(header, Theme::colored());
    app.apply(&records);
    app.refresh();
    println!(
        "dashboard heap (model and task rows): {:.2} MiB",
        (live_bytes() - before) as f64 / (1 << 20) as f64
    );

    for (width, height) in [(200, 50), (80, 24)] {
        app.resize(width, height);
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        time_frames(&format!("draw one frame at {width}x{height}"), || {
            terminal.draw(|frame| app.render(frame)).unwrap();
        });
    }

    // A tick during a live transition: new records, so the rows are sorted
    // again, then one frame.
    app.resize(200, 50);
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).unwrap();
    let lost = Record::new(9_999 * 1_000_000_000, Event::EventsLost { count: 1 });
    time_frames("re-sort 10,000 rows and draw at 200x50", || {
        app.apply(std::slice::from_ref(&lost));
        app.refresh();
        terminal.draw(|frame| app.render(frame)).unwrap();
    });
}

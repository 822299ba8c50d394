//! The polling baseline the scale benchmark compares the tool with: what a
//! script without probes must do to see the same per-task progress, reading
//! every `/proc/<pid>/task/<tid>/patch_state` at an interval.

use std::{collections::HashMap, process::ExitCode, time::Duration};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

/// Reads every task's `patch_state` once: tid to state (-1 no transition,
/// 0 unpatched, 1 patched). Tasks that exit meanwhile are left out.
pub fn poll_once() -> anyhow::Result<HashMap<u32, i32>> {
    let mut states = HashMap::new();
    for process in std::fs::read_dir("/proc").context("failed to read /proc")? {
        let Ok(process) = process else { continue };
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(task.path().join("patch_state")) else {
                continue;
            };
            if let Ok(state) = text.trim().parse() {
                states.insert(tid, state);
            }
        }
    }
    Ok(states)
}

/// Polls until SIGINT or SIGTERM, then prints how many polls it made and
/// the largest number of unswitched tasks it saw.
pub async fn run(interval: Duration) -> anyhow::Result<ExitCode> {
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    let mut ticker = tokio::time::interval(interval);
    let (mut polls, mut tasks_seen, mut max_in_transition) = (0u64, 0usize, 0usize);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let states = poll_once()?;
                polls += 1;
                tasks_seen = tasks_seen.max(states.len());
                max_in_transition = max_in_transition.max(states.values().filter(|&&s| s >= 0).count());
            }
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    println!("polls={polls} tasks_seen={tasks_seen} max_tasks_in_transition={max_in_transition}");
    Ok(ExitCode::SUCCESS)
}

//! Checks of the "scale" scenario: a held transition over 5,000 extra processes,
//! observed by the tool and then by the /proc polling baseline. The figures are
//! printed, not checked: only that the tool saw every task is a check here, and
//! that it lost no events is one of the checks every scenario gets.

use std::collections::HashSet;

use serde_json::Value;

use super::timeline::{self, number};
use super::{Checks, check_transition};
use crate::events::{self, EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

const PATCH: &str = "test_klp_callbacks_demo";
/// Processes the guest starts. The transition also checks the guest's own tasks.
const TASKS: u64 = 5_000;

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let total = output.note_f64("tasks_total").unwrap_or(0.0) as u64;
    checks.check(
        total >= TASKS,
        &format!("guest ran {TASKS} or more tasks"),
        format!(
            "{total} tasks in /proc, {} before the scenario; spawned in {} ms, {} kB each",
            output.note("tasks_before").unwrap_or("?"),
            output.note("spawn_ms").unwrap_or("?"),
            output.note("kb_per_task").unwrap_or("?")
        ),
    );
    if !with_tool {
        checks.info(format!(
            "transition without any observer: {} ms",
            output.note("kernel_only_transition_ms").unwrap_or("?")
        ));
        return;
    }

    let log = EventLog::parse(output.file("jsonl"));
    if let Some(completed) = check_transition(&log, checks, PATCH, "patched") {
        check_tasks_seen(&log, checks, completed);
    }
    print_figures(output, &log, checks);
}

/// Checks that the patching transition reported at least [`TASKS`] distinct tasks.
fn check_tasks_seen(log: &EventLog, checks: &mut Checks, completed: &Value) {
    let Some(started) = log.find(
        "transition_started",
        &[("patch", PATCH), ("target", "patched")],
    ) else {
        return;
    };
    let (from, to) = (ts_ns(started), ts_ns(completed));
    // Idle tasks all have pid 0, so the comm distinguishes them.
    let tasks: HashSet<(u64, &str)> = log
        .events
        .iter()
        .filter(|event| {
            matches!(
                events::text(event, "kind"),
                Some("task_switched" | "task_blocked")
            ) && timeline::between(event, from, to)
        })
        .filter_map(|event| Some((number(event, "pid")?, events::text(event, "comm")?)))
        .collect();
    checks.check(
        tasks.len() as u64 >= TASKS,
        &format!("the transition reported {TASKS} or more distinct tasks"),
        format!(
            "{} distinct tasks in task_switched and task_blocked",
            tasks.len()
        ),
    );
    let first_pass = timeline::of_patch(log, "transition_pass", PATCH)
        .find(|event| timeline::between(event, from, to));
    if let Some(pass) = first_pass {
        checks.info(format!(
            "first pass: {} us with {} task(s) left",
            pass["duration_us"], pass["tasks_left"]
        ));
    }
}

/// Prints the guest's measurements of the tool and the baseline side by side.
fn print_figures(output: &ScenarioOutput, log: &EventLog, checks: &Checks) {
    let note = |key: &str| output.note(key).unwrap_or("?").to_owned();
    let lost: u64 = log
        .of_kind("events_lost")
        .filter_map(|event| number(event, "count"))
        .sum();
    checks.info(format!(
        "tool: {} events logged, {lost} lost; transition {} ms",
        note("tool_events_logged"),
        note("tool_transition_ms")
    ));
    for (label, key, unit) in [
        ("CPU time in the window", "cpu_ms", "ms"),
        (
            "resident memory before the window (VmRSS)",
            "rss_before_kb",
            "kB",
        ),
        ("resident memory after the window (VmRSS)", "rss_kb", "kB"),
        ("peak resident memory (VmHWM)", "hwm_kb", "kB"),
    ] {
        checks.info(format!(
            "{label}: tool {} {unit}, baseline {} {unit}, ratio tool/baseline {}",
            note(&format!("tool_{key}")),
            note(&format!("baseline_{key}")),
            note(&format!("ratio_{key}"))
        ));
    }
    checks.info(format!(
        "window: tool {} ms, baseline {} ms",
        note("tool_window_ms"),
        note("baseline_window_ms")
    ));
    checks.info(format!("baseline: {}", note("baseline_summary")));
}

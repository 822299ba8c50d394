//! Checks of the "blocked" scenario: a kworker sleeping in the patched
//! busymod_work_func() holds the transition until the lab releases it.

use serde_json::Value;

use super::{Checks, check_dmesg_contains, check_no_unreliable_stack, check_transition, describe};
use crate::events::{self, EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

const PATCH: &str = "test_klp_callbacks_demo";
const FUNCTION: &str = "busymod_work_func";

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    checks.check(
        output.note("transition_during_hold") == Some("1"),
        "transition stayed in progress while the work function was held",
        format!(
            "transition_during_hold={}",
            output.note("transition_during_hold").unwrap_or("missing")
        ),
    );
    check_dmesg_contains(
        output,
        checks,
        "kernel logged the task sleeping in busymod_work_func",
        "is sleeping on function busymod_work_func",
    );
    check_dmesg_contains(
        output,
        checks,
        "kernel completed the patching transition after the release",
        "'test_klp_callbacks_demo': patching complete",
    );

    if !with_tool {
        return;
    }
    let log = EventLog::parse(output.file("jsonl"));
    // /proc/uptime in the guest and the events' CLOCK_MONOTONIC agree in a guest
    // that never suspends; the uptime has 10 ms resolution.
    let released_ns = output
        .note_f64("released_at_s")
        .map(|seconds| (seconds * 1e9) as u64);
    let Some(released_ns) = released_ns else {
        checks.check(
            false,
            "guest recorded the release time",
            "note released_at_s missing",
        );
        return;
    };

    let blocked = log.of_kind("task_blocked").find(|event| {
        events::text(event, "reason") == Some("sleeping_in_function")
            && events::text(event, "function") == Some(FUNCTION)
            && ts_ns(event) < released_ns
    });
    checks.check(
        blocked.is_some(),
        "tool reported a task sleeping in busymod_work_func before the release",
        blocked.map_or_else(|| summarize_blocked(&log), describe),
    );

    if let Some(pid) = blocked
        .and_then(|event| event.get("pid"))
        .and_then(Value::as_u64)
    {
        check_attempts(&log, checks, pid, released_ns);
    }

    if let Some(completed) = check_transition(&log, checks, PATCH, "patched") {
        checks.check(
            ts_ns(completed) >= released_ns,
            "transition completed only after the release",
            format!(
                "completed at {} ns, released at {released_ns} ns",
                ts_ns(completed)
            ),
        );
    }

    if let Some(pid) = blocked
        .and_then(|event| event.get("pid"))
        .and_then(Value::as_u64)
    {
        let switched = log.of_kind("task_switched").find(|event| {
            event.get("pid").and_then(Value::as_u64) == Some(pid)
                && events::text(event, "to") == Some("patched")
        });
        checks.check(
            switched.is_some(),
            "the blocked task switched to patched",
            switched.map_or(format!("no task_switched event for pid {pid}"), describe),
        );
    }

    check_transition(&log, checks, PATCH, "unpatched");
    check_no_unreliable_stack(&log, checks);
}

/// Checks that the tool reported the held task at each retry with a growing attempt
/// count. The guest holds the transition until it sees attempts >= 2.
fn check_attempts(log: &EventLog, checks: &mut Checks, pid: u64, released_ns: u64) {
    let attempts: Vec<u64> = log
        .of_kind("task_blocked")
        .filter(|event| event.get("pid").and_then(Value::as_u64) == Some(pid))
        .filter(|event| ts_ns(event) < released_ns)
        .filter_map(|event| event.get("attempts").and_then(Value::as_u64))
        .collect();
    let increasing = attempts.windows(2).all(|pair| pair[0] < pair[1]);
    checks.check(
        attempts.len() >= 2 && increasing,
        "tool counted the kernel's retries for the held task",
        format!("attempts {attempts:?} for pid {pid} before the release"),
    );
}

/// Describes the task_blocked events seen, for a failed check.
fn summarize_blocked(log: &EventLog) -> String {
    let blocked: Vec<String> = log.of_kind("task_blocked").take(3).map(describe).collect();
    if blocked.is_empty() {
        "no task_blocked events".to_owned()
    } else {
        format!("first task_blocked events: {}", blocked.join("; "))
    }
}

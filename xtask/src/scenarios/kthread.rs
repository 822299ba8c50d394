//! Checks of the "kthread" scenario: our own kernel thread sleeps inside the patched
//! lab_hold() over several retries of the transition, which only the kernel's retry
//! work can complete once the thread is released.

use serde_json::Value;

use super::timeline::{self, note_ns, number};
use super::{Checks, check_no_unreliable_stack, check_transition, describe};
use crate::events::{self, EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

const PATCH: &str = "lab_kthread_patch";
const THREAD: &str = "lab_kthread";
const FUNCTION: &str = "lab_hold";
/// Checks of the held thread the guest waits for before the release.
const HELD_CHECKS: u64 = 3;

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let held_checks = output.note_f64("held_checks").unwrap_or(0.0) as u64;
    checks.check(
        held_checks >= HELD_CHECKS && output.note("transition_during_hold") == Some("1"),
        &format!("kernel found lab_kthread in lab_hold at {HELD_CHECKS} or more checks"),
        format!(
            "{held_checks} \"is sleeping on function lab_hold\" line(s); transition_during_hold={}",
            output.note("transition_during_hold").unwrap_or("missing")
        ),
    );
    super::check_dmesg_contains(
        output,
        checks,
        "kernel completed the patching transition after the release",
        "'lab_kthread_patch': patching complete",
    );

    if !with_tool {
        return;
    }
    let log = EventLog::parse(output.file("jsonl"));
    let Some(released_at) = note_ns(output, checks, "released_at_s") else {
        return;
    };
    let thread_pid = output.note_f64("thread_pid").map(|pid| pid as u64);

    check_blocked_thread(&log, checks, thread_pid, released_at);
    check_passes(&log, checks, released_at);

    if let Some(completed) = check_transition(&log, checks, PATCH, "patched") {
        checks.check(
            ts_ns(completed) >= released_at,
            "transition completed only after the release",
            format!(
                "completed at {} ns, released at {released_at} ns",
                ts_ns(completed)
            ),
        );
    }
    if let Some(pid) = thread_pid {
        let switched = timeline::of_task(&log, "task_switched", pid)
            .find(|event| events::text(event, "to") == Some("patched"));
        checks.check(
            switched.is_some_and(|event| {
                ts_ns(event) >= released_at && events::text(event, "via") == Some("stack_check")
            }),
            "lab_kthread switched to patched by the stack check after the release",
            switched.map_or(format!("no task_switched event for pid {pid}"), describe),
        );
    }
    check_transition(&log, checks, PATCH, "unpatched");
    check_no_unreliable_stack(&log, checks);
}

/// Checks the tool's reports of the held thread: a kernel thread sleeping in
/// lab_hold, with one more attempt at each check.
fn check_blocked_thread(
    log: &EventLog,
    checks: &mut Checks,
    thread_pid: Option<u64>,
    released_at: u64,
) {
    let blocked: Vec<&Value> = log
        .of_kind("task_blocked")
        .filter(|event| events::text(event, "comm") == Some(THREAD) && ts_ns(event) < released_at)
        .collect();
    let as_expected = |event: &&Value| {
        events::text(event, "task_kind") == Some("kthread")
            && events::text(event, "reason") == Some("sleeping_in_function")
            && events::text(event, "function") == Some(FUNCTION)
            && (thread_pid.is_none() || number(event, "pid") == thread_pid)
    };
    let unexpected = blocked.iter().find(|event| !as_expected(event));
    checks.check(
        !blocked.is_empty() && unexpected.is_none(),
        "tool reported lab_kthread as a kthread sleeping_in_function lab_hold",
        match (blocked.first(), unexpected) {
            (None, _) => "no task_blocked event for lab_kthread before the release".to_owned(),
            (_, Some(event)) => format!("unexpected: {}", describe(event)),
            (Some(event), None) => {
                format!("{} event(s), first: {}", blocked.len(), describe(event))
            }
        },
    );

    let attempts: Vec<u64> = blocked
        .iter()
        .filter_map(|event| number(event, "attempts"))
        .collect();
    let increasing = attempts.windows(2).all(|pair| pair[0] < pair[1]);
    checks.check(
        increasing && attempts.last().is_some_and(|&last| last >= HELD_CHECKS),
        &format!("tool counted {HELD_CHECKS} or more checks of lab_kthread, one more each time"),
        format!("attempts {attempts:?} before the release"),
    );
}

/// Checks the retry passes: numbered from 1, several while the thread was held, and
/// the last one, which completed the transition, after the release.
fn check_passes(log: &EventLog, checks: &mut Checks, released_at: u64) {
    let Some(started) = log.find(
        "transition_started",
        &[("patch", PATCH), ("target", "patched")],
    ) else {
        return;
    };
    let completed = log.find(
        "transition_completed",
        &[("patch", PATCH), ("target", "patched")],
    );
    let end = completed.map_or(u64::MAX, ts_ns);
    let passes: Vec<&Value> = timeline::of_patch(log, "transition_pass", PATCH)
        .filter(|event| timeline::between(event, ts_ns(started), end))
        .collect();
    let numbers: Vec<u64> = passes
        .iter()
        .filter_map(|event| number(event, "pass"))
        .collect();
    let numbered = numbers
        .iter()
        .zip(1..)
        .all(|(&pass, expected)| pass == expected);
    let held = passes
        .iter()
        .filter(|event| ts_ns(event) < released_at)
        .count() as u64;
    let last_after_release = passes
        .last()
        .is_some_and(|event| ts_ns(event) >= released_at);
    checks.check(
        numbers.len() >= 2 && numbered && held >= HELD_CHECKS && last_after_release,
        "tool reported each retry pass, and the completing one came after the release",
        format!(
            "{} pass(es) numbered {numbers:?}, {held} before the release",
            numbers.len()
        ),
    );

    let summary: Vec<String> = passes
        .iter()
        .map(|event| format!("{}us/{} left", event["duration_us"], event["tasks_left"]))
        .collect();
    checks.info(format!("passes: {}", summary.join(", ")));
}

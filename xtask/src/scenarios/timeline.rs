//! Helpers for checks that place the tool's events against moments the guest
//! script noted, and that follow one task through a transition.

use serde_json::Value;

use super::Checks;
use crate::events::{self, EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

/// Converts the note `key`, seconds since boot from the guest's /proc/uptime, to
/// CLOCK_MONOTONIC nanoseconds, the clock of the events. The two agree in a guest
/// that never suspends; /proc/uptime has 10 ms resolution, so a note taken just
/// before an action is at most 10 ms early. Records a failed check when the note
/// is missing.
pub fn note_ns(output: &ScenarioOutput, checks: &mut Checks, key: &str) -> Option<u64> {
    let seconds = output.note_f64(key);
    if seconds.is_none() {
        checks.check(
            false,
            &format!("guest recorded {key}"),
            format!("note {key} missing"),
        );
    }
    seconds.map(|seconds| (seconds * 1e9) as u64)
}

/// Unsigned integer field of an event.
pub fn number(event: &Value, key: &str) -> Option<u64> {
    event.get(key).and_then(Value::as_u64)
}

/// Events of `kind` about the task with `pid`.
pub fn of_task<'a>(log: &'a EventLog, kind: &'a str, pid: u64) -> impl Iterator<Item = &'a Value> {
    log.of_kind(kind)
        .filter(move |event| number(event, "pid") == Some(pid))
}

/// Events of `kind` whose `patch` is `patch`, in log order.
pub fn of_patch<'a>(
    log: &'a EventLog,
    kind: &'a str,
    patch: &'a str,
) -> impl Iterator<Item = &'a Value> {
    log.of_kind(kind)
        .filter(move |event| events::text(event, "patch") == Some(patch))
}

/// Returns whether the event's timestamp lies in `[from, to]`.
pub fn between(event: &Value, from: u64, to: u64) -> bool {
    (from..=to).contains(&ts_ns(event))
}

/// Finds the first `task_blocked` event, before `before_ns`, for a task sleeping in
/// `function`.
pub fn first_sleeping_in<'a>(
    log: &'a EventLog,
    function: &str,
    before_ns: u64,
) -> Option<&'a Value> {
    log.of_kind("task_blocked").find(|event| {
        events::text(event, "reason") == Some("sleeping_in_function")
            && events::text(event, "function") == Some(function)
            && ts_ns(event) < before_ns
    })
}

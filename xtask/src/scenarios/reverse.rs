//! Checks of the "reverse" scenario: a held patching transition reversed by writing 0
//! to `enabled`. Linux 6.1 completes the reversed transition at the next retry,
//! while the task that held it is still inside busymod_work_func().

use serde_json::Value;

use super::timeline::{self, between, first_sleeping_in, note_ns, number};
use super::{Checks, check_dmesg_contains, check_no_unreliable_stack, describe};
use crate::events::{self, EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

const PATCH: &str = "test_klp_callbacks_demo";
const FUNCTION: &str = "busymod_work_func";

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    check_dmesg_contains(
        output,
        checks,
        "kernel reversed the patching transition",
        "'test_klp_callbacks_demo': reversing transition from patching to unpatching",
    );
    check_dmesg_contains(
        output,
        checks,
        "kernel completed the reversed transition as unpatching",
        "'test_klp_callbacks_demo': unpatching complete",
    );
    checks.check(
        output.note("freed_while_held") == Some("1"),
        "kernel freed the patch before the held task was released",
        format!(
            "freed_while_held={}, {} ms after the reversal",
            output.note("freed_while_held").unwrap_or("missing"),
            output.note("reversal_to_freed_ms").unwrap_or("?")
        ),
    );

    if !with_tool {
        return;
    }
    let log = EventLog::parse(output.file("jsonl"));
    let (Some(reversed_at), Some(released_at)) = (
        note_ns(output, checks, "reversed_at_s"),
        note_ns(output, checks, "released_at_s"),
    ) else {
        return;
    };

    let held = first_sleeping_in(&log, FUNCTION, reversed_at);
    checks.check(
        held.is_some(),
        "tool reported the kworker in busymod_work_func before the reversal",
        held.map_or("no such task_blocked event".to_owned(), describe),
    );

    let started = log.find(
        "transition_started",
        &[("patch", PATCH), ("target", "patched")],
    );
    let reversed = log.find("transition_reversed", &[("patch", PATCH)]);
    let reversal_ok = match (started, reversed) {
        (Some(started), Some(reversed)) => {
            events::text(reversed, "target") == Some("unpatched")
                && ts_ns(started) < ts_ns(reversed)
                && between(reversed, reversed_at, released_at)
        }
        _ => false,
    };
    checks.check(
        reversal_ok,
        "tool saw the transition reversed to unpatched after the write to enabled",
        reversed.map_or("no transition_reversed event".to_owned(), describe),
    );
    let Some(reversed) = reversed else {
        return;
    };

    check_completion(&log, checks, reversed, released_at);
    check_after_reversal(&log, checks, reversed, held);
    check_no_unreliable_stack(&log, checks);
}

/// Checks that the reversed transition ended as one transition to unpatched, before
/// the release.
fn check_completion(log: &EventLog, checks: &mut Checks, reversed: &Value, released_at: u64) {
    let completed = log.find("transition_completed", &[("patch", PATCH)]);
    let completed_ok = completed.is_some_and(|event| {
        events::text(event, "target") == Some("unpatched")
            && event.get("forced") == Some(&Value::Bool(false))
            && between(event, ts_ns(reversed), released_at)
    });
    checks.check(
        completed_ok,
        "tool saw the reversed transition complete to unpatched, unforced, before the release",
        completed.map_or("no transition_completed event".to_owned(), describe),
    );
    if let Some(completed) = completed {
        checks.info(format!(
            "reversal to completion: {:.0} ms; whole transition: {} ms",
            (ts_ns(completed) - ts_ns(reversed)) as f64 / 1e6,
            completed["duration_ms"]
        ));
    }

    let second_start = log.find(
        "transition_started",
        &[("patch", PATCH), ("target", "unpatched")],
    );
    checks.check(
        second_start.is_none(),
        "the reversal continued the same transition: no transition_started to unpatched",
        second_start.map_or("none".to_owned(), describe),
    );

    let passes_after = timeline::of_patch(log, "transition_pass", PATCH)
        .filter(|event| {
            completed.is_some_and(|completed| between(event, ts_ns(reversed), ts_ns(completed)))
        })
        .count();
    checks.check(
        passes_after >= 1,
        "a retry pass after the reversal completed the transition",
        format!("{passes_after} transition_pass event(s) between reversal and completion"),
    );
}

/// Checks what tasks did after the reversal. The held kworker never switched, so it
/// already had the new target and was not checked again. Tasks that had switched to
/// patched switched back.
fn check_after_reversal(
    log: &EventLog,
    checks: &mut Checks,
    reversed: &Value,
    held: Option<&Value>,
) {
    // The held task has not switched, so it is at the reversed target
    // already. Another task can still be caught running on a CPU for one
    // check, which the kernel reports as any other block.
    let held_pid = held.and_then(|event| number(event, "pid"));
    let blocked_after: Vec<&Value> = log
        .of_kind("task_blocked")
        .filter(|event| ts_ns(event) > ts_ns(reversed))
        .filter(|event| {
            events::text(event, "function") == Some(FUNCTION)
                || (held_pid.is_some() && number(event, "pid") == held_pid)
        })
        .collect();
    checks.check(
        blocked_after.is_empty(),
        "neither the held task nor any task in busymod_work_func blocked the reversed transition",
        blocked_after.first().map_or(
            "0 such task_blocked events after the reversal".to_owned(),
            |event| {
                format!(
                    "{} event(s), first: {}",
                    blocked_after.len(),
                    describe(event)
                )
            },
        ),
    );
    let others = log
        .of_kind("task_blocked")
        .filter(|event| ts_ns(event) > ts_ns(reversed))
        .count()
        - blocked_after.len();
    if others > 0 {
        checks.info(format!(
            "{others} other task_blocked event(s) after the reversal (tasks caught running)"
        ));
    }

    let switched_back: Vec<&Value> = log
        .of_kind("task_switched")
        .filter(|event| {
            ts_ns(event) > ts_ns(reversed) && events::text(event, "to") == Some("unpatched")
        })
        .collect();
    checks.check(
        !switched_back.is_empty(),
        "tasks that had switched to patched switched back to unpatched",
        format!(
            "{} task_switched events to unpatched after the reversal",
            switched_back.len()
        ),
    );

    if let Some(pid) = held.and_then(|event| number(event, "pid")) {
        let kworker_switched = switched_back
            .iter()
            .find(|event| number(event, "pid") == Some(pid));
        checks.info(format!(
            "held kworker pid {pid} after the reversal: {}",
            kworker_switched.map_or(
                "no task_switched event (it never left the unpatched state)".to_owned(),
                |event| describe(event)
            )
        ));
    }
}

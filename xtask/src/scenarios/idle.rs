//! Checks of the "idle" scenario: the idle tasks of both CPUs (swapper/0 and
//! swapper/1, pid 0, absent from /proc) switch in each transition of
//! livepatch-sample, as only the probes can show.

use serde_json::Value;

use super::{Checks, check_transition};
use crate::events::{self, EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

const PATCH: &str = "livepatch_sample";
const IDLE_TASKS: [&str; 2] = ["swapper/0", "swapper/1"];

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let cpus = output.note("cpus").unwrap_or("missing");
    checks.check(
        cpus == "2",
        "guest has two CPUs, so two idle tasks",
        format!("{cpus} CPU(s) in /proc/cpuinfo"),
    );
    if !with_tool {
        return;
    }
    let log = EventLog::parse(output.file("jsonl"));
    for target in ["patched", "unpatched"] {
        let Some(completed) = check_transition(&log, checks, PATCH, target) else {
            continue;
        };
        let Some(started) = log.find(
            "transition_started",
            &[("patch", PATCH), ("target", target)],
        ) else {
            continue;
        };
        let (from, to) = (ts_ns(started), ts_ns(completed));
        for comm in IDLE_TASKS {
            check_idle_task(&log, checks, comm, target, from, to);
        }
    }
}

/// Checks that the idle task `comm` switched to `target` between `from` and `to`, and
/// reports how it switched and whether it was seen running first.
fn check_idle_task(
    log: &EventLog,
    checks: &mut Checks,
    comm: &str,
    target: &str,
    from: u64,
    to: u64,
) {
    let is_this_task = |event: &&Value| {
        events::text(event, "comm") == Some(comm) && (from..=to).contains(&ts_ns(event))
    };
    let switched = log.of_kind("task_switched").find(is_this_task);
    let as_expected = switched.is_some_and(|event| {
        event.get("pid").and_then(Value::as_u64) == Some(0)
            && events::text(event, "task_kind") == Some("idle")
            && events::text(event, "to") == Some(target)
    });
    checks.check(
        as_expected,
        &format!("{comm} (idle, pid 0) switched to {target}"),
        switched.map_or(
            "no task_switched event in the transition".to_owned(),
            super::describe,
        ),
    );
    let blocked: Vec<String> = log
        .of_kind("task_blocked")
        .filter(is_this_task)
        .map(|event| {
            format!(
                "{} on cpu {}",
                events::text(event, "reason").unwrap_or("?"),
                event["cpu"]
            )
        })
        .collect();
    if !blocked.is_empty() {
        checks.info(format!(
            "{comm} before switching to {target}: {}",
            blocked.join(", ")
        ));
    }
}

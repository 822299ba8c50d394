//! Checks of the "fork" scenario: children forked during a held transition by a
//! shell that has switched start patched, as the kernel copies the parent's state.
//!
//! Children of a parent that has not switched are not arranged by the scenario
//! (see lab/guest/scenarios/fork.sh), so nothing here checks them.

use super::timeline::{self, note_ns, number};
use super::{Checks, describe};
use crate::events::{self, EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let parent_state = output.note("parent_state").unwrap_or("missing");
    checks.check(
        parent_state == "1",
        "the forking shell had switched to patched (kernel's patch_state)",
        format!("/proc/<shell>/patch_state read {parent_state}"),
    );
    let child_states = output.note("child_states").unwrap_or("");
    checks.check(
        !child_states.is_empty() && child_states.split_whitespace().all(|state| state == "1"),
        "children forked during the transition started patched (kernel's patch_state)",
        format!("patch_state of the children: {child_states:?}"),
    );
    checks.check(
        output.note("forked_during_transition") == Some("1"),
        "the children were forked while the transition was in progress",
        format!(
            "forked_during_transition={}",
            output.note("forked_during_transition").unwrap_or("missing")
        ),
    );
    let late_state = output.note("late_child_state").unwrap_or("missing");
    checks.check(
        late_state == "-1",
        "a child forked after the transition has no patch state",
        format!("patch_state of the late child: {late_state}"),
    );

    if !with_tool {
        return;
    }
    let log = EventLog::parse(output.file("jsonl"));
    let Some(released_at) = note_ns(output, checks, "released_at_s") else {
        return;
    };
    let children: Vec<u64> = output
        .note("child_pids")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect();

    let mut first_fork_ns = u64::MAX;
    for &pid in &children {
        let events: Vec<String> = timeline::of_task(&log, "task_switched", pid)
            .chain(timeline::of_task(&log, "task_blocked", pid))
            .map(describe)
            .collect();
        let fork = timeline::of_task(&log, "task_switched", pid).find(|event| {
            events::text(event, "via") == Some("fork")
                && events::text(event, "to") == Some("patched")
                && events::text(event, "task_kind") == Some("user")
                && ts_ns(event) < released_at
        });
        if let Some(fork) = fork {
            first_fork_ns = first_fork_ns.min(ts_ns(fork));
        }
        checks.check(
            fork.is_some() && events.len() == 1,
            &format!("child {pid} was reported switched to patched via fork, and nothing else"),
            if events.is_empty() {
                "no event for this pid".to_owned()
            } else {
                events.join("; ")
            },
        );
    }
    if children.is_empty() {
        checks.check(
            false,
            "guest recorded the children's pids",
            "note child_pids missing",
        );
    }

    if let Some(parent) = output.note_f64("parent_pid").map(|pid| pid as u64) {
        let switched = timeline::of_task(&log, "task_switched", parent).next();
        checks.check(
            switched.is_some_and(|event| ts_ns(event) <= first_fork_ns),
            &format!(
                "tool saw the parent shell (pid {parent}) switch before its children were forked"
            ),
            switched.map_or("no task_switched event for the parent".to_owned(), describe),
        );
    }

    if let Some(late) = output.note_f64("late_child_pid").map(|pid| pid as u64) {
        let late_events = log
            .events
            .iter()
            .filter(|event| number(event, "pid") == Some(late))
            .count();
        checks.check(
            late_events == 0,
            "tool reported nothing for the child forked after the transition",
            format!("{late_events} event(s) for pid {late}"),
        );
    }
}

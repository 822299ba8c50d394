//! Checks of the "force" scenario: a held patching transition and a held unpatching
//! transition, each ended by writing 1 to `force`.
//!
//! Linux 6.1's klp_force_transition() marks a patch forced only when the target is
//! unpatched (the patch being removed) or for the patches a cumulative patch
//! replaces. The module of a forced patch is never released. So the non-cumulative
//! test_klp_callbacks_demo stays unforced after its forced patching and its module
//! unloads, while lab_force_patch is forced by its forced unpatching and its module
//! stays loaded.

use serde_json::Value;

use super::timeline::{self, between, first_sleeping_in, note_ns, number};
use super::{Checks, check_dmesg_contains, check_transition, describe};
use crate::events::{self, EventLog, inventory_patch, ts_ns};
use crate::outputs::ScenarioOutput;

/// Patched under force in part 1; not cumulative.
const DEMO: &str = "test_klp_callbacks_demo";
/// Unpatched under force in part 2.
const FORCE_PATCH: &str = "lab_force_patch";

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    check_dmesg_contains(
        output,
        checks,
        "kernel logged the forced transitions",
        "forcing remaining tasks to the patched state",
    );
    check_module_removal(output, checks, "patching", DEMO, true);
    check_module_removal(output, checks, "unpatching", FORCE_PATCH, false);

    if !with_tool {
        return;
    }
    let log = EventLog::parse(output.file("jsonl"));

    if let Some(forced_at) = note_ns(output, checks, "patching_forced_at_s") {
        let held = first_sleeping_in(&log, "busymod_work_func", forced_at);
        checks.check(
            held.is_some(),
            "tool reported the kworker in busymod_work_func before the force",
            held.map_or("no such task_blocked event".to_owned(), describe),
        );
        check_forced_transition(&log, checks, DEMO, "patched", held, forced_at);
        check_inventory_forced(&log, checks, DEMO, false);
    }

    if let Some(forced_at) = note_ns(output, checks, "unpatching_forced_at_s") {
        check_transition(&log, checks, FORCE_PATCH, "patched");
        let held = log.of_kind("task_blocked").find(|event| {
            events::text(event, "comm") == Some("lab_kthread")
                && events::text(event, "task_kind") == Some("kthread")
                && events::text(event, "reason") == Some("sleeping_in_function")
                && events::text(event, "function") == Some("lab_hold")
                && ts_ns(event) < forced_at
        });
        checks.check(
            held.is_some(),
            "tool reported lab_kthread (kthread) in lab_hold, inside the replacement, before the force",
            held.map_or("no such task_blocked event".to_owned(), describe),
        );
        check_forced_transition(&log, checks, FORCE_PATCH, "unpatched", held, forced_at);
        check_inventory_forced(&log, checks, FORCE_PATCH, true);
    }
}

/// Checks the guest's note on whether `rmmod` removed the patch's module after the
/// forced transition of the given `direction`.
fn check_module_removal(
    output: &ScenarioOutput,
    checks: &mut Checks,
    direction: &str,
    module: &str,
    expect_removed: bool,
) {
    let key = format!("{direction}_module_removed");
    let removed = output.note(&key);
    let expected = if expect_removed { "1" } else { "0" };
    let description = if expect_removed {
        format!("kernel let {module} unload after its forced patching (not marked forced)")
    } else {
        format!("kernel kept {module} loaded after its forced unpatching (marked forced)")
    };
    checks.check(
        removed == Some(expected),
        &description,
        format!(
            "{key}={}, refcnt {}",
            removed.unwrap_or("missing"),
            output
                .note(&format!("{direction}_module_refcnt"))
                .unwrap_or("not read")
        ),
    );
}

/// Checks the forced transition of `patch` to `target`: the force event, the held
/// task switched by force, and the completion marked forced.
fn check_forced_transition(
    log: &EventLog,
    checks: &mut Checks,
    patch: &str,
    target: &str,
    held: Option<&Value>,
    forced_at: u64,
) {
    let started = log.find(
        "transition_started",
        &[("patch", patch), ("target", target)],
    );
    let forced = log.find("transition_forced", &[("patch", patch)]);
    let forced_ok = match (started, forced) {
        (Some(started), Some(forced)) => {
            ts_ns(started) < ts_ns(forced) && ts_ns(forced) >= forced_at
        }
        _ => false,
    };
    checks.check(
        forced_ok,
        &format!("tool saw the transition of {patch} to {target} forced"),
        forced.map_or("no transition_forced event".to_owned(), describe),
    );
    let Some(forced) = forced else {
        return;
    };

    let completed = log.find(
        "transition_completed",
        &[("patch", patch), ("target", target)],
    );
    checks.check(
        completed.is_some_and(|event| {
            event.get("forced") == Some(&Value::Bool(true)) && ts_ns(event) >= ts_ns(forced)
        }),
        &format!("tool saw the transition of {patch} to {target} complete with forced: true"),
        completed.map_or("no transition_completed event".to_owned(), describe),
    );

    let Some(pid) = held.and_then(|event| number(event, "pid")) else {
        return;
    };
    let end = completed.map_or(u64::MAX, ts_ns);
    let switched = timeline::of_task(log, "task_switched", pid)
        .find(|event| between(event, ts_ns(forced), end));
    checks.check(
        switched.is_some_and(|event| {
            events::text(event, "via") == Some("force") && events::text(event, "to") == Some(target)
        }),
        &format!("the held task (pid {pid}) switched to {target} via force"),
        switched.map_or(
            format!("no task_switched event for pid {pid} after the force"),
            describe,
        ),
    );
    let by_force = log
        .of_kind("task_switched")
        .filter(|event| {
            events::text(event, "via") == Some("force") && between(event, ts_ns(forced), end)
        })
        .count();
    checks.info(format!(
        "{by_force} task(s) switched via force in the transition of {patch}"
    ));
}

/// Checks the `forced` flag of `patch` in every inventory after its transition_forced
/// event against what the kernel did (`expected`).
fn check_inventory_forced(log: &EventLog, checks: &mut Checks, patch: &str, expected: bool) {
    let Some(forced) = log.find("transition_forced", &[("patch", patch)]) else {
        return;
    };
    let listed: Vec<bool> = log
        .of_kind("inventory")
        .filter(|inventory| ts_ns(inventory) >= ts_ns(forced))
        .filter_map(|inventory| inventory_patch(inventory, patch))
        .map(|entry| entry.get("forced") == Some(&Value::Bool(true)))
        .collect();
    let disagreeing = listed.iter().filter(|&&flag| flag != expected).count();
    checks.check(
        disagreeing == 0,
        &format!(
            "inventories after the force list {patch} with forced: {expected}, as the kernel has it"
        ),
        format!(
            "{} inventories list it after the force, {disagreeing} with forced: {}",
            listed.len(),
            !expected
        ),
    );
    if listed.is_empty() {
        checks.info(format!(
            "no inventory listed {patch} after the force: the kernel frees a patch when its \
             unpatching completes, and the tool reads sysfs every 500 ms"
        ));
    }
}

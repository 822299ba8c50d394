//! Checks of the "stacked" scenario: versions_a and versions_b, neither cumulative,
//! both patch versions_target_func(); the one loaded last runs.

use super::call_counts::{CallSum, sum_calls};
use super::verdicts::{CheckRun, finding_matches, note_ns, snapshots};
use super::{Checks, check_transition, describe};
use crate::events::{self, EventLog};
use crate::outputs::ScenarioOutput;

const FIRST: &str = "versions_a";
const SECOND: &str = "versions_b";
const FUNCTION: &str = "versions_target_func";
const RULE: &str = "stacked-function";
/// Version number that versions_b's versions_target_func() returns
/// (lab/modules/versions/versions.h).
const SECOND_VERSION: &str = "2";

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let calls = output.note("calls").unwrap_or("missing");
    let second_ran = output.note("calls_v2").unwrap_or("missing");
    checks.check(
        second_ran == calls && output.note("last_version") == Some(SECOND_VERSION),
        "the target's calls ran versions_b, the patch loaded last",
        format!(
            "{calls} calls; tally v0={} v1={} v2={second_ran}; last version {}",
            output.note("calls_v0").unwrap_or("?"),
            output.note("calls_v1").unwrap_or("?"),
            output.note("last_version").unwrap_or("?")
        ),
    );
    if !with_tool {
        return;
    }

    check_prediction(output, checks);
    check_one_shot(output, checks);

    let log = EventLog::parse(output.file("jsonl"));
    check_transition(&log, checks, FIRST, "patched");
    check_transition(&log, checks, SECOND, "patched");
    check_log_finding(&log, checks);
    check_calls(output, &log, checks);
}

/// `check --module versions_b.ko` with versions_a loaded.
fn check_prediction(output: &ScenarioOutput, checks: &mut Checks) {
    let run = CheckRun::read(output, "check_module");
    run.check_replaces(
        checks,
        &[],
        "check --module versions_b.ko: replaces nothing",
    );
    run.check_not_refused(
        checks,
        "check --module versions_b.ko: the kernel would not refuse it",
    );
    let predicted = run
        .findings()
        .into_iter()
        .find(|finding| finding_matches(finding, RULE, &[FIRST, SECOND], &[FUNCTION]));
    checks.check(
        predicted.is_some(),
        "check --module versions_b.ko: predicts stacked-function on versions_target_func naming both patches",
        run.evidence(),
    );
    run.check_exit(
        checks,
        1,
        "check --module versions_b.ko: exit code 1 (warnings)",
    );
}

/// `check` after versions_b loaded.
fn check_one_shot(output: &ScenarioOutput, checks: &mut Checks) {
    let run = CheckRun::read(output, "check_loaded");
    let found = run
        .findings()
        .into_iter()
        .any(|finding| finding_matches(finding, RULE, &[FIRST, SECOND], &[FUNCTION]));
    checks.check(
        found,
        "check: reports stacked-function on versions_target_func naming both patches",
        run.evidence(),
    );
    run.check_exit(checks, 1, "check: exit code 1 (warnings)");
}

/// Checks the log's findings after the inventory that lists both patches enabled.
fn check_log_finding(log: &EventLog, checks: &mut Checks) {
    let snapshots = snapshots(log);
    let both_enabled = snapshots.iter().find(|snapshot| {
        [FIRST, SECOND].iter().all(|name| {
            events::inventory_patch(snapshot.inventory, name)
                .and_then(|patch| patch.get("enabled"))
                .and_then(serde_json::Value::as_bool)
                == Some(true)
        })
    });
    let Some(snapshot) = both_enabled else {
        checks.check(
            false,
            "log: an inventory lists versions_a and versions_b enabled",
            format!("{} inventories, none with both enabled", snapshots.len()),
        );
        return;
    };
    let finding = snapshot
        .findings
        .iter()
        .find(|finding| finding_matches(finding, RULE, &[FIRST, SECOND], &[FUNCTION]));
    checks.check(
        finding.is_some(),
        "log: finding stacked-function on versions_target_func naming both patches follows that inventory",
        format!("findings after it: {:?}", snapshot.rules()),
    );
    if let Some(finding) = finding {
        let message = events::text(finding, "message").unwrap_or("?");
        checks.check(
            message.contains(&format!("{SECOND} runs, seen loading last")),
            "log: the finding names versions_b, which the tool saw load last, as the version that runs",
            message,
        );
        let order = events::inventory_patch(snapshot.inventory, SECOND)
            .and_then(|patch| patch.get("stack_order"))
            .cloned()
            .unwrap_or_default();
        checks.info(format!(
            "inventory stack_order of versions_b: {order} (sysfs has no stack_order before 6.14)"
        ));
    }
}

/// Checks the tool's counts for the two batches of calls made after both patches loaded:
/// `calls` right after the load, `settled` seconds later.
fn check_calls(output: &ScenarioOutput, log: &EventLog, checks: &mut Checks) {
    let calls: u64 = output
        .note("calls")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let expected = CallSum::expected(0, &[(SECOND, calls)]);
    let mut windows = Vec::new();
    for (batch, when) in [
        ("calls", "right after the load"),
        ("settled", "seconds after the load"),
    ] {
        let (Some(from), Some(to)) = (
            note_ns(output, &format!("{batch}_begin_s")),
            note_ns(output, &format!("{batch}_end_s")),
        ) else {
            checks.check(
                false,
                &format!("guest noted when it made the {batch} batch"),
                "begin or end note missing",
            );
            continue;
        };
        windows.push((from, to));
        let sum = sum_calls(log, FUNCTION, from, to);
        // Right after the load, calls can beat the tool's counter on the new
        // replacement: then they must all be counted as entered, and the
        // tool must report that it could not attribute them.
        let admitted = batch == "calls"
            && sum.entered == expected.entered
            && sum.blind_spots.iter().any(|spot| {
                spot.contains(&format!("while {SECOND}'s replacement had no counter yet"))
            });
        let description = if batch == "calls" {
            format!(
                "tool counted the calls made {when} under versions_b, the top patch, or said which it could not attribute"
            )
        } else {
            format!("tool counted the calls made {when} under versions_b, the top patch")
        };
        checks.check(
            sum.same_counts(&expected) || admitted,
            &description,
            format!("expected {expected}; counted {sum}"),
        );
        if admitted {
            checks.info(format!(
                "the calls made {when} beat the counter on versions_b's replacement: {sum}"
            ));
        }
    }
    checks.info(format!(
        "the tool's counter sat on versions_b_func {} ms after the load",
        output.note("counting_after_load_ms").unwrap_or("?"),
    ));

    let outside: Vec<String> = log
        .of_kind("calls")
        .filter(|event| {
            let ts = events::ts_ns(event);
            !windows.iter().any(|(from, to)| *from < ts && ts <= *to)
        })
        .map(describe)
        .collect();
    checks.check(
        outside.is_empty(),
        "tool reported no calls outside the batches the guest made",
        format!("{outside:?}"),
    );
}

//! Checks of the "atomic_replace" scenario: test_klp_atomic_replace.ko loaded next
//! to test_klp_livepatch.ko, first stacking (replace=0), then cumulative
//! (replace=1), which replaces test_klp_livepatch.

use serde_json::Value;

use super::verdicts::{self, CheckRun, finding_matches, note_ns, snapshots};
use super::{Checks, check_transition, describe};
use crate::events::{self, EventLog, inventory_patch, ts_ns};
use crate::outputs::ScenarioOutput;

const LIVEPATCH: &str = "test_klp_livepatch";
const REPLACE: &str = "test_klp_atomic_replace";

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    check_proc_files(output, checks);
    if !with_tool {
        return;
    }

    let stacking = CheckRun::read(output, "check_stacking");
    stacking.check_replaces(
        checks,
        &[],
        "check --module test_klp_atomic_replace.ko (to load with replace=0): replaces nothing",
    );
    stacking.check_not_refused(
        checks,
        "check --module test_klp_atomic_replace.ko: the kernel would not refuse it",
    );
    stacking.check_exit(
        checks,
        0,
        "check --module test_klp_atomic_replace.ko (replace=0): exit code 0, the two patches patch different functions",
    );

    // The module sets .replace from its parameter in its init function, so the
    // file itself has replace = 0: the verdict must report that the file cannot show it.
    let notes = stacking.names("notes").unwrap_or_default();
    checks.check(
        notes
            .iter()
            .any(|note| note.contains("takes parameters (replace)") && note.contains("--replace")),
        "check --module test_klp_atomic_replace.ko: notes that its parameter `replace` may change the patch",
        format!("notes {notes:?}"),
    );
    let cumulative = CheckRun::read(output, "check_cumulative");
    cumulative.check_replaces(
        checks,
        &[LIVEPATCH],
        "check --module test_klp_atomic_replace.ko --replace (to load with replace=1): replaces test_klp_livepatch",
    );

    let after = CheckRun::read(output, "check_after");
    after.check_exit(checks, 0, "check after the atomic replace: exit code 0");

    let log = EventLog::parse(output.file("jsonl"));
    check_transition(&log, checks, LIVEPATCH, "patched");
    check_stacking_inventory(output, &log, checks);
    check_replacement(output, &log, checks);
}

fn check_proc_files(output: &ScenarioOutput, checks: &mut Checks) {
    let note = |key: &str| output.note(key).unwrap_or("missing").to_owned();
    checks.check(
        note("stacking_cmdline_patched") == "1" && note("stacking_meminfo_patched") == "1",
        "replace=0: both patches run (/proc/cmdline and /proc/meminfo patched)",
        format!(
            "cmdline {}, meminfo {}",
            note("stacking_cmdline_patched"),
            note("stacking_meminfo_patched")
        ),
    );
    checks.check(
        note("cumulative_cmdline_patched") == "0" && note("cumulative_meminfo_patched") == "1",
        "replace=1: only test_klp_atomic_replace runs (/proc/cmdline unpatched again)",
        format!(
            "cmdline {}, meminfo {}",
            note("cumulative_cmdline_patched"),
            note("cumulative_meminfo_patched")
        ),
    );
}

/// Checks that the inventory after the replace=0 load lists both patches enabled, the new one
/// not cumulative.
fn check_stacking_inventory(output: &ScenarioOutput, log: &EventLog, checks: &mut Checks) {
    let Some(done_ns) = note_ns(output, "stacking_done_s") else {
        checks.check(
            false,
            "guest noted the replace=0 load",
            "note stacking_done_s missing",
        );
        return;
    };
    let snapshots = snapshots(log);
    let both = snapshots.iter().find(|snapshot| {
        snapshot.ts_ns() <= done_ns
            && [LIVEPATCH, REPLACE].iter().all(|name| {
                inventory_patch(snapshot.inventory, name)
                    .and_then(|patch| patch.get("enabled"))
                    .and_then(Value::as_bool)
                    == Some(true)
            })
    });
    let cumulative = both
        .and_then(|snapshot| inventory_patch(snapshot.inventory, REPLACE))
        .and_then(|patch| patch.get("cumulative"))
        .cloned()
        .unwrap_or_default();
    checks.check(
        both.is_some() && cumulative == Value::Bool(false),
        "log, replace=0: an inventory lists both patches enabled, test_klp_atomic_replace cumulative: false",
        both.map_or("no inventory with both patches enabled".to_owned(), |snapshot| {
            describe(snapshot.inventory)
        }),
    );
    if let Some(snapshot) = both {
        checks.check(
            snapshot.findings.is_empty(),
            "log, replace=0: no findings, the two patches patch different functions",
            format!("{:?}", snapshot.rules()),
        );
    }
}

/// After the replace=1 load: patches_replaced, test_klp_livepatch removed, and the
/// new patch cumulative.
fn check_replacement(output: &ScenarioOutput, log: &EventLog, checks: &mut Checks) {
    let Some(begin_ns) = note_ns(output, "cumulative_begin_s") else {
        checks.check(
            false,
            "guest noted the replace=1 load",
            "note cumulative_begin_s missing",
        );
        return;
    };
    let replaced = log
        .of_kind("patches_replaced")
        .find(|event| ts_ns(event) >= begin_ns && events::text(event, "patch") == Some(REPLACE));
    checks.check(
        replaced.is_some(),
        "log, replace=1: patches_replaced for test_klp_atomic_replace",
        replaced.map_or(
            "no patches_replaced event after the replace=1 load".to_owned(),
            describe,
        ),
    );
    if let Some(event) = replaced {
        verdicts::check_replaced_list(checks, event, &[LIVEPATCH]);
    }

    // With replace=1 the new patch replaces test_klp_livepatch, so the two never
    // stack, not even during the transition.
    let stacked: Vec<String> = log
        .of_kind("finding")
        .filter(|finding| ts_ns(finding) >= begin_ns)
        .filter(|finding| finding_matches(finding, "stacked-function", &[REPLACE], &[]))
        .map(describe)
        .collect();
    checks.check(
        stacked.is_empty(),
        "log, replace=1: no stacked-function finding names test_klp_atomic_replace",
        format!("{} finding(s): {stacked:?}", stacked.len()),
    );

    let removed = log
        .of_kind("patch_removed")
        .find(|event| ts_ns(event) >= begin_ns && events::text(event, "patch") == Some(LIVEPATCH));
    checks.check(
        removed.is_some(),
        "log, replace=1: patch_removed for test_klp_livepatch",
        removed.map_or(
            "no patch_removed event for test_klp_livepatch".to_owned(),
            describe,
        ),
    );

    let snapshots = snapshots(log);
    let last = snapshots.last();
    let livepatch_listed = last.and_then(|snapshot| inventory_patch(snapshot.inventory, LIVEPATCH));
    let replace_patch = last.and_then(|snapshot| inventory_patch(snapshot.inventory, REPLACE));
    let enabled_cumulative = replace_patch.is_some_and(|patch| {
        patch.get("enabled") == Some(&Value::Bool(true))
            && patch.get("cumulative") == Some(&Value::Bool(true))
    });
    checks.check(
        livepatch_listed.is_none() && enabled_cumulative,
        "log, replace=1: the last inventory lists only test_klp_atomic_replace, enabled and cumulative: true",
        last.map_or("no inventory".to_owned(), |snapshot| describe(snapshot.inventory)),
    );
}

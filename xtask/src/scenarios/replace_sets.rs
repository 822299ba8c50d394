//! Checks of the replace-set scenarios, which run only on the replace-set kernel
//! (`cargo xtask lab --kernel replace-set`). The livepatches come from
//! `lab/modules/replace_set/`. Each makes the /proc files it patches print its
//! module name, so the scripts' `proc_*` notes show which patch serves a file.

use serde_json::Value;

use super::{Checks, check_dmesg_contains, check_transition, describe};
use crate::events::{self, EventLog, inventory_patch, ts_ns};
use crate::outputs::ScenarioOutput;

/// Scenarios that need a kernel with replace sets.
const SCENARIOS: &[&str] = &["sets-disjoint", "sets-replace", "sets-conflict"];

/// State id `LAB_STATE_SET1` of `lab/modules/replace_set/replace_set.h`, in decimal.
const STATE_SET1: &str = "6189057";

/// Returns whether the scenario `name` needs the replace-set kernel.
pub fn needs_replace_set_kernel(name: &str) -> bool {
    SCENARIOS.contains(&name)
}

/// "sets-disjoint": patches of replace sets 1 and 2 on different functions stay
/// enabled side by side, and the validator is clean.
pub fn check_disjoint(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    check_note(output, checks, "lab_set1_v1_replace_set", "1");
    check_note(output, checks, "lab_set2_replace_set", "2");
    check_note(output, checks, "lab_set1_v1_enabled", "1");
    check_note(output, checks, "lab_set2_enabled", "1");
    check_note(output, checks, "proc_cmdline", "lab_set1_v1");
    check_note(output, checks, "proc_loadavg", "lab_set1_v1");
    check_note(output, checks, "proc_version", "lab_set2");

    if !with_tool {
        return;
    }
    let log = EventLog::parse(output.file("jsonl"));
    check_listed_together(&log, checks, &[("lab_set1_v1", 1), ("lab_set2", 2)]);
    check_clean(output, checks, "check");
    check_json_exit_code(output, checks, "check-json", 0);
}

/// "sets-replace": a new set-1 patch replaces the old set-1 patch and leaves the
/// set-2 patch alone.
pub fn check_replace(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    check_dmesg_contains(
        output,
        checks,
        "kernel completed the patching transition of lab_set1_v2",
        "'lab_set1_v2': patching complete",
    );
    check_note(output, checks, "lab_set1_v1_gone", "1");
    let patches = output.note("patches").unwrap_or("missing");
    let names: Vec<&str> = patches.split_whitespace().collect();
    checks.check(
        names == ["lab_set1_v2", "lab_set2"],
        "sysfs lists exactly lab_set1_v2 and lab_set2 after the replacement",
        format!("/sys/kernel/livepatch: {patches:?}"),
    );
    check_note(output, checks, "lab_set1_v2_replace_set", "1");
    check_note(output, checks, "lab_set2_enabled", "1");
    check_note(output, checks, "lab_set2_transition", "0");
    check_note(output, checks, "proc_cmdline", "lab_set1_v2");
    check_note(output, checks, "proc_version", "lab_set2");
    let loadavg = output.note("proc_loadavg").unwrap_or("missing");
    checks.check(
        // The original prints three load averages first, e.g. "0.00 0.00 0.00 1/45 120".
        loadavg.split_whitespace().count() == 5 && !loadavg.contains("lab_set"),
        "/proc/loadavg is the original again: the nop function replaced lab_set1_v1's",
        format!("proc_loadavg={loadavg:?}"),
    );
    check_note(output, checks, "lab_set1_v1_unloaded", "1");

    if !with_tool {
        return;
    }
    check_verdict_json(
        output,
        checks,
        "verdict-v2-json",
        &VerdictExpectation {
            exit_code: 0,
            replaces: &["lab_set1_v1"],
            refused_mentions: &[],
        },
    );

    let log = EventLog::parse(output.file("jsonl"));
    check_transition(&log, checks, "lab_set1_v2", "patched");
    let replaced = log.find("patches_replaced", &[("patch", "lab_set1_v2")]);
    checks.check(
        replaced.is_some(),
        "tool logged patches_replaced for lab_set1_v2",
        replaced.map_or(
            "no patches_replaced event for lab_set1_v2".to_owned(),
            describe,
        ),
    );
    for event in log.of_kind("patches_replaced") {
        checks.info(format!("patches_replaced event: {}", describe(event)));
    }

    let removed_v1 = log.find("patch_removed", &[("patch", "lab_set1_v1")]);
    checks.check(
        removed_v1.is_some(),
        "tool saw lab_set1_v1 removed",
        removed_v1.map_or(
            "no patch_removed event for lab_set1_v1".to_owned(),
            describe,
        ),
    );
    let removed_set2 = log.find("patch_removed", &[("patch", "lab_set2")]);
    checks.check(
        removed_set2.is_none(),
        "tool did not report lab_set2 removed",
        removed_set2.map_or("no patch_removed event for lab_set2".to_owned(), describe),
    );
    let unpatched_set2 = log.find(
        "transition_started",
        &[("patch", "lab_set2"), ("target", "unpatched")],
    );
    checks.check(
        unpatched_set2.is_none(),
        "tool saw no unpatching transition of lab_set2",
        unpatched_set2.map_or(
            "no transition_started of lab_set2 to unpatched".to_owned(),
            describe,
        ),
    );

    let last = log.of_kind("inventory").last();
    let listed_v1 =
        last.is_some_and(|inventory| inventory_patch(inventory, "lab_set1_v1").is_some());
    checks.check(
        last.is_some() && !listed_v1,
        "last inventory no longer lists lab_set1_v1",
        last.map_or("no inventory".to_owned(), |inventory| {
            format!("last inventory at ts_ns {}", ts_ns(inventory))
        }),
    );
    check_listed_together(&log, checks, &[("lab_set1_v2", 1), ("lab_set2", 2)]);
    check_clean(output, checks, "check");
}

/// "sets-conflict": the kernel rejects a patch that crosses into another replace
/// set, by function or by state id, and the tool predicts and reports it. The
/// enabled lab_set2 shares a function with lab_set2_conflict, which is allowed
/// within one set, so no explanation may name it.
pub fn check_conflict(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let cases = [
        RejectedLoad {
            module: "lab_set2_conflict",
            kernel_reason: "'lab_set2_conflict' (replace set 2) patches vmlinux:cmdline_proc_show, \
                            already patched by 'lab_set1_v1' (replace set 1)",
            mentions: &["cmdline_proc_show", "lab_set1_v1"],
            same_set: &["lab_set2"],
            rule: "cross-set-function",
        },
        RejectedLoad {
            module: "lab_set3_state",
            kernel_reason: "'lab_set3_state' (replace set 3) uses state id 6189057 of \
                            'lab_set1_v1' (replace set 1)",
            mentions: &[STATE_SET1, "lab_set1_v1"],
            same_set: &[],
            rule: "cross-set-state",
        },
    ];
    for case in &cases {
        check_rejected_load(output, checks, with_tool, case);
    }
    check_note(output, checks, "lab_set1_v1_enabled", "1");
    check_note(output, checks, "lab_set2_enabled", "1");
    check_note(output, checks, "proc_cmdline", "lab_set1_v1");
    check_note(output, checks, "proc_version", "lab_set2");
    let meminfo = output.note("proc_meminfo").unwrap_or("missing");
    checks.check(
        meminfo.starts_with("MemTotal:"),
        "/proc/meminfo is the original: the rejected lab_set3_state patched nothing",
        format!("proc_meminfo={meminfo:?}"),
    );
}

/// A livepatch module that the kernel must reject.
struct RejectedLoad {
    module: &'static str,
    /// The kernel's log line that names the conflict.
    kernel_reason: &'static str,
    /// Words that the tool's explanation of the rejection must contain.
    mentions: &'static [&'static str],
    /// Enabled patches of the module's own replace set. The verdict reports that
    /// the module would replace them, and no explanation of the rejection may name
    /// them.
    same_set: &'static [&'static str],
    /// The validator rule the verdict's findings must include.
    rule: &'static str,
}

fn check_rejected_load(
    output: &ScenarioOutput,
    checks: &mut Checks,
    with_tool: bool,
    case: &RejectedLoad,
) {
    let module = case.module;
    let insmod_exit = output
        .note(&format!("insmod_{module}_exit"))
        .unwrap_or("missing");
    checks.check(
        insmod_exit != "0" && insmod_exit != "missing",
        &format!("insmod {module}.ko failed"),
        format!(
            "exit code {insmod_exit}: {}",
            output.file(&format!("insmod-{module}")).trim()
        ),
    );
    check_note(output, checks, &format!("{module}_in_sysfs"), "0");
    check_dmesg_contains(
        output,
        checks,
        &format!("kernel logged why it rejected {module}"),
        case.kernel_reason,
    );
    check_dmesg_contains(
        output,
        checks,
        &format!("kernel logged {module} as not compatible"),
        &format!("Livepatch patch ({module}) is not compatible"),
    );

    if !with_tool {
        return;
    }
    check_verdict_before_load(output, checks, case);
    check_load_failed_events(output, checks, case);
}

/// Checks the verdict of `check --module` that the script ran before the insmod,
/// in text and in JSON.
fn check_verdict_before_load(output: &ScenarioOutput, checks: &mut Checks, case: &RejectedLoad) {
    let module = case.module;
    let text_name = format!("verdict-{module}");
    let text = output.file(&text_name);
    let exit = output
        .note(&format!("{text_name}_exit"))
        .unwrap_or("missing");
    let predicted =
        text.contains("would be refused") && case.mentions.iter().all(|word| text.contains(word));
    checks.check(
        exit == "2" && predicted,
        &format!(
            "check --module {module}.ko predicted the rejection, naming {}",
            case.mentions.join(" and ")
        ),
        format!("exit code {exit}, output: {}", one_line(text)),
    );

    let json_name = format!("verdict-{module}-json");
    check_verdict_json(
        output,
        checks,
        &json_name,
        &VerdictExpectation {
            exit_code: 2,
            replaces: case.same_set,
            refused_mentions: case.mentions,
        },
    );
    check_no_same_set_conflict(
        checks,
        &format!("check --module {module}.ko"),
        &json_strings(output.file(&json_name), "refused"),
        case.same_set,
    );

    let findings: Vec<String> = serde_json::from_str::<Value>(output.file(&json_name).trim())
        .ok()
        .and_then(|verdict| verdict.get("findings").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|finding| events::text(finding, "rule").map(str::to_owned))
        .collect();
    checks.check(
        findings.iter().any(|rule| rule == case.rule),
        &format!("check --module {module}.ko: findings include {}", case.rule),
        format!("rules {findings:?}"),
    );
}

/// Checks the tool's `patch_load_failed` events of a rejected module. busybox
/// insmod retries with init_module() after finit_module() fails, so the kernel
/// rejects the module twice and the tool logs one event per attempt.
fn check_load_failed_events(output: &ScenarioOutput, checks: &mut Checks, case: &RejectedLoad) {
    let module = case.module;
    let log = EventLog::parse(output.file("jsonl"));
    let failed: Vec<&Value> = log
        .of_kind("patch_load_failed")
        .filter(|event| events::text(event, "patch") == Some(module))
        .collect();
    let errors: Vec<Option<i64>> = failed
        .iter()
        .map(|event| event.get("error").and_then(Value::as_i64))
        .collect();
    checks.check(
        !errors.is_empty() && errors.iter().all(|error| *error == Some(-22)),
        &format!("tool logged patch_load_failed for {module} with error -22 (EINVAL)"),
        format!("{} event(s), errors {errors:?}", failed.len()),
    );

    for (index, event) in failed.iter().enumerate() {
        let attempt = index + 1;
        let conflicts = strings_of(event, "conflicts");
        checks.check(
            conflicts
                .iter()
                .any(|conflict| case.mentions.iter().all(|word| conflict.contains(word))),
            &format!(
                "tool explained rejection {attempt} of {module}, naming {}",
                case.mentions.join(" and ")
            ),
            format!("conflicts {conflicts:?}"),
        );
        check_no_same_set_conflict(
            checks,
            &format!("tool's explanation of rejection {attempt} of {module}"),
            &conflicts,
            case.same_set,
        );
        let mut unique = conflicts.clone();
        unique.sort();
        unique.dedup();
        checks.check(
            unique.len() == conflicts.len(),
            &format!(
                "tool's explanation of rejection {attempt} of {module} lists each conflict once"
            ),
            format!("conflicts {conflicts:?}"),
        );
    }
}

/// Checks that no reason of a rejection names a patch of the rejected module's
/// own replace set: patches of one set may share functions and state ids.
fn check_no_same_set_conflict(
    checks: &mut Checks,
    source: &str,
    reasons: &[String],
    same_set: &[&str],
) {
    if same_set.is_empty() {
        return;
    }
    let named: Vec<&String> = reasons
        .iter()
        .filter(|reason| {
            same_set
                .iter()
                .any(|patch| reason.contains(&format!(" by {patch} ")))
        })
        .collect();
    checks.check(
        named.is_empty(),
        &format!(
            "{source} names no patch of the same replace set ({})",
            same_set.join(", ")
        ),
        format!("reasons {reasons:?}"),
    );
}

/// Returns the strings of an array field, e.g. an event's `conflicts`.
fn strings_of(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Returns the strings of an array field of a JSON document, or none if it does
/// not parse.
fn json_strings(text: &str, key: &str) -> Vec<String> {
    serde_json::from_str::<Value>(text.trim())
        .map(|document| strings_of(&document, key))
        .unwrap_or_default()
}

/// Expected output of `check --format json --module`.
struct VerdictExpectation<'a> {
    exit_code: u64,
    /// Patches that the module would replace, in order.
    replaces: &'a [&'a str],
    /// Words that one reason of the rejection must contain. Empty means not
    /// rejected.
    refused_mentions: &'a [&'a str],
}

fn check_verdict_json(
    output: &ScenarioOutput,
    checks: &mut Checks,
    name: &str,
    expected: &VerdictExpectation,
) {
    let text = output.file(name);
    let Ok(verdict) = serde_json::from_str::<Value>(text.trim()) else {
        checks.check(false, &format!("{name} is a JSON verdict"), one_line(text));
        return;
    };
    let replaces = strings_of(&verdict, "replaces");
    let refused = strings_of(&verdict, "refused");
    let refused_ok = if expected.refused_mentions.is_empty() {
        refused.is_empty()
    } else {
        refused.iter().any(|reason| {
            expected
                .refused_mentions
                .iter()
                .all(|word| reason.contains(word))
        })
    };
    checks.check(
        verdict.get("exit_code").and_then(Value::as_u64) == Some(expected.exit_code)
            && replaces == expected.replaces
            && refused_ok,
        &format!(
            "{name}: exit_code {}, replaces {:?}, refused {}",
            expected.exit_code,
            expected.replaces,
            if expected.refused_mentions.is_empty() {
                "nothing".to_owned()
            } else {
                format!("naming {}", expected.refused_mentions.join(" and "))
            }
        ),
        one_line(text),
    );
}

/// Checks that one inventory lists every patch, enabled, with its replace set.
fn check_listed_together(log: &EventLog, checks: &mut Checks, patches: &[(&str, u64)]) {
    let matches = |inventory: &Value| {
        patches.iter().all(|(name, set)| {
            inventory_patch(inventory, name).is_some_and(|patch| {
                patch.get("replace_set").and_then(Value::as_u64) == Some(*set)
                    && patch.get("enabled").and_then(Value::as_bool) == Some(true)
            })
        })
    };
    let found = log
        .of_kind("inventory")
        .find(|inventory| matches(inventory));
    let wanted: Vec<String> = patches
        .iter()
        .map(|(name, set)| format!("{name} (replace_set {set})"))
        .collect();
    let evidence = match found.or_else(|| log.of_kind("inventory").last()) {
        Some(inventory) => summarize_inventory(inventory),
        None => "no inventory".to_owned(),
    };
    checks.check(
        found.is_some(),
        &format!("an inventory lists {}, enabled", wanted.join(" and ")),
        evidence,
    );
}

/// "name set=N enabled=B" for each patch of an inventory.
fn summarize_inventory(inventory: &Value) -> String {
    let patches = inventory
        .get("patches")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let listed: Vec<String> = patches
        .iter()
        .map(|patch| {
            format!(
                "{} replace_set={} enabled={}",
                events::text(patch, "name").unwrap_or("?"),
                patch.get("replace_set").unwrap_or(&Value::Null),
                patch.get("enabled").unwrap_or(&Value::Null)
            )
        })
        .collect();
    format!(
        "inventory at ts_ns {}: [{}]",
        ts_ns(inventory),
        listed.join(", ")
    )
}

/// Checks that `livepatch-tui check`, whose output the script stored as `name`,
/// exited with 0.
fn check_clean(output: &ScenarioOutput, checks: &mut Checks, name: &str) {
    let exit = output.note(&format!("{name}_exit")).unwrap_or("missing");
    checks.check(
        exit == "0",
        "livepatch-tui check exited with 0",
        format!("exit code {exit}, output: {}", one_line(output.file(name))),
    );
}

fn check_json_exit_code(output: &ScenarioOutput, checks: &mut Checks, name: &str, expected: u64) {
    let text = output.file(name);
    let report = serde_json::from_str::<Value>(text.trim()).ok();
    let exit_code = report
        .as_ref()
        .and_then(|report| report.get("exit_code"))
        .and_then(Value::as_u64);
    checks.check(
        exit_code == Some(expected),
        &format!("check --format json reports exit_code {expected}"),
        one_line(text),
    );
}

fn check_note(output: &ScenarioOutput, checks: &mut Checks, key: &str, expected: &str) {
    let value = output.note(key).unwrap_or("missing");
    checks.check(
        value == expected,
        &format!("{key} is {expected}"),
        format!("{key}={value}"),
    );
}

/// Joins the lines of a command's output with " | ", for evidence.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    if lines.is_empty() {
        "no output".to_owned()
    } else {
        lines.join(" | ")
    }
}

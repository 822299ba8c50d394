//! Checks of the "calls" scenario: the tool's call counts for versions_target_func()
//! and versions_target_hold(), phase by phase, against the versions the target
//! recorded as having run.

use serde_json::Value;

use super::call_counts::{CallSum, sum_calls};
use super::verdicts::{self, CheckRun, finding_matches, note_ns, snapshots};
use super::{Checks, describe};
use crate::events::{self, EventLog, inventory_patch, ts_ns};
use crate::outputs::ScenarioOutput;

const FUNCTION: &str = "versions_target_func";
const HOLD_FUNCTION: &str = "versions_target_hold";
const CUMULATIVE: &str = "versions_cumulative";

/// The code a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runs {
    Original,
    Patch(&'static str),
}

impl Runs {
    /// The number versions_target_func() returns for this code
    /// (lab/modules/versions/versions.h).
    fn version(self) -> usize {
        match self {
            Runs::Original => 0,
            Runs::Patch("versions_a") => 1,
            Runs::Patch("versions_b") => 2,
            Runs::Patch(CUMULATIVE) => 3,
            Runs::Patch(other) => panic!("no version number for patch {other}"),
        }
    }
}

/// One phase of the guest script and what each of its callers runs.
struct Phase {
    name: &'static str,
    /// The code the guest shell's calls run.
    shell: Runs,
    /// The code the calls of the task held in versions_target_hold() run, in a
    /// phase with a held transition.
    holder: Option<Runs>,
    /// The version of versions_target_hold() the holding task entered, when the
    /// tool tracked that function at the time.
    hold_entry: Option<Runs>,
    /// Whether the tool tracks versions_target_func() during the phase.
    counted: bool,
}

const PHASES: &[Phase] = &[
    Phase {
        name: "before",
        shell: Runs::Original,
        holder: None,
        hold_entry: None,
        counted: false,
    },
    Phase {
        name: "a_held",
        shell: Runs::Patch("versions_a"),
        holder: Some(Runs::Original),
        // The task entered versions_target_hold() before versions_a loaded.
        hold_entry: None,
        counted: true,
    },
    Phase {
        name: "a",
        shell: Runs::Patch("versions_a"),
        holder: None,
        hold_entry: None,
        counted: true,
    },
    Phase {
        name: "b_held",
        shell: Runs::Patch("versions_b"),
        holder: Some(Runs::Patch("versions_a")),
        hold_entry: Some(Runs::Patch("versions_a")),
        counted: true,
    },
    Phase {
        name: "b",
        shell: Runs::Patch("versions_b"),
        holder: None,
        hold_entry: None,
        counted: true,
    },
    Phase {
        name: "cumulative_held",
        shell: Runs::Patch(CUMULATIVE),
        holder: Some(Runs::Patch("versions_b")),
        hold_entry: Some(Runs::Patch("versions_b")),
        counted: true,
    },
    Phase {
        name: "cumulative",
        shell: Runs::Patch(CUMULATIVE),
        holder: None,
        hold_entry: None,
        counted: true,
    },
    Phase {
        name: "removal",
        shell: Runs::Patch(CUMULATIVE),
        holder: None,
        hold_entry: None,
        counted: true,
    },
    Phase {
        name: "final",
        shell: Runs::Patch("versions_a"),
        holder: None,
        hold_entry: None,
        counted: true,
    },
];

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let log = EventLog::parse(output.file("jsonl"));
    for phase in PHASES {
        check_phase(output, &log, checks, phase, with_tool);
    }
    if !with_tool {
        return;
    }
    check_predictions(output, checks);
    check_replacement(output, &log, checks);
}

fn note_count(output: &ScenarioOutput, key: &str) -> u64 {
    output
        .note(key)
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

fn check_phase(
    output: &ScenarioOutput,
    log: &EventLog,
    checks: &mut Checks,
    phase: &Phase,
    with_tool: bool,
) {
    let name = phase.name;
    let shell_calls = note_count(output, &format!("{name}_shell_calls"));
    let holder_calls = note_count(output, &format!("{name}_holder_calls"));

    // What ran, as the target recorded it: the lab's own ground truth.
    let mut expected_tally = [0u64; 4];
    expected_tally[phase.shell.version()] += shell_calls;
    if let Some(holder) = phase.holder {
        expected_tally[holder.version()] += holder_calls;
    }
    let tally: Vec<u64> = (0..4)
        .map(|version| note_count(output, &format!("{name}_v{version}")))
        .collect();
    checks.check(
        shell_calls > 0 && tally == expected_tally,
        &format!("{name}: the target ran the expected versions"),
        format!(
            "{shell_calls} shell and {holder_calls} held calls; tally v0..v3 {tally:?}, expected {expected_tally:?}"
        ),
    );

    if phase.holder.is_some() {
        check_held_task(output, log, checks, phase, with_tool);
    }
    if let Some(wait) = output.note(&format!("{name}_counting_ms")) {
        checks.info(format!(
            "{name}: the tool's counters sat on the new patch {wait} ms after its load"
        ));
    }
    if !with_tool {
        return;
    }

    let (Some(from), Some(to)) = (
        note_ns(output, &format!("{name}_begin_s")),
        note_ns(output, &format!("{name}_end_s")),
    ) else {
        checks.check(
            false,
            &format!("{name}: guest noted the phase's bounds"),
            "begin or end note missing",
        );
        return;
    };

    let counted = sum_calls(log, FUNCTION, from, to);
    if !phase.counted {
        checks.check(
            counted.events == 0,
            &format!(
                "{name}: tool counted none of the calls made before any patch named the function"
            ),
            format!("counted {counted}"),
        );
        return;
    }
    let mut original = 0;
    let mut patched: Vec<(&str, u64)> = Vec::new();
    for (runs, calls) in [
        (Some(phase.shell), shell_calls),
        (phase.holder, holder_calls),
    ] {
        match runs {
            Some(Runs::Original) => original += calls,
            Some(Runs::Patch(patch)) => patched.push((patch, calls)),
            None => {}
        }
    }
    let expected = CallSum::expected(original, &patched);
    checks.check(
        counted.same_counts(&expected),
        &format!("{name}: tool counted versions_target_func calls per version"),
        format!("expected {expected}; counted {counted}"),
    );

    let hold_counted = sum_calls(log, HOLD_FUNCTION, from, to);
    let hold_expected = match phase.hold_entry {
        Some(Runs::Patch(patch)) => CallSum::expected(0, &[(patch, 1)]),
        Some(Runs::Original) => CallSum::expected(1, &[]),
        None => CallSum::default(),
    };
    checks.check(
        hold_counted.same_counts(&hold_expected),
        &format!("{name}: tool counted versions_target_hold calls per version"),
        format!("expected {hold_expected}; counted {hold_counted}"),
    );
}

/// Checks that a held phase held what it meant to: the holding task had not
/// switched, the shell had, and the transition was in progress during the calls.
fn check_held_task(
    output: &ScenarioOutput,
    log: &EventLog,
    checks: &mut Checks,
    phase: &Phase,
    with_tool: bool,
) {
    let name = phase.name;
    let note = |key: &str| {
        output
            .note(&format!("{name}_{key}"))
            .unwrap_or("missing")
            .to_owned()
    };
    checks.check(
        note("held_during_calls") == "1"
            && note("holder_patch_state") == "0"
            && note("shell_patch_state") == "1",
        &format!("{name}: the transition was held, the holding task unpatched, the shell patched"),
        format!(
            "held_during_calls={} holder patch_state={} shell patch_state={}",
            note("held_during_calls"),
            note("holder_patch_state"),
            note("shell_patch_state")
        ),
    );
    if !with_tool {
        return;
    }

    let holder_pid: Option<u64> = output
        .note(&format!("{name}_holder_pid"))
        .and_then(|pid| pid.trim().parse().ok());
    let (Some(from), Some(to)) = (
        note_ns(output, &format!("{name}_begin_s")),
        note_ns(output, &format!("{name}_end_s")),
    ) else {
        return;
    };
    let blocked = log.of_kind("task_blocked").find(|event| {
        event.get("pid").and_then(Value::as_u64) == holder_pid
            && events::text(event, "reason") == Some("sleeping_in_function")
            && events::text(event, "function") == Some(HOLD_FUNCTION)
            && (from..=to).contains(&ts_ns(event))
    });
    checks.check(
        blocked.is_some(),
        &format!("{name}: tool reported the holding task sleeping in versions_target_hold"),
        blocked.map_or(
            format!(
                "no such task_blocked event for pid {}",
                holder_pid.map_or("?".to_owned(), |pid| pid.to_string())
            ),
            describe,
        ),
    );
}

/// `check --module` before versions_b and before versions_cumulative.
fn check_predictions(output: &ScenarioOutput, checks: &mut Checks) {
    let stacking = CheckRun::read(output, "check_b");
    stacking.check_replaces(
        checks,
        &[],
        "check --module versions_b.ko: replaces nothing",
    );
    let stacked = stacking.findings().into_iter().any(|finding| {
        finding_matches(
            finding,
            "stacked-function",
            &["versions_a", "versions_b"],
            &[FUNCTION],
        )
    });
    checks.check(
        stacked,
        "check --module versions_b.ko: predicts stacked-function on versions_target_func",
        stacking.evidence(),
    );

    let cumulative = CheckRun::read(output, "check_cumulative");
    cumulative.check_replaces(
        checks,
        &["versions_a", "versions_b"],
        "check --module versions_cumulative.ko: replaces versions_a and versions_b",
    );
    cumulative.check_not_refused(
        checks,
        "check --module versions_cumulative.ko: the kernel would not refuse it",
    );
    cumulative.check_exit(
        checks,
        0,
        "check --module versions_cumulative.ko: exit code 0 (no findings after the load)",
    );

    let after = CheckRun::read(output, "check_after_cumulative");
    after.check_exit(checks, 0, "check after versions_cumulative: exit code 0");
}

/// Checks the log around versions_cumulative's transition: the replaced patches go, and
/// the new one is marked cumulative.
fn check_replacement(output: &ScenarioOutput, log: &EventLog, checks: &mut Checks) {
    let replaced = log.find("patches_replaced", &[("patch", CUMULATIVE)]);
    checks.check(
        replaced.is_some(),
        "log: patches_replaced for versions_cumulative",
        replaced.map_or("no patches_replaced event".to_owned(), describe),
    );
    if let Some(event) = replaced {
        verdicts::check_replaced_list(checks, event, &["versions_a", "versions_b"]);
    }
    check_no_false_findings(log, checks);

    let Some(gone_ns) = note_ns(output, "replaced_gone_s") else {
        checks.check(
            false,
            "guest noted when the replaced patches were freed",
            "note replaced_gone_s missing",
        );
        return;
    };
    // The first inventory after the replacement began that no longer lists the
    // replaced patches. The tool reads sysfs every 500 ms, so it should come within
    // a second of the guest seeing them go.
    let replaced_ns = replaced.map_or(0, ts_ns);
    let snapshots = snapshots(log);
    let after = snapshots.iter().find(|snapshot| {
        snapshot.ts_ns() >= replaced_ns
            && inventory_patch(snapshot.inventory, "versions_a").is_none()
            && inventory_patch(snapshot.inventory, "versions_b").is_none()
    });
    let Some(after) = after else {
        checks.check(
            false,
            "log: an inventory without versions_a and versions_b follows the replacement",
            "none found",
        );
        return;
    };
    checks.check(
        after.ts_ns() <= gone_ns + 1_000_000_000,
        "log: within 1 s of their removal, an inventory no longer lists versions_a and versions_b",
        format!(
            "inventory at {} ns, guest saw them gone at {gone_ns} ns",
            after.ts_ns()
        ),
    );
    let listed = inventory_patch(after.inventory, CUMULATIVE);
    let cumulative = listed
        .and_then(|patch| patch.get("cumulative"))
        .cloned()
        .unwrap_or_default();
    let enabled = listed
        .and_then(|patch| patch.get("enabled"))
        .cloned()
        .unwrap_or_default();
    checks.check(
        cumulative == Value::Bool(true) && enabled == Value::Bool(true),
        "log: that inventory lists versions_cumulative enabled and cumulative: true",
        describe(after.inventory),
    );

    let stacking_marked: Vec<String> = snapshots
        .iter()
        .flat_map(|snapshot| ["versions_a", "versions_b"].map(|name| (snapshot, name)))
        .filter_map(|(snapshot, name)| {
            let value = inventory_patch(snapshot.inventory, name)?.get("cumulative")?;
            (value != &Value::Bool(false)).then(|| format!("{name}: cumulative {value}"))
        })
        .collect();
    checks.check(
        stacking_marked.is_empty(),
        "log: versions_a and versions_b are cumulative: false in every inventory",
        format!("{stacking_marked:?}"),
    );
}

/// Checks that the log never warned about versions_target's object or about
/// versions_cumulative stacking. versions_target stays loaded while any patch of it
/// is enabled, and versions_cumulative replaces the patches it overlaps.
fn check_no_false_findings(log: &EventLog, checks: &mut Checks) {
    let not_loaded: Vec<String> = log
        .of_kind("finding")
        .filter(|finding| events::text(finding, "rule") == Some("object-not-loaded"))
        .map(describe)
        .collect();
    checks.check(
        not_loaded.is_empty(),
        "log: no object-not-loaded finding, versions_target is loaded throughout",
        format!("{} finding(s): {not_loaded:?}", not_loaded.len()),
    );

    let stacked_on_cumulative: Vec<String> = log
        .of_kind("finding")
        .filter(|finding| finding_matches(finding, "stacked-function", &[CUMULATIVE], &[]))
        .map(describe)
        .collect();
    checks.check(
        stacked_on_cumulative.is_empty(),
        "log: no stacked-function finding names versions_cumulative, which replaces the others",
        format!(
            "{} finding(s): {stacked_on_cumulative:?}",
            stacked_on_cumulative.len()
        ),
    );
}

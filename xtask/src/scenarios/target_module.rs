//! Checks of the "target_module" scenario: livepatches loaded before the modules
//! they patch, which then load and go.

use serde_json::Value;

use super::call_counts::{CallSum, sum_calls};
use super::verdicts::{
    CheckRun, Snapshot, finding_matches, inventory_object, note_ns, snapshot_at, snapshots,
};
use super::{Checks, describe};
use crate::events::{self, EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

const DEMO: &str = "test_klp_callbacks_demo";
const MOD: &str = "test_klp_callbacks_mod";
const BUSY: &str = "test_klp_callbacks_busy";
const PAIR_PATCH: &str = "versions_a";
const PAIR_TARGET: &str = "versions_target";
const RULE: &str = "object-not-loaded";

/// A step of the guest script and the state it leaves.
struct Step {
    name: &'static str,
    /// (patch, object, whether the object's module is loaded) after the step.
    objects: &'static [(&'static str, &'static str, bool)],
    /// The module event the step causes, as (kind, module).
    module_event: Option<(&'static str, &'static str)>,
    /// Exit code of `check` after the step.
    exit: i64,
}

const STEPS: &[Step] = &[
    Step {
        name: "demo",
        objects: &[(DEMO, MOD, false), (DEMO, BUSY, false)],
        module_event: None,
        exit: 1,
    },
    Step {
        name: "mod",
        objects: &[(DEMO, MOD, true), (DEMO, BUSY, false)],
        module_event: Some(("module_coming", MOD)),
        exit: 1,
    },
    Step {
        name: "going",
        objects: &[(DEMO, MOD, false), (DEMO, BUSY, false)],
        module_event: Some(("module_going", MOD)),
        exit: 1,
    },
    Step {
        name: "pair_patch",
        objects: &[(PAIR_PATCH, PAIR_TARGET, false)],
        module_event: None,
        exit: 1,
    },
    Step {
        name: "pair_target",
        objects: &[(PAIR_PATCH, PAIR_TARGET, true)],
        module_event: Some(("module_coming", PAIR_TARGET)),
        exit: 0,
    },
];

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    for step in STEPS {
        check_kernel_view(output, checks, step);
    }
    if !with_tool {
        return;
    }

    check_predictions(output, checks);
    let log = EventLog::parse(output.file("jsonl"));
    let snapshots = snapshots(&log);
    let mut previous_ns = 0;
    for step in STEPS {
        let Some(step_ns) = note_ns(output, &format!("{}_s", step.name)) else {
            checks.check(
                false,
                &format!("{}: guest noted the step's time", step.name),
                "note missing",
            );
            return;
        };
        check_step(output, &log, &snapshots, checks, step, previous_ns, step_ns);
        previous_ns = step_ns;
    }
    check_calls(output, &log, checks);
}

/// Checks the kernel's own `patched` attribute of each object after the step.
fn check_kernel_view(output: &ScenarioOutput, checks: &mut Checks, step: &Step) {
    let name = step.name;
    let mut ok = true;
    let mut seen = Vec::new();
    for (_, object, loaded) in step.objects {
        let value = output
            .note(&format!("{name}_{object}_patched"))
            .unwrap_or("missing");
        ok &= value == u8::from(*loaded).to_string();
        seen.push(format!("{object} {value}"));
    }
    checks.check(
        ok,
        &format!("{name}: the kernel patched exactly the objects whose module is loaded"),
        format!("sysfs patched: {}", seen.join(", ")),
    );
}

/// `check --module` before each patch, with none of its target modules loaded.
fn check_predictions(output: &ScenarioOutput, checks: &mut Checks) {
    for (file, patch, objects) in [
        ("check_module", DEMO, &[MOD, BUSY][..]),
        ("check_pair", PAIR_PATCH, &[PAIR_TARGET][..]),
    ] {
        let run = CheckRun::read(output, file);
        run.check_replaces(
            checks,
            &[],
            &format!("check --module {patch}.ko: replaces nothing"),
        );
        run.check_not_refused(
            checks,
            &format!("check --module {patch}.ko: the kernel would not refuse it"),
        );
        for object in objects {
            let predicted = run
                .findings()
                .into_iter()
                .any(|finding| finding_matches(finding, RULE, &[patch], &[object]));
            checks.check(
                predicted,
                &format!("check --module {patch}.ko: predicts object-not-loaded for {object}"),
                run.evidence(),
            );
        }
        run.check_exit(
            checks,
            1,
            &format!("check --module {patch}.ko: exit code 1 (warnings)"),
        );
    }
}

/// Checks the log and the one-shot check at the end of a step: the module event, the
/// objects' `patched` in the latest inventory, its findings, and the exit code.
fn check_step(
    output: &ScenarioOutput,
    log: &EventLog,
    snapshots: &[Snapshot],
    checks: &mut Checks,
    step: &Step,
    previous_ns: u64,
    step_ns: u64,
) {
    let name = step.name;
    if let Some((kind, module)) = step.module_event {
        let event = log.of_kind(kind).find(|event| {
            events::text(event, "module") == Some(module)
                && (previous_ns..=step_ns).contains(&ts_ns(event))
        });
        checks.check(
            event.is_some(),
            &format!("{name}: log has {kind} for {module}"),
            event.map_or(
                format!("no {kind} event for {module} in this step"),
                describe,
            ),
        );
    }

    let Some(snapshot) = snapshot_at(snapshots, step_ns) else {
        checks.check(
            false,
            &format!("{name}: log has an inventory"),
            "no inventory before the step's end",
        );
        return;
    };
    for (patch, object, loaded) in step.objects {
        let patched = inventory_object(snapshot.inventory, patch, object)
            .and_then(|entry| entry.get("patched"))
            .cloned()
            .unwrap_or_default();
        checks.check(
            patched == Value::Bool(*loaded),
            &format!("{name}: latest inventory shows {object} patched: {loaded}"),
            format!("patched: {patched}, inventory at {} ns", snapshot.ts_ns()),
        );

        let finding = snapshot
            .findings
            .iter()
            .any(|finding| finding_matches(finding, RULE, &[patch], &[object]));
        let verb = if *loaded { "no longer has" } else { "has" };
        checks.check(
            finding != *loaded,
            &format!("{name}: latest findings {verb} object-not-loaded for {object}"),
            format!("{:?}", snapshot.rules()),
        );
    }

    CheckRun::read(output, &format!("check_{name}")).check_exit(
        checks,
        step.exit,
        &format!("{name}: check exits with {}", step.exit),
    );
}

/// Calls to versions_target_func() after versions_target loaded under versions_a.
fn check_calls(output: &ScenarioOutput, log: &EventLog, checks: &mut Checks) {
    let calls: u64 = output
        .note("calls")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let ran = output.note("calls_v1").unwrap_or("missing");
    checks.check(
        calls > 0 && ran == calls.to_string(),
        "the calls after versions_target loaded ran versions_a",
        format!("{calls} calls, tally v1={ran}"),
    );

    let (Some(from), Some(to)) = (
        note_ns(output, "calls_begin_s"),
        note_ns(output, "calls_end_s"),
    ) else {
        checks.check(
            false,
            "guest noted when it made the calls",
            "begin or end note missing",
        );
        return;
    };
    checks.info(format!(
        "after versions_target loaded, the guest waited {} ms for the tool's counters; \
         {} kprobe(s) on versions_* symbols",
        output.note("pair_target_counting_ms").unwrap_or("?"),
        output.note("kprobes").unwrap_or("?")
    ));
    let expected = CallSum::expected(0, &[(PAIR_PATCH, calls)]);
    let counted = sum_calls(log, "versions_target_func", from, to);
    checks.check(
        counted.same_counts(&expected),
        "tool counted the calls under versions_a, whose target loaded after it",
        format!("expected {expected}; counted {counted}"),
    );
}

//! Checks of the "observer" scenario: the same held transition without and with the
//! tool, compared by duration and by unreliable-stack lines in the kernel log.

use super::{Checks, check_no_unreliable_stack, check_transition};
use crate::events::EventLog;
use crate::outputs::ScenarioOutput;

const PATCH: &str = "test_klp_callbacks_demo";

/// Upper bound for one run. The kernel retries a held transition about once a second,
/// so a run normally ends within two seconds after the hold. A run near this bound
/// means that the transition got stuck, not that it was slow.
const MAX_RUN_MS: f64 = 60_000.0;

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let hold_ms = output.note_f64("hold_s").unwrap_or(0.0) * 1000.0;
    let mut runs = vec!["without_tool"];
    if with_tool {
        runs.push("with_tool");
    }

    for run in &runs {
        let polled = output.note_f64(&format!("{run}_ms"));
        checks.check(
            polled.is_some_and(|ms| ms >= hold_ms && ms <= MAX_RUN_MS),
            &format!("run {run} completed between the hold and {MAX_RUN_MS} ms"),
            format!(
                "{} ms polled, hold {hold_ms} ms",
                output.note(&format!("{run}_ms")).unwrap_or("missing")
            ),
        );
    }

    let unreliable = |run: &str| {
        output
            .note(&format!("{run}_unreliable"))
            .unwrap_or("missing")
            .to_owned()
    };
    checks.info(format!(
        "baseline without the tool: {} \"has an unreliable stack\" line(s)",
        unreliable("without_tool")
    ));
    if !with_tool {
        return;
    }
    checks.check(
        unreliable("with_tool") == "0",
        "kernel logged no unreliable stack while the tool ran",
        format!(
            "{} \"has an unreliable stack\" line(s)",
            unreliable("with_tool")
        ),
    );

    let note = |key: &str| output.note(key).unwrap_or("?").to_owned();
    checks.info(format!(
        "transition duration without / with the tool: polled {} / {} ms, kernel log {} / {} ms",
        note("without_tool_ms"),
        note("with_tool_ms"),
        note("without_tool_kernel_ms"),
        note("with_tool_kernel_ms"),
    ));
    checks.info(format!(
        "release to completion without / with the tool: {} / {} ms; kernel checks that found \
         the task held: {} / {}",
        note("without_tool_release_to_done_ms"),
        note("with_tool_release_to_done_ms"),
        note("without_tool_held_checks"),
        note("with_tool_held_checks"),
    ));

    let log = EventLog::parse(output.file("jsonl"));
    check_transition(&log, checks, PATCH, "patched");
    check_no_unreliable_stack(&log, checks);
}

//! Checks of the "observer" scenario: rounds of a fast and a held transition without
//! and with the tool, compared by duration and by unreliable-stack lines in the
//! kernel log.

use super::{Checks, check_no_unreliable_stack, check_tool_never_blocks, check_transition};
use crate::events::EventLog;
use crate::outputs::ScenarioOutput;

const PATCH: &str = "test_klp_callbacks_demo";

/// Upper bound for one held run. The kernel retries a held transition about once a
/// second, so a run normally ends within two seconds after the hold. A run near this
/// bound means that the transition got stuck, not that it was slow.
const MAX_RUN_MS: f64 = 60_000.0;

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let hold_ms = output.note_f64("hold_s").unwrap_or(0.0) * 1000.0;
    let rounds = output.note_f64("rounds").unwrap_or(0.0) as usize;
    checks.check(
        rounds > 0,
        "guest recorded the number of rounds",
        format!("rounds={}", output.note("rounds").unwrap_or("missing")),
    );
    let mut modes = vec!["without_tool"];
    if with_tool {
        modes.push("with_tool");
    }
    let runs: Vec<String> = modes
        .iter()
        .flat_map(|mode| (1..=rounds).map(move |round| format!("{mode}_{round}")))
        .collect();

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

    print_table(output, checks, rounds, &modes);
    let unreliable = |mode: &str| -> Vec<String> {
        (1..=rounds)
            .map(|round| {
                output
                    .note(&format!("{mode}_{round}_unreliable"))
                    .unwrap_or("missing")
                    .to_owned()
            })
            .collect()
    };
    checks.info(format!(
        "baseline without the tool: \"has an unreliable stack\" lines per round: {:?}",
        unreliable("without_tool")
    ));
    if !with_tool {
        return;
    }
    let with_tool_lines = unreliable("with_tool");
    checks.check(
        with_tool_lines.iter().all(|count| count == "0"),
        "kernel logged no unreliable stack in any round with the tool",
        format!("\"has an unreliable stack\" lines per round: {with_tool_lines:?}"),
    );

    let log = EventLog::parse(output.file("jsonl"));
    let completed = log
        .of_kind("transition_completed")
        .filter(|event| {
            crate::events::text(event, "patch") == Some(PATCH)
                && crate::events::text(event, "target") == Some("patched")
        })
        .count();
    checks.check(
        completed == rounds,
        "tool saw each held transition complete",
        format!("{completed} transition_completed events for {PATCH} to patched, {rounds} rounds"),
    );
    check_transition(&log, checks, PATCH, "patched");
    check_no_unreliable_stack(&log, checks);
    check_tool_never_blocks(&log, checks);
}

/// Prints the durations of every round, without and with the tool, side by side.
fn print_table(output: &ScenarioOutput, checks: &Checks, rounds: usize, modes: &[&str]) {
    let note = |key: String| output.note(&key).unwrap_or("?").to_owned();
    checks.info(
        "round  mode          sample ms  held: polled ms  kernel ms  release->done ms  checks held",
    );
    for round in 1..=rounds {
        for mode in modes {
            let run = format!("{mode}_{round}");
            checks.info(format!(
                "{round:>5}  {mode:<12}  {:>9}  {:>15}  {:>9}  {:>16}  {:>11}",
                note(format!("{run}_sample_kernel_ms")),
                note(format!("{run}_ms")),
                note(format!("{run}_kernel_ms")),
                note(format!("{run}_release_to_done_ms")),
                note(format!("{run}_held_checks")),
            ));
        }
    }
}

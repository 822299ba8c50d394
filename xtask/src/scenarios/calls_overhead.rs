//! Checks of the "calls_overhead" benchmark. The counts must be right. The timings
//! are printed, not asserted, because the lab's VM shares the host with other work.

use super::Checks;
use crate::outputs::ScenarioOutput;

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    if !with_tool {
        return;
    }
    let rounds = output.note_f64("rounds").unwrap_or(0.0) as usize;
    checks.check(
        rounds > 0,
        "guest noted the number of rounds",
        format!("rounds {rounds}"),
    );

    let mut ticks_ms = (Vec::new(), Vec::new());
    let mut bench_ns = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for counting in [false, true] {
            let run = format!("{}{round}", if counting { "on" } else { "off" });
            check_counted(output, checks, &run, counting);
            let (ticks, bench) = if counting {
                (&mut ticks_ms.1, &mut bench_ns.1)
            } else {
                (&mut ticks_ms.0, &mut bench_ns.0)
            };
            if let Some(value) = output.note_f64(&format!("{run}_ticks_ms")) {
                ticks.push(value);
            }
            if let Some(value) = output.note_f64(&format!("{run}_bench_ns")) {
                bench.push(value);
            }
        }
    }

    let ticks = output.note_f64("ticks").unwrap_or(0.0);
    let bench_calls = output.note_f64("bench_calls").unwrap_or(0.0);
    print_figure(
        checks,
        &format!("syscall-bound loop ({ticks} read() calls through the patched function)"),
        &ticks_ms,
        |ms| ms * 1e6 / ticks,
    );
    print_figure(
        checks,
        &format!("tight loop in the module ({bench_calls} calls)"),
        &bench_ns,
        |ns| ns / bench_calls,
    );
}

/// Checks that a counting run counted every call and a run with --no-calls none.
fn check_counted(output: &ScenarioOutput, checks: &mut Checks, run: &str, counting: bool) {
    let calls = output.note(&format!("{run}_calls")).unwrap_or("missing");
    let counted = output.note(&format!("{run}_counted")).unwrap_or("missing");
    let (ok, description) = if counting {
        (calls == counted, format!("{run}: tool counted every call"))
    } else {
        (
            counted == "0",
            format!("{run}: tool with --no-calls counted nothing"),
        )
    };
    let waited = output
        .note(&format!("{run}_counting_ms"))
        .map_or(String::new(), |ms| {
            format!("; counters attached {ms} ms after the load")
        });
    checks.check(
        ok,
        &description,
        format!("{calls} calls, counted {counted}{waited}"),
    );
}

/// Prints the median time per call with counting off and on, and their ratio.
fn print_figure(
    checks: &Checks,
    loop_name: &str,
    runs: &(Vec<f64>, Vec<f64>),
    per_call_ns: impl Fn(f64) -> f64,
) {
    let (Some(off), Some(on)) = (median(&runs.0), median(&runs.1)) else {
        checks.info(format!("{loop_name}: no timings recorded"));
        return;
    };
    checks.info(format!(
        "{loop_name}: median {:.0} ns per call with --no-calls, {:.0} ns counting; ratio {:.2} (runs off {:?}, on {:?})",
        per_call_ns(off),
        per_call_ns(on),
        on / off,
        runs.0,
        runs.1
    ));
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    })
}

//! The lab's scenarios: each has a guest script `lab/guest/scenarios/<name>.sh` and
//! host-side checks over what the script sent back.

mod atomic_replace;
mod blocked;
mod call_counts;
mod calls;
mod calls_overhead;
mod demo;
mod force;
mod fork;
mod idle;
mod kthread;
mod nonroot;
mod observer;
mod replace_sets;
mod reverse;
mod sample;
mod scale;
mod stacked;
mod target_module;
mod timeline;
mod verdicts;

pub use replace_sets::needs_replace_set_kernel;

use std::fmt::Display;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::events::{self, EventLog};
use crate::outputs::{LabOutput, ScenarioOutput};

pub struct Scenario {
    pub name: &'static str,
    check: fn(&ScenarioOutput, &mut Checks, bool),
}

/// All scenarios in their default order.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "sample",
        check: sample::check,
    },
    Scenario {
        name: "blocked",
        check: blocked::check,
    },
    Scenario {
        name: "observer",
        check: observer::check,
    },
    Scenario {
        name: "reverse",
        check: reverse::check,
    },
    Scenario {
        name: "force",
        check: force::check,
    },
    Scenario {
        name: "kthread",
        check: kthread::check,
    },
    Scenario {
        name: "fork",
        check: fork::check,
    },
    Scenario {
        name: "idle",
        check: idle::check,
    },
    Scenario {
        name: "scale",
        check: scale::check,
    },
    Scenario {
        name: "demo",
        check: demo::check,
    },
    Scenario {
        name: "sets-disjoint",
        check: replace_sets::check_disjoint,
    },
    Scenario {
        name: "sets-replace",
        check: replace_sets::check_replace,
    },
    Scenario {
        name: "sets-conflict",
        check: replace_sets::check_conflict,
    },
    Scenario {
        name: "stacked",
        check: stacked::check,
    },
    Scenario {
        name: "atomic_replace",
        check: atomic_replace::check,
    },
    Scenario {
        name: "target_module",
        check: target_module::check,
    },
    Scenario {
        name: "calls",
        check: calls::check,
    },
    Scenario {
        name: "calls_overhead",
        check: calls_overhead::check,
    },
    Scenario {
        name: "nonroot",
        check: nonroot::check,
    },
];

/// Scenarios left out of a run without names, because the tool still fails
/// some of their checks. Run them by name.
pub const KNOWN_FAILING: &[&str] = &[];

/// Resolves scenario names. An empty list selects all of them.
pub fn select(names: &[String]) -> Result<Vec<&'static Scenario>> {
    if names.is_empty() {
        return Ok(ALL
            .iter()
            .filter(|scenario| !KNOWN_FAILING.contains(&scenario.name))
            .collect());
    }
    let mut selected = Vec::new();
    for name in names {
        let Some(scenario) = ALL.iter().find(|scenario| scenario.name == name) else {
            let known: Vec<&str> = ALL.iter().map(|scenario| scenario.name).collect();
            bail!("unknown scenario {name:?}; known: {}", known.join(", "));
        };
        selected.push(scenario);
    }
    Ok(selected)
}

/// Counts of passed and failed checks. Each check prints one line as it runs.
#[derive(Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
}

impl Report {
    /// Formats the closing line that CI reads.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

/// Checks of one scenario, printed with its name.
pub struct Checks<'a> {
    scenario: &'a str,
    report: &'a mut Report,
}

impl Checks<'_> {
    pub fn new<'a>(scenario: &'a str, report: &'a mut Report) -> Checks<'a> {
        Checks { scenario, report }
    }

    /// Records one check and prints `PASS` or `FAIL` with the evidence.
    pub fn check(&mut self, ok: bool, description: &str, evidence: impl Display) {
        let verdict = if ok { "PASS" } else { "FAIL" };
        println!("{verdict} {}: {description} ({evidence})", self.scenario);
        if ok {
            self.report.passed += 1;
        } else {
            self.report.failed += 1;
        }
    }

    /// Prints a line that is not a check.
    pub fn info(&self, message: impl Display) {
        println!("INFO {}: {message}", self.scenario);
    }
}

/// Runs the checks of every selected scenario on the guest's output.
pub fn check_all(selected: &[&Scenario], output: &LabOutput, with_tool: bool) -> Report {
    let mut report = Report::default();
    {
        let mut lab = Checks::new("lab", &mut report);
        let boot_evidence = if output.booted {
            "boot marker received"
        } else {
            "no boot marker on the data channel; see console.log"
        };
        lab.check(output.booted, "guest booted and ran /init", boot_evidence);
        let done_evidence = if output.finished {
            "final marker received"
        } else {
            "no final marker on the data channel; the guest stopped early"
        };
        lab.check(output.finished, "guest ran every scenario", done_evidence);
    }

    let missing = ScenarioOutput::default();
    for scenario in selected {
        let scenario_output = output.scenarios.get(scenario.name).unwrap_or(&missing);
        let mut checks = Checks::new(scenario.name, &mut report);
        check_exit_code(scenario_output, &mut checks);
        if with_tool {
            check_tool_log(scenario_output, &mut checks);
        }
        (scenario.check)(scenario_output, &mut checks, with_tool);
    }
    report
}

fn check_exit_code(output: &ScenarioOutput, checks: &mut Checks) {
    let evidence = match output.exit_code {
        Some(code) => format!("exit code {code}"),
        None => "no exit code received; the guest stopped early".to_owned(),
    };
    checks.check(
        output.exit_code == Some(0),
        "guest script succeeded",
        evidence,
    );
    if output.exit_code != Some(0) {
        for line in last_lines(output.file("log"), 10) {
            checks.info(format!("script log: {line}"));
        }
    }
}

/// Checks that apply to every log the tool writes.
fn check_tool_log(output: &ScenarioOutput, checks: &mut Checks) {
    let log = EventLog::parse(output.file("jsonl"));
    let first_invalid = log.invalid.first().map_or(String::new(), |(line, reason)| {
        format!(", line {line}: {reason}")
    });
    checks.check(
        !log.events.is_empty() && log.invalid.is_empty(),
        "tool log lines are valid version 1 events",
        format!(
            "{} valid, {} invalid{first_invalid}",
            log.events.len(),
            log.invalid.len()
        ),
    );

    let inventories = log.of_kind("inventory").count();
    checks.check(
        inventories > 0,
        "tool wrote an inventory",
        format!("{inventories} inventory line(s)"),
    );

    let lost: u64 = log
        .of_kind("events_lost")
        .filter_map(|event| event.get("count").and_then(Value::as_u64))
        .sum();
    checks.check(
        lost == 0,
        "tool lost no events",
        format!("events_lost total {lost}"),
    );

    let tool_exit = output.note("tool_exit").unwrap_or("missing");
    checks.check(
        tool_exit == "0",
        "tool exited with 0 after SIGINT",
        format!("exit code {tool_exit}"),
    );
    if tool_exit != "0" {
        for line in last_lines(output.file("tool-stderr"), 10) {
            checks.info(format!("tool stderr: {line}"));
        }
    }

    for event in log.of_kind("probe_status") {
        if event.get("attached").and_then(Value::as_bool) == Some(false) {
            checks.info(format!(
                "probe {} not attached: {}",
                events::text(event, "probe").unwrap_or("?"),
                events::text(event, "reason").unwrap_or("no reason given")
            ));
        }
    }
}

fn last_lines(text: &str, count: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].to_vec()
}

/// Lines of the scenario's dmesg excerpt that contain `needle`.
fn dmesg_lines<'a>(output: &'a ScenarioOutput, needle: &str) -> Vec<&'a str> {
    output
        .file("dmesg")
        .lines()
        .filter(|line| line.contains(needle))
        .collect()
}

/// Formats an event compactly for evidence, without the common fields.
fn describe(event: &Value) -> String {
    let mut fields = Vec::new();
    if let Some(object) = event.as_object() {
        for (key, value) in object {
            if key != "v" && key != "kind" {
                fields.push(format!("{key}={value}"));
            }
        }
    }
    format!(
        "{} {}",
        events::text(event, "kind").unwrap_or("?"),
        fields.join(" ")
    )
}

/// Checks that the transition of `patch` to `target` started and then completed, and
/// returns the completion event.
fn check_transition<'a>(
    log: &'a EventLog,
    checks: &mut Checks,
    patch: &str,
    target: &str,
) -> Option<&'a Value> {
    let fields = [("patch", patch), ("target", target)];
    let started = log.find("transition_started", &fields);
    checks.check(
        started.is_some(),
        &format!("tool saw the transition of {patch} to {target} start"),
        started.map_or("no transition_started event".to_owned(), describe),
    );

    let completed = log.find("transition_completed", &fields);
    let ordered = match (started, completed) {
        (Some(started), Some(completed)) => events::ts_ns(started) <= events::ts_ns(completed),
        _ => false,
    };
    let has_duration = completed
        .and_then(|event| event.get("duration_ms"))
        .is_some_and(Value::is_number);
    checks.check(
        ordered && has_duration,
        &format!("tool saw the transition of {patch} to {target} complete, with duration_ms"),
        completed.map_or("no transition_completed event".to_owned(), describe),
    );
    completed
}

/// Checks that the tool reported no task with an unreliable stack.
fn check_no_unreliable_stack(log: &EventLog, checks: &mut Checks) {
    let unreliable: Vec<&Value> = log
        .of_kind("task_blocked")
        .filter(|event| events::text(event, "reason") == Some("unreliable_stack"))
        .collect();
    checks.check(
        unreliable.is_empty(),
        "tool reported no task with an unreliable stack",
        match unreliable.first() {
            Some(event) => format!("{} event(s), first: {}", unreliable.len(), describe(event)),
            None => "0 task_blocked events with reason unreliable_stack".to_owned(),
        },
    );
}

/// Checks that no thread of the tool was caught running by the kernel's
/// check of the tasks: the tool wakes between passes, not during them.
fn check_tool_never_blocks(log: &EventLog, checks: &mut Checks) {
    let own: Vec<&Value> = log
        .of_kind("task_blocked")
        .filter(|event| {
            events::text(event, "comm")
                .is_some_and(|comm| comm == "livepatch-tui" || comm.starts_with("tokio"))
        })
        .collect();
    checks.check(
        own.is_empty(),
        "no thread of the tool blocked a transition",
        match own.first() {
            Some(event) => format!("{} event(s), first: {}", own.len(), describe(event)),
            None => "0 task_blocked events name the tool's threads".to_owned(),
        },
    );
}

/// Checks that the kernel logged no "has an unreliable stack" line in the scenario.
fn check_dmesg_no_unreliable_stack(output: &ScenarioOutput, checks: &mut Checks) {
    let received = output.files.contains_key("dmesg");
    let lines = dmesg_lines(output, "has an unreliable stack");
    checks.check(
        received && lines.is_empty(),
        "kernel logged no unreliable stack",
        match lines.first() {
            Some(line) => format!("{} line(s), first: {line}", lines.len()),
            None if received => "0 dmesg lines \"has an unreliable stack\"".to_owned(),
            None => "no dmesg excerpt received".to_owned(),
        },
    );
}

/// Checks that dmesg contains a line with `needle`, and shows the first such line.
fn check_dmesg_contains(
    output: &ScenarioOutput,
    checks: &mut Checks,
    description: &str,
    needle: &str,
) {
    let lines = dmesg_lines(output, needle);
    checks.check(
        !lines.is_empty(),
        description,
        lines
            .first()
            .map_or(format!("no dmesg line contains {needle:?}"), |line| {
                line.to_string()
            }),
    );
}

//! Reading what the validator reported: the JSON of `livepatch-tui check
//! --format json` (with or without `--module`) that a guest script saved, and the
//! `finding` events the log writes after each inventory.

use serde_json::Value;

use super::{Checks, describe};
use crate::events::{self, EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

/// One run of `check --format json`, saved by the guest's `check_module` or
/// `check_loaded` helper as the file NAME with the note `NAME_exit`.
pub struct CheckRun {
    pub name: String,
    /// The parsed output, or why it could not be parsed.
    pub json: Result<Value, String>,
    /// The process's exit code, from the note.
    pub exit: Option<i64>,
}

impl CheckRun {
    pub fn read(output: &ScenarioOutput, name: &str) -> Self {
        let text = output.file(name).trim();
        let json = if text.is_empty() {
            let stderr = output.file(&format!("{name}-stderr")).trim();
            Err(format!("no output; stderr: {stderr:?}"))
        } else {
            serde_json::from_str(text).map_err(|error| format!("invalid JSON {text:?}: {error}"))
        };
        let exit = output
            .note(&format!("{name}_exit"))
            .and_then(|code| code.trim().parse().ok());
        Self {
            name: name.to_owned(),
            json,
            exit,
        }
    }

    /// Names in the string array `key` of the output, e.g. `replaces`.
    pub fn names(&self, key: &str) -> Option<Vec<String>> {
        let array = self.json.as_ref().ok()?.get(key)?.as_array()?;
        array
            .iter()
            .map(|value| value.as_str().map(str::to_owned))
            .collect()
    }

    pub fn findings(&self) -> Vec<&Value> {
        self.json
            .as_ref()
            .ok()
            .and_then(|json| json.get("findings"))
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |findings| findings.iter().collect())
    }

    /// Evidence for a check: the exit code and a summary of the output, or why
    /// the output is missing.
    pub fn evidence(&self) -> String {
        let exit = self
            .exit
            .map_or("missing".to_owned(), |code| code.to_string());
        let json = match &self.json {
            Ok(json) => json,
            Err(reason) => return format!("{}: exit {exit}, {reason}", self.name),
        };
        let mut parts = vec![format!("{}: exit {exit}", self.name)];
        for key in ["replaces", "refused"] {
            if let Some(names) = self.names(key) {
                parts.push(format!("{key} {names:?}"));
            }
        }
        let findings: Vec<String> = self.findings().into_iter().map(summarize_finding).collect();
        parts.push(format!("findings {findings:?}"));
        if json.get("findings").is_none() {
            parts.push(format!("output {json}"));
        }
        parts.join(", ")
    }

    /// Checks the exit code of the process and the `exit_code` field it printed.
    pub fn check_exit(&self, checks: &mut Checks, expected: i64, description: &str) {
        let printed = self
            .json
            .as_ref()
            .ok()
            .and_then(|json| json.get("exit_code"))
            .and_then(Value::as_i64);
        checks.check(
            self.exit == Some(expected) && printed == Some(expected),
            description,
            format!(
                "expected {expected}; printed exit_code {}; {}",
                printed.map_or("missing".to_owned(), |code| code.to_string()),
                self.evidence()
            ),
        );
    }

    /// Checks that `--module` output lists exactly `expected` (in any order) under
    /// `replaces`.
    pub fn check_replaces(&self, checks: &mut Checks, expected: &[&str], description: &str) {
        let mut replaces = self.names("replaces");
        if let Some(names) = replaces.as_mut() {
            names.sort();
        }
        let mut expected_names: Vec<String> =
            expected.iter().map(|name| name.to_string()).collect();
        expected_names.sort();
        checks.check(
            replaces.as_ref() == Some(&expected_names),
            description,
            format!("expected replaces {expected_names:?}; {}", self.evidence()),
        );
    }

    /// Checks that `--module` output has an empty `refused` list.
    pub fn check_not_refused(&self, checks: &mut Checks, description: &str) {
        let refused = self.names("refused");
        checks.check(
            refused.as_ref().is_some_and(Vec::is_empty),
            description,
            self.evidence(),
        );
    }
}

/// Formats a finding in one line: rule, what it is about, and the patches it names.
pub fn summarize_finding(finding: &Value) -> String {
    let subject = events::text(finding, "function")
        .map(str::to_owned)
        .or_else(|| {
            finding
                .get("state_id")
                .and_then(Value::as_u64)
                .map(|id| format!("state {id}"))
        })
        .unwrap_or_else(|| events::text(finding, "message").unwrap_or("?").to_owned());
    format!(
        "{} {subject} {:?}",
        events::text(finding, "rule").unwrap_or("?"),
        finding_patches(finding)
    )
}

/// Names in the `patches` array of a finding.
pub fn finding_patches(finding: &Value) -> Vec<&str> {
    finding
        .get("patches")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |patches| {
            patches.iter().filter_map(Value::as_str).collect()
        })
}

/// Whether a finding has rule `rule`, and names each of `patches` among its
/// patches and each of `words` in its function or message.
pub fn finding_matches(finding: &Value, rule: &str, patches: &[&str], words: &[&str]) -> bool {
    let named = finding_patches(finding);
    let function = events::text(finding, "function").unwrap_or("");
    let message = events::text(finding, "message").unwrap_or("");
    events::text(finding, "rule") == Some(rule)
        && patches.iter().all(|patch| named.contains(patch))
        && words
            .iter()
            .all(|word| function.contains(word) || message.contains(word))
}

/// An inventory event of the log and the findings written right after it.
pub struct Snapshot<'a> {
    pub inventory: &'a Value,
    pub findings: Vec<&'a Value>,
}

impl Snapshot<'_> {
    pub fn ts_ns(&self) -> u64 {
        ts_ns(self.inventory)
    }

    /// Formats its findings in one line each, for evidence.
    pub fn rules(&self) -> Vec<String> {
        self.findings
            .iter()
            .map(|finding| summarize_finding(finding))
            .collect()
    }
}

/// Pairs each inventory of the log with the findings that follow it. The log writes a
/// finding only right after its inventory, with the same timestamp.
pub fn snapshots(log: &EventLog) -> Vec<Snapshot<'_>> {
    let mut snapshots: Vec<Snapshot> = Vec::new();
    for event in &log.events {
        match events::text(event, "kind") {
            Some("inventory") => snapshots.push(Snapshot {
                inventory: event,
                findings: Vec::new(),
            }),
            Some("finding") => {
                if let Some(last) = snapshots.last_mut() {
                    last.findings.push(event);
                }
            }
            _ => {}
        }
    }
    snapshots
}

/// Returns the latest inventory, with its findings, written at or before `at_ns`.
pub fn snapshot_at<'a>(snapshots: &'a [Snapshot<'a>], at_ns: u64) -> Option<&'a Snapshot<'a>> {
    snapshots
        .iter()
        .rev()
        .find(|snapshot| snapshot.ts_ns() <= at_ns)
}

/// Converts a note in seconds since boot (from /proc/uptime) to CLOCK_MONOTONIC
/// nanoseconds, the clock of the events. The two agree in a guest that never
/// suspends; the uptime has 10 ms resolution.
pub fn note_ns(output: &ScenarioOutput, key: &str) -> Option<u64> {
    output
        .note_f64(key)
        .map(|seconds| (seconds * 1e9).round() as u64)
}

/// Finds the object `object` of the patch `patch` in an inventory.
pub fn inventory_object<'a>(inventory: &'a Value, patch: &str, object: &str) -> Option<&'a Value> {
    events::inventory_patch(inventory, patch)?
        .get("objects")?
        .as_array()?
        .iter()
        .find(|entry| events::text(entry, "name") == Some(object))
}

/// Checks the `replaced` list of a `patches_replaced` event, in any order.
pub fn check_replaced_list(checks: &mut Checks, event: &Value, expected: &[&str]) {
    let mut replaced: Vec<&str> = event
        .get("replaced")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |names| {
            names.iter().filter_map(Value::as_str).collect()
        });
    replaced.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    checks.check(
        replaced == expected,
        &format!("log: patches_replaced lists {}", expected.join(" and ")),
        describe(event),
    );
}

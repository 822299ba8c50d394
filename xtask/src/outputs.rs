//! The guest-to-host data channel: a second serial port (ttyS1) that carries the
//! scenario results, kept apart from the kernel console on ttyS0.
//!
//! The guest frames everything in marker lines that start with `@@LAB `:
//!
//! ```text
//! @@LAB boot                    /init has mounted the file systems
//! @@LAB begin <scenario> <file> the lines of <file> follow
//! @@LAB end <scenario> <file>
//! @@LAB status <scenario> <code> the scenario script exited with <code>
//! @@LAB done                    all scenarios ran; the guest powers off
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

pub const MARKER: &str = "@@LAB ";

/// Files and exit code one scenario sent back.
#[derive(Default)]
pub struct ScenarioOutput {
    /// File contents by guest file name, e.g. "jsonl", "notes", "dmesg", "log".
    pub files: BTreeMap<String, String>,
    /// Exit code of the scenario script, or None if the guest never reported it.
    pub exit_code: Option<i32>,
}

impl ScenarioOutput {
    pub fn file(&self, name: &str) -> &str {
        self.files.get(name).map_or("", String::as_str)
    }

    /// Value of `key` in the `notes` file, which contains `key=value` lines.
    pub fn note(&self, key: &str) -> Option<&str> {
        self.file("notes").lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            (name == key).then_some(value)
        })
    }

    /// Numeric value of a note, or None if it is missing or not a number.
    pub fn note_f64(&self, key: &str) -> Option<f64> {
        self.note(key)?.trim().parse().ok()
    }
}

/// Everything read from the data channel.
#[derive(Default)]
pub struct LabOutput {
    pub scenarios: BTreeMap<String, ScenarioOutput>,
    pub booted: bool,
    /// Whether the guest wrote `@@LAB done`, i.e. ran every scenario.
    pub finished: bool,
}

/// Parses the data channel. A serial port in cooked mode may add `\r` before each
/// `\n`, so trailing `\r` is dropped from every line.
pub fn parse(data: &str) -> LabOutput {
    let mut output = LabOutput::default();
    // The file currently being received: (scenario, file name, lines).
    let mut open_file: Option<(String, String, Vec<&str>)> = None;

    for raw_line in data.lines() {
        let line = raw_line.trim_end_matches('\r');
        let Some(marker) = line.strip_prefix(MARKER) else {
            if let Some((_, _, lines)) = open_file.as_mut() {
                lines.push(line);
            }
            continue;
        };

        let words: Vec<&str> = marker.split_whitespace().collect();
        match words.as_slice() {
            ["boot", ..] => output.booted = true,
            ["done"] => output.finished = true,
            ["begin", scenario, file] => {
                open_file = Some((scenario.to_string(), file.to_string(), Vec::new()));
            }
            ["end", ..] => {
                if let Some((scenario, file, lines)) = open_file.take() {
                    let mut text = lines.join("\n");
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    let scenario_output = output.scenarios.entry(scenario).or_default();
                    scenario_output.files.insert(file, text);
                }
            }
            ["status", scenario, code] => {
                let scenario_output = output.scenarios.entry(scenario.to_string()).or_default();
                scenario_output.exit_code = code.parse().ok();
            }
            _ => {}
        }
    }

    // A file cut off by a guest crash or timeout is kept under another name, so that
    // no check mistakes it for a complete one.
    if let Some((scenario, file, lines)) = open_file {
        let scenario_output = output.scenarios.entry(scenario).or_default();
        scenario_output
            .files
            .insert(format!("{file}.partial"), lines.join("\n"));
    }
    output
}

/// Writes each received file to `<dir>/<scenario>.<file>`, replacing earlier results.
pub fn write_files(output: &LabOutput, dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("failed to remove {}", dir.display()))?;
    }
    fs::create_dir_all(dir)?;
    for (scenario, scenario_output) in &output.scenarios {
        for (file, text) in &scenario_output.files {
            let path = dir.join(format!("{scenario}.{file}"));
            fs::write(&path, text)
                .with_context(|| format!("failed to write {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = "noise before\r\n\
        @@LAB boot\r\n\
        @@LAB begin sample jsonl\r\n\
        {\"v\":1}\r\n\
        {\"v\":2}\r\n\
        @@LAB end sample jsonl\r\n\
        @@LAB begin sample notes\n\
        patch_ms=120\n\
        @@LAB end sample notes\n\
        @@LAB status sample 0\n\
        @@LAB begin blocked notes\n\
        half=1\n";

    #[test]
    fn parse_splits_files_by_scenario() {
        let output = parse(DATA);
        let sample = &output.scenarios["sample"];
        assert_eq!(sample.file("jsonl"), "{\"v\":1}\n{\"v\":2}\n");
        assert_eq!(sample.note("patch_ms"), Some("120"));
        assert_eq!(sample.note_f64("patch_ms"), Some(120.0));
        assert_eq!(sample.exit_code, Some(0));
    }

    #[test]
    fn parse_keeps_unterminated_file_apart() {
        let output = parse(DATA);
        assert!(output.booted);
        assert!(!output.finished);
        let blocked = &output.scenarios["blocked"];
        assert_eq!(blocked.note("half"), None);
        assert_eq!(blocked.file("notes.partial"), "half=1");
        assert_eq!(blocked.exit_code, None);
    }
}

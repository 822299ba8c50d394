//! The binary run as a user would, against fixture trees and recordings.
//! None of these need root or a livepatch kernel.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const BINARY: &str = env!("CARGO_BIN_EXE_livepatch-tui");

fn run(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("livepatch-tui-cli-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a patch directory as the kernel's sysfs shows it.
fn write_patch(root: &Path, name: &str, attributes: &[(&str, &str)], functions: &[&str]) {
    let object = root.join(name).join("vmlinux");
    fs::create_dir_all(&object).unwrap();
    fs::write(object.join("patched"), "1\n").unwrap();
    for function in functions {
        fs::create_dir_all(object.join(function)).unwrap();
    }
    for (attribute, value) in attributes {
        fs::write(root.join(name).join(attribute), format!("{value}\n")).unwrap();
    }
}

#[test]
fn check_clean_tree_exits_zero() {
    let root = temp_dir("clean");
    write_patch(
        &root,
        "a",
        &[("enabled", "1"), ("transition", "0"), ("replace_set", "1")],
        &["f,0"],
    );
    write_patch(
        &root,
        "b",
        &[("enabled", "1"), ("transition", "0"), ("replace_set", "2")],
        &["g,0"],
    );
    let output = run(&["check", "--sysfs-root", root.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("2 livepatch(es) loaded"));
    assert!(stdout(&output).contains("no findings"));
}

#[test]
fn check_cross_set_overlap_exits_two_as_json() {
    let root = temp_dir("cross-set");
    write_patch(
        &root,
        "a",
        &[("enabled", "1"), ("transition", "0"), ("replace_set", "1")],
        &["f,0"],
    );
    write_patch(
        &root,
        "b",
        &[("enabled", "1"), ("transition", "0"), ("replace_set", "2")],
        &["f,0"],
    );
    let output = run(&[
        "check",
        "--format",
        "json",
        "--sysfs-root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&output)).expect("one JSON object");
    assert_eq!(report["exit_code"], 2);
    assert_eq!(report["findings"][0]["rule"], "cross-set-function");
    assert_eq!(report["findings"][0]["function"], "vmlinux:f,0");
}

#[test]
fn check_stacked_patches_exits_one() {
    let root = temp_dir("stacked");
    write_patch(
        &root,
        "a",
        &[("enabled", "1"), ("transition", "0")],
        &["f,0"],
    );
    write_patch(
        &root,
        "b",
        &[("enabled", "1"), ("transition", "0")],
        &["f,0"],
    );
    let output = run(&["check", "--sysfs-root", root.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("stacked-function"));
}

#[test]
fn check_without_livepatch_says_so() {
    let output = run(&["check", "--sysfs-root", "/nonexistent/livepatch"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("CONFIG_LIVEPATCH"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn log_from_corrupt_recording_skips_bad_lines() {
    let dir = temp_dir("corrupt");
    let log = dir.join("corrupt.jsonl");
    let good = r#"{"v":1,"ts_ns":5,"kind":"events_lost","count":2}"#;
    fs::write(
        &log,
        format!("{good}\n{{broken\n{{\"v\":9,\"ts_ns\":1,\"kind\":\"x\"}}\n{good}\n"),
    )
    .unwrap();
    let output = run(&["log", "--from", log.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).lines().count(),
        2,
        "both good lines are written"
    );
    let messages = stderr(&output);
    assert!(
        messages.contains("corrupt.jsonl:2: skipped: not JSON"),
        "{messages}"
    );
    assert!(
        messages.contains("corrupt.jsonl:3: skipped: unsupported contract version"),
        "{messages}"
    );
}

#[test]
fn replay_missing_file_names_it() {
    let output = run(&["replay", "/nonexistent/recording.jsonl"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("/nonexistent/recording.jsonl"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn live_needs_livepatch_kernel_or_root() {
    // Whatever this machine lacks, the message names it and no probe loads.
    let output = run(&["log"]);
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    let names_requirement = [
        "CONFIG_LIVEPATCH",
        "CONFIG_DEBUG_INFO_BTF",
        "run it with sudo",
    ]
    .iter()
    .any(|needle| message.contains(needle));
    assert!(names_requirement, "{message}");
}

#[test]
fn non_root_user_told_to_use_sudo() {
    // setpriv (util-linux) drops to nobody; skipped where it is missing.
    let probe = Command::new("setpriv").arg("--version").output();
    if probe.is_err() || effective_uid() != 0 {
        eprintln!("skipped: needs setpriv and root to drop to another user");
        return;
    }
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BINARY,
            "log",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    // On a machine without livepatch that requirement is named first.
    assert!(
        message.contains("run it with sudo") || message.contains("CONFIG_LIVEPATCH"),
        "{message}"
    );
}

fn effective_uid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .unwrap_or(u32::MAX)
}

#[test]
fn invalid_speed_rejected_by_parser() {
    let output = run(&["demo", "--speed", "0"]);
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr(&output).contains("out of range"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn replace_flag_needs_module() {
    let output = run(&["check", "--replace"]);
    assert_eq!(
        output.status.code(),
        Some(64),
        "a usage error, not check's 2"
    );
    assert!(stderr(&output).contains("--module"), "{}", stderr(&output));
}

#[test]
fn check_set_with_two_enabled_warns() {
    let root = temp_dir("set-multiple");
    for name in ["a1", "a2"] {
        write_patch(
            &root,
            name,
            &[("enabled", "1"), ("transition", "0"), ("replace_set", "1")],
            &[if name == "a1" { "f,0" } else { "g,0" }],
        );
    }
    let output = run(&["check", "--sysfs-root", root.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("set-multiple-enabled"), "{text}");
    assert!(
        text.contains("replace set 1 has 2 enabled patches (a1, a2)"),
        "{text}"
    );
}

#[test]
fn check_module_missing_file_named_first() {
    let output = run(&["check", "--module", "/nonexistent/patch.ko"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("failed to read /nonexistent/patch.ko"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_json_reports_unreadable_kernel() {
    let output = run(&[
        "check",
        "--format",
        "json",
        "--sysfs-root",
        "/nonexistent/livepatch",
    ]);
    assert_eq!(output.status.code(), Some(3));
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&output)).expect("one JSON object");
    assert_eq!(report["exit_code"], 3);
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|error| error.contains("no livepatch support")),
        "{report}"
    );
}

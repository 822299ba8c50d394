//! Checks of the "nonroot" scenario: the tool run by an unprivileged user, with two
//! stacked patches loaded.

use super::Checks;
use super::verdicts::CheckRun;
use crate::outputs::ScenarioOutput;

/// Exit code of the tool when it cannot read the kernel.
const CANNOT_READ: &str = "3";
const SUDO_HINT: &str = "run it with sudo";

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    if !with_tool {
        return;
    }
    let user = output.file("user_id").trim();
    checks.check(
        user == "1000",
        "commands ran as the unprivileged user (uid 1000)",
        format!("id -u printed {user:?}"),
    );

    for (name, command) in [
        ("user_log", "livepatch-tui log"),
        ("user_dashboard", "livepatch-tui (the dashboard)"),
        ("user_probes", "livepatch-tui probes"),
    ] {
        let exit = output.note(&format!("{name}_exit")).unwrap_or("missing");
        let stderr = output.file(&format!("{name}-stderr")).trim();
        checks.check(
            exit == CANNOT_READ && stderr.contains(SUDO_HINT),
            &format!("{command} as non-root: exit code 3 and says to run it with sudo"),
            format!("exit {exit}, stderr {stderr:?}"),
        );
    }

    compare_with_root(output, checks, "root_check", "user_check", "check");
    let root = CheckRun::read(output, "root_check");
    root.check_exit(
        checks,
        1,
        "check as root: exit code 1 (stacked-function warnings)",
    );
    compare_with_root(
        output,
        checks,
        "root_check_module",
        "user_check_module",
        "check --module versions_cumulative.ko",
    );

    let text = output.file("user_check_text");
    let exit = output.note("user_check_text_exit").unwrap_or("missing");
    checks.check(
        exit == "1" && text.contains("stacked-function"),
        "check (text) as non-root: exit code 1 and lists stacked-function",
        format!("exit {exit}, output {:?}", text.trim()),
    );
}

/// Checks that the unprivileged user's run printed what root's did, with the same
/// exit code.
fn compare_with_root(
    output: &ScenarioOutput,
    checks: &mut Checks,
    root: &str,
    user: &str,
    command: &str,
) {
    let root = CheckRun::read(output, root);
    let user = CheckRun::read(output, user);
    let same = root.json.is_ok() && root.json == user.json && root.exit == user.exit;
    checks.check(
        same,
        &format!("{command} as non-root: same output and exit code as root"),
        format!("root {}; non-root {}", root.evidence(), user.evidence()),
    );
}

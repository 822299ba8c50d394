//! The dashboard binary in a real pseudo-terminal (tmux), replaying a
//! recorded log: what a person sees, read back from the screen.

use std::{
    path::Path,
    process::Command,
    thread::sleep,
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_livepatch-tui");

/// A tmux session that is killed when dropped.
struct Session {
    name: String,
}

impl Session {
    fn start(name: &str, width: u16, height: u16, command: &str) -> Self {
        let _ = tmux(&["kill-session", "-t", name]);
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(command)
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        Self {
            name: name.to_owned(),
        }
    }

    fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name]).unwrap_or_default()
    }

    /// Waits until the screen contains `text`, or panics with the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared; screen:\n{screen}"
            );
            sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.name, keys]).expect("send-keys");
    }

    fn alive(&self) -> bool {
        tmux(&["has-session", "-t", &self.name]).is_some()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.name]);
    }
}

fn tmux(args: &[&str]) -> Option<String> {
    let output = Command::new("tmux").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn tmux_available() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tmux is missing: `cargo xtask setup --lab` installs it"
    );
    eprintln!("skipped: tmux is not installed");
    false
}

fn recording() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo.jsonl");
    path.display().to_string()
}

#[test]
fn replay_shows_blocked_task_then_quits() {
    if !tmux_available() {
        return;
    }
    // Fast enough to reach the blocked task quickly, then paused to read it.
    let command = format!(
        "{BINARY} replay {} --speed 1; echo exited $?; sleep 30",
        recording()
    );
    let session = Session::start("lp-pty-replay", 120, 40, &command);

    let screen = session.wait_for("sleeping_in_function");
    assert!(screen.contains("replay"), "{screen}");
    assert!(screen.contains("events lost"), "{screen}");

    session.keys("?");
    let help = session.wait_for("show or hide this help");
    assert!(help.contains("quit"), "{help}");
    // `?` again closes it; Escape would make the terminal wait for the
    // rest of an escape sequence and swallow the next key.
    session.keys("?");
    sleep(Duration::from_millis(300));
    assert!(!session.screen().contains("show or hide this help"));

    session.keys("q");
    let after = session.wait_for("exited 0");
    assert!(!after.contains("panicked"), "{after}");
    assert!(session.alive());
}

#[test]
fn small_terminal_still_readable() {
    if !tmux_available() {
        return;
    }
    let command = format!("{BINARY} replay {} --speed 20; sleep 30", recording());
    let session = Session::start("lp-pty-small", 80, 24, &command);
    let screen = session.wait_for("events lost");
    assert!(screen.lines().count() <= 24);
    session.keys("q");
}

#[test]
fn demo_runs_without_root_or_kernel_support() {
    if !tmux_available() {
        return;
    }
    let command = format!("{BINARY} demo --speed 50; echo exited $?; sleep 30");
    let session = Session::start("lp-pty-demo", 120, 40, &command);
    let screen = session.wait_for("demo");
    assert!(screen.contains("kernel 6.1"), "{screen}");
    session.wait_for("transition completed");
    session.keys("q");
    session.wait_for("exited 0");
}

//! The metrics endpoint against a real Prometheus: `livepatch-tui log
//! --from RECORDING --metrics` is scraped once a second with the shipped
//! alerting rules loaded, and Prometheus's HTTP API is queried on loopback.
//!
//! Needs `prometheus` and `promtool` on PATH (Debian package `prometheus`).
//! Without them the tests are skipped with a message, unless `CI=true`,
//! where they fail.

use std::{
    fs,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// A hand-written log of a blocked transition (see tests/data/README.md).
const RECORDING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/blocked-transition.jsonl"
);
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/prometheus/livepatch-rules.yml"
);
const RULES_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/prometheus/livepatch-rules.test.yml"
);

/// The transition in the recording runs for 89 s before its last event.
/// The test lowers the shipped rule's 600 s threshold to this.
const TEST_STUCK_THRESHOLD: &str = "> 60";

/// Time allowed for Prometheus to start, scrape and evaluate the rules.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn prometheus_scrapes_recording() {
    let Some(prometheus) = required_program("prometheus") else {
        return;
    };
    let dir = TempDir::new("scrape");
    let tool = start_tool(&dir);
    let server = start_prometheus(&prometheus, &dir, tool.address);

    server.wait_until("the first scrape of livepatch-tui", || {
        server.query("up{job=\"livepatch-tui\"} == 1").len() == 1
            && !server.query("livepatch_patches_loaded").is_empty()
    });

    let event_lines = fs::read_to_string(RECORDING)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count() as f64;
    let expected = [
        ("livepatch_patches_loaded", 2.0),
        ("count(livepatch_patch_info)", 2.0),
        ("sum(livepatch_patch_enabled)", 2.0),
        ("sum(livepatch_patch_forced)", 0.0),
        ("livepatch_transition_in_progress", 1.0),
        (
            "livepatch_transition_info{patch=\"livepatch_busy\",target=\"patched\"}",
            1.0,
        ),
        ("livepatch_transition_elapsed_seconds", 89.00012),
        ("livepatch_transition_tasks_left", 2.0),
        ("sum(livepatch_transitions_completed_total)", 1.0),
        (
            "livepatch_transitions_completed_total{target=\"patched\",forced=\"false\"}",
            1.0,
        ),
        ("livepatch_transition_duration_seconds_count", 1.0),
        ("livepatch_transition_duration_seconds_sum", 1.51),
        (
            "livepatch_tasks_blocked{reason=\"sleeping_in_function\"}",
            1.0,
        ),
        ("livepatch_tasks_blocked{reason=\"unreliable_stack\"}", 1.0),
        ("livepatch_tasks_blocked{reason=\"running\"}", 0.0),
        ("livepatch_tasks_blocked{reason=\"unknown\"}", 0.0),
        (
            "livepatch_findings{rule=\"stacked-function\",severity=\"warning\"}",
            1.0,
        ),
        ("livepatch_events_lost_total", 12.0),
        ("livepatch_probes{state=\"missing\"}", 1.0),
        ("livepatch_probes_attached", 18.0),
        ("sum(livepatch_events_total)", event_lines),
    ];
    for (query, value) in expected {
        let result = server.query(query);
        assert_eq!(
            result.len(),
            1,
            "{query}: expected one series, got {result:?}"
        );
        let got = sample_value(&result[0]);
        assert!(
            (got - value).abs() < 1e-9,
            "{query}: expected {value}, got {got}"
        );
    }

    tool.stop_with_sigterm();
}

#[test]
fn stuck_transition_alert_fires() {
    let Some(prometheus) = required_program("prometheus") else {
        return;
    };
    let dir = TempDir::new("alerts");
    let tool = start_tool(&dir);
    let server = start_prometheus(&prometheus, &dir, tool.address);

    let firing = |name: &str| {
        server
            .alerts()
            .into_iter()
            .find(|alert| alert["labels"]["alertname"] == name && alert["state"] == "firing")
    };
    server.wait_until("LivepatchTransitionStuck firing", || {
        firing("LivepatchTransitionStuck").is_some()
    });
    let stuck = firing("LivepatchTransitionStuck").unwrap();
    assert_eq!(stuck["labels"]["patch"], "livepatch_busy");
    assert_eq!(stuck["labels"]["target"], "patched");
    assert_eq!(stuck["labels"]["severity"], "warning");

    server.wait_until("LivepatchProbesMissing firing", || {
        firing("LivepatchProbesMissing").is_some()
    });

    // The recording's lost events are in the counter from the first scrape
    // on, and the counter never grows while Prometheus watches a finished
    // recording: no increase, no alert.
    let names: Vec<String> = server
        .alerts()
        .iter()
        .map(|alert| {
            alert["labels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        !names.iter().any(|name| name == "LivepatchEventsLost"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|name| name == "LivepatchForced"),
        "{names:?}"
    );
}

#[test]
fn exposition_passes_promtool_lint() {
    let Some(promtool) = required_program("promtool") else {
        return;
    };
    let dir = TempDir::new("lint");
    let tool = start_tool(&dir);

    let (status, body) = http_get(tool.address, "/metrics");
    assert_eq!(status, 200, "{body}");

    let mut lint = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = lint.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{complaints}"
    );
    assert!(
        complaints.trim().is_empty(),
        "promtool check metrics warns:\n{complaints}"
    );
}

#[test]
fn shipped_rules_pass_promtool() {
    let Some(promtool) = required_program("promtool") else {
        return;
    };
    let check = Command::new(&promtool)
        .args(["check", "rules", RULES])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let unit_tests = Command::new(&promtool)
        .args(["test", "rules", RULES_TESTS])
        .output()
        .unwrap();
    assert!(
        unit_tests.status.success(),
        "{}",
        String::from_utf8_lossy(&unit_tests.stdout)
    );
}

/// Finds `name` on PATH. When it is missing, the test is skipped with a
/// message, or fails under `CI=true`.
fn required_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let message = format!("{name} not found on PATH; install the Debian package prometheus");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
    }
    found
}

/// A directory under the target's test scratch space, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(purpose: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "prometheus-{purpose}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process, killed on drop. Its stderr goes to `log`.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(command: &mut Command, log: PathBuf) -> Self {
        let stderr = fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {command:?}: {error}"));
        Self { child, log }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Tool {
    process: Process,
    address: SocketAddr,
}

impl Tool {
    /// Sends SIGTERM, as systemd stops the service, and expects a clean
    /// exit.
    fn stop_with_sigterm(mut self) {
        let pid = self.process.child.id() as libc::pid_t;
        // SAFETY: kill() with a pid this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = wait_for_exit(&mut self.process.child, Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "exit after SIGTERM: {status:?}\n{}",
            self.process.log_tail()
        );
    }
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Starts `livepatch-tui log --from RECORDING --metrics` on a free loopback
/// port and waits until it accepts connections.
fn start_tool(dir: &TempDir) -> Tool {
    let address = free_loopback_address();
    let mut command = Command::new(env!("CARGO_BIN_EXE_livepatch-tui"));
    command
        .args([
            "log",
            "--from",
            RECORDING,
            "--metrics",
            &address.to_string(),
        ])
        .env("RUST_LOG", "info");
    let process = Process::spawn(&mut command, dir.path().join("livepatch-tui.log"));

    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(address).is_err() {
        assert!(
            Instant::now() < deadline,
            "livepatch-tui did not listen on {address}:\n{}",
            process.log_tail()
        );
        thread::sleep(Duration::from_millis(50));
    }
    Tool { process, address }
}

struct PrometheusServer {
    process: Process,
    address: SocketAddr,
}

/// Starts Prometheus on a free loopback port, scraping `target` every second
/// and evaluating the shipped rules, with a lowered threshold and no `for:`
/// delay, every second.
fn start_prometheus(prometheus: &Path, dir: &TempDir, target: SocketAddr) -> PrometheusServer {
    let shipped = fs::read_to_string(RULES).unwrap();
    fs::write(dir.path().join("rules.yml"), rules_for_test(&shipped)).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - rules.yml\n\
         scrape_configs:\n  - job_name: livepatch-tui\n    static_configs:\n      - targets: [\"{target}\"]\n"
    );
    let config_path = dir.path().join("prometheus.yml");
    fs::write(&config_path, config).unwrap();

    let address = free_loopback_address();
    let mut command = Command::new(prometheus);
    command.arg(format!("--config.file={}", config_path.display()));
    command.arg(format!(
        "--storage.tsdb.path={}",
        dir.path().join("data").display()
    ));
    command.arg(format!("--web.listen-address={address}"));
    let process = Process::spawn(&mut command, dir.path().join("prometheus.log"));
    PrometheusServer { process, address }
}

/// Returns the shipped rules with the stuck-transition threshold lowered to
/// [`TEST_STUCK_THRESHOLD`] and every `for:` shortened to one second.
fn rules_for_test(shipped: &str) -> String {
    assert_eq!(
        shipped.matches("> 600").count(),
        1,
        "the stuck-transition threshold changed; update this test"
    );
    let lowered = shipped.replacen("> 600", TEST_STUCK_THRESHOLD, 1);
    let shortened: Vec<String> = lowered
        .lines()
        .map(|line| match line.find("for:") {
            Some(indent) if line[..indent].trim().is_empty() => {
                format!("{}for: 1s", &line[..indent])
            }
            _ => line.to_owned(),
        })
        .collect();
    shortened.join("\n") + "\n"
}

impl PrometheusServer {
    /// Polls `ready` until it returns true. Fails with Prometheus's log
    /// after [`PROMETHEUS_TIMEOUT`].
    fn wait_until(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + PROMETHEUS_TIMEOUT;
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "timed out after {PROMETHEUS_TIMEOUT:?} waiting for {what}; Prometheus log:\n{}",
                self.process.log_tail()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Runs an instant query and returns its result vector, which is empty
    /// while Prometheus is not up yet.
    fn query(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        self.api(&path)["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn alerts(&self) -> Vec<Value> {
        self.api("/api/v1/alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `data` of an API response, or null when the request failed.
    fn api(&self, path: &str) -> Value {
        let Some((status, body)) = try_http_get(self.address, path) else {
            return Value::Null;
        };
        if status != 200 {
            return Value::Null;
        }
        let response: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: invalid JSON ({e}): {body}"));
        assert_eq!(response["status"], "success", "{path}: {body}");
        response["data"].clone()
    }
}

fn sample_value(series: &Value) -> f64 {
    let text = series["value"][1]
        .as_str()
        .unwrap_or_else(|| panic!("no value in {series}"));
    text.parse()
        .unwrap_or_else(|_| panic!("value {text:?} is not a number"))
}

fn free_loopback_address() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap()
}

fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    try_http_get(address, path).unwrap_or_else(|| panic!("GET {path} on {address} failed"))
}

/// A GET over HTTP/1.0, so that the server neither keeps the connection
/// nor chunks the body. `None` when the connection fails.
fn try_http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;

    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Percent-encodes a query parameter: everything but RFC 3986's unreserved
/// characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

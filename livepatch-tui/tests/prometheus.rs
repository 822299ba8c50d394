//! The metrics endpoint against a real Prometheus: `livepatch-tui log
//! --from RECORDING --metrics` is scraped once a second with the shipped
//! alerting rules loaded, and Prometheus's HTTP API is queried on loopback.
//! The recording is a log that the tool wrote in the kernel lab, and the
//! values the tests expect are computed from its lines.
//!
//! Needs `prometheus` and `promtool` on PATH (Debian package `prometheus`).
//! Without them the tests are skipped with a message, unless `CI=true`,
//! where they fail.

use std::{
    collections::{BTreeMap, BTreeSet},
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

/// The tool's log of the lab's `blocked` scenario on Debian 12's 6.1
/// kernel (see tests/data/README.md).
const RECORDING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/blocked-lab.jsonl");
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/prometheus/livepatch-rules.yml"
);
const RULES_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/prometheus/livepatch-rules.test.yml"
);

/// The stuck-transition threshold of the rules under test, in seconds. The
/// shipped rule uses 600 s, but the lab's `blocked` scenario keeps its
/// transition in progress for only about 2 s (two checks of the held task,
/// a second apart). `stuck_transition_alert_fires` checks that the recorded
/// hold is longer than this threshold.
const TEST_STUCK_THRESHOLD_SECONDS: u32 = 1;

/// Time allowed for Prometheus to start, scrape and evaluate the rules.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(60);

/// The `reason` label values of `livepatch_tasks_blocked`, which the tool
/// exports even when their count is 0.
const BLOCK_REASONS: [&str; 4] = [
    "running",
    "sleeping_in_function",
    "unknown",
    "unreliable_stack",
];

/// The `target` label values of the transition counters, which the tool
/// exports even when their count is 0.
const TARGETS: [&str; 2] = ["patched", "unpatched"];

#[test]
fn prometheus_scrapes_recording() {
    let Some(prometheus) = required_program("prometheus") else {
        return;
    };
    let expected = Expected::from_log(&fs::read_to_string(RECORDING).unwrap());
    let dir = TempDir::new("scrape");
    let tool = start_tool(&dir, Path::new(RECORDING));
    let server = start_prometheus(&prometheus, &dir, tool.address);

    server.wait_for_first_scrape();
    assert_scrape_matches(&server, &expected);

    tool.stop_with_sigterm();
}

#[test]
fn stuck_transition_alert_fires() {
    let Some(prometheus) = required_program("prometheus") else {
        return;
    };
    // The recorded transition completes once the held task is released, so
    // the tool replays the part of the recording before that release.
    let held_log = lines_while_held(&fs::read_to_string(RECORDING).unwrap());
    let expected = Expected::from_log(&held_log);
    let transition = expected
        .transition
        .as_ref()
        .expect("the recording has no transition in progress before the held task switches");
    let elapsed = expected.elapsed_seconds();
    assert!(
        elapsed > f64::from(TEST_STUCK_THRESHOLD_SECONDS),
        "the recorded transition was held for {elapsed} s, not longer than the test's \
         stuck threshold of {TEST_STUCK_THRESHOLD_SECONDS} s"
    );

    let dir = TempDir::new("alerts");
    let held_path = dir.path().join("held.jsonl");
    fs::write(&held_path, &held_log).unwrap();
    let tool = start_tool(&dir, &held_path);
    let server = start_prometheus(&prometheus, &dir, tool.address);

    server.wait_for_first_scrape();
    assert_scrape_matches(&server, &expected);

    let firing = |name: &str| {
        server
            .alerts()
            .into_iter()
            .find(|alert| alert["labels"]["alertname"] == name && alert["state"] == "firing")
    };
    let expected_alerts = expected.alerts();
    server.wait_until(&format!("{expected_alerts:?} firing"), || {
        expected_alerts.iter().all(|name| firing(name).is_some())
    });

    let stuck = firing("LivepatchTransitionStuck").unwrap();
    assert_eq!(stuck["labels"]["patch"], transition.patch.as_str());
    assert_eq!(stuck["labels"]["target"], transition.target.as_str());
    assert_eq!(stuck["labels"]["severity"], "warning");
    let stuck_value: f64 = stuck["value"].as_str().unwrap().parse().unwrap();
    assert!(
        (stuck_value - elapsed).abs() < 1e-9,
        "LivepatchTransitionStuck value: expected {elapsed}, got {stuck_value}"
    );

    // Every rule of the group is evaluated at the same time, and a firing
    // alert has been evaluated twice, so an alert missing here is one whose
    // expression was false on the same data.
    let names: BTreeSet<String> = server
        .alerts()
        .iter()
        .map(|alert| {
            alert["labels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let expected_names: BTreeSet<String> = expected_alerts.iter().map(|&n| n.to_owned()).collect();
    assert_eq!(names, expected_names, "pending or firing alerts");
}

#[test]
fn exposition_passes_promtool_lint() {
    let Some(promtool) = required_program("promtool") else {
        return;
    };
    let held_log = lines_while_held(&fs::read_to_string(RECORDING).unwrap());
    let held_dir = TempDir::new("lint-held");
    let held_path = held_dir.path().join("held.jsonl");
    fs::write(&held_path, held_log).unwrap();

    // The whole recording ends with no transition in progress, and the part
    // before the release ends inside one, so the two expose different series.
    for recording in [Path::new(RECORDING), held_path.as_path()] {
        let dir = TempDir::new("lint");
        let tool = start_tool(&dir, recording);

        let (status, body) = http_get(tool.address, "/metrics");
        assert_eq!(status, 200, "{body}");

        let mut lint = Command::new(&promtool)
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
        let recording_path = recording.display();
        assert!(
            output.status.success(),
            "promtool check metrics failed on {recording_path}:\n{complaints}"
        );
        assert!(
            complaints.trim().is_empty(),
            "promtool check metrics warns on {recording_path}:\n{complaints}"
        );
    }
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

/// Parses the non-blank lines of a JSON Lines log.
fn records(log: &str) -> impl Iterator<Item = Value> + '_ {
    log.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line}", index + 1))
        })
}

/// Returns the lines of `log` before the first switch of a task that a
/// check reported `sleeping_in_function`: the log as the tool had written
/// it while that task held the transition.
fn lines_while_held(log: &str) -> String {
    let mut sleeping = BTreeSet::new();
    let mut prefix = String::new();
    for (line, record) in log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .zip(records(log))
    {
        let pid = record["pid"].as_u64();
        match record["kind"].as_str() {
            Some("task_blocked") if record["reason"] == "sleeping_in_function" => {
                sleeping.insert(pid);
            }
            Some("task_switched") if sleeping.contains(&pid) => return prefix,
            _ => {}
        }
        prefix.push_str(line);
        prefix.push('\n');
    }
    panic!(
        "no task reported sleeping_in_function switches later in {RECORDING}, \
         so the recording shows no held transition"
    );
}

/// The metric values a recording must produce, computed from its lines
/// without the tool's code.
///
/// NOTE: `transition_reversed` is not handled (the tool then switches tasks
/// back), because the recordings these tests replay have none.
#[derive(Debug, Default)]
struct Expected {
    /// Lines by `kind`.
    events: BTreeMap<String, f64>,
    /// Sum of the `count` of `events_lost` lines.
    events_lost: f64,
    /// `patches` of the latest inventory.
    patches: Vec<Value>,
    /// Patches named by a `transition_forced` line.
    forced_by_event: BTreeSet<String>,
    /// Latest `attached` by probe.
    probes: BTreeMap<String, bool>,
    /// Findings after the latest inventory, by rule and severity.
    findings: BTreeMap<Vec<String>, f64>,
    /// `transition_started` lines by target.
    started: BTreeMap<Vec<String>, f64>,
    /// `transition_completed` lines by target and whether they were forced.
    completed: BTreeMap<Vec<String>, f64>,
    /// Sum of the completed transitions' durations, in seconds.
    duration_sum_seconds: f64,
    /// Transitions completed.
    duration_count: f64,
    /// The transition in progress at the end of the log.
    transition: Option<ExpectedTransition>,
    /// The newest timestamp, which the tool measures a recording's elapsed
    /// transition time against.
    newest_ns: u64,
}

#[derive(Debug)]
struct ExpectedTransition {
    patch: String,
    target: String,
    started_ns: u64,
    forced: bool,
    passes: f64,
    /// `tasks_left` of the latest pass.
    tasks_left: f64,
    /// The reason of each task's latest failed check, by pid, for the tasks
    /// that have not switched since.
    blocked: BTreeMap<u64, String>,
}

impl Expected {
    fn from_log(log: &str) -> Self {
        let mut expected = Self::default();
        for record in records(log) {
            expected.apply(&record);
        }
        expected
    }

    fn apply(&mut self, record: &Value) {
        let text = |field: &str| {
            record[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field} in {record}"))
                .to_owned()
        };
        let kind = text("kind");
        *self.events.entry(kind.clone()).or_default() += 1.0;
        self.newest_ns = self.newest_ns.max(record["ts_ns"].as_u64().unwrap());

        match kind.as_str() {
            "events_lost" => self.events_lost += record["count"].as_f64().unwrap(),
            "inventory" => {
                self.patches = record["patches"].as_array().unwrap().clone();
                self.findings.clear();
            }
            "finding" => {
                *self
                    .findings
                    .entry(vec![text("rule"), text("severity")])
                    .or_default() += 1.0;
            }
            "probe_status" => {
                self.probes
                    .insert(text("probe"), record["attached"].as_bool().unwrap());
            }
            "transition_started" => {
                *self.started.entry(vec![text("target")]).or_default() += 1.0;
                self.transition = Some(ExpectedTransition {
                    patch: text("patch"),
                    target: text("target"),
                    started_ns: record["ts_ns"].as_u64().unwrap(),
                    forced: false,
                    passes: 0.0,
                    tasks_left: 0.0,
                    blocked: BTreeMap::new(),
                });
            }
            "transition_forced" => {
                self.forced_by_event.insert(text("patch"));
                if let Some(transition) = &mut self.transition {
                    transition.forced = true;
                }
            }
            "transition_pass" => {
                if let Some(transition) = &mut self.transition {
                    transition.passes += 1.0;
                    transition.tasks_left = record["tasks_left"].as_f64().unwrap();
                }
            }
            "task_blocked" => {
                if let Some(transition) = &mut self.transition {
                    let pid = record["pid"].as_u64().unwrap();
                    transition.blocked.insert(pid, text("reason"));
                }
            }
            "task_switched" => {
                if let Some(transition) = &mut self.transition {
                    transition.blocked.remove(&record["pid"].as_u64().unwrap());
                }
            }
            "transition_completed" => {
                let forced_earlier = self.transition.as_ref().is_some_and(|t| t.forced);
                let forced = record["forced"].as_bool().unwrap() || forced_earlier;
                *self
                    .completed
                    .entry(vec![text("target"), forced.to_string()])
                    .or_default() += 1.0;
                self.duration_sum_seconds += record["duration_ms"].as_f64().unwrap() / 1e3;
                self.duration_count += 1.0;
                self.transition = None;
            }
            "transition_cancelled" => self.transition = None,
            _ => {}
        }
    }

    /// Returns the run time of the transition in progress at the newest
    /// timestamp, or 0 when none runs.
    fn elapsed_seconds(&self) -> f64 {
        self.transition.as_ref().map_or(0.0, |transition| {
            (self.newest_ns - transition.started_ns) as f64 / 1e9
        })
    }

    fn is_forced(&self, patch: &Value) -> bool {
        patch["forced"] == true
            || self
                .forced_by_event
                .contains(patch["name"].as_str().unwrap())
    }

    /// Returns the alerts that the test's rules raise for this log. The
    /// `increase()` rules, `LivepatchEventsLost` and `LivepatchLoadFailed`,
    /// never fire, because a replayed log's counters stay constant while
    /// Prometheus scrapes them.
    fn alerts(&self) -> BTreeSet<&'static str> {
        let mut names = BTreeSet::new();
        if self.elapsed_seconds() > f64::from(TEST_STUCK_THRESHOLD_SECONDS) {
            names.insert("LivepatchTransitionStuck");
        }
        if self.patches.iter().any(|patch| self.is_forced(patch)) {
            names.insert("LivepatchForced");
        }
        if self.findings.keys().any(|key| key[1] == "error") {
            names.insert("LivepatchValidatorError");
        }
        if self.probes.values().any(|attached| !attached) {
            names.insert("LivepatchProbesMissing");
        }
        names
    }
}

/// Compares each metric family that Prometheus stored for the tool with
/// the values computed from its log.
fn assert_scrape_matches(server: &PrometheusServer, expected: &Expected) {
    let by_patch = |value: &dyn Fn(&Value) -> f64| -> BTreeMap<Vec<String>, f64> {
        expected
            .patches
            .iter()
            .map(|patch| {
                (
                    vec![patch["name"].as_str().unwrap().to_owned()],
                    value(patch),
                )
            })
            .collect()
    };
    let patch_info: BTreeMap<Vec<String>, f64> = expected
        .patches
        .iter()
        .map(|patch| {
            let replace_set = patch["replace_set"]
                .as_u64()
                .map(|set| set.to_string())
                .unwrap_or_default();
            let cumulative = patch["cumulative"]
                .as_bool()
                .map(|c| c.to_string())
                .unwrap_or_default();
            let name = patch["name"].as_str().unwrap().to_owned();
            (vec![name, replace_set, cumulative], 1.0)
        })
        .collect();
    server.assert_series(
        "livepatch_patch_info",
        &["patch", "replace_set", "cumulative"],
        &patch_info,
    );
    server.assert_value("livepatch_patches_loaded", expected.patches.len() as f64);
    server.assert_series(
        "livepatch_patch_enabled",
        &["patch"],
        &by_patch(&|patch| flag(patch["enabled"] == true)),
    );
    server.assert_series(
        "livepatch_patch_forced",
        &["patch"],
        &by_patch(&|patch| flag(expected.is_forced(patch))),
    );

    let transition = expected.transition.as_ref();
    server.assert_value(
        "livepatch_transition_in_progress",
        flag(transition.is_some()),
    );
    let transition_info: BTreeMap<Vec<String>, f64> = transition
        .map(|t| (vec![t.patch.clone(), t.target.clone()], 1.0))
        .into_iter()
        .collect();
    server.assert_series(
        "livepatch_transition_info",
        &["patch", "target"],
        &transition_info,
    );
    server.assert_value(
        "livepatch_transition_elapsed_seconds",
        expected.elapsed_seconds(),
    );
    server.assert_value(
        "livepatch_transition_tasks_left",
        transition.map_or(0.0, |t| t.tasks_left),
    );
    server.assert_value(
        "livepatch_transition_passes",
        transition.map_or(0.0, |t| t.passes),
    );

    let mut blocked: BTreeMap<Vec<String>, f64> = BLOCK_REASONS
        .iter()
        .map(|reason| (vec![(*reason).to_owned()], 0.0))
        .collect();
    for reason in transition.iter().flat_map(|t| t.blocked.values()) {
        *blocked.entry(vec![reason.clone()]).or_default() += 1.0;
    }
    server.assert_series("livepatch_tasks_blocked", &["reason"], &blocked);

    let mut started: BTreeMap<Vec<String>, f64> = TARGETS
        .iter()
        .map(|target| (vec![(*target).to_owned()], 0.0))
        .collect();
    started.extend(expected.started.clone());
    server.assert_series("livepatch_transitions_started_total", &["target"], &started);
    let mut completed: BTreeMap<Vec<String>, f64> = TARGETS
        .iter()
        .flat_map(|target| {
            ["false", "true"].map(|forced| (vec![(*target).to_owned(), forced.to_owned()], 0.0))
        })
        .collect();
    completed.extend(expected.completed.clone());
    server.assert_series(
        "livepatch_transitions_completed_total",
        &["target", "forced"],
        &completed,
    );
    server.assert_value(
        "livepatch_transitions_cancelled_total",
        expected
            .events
            .get("transition_cancelled")
            .copied()
            .unwrap_or(0.0),
    );
    server.assert_value(
        "livepatch_transition_duration_seconds_count",
        expected.duration_count,
    );
    server.assert_value(
        "livepatch_transition_duration_seconds_sum",
        expected.duration_sum_seconds,
    );

    server.assert_series(
        "livepatch_findings",
        &["rule", "severity"],
        &expected.findings,
    );

    let attached = expected.probes.values().filter(|&&a| a).count() as f64;
    let missing = expected.probes.len() as f64 - attached;
    server.assert_value("livepatch_probes_attached", attached);
    server.assert_value("livepatch_probes{state=\"missing\"}", missing);
    let probes: BTreeMap<Vec<String>, f64> = expected
        .probes
        .iter()
        .map(|(probe, &attached)| (vec![probe.clone()], flag(attached)))
        .collect();
    server.assert_series("livepatch_probe_attached", &["probe"], &probes);

    let events: BTreeMap<Vec<String>, f64> = expected
        .events
        .iter()
        .map(|(kind, &count)| (vec![kind.clone()], count))
        .collect();
    server.assert_series("livepatch_events_total", &["kind"], &events);
    server.assert_value("livepatch_events_lost_total", expected.events_lost);
}

fn flag(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
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

/// Starts `livepatch-tui log --from recording --metrics` on a free loopback
/// port and waits until it accepts connections.
fn start_tool(dir: &TempDir, recording: &Path) -> Tool {
    let address = free_loopback_address();
    let mut command = Command::new(env!("CARGO_BIN_EXE_livepatch-tui"));
    command
        .arg("log")
        .arg("--from")
        .arg(recording)
        .arg("--metrics")
        .arg(address.to_string())
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
/// [`TEST_STUCK_THRESHOLD_SECONDS`] and every `for:` shortened to one second.
fn rules_for_test(shipped: &str) -> String {
    assert_eq!(
        shipped.matches("> 600").count(),
        1,
        "the stuck-transition threshold changed; update this test"
    );
    let lowered = shipped.replacen("> 600", &format!("> {TEST_STUCK_THRESHOLD_SECONDS}"), 1);
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

    /// Waits until Prometheus has stored a scrape of the tool.
    fn wait_for_first_scrape(&self) {
        self.wait_until("the first scrape of livepatch-tui", || {
            self.query("up{job=\"livepatch-tui\"} == 1").len() == 1
                && !self.query("livepatch_patches_loaded").is_empty()
        });
    }

    /// Asserts that `promql` returns one series, with the value `expected`.
    fn assert_value(&self, promql: &str, expected: f64) {
        let result = self.query(promql);
        assert_eq!(
            result.len(),
            1,
            "{promql}: expected one series, got {result:?}"
        );
        let got = sample_value(&result[0]);
        assert!(
            (got - expected).abs() < 1e-9,
            "{promql}: expected {expected}, got {got}"
        );
    }

    /// Asserts that `promql` returns exactly the series of `expected`, keyed
    /// by the values of `labels`. Prometheus drops a label with an empty
    /// value, so a missing label is an empty string in the key.
    fn assert_series(&self, promql: &str, labels: &[&str], expected: &BTreeMap<Vec<String>, f64>) {
        let mut got = BTreeMap::new();
        for series in self.query(promql) {
            let key: Vec<String> = labels
                .iter()
                .map(|label| {
                    series["metric"][label]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            let value = sample_value(&series);
            assert!(
                got.insert(key, value).is_none(),
                "{promql}: two series with the same {labels:?}: {series}"
            );
        }
        assert_eq!(&got, expected, "{promql} by {labels:?}");
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

use std::collections::{HashMap, HashSet};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{
    render::{escape_label_value, format_value},
    server::respond,
    *,
};
use crate::{
    event::{BlockReason, PatchInfo, TaskKind, TaskRef},
    source::replay,
    validator,
};

/// A hand-written log of a blocked transition: `livepatch_sample` patched
/// in 1.51 s, then `livepatch_busy` held for 89 s by two kernel threads,
/// with 12 events lost and one probe missing.
const BLOCKED_LOG: &str = include_str!("../../tests/data/blocked-transition.jsonl");

fn state_of(records: &[Record]) -> State {
    let mut state = State::default();
    for record in records {
        state.apply(record);
    }
    state
}

fn blocked_state() -> State {
    let recording = replay::parse_log(BLOCKED_LOG);
    assert!(recording.skipped.is_empty(), "{:?}", recording.skipped);
    state_of(&recording.records)
}

fn rendered_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|line| !line.starts_with('#')).collect()
}

fn assert_has_lines(text: &str, expected: &[&str]) {
    let lines = rendered_lines(text);
    for line in expected {
        assert!(lines.contains(line), "missing line {line:?} in:\n{text}");
    }
}

fn completed(ts_ns: u64, duration_ms: f64, forced: bool) -> Record {
    Record::new(
        ts_ns,
        Event::TransitionCompleted {
            patch: "lp".into(),
            target: PatchState::Patched,
            duration_ms,
            forced,
        },
    )
}

fn started(ts_ns: u64) -> Record {
    Record::new(
        ts_ns,
        Event::TransitionStarted {
            patch: "lp".into(),
            target: PatchState::Patched,
        },
    )
}

#[test]
fn blocked_recording_golden_lines() {
    let state = blocked_state();
    let text = render(&state, state.model.now_ns);

    assert_has_lines(
        &text,
        &[
            "livepatch_patches_loaded 2",
            r#"livepatch_patch_info{patch="livepatch_busy",replace_set="",cumulative="false"} 1"#,
            r#"livepatch_patch_info{patch="livepatch_sample",replace_set="",cumulative="false"} 1"#,
            r#"livepatch_patch_enabled{patch="livepatch_busy"} 1"#,
            r#"livepatch_patch_forced{patch="livepatch_busy"} 0"#,
            "livepatch_transition_in_progress 1",
            r#"livepatch_transition_info{patch="livepatch_busy",target="patched"} 1"#,
            "livepatch_transition_elapsed_seconds 89.00012",
            "livepatch_transition_tasks_left 2",
            "livepatch_transition_passes 90",
            r#"livepatch_tasks_blocked{reason="running"} 0"#,
            r#"livepatch_tasks_blocked{reason="sleeping_in_function"} 1"#,
            r#"livepatch_tasks_blocked{reason="unknown"} 0"#,
            r#"livepatch_tasks_blocked{reason="unreliable_stack"} 1"#,
            "livepatch_tasks_stuck 2",
            r#"livepatch_transitions_started_total{target="patched"} 2"#,
            r#"livepatch_transitions_started_total{target="unpatched"} 0"#,
            r#"livepatch_transitions_completed_total{target="patched",forced="false"} 1"#,
            r#"livepatch_transitions_completed_total{target="patched",forced="true"} 0"#,
            r#"livepatch_transitions_completed_total{target="unpatched",forced="false"} 0"#,
            "livepatch_transitions_cancelled_total 0",
            r#"livepatch_transition_duration_seconds_bucket{le="1"} 0"#,
            r#"livepatch_transition_duration_seconds_bucket{le="2.5"} 1"#,
            r#"livepatch_transition_duration_seconds_bucket{le="+Inf"} 1"#,
            "livepatch_transition_duration_seconds_sum 1.51",
            "livepatch_transition_duration_seconds_count 1",
            r#"livepatch_findings{rule="stacked-function",severity="warning"} 1"#,
            "livepatch_probes_attached 18",
            r#"livepatch_probes{state="attached"} 18"#,
            r#"livepatch_probes{state="missing"} 1"#,
            r#"livepatch_probe_attached{probe="klp_unpatch_replaced_patches"} 0"#,
            r#"livepatch_probe_attached{probe="klp_check_and_switch_task:return"} 1"#,
            r#"livepatch_events_total{kind="task_blocked"} 183"#,
            r#"livepatch_events_total{kind="events_lost"} 2"#,
            "livepatch_events_lost_total 12",
        ],
    );
}

#[test]
fn events_total_counts_every_line() {
    let state = blocked_state();
    let lines = BLOCKED_LOG
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count() as u64;
    assert_eq!(state.totals.events.values().sum::<u64>(), lines);
}

#[test]
fn recording_findings_match_validator() {
    // The recording is written by hand: its finding must be the one the
    // validator reports for its inventory, or the golden lines prove little.
    let recording = replay::parse_log(BLOCKED_LOG);
    let last_inventory = recording
        .records
        .iter()
        .rev()
        .find_map(|record| match &record.event {
            Event::Inventory { patches } => Some(patches.clone()),
            _ => None,
        })
        .unwrap();
    let recorded: Vec<_> = recording
        .records
        .iter()
        .filter_map(|record| match &record.event {
            Event::Finding(finding) => Some(finding.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(validator::validate(&last_inventory), recorded);
}

#[test]
fn help_and_type_before_samples() {
    let state = blocked_state();
    let text = render(&state, state.model.now_ns);
    assert!(text.ends_with('\n'));

    let mut helped = HashSet::new();
    let mut typed: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helped.insert(name.to_owned()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice for {name}"
            );
            continue;
        }

        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        let family = if typed.contains_key(name) {
            name
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| typed.get(*family).map(String::as_str) == Some("histogram"))
                .unwrap_or_else(|| panic!("sample {name} before its TYPE line"))
        };
        assert!(family.starts_with("livepatch_"), "{family}");
        if typed[family] == "counter" {
            assert!(
                family.ends_with("_total"),
                "counter {family} without _total"
            );
        }
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "value {value:?} of {name}");
    }
}

#[test]
fn label_values_escaped() {
    assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label_value("two\nlines"), r"two\nlines");
    assert_eq!(escape_label_value("plain/name:1"), "plain/name:1");

    let patch = PatchInfo {
        name: "odd\"patch\\\n".into(),
        enabled: true,
        ..Default::default()
    };
    let state = state_of(&[Record::new(
        1,
        Event::Inventory {
            patches: vec![patch],
        },
    )]);
    let text = render(&state, 1);
    assert_has_lines(
        &text,
        &[r#"livepatch_patch_enabled{patch="odd\"patch\\\n"} 1"#],
    );
}

#[test]
fn special_values_formatted() {
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(0.25), "0.25");
    assert_eq!(format_value(3.0), "3");
}

#[test]
fn completed_counter_outlives_history() {
    let mut records = Vec::new();
    for i in 0..60_u64 {
        records.push(started(i * 10));
        records.push(completed(i * 10 + 5, 2000.0, false));
    }
    let state = state_of(&records);
    assert_eq!(state.model.history.len(), crate::model::TRANSITION_HISTORY);

    let text = render(&state, state.model.now_ns);
    assert_has_lines(
        &text,
        &[
            r#"livepatch_transitions_started_total{target="patched"} 60"#,
            r#"livepatch_transitions_completed_total{target="patched",forced="false"} 60"#,
            "livepatch_transition_duration_seconds_count 60",
            "livepatch_transition_duration_seconds_sum 120",
        ],
    );
}

#[test]
fn force_marks_completion_forced() {
    let records = [
        started(0),
        Record::new(5, Event::TransitionForced { patch: "lp".into() }),
        // The kernel's completion of a forced transition. The event may not
        // carry the flag when the force was seen separately.
        completed(9, 1.0, false),
    ];
    let state = state_of(&records);
    let text = render(&state, 9);
    assert_has_lines(
        &text,
        &[
            r#"livepatch_transitions_completed_total{target="patched",forced="true"} 1"#,
            r#"livepatch_transitions_completed_total{target="patched",forced="false"} 0"#,
        ],
    );
}

#[test]
fn idle_model_exports_zeros() {
    let text = render(&State::default(), 0);
    assert_has_lines(
        &text,
        &[
            "livepatch_patches_loaded 0",
            "livepatch_transition_in_progress 0",
            "livepatch_transition_elapsed_seconds 0",
            "livepatch_transition_tasks_left 0",
            r#"livepatch_tasks_blocked{reason="sleeping_in_function"} 0"#,
            "livepatch_events_lost_total 0",
            r#"livepatch_probes{state="missing"} 0"#,
        ],
    );
    assert!(!text.contains("livepatch_transition_info{"));
    assert!(!text.contains("livepatch_findings{"));
}

#[test]
fn elapsed_measured_against_reference() {
    let state = state_of(&[started(1_000_000_000)]);
    let text = render(&state, 6_500_000_000);
    assert_has_lines(&text, &["livepatch_transition_elapsed_seconds 5.5"]);
    assert_eq!(Clock::LastEvent.now_ns(&state.model), 1_000_000_000);
    assert!(Clock::Monotonic.now_ns(&state.model) >= 1_000_000_000);
}

#[test]
fn blocked_tasks_cleared_after_completion() {
    let task = TaskRef {
        pid: 7,
        tgid: 7,
        comm: "busy".into(),
        task_kind: TaskKind::User,
    };
    let blocked = Record::new(
        2,
        Event::TaskBlocked {
            task,
            reason: BlockReason::Running,
            function: None,
            attempts: 1,
            cpu: Some(0),
        },
    );
    let state = state_of(&[started(1), blocked.clone()]);
    assert_has_lines(
        &render(&state, 2),
        &[r#"livepatch_tasks_blocked{reason="running"} 1"#],
    );

    let state = state_of(&[started(1), blocked, completed(3, 0.0, false)]);
    assert_has_lines(
        &render(&state, 3),
        &[r#"livepatch_tasks_blocked{reason="running"} 0"#],
    );
}

fn calls(
    function: &str,
    sympos: u32,
    original: u64,
    on_patch: u64,
    blind_spot: Option<&str>,
) -> Record {
    Record::new(
        1,
        Event::Calls {
            object: "vmlinux".into(),
            function: function.into(),
            sympos,
            entered: original + on_patch,
            original,
            patched: std::collections::BTreeMap::from([("livepatch_sample".to_owned(), on_patch)]),
            interval_ms: 5000,
            blind_spot: blind_spot.map(str::to_owned),
        },
    )
}

#[test]
fn function_calls_summed_per_version() {
    let records = [
        calls("cmdline_proc_show", 0, 5, 0, None),
        calls("cmdline_proc_show", 0, 2, 8, None),
        calls(
            "dup_name",
            2,
            1,
            1,
            Some("original entry not counted: not found"),
        ),
    ];
    let text = render(&state_of(&records), 1);
    assert_has_lines(
        &text,
        &[
            r#"livepatch_function_calls_total{object="vmlinux",function="cmdline_proc_show",sympos="0",version="original"} 7"#,
            r#"livepatch_function_calls_total{object="vmlinux",function="cmdline_proc_show",sympos="0",version="livepatch_sample"} 8"#,
            r#"livepatch_function_calls_total{object="vmlinux",function="dup_name",sympos="2",version="original"} 1"#,
            r#"livepatch_function_calls_blind_spot{object="vmlinux",function="cmdline_proc_show",sympos="0"} 0"#,
            r#"livepatch_function_calls_blind_spot{object="vmlinux",function="dup_name",sympos="2"} 1"#,
        ],
    );
}

#[test]
fn histogram_cumulative_counts() {
    let mut histogram = Histogram::default();
    histogram.observe(0.05);
    histogram.observe(1.51);
    histogram.observe(7200.0);
    let buckets: Vec<(f64, u64)> = histogram.cumulative().collect();
    assert_eq!(buckets.first(), Some(&(0.1, 1)));
    assert!(buckets.contains(&(1.0, 1)));
    assert!(buckets.contains(&(2.5, 2)));
    assert!(buckets.contains(&(3600.0, 2)));
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 3)));
    assert_eq!(histogram.count, 3);
}

fn response_text(head: &str) -> String {
    String::from_utf8(respond(head.as_bytes(), || "body\n".into())).unwrap()
}

#[test]
fn respond_serves_metrics_path() {
    let response = response_text("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert!(response.contains("\r\nContent-Length: 5\r\n"));
    assert!(response.contains("\r\nConnection: close\r\n"));
    assert!(response.ends_with("\r\n\r\nbody\n"));

    let with_query = response_text("GET /metrics?x=1 HTTP/1.0\n\n");
    assert!(
        with_query.starts_with("HTTP/1.1 200 OK\r\n"),
        "{with_query}"
    );
}

#[test]
fn respond_head_has_no_body() {
    let response = response_text("HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(response.contains("\r\nContent-Length: 5\r\n"));
    assert!(response.ends_with("\r\n\r\n"));
}

#[test]
fn respond_rejects_other_requests() {
    let cases = [
        ("GET / HTTP/1.1\r\n\r\n", "404 Not Found"),
        ("GET /metrics/extra HTTP/1.1\r\n\r\n", "404 Not Found"),
        ("POST /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
        ("GET /metrics\r\n\r\n", "400 Bad Request"),
        ("GET /metrics HTTP/2.0\r\n\r\n", "400 Bad Request"),
        ("\u{0}\u{1}\r\n\r\n", "400 Bad Request"),
    ];
    for (request, status) in cases {
        let response = response_text(request);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{request:?}: {response}"
        );
        assert!(
            !response.contains("body\n"),
            "{request:?} rendered the metrics"
        );
    }
    assert!(response_text("DELETE /metrics HTTP/1.1\r\n\r\n").contains("\r\nAllow: GET, HEAD\r\n"));
}

async fn fetch(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn server_serves_concurrent_scrapes() {
    let state = SharedState::default();
    state
        .lock()
        .apply(&Record::new(5, Event::EventsLost { count: 3 }));
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        state.clone(),
        Clock::LastEvent,
    )
    .await
    .unwrap();
    let address = server.local_addr().unwrap();
    let serving = tokio::spawn(server.serve());

    let scrape = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (first, second) = tokio::join!(fetch(address, scrape), fetch(address, scrape));
    for response in [&first, &second] {
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains("\nlivepatch_events_lost_total 3\n"),
            "{response}"
        );
    }

    state
        .lock()
        .apply(&Record::new(6, Event::EventsLost { count: 4 }));
    assert!(
        fetch(address, scrape)
            .await
            .contains("\nlivepatch_events_lost_total 7\n")
    );

    let missing = fetch(address, b"GET /other HTTP/1.1\r\n\r\n").await;
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{missing}"
    );

    let oversized = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let rejected = fetch(address, oversized.as_bytes()).await;
    assert!(rejected.starts_with("HTTP/1.1 431 "), "{rejected}");

    serving.abort();
}

//! Checks of the "demo" scenario, whose log becomes the recording that
//! `livepatch-tui demo` plays: it must show what the demo promises.

use super::timeline::{self, first_sleeping_in, note_ns};
use super::{Checks, check_no_unreliable_stack, check_transition, describe};
use crate::events::{EventLog, ts_ns};
use crate::outputs::ScenarioOutput;

const SAMPLE: &str = "livepatch_sample";
const PATCH: &str = "test_klp_callbacks_demo";
/// Retry passes the held transition must show. The guest keeps it held for 15 s,
/// and the kernel retries about once a second.
const MIN_PASSES: usize = 10;

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    if !with_tool {
        return;
    }
    let log = EventLog::parse(output.file("jsonl"));
    let Some(released_at) = note_ns(output, checks, "released_at_s") else {
        return;
    };

    check_transition(&log, checks, SAMPLE, "patched");
    let held = first_sleeping_in(&log, "busymod_work_func", released_at);
    checks.check(
        held.is_some(),
        "recording shows the kworker sleeping_in_function busymod_work_func",
        held.map_or("no such task_blocked event".to_owned(), describe),
    );
    let passes = timeline::of_patch(&log, "transition_pass", PATCH)
        .filter(|event| ts_ns(event) < released_at)
        .count();
    checks.check(
        passes >= MIN_PASSES,
        &format!("recording shows {MIN_PASSES} or more retry passes while held"),
        format!("{passes} transition_pass events before the release"),
    );
    if let Some(completed) = check_transition(&log, checks, PATCH, "patched") {
        checks.check(
            ts_ns(completed) >= released_at,
            "the held transition completed after the release",
            describe(completed),
        );
    }
    check_transition(&log, checks, PATCH, "unpatched");
    check_transition(&log, checks, SAMPLE, "unpatched");
    for patch in [PATCH, SAMPLE] {
        let removed = log.find("patch_removed", &[("patch", patch)]);
        checks.check(
            removed.is_some(),
            &format!("recording shows {patch} removed"),
            removed.map_or("no patch_removed event".to_owned(), describe),
        );
    }
    check_no_unreliable_stack(&log, checks);
}

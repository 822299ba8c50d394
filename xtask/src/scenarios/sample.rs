//! Checks of the "sample" scenario: the kernel's livepatch sample enabled, then disabled.

use super::{
    Checks, check_dmesg_contains, check_dmesg_no_unreliable_stack, check_no_unreliable_stack,
    check_transition, describe,
};
use crate::events::{EventLog, inventory_patch, patch_has_function, ts_ns};
use crate::outputs::ScenarioOutput;

const PATCH: &str = "livepatch_sample";

/// Replacement text of /proc/cmdline in samples/livepatch/livepatch-sample.c.
const PATCHED_CMDLINE: &str = "this has been live patched";

pub fn check(output: &ScenarioOutput, checks: &mut Checks, with_tool: bool) {
    let cmdline = output.note("cmdline_patched").unwrap_or("missing");
    checks.check(
        cmdline.contains(PATCHED_CMDLINE),
        "/proc/cmdline ran the replacement function while patched",
        format!("/proc/cmdline read {cmdline:?}"),
    );
    check_dmesg_contains(
        output,
        checks,
        "kernel completed the patching transition",
        "'livepatch_sample': patching complete",
    );
    check_dmesg_contains(
        output,
        checks,
        "kernel completed the unpatching transition",
        "'livepatch_sample': unpatching complete",
    );
    check_dmesg_no_unreliable_stack(output, checks);

    if !with_tool {
        return;
    }
    let log = EventLog::parse(output.file("jsonl"));

    let listed = log
        .of_kind("inventory")
        .filter_map(|inventory| inventory_patch(inventory, PATCH))
        .any(|patch| patch_has_function(patch, "vmlinux", "cmdline_proc_show"));
    checks.check(
        listed,
        "inventory lists livepatch_sample with vmlinux/cmdline_proc_show",
        format!("{} inventory line(s)", log.of_kind("inventory").count()),
    );

    for (kind, when) in [
        ("object_patched", "enabled"),
        ("object_unpatched", "disabled"),
    ] {
        let event = log.find(kind, &[("object", "vmlinux")]);
        checks.check(
            event.is_some(),
            &format!("tool saw the patch's vmlinux object {kind} when it was {when}"),
            event.map_or(format!("no {kind} event"), describe),
        );
    }

    let patched = check_transition(&log, checks, PATCH, "patched");
    let unpatched = check_transition(&log, checks, PATCH, "unpatched");
    if let (Some(patched), Some(unpatched)) = (patched, unpatched) {
        checks.check(
            ts_ns(patched) < ts_ns(unpatched),
            "the unpatching transition completed after the patching one",
            format!("ts_ns {} then {}", ts_ns(patched), ts_ns(unpatched)),
        );
        checks.info(format!(
            "duration_ms patched {} / unpatched {}; polled in the guest: {} / {} ms",
            patched["duration_ms"],
            unpatched["duration_ms"],
            output.note("patch_ms").unwrap_or("?"),
            output.note("unpatch_ms").unwrap_or("?"),
        ));
    }

    checks.info(format!(
        "guest waited for the tool's inventory {} ms and for patch_removed {} ms",
        output.note("inventory_wait_ms").unwrap_or("?"),
        output.note("removal_wait_ms").unwrap_or("?"),
    ));
    let removed = log.find("patch_removed", &[("patch", PATCH)]);
    checks.check(
        removed.is_some(),
        "tool saw livepatch_sample removed",
        removed.map_or("no patch_removed event".to_owned(), describe),
    );
    let last_inventory = log.of_kind("inventory").last();
    let still_listed =
        last_inventory.is_some_and(|inventory| inventory_patch(inventory, PATCH).is_some());
    checks.check(
        last_inventory.is_some() && !still_listed,
        "last inventory no longer lists livepatch_sample",
        last_inventory.map_or("no inventory".to_owned(), |inventory| {
            format!("last inventory at ts_ns {}", ts_ns(inventory))
        }),
    );

    check_no_unreliable_stack(&log, checks);
}

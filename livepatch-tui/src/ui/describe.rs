//! One readable line per event, for the event log pane.

use std::collections::BTreeMap;

use super::format;
use crate::event::{BlockReason, Event, PatchInfo, PatchState, TaskRef};

/// Describes an event in one line, without its timestamp.
pub fn describe(event: &Event) -> String {
    match event {
        Event::Inventory { patches } => inventory_line(patches),
        Event::PatchAdded { patch } => format!("patch added: {patch}"),
        Event::PatchRemoved { patch } => format!("patch removed: {patch}"),
        Event::PatchLoadFailed {
            patch,
            error,
            conflicts,
        } => {
            let mut line = format!("patch {patch} rejected by the kernel: {}", errno(*error));
            if !conflicts.is_empty() {
                line.push_str(&format!(" ({})", conflicts.join("; ")));
            }
            line
        }
        Event::TransitionStarted { patch, target } => {
            format!("transition started: {patch} → {}", target.as_str())
        }
        Event::TransitionReversed { patch, target } => {
            format!("transition reversed: {patch} → {}", target.as_str())
        }
        Event::TransitionForced { patch } => format!("transition forced: {patch}"),
        Event::TransitionCompleted {
            patch,
            target,
            duration_ms,
            forced,
        } => completed_line(patch, *target, *duration_ms, *forced),
        Event::TransitionCancelled { patch } => format!("transition cancelled: {patch}"),
        Event::TransitionPass {
            patch,
            pass,
            duration_us,
            tasks_left,
        } => {
            let took = format::duration_ns(duration_us.saturating_mul(1_000));
            format!("pass {pass} over tasks for {patch}: {took}, {tasks_left} left")
        }
        Event::TaskSwitched { task, to, via } => {
            let name = task_name(task);
            format!(
                "task switched: {name} → {} via {}",
                to.as_str(),
                via.as_str()
            )
        }
        Event::TaskBlocked {
            task,
            reason,
            function,
            attempts,
            cpu,
        } => blocked_line(task, *reason, function.as_deref(), *attempts, *cpu),
        Event::ModuleComing { module } => format!("module loading: {module}"),
        Event::ModuleGoing { module } => format!("module unloading: {module}"),
        Event::ObjectPatched { object } => format!("object patched: {object}"),
        Event::ObjectUnpatched { object } => format!("object unpatched: {object}"),
        Event::PatchesReplaced { patch, replaced } => {
            format!("{patch} replaces {}", replaced.join(", "))
        }
        Event::PatchFunction {
            patch,
            object,
            function,
            sympos,
            ..
        } => format!("patch {patch} replaces {object}:{function},{sympos}"),
        Event::Calls {
            object,
            function,
            original,
            patched,
            interval_ms,
            blind_spot,
            ..
        } => calls_line(
            object,
            function,
            *original,
            patched,
            *interval_ms,
            blind_spot.as_deref(),
        ),
        Event::PatchStateId { patch, id, version } => {
            format!("patch {patch} uses klp_state {id} version {version}")
        }
        Event::TaskStack { task, frames, .. } => {
            let top = frames.first().map(String::as_str).unwrap_or("empty");
            format!(
                "stack of {}[{}]: {} frames, top {top}",
                task.comm,
                task.pid,
                frames.len()
            )
        }
        Event::Finding(finding) => format!(
            "finding {} {}: {}",
            finding.severity.as_str(),
            finding.rule,
            finding.message
        ),
        Event::ProbeStatus {
            probe,
            attached,
            reason,
            feature,
        } => probe_line(probe, *attached, reason.as_deref(), feature),
        Event::EventsLost { count } => format!("events lost: {count} dropped by the kernel"),
    }
}

fn inventory_line(patches: &[PatchInfo]) -> String {
    let names: Vec<&str> = patches.iter().map(|p| p.name.as_str()).collect();
    match names.len() {
        0 => "inventory: no livepatch loaded".to_owned(),
        n => format!("inventory: {n} loaded ({})", names.join(", ")),
    }
}

fn completed_line(patch: &str, target: PatchState, duration_ms: f64, forced: bool) -> String {
    let forced = if forced { ", forced" } else { "" };
    let took = format::duration_ms(duration_ms);
    format!(
        "transition completed: {patch} → {} in {took}{forced}",
        target.as_str()
    )
}

fn blocked_line(
    task: &TaskRef,
    reason: BlockReason,
    function: Option<&str>,
    attempts: u32,
    cpu: Option<u32>,
) -> String {
    let mut line = format!("task blocked: {} {}", task_name(task), reason.as_str());
    if let Some(function) = function {
        line.push_str(&format!(" in {function}"));
    }
    if let Some(cpu) = cpu {
        line.push_str(&format!(" on cpu {cpu}"));
    }
    line.push_str(&format!(", attempt {attempts}"));
    line
}

fn calls_line(
    object: &str,
    function: &str,
    original: u64,
    patched: &BTreeMap<String, u64>,
    interval_ms: u64,
    blind_spot: Option<&str>,
) -> String {
    let versions: Vec<String> = patched.iter().map(|(p, n)| format!("{p} {n}")).collect();
    let blind = blind_spot
        .map(|b| format!(" (blind spot: {b})"))
        .unwrap_or_default();
    format!(
        "calls {object}:{function} in {interval_ms} ms: original {original}, {}{blind}",
        versions.join(", ")
    )
}

fn probe_line(probe: &str, attached: bool, reason: Option<&str>, feature: &str) -> String {
    match (attached, reason) {
        (true, _) => format!("probe attached: {probe} ({feature})"),
        (false, Some(reason)) => {
            format!("probe not attached: {probe}: {reason}; {feature} unavailable")
        }
        (false, None) => format!("probe not attached: {probe}; {feature} unavailable"),
    }
}

/// Names a task as `comm[pid]`.
pub fn task_name(task: &TaskRef) -> String {
    format!("{}[{}]", task.comm, task.pid)
}

/// Names a negative errno as the kernel returns it: `-EINVAL (-22)`.
fn errno(code: i32) -> String {
    let name = match -code {
        1 => "EPERM",
        2 => "ENOENT",
        12 => "ENOMEM",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        _ => return format!("error {code}"),
    };
    format!("-{name} ({code})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BlockReason, PatchState, TaskKind};

    #[test]
    fn blocked_task_names_function() {
        let event = Event::TaskBlocked {
            task: TaskRef {
                pid: 77,
                tgid: 77,
                comm: "kworker/0:1".into(),
                task_kind: TaskKind::Kthread,
            },
            reason: BlockReason::SleepingInFunction,
            function: Some("busymod_work_func".into()),
            attempts: 3,
            cpu: None,
        };
        assert_eq!(
            describe(&event),
            "task blocked: kworker/0:1[77] sleeping_in_function in busymod_work_func, attempt 3"
        );
    }

    #[test]
    fn completed_shows_duration() {
        let event = Event::TransitionCompleted {
            patch: "p".into(),
            target: PatchState::Patched,
            duration_ms: 1500.0,
            forced: true,
        };
        assert_eq!(
            describe(&event),
            "transition completed: p → patched in 1.50 s, forced"
        );
    }

    #[test]
    fn load_failure_names_errno() {
        let event = Event::PatchLoadFailed {
            patch: "p".into(),
            error: -22,
            conflicts: Vec::new(),
        };
        assert_eq!(
            describe(&event),
            "patch p rejected by the kernel: -EINVAL (-22)"
        );
    }
}

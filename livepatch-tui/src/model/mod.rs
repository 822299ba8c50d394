//! The picture every view draws: patches, the transition, tasks, probes,
//! findings and recent events.
//!
//! The model is pure: it changes only through [`Model::apply`], reads no
//! clock and does no I/O, so that a live run and a replay of its log build
//! the same state.

mod calls;
mod tasks;
mod transition;

use std::collections::{BTreeMap, VecDeque};

pub use calls::{CallStats, function_label};
pub use tasks::{STUCK_STREAK, Task, TaskStatus, Tasks};
pub use transition::{Blocker, PassSummary, Transition, TransitionOutcome, TransitionSummary};

use crate::event::{Event, Finding, PatchInfo, PatchState, Record};

/// Recent events kept for the event log view.
pub const RECENT_EVENTS: usize = 500;

/// Completed transitions kept for the history view.
pub const TRANSITION_HISTORY: usize = 50;

/// A probe and whether it attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeInfo {
    pub attached: bool,
    pub reason: Option<String>,
    pub feature: String,
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Loaded patches by name, from the latest inventory.
    pub patches: BTreeMap<String, PatchInfo>,
    /// Patches forced at some point; the kernel keeps their modules.
    pub forced_patches: Vec<String>,
    /// The transition in progress, if any.
    pub transition: Option<Transition>,
    /// Finished transitions, oldest first.
    pub history: VecDeque<TransitionSummary>,
    /// Tasks seen in the current or latest transition.
    pub tasks: Tasks,
    pub probes: BTreeMap<String, ProbeInfo>,
    /// Events the kernel dropped, summed over the run.
    pub events_lost: u64,
    /// Findings of the latest validator run, as reported.
    pub findings: Vec<Finding>,
    /// Latest events, oldest first, for the event log view.
    pub recent: VecDeque<Record>,
    /// Timestamp of the newest event applied.
    pub now_ns: u64,
    /// Lines a replay could not read.
    pub skipped_lines: u64,
    /// Call counts per patched function, by [`function_label`].
    pub calls: BTreeMap<String, CallStats>,
    /// Patches seen loading during this run, oldest first. Patches loaded
    /// before the run started are older than all of them.
    pub load_order: Vec<String>,
}

/// Keeps `order`, the patches seen loading during this run, oldest first,
/// up to date with `event`.
pub fn follow_loads(order: &mut Vec<String>, event: &Event) {
    match event {
        Event::PatchAdded { patch }
        | Event::PatchFunction { patch, .. }
        | Event::TransitionStarted {
            patch,
            target: PatchState::Patched,
        } if !order.contains(patch) => order.push(patch.clone()),
        Event::PatchRemoved { patch } | Event::PatchLoadFailed { patch, .. } => {
            order.retain(|p| p != patch);
        }
        _ => {}
    }
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event.
    pub fn apply(&mut self, record: &Record) {
        self.now_ns = self.now_ns.max(record.ts_ns);
        let ts_ns = record.ts_ns;

        match &record.event {
            Event::Inventory { patches } => self.apply_inventory(patches),
            Event::TransitionStarted { patch, target } => {
                follow_loads(&mut self.load_order, &record.event);
                self.tasks.clear();
                self.transition = Some(Transition::new(patch, *target, ts_ns));
            }
            Event::TransitionReversed { target, .. } => {
                if let Some(transition) = &mut self.transition {
                    transition.reverse(*target, ts_ns);
                }
                self.tasks.reverse();
                self.note_tasks_left(ts_ns);
            }
            Event::TransitionForced { patch } => {
                if let Some(transition) = &mut self.transition {
                    transition.forced_ns = Some(ts_ns);
                }
                if !self.forced_patches.contains(patch) {
                    self.forced_patches.push(patch.clone());
                }
            }
            Event::TransitionPass {
                duration_us,
                tasks_left,
                ..
            } => {
                if let Some(transition) = &mut self.transition {
                    transition.record_pass(ts_ns, *duration_us, *tasks_left);
                }
            }
            Event::TransitionCompleted {
                duration_ms,
                forced,
                ..
            } => self.finish_transition(ts_ns, TransitionOutcome::Completed, *duration_ms, *forced),
            Event::TransitionCancelled { .. } => {
                let duration_ms = self
                    .transition
                    .as_ref()
                    .map_or(0.0, |t| ts_ns.saturating_sub(t.started_ns) as f64 / 1e6);
                self.finish_transition(ts_ns, TransitionOutcome::Cancelled, duration_ms, false);
            }
            Event::TaskSwitched { task, to, via } => {
                self.tasks.switched(task, *to, *via, ts_ns);
                self.note_tasks_left(ts_ns);
            }
            Event::TaskBlocked {
                task,
                reason,
                function,
                attempts,
                cpu,
            } => {
                self.tasks
                    .blocked(task, *reason, function.as_deref(), *attempts, *cpu, ts_ns);
                self.note_tasks_left(ts_ns);
            }
            Event::TaskStack { task, frames, .. } => self.tasks.set_stack(task, frames),
            Event::Finding(finding) => self.findings.push(finding.clone()),
            Event::ProbeStatus {
                probe,
                attached,
                reason,
                feature,
            } => {
                let info = ProbeInfo {
                    attached: *attached,
                    reason: reason.clone(),
                    feature: feature.clone(),
                };
                self.probes.insert(probe.clone(), info);
            }
            Event::EventsLost { count } => self.events_lost += count,
            Event::PatchAdded { .. }
            | Event::PatchRemoved { .. }
            | Event::PatchLoadFailed { .. }
            | Event::PatchFunction { .. } => follow_loads(&mut self.load_order, &record.event),
            Event::ModuleComing { .. }
            | Event::ModuleGoing { .. }
            | Event::ObjectPatched { .. }
            | Event::ObjectUnpatched { .. }
            | Event::PatchesReplaced { .. }
            | Event::PatchStateId { .. } => {}
            Event::Calls {
                object,
                function,
                sympos,
                entered,
                original,
                patched,
                interval_ms,
                blind_spot,
            } => {
                let label = function_label(object, function, *sympos);
                let stats = self.calls.entry(label).or_default();
                stats.add(
                    *entered,
                    *original,
                    patched,
                    *interval_ms,
                    blind_spot.as_deref(),
                );
            }
        }

        self.remember(record);
    }

    fn apply_inventory(&mut self, patches: &[PatchInfo]) {
        self.patches = patches
            .iter()
            .map(|patch| (patch.name.clone(), patch.clone()))
            .collect();
        // Findings describe one inventory; the validator reports them anew.
        self.findings.clear();
    }

    fn finish_transition(
        &mut self,
        ts_ns: u64,
        outcome: TransitionOutcome,
        duration_ms: f64,
        forced: bool,
    ) {
        let Some(transition) = self.transition.take() else {
            return;
        };
        let summary = transition.finish(ts_ns, outcome, duration_ms, forced, &self.tasks);
        self.history.push_back(summary);
        while self.history.len() > TRANSITION_HISTORY {
            self.history.pop_front();
        }
    }

    fn note_tasks_left(&mut self, ts_ns: u64) {
        if let Some(transition) = &mut self.transition {
            transition.note_tasks_left(ts_ns, self.tasks.pending_count());
        }
    }

    fn remember(&mut self, record: &Record) {
        // Task-level events would flood the log view on a large machine; the
        // tasks table shows them instead.
        if matches!(record.event, Event::TaskSwitched { .. }) {
            return;
        }
        self.recent.push_back(record.clone());
        while self.recent.len() > RECENT_EVENTS {
            self.recent.pop_front();
        }
    }

    /// The enabled patch whose version of a function runs outside a
    /// transition: the one loaded last, because `klp_patch_func()` puts a
    /// new patch at the head of the function's stack and the ftrace handler
    /// takes the head (kernel/livepatch/patch.c, 6.1). `None` when no
    /// enabled patch has the function, or when the load order of the
    /// candidates is unknown (several loaded before this run, and no
    /// `stack_order` from the kernel).
    pub fn function_owner(&self, object: &str, function: &str, sympos: u32) -> Option<&str> {
        let candidates: Vec<&PatchInfo> = self
            .patches
            .values()
            .filter(|p| p.enabled)
            .filter(|p| {
                p.objects.iter().any(|o| {
                    o.name == object
                        && o.functions
                            .iter()
                            .any(|f| f.name == function && f.sympos == sympos)
                })
            })
            .collect();
        if let [only] = candidates.as_slice() {
            return Some(&only.name);
        }
        if candidates.iter().all(|p| p.stack_order.is_some()) {
            return candidates
                .iter()
                .max_by_key(|p| p.stack_order)
                .map(|p| p.name.as_str());
        }
        let rank = |p: &&PatchInfo| self.load_order.iter().position(|name| *name == p.name);
        let newest_seen = candidates
            .iter()
            .filter_map(|p| rank(p).map(|r| (r, p)))
            .max_by_key(|(r, _)| *r);
        match newest_seen {
            Some((_, patch)) => Some(&patch.name),
            None => None,
        }
    }

    /// Returns whether a patch was forced in this run, or the inventory marks
    /// it forced.
    pub fn is_forced(&self, patch: &str) -> bool {
        self.forced_patches.iter().any(|p| p == patch)
            || self.patches.get(patch).is_some_and(|p| p.forced)
    }

    /// Attached probes out of all known probes.
    pub fn probe_counts(&self) -> (usize, usize) {
        let attached = self.probes.values().filter(|p| p.attached).count();
        (attached, self.probes.len())
    }
}

#[cfg(test)]
mod tests;

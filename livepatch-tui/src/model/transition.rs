//! One transition's timeline and the summary kept once it ends.

use std::collections::VecDeque;

use crate::event::{BlockReason, PatchState};

use super::tasks::{TaskStatus, Tasks};

/// Samples of "tasks left" kept for the sparkline.
pub const LEFT_SAMPLES: usize = 240;

#[derive(Clone, Debug, PartialEq)]
pub struct PassSummary {
    pub ts_ns: u64,
    pub duration_us: u64,
    pub tasks_left: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub patch: String,
    pub target: PatchState,
    pub started_ns: u64,
    /// When each reversal happened.
    pub reversals: Vec<u64>,
    pub forced_ns: Option<u64>,
    pub passes: Vec<PassSummary>,
    /// (timestamp, tasks not yet switched), one sample per change.
    pub tasks_left: VecDeque<(u64, u32)>,
}

impl Transition {
    pub fn new(patch: &str, target: PatchState, started_ns: u64) -> Self {
        Self {
            patch: patch.to_owned(),
            target,
            started_ns,
            reversals: Vec::new(),
            forced_ns: None,
            passes: Vec::new(),
            tasks_left: VecDeque::new(),
        }
    }

    pub fn reverse(&mut self, target: PatchState, ts_ns: u64) {
        self.target = target;
        self.reversals.push(ts_ns);
    }

    pub fn record_pass(&mut self, ts_ns: u64, duration_us: u64, tasks_left: u32) {
        self.passes.push(PassSummary {
            ts_ns,
            duration_us,
            tasks_left,
        });
    }

    pub fn note_tasks_left(&mut self, ts_ns: u64, left: u32) {
        if self
            .tasks_left
            .back()
            .is_some_and(|&(_, last)| last == left)
        {
            return;
        }
        self.tasks_left.push_back((ts_ns, left));
        while self.tasks_left.len() > LEFT_SAMPLES {
            self.tasks_left.pop_front();
        }
    }

    pub fn elapsed_ns(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.started_ns)
    }

    pub fn finish(
        self,
        ended_ns: u64,
        outcome: TransitionOutcome,
        duration_ms: f64,
        forced: bool,
        tasks: &Tasks,
    ) -> TransitionSummary {
        let ever_blocked = tasks.iter().filter(|t| t.attempts > 0).count() as u32;
        let longest = tasks
            .iter()
            .filter(|t| t.attempts > 0)
            .max_by_key(|t| (t.attempts, t.task.pid));
        let longest_blocker = longest.map(|t| Blocker {
            comm: t.task.comm.clone(),
            pid: t.task.pid,
            reason: t.reason,
            function: t.function.clone(),
            attempts: t.attempts,
        });
        let unswitched = tasks
            .iter()
            .filter(|t| t.status != TaskStatus::Switched)
            .count() as u32;

        TransitionSummary {
            patch: self.patch,
            target: self.target,
            started_ns: self.started_ns,
            ended_ns,
            duration_ms,
            outcome,
            forced: forced || self.forced_ns.is_some(),
            reversals: self.reversals.len() as u32,
            passes: self.passes.len() as u32,
            tasks_seen: tasks.len() as u32,
            tasks_blocked: ever_blocked,
            tasks_unswitched: unswitched,
            longest_blocker,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionOutcome {
    Completed,
    Cancelled,
}

/// The task that failed most checks in a transition.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocker {
    pub comm: String,
    pub pid: u32,
    pub reason: Option<BlockReason>,
    pub function: Option<String>,
    pub attempts: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TransitionSummary {
    pub patch: String,
    pub target: PatchState,
    pub started_ns: u64,
    pub ended_ns: u64,
    pub duration_ms: f64,
    pub outcome: TransitionOutcome,
    pub forced: bool,
    pub reversals: u32,
    pub passes: u32,
    pub tasks_seen: u32,
    /// Tasks that failed at least one check.
    pub tasks_blocked: u32,
    /// Tasks never seen switching (forced or cancelled transitions).
    pub tasks_unswitched: u32,
    pub longest_blocker: Option<Blocker>,
}

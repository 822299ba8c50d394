//! Per-task progress through one transition.

use std::collections::HashMap;

use crate::event::{BlockReason, PatchState, SwitchVia, TaskRef};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskStatus {
    /// Failed its latest check.
    Blocked,
    /// Not switched and not yet seen failing.
    Pending,
    Switched,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::Pending => "pending",
            Self::Switched => "switched",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub task: TaskRef,
    pub status: TaskStatus,
    /// Failed checks in this transition.
    pub attempts: u32,
    pub first_tried_ns: Option<u64>,
    pub last_tried_ns: Option<u64>,
    /// Reason of the latest failed check, kept after the task switched.
    pub reason: Option<BlockReason>,
    /// Function on the stack at the latest failed check.
    pub function: Option<String>,
    /// CPU the task was running on at the latest failed check.
    pub cpu: Option<u32>,
    /// Failed checks in a row with the same reason and function.
    pub same_failure_streak: u32,
    pub via: Option<SwitchVia>,
    pub switched_ns: Option<u64>,
    pub state: Option<PatchState>,
    /// Kernel stack at the latest failed check that sent one, innermost
    /// frame first.
    pub stack: Vec<String>,
}

impl Task {
    fn new(task: &TaskRef) -> Self {
        Self {
            task: task.clone(),
            status: TaskStatus::Pending,
            attempts: 0,
            first_tried_ns: None,
            last_tried_ns: None,
            reason: None,
            function: None,
            cpu: None,
            same_failure_streak: 0,
            via: None,
            switched_ns: None,
            state: None,
            stack: Vec::new(),
        }
    }

    /// Returns how long the task has waited since its first failed check, up
    /// to `now_ns` or to its switch.
    pub fn waited_ns(&self, now_ns: u64) -> u64 {
        let Some(first) = self.first_tried_ns else {
            return 0;
        };
        self.switched_ns.unwrap_or(now_ns).saturating_sub(first)
    }
}

/// Failed checks in a row, with the same reason and function, after which a
/// task is called out as unlikely to switch on its own. The kernel retries
/// about once a second, so this is about half a minute.
pub const STUCK_STREAK: u32 = 30;

/// The tasks of one transition, by [`TaskRef::key`].
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    by_key: HashMap<u64, Task>,
    not_switched: usize,
}

impl Tasks {
    pub fn clear(&mut self) {
        self.by_key.clear();
        self.not_switched = 0;
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Tasks seen but not switched.
    pub fn pending_count(&self) -> u32 {
        self.not_switched as u32
    }

    pub fn blocked_count(&self) -> usize {
        self.by_key
            .values()
            .filter(|t| t.status == TaskStatus::Blocked)
            .count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Task> {
        self.by_key.values()
    }

    pub fn get(&self, key: u64) -> Option<&Task> {
        self.by_key.get(&key)
    }

    fn entry(&mut self, task: &TaskRef) -> &mut Task {
        let not_switched = &mut self.not_switched;
        self.by_key.entry(task.key()).or_insert_with(|| {
            *not_switched += 1;
            Task::new(task)
        })
    }

    pub fn switched(&mut self, task: &TaskRef, to: PatchState, via: SwitchVia, ts_ns: u64) {
        let entry = self.entry(task);
        if entry.status == TaskStatus::Switched && entry.state == Some(to) {
            return;
        }
        let was_switched = entry.status == TaskStatus::Switched;
        entry.task.comm.clone_from(&task.comm);
        entry.status = TaskStatus::Switched;
        entry.state = Some(to);
        entry.via = Some(via);
        entry.switched_ns = Some(ts_ns);
        entry.same_failure_streak = 0;
        if !was_switched {
            self.not_switched -= 1;
        }
    }

    pub fn blocked(
        &mut self,
        task: &TaskRef,
        reason: BlockReason,
        function: Option<&str>,
        attempts: u32,
        cpu: Option<u32>,
        ts_ns: u64,
    ) {
        let entry = self.entry(task);
        let was_switched = entry.status == TaskStatus::Switched;
        let same_failure = entry.reason == Some(reason) && entry.function.as_deref() == function;
        entry.same_failure_streak = if same_failure {
            entry.same_failure_streak + 1
        } else {
            1
        };
        entry.status = TaskStatus::Blocked;
        entry.attempts = attempts.max(entry.attempts + 1);
        entry.first_tried_ns.get_or_insert(ts_ns);
        entry.last_tried_ns = Some(ts_ns);
        entry.reason = Some(reason);
        entry.function = function.map(str::to_owned);
        entry.cpu = cpu;
        entry.via = None;
        entry.switched_ns = None;
        if was_switched {
            self.not_switched += 1;
        }
    }

    pub fn set_stack(&mut self, task: &TaskRef, frames: &[String]) {
        self.entry(task).stack = frames.to_vec();
    }

    /// Flips every task for a reversed transition: those that had switched
    /// must switch back, and the others already have the new target state.
    pub fn reverse(&mut self) {
        let mut not_switched = 0;
        for task in self.by_key.values_mut() {
            if task.status == TaskStatus::Switched {
                task.status = TaskStatus::Pending;
                task.via = None;
                task.switched_ns = None;
                not_switched += 1;
            } else {
                task.status = TaskStatus::Switched;
                task.via = Some(SwitchVia::Reversal);
            }
            task.state = task.state.map(PatchState::opposite);
            task.same_failure_streak = 0;
        }
        self.not_switched = not_switched;
    }

    /// Tasks that failed the same way for [`STUCK_STREAK`] checks in a row.
    pub fn stuck(&self) -> impl Iterator<Item = &Task> {
        self.by_key
            .values()
            .filter(|t| t.status == TaskStatus::Blocked && t.same_failure_streak >= STUCK_STREAK)
    }
}

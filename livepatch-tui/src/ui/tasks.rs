//! The tasks table's filter, sort order and selection, and the row order
//! they produce.

use std::{cmp::Reverse, collections::HashSet};

use crate::{
    event::TaskKind,
    model::{Task, TaskStatus, Tasks},
};

/// The subset of tasks the table shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskFilter {
    #[default]
    All,
    /// Tasks whose latest check failed.
    Blocked,
    /// Kernel threads, idle tasks included.
    Kthreads,
}

impl TaskFilter {
    pub fn next(self) -> Self {
        match self {
            Self::All => Self::Blocked,
            Self::Blocked => Self::Kthreads,
            Self::Kthreads => Self::All,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Blocked => "blocked",
            Self::Kthreads => "kthreads",
        }
    }

    fn accepts(self, task: &Task) -> bool {
        match self {
            Self::All => true,
            Self::Blocked => task.status == TaskStatus::Blocked,
            Self::Kthreads => matches!(task.task.task_kind, TaskKind::Kthread | TaskKind::Idle),
        }
    }
}

/// The order of the table's rows. Ties go to the lower pid, and idle tasks,
/// which all have pid 0, are ordered by CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskSort {
    /// Most failed checks first.
    #[default]
    Attempts,
    /// Maximum wait since the first failed check first.
    Waited,
    Pid,
    Comm,
}

impl TaskSort {
    pub fn next(self) -> Self {
        match self {
            Self::Attempts => Self::Waited,
            Self::Waited => Self::Pid,
            Self::Pid => Self::Comm,
            Self::Comm => Self::Attempts,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Attempts => "attempts",
            Self::Waited => "waited",
            Self::Pid => "pid",
            Self::Comm => "comm",
        }
    }

    fn sort(self, rows: &mut [&Task], now_ns: u64) {
        match self {
            Self::Attempts => {
                rows.sort_unstable_by_key(|t| (Reverse(t.attempts), t.task.pid, t.task.key()))
            }
            Self::Waited => rows
                .sort_unstable_by_key(|t| (Reverse(t.waited_ns(now_ns)), t.task.pid, t.task.key())),
            Self::Pid => rows.sort_unstable_by_key(|t| (t.task.pid, t.task.key())),
            Self::Comm => rows.sort_unstable_by(|a, b| {
                a.task
                    .comm
                    .cmp(&b.task.comm)
                    .then(a.task.pid.cmp(&b.task.pid))
            }),
        }
    }
}

/// The tasks table: its options, the rows they select in display order,
/// and the selected row, which follows its task when rows move.
#[derive(Clone, Debug, Default)]
pub struct TaskTable {
    pub filter: TaskFilter,
    pub sort: TaskSort,
    /// Case-insensitive part of the comm a task must contain.
    pub name: String,
    /// The name filter is being typed.
    pub editing: bool,
    /// Task keys ([`crate::event::TaskRef::key`]) in display order.
    pub rows: Vec<u64>,
    /// Keys of the tasks [`Tasks::stuck`] calls out.
    pub stuck: HashSet<u64>,
    pub selected: usize,
    selected_key: Option<u64>,
    /// First row shown, as a hint. Drawing keeps the selection in view.
    pub offset: usize,
}

impl TaskTable {
    /// Rebuilds the rows from the model's tasks.
    pub fn rebuild(&mut self, tasks: &Tasks, now_ns: u64) {
        let needle = self.name.to_lowercase();
        let mut rows: Vec<&Task> = tasks
            .iter()
            .filter(|t| self.filter.accepts(t))
            .filter(|t| needle.is_empty() || t.task.comm.to_lowercase().contains(&needle))
            .collect();
        self.sort.sort(&mut rows, now_ns);

        self.rows = rows.iter().map(|t| t.task.key()).collect();
        self.stuck = tasks.stuck().map(|t| t.task.key()).collect();
        self.follow_selected_key();
    }

    fn follow_selected_key(&mut self) {
        let found = self
            .selected_key
            .and_then(|key| self.rows.iter().position(|&row| row == key));
        match found {
            Some(index) => self.selected = index,
            None => {
                self.selected = self.selected.min(self.rows.len().saturating_sub(1));
                self.selected_key = self.rows.get(self.selected).copied();
            }
        }
    }

    /// Returns the key of the selected task, if the table has rows.
    pub fn selected_key(&self) -> Option<u64> {
        self.rows.get(self.selected).copied()
    }

    /// Selects a row by index, clamped to the rows there are.
    pub fn select(&mut self, index: usize) {
        self.selected = index.min(self.rows.len().saturating_sub(1));
        self.selected_key = self.rows.get(self.selected).copied();
    }
}

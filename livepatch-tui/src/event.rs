//! The one user-space vocabulary: what the probes, the sysfs reader and the
//! replay reader produce, what the model applies, and what the JSON log
//! writes.
//!
//! The JSON form is a contract (version [`VERSION`]): kinds and fields may be
//! added, never renamed or dropped without a new version.

use serde::{Deserialize, Serialize};

/// Version of the JSON Lines contract, written as `"v"` on every line.
pub const VERSION: u32 = 1;

/// One line of the log: an event and when it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Contract version, [`VERSION`].
    pub v: u32,
    /// CLOCK_MONOTONIC nanoseconds, as the kernel stamps its events.
    pub ts_ns: u64,
    #[serde(flatten)]
    pub event: Event,
}

impl Record {
    pub fn new(ts_ns: u64, event: Event) -> Self {
        Self {
            v: VERSION,
            ts_ns,
            event,
        }
    }
}

/// A patch state, as the kernel's `klp_target_state` and a task's
/// `patch_state` use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchState {
    Unpatched,
    Patched,
}

impl PatchState {
    /// Maps the kernel's value (0 unpatched, 1 patched); -1 and anything
    /// else are `None`.
    pub fn from_kernel(value: i64) -> Option<Self> {
        match value {
            0 => Some(Self::Unpatched),
            1 => Some(Self::Patched),
            _ => None,
        }
    }

    pub fn opposite(self) -> Self {
        match self {
            Self::Unpatched => Self::Patched,
            Self::Patched => Self::Unpatched,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unpatched => "unpatched",
            Self::Patched => "patched",
        }
    }
}

/// Path by which a task reached the target state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchVia {
    /// The transition code found no patched function on its stack.
    StackCheck,
    /// The task switched itself on its way back to user space.
    KernelExit,
    /// An idle task switched itself in the idle loop.
    IdleLoop,
    /// The task was created by a parent that had switched.
    Fork,
    /// An administrator forced the transition.
    Force,
    /// The transition was reversed before the task switched, so the task
    /// already had the new target state.
    Reversal,
}

impl SwitchVia {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StackCheck => "stack_check",
            Self::KernelExit => "kernel_exit",
            Self::IdleLoop => "idle_loop",
            Self::Fork => "fork",
            Self::Force => "force",
            Self::Reversal => "reversal",
        }
    }
}

/// Reason the transition code could not switch a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// The task was running on another CPU (`-EBUSY`).
    Running,
    /// The unwinder could not walk the task's stack reliably (`-EINVAL`).
    UnreliableStack,
    /// A function being patched or unpatched is on the task's stack
    /// (`-EADDRINUSE`).
    SleepingInFunction,
    /// Any other return code.
    Unknown,
}

impl BlockReason {
    /// Maps the return code of `klp_check_and_switch_task`.
    pub fn from_errno(code: i64) -> Self {
        match code {
            -16 => Self::Running,
            -22 => Self::UnreliableStack,
            -98 => Self::SleepingInFunction,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::UnreliableStack => "unreliable_stack",
            Self::SleepingInFunction => "sleeping_in_function",
            Self::Unknown => "unknown",
        }
    }
}

/// Sort of task an event is about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    #[default]
    User,
    Kthread,
    /// A per-CPU idle task (`swapper/N`, pid 0), absent from /proc.
    Idle,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Kthread => "kthread",
            Self::Idle => "idle",
        }
    }
}

/// A task as events name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    #[serde(default)]
    pub task_kind: TaskKind,
}

impl TaskRef {
    /// The model's key: the pid, except for idle tasks, which all have pid 0
    /// and are distinguished by the CPU in their name.
    pub fn key(&self) -> u64 {
        if self.task_kind != TaskKind::Idle {
            return u64::from(self.pid);
        }
        let cpu = self
            .comm
            .strip_prefix("swapper/")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(u32::MAX);
        (1 << 32) | u64::from(cpu)
    }
}

/// A loaded livepatch, as sysfs and the probes show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchInfo {
    pub name: String,
    pub enabled: bool,
    pub transition: bool,
    /// `replace_set`; `None` on kernels without replace sets.
    pub replace_set: Option<u32>,
    /// Whether the patch replaces all others (`replace` = 1, or a replace
    /// set); `None` when the kernel does not show it.
    pub cumulative: Option<bool>,
    /// Load order, 1 = first (`stack_order`, 6.14+); `None` when absent.
    pub stack_order: Option<u32>,
    /// The patch was forced: its module can never be removed.
    pub forced: bool,
    pub objects: Vec<ObjectInfo>,
    /// `klp_state` ids and versions, when the probes saw the patch load.
    #[serde(default)]
    pub states: Vec<StateInfo>,
}

/// A `klp_state` of a patch.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StateInfo {
    pub id: u64,
    pub version: u32,
}

/// An object of a patch: `vmlinux` or a module.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub name: String,
    /// `patched` (6.1+): the object's module is loaded and patched. `None`
    /// on kernels without the attribute.
    pub patched: Option<bool>,
    pub functions: Vec<FunctionInfo>,
}

/// A patched function: its name and its position among symbols of that
/// name (0 = the only one).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FunctionInfo {
    pub name: String,
    pub sympos: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// A validator result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule id, e.g. `cross-set-function`.
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    /// The function concerned, as `object:function,sympos`.
    pub function: Option<String>,
    /// The `klp_state` id concerned.
    pub state_id: Option<u64>,
    pub patches: Vec<String>,
}

/// Everything the tool reports. The `kind` tag is the JSON `"kind"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The loaded patches: at start and after every change.
    Inventory {
        patches: Vec<PatchInfo>,
    },
    PatchAdded {
        patch: String,
    },
    PatchRemoved {
        patch: String,
    },
    /// `klp_enable_patch` failed: the kernel refused the patch.
    PatchLoadFailed {
        patch: String,
        error: i32,
        /// Functions and `klp_state` ids that loaded patches of other
        /// replace sets already own, as far as the tool can tell.
        #[serde(default)]
        conflicts: Vec<String>,
    },
    TransitionStarted {
        patch: String,
        target: PatchState,
    },
    TransitionReversed {
        patch: String,
        target: PatchState,
    },
    TransitionForced {
        patch: String,
    },
    TransitionCompleted {
        patch: String,
        target: PatchState,
        duration_ms: f64,
        forced: bool,
    },
    TransitionCancelled {
        patch: String,
    },
    /// One pass of the kernel over all tasks (`klp_try_complete_transition`).
    TransitionPass {
        patch: String,
        pass: u32,
        duration_us: u64,
        tasks_left: u32,
    },
    TaskSwitched {
        #[serde(flatten)]
        task: TaskRef,
        to: PatchState,
        via: SwitchVia,
    },
    TaskBlocked {
        #[serde(flatten)]
        task: TaskRef,
        reason: BlockReason,
        /// The function on the stack, for `sleeping_in_function`.
        function: Option<String>,
        /// Checks of this task that failed so far in this transition.
        attempts: u32,
        /// The CPU the task ran on, for `running`.
        cpu: Option<u32>,
    },
    /// The kernel stack of a blocked task, innermost frame first; sent when
    /// it differs from the task's previous one in this transition.
    TaskStack {
        #[serde(flatten)]
        task: TaskRef,
        /// The patched function it sleeps in, to mark in the stack.
        function: Option<String>,
        /// `function+0xoffset [module]`, or a hex address without symbols.
        frames: Vec<String>,
    },
    /// A module that livepatches target is being loaded.
    ModuleComing {
        module: String,
    },
    /// A module that livepatches target is being removed.
    ModuleGoing {
        module: String,
    },
    ObjectPatched {
        object: String,
    },
    ObjectUnpatched {
        object: String,
    },
    /// A cumulative or same-set patch is unpatching the patches it replaces.
    PatchesReplaced {
        patch: String,
        /// The enabled patches it replaces, from the latest inventory.
        #[serde(default)]
        replaced: Vec<String>,
    },
    /// A function of a patch being enabled, as its module defines it.
    PatchFunction {
        patch: String,
        object: String,
        function: String,
        sympos: u32,
        /// Kernel address of the replacement function.
        new_func: u64,
        /// The patch has more objects or functions than the probe walks.
        truncated: bool,
    },
    /// Calls to one patched function during `interval_ms`.
    Calls {
        object: String,
        function: String,
        sympos: u32,
        /// Calls that entered the function, before the livepatch handler
        /// sent them on.
        entered: u64,
        /// Calls that ran the original code: `entered` minus those that
        /// reached a replacement.
        original: u64,
        /// Calls that reached each patch's replacement.
        patched: std::collections::BTreeMap<String, u64>,
        interval_ms: u64,
        /// Reason the counts cannot be trusted, when they cannot.
        blind_spot: Option<String>,
    },
    /// A `klp_state` of a patch being enabled (Linux 5.5+).
    PatchStateId {
        patch: String,
        id: u64,
        version: u32,
    },
    Finding(Finding),
    ProbeStatus {
        probe: String,
        attached: bool,
        reason: Option<String>,
        /// Feature the probe feeds, for people reading the status.
        feature: String,
    },
    /// Events the kernel dropped since the previous report.
    EventsLost {
        count: u64,
    },
}

impl Event {
    /// Returns the JSON `kind` of this event.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Inventory { .. } => "inventory",
            Self::PatchAdded { .. } => "patch_added",
            Self::PatchRemoved { .. } => "patch_removed",
            Self::PatchLoadFailed { .. } => "patch_load_failed",
            Self::TransitionStarted { .. } => "transition_started",
            Self::TransitionReversed { .. } => "transition_reversed",
            Self::TransitionForced { .. } => "transition_forced",
            Self::TransitionCompleted { .. } => "transition_completed",
            Self::TransitionCancelled { .. } => "transition_cancelled",
            Self::TransitionPass { .. } => "transition_pass",
            Self::TaskSwitched { .. } => "task_switched",
            Self::TaskBlocked { .. } => "task_blocked",
            Self::TaskStack { .. } => "task_stack",
            Self::ModuleComing { .. } => "module_coming",
            Self::ModuleGoing { .. } => "module_going",
            Self::ObjectPatched { .. } => "object_patched",
            Self::ObjectUnpatched { .. } => "object_unpatched",
            Self::PatchesReplaced { .. } => "patches_replaced",
            Self::PatchFunction { .. } => "patch_function",
            Self::Calls { .. } => "calls",
            Self::PatchStateId { .. } => "patch_state_id",
            Self::Finding(_) => "finding",
            Self::ProbeStatus { .. } => "probe_status",
            Self::EventsLost { .. } => "events_lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn to_value(record: &Record) -> serde_json::Value {
        serde_json::to_value(record).unwrap()
    }

    #[test]
    fn task_blocked_json_shape() {
        let record = Record::new(
            42,
            Event::TaskBlocked {
                task: TaskRef {
                    pid: 7,
                    tgid: 5,
                    comm: "kworker/0:1".into(),
                    task_kind: TaskKind::Kthread,
                },
                reason: BlockReason::SleepingInFunction,
                function: Some("busymod_work_func".into()),
                attempts: 3,
                cpu: None,
            },
        );
        let expected = json!({
            "v": 1, "ts_ns": 42, "kind": "task_blocked",
            "pid": 7, "tgid": 5, "comm": "kworker/0:1", "task_kind": "kthread",
            "reason": "sleeping_in_function", "function": "busymod_work_func",
            "attempts": 3, "cpu": null
        });
        assert_eq!(to_value(&record), expected);
    }

    #[test]
    fn transition_completed_json_shape() {
        let record = Record::new(
            1,
            Event::TransitionCompleted {
                patch: "livepatch_sample".into(),
                target: PatchState::Patched,
                duration_ms: 12.5,
                forced: false,
            },
        );
        let value = to_value(&record);
        assert_eq!(value["kind"], "transition_completed");
        assert_eq!(value["target"], "patched");
        assert_eq!(value["duration_ms"], 12.5);
        assert_eq!(value["forced"], false);
    }

    #[test]
    fn inventory_keeps_null_replace_set() {
        let patch = PatchInfo {
            name: "p".into(),
            ..Default::default()
        };
        let value = to_value(&Record::new(
            0,
            Event::Inventory {
                patches: vec![patch],
            },
        ));
        assert!(value["patches"][0]["replace_set"].is_null());
        assert!(value["patches"][0]["stack_order"].is_null());
    }

    #[test]
    fn record_round_trips_every_kind() {
        let task = TaskRef {
            pid: 1,
            tgid: 1,
            comm: "init".into(),
            task_kind: TaskKind::User,
        };
        let events = vec![
            Event::Inventory { patches: vec![] },
            Event::PatchAdded { patch: "a".into() },
            Event::PatchRemoved { patch: "a".into() },
            Event::PatchLoadFailed {
                patch: "a".into(),
                error: -22,
                conflicts: vec!["vmlinux:f,0 is patched by b in replace set 1".into()],
            },
            Event::TransitionStarted {
                patch: "a".into(),
                target: PatchState::Patched,
            },
            Event::TransitionReversed {
                patch: "a".into(),
                target: PatchState::Unpatched,
            },
            Event::TransitionForced { patch: "a".into() },
            Event::TransitionCancelled { patch: "a".into() },
            Event::TransitionPass {
                patch: "a".into(),
                pass: 2,
                duration_us: 10,
                tasks_left: 1,
            },
            Event::TaskSwitched {
                task: task.clone(),
                to: PatchState::Patched,
                via: SwitchVia::Fork,
            },
            Event::ModuleComing { module: "m".into() },
            Event::ModuleGoing { module: "m".into() },
            Event::ObjectPatched {
                object: "vmlinux".into(),
            },
            Event::ObjectUnpatched {
                object: "vmlinux".into(),
            },
            Event::PatchesReplaced {
                patch: "a".into(),
                replaced: vec!["b".into()],
            },
            Event::ProbeStatus {
                probe: "klp_init_transition".into(),
                attached: false,
                reason: Some("not found".into()),
                feature: "transitions".into(),
            },
            Event::EventsLost { count: 3 },
        ];
        for event in events {
            let record = Record::new(5, event);
            let line = serde_json::to_string(&record).unwrap();
            let back: Record = serde_json::from_str(&line).unwrap();
            assert_eq!(back, record, "{line}");
            assert!(line.contains(&format!("\"kind\":\"{}\"", record.event.kind())));
        }
    }

    #[test]
    fn idle_tasks_keyed_by_cpu() {
        let idle = |comm: &str| TaskRef {
            pid: 0,
            tgid: 0,
            comm: comm.into(),
            task_kind: TaskKind::Idle,
        };
        assert_ne!(idle("swapper/0").key(), idle("swapper/1").key());
        assert_ne!(idle("swapper/0").key(), 0);
    }
}

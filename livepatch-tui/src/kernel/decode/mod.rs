//! Turns raw ring-buffer records into [`Event`]s.
//!
//! The kernel hooks send what they see, one function call at a time; the
//! decoder adds what a single call cannot know: which patch the transition
//! belongs to, its target after reversals, how long it took, and how many
//! checks each task failed.

use std::collections::{HashMap, HashSet};

use livepatch_common::{
    COMM_LEN, CPU_UNKNOWN, PF_KTHREAD, RawAddress, RawEvent, RawFunction, RawKind, RawStack,
    RawState,
};

use crate::event::{BlockReason, Event, PatchState, Record, SwitchVia, TaskKind, TaskRef};

#[derive(Debug)]
struct Current {
    patch: String,
    target: PatchState,
    started_ns: u64,
    forced: bool,
    cancelled: bool,
    passes: u32,
    pass_started_ns: Option<u64>,
    /// Tasks that failed their check in the pass under way: what the kernel
    /// leaves for the next pass.
    pass_failures: u32,
    attempts: HashMap<u64, u32>,
    /// Tasks seen and not switched, by [`TaskRef::key`].
    unswitched: HashSet<u64>,
    /// Tasks seen switched.
    switched: HashSet<u64>,
    /// The task of the latest failed check, whose stack record follows.
    last_failed: Option<(TaskRef, Option<String>)>,
    /// The latest stack sent per task, to send only changes.
    stacks: HashMap<u64, Vec<u64>>,
}

/// Decoder state between records.
#[derive(Debug, Default)]
pub struct Decoder {
    current: Option<Current>,
    /// Patch being enabled by `klp_enable_patch`, by the enabling task.
    enabling: HashMap<u32, String>,
    /// Whether each patch seen loading replaces all others.
    cumulative: HashMap<String, bool>,
    /// Replace set of each patch seen loading, on kernels with replace sets.
    replace_sets: HashMap<String, u32>,
    /// `struct klp_patch` has `replace_set` in place of `replace`.
    kernel_has_replace_sets: bool,
    /// (original, replacement) entry addresses of the functions being
    /// patched, for the call counters; never part of the event stream.
    addresses: Vec<(u64, u64)>,
    /// Records the decoder could not read.
    pub unknown_records: u64,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a decoder for a kernel with or without replace sets, which
    /// changes what `klp_enable_patch` reports.
    pub fn for_kernel(has_replace_sets: bool) -> Self {
        Self {
            kernel_has_replace_sets: has_replace_sets,
            ..Self::default()
        }
    }

    /// `patch->replace_set` as seen when the patch was enabled, if the
    /// kernel has replace sets and the patch was seen.
    pub fn replace_set(&self, patch: &str) -> Option<u32> {
        self.replace_sets.get(patch).copied()
    }

    /// `patch->replace` as seen when the patch was enabled, if it was.
    pub fn cumulative(&self, patch: &str) -> Option<bool> {
        self.cumulative.get(patch).copied()
    }

    /// Takes the (original, replacement) address pairs decoded since the
    /// previous call, in the order the kernel patched them.
    pub fn take_addresses(&mut self) -> Vec<(u64, u64)> {
        std::mem::take(&mut self.addresses)
    }

    /// Decodes one ring-buffer record (its raw bytes) into events. Every
    /// record type starts with `ts_ns` and `kind`, so the kind picks the type.
    pub fn decode_bytes(&mut self, bytes: &[u8]) -> Vec<Record> {
        let kind = bytes
            .get(8..12)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .and_then(RawKind::from_u32);
        let records = match kind {
            Some(RawKind::PatchFunction) => {
                read_raw::<RawFunction>(bytes).map(|raw| function_record(&raw))
            }
            Some(RawKind::TaskStack) => {
                read_raw::<RawStack>(bytes).map(|raw| self.stack_record(&raw))
            }
            Some(RawKind::PatchStateId) => {
                read_raw::<RawState>(bytes).map(|raw| state_record(&raw))
            }
            Some(RawKind::FunctionAddress) => read_raw::<RawAddress>(bytes).map(|raw| {
                self.addresses.push((raw.old_func, raw.new_func));
                Vec::new()
            }),
            _ => read_raw::<RawEvent>(bytes).map(|raw| self.decode(&raw)),
        };
        records.unwrap_or_else(|| {
            self.unknown_records += 1;
            Vec::new()
        })
    }

    pub fn decode(&mut self, raw: &RawEvent) -> Vec<Record> {
        let Some(kind) = RawKind::from_u32(raw.kind) else {
            self.unknown_records += 1;
            return Vec::new();
        };
        let ts = raw.ts_ns;
        let events = self.decode_kind(kind, raw);
        events
            .into_iter()
            .map(|event| Record::new(ts, event))
            .collect()
    }

    fn decode_kind(&mut self, kind: RawKind, raw: &RawEvent) -> Vec<Event> {
        let name = c_string(&raw.name);
        match kind {
            RawKind::TransitionInit => self.start(name, raw),
            RawKind::TransitionStart => Vec::new(),
            RawKind::PassBegin => {
                if let Some(current) = &mut self.current {
                    current.passes += 1;
                    current.pass_started_ns = Some(raw.ts_ns);
                    current.pass_failures = 0;
                }
                Vec::new()
            }
            RawKind::PassEnd => self.end_pass(raw.ts_ns).into_iter().collect(),
            RawKind::TransitionComplete => self.complete(raw.ts_ns),
            RawKind::TransitionCancel => {
                if let Some(current) = &mut self.current {
                    // klp_cancel_transition() calls klp_complete_transition()
                    // next; that call ends the transition.
                    current.cancelled = true;
                }
                Vec::new()
            }
            RawKind::TransitionReverse => self.reverse(),
            RawKind::TransitionForce => self.force(),
            RawKind::TaskChecked => self.task_checked(raw, name),
            RawKind::TaskUpdate => self.task_update(raw),
            RawKind::TaskFork => self.task_fork(raw),
            RawKind::PatchEnable => {
                if raw.value >= 0 && self.kernel_has_replace_sets {
                    // Every patch replaces the enabled patches of its set.
                    self.cumulative.insert(name.clone(), true);
                    self.replace_sets.insert(name.clone(), raw.value as u32);
                } else if raw.value >= 0 {
                    self.cumulative.insert(name.clone(), raw.value & 0xff == 1);
                }
                self.enabling.insert(raw.pid, name);
                Vec::new()
            }
            RawKind::PatchEnableResult => {
                let patch = self.enabling.remove(&raw.pid).unwrap_or_default();
                if raw.value == 0 {
                    return Vec::new();
                }
                vec![Event::PatchLoadFailed {
                    patch,
                    error: raw.value as i32,
                    conflicts: Vec::new(),
                }]
            }
            RawKind::ModuleComing => vec![Event::ModuleComing { module: name }],
            RawKind::ModuleGoing => vec![Event::ModuleGoing { module: name }],
            RawKind::ObjectPatch => vec![Event::ObjectPatched {
                object: object_name(name),
            }],
            RawKind::ObjectUnpatch => vec![Event::ObjectUnpatched {
                object: object_name(name),
            }],
            RawKind::UnpatchReplaced => vec![Event::PatchesReplaced {
                patch: name,
                replaced: Vec::new(),
            }],
            // Sent as their own record types; see decode_bytes().
            RawKind::PatchFunction
            | RawKind::PatchStateId
            | RawKind::TaskStack
            | RawKind::FunctionAddress => Vec::new(),
        }
    }

    fn start(&mut self, patch: String, raw: &RawEvent) -> Vec<Event> {
        let target = PatchState::from_kernel(raw.value).unwrap_or(PatchState::Patched);
        self.current = Some(Current {
            patch: patch.clone(),
            target,
            started_ns: raw.ts_ns,
            forced: false,
            cancelled: false,
            passes: 0,
            pass_started_ns: None,
            pass_failures: 0,
            attempts: HashMap::new(),
            unswitched: HashSet::new(),
            switched: HashSet::new(),
            last_failed: None,
            stacks: HashMap::new(),
        });
        vec![Event::TransitionStarted { patch, target }]
    }

    fn end_pass(&mut self, ts_ns: u64) -> Option<Event> {
        let current = self.current.as_mut()?;
        let started = current.pass_started_ns.take()?;
        Some(Event::TransitionPass {
            patch: current.patch.clone(),
            pass: current.passes,
            duration_us: ts_ns.saturating_sub(started) / 1000,
            tasks_left: current.pass_failures,
        })
    }

    fn complete(&mut self, ts_ns: u64) -> Vec<Event> {
        // The last pass calls klp_complete_transition() before it returns.
        let mut events: Vec<Event> = self.end_pass(ts_ns).into_iter().collect();
        let Some(current) = self.current.take() else {
            return events;
        };
        if current.cancelled {
            events.push(Event::TransitionCancelled {
                patch: current.patch,
            });
            return events;
        }
        let duration_ms = ts_ns.saturating_sub(current.started_ns) as f64 / 1e6;
        events.push(Event::TransitionCompleted {
            patch: current.patch,
            target: current.target,
            duration_ms,
            forced: current.forced,
        });
        events
    }

    fn reverse(&mut self) -> Vec<Event> {
        let Some(current) = &mut self.current else {
            return Vec::new();
        };
        current.target = current.target.opposite();
        // Tasks that switched must switch back; the others already have the
        // new target state.
        std::mem::swap(&mut current.switched, &mut current.unswitched);
        current.attempts.clear();
        vec![Event::TransitionReversed {
            patch: current.patch.clone(),
            target: current.target,
        }]
    }

    fn force(&mut self) -> Vec<Event> {
        let Some(current) = &mut self.current else {
            return Vec::new();
        };
        current.forced = true;
        vec![Event::TransitionForced {
            patch: current.patch.clone(),
        }]
    }

    fn task_checked(&mut self, raw: &RawEvent, function: String) -> Vec<Event> {
        let task = task_ref(raw);
        let Some(current) = &mut self.current else {
            return Vec::new();
        };
        let key = task.key();
        if raw.value == 0 {
            return current
                .switch(task, SwitchVia::StackCheck)
                .into_iter()
                .collect();
        }

        current.unswitched.insert(key);
        current.pass_failures += 1;
        let attempts = current.attempts.entry(key).or_default();
        *attempts += 1;
        let reason = BlockReason::from_errno(raw.value);
        let cpu =
            (reason == BlockReason::Running && raw.task_cpu != CPU_UNKNOWN).then_some(raw.task_cpu);
        let function =
            (reason == BlockReason::SleepingInFunction && !function.is_empty()).then_some(function);
        current.last_failed = Some((task.clone(), function.clone()));
        vec![Event::TaskBlocked {
            task,
            reason,
            function,
            attempts: *attempts,
            cpu,
        }]
    }

    /// A blocked task's stack, with frames as hex addresses for the live
    /// source to name; nothing when it equals the task's previous stack.
    fn stack_record(&mut self, raw: &RawStack) -> Vec<Record> {
        let Some(current) = &mut self.current else {
            return Vec::new();
        };
        let Some((task, function)) = current.last_failed.take() else {
            return Vec::new();
        };
        if task.pid != raw.pid {
            return Vec::new();
        }
        let count = (raw.frames as usize).min(raw.ips.len());
        let ips = raw.ips[..count].to_vec();
        if current.stacks.get(&task.key()) == Some(&ips) {
            return Vec::new();
        }
        let frames = ips.iter().map(|ip| format!("{ip:#x}")).collect();
        current.stacks.insert(task.key(), ips);
        let event = Event::TaskStack {
            task,
            function,
            frames,
        };
        vec![Record::new(raw.ts_ns, event)]
    }

    fn task_update(&mut self, raw: &RawEvent) -> Vec<Event> {
        let task = task_ref(raw);
        let Some(current) = &mut self.current else {
            return Vec::new();
        };
        let via = if raw.value == 0 {
            SwitchVia::Force
        } else if task.task_kind == TaskKind::Idle {
            SwitchVia::IdleLoop
        } else {
            SwitchVia::KernelExit
        };
        current.switch(task, via).into_iter().collect()
    }

    fn task_fork(&mut self, raw: &RawEvent) -> Vec<Event> {
        let task = task_ref(raw);
        let Some(current) = &mut self.current else {
            return Vec::new();
        };
        if PatchState::from_kernel(raw.value) == Some(current.target) {
            return current.switch(task, SwitchVia::Fork).into_iter().collect();
        }
        // The child inherits an unswitched parent's state and is checked
        // like any other task.
        current.unswitched.insert(task.key());
        Vec::new()
    }
}

impl Current {
    fn switch(&mut self, task: TaskRef, via: SwitchVia) -> Option<Event> {
        let key = task.key();
        if !self.switched.insert(key) {
            return None;
        }
        self.unswitched.remove(&key);
        Some(Event::TaskSwitched {
            task,
            to: self.target,
            via,
        })
    }
}

/// Copies a record type out of the ring buffer's bytes; `None` when the
/// bytes are too short for it.
fn read_raw<T: Copy>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: the length is checked; the record types are plain integers and
    // byte arrays, valid for any bit pattern; read_unaligned copes with any
    // alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

fn function_record(raw: &RawFunction) -> Vec<Record> {
    let event = Event::PatchFunction {
        patch: c_string(&raw.patch),
        object: object_name(c_string(&raw.object)),
        function: c_string(&raw.function),
        sympos: super::sysfs::sysfs_sympos(raw.old_sympos),
        new_func: raw.new_func,
        truncated: raw.truncated != 0,
    };
    vec![Record::new(raw.ts_ns, event)]
}

fn state_record(raw: &RawState) -> Vec<Record> {
    let event = Event::PatchStateId {
        patch: c_string(&raw.patch),
        id: raw.id,
        version: raw.version,
    };
    vec![Record::new(raw.ts_ns, event)]
}

fn task_ref(raw: &RawEvent) -> TaskRef {
    let comm = c_string(&raw.comm[..COMM_LEN]);
    let task_kind = if raw.pid == 0 {
        TaskKind::Idle
    } else if raw.task_flags & PF_KTHREAD != 0 {
        TaskKind::Kthread
    } else {
        TaskKind::User
    };
    TaskRef {
        pid: raw.pid,
        tgid: raw.tgid,
        comm,
        task_kind,
    }
}

/// `klp_object.name` is NULL for the kernel itself.
fn object_name(name: String) -> String {
    if name.is_empty() {
        "vmlinux".to_owned()
    } else {
        name
    }
}

/// Returns the text before the first NUL, with invalid UTF-8 replaced.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests;

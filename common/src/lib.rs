//! Wire types shared by the eBPF programs and user space.
//!
//! Every type here is `repr(C)`, has no hidden padding (checked at compile
//! time) and uses fixed-width fields, so that both sides agree on the layout
//! without a schema.
#![no_std]

/// Bytes kept of a task's `comm` (the kernel's `TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// Bytes kept of a patch, module, object or function name, NUL included.
///
/// Module names are at most 55 bytes (`MODULE_NAME_LEN` is 64 minus a word).
/// Function names can be longer: they arrive cut and NUL-terminated.
pub const NAME_LEN: usize = 128;

/// Offset value that marks a field the running kernel does not have.
pub const OFFSET_MISSING: u32 = u32::MAX;

/// CPU number that marks "not known".
pub const CPU_UNKNOWN: u32 = u32::MAX;

/// `task_struct.flags` bit of kernel threads (`PF_KTHREAD`, stable since 2.6).
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// Kind of a [`RawEvent`]. Each value's documentation names the kernel hook
/// that sends it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawKind {
    /// fentry `klp_init_transition(patch, state)`: `name` is the patch,
    /// `value` the target state (0 unpatched, 1 patched).
    TransitionInit = 1,
    /// fentry `klp_start_transition()`: tasks get `TIF_PATCH_PENDING` now.
    TransitionStart = 2,
    /// fentry `klp_try_complete_transition()`: a pass over all tasks begins.
    PassBegin = 3,
    /// kretprobe `klp_try_complete_transition()`: the pass has ended.
    PassEnd = 4,
    /// fentry `klp_complete_transition()`.
    TransitionComplete = 5,
    /// fentry `klp_cancel_transition()`.
    TransitionCancel = 6,
    /// fentry `klp_reverse_transition()`.
    TransitionReverse = 7,
    /// fentry `klp_force_transition()`.
    TransitionForce = 8,
    /// kretprobe `klp_check_and_switch_task(task, &old_name)`: the task
    /// fields describe `task`; `value` is the return code (0, -EBUSY,
    /// -EINVAL, -EADDRINUSE); `name` is the function it sleeps in when the
    /// code is -EADDRINUSE.
    TaskChecked = 9,
    /// fentry `klp_update_patch_state(task)` with `TIF_PATCH_PENDING` set:
    /// the task switches on its way out of the kernel or in the idle loop
    /// (`value` 1, the task is the current one), or because the transition
    /// is being forced (`value` 0, another task switches it).
    TaskUpdate = 10,
    /// fentry `klp_copy_process(child)`: the task fields describe the child,
    /// `value` is the parent's `patch_state`, which the child inherits.
    TaskFork = 11,
    /// fentry `klp_enable_patch(patch)`: `name` is the patch's module.
    /// `value` is the u32 at [`KernelOffsets::klp_patch_replace`]:
    /// `replace_set` on kernels with replace sets, else `replace` in its low
    /// byte; -1 when unknown.
    PatchEnable = 12,
    /// kretprobe `klp_enable_patch()`: `value` is the return code.
    PatchEnableResult = 13,
    /// fentry `klp_module_coming(mod)`: `name` is the module.
    ModuleComing = 14,
    /// fentry `klp_module_going(mod)`: `name` is the module.
    ModuleGoing = 15,
    /// fentry `klp_patch_object(obj)`: `name` is the object (empty: vmlinux).
    ObjectPatch = 16,
    /// fentry `__klp_unpatch_object(obj, false)`: `name` is the object.
    ObjectUnpatch = 17,
    /// fentry `klp_unpatch_replaced_patches(new_patch)`: `name` is the new
    /// patch, whose replaced patches are being unpatched.
    UnpatchReplaced = 18,
    /// One function of a patch being enabled, sent as a [`RawFunction`].
    PatchFunction = 19,
    /// One `klp_state` of a patch being enabled, sent as a [`RawState`].
    PatchStateId = 20,
    /// The kernel stack of a task that failed its check, sent as a
    /// [`RawStack`] right after the [`RawKind::TaskChecked`] record.
    TaskStack = 21,
    /// kretprobe `klp_patch_object(obj)` returning 0: one per function of
    /// `obj`'s static array, sent as a [`RawAddress`]. The kernel has
    /// looked up each original and put its handler there by now.
    FunctionAddress = 22,
}

impl RawKind {
    /// Converts the wire value back, or `None` for a value this build does
    /// not know.
    pub fn from_u32(value: u32) -> Option<Self> {
        use RawKind::*;
        let kind = match value {
            1 => TransitionInit,
            2 => TransitionStart,
            3 => PassBegin,
            4 => PassEnd,
            5 => TransitionComplete,
            6 => TransitionCancel,
            7 => TransitionReverse,
            8 => TransitionForce,
            9 => TaskChecked,
            10 => TaskUpdate,
            11 => TaskFork,
            12 => PatchEnable,
            13 => PatchEnableResult,
            14 => ModuleComing,
            15 => ModuleGoing,
            16 => ObjectPatch,
            17 => ObjectUnpatch,
            18 => UnpatchReplaced,
            19 => PatchFunction,
            20 => PatchStateId,
            21 => TaskStack,
            22 => FunctionAddress,
            _ => return None,
        };
        Some(kind)
    }
}

/// One record in the ring buffer, sent by every hook.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawEvent {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// A [`RawKind`] value.
    pub kind: u32,
    /// CPU the hook ran on.
    pub cpu: u32,
    /// Thread id of the task the event is about: the hook's own task unless
    /// the kind's documentation names another; 0 for an idle task.
    pub pid: u32,
    /// Thread-group id of that task.
    pub tgid: u32,
    /// `task_struct.flags` of that task (`PF_*`).
    pub task_flags: u32,
    /// CPU that task last ran on, or [`CPU_UNKNOWN`].
    pub task_cpu: u32,
    /// Kind-specific value: a return code, a state or a flag.
    pub value: i64,
    /// `comm` of that task, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// Kind-specific name, NUL-terminated.
    pub name: [u8; NAME_LEN],
}

const _: () = assert!(core::mem::size_of::<RawEvent>() == 8 + 6 * 4 + 8 + COMM_LEN + NAME_LEN);

impl RawEvent {
    /// Returns an all-zero record, for the eBPF side to fill in place.
    pub const fn zeroed() -> Self {
        Self {
            ts_ns: 0,
            kind: 0,
            cpu: 0,
            pid: 0,
            tgid: 0,
            task_flags: 0,
            task_cpu: CPU_UNKNOWN,
            value: 0,
            comm: [0; COMM_LEN],
            name: [0; NAME_LEN],
        }
    }
}

/// Bytes kept of an object (module) name in [`RawFunction`].
pub const OBJECT_LEN: usize = 64;

/// Objects and functions per object walked in a patch's static arrays;
/// larger patches are reported cut, with [`RawFunction::truncated`] set.
pub const MAX_OBJECTS: u32 = 8;
/// See [`MAX_OBJECTS`].
pub const MAX_FUNCTIONS: u32 = 32;
/// `klp_state` entries walked per patch.
pub const MAX_STATES: u32 = 8;

/// One function of a patch, from its static `klp_object`/`klp_func`
/// arrays at `klp_enable_patch`. Shares its first two fields with
/// [`RawEvent`], so a reader can look at `kind` first.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawFunction {
    pub ts_ns: u64,
    /// [`RawKind::PatchFunction`].
    pub kind: u32,
    /// 1 when the walk stopped at [`MAX_OBJECTS`] or [`MAX_FUNCTIONS`].
    pub truncated: u32,
    /// `klp_func.new_func`: address of the replacement.
    pub new_func: u64,
    /// `klp_func.old_sympos` (0: the name is unique).
    pub old_sympos: u64,
    /// Patch (module) name.
    pub patch: [u8; OBJECT_LEN],
    /// `klp_object.name`; empty for vmlinux.
    pub object: [u8; OBJECT_LEN],
    /// `klp_func.old_name`.
    pub function: [u8; NAME_LEN],
}

const _: () =
    assert!(core::mem::size_of::<RawFunction>() == 8 + 4 + 4 + 8 + 8 + 2 * OBJECT_LEN + NAME_LEN);

/// One `klp_state` of a patch at `klp_enable_patch` (Linux 5.5+).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawState {
    pub ts_ns: u64,
    /// [`RawKind::PatchStateId`].
    pub kind: u32,
    /// `klp_state.version`.
    pub version: u32,
    /// `klp_state.id`.
    pub id: u64,
    /// Patch (module) name.
    pub patch: [u8; OBJECT_LEN],
}

const _: () = assert!(core::mem::size_of::<RawState>() == 8 + 4 + 4 + 8 + OBJECT_LEN);

/// Addresses of a patched function and of its replacement, from `klp_func`
/// when `klp_patch_object` returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawAddress {
    pub ts_ns: u64,
    /// [`RawKind::FunctionAddress`].
    pub kind: u32,
    /// Always zero; keeps the addresses aligned.
    pub reserved: u32,
    /// `klp_func.old_func`: entry of the original function.
    pub old_func: u64,
    /// `klp_func.new_func`: entry of the replacement.
    pub new_func: u64,
}

const _: () = assert!(core::mem::size_of::<RawAddress>() == 8 + 4 + 4 + 8 + 8);

/// Return addresses kept of a blocked task's kernel stack.
pub const STACK_FRAMES: usize = 32;

/// The kernel stack of a task that failed its check
/// (`bpf_get_task_stack`), innermost frame first.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawStack {
    pub ts_ns: u64,
    /// [`RawKind::TaskStack`].
    pub kind: u32,
    /// Thread id of the task.
    pub pid: u32,
    /// Frames filled in `ips`.
    pub frames: u32,
    /// Always zero; keeps `ips` aligned.
    pub reserved: u32,
    pub ips: [u64; STACK_FRAMES],
}

const _: () = assert!(core::mem::size_of::<RawStack>() == 8 + 4 * 4 + 8 * STACK_FRAMES);

/// Struct field offsets, in bytes, read from the running kernel's BTF at
/// start-up and handed to the eBPF programs as a load-time global.
///
/// A field the kernel lacks is [`OFFSET_MISSING`]; the programs then leave
/// the matching event field empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `struct klp_patch.mod`
    pub klp_patch_mod: u32,
    /// `struct module.name`
    pub module_name: u32,
    /// `struct klp_object.name`
    pub klp_object_name: u32,
    /// `struct task_struct.pid`
    pub task_pid: u32,
    /// `struct task_struct.tgid`
    pub task_tgid: u32,
    /// `struct task_struct.comm`
    pub task_comm: u32,
    /// `struct task_struct.flags`
    pub task_flags: u32,
    /// `struct task_struct.patch_state` (needs `CONFIG_LIVEPATCH`)
    pub task_patch_state: u32,
    /// `struct task_struct.thread_info.cpu` (x86-64 with `CONFIG_SMP`), or
    /// `struct task_struct.cpu` on architectures that keep it there.
    pub task_cpu: u32,
    /// `struct task_struct.thread_info.flags`
    pub task_thread_flags: u32,
    /// Bit number of `TIF_PATCH_PENDING` in the thread flags; an
    /// architecture constant, not in BTF (13 on x86-64).
    pub tif_patch_pending_bit: u32,
    /// `struct klp_patch.replace_set` (u32) on kernels with replace sets,
    /// else `struct klp_patch.replace` (bool, followed by padding that a
    /// static initializer leaves zero).
    pub klp_patch_replace: u32,
    /// `struct klp_patch.objs`
    pub klp_patch_objs: u32,
    /// `struct klp_patch.states` (5.5+)
    pub klp_patch_states: u32,
    /// `struct klp_object.funcs`
    pub klp_object_funcs: u32,
    /// `sizeof(struct klp_object)`: the stride of the static array.
    pub klp_object_size: u32,
    /// `struct klp_func.old_name`
    pub klp_func_old_name: u32,
    /// `struct klp_func.new_func`
    pub klp_func_new_func: u32,
    /// `struct klp_func.old_sympos`
    pub klp_func_old_sympos: u32,
    /// `struct klp_func.old_func`
    pub klp_func_old_func: u32,
    /// `sizeof(struct klp_func)`
    pub klp_func_size: u32,
    /// `struct klp_state.id`
    pub klp_state_id: u32,
    /// `struct klp_state.version`
    pub klp_state_version: u32,
    /// `sizeof(struct klp_state)`
    pub klp_state_size: u32,
}

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 24 * 4);

impl KernelOffsets {
    /// Offsets that mark every field missing.
    pub const fn missing() -> Self {
        Self {
            klp_patch_mod: OFFSET_MISSING,
            module_name: OFFSET_MISSING,
            klp_object_name: OFFSET_MISSING,
            task_pid: OFFSET_MISSING,
            task_tgid: OFFSET_MISSING,
            task_comm: OFFSET_MISSING,
            task_flags: OFFSET_MISSING,
            task_patch_state: OFFSET_MISSING,
            task_cpu: OFFSET_MISSING,
            task_thread_flags: OFFSET_MISSING,
            tif_patch_pending_bit: OFFSET_MISSING,
            klp_patch_replace: OFFSET_MISSING,
            klp_patch_objs: OFFSET_MISSING,
            klp_patch_states: OFFSET_MISSING,
            klp_object_funcs: OFFSET_MISSING,
            klp_object_size: OFFSET_MISSING,
            klp_func_old_name: OFFSET_MISSING,
            klp_func_new_func: OFFSET_MISSING,
            klp_func_old_sympos: OFFSET_MISSING,
            klp_func_old_func: OFFSET_MISSING,
            klp_func_size: OFFSET_MISSING,
            klp_state_id: OFFSET_MISSING,
            klp_state_version: OFFSET_MISSING,
            klp_state_size: OFFSET_MISSING,
        }
    }
}

/// Arguments saved at the entry of `klp_check_and_switch_task` for its
/// kretprobe, which no longer has them.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CheckArgs {
    /// `struct task_struct *` being checked.
    pub task: u64,
    /// `const char **old_name` the kernel fills in on -EADDRINUSE.
    pub old_name: u64,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: both types are repr(C), Copy, made of integers only and have
    // no padding (see the size checks above), so every bit pattern is valid.
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::RawEvent {}
    unsafe impl aya::Pod for super::RawFunction {}
    unsafe impl aya::Pod for super::RawState {}
    unsafe impl aya::Pod for super::RawStack {}
    unsafe impl aya::Pod for super::RawAddress {}
}

//! eBPF programs around the kernel's livepatch code (kernel/livepatch/).
//!
//! Each program reads what it needs, fills one [`RawEvent`] in the ring
//! buffer and returns. Struct offsets arrive in [`OFFSETS`], which the loader
//! sets from the running kernel's BTF.
//!
//! No program here may stay on a stack that the kernel checks for
//! reliability: the 6.1 ORC unwinder cannot walk through a BPF trampoline, so
//! an fexit program on any function of the transition path would make the
//! current task's stack "unreliable" and stall transitions. Entries use
//! fentry (the trampoline returns before the function body runs); returns use
//! kretprobes, whose trampoline the unwinder recognises.
#![no_std]
#![no_main]

mod read;
mod walk;

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns},
    macros::{fentry, kprobe, kretprobe, map},
    maps::{HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{FEntryContext, ProbeContext, RetProbeContext},
};
use aya_log_ebpf::debug;
use livepatch_common::{CheckArgs, KernelOffsets, RawEvent, RawKind, RawStack, STACK_FRAMES};

use crate::read::{read_field, read_str_at, read_str_field, read_task};

/// Set by the loader before the programs load.
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets::missing();

/// All events, in the order the hooks ran. The loader may resize it.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Events that did not fit in [`EVENTS`], per CPU; user space sums them.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Arguments of `klp_check_and_switch_task`, by the checking task's
/// pid_tgid, from the kprobe at its entry to the kretprobe at its return.
#[map]
static CHECK_ARGS: HashMap<u64, CheckArgs> = HashMap::with_max_entries(4096, 0);

/// `-EADDRINUSE`: the checked task sleeps in a function being patched.
const EADDRINUSE: i64 = -98;
/// `-EINVAL`: the checked task's stack is unreliable.
const EINVAL: i64 = -22;

/// Stack of the task being checked on this CPU, taken at the entry of
/// `klp_check_and_switch_task` for tasks that failed a check before. The
/// kretprobe sends it when the check fails again. Both run on the same CPU
/// because the caller holds `tasklist_lock` with preemption off.
#[map]
static STACK_SCRATCH: PerCpuArray<RawStack> = PerCpuArray::with_max_entries(1, 0);

/// Tasks (by pid) whose latest check failed. Only their stacks are taken,
/// so a pass over thousands of switching tasks walks no stacks.
#[map]
static FAILED: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);

/// Sends the stack taken for `pid` at the entry of this check, if any.
#[inline(always)]
fn emit_stack(pid: u32) {
    let Some(scratch) = STACK_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the per-CPU slot belongs to this CPU while the program runs.
    let scratch = unsafe { &mut *scratch };
    if scratch.pid != pid || scratch.frames == 0 {
        return;
    }
    if EVENTS.output::<RawStack>(&*scratch, NO_WAKEUP).is_err() {
        count_lost();
    }
    // A later check of the same task without a fresh stack sends nothing.
    scratch.frames = 0;
}

/// Takes the stack of a task that failed its previous check. fentry gives
/// the task as a typed pointer, which `bpf_get_task_stack` requires; the
/// kprobe at the same entry cannot pass it.
#[fentry(function = "klp_check_and_switch_task")]
pub fn klp_check_and_switch_task_stack(ctx: FEntryContext) -> u32 {
    let task: *const u8 = ctx.arg(0);
    let pid = read_field::<i32>(task, offsets().task_pid).unwrap_or(0) as u32;
    // SAFETY: the value is only tested for presence.
    if unsafe { FAILED.get(&pid) }.is_none() {
        return 0;
    }
    let Some(scratch) = STACK_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: the per-CPU slot belongs to this CPU while the program runs.
    let scratch = unsafe { &mut *scratch };
    scratch.ts_ns = unsafe { bpf_ktime_get_ns() };
    scratch.kind = RawKind::TaskStack as u32;
    scratch.pid = pid;
    let size = (STACK_FRAMES * 8) as u32;
    // SAFETY: `ips` is STACK_FRAMES u64s in the map value.
    let bytes = unsafe {
        aya_ebpf::helpers::generated::bpf_get_task_stack(
            task as *mut _,
            scratch.ips.as_mut_ptr().cast(),
            size,
            0,
        )
    };
    scratch.frames = if bytes > 0 { (bytes / 8) as u32 } else { 0 };
    0
}

fn offsets() -> KernelOffsets {
    // SAFETY: OFFSETS is a plain global; the volatile read keeps the compiler
    // from folding the load-time value into the default.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

pub(crate) fn count_lost() {
    if let Some(counter) = LOST.get_ptr_mut(0) {
        // SAFETY: the per-CPU slot belongs to this CPU while the program runs.
        unsafe { *counter += 1 };
    }
}

/// `BPF_RB_NO_WAKEUP`: the record waits in the ring buffer for a later
/// wakeup, or for user space's next periodic read.
pub(crate) const NO_WAKEUP: u64 = 1;
/// `BPF_RB_FORCE_WAKEUP`: user space wakes now.
pub(crate) const FORCE_WAKEUP: u64 = 2;

/// Ring buffer flags for a record of `kind`. User space wakes only when the
/// kernel has finished a pass over the tasks, a load or a transition. A
/// tool thread woken during a pass would be running when the kernel checks
/// it, and the transition would wait a second for the next pass.
#[inline(always)]
fn wakeup(kind: RawKind) -> u64 {
    match kind {
        RawKind::PassEnd | RawKind::PatchEnableResult | RawKind::TransitionComplete => FORCE_WAKEUP,
        _ => NO_WAKEUP,
    }
}

/// Reserves one record, lets `fill` write it, and submits it. A full ring
/// buffer is counted in [`LOST`], never waited on.
#[inline(always)]
fn emit(kind: RawKind, fill: impl FnOnce(&mut RawEvent)) {
    let Some(mut entry) = EVENTS.reserve::<RawEvent>(0) else {
        count_lost();
        return;
    };
    let event = entry.write(RawEvent::zeroed());

    // SAFETY: plain helpers without arguments.
    event.ts_ns = unsafe { bpf_ktime_get_ns() };
    event.cpu = unsafe { aya_ebpf::helpers::bpf_get_smp_processor_id() };
    event.kind = kind as u32;
    fill(event);

    entry.submit(wakeup(kind));
}

/// Emits an event about the current task.
#[inline(always)]
fn emit_current(kind: RawKind, fill: impl FnOnce(&mut RawEvent)) {
    emit(kind, |event| {
        let task = unsafe { bpf_get_current_task() } as *const u8;
        read_task(event, task, &offsets());
        fill(event);
    });
}

/// Emits an event named after `patch->mod->name`.
#[inline(always)]
fn emit_patch(kind: RawKind, patch: *const u8, value: i64) {
    emit_current(kind, |event| {
        let offsets = offsets();
        let module: *const u8 =
            read_field(patch, offsets.klp_patch_mod).unwrap_or(core::ptr::null());
        read_str_at(&mut event.name, module, offsets.module_name);
        event.value = value;
    });
}

#[fentry(function = "klp_init_transition")]
pub fn klp_init_transition(ctx: FEntryContext) -> u32 {
    let patch: *const u8 = ctx.arg(0);
    let state: i32 = ctx.arg(1);
    emit_patch(RawKind::TransitionInit, patch, state as i64);
    0
}

#[fentry(function = "klp_start_transition")]
pub fn klp_start_transition(_ctx: FEntryContext) -> u32 {
    emit_current(RawKind::TransitionStart, |_| {});
    0
}

#[fentry(function = "klp_try_complete_transition")]
pub fn klp_try_complete_transition(_ctx: FEntryContext) -> u32 {
    emit_current(RawKind::PassBegin, |_| {});
    0
}

#[kretprobe]
pub fn klp_try_complete_transition_ret(_ctx: RetProbeContext) -> u32 {
    emit_current(RawKind::PassEnd, |_| {});
    0
}

#[fentry(function = "klp_complete_transition")]
pub fn klp_complete_transition(_ctx: FEntryContext) -> u32 {
    emit_current(RawKind::TransitionComplete, |_| {});
    0
}

#[fentry(function = "klp_cancel_transition")]
pub fn klp_cancel_transition(_ctx: FEntryContext) -> u32 {
    emit_current(RawKind::TransitionCancel, |_| {});
    0
}

#[fentry(function = "klp_reverse_transition")]
pub fn klp_reverse_transition(_ctx: FEntryContext) -> u32 {
    emit_current(RawKind::TransitionReverse, |_| {});
    0
}

#[fentry(function = "klp_force_transition")]
pub fn klp_force_transition(_ctx: FEntryContext) -> u32 {
    emit_current(RawKind::TransitionForce, |_| {});
    0
}

#[kprobe]
pub fn klp_check_and_switch_task(ctx: ProbeContext) -> u32 {
    let (Some(task), Some(old_name)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return 0;
    };
    let key = bpf_get_current_pid_tgid();
    // A full map only costs the blocking function's name for this check.
    let _ = CHECK_ARGS.insert(key, CheckArgs { task, old_name }, 0);
    0
}

#[kretprobe]
pub fn klp_check_and_switch_task_ret(ctx: RetProbeContext) -> u32 {
    let key = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before the entry is removed.
    let Some(args) = (unsafe { CHECK_ARGS.get(key) }).copied() else {
        return 0;
    };
    let _ = CHECK_ARGS.remove(key);
    let code: i64 = ctx.ret::<i32>() as i64;

    emit(RawKind::TaskChecked, |event| {
        read_task(event, args.task as *const u8, &offsets());
        event.value = code;
        if code == EADDRINUSE {
            let name: *const u8 =
                read_field(args.old_name as *const u8, 0).unwrap_or(core::ptr::null());
            read_str_at(&mut event.name, name, 0);
        }
    });
    let pid = read_field::<i32>(args.task as *const u8, offsets().task_pid).unwrap_or(0) as u32;
    if code == 0 {
        let _ = FAILED.remove(&pid);
    } else {
        if code == EADDRINUSE || code == EINVAL {
            emit_stack(pid);
        }
        let _ = FAILED.insert(&pid, &1, 0);
    }
    if code != 0 && code != EADDRINUSE && code != -16 && code != EINVAL {
        debug!(&ctx, "klp_check_and_switch_task returned {}", code);
    }
    0
}

#[fentry(function = "klp_update_patch_state")]
pub fn klp_update_patch_state(ctx: FEntryContext) -> u32 {
    let task: *const u8 = ctx.arg(0);
    let offsets = offsets();

    // The callers test TIF_PATCH_PENDING first, but another CPU may have
    // switched the task meanwhile; only a pending task switches here.
    let flags: u64 = read_field(task, offsets.task_thread_flags).unwrap_or(0);
    let bit = offsets.tif_patch_pending_bit;
    if bit >= 64 || flags & (1u64 << bit) == 0 {
        return 0;
    }

    let current = unsafe { bpf_get_current_task() } as *const u8;
    emit(RawKind::TaskUpdate, |event| {
        read_task(event, task, &offsets);
        event.value = i64::from(current == task);
    });
    0
}

#[fentry(function = "klp_copy_process")]
pub fn klp_copy_process(ctx: FEntryContext) -> u32 {
    let child: *const u8 = ctx.arg(0);
    let offsets = offsets();
    let parent = unsafe { bpf_get_current_task() } as *const u8;
    let parent_state: i32 = read_field(parent, offsets.task_patch_state).unwrap_or(-1);

    // Every fork in the system comes here; only forks during a transition
    // (a parent state other than KLP_UNDEFINED, -1) matter.
    if parent_state < 0 {
        return 0;
    }

    emit(RawKind::TaskFork, |event| {
        read_task(event, child, &offsets);
        event.value = parent_state as i64;
    });
    0
}

#[fentry(function = "klp_enable_patch")]
pub fn klp_enable_patch(ctx: FEntryContext) -> u32 {
    let patch: *const u8 = ctx.arg(0);
    let offsets = offsets();

    // The long unrolled walk comes first and the rest stays branch-poor:
    // every branch before or around it makes the verifier check the walk
    // once more, which took a minute in the lab's emulated guest.
    walk::walk_patch(patch, &offsets);

    let replace = read_field::<u32>(patch, offsets.klp_patch_replace).map_or(-1, i64::from);
    emit_patch(RawKind::PatchEnable, patch, replace);
    // A full map only wakes user space early for this load.
    let _ = ENABLING.insert(bpf_get_current_pid_tgid(), 1, 0);
    0
}

/// Tasks inside `klp_enable_patch`, by pid_tgid: the objects they patch
/// are about to go through a first pass over the tasks.
#[map]
static ENABLING: HashMap<u64, u8> = HashMap::with_max_entries(64, 0);

#[kretprobe]
pub fn klp_enable_patch_ret(ctx: RetProbeContext) -> u32 {
    let _ = ENABLING.remove(bpf_get_current_pid_tgid());
    let code: i32 = ctx.ret();
    emit_current(RawKind::PatchEnableResult, |event| {
        event.value = code as i64
    });
    0
}

#[fentry(function = "klp_module_coming")]
pub fn klp_module_coming(ctx: FEntryContext) -> u32 {
    emit_module(RawKind::ModuleComing, ctx.arg(0));
    0
}

#[fentry(function = "klp_module_going")]
pub fn klp_module_going(ctx: FEntryContext) -> u32 {
    emit_module(RawKind::ModuleGoing, ctx.arg(0));
    0
}

#[inline(always)]
fn emit_module(kind: RawKind, module: *const u8) {
    emit_current(kind, |event| {
        read_str_at(&mut event.name, module, offsets().module_name)
    });
}

#[fentry(function = "klp_patch_object")]
pub fn klp_patch_object(ctx: FEntryContext) -> u32 {
    let object: *const u8 = ctx.arg(0);
    emit_object(RawKind::ObjectPatch, object);
    // A full map only costs the call counters of this object.
    let _ = PATCHING_OBJECT.insert(bpf_get_current_pid_tgid(), object as u64, 0);
    0
}

/// Object being patched by `klp_patch_object`, by the patching task's
/// pid_tgid, from its entry to its return.
#[map]
static PATCHING_OBJECT: HashMap<u64, u64> = HashMap::with_max_entries(64, 0);

/// Sends the addresses of the object's functions once `klp_patch_object`
/// has put the livepatch handler on each of them, so that the counters user
/// space attaches then do not race with the kernel's own ftrace update.
#[kretprobe]
pub fn klp_patch_object_ret(ctx: RetProbeContext) -> u32 {
    let key = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before the entry is removed.
    let Some(object) = (unsafe { PATCHING_OBJECT.get(key) }).copied() else {
        return 0;
    };
    let _ = PATCHING_OBJECT.remove(key);
    if ctx.ret::<i32>() == 0 {
        // While a patch is being enabled, the first pass follows at once;
        // a target module that loads later has no pass to wait for.
        // SAFETY: the value is only tested for presence.
        let flags = if unsafe { ENABLING.get(key) }.is_some() {
            NO_WAKEUP
        } else {
            FORCE_WAKEUP
        };
        walk::walk_addresses(object as *const u8, &offsets(), flags);
    }
    0
}

/// `__klp_unpatch_object(obj, nops_only)` is what every path that unpatches
/// an object calls (a disabled patch, a replaced one, a module going away);
/// `klp_unpatch_object()` only wraps it for the last. With `nops_only`, a
/// cumulative patch drops its no-op functions and the object stays patched.
#[fentry(function = "__klp_unpatch_object")]
pub fn klp_unpatch_object(ctx: FEntryContext) -> u32 {
    let nops_only: u64 = ctx.arg(1);
    if nops_only & 0xff == 0 {
        emit_object(RawKind::ObjectUnpatch, ctx.arg(0));
    }
    0
}

/// Emits an event named after `obj->name`, which is NULL for vmlinux.
#[inline(always)]
fn emit_object(kind: RawKind, object: *const u8) {
    emit_current(kind, |event| {
        read_str_field(&mut event.name, object, offsets().klp_object_name)
    });
}

#[fentry(function = "klp_unpatch_replaced_patches")]
pub fn klp_unpatch_replaced_patches(ctx: FEntryContext) -> u32 {
    emit_patch(RawKind::UnpatchReplaced, ctx.arg(0), 0);
    0
}

/// Calls counted per function address, per CPU. The key is the address
/// the kprobe fired at; user space maps it back to a function.
#[map]
static CALLS: PerCpuHashMap<u64, u64> = PerCpuHashMap::with_max_entries(4096, 0);

/// Attached by user space to each patched function and each replacement.
#[kprobe]
pub fn count_call(ctx: ProbeContext) -> u32 {
    // SAFETY: the context pointer comes from the kernel for this program.
    let address = unsafe { aya_ebpf::helpers::generated::bpf_get_func_ip(ctx.as_ptr()) };
    match CALLS.get_ptr_mut(address) {
        // SAFETY: a per-CPU slot is only touched by this CPU.
        Some(count) => unsafe { *count += 1 },
        None => {
            let _ = CALLS.insert(address, 1, 0);
        }
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

//! Reads of kernel memory at offsets taken from BTF.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes};
use livepatch_common::{COMM_LEN, CPU_UNKNOWN, KernelOffsets, OFFSET_MISSING, RawEvent};

/// Reads the `T` at `base + offset`, or `None` when the base is NULL, the
/// kernel lacks the field, or the read faults.
#[inline(always)]
pub fn read_field<T>(base: *const u8, offset: u32) -> Option<T> {
    if base.is_null() || offset == OFFSET_MISSING {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address and fails cleanly.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T).ok() }
}

/// Copies the NUL-terminated string stored inline at `base + offset` (a
/// `char name[N]` member) into `dest`. Leaves `dest` empty on failure.
#[inline(always)]
pub fn read_str_at(dest: &mut [u8], base: *const u8, offset: u32) {
    if base.is_null() || offset == OFFSET_MISSING {
        return;
    }
    // SAFETY: the helper checks the address and always NUL-terminates.
    let _ = unsafe { bpf_probe_read_kernel_str_bytes(base.wrapping_add(offset as usize), dest) };
}

/// Copies the string that the `const char *` member at `base + offset`
/// points to into `dest`. Leaves `dest` empty when the pointer is NULL.
#[inline(always)]
pub fn read_str_field(dest: &mut [u8], base: *const u8, offset: u32) {
    let pointer: *const u8 = read_field(base, offset).unwrap_or(core::ptr::null());
    read_str_at(dest, pointer, 0);
}

/// Fills the task fields of `event` from `task`.
#[inline(always)]
pub fn read_task(event: &mut RawEvent, task: *const u8, offsets: &KernelOffsets) {
    event.pid = read_field::<i32>(task, offsets.task_pid).unwrap_or(0) as u32;
    event.tgid = read_field::<i32>(task, offsets.task_tgid).unwrap_or(0) as u32;
    event.task_flags = read_field::<u32>(task, offsets.task_flags).unwrap_or(0);
    event.task_cpu = read_field::<u32>(task, offsets.task_cpu).unwrap_or(CPU_UNKNOWN);
    event.comm = read_field::<[u8; COMM_LEN]>(task, offsets.task_comm).unwrap_or([0; COMM_LEN]);
}

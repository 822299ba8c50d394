//! Walks a patch's static `klp_object`, `klp_func` and `klp_state` arrays
//! (as its module defines them) when the patch is enabled, and sends one
//! record per function and per state.
//!
//! The walks are unrolled by a macro instead of written as loops: the loops
//! rustc emits close through a fall-through edge, which the 6.1 verifier
//! rejects ("back-edge from insn ...") even for bounded loops.

/// Runs `$body` with `$index` bound to each listed constant, in order.
macro_rules! unrolled {
    ($index:ident in [$($value:literal),*] $body:block) => {
        $( { let $index: u32 = $value; $body } )*
    };
}

use aya_ebpf::helpers::bpf_ktime_get_ns;
use livepatch_common::{
    KernelOffsets, MAX_FUNCTIONS, OBJECT_LEN, OFFSET_MISSING, RawAddress, RawFunction, RawKind,
    RawState,
};

use crate::{
    EVENTS, NO_WAKEUP, count_lost,
    read::{read_field, read_str_at, read_str_field},
};

/// Sends the functions and states of `patch`.
pub fn walk_patch(patch: *const u8, offsets: &KernelOffsets) {
    let mut name = [0u8; OBJECT_LEN];
    let module: *const u8 = read_field(patch, offsets.klp_patch_mod).unwrap_or(core::ptr::null());
    read_str_at(&mut name, module, offsets.module_name);

    walk_objects(patch, &name, offsets);
    walk_states(patch, &name, offsets);
}

fn walk_objects(patch: *const u8, name: &[u8; OBJECT_LEN], offsets: &KernelOffsets) {
    if offsets.klp_object_size == OFFSET_MISSING || offsets.klp_func_size == OFFSET_MISSING {
        return;
    }
    let Some(objects) = read_field::<u64>(patch, offsets.klp_patch_objs) else {
        return;
    };
    unrolled!(index in [0, 1, 2, 3, 4, 5, 6, 7] {
        let object = (objects + u64::from(index) * u64::from(offsets.klp_object_size)) as *const u8;
        let object_name: u64 = read_field(object, offsets.klp_object_name).unwrap_or(0);
        let functions: u64 = read_field(object, offsets.klp_object_funcs).unwrap_or(0);
        // klp_for_each_object_static() ends at an entry without both.
        if object_name == 0 && functions == 0 {
            return;
        }
        walk_functions(object, functions, name, offsets);
    });
}

/// One entry of an object's static `klp_func` array.
struct StaticFunction {
    function: *const u8,
    old_name: u64,
    new_func: u64,
    old_sympos: u64,
}

/// Reads entry `index` of the static `klp_func` array at `functions`;
/// `None` at the all-zero entry that ends it
/// (`klp_for_each_func_static()`).
#[inline(always)]
fn static_function(functions: u64, index: u32, offsets: &KernelOffsets) -> Option<StaticFunction> {
    let function = (functions + u64::from(index) * u64::from(offsets.klp_func_size)) as *const u8;
    let old_name: u64 = read_field(function, offsets.klp_func_old_name).unwrap_or(0);
    let new_func: u64 = read_field(function, offsets.klp_func_new_func).unwrap_or(0);
    let old_sympos: u64 = read_field(function, offsets.klp_func_old_sympos).unwrap_or(0);
    if old_name == 0 && new_func == 0 && old_sympos == 0 {
        return None;
    }
    Some(StaticFunction {
        function,
        old_name,
        new_func,
        old_sympos,
    })
}

#[inline(never)]
fn walk_functions(
    object: *const u8,
    functions: u64,
    patch: &[u8; OBJECT_LEN],
    offsets: &KernelOffsets,
) {
    unrolled!(index in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31] {
        let Some(StaticFunction { old_name, new_func, old_sympos, .. }) =
            static_function(functions, index, offsets)
        else {
            return;
        };

        if let Some(mut entry) = EVENTS.reserve::<RawFunction>(0) {
        let record = entry.write(RawFunction {
            ts_ns: unsafe { bpf_ktime_get_ns() },
            kind: RawKind::PatchFunction as u32,
            truncated: u32::from(index + 1 == MAX_FUNCTIONS),
            new_func,
            old_sympos,
            patch: *patch,
            object: [0; OBJECT_LEN],
            function: [0; livepatch_common::NAME_LEN],
        });
            read_str_field(&mut record.object, object, offsets.klp_object_name);
            read_str_at(&mut record.function, old_name as *const u8, 0);
            entry.submit(NO_WAKEUP);
        } else {
            count_lost();
        }
    });
}

/// Sends the address of each function of `object` and of its replacement.
/// Runs when `klp_patch_object` returns: the kernel has looked up the
/// originals by then.
pub fn walk_addresses(object: *const u8, offsets: &KernelOffsets, flags: u64) {
    if offsets.klp_func_size == OFFSET_MISSING || offsets.klp_func_old_func == OFFSET_MISSING {
        return;
    }
    // NULL for the objects the kernel adds to a cumulative patch: their
    // functions are no-ops that leave the original running.
    let functions: u64 = read_field(object, offsets.klp_object_funcs).unwrap_or(0);
    if functions == 0 {
        return;
    }
    unrolled!(index in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31] {
        let Some(StaticFunction { function, new_func, .. }) =
            static_function(functions, index, offsets)
        else {
            return;
        };
        let record = RawAddress {
            ts_ns: unsafe { bpf_ktime_get_ns() },
            kind: RawKind::FunctionAddress as u32,
            reserved: 0,
            old_func: read_field(function, offsets.klp_func_old_func).unwrap_or(0),
            new_func,
        };
        if EVENTS.output::<RawAddress>(&record, flags).is_err() {
            count_lost();
        }
    });
}

fn walk_states(patch: *const u8, name: &[u8; OBJECT_LEN], offsets: &KernelOffsets) {
    if offsets.klp_state_size == OFFSET_MISSING {
        return;
    }
    let Some(states) = read_field::<u64>(patch, offsets.klp_patch_states) else {
        return;
    };
    if states == 0 {
        return;
    }
    unrolled!(index in [0, 1, 2, 3, 4, 5, 6, 7] {
        let state = (states + u64::from(index) * u64::from(offsets.klp_state_size)) as *const u8;
        // klp_for_each_state() ends at id 0.
        let id: u64 = read_field(state, offsets.klp_state_id).unwrap_or(0);
        if id == 0 {
            return;
        }
        let version: u32 = read_field(state, offsets.klp_state_version).unwrap_or(0);
        let record = RawState {
            ts_ns: unsafe { bpf_ktime_get_ns() },
            kind: RawKind::PatchStateId as u32,
            version,
            id,
            patch: *name,
        };
        if EVENTS.output::<RawState>(&record, NO_WAKEUP).is_err() {
            count_lost();
        }
    });
}

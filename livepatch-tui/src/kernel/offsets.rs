//! The struct offsets the eBPF programs need, from the running kernel's BTF.

use livepatch_common::{KernelOffsets, OFFSET_MISSING};

use super::btf::Btf;

/// `TIF_PATCH_PENDING` of the architecture this binary runs on: an
/// architecture constant that BTF does not carry.
const TIF_PATCH_PENDING: Option<u32> = if cfg!(target_arch = "x86_64") {
    // arch/x86/include/asm/thread_info.h, unchanged since 4.12.
    Some(13)
} else {
    None
};

/// Offsets found in `btf`, and the dotted names of those that are missing.
pub fn kernel_offsets(btf: &Btf) -> (KernelOffsets, Vec<&'static str>) {
    let mut missing = Vec::new();
    let mut missing_members = Vec::new();
    let mut find = |struct_name: &str, paths: &[&'static str]| -> u32 {
        for path in paths {
            if let Some(offset) = btf.member_offset(struct_name, path) {
                return offset;
            }
        }
        missing_members.push(paths[0]);
        OFFSET_MISSING
    };

    let offsets = KernelOffsets {
        klp_patch_mod: find("klp_patch", &["mod"]),
        module_name: find("module", &["name"]),
        klp_object_name: find("klp_object", &["name"]),
        task_pid: find("task_struct", &["pid"]),
        task_tgid: find("task_struct", &["tgid"]),
        task_comm: find("task_struct", &["comm"]),
        task_flags: find("task_struct", &["flags"]),
        task_patch_state: find("task_struct", &["patch_state"]),
        task_cpu: find("task_struct", &["thread_info.cpu", "cpu"]),
        task_thread_flags: find("task_struct", &["thread_info.flags"]),
        tif_patch_pending_bit: TIF_PATCH_PENDING.unwrap_or(OFFSET_MISSING),
        klp_patch_replace: find("klp_patch", &["replace_set", "replace"]),
        klp_patch_objs: find("klp_patch", &["objs"]),
        klp_patch_states: find("klp_patch", &["states"]),
        klp_object_funcs: find("klp_object", &["funcs"]),
        klp_object_size: size(btf, "klp_object", &mut missing),
        klp_func_old_name: find("klp_func", &["old_name"]),
        klp_func_new_func: find("klp_func", &["new_func"]),
        klp_func_old_sympos: find("klp_func", &["old_sympos"]),
        klp_func_old_func: find("klp_func", &["old_func"]),
        klp_func_size: size(btf, "klp_func", &mut missing),
        klp_state_id: find("klp_state", &["id"]),
        klp_state_version: find("klp_state", &["version"]),
        klp_state_size: size(btf, "klp_state", &mut missing),
    };
    missing.extend(missing_members);
    if TIF_PATCH_PENDING.is_none() {
        missing.push("TIF_PATCH_PENDING (unknown on this architecture)");
    }
    (offsets, missing)
}

fn size(btf: &Btf, struct_name: &'static str, missing: &mut Vec<&'static str>) -> u32 {
    btf.struct_size(struct_name).unwrap_or_else(|| {
        missing.push(struct_name);
        OFFSET_MISSING
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::tests::BtfBuilder;

    #[test]
    fn offsets_from_btf_and_missing_named() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let ti = b.structure("thread_info", 24, &[("flags", int, 0), ("cpu", int, 20)]);
        b.structure(
            "task_struct",
            4096,
            &[
                ("thread_info", ti, 0),
                ("pid", int, 1000),
                ("tgid", int, 1004),
            ],
        );
        let btf = Btf::parse(&b.build()).unwrap();
        let (offsets, missing) = kernel_offsets(&btf);

        assert_eq!(offsets.task_pid, 1000);
        assert_eq!(offsets.task_cpu, 20);
        assert_eq!(offsets.task_thread_flags, 0);
        assert_eq!(offsets.task_patch_state, OFFSET_MISSING);
        assert!(missing.contains(&"patch_state"));
        assert!(missing.contains(&"mod"));
    }
}

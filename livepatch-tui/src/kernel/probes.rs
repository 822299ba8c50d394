//! The kernel hooks: which exist, loading the eBPF object, attaching each
//! program, and reporting what attached.

use aya::{
    Btf as AyaBtf, Ebpf, EbpfLoader,
    programs::{FEntry, KProbe},
};
use livepatch_common::KernelOffsets;

use super::btf::Btf;
use crate::event::Event;

/// The compiled eBPF programs (built by build.rs from livepatch-ebpf).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/livepatch"));

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    FEntry,
    KProbe,
    KRetProbe,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FEntry => "fentry",
            Self::KProbe => "kprobe",
            Self::KRetProbe => "kretprobe",
        }
    }
}

/// One kernel hook and what it feeds.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSpec {
    /// Program name in the eBPF object.
    pub program: &'static str,
    pub hook: Hook,
    /// Kernel function it attaches to.
    pub function: &'static str,
    /// What the user loses when it is missing.
    pub feature: &'static str,
    /// Added to the name in `probe_status`, for a second program on the
    /// same function and hook kind.
    pub suffix: &'static str,
}

impl ProbeSpec {
    /// Name in `probe_status` events: the function, with `:return` for a
    /// kretprobe.
    pub fn name(&self) -> String {
        match self.hook {
            Hook::KRetProbe => format!("{}:return{}", self.function, self.suffix),
            _ => format!("{}{}", self.function, self.suffix),
        }
    }
}

const fn probe(
    program: &'static str,
    hook: Hook,
    function: &'static str,
    feature: &'static str,
) -> ProbeSpec {
    ProbeSpec {
        program,
        hook,
        function,
        feature,
        suffix: "",
    }
}

/// Every hook, in kernel/livepatch/ of Linux 5.x to 6.x. Names and inlining
/// differ between kernels, so each is tried on its own.
pub const PROBES: &[ProbeSpec] = &[
    probe(
        "klp_init_transition",
        Hook::FEntry,
        "klp_init_transition",
        "transition start, patch and target",
    ),
    probe(
        "klp_start_transition",
        Hook::FEntry,
        "klp_start_transition",
        "transition start",
    ),
    probe(
        "klp_try_complete_transition",
        Hook::FEntry,
        "klp_try_complete_transition",
        "retry passes",
    ),
    probe(
        "klp_try_complete_transition_ret",
        Hook::KRetProbe,
        "klp_try_complete_transition",
        "retry pass durations",
    ),
    probe(
        "klp_complete_transition",
        Hook::FEntry,
        "klp_complete_transition",
        "transition completion and duration",
    ),
    probe(
        "klp_cancel_transition",
        Hook::FEntry,
        "klp_cancel_transition",
        "cancelled transitions",
    ),
    probe(
        "klp_reverse_transition",
        Hook::FEntry,
        "klp_reverse_transition",
        "reversed transitions",
    ),
    probe(
        "klp_force_transition",
        Hook::FEntry,
        "klp_force_transition",
        "forced transitions",
    ),
    probe(
        "klp_check_and_switch_task",
        Hook::KProbe,
        "klp_check_and_switch_task",
        "blocked tasks: the function they sleep in",
    ),
    probe(
        "klp_check_and_switch_task_ret",
        Hook::KRetProbe,
        "klp_check_and_switch_task",
        "tasks switched by stack check, blocked tasks and why",
    ),
    ProbeSpec {
        program: "klp_check_and_switch_task_stack",
        hook: Hook::FEntry,
        function: "klp_check_and_switch_task",
        feature: "kernel stacks of blocked tasks",
        suffix: ":stack",
    },
    probe(
        "klp_update_patch_state",
        Hook::FEntry,
        "klp_update_patch_state",
        "tasks switched on kernel exit, in the idle loop or by force",
    ),
    probe(
        "klp_copy_process",
        Hook::FEntry,
        "klp_copy_process",
        "tasks forked during a transition",
    ),
    probe(
        "klp_enable_patch",
        Hook::FEntry,
        "klp_enable_patch",
        "patch loads and whether they are cumulative",
    ),
    probe(
        "klp_enable_patch_ret",
        Hook::KRetProbe,
        "klp_enable_patch",
        "refused patch loads",
    ),
    probe(
        "klp_module_coming",
        Hook::FEntry,
        "klp_module_coming",
        "target modules loading",
    ),
    probe(
        "klp_module_going",
        Hook::FEntry,
        "klp_module_going",
        "target modules going away",
    ),
    probe(
        "klp_patch_object",
        Hook::FEntry,
        "klp_patch_object",
        "objects becoming patched",
    ),
    probe(
        "klp_patch_object_ret",
        Hook::KRetProbe,
        "klp_patch_object",
        "where each patched function lives, for call counting",
    ),
    probe(
        "klp_unpatch_object",
        Hook::FEntry,
        "__klp_unpatch_object",
        "objects becoming unpatched",
    ),
    probe(
        "klp_unpatch_replaced_patches",
        Hook::FEntry,
        "klp_unpatch_replaced_patches",
        "patches replaced by a cumulative patch",
    ),
];

/// Loads the eBPF object with the kernel's offsets and a ring buffer of
/// `ring_bytes`.
pub fn load(offsets: &KernelOffsets, ring_bytes: u32) -> anyhow::Result<Ebpf> {
    EbpfLoader::new()
        .override_global("OFFSETS", offsets, true)
        .map_max_entries("EVENTS", ring_bytes)
        .load(EBPF_OBJECT)
        .map_err(|error| {
            anyhow::anyhow!(
                "the kernel refused the eBPF maps or programs: {error}. The tool needs \
                 root (CAP_BPF and CAP_PERFMON), a kernel with CONFIG_BPF_SYSCALL, and \
                 no lockdown in confidentiality mode"
            )
        })
}

/// Attaches every probe that exists on this kernel, and returns one
/// `probe_status` event per probe. A missing hook is reported, never fatal.
pub fn attach_all(ebpf: &mut Ebpf, btf: &Btf) -> anyhow::Result<Vec<Event>> {
    let aya_btf = AyaBtf::from_sys_fs()
        .map_err(|e| anyhow::anyhow!("failed to read the kernel's BTF for fentry: {e}"))?;
    let mut statuses = Vec::new();
    for spec in PROBES {
        let result = attach_one(ebpf, spec, btf, &aya_btf);
        if let Err(reason) = &result {
            log::warn!("probe {} not attached: {reason}", spec.name());
        }
        statuses.push(Event::ProbeStatus {
            probe: spec.name(),
            attached: result.is_ok(),
            reason: result.err(),
            feature: spec.feature.to_owned(),
        });
    }
    Ok(statuses)
}

fn attach_one(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    btf: &Btf,
    aya_btf: &AyaBtf,
) -> Result<(), String> {
    let program = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| format!("program {} missing from the eBPF object", spec.program))?;
    match spec.hook {
        Hook::FEntry => {
            if !btf.has_function(spec.function) {
                return Err(format!(
                    "{} is not in the kernel's BTF (inlined or absent)",
                    spec.function
                ));
            }
            let program: &mut FEntry = program.try_into().map_err(|e| format!("{e}"))?;
            program
                .load(spec.function, aya_btf)
                .map_err(|e| format!("load failed: {e}"))?;
            program
                .attach()
                .map_err(|e| format!("attach failed: {e}"))?;
        }
        Hook::KProbe | Hook::KRetProbe => {
            let program: &mut KProbe = program.try_into().map_err(|e| format!("{e}"))?;
            program.load().map_err(|e| format!("load failed: {e}"))?;
            program.attach(spec.function, 0).map_err(|e| {
                format!(
                    "attach failed (is {} in /proc/kallsyms?): {e}",
                    spec.function
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_names_unique() {
        let mut names: Vec<String> = PROBES.iter().map(ProbeSpec::name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn no_fexit_hooks() {
        // An fexit trampoline stays on the stack and makes the 6.1 unwinder
        // report the checked task's stack as unreliable.
        assert!(
            PROBES
                .iter()
                .all(|p| matches!(p.hook, Hook::FEntry | Hook::KProbe | Hook::KRetProbe))
        );
    }

    #[test]
    fn every_program_in_object() {
        let object = aya_obj::Object::parse(EBPF_OBJECT);
        let Ok(object) = object else {
            panic!("eBPF object does not parse: {:?}", object.err());
        };
        for spec in PROBES {
            assert!(
                object.programs.contains_key(spec.program),
                "{} missing",
                spec.program
            );
        }
    }
}

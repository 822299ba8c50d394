//! Everything that reads the running kernel: BTF, sysfs, the eBPF probes.
//! Kept apart from the model so that tests can replace it with fixtures.

pub mod btf;
pub mod calls;
pub mod decode;
pub mod kallsyms;
mod live;
pub mod module_file;
pub mod offsets;
pub mod preflight;
pub mod probes;
pub mod sysfs;

use std::process::ExitCode;

pub use live::{LiveSource, monotonic_ns};

/// Returns the kernel release (`uname -r`), when it can be read.
pub fn release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|text| text.trim().to_owned())
}

/// Attaches every probe and prints which attached, then detaches them all.
pub async fn list_probes() -> anyhow::Result<ExitCode> {
    preflight::check(&preflight::Host::this_machine())?;
    let btf = btf::Btf::from_sys_fs()?;
    let (offsets, _) = offsets::kernel_offsets(&btf);
    let mut ebpf = probes::load(&offsets, 1 << 16)?;
    let statuses = probes::attach_all(&mut ebpf, &btf)?;

    println!("{:<38} {:<10} {:<9} feeds", "probe", "hook", "attached");
    for (spec, status) in probes::PROBES.iter().zip(&statuses) {
        let crate::event::Event::ProbeStatus {
            attached, reason, ..
        } = status
        else {
            continue;
        };
        let verdict = if *attached { "yes" } else { "no" };
        println!(
            "{:<38} {:<10} {:<9} {}",
            spec.name(),
            spec.hook.as_str(),
            verdict,
            spec.feature
        );
        if let Some(reason) = reason {
            println!("    reason: {reason}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! Checks, before anything is loaded, that this machine can be observed,
//! with one plain message for each thing that is missing.

use std::path::Path;

use anyhow::bail;

use super::sysfs::SYSFS_ROOT;

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// What the checks look at, so that tests can supply their own.
pub struct Host<'a> {
    pub effective_uid: u32,
    pub livepatch_root: &'a Path,
    pub btf_path: &'a Path,
}

impl Host<'static> {
    pub fn this_machine() -> Self {
        Self {
            // SAFETY: geteuid has no preconditions and cannot fail.
            effective_uid: unsafe { libc::geteuid() },
            livepatch_root: Path::new(SYSFS_ROOT),
            btf_path: Path::new(BTF_PATH),
        }
    }
}

/// Fails with the first missing requirement: livepatch support, BTF, root.
pub fn check(host: &Host<'_>) -> anyhow::Result<()> {
    if !host.livepatch_root.is_dir() {
        bail!(
            "this kernel has no livepatch support: {} does not exist (it needs \
             CONFIG_LIVEPATCH). `livepatch-tui demo` shows the dashboard on a recording; \
             `replay FILE` and `log --from FILE` read a recorded log",
            host.livepatch_root.display()
        );
    }
    if !host.btf_path.exists() {
        bail!(
            "this kernel has no BTF: {} does not exist (it needs CONFIG_DEBUG_INFO_BTF); \
             the probes take struct layouts from it",
            host.btf_path.display()
        );
    }
    if host.effective_uid != 0 {
        bail!(
            "livepatch-tui needs root to attach its kernel probes: run it with sudo. \
             `livepatch-tui demo` and `livepatch-tui replay FILE` need no root"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host<'a>(uid: u32, livepatch: &'a Path, btf: &'a Path) -> Host<'a> {
        Host {
            effective_uid: uid,
            livepatch_root: livepatch,
            btf_path: btf,
        }
    }

    #[test]
    fn no_livepatch_named() {
        let error = check(&host(
            0,
            Path::new("/nonexistent/livepatch"),
            Path::new("/"),
        ))
        .unwrap_err();
        assert!(error.to_string().contains("CONFIG_LIVEPATCH"), "{error}");
    }

    #[test]
    fn no_btf_named() {
        let error = check(&host(0, Path::new("/"), Path::new("/nonexistent/vmlinux"))).unwrap_err();
        assert!(
            error.to_string().contains("CONFIG_DEBUG_INFO_BTF"),
            "{error}"
        );
    }

    #[test]
    fn non_root_told_to_use_sudo() {
        let error = check(&host(1000, Path::new("/"), Path::new("/"))).unwrap_err();
        assert!(error.to_string().contains("run it with sudo"), "{error}");
    }

    #[test]
    fn root_with_everything_passes() {
        check(&host(0, Path::new("/"), Path::new("/"))).unwrap();
    }
}

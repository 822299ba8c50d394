//! The guest kernel from Debian's packages and the livepatch sources of its version.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

use crate::command;

/// Directories of the kernel source that contain the livepatch sample, the selftest
/// modules and the selftest scripts.
const SOURCE_DIRS: &[&str] = &[
    "samples/livepatch",
    "lib/livepatch",
    "tools/testing/selftests/livepatch",
];

/// Kernel that the lab boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelChoice {
    /// Debian's packaged 6.1 kernel, with its headers.
    Debian,
    /// 6.1 with replace sets, built and cached by `cargo xtask kernel`.
    ReplaceSet,
}

/// Kernel that the lab boots and builds modules against.
pub struct GuestKernel {
    pub version: String,
    pub image: PathBuf,
    pub build_dir: PathBuf,
}

/// Finds `/boot/vmlinuz-<version>` whose `/lib/modules/<version>/build` exists,
/// preferring the highest 6.1 version (the version of Debian 12's `linux-source-6.1`).
pub fn find_guest_kernel() -> Result<GuestKernel> {
    let mut versions: Vec<String> = fs::read_dir("/boot")
        .context("failed to list /boot")?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_prefix("vmlinuz-").map(str::to_owned)
        })
        .filter(|version| version.starts_with("6.1."))
        .filter(|version| Path::new(&format!("/lib/modules/{version}/build")).exists())
        .collect();
    versions.sort_by_key(|version| version_key(version));

    let Some(version) = versions.pop() else {
        bail!(
            "no 6.1 kernel with headers found: need /boot/vmlinuz-6.1.* and \
             /lib/modules/<version>/build; run `cargo xtask setup --lab`"
        );
    };
    Ok(GuestKernel {
        image: PathBuf::from(format!("/boot/vmlinuz-{version}")),
        build_dir: PathBuf::from(format!("/lib/modules/{version}/build")),
        version,
    })
}

/// Sort key for versions such as "6.1.0-57-amd64": the numbers in order of appearance.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// Extracts the livepatch directories of `/usr/src/linux-source-6.1.tar.xz` into
/// `dest` once, and returns the directory that contains them. A stamp file that records
/// the tarball's size and modification time makes later calls skip the extraction,
/// which takes several seconds because the whole archive is decompressed.
pub fn extract_livepatch_sources(dest: &Path) -> Result<PathBuf> {
    let tarball = Path::new("/usr/src/linux-source-6.1.tar.xz");
    let metadata = fs::metadata(tarball).with_context(|| {
        format!(
            "{} not found; run `cargo xtask setup --lab`",
            tarball.display()
        )
    })?;
    let modified = metadata
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let stamp_text = format!("{} {} {modified}\n", tarball.display(), metadata.len());

    let source_dir = dest.join("linux-source-6.1");
    let stamp = dest.join("linux-source-6.1.stamp");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text.as_str()) {
        println!(
            "lab: kernel sources already extracted in {}",
            source_dir.display()
        );
        return Ok(source_dir);
    }

    println!(
        "lab: extracting {} from {}",
        SOURCE_DIRS.join(", "),
        tarball.display()
    );
    if source_dir.exists() {
        fs::remove_dir_all(&source_dir)?;
    }
    fs::create_dir_all(dest)?;
    command::run(
        Command::new("tar")
            .arg("-xJf")
            .arg(tarball)
            .arg("-C")
            .arg(dest)
            .args(
                SOURCE_DIRS
                    .iter()
                    .map(|dir| format!("linux-source-6.1/{dir}")),
            ),
    )?;
    fs::write(&stamp, stamp_text)?;
    Ok(source_dir)
}

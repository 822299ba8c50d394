//! The guest's initramfs: busybox, the tool with its shared libraries, the modules
//! and the scenario scripts, packed as a gzip-compressed newc cpio archive.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Busybox from Debian's `busybox-static`. The guest's /init installs its applet links.
const BUSYBOX: &str = "/bin/busybox";

/// Guest directory of the lab's modules, outside /lib/modules so that nothing mistakes
/// it for an installed module tree.
pub const GUEST_MODULE_DIR: &str = "lib/modules-lab";

/// Guest path of the tool binary.
pub const GUEST_TOOL_PATH: &str = "usr/bin/livepatch-tui";

/// Everything the initramfs contains besides busybox.
pub struct Contents<'a> {
    /// The guest's /init script.
    pub init: &'a Path,
    /// Directory copied to /lab in the guest: shell helpers and `scenarios/*.sh`.
    pub guest_dir: &'a Path,
    pub modules: Vec<PathBuf>,
    /// The tool binary, or None for a run without the tool.
    pub tool: Option<&'a Path>,
}

/// Stages `contents` under `staging` (emptied first) and writes the archive to `archive`.
pub fn build(contents: &Contents, staging: &Path, archive: &Path) -> Result<()> {
    if staging.exists() {
        fs::remove_dir_all(staging)
            .with_context(|| format!("failed to remove {}", staging.display()))?;
    }
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run",
    ] {
        fs::create_dir_all(staging.join(dir))?;
    }

    copy_executable(Path::new(BUSYBOX), staging)?;
    copy_file(contents.init, &staging.join("init"), 0o755)?;
    copy_guest_dir(contents.guest_dir, &staging.join("lab"))?;

    let module_dir = staging.join(GUEST_MODULE_DIR);
    fs::create_dir_all(&module_dir)?;
    for module in &contents.modules {
        copy_file(module, &module_dir.join(module.file_name().unwrap()), 0o644)?;
    }

    if let Some(tool) = contents.tool {
        copy_file(tool, &staging.join(GUEST_TOOL_PATH), 0o755)?;
        copy_shared_libraries(tool, staging)?;
    }

    pack(staging, archive)
}

/// Copies an executable to the same path under `staging`, with its shared libraries.
fn copy_executable(path: &Path, staging: &Path) -> Result<()> {
    copy_file(path, &staging.join(path.strip_prefix("/")?), 0o755)?;
    copy_shared_libraries(path, staging)
}

/// Copies the shared libraries and the dynamic loader that `ldd` lists for `binary`
/// to the same paths under `staging`. A static binary has none.
fn copy_shared_libraries(binary: &Path, staging: &Path) -> Result<()> {
    let output = Command::new("ldd")
        .arg(binary)
        .stdin(Stdio::null())
        .output()
        .context("failed to run ldd")?;
    let listing = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // ldd exits with 1 and prints "not a dynamic executable" for static binaries.
        return Ok(());
    }

    for line in listing.lines() {
        if line.contains("not found") {
            bail!("ldd {}: {}", binary.display(), line.trim());
        }
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)";
        // the vDSO line has no path.
        let Some(library) = line.split_whitespace().find(|word| word.starts_with('/')) else {
            continue;
        };
        let target = staging.join(library.trim_start_matches('/'));
        if !target.exists() {
            copy_file(Path::new(library), &target, 0o755)?;
        }
    }
    Ok(())
}

fn copy_guest_dir(source: &Path, target: &Path) -> Result<()> {
    fs::create_dir_all(target)?;
    for entry in
        fs::read_dir(source).with_context(|| format!("failed to list {}", source.display()))?
    {
        let path = entry?.path();
        let destination = target.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_guest_dir(&path, &destination)?;
        } else if path.extension().is_some_and(|ext| ext == "sh") {
            copy_file(&path, &destination, 0o755)?;
        }
    }
    Ok(())
}

/// Copies the content of `source` (following symlinks) to `target` with `mode`.
fn copy_file(source: &Path, target: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(source, target).with_context(|| {
        format!(
            "failed to copy {} to {}",
            source.display(),
            target.display()
        )
    })?;
    fs::set_permissions(target, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Packs `staging` with `cpio -o -H newc`, owned by root, and compresses it with gzip.
fn pack(staging: &Path, archive: &Path) -> Result<()> {
    let mut entries = Vec::new();
    list_entries(staging, Path::new(""), &mut entries)?;

    let output =
        File::create(archive).with_context(|| format!("failed to create {}", archive.display()))?;
    let mut cpio = Command::new("cpio")
        .args(["--create", "--format=newc", "--owner=0:0", "--quiet"])
        .current_dir(staging)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to start cpio; run `cargo xtask setup --lab`")?;
    let cpio_output = cpio.stdout.take().unwrap();
    let mut gzip = Command::new("gzip")
        .args(["-1", "--no-name"])
        .stdin(cpio_output)
        .stdout(output)
        .spawn()
        .context("failed to start gzip")?;

    let mut list = cpio.stdin.take().unwrap();
    for entry in &entries {
        writeln!(list, "{}", entry.display())?;
    }
    drop(list);

    let cpio_status = cpio.wait()?;
    let gzip_status = gzip.wait()?;
    if !cpio_status.success() || !gzip_status.success() {
        bail!(
            "packing {} failed: cpio {cpio_status}, gzip {gzip_status}",
            archive.display()
        );
    }
    Ok(())
}

/// Lists the paths under `root`, relative to it, each directory before its contents.
fn list_entries(root: &Path, relative: &Path, entries: &mut Vec<PathBuf>) -> Result<()> {
    let mut children: Vec<_> = fs::read_dir(root.join(relative))?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<Result<_, _>>()?;
    children.sort();
    for name in children {
        let path = relative.join(name);
        entries.push(path.clone());
        if root.join(&path).is_dir() {
            list_entries(root, &path, entries)?;
        }
    }
    Ok(())
}

/// Returns the size of `path` in MiB, for progress lines.
pub fn size_mib(path: &Path) -> f64 {
    fs::metadata(path).map_or(0.0, |metadata| metadata.len() as f64 / (1024.0 * 1024.0))
}

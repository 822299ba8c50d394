//! `cargo xtask kernel`: the lab's second guest kernel, Debian's 6.1 source with
//! `lab/kernel/replace-set.patch` (replace sets for livepatch) and the options of
//! `lab/kernel/replace-set.config` on top of `x86_64_defconfig`.
//!
//! The build is cached outside the repository, in
//! `$XDG_CACHE_HOME/livepatch-tui/kernel/<key>/` (`~/.cache/...` without
//! `XDG_CACHE_HOME`). The key is a SHA-256 over the patch, the configuration
//! fragment, the source tarball's size and modification time, and the versions of
//! gcc and pahole, so any change to one of them builds a new kernel. Each cache
//! entry contains the boot image and the built source tree, which out-of-tree modules
//! build against (their BTF needs the tree's `vmlinux`).

use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::command::{self, workspace_root};

/// The kernel patch, relative to the workspace root.
const PATCH: &str = "lab/kernel/replace-set.patch";
/// Configuration options merged into `x86_64_defconfig`, relative to the workspace root.
const CONFIG_FRAGMENT: &str = "lab/kernel/replace-set.config";
const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.1.tar.xz";
/// Top directory of the tarball, and of the built tree in a cache entry.
const TREE_DIR: &str = "linux-source-6.1";
/// Version of the build steps below. Raise it when a change to them changes the
/// result, so that existing cache entries are not reused.
const RECIPE_VERSION: u32 = 1;
/// File written last into a cache entry; an entry without it is incomplete.
const BUILD_INFO: &str = "build-info";

#[derive(Args)]
pub struct KernelArgs {
    /// Parallel make jobs (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// A built replace-set kernel in the cache.
pub struct BuiltKernel {
    /// The cache entry.
    pub dir: PathBuf,
    /// The boot image (bzImage).
    pub image: PathBuf,
    /// The built source tree: modules build with `make -C <tree> M=<dir>`.
    pub tree: PathBuf,
    /// `uname -r` of the kernel.
    pub release: String,
    /// Wall-clock seconds the build took when it ran.
    pub build_secs: f64,
    /// Whether this call reused a cached build.
    pub reused: bool,
}

/// Builds the kernel or reuses the cached build, and prints where it is.
pub fn run(args: &KernelArgs) -> Result<()> {
    let kernel = ensure(args.jobs)?;
    let outcome = if kernel.reused {
        "reused the cached build"
    } else {
        "built"
    };
    println!("kernel: {outcome} {}", kernel.release);
    println!("kernel: image {}", kernel.image.display());
    println!("kernel: build tree {}", kernel.tree.display());
    println!(
        "kernel: the build took {:.1} min ({:.0} s)",
        kernel.build_secs / 60.0,
        kernel.build_secs
    );
    Ok(())
}

/// Returns the cached kernel for the current patch and configuration, building it
/// first when the cache has no complete entry for them. A lock file serializes
/// builds, so two lab runs on one machine build the kernel once.
pub fn ensure(jobs: Option<usize>) -> Result<BuiltKernel> {
    let root = workspace_root();
    let patch = read(&root.join(PATCH))?;
    let fragment = read(&root.join(CONFIG_FRAGMENT))?;
    let inputs = describe_inputs(&patch, &fragment)?;
    let key = cache_key(&inputs, &patch, &fragment)?;

    let cache = cache_root()?;
    let entry = cache.join(&key);
    if let Some(kernel) = load_entry(&entry)? {
        return Ok(kernel);
    }

    fs::create_dir_all(&cache).with_context(|| format!("failed to create {}", cache.display()))?;
    let _lock = lock(&cache.join("build.lock"))?;
    // Another run may have finished the same build while this one waited.
    if let Some(kernel) = load_entry(&entry)? {
        return Ok(kernel);
    }

    let jobs = jobs.unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()));
    build(&entry, &root, &inputs, jobs)?;
    let mut kernel = load_entry(&entry)?
        .with_context(|| format!("{} is incomplete after the build", entry.display()))?;
    kernel.reused = false;
    Ok(kernel)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("failed to read {}", path.display()))
}

/// Describes every input of the build except the patch and fragment contents, one
/// `key=value` per line. It goes into the cache key and into the entry's build-info.
fn describe_inputs(patch: &[u8], fragment: &[u8]) -> Result<String> {
    let metadata = fs::metadata(SOURCE_TARBALL).with_context(|| {
        format!(
            "{SOURCE_TARBALL} not found; run `cargo xtask setup --lab` (package linux-source-6.1)"
        )
    })?;
    let modified = metadata.modified()?.duration_since(UNIX_EPOCH)?.as_secs();
    let gcc = first_line_of("gcc", &["--version"])
        .context("gcc not found; run `cargo xtask setup --lab`")?;
    let pahole = first_line_of("pahole", &["--version"])
        .context("pahole not found; run `cargo xtask setup --lab` (package dwarves)")?;
    Ok(format!(
        "recipe={RECIPE_VERSION}\n\
         source={SOURCE_TARBALL} {} bytes, modified {modified}\n\
         gcc={gcc}\n\
         pahole={pahole}\n\
         patch_sha256={}\n\
         config_sha256={}\n",
        metadata.len(),
        sha256_hex(patch)?,
        sha256_hex(fragment)?,
    ))
}

fn first_line_of(program: &str, args: &[&str]) -> Option<String> {
    command::try_output(program, args).map(|text| text.lines().next().unwrap_or("").to_owned())
}

/// Computes the cache entry's name: the first 16 hex digits of a SHA-256 over the
/// inputs.
fn cache_key(inputs: &str, patch: &[u8], fragment: &[u8]) -> Result<String> {
    let mut all = inputs.as_bytes().to_vec();
    all.extend_from_slice(patch);
    all.extend_from_slice(fragment);
    Ok(sha256_hex(&all)?[..16].to_owned())
}

/// SHA-256 of `data` in hex, computed by coreutils' `sha256sum`.
fn sha256_hex(data: &[u8]) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to start sha256sum")?;
    // sha256sum writes only after reading all input, so writing first cannot block
    // on a full output pipe. Dropping stdin closes it.
    child.stdin.take().unwrap().write_all(data)?;
    let output = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.split_whitespace().next() {
        Some(digest) if output.status.success() && digest.len() == 64 => Ok(digest.to_owned()),
        _ => bail!("sha256sum failed with {}: {text}", output.status),
    }
}

/// `$XDG_CACHE_HOME/livepatch-tui/kernel`, or `$HOME/.cache/livepatch-tui/kernel`.
fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir).join("livepatch-tui/kernel"));
    }
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .context("neither XDG_CACHE_HOME nor HOME is set, so the kernel cache has no place")?;
    Ok(PathBuf::from(home).join(".cache/livepatch-tui/kernel"))
}

/// Reads a complete cache entry, or returns None when `entry` has no build-info.
fn load_entry(entry: &Path) -> Result<Option<BuiltKernel>> {
    let info_path = entry.join(BUILD_INFO);
    let Ok(info) = fs::read_to_string(&info_path) else {
        return Ok(None);
    };
    let field = |key: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
            .with_context(|| format!("{} has no {key}= line", info_path.display()))
    };
    let build_secs = field("build_secs")?
        .parse::<f64>()
        .with_context(|| format!("invalid build_secs in {}", info_path.display()))?;
    Ok(Some(BuiltKernel {
        dir: entry.to_path_buf(),
        image: entry.join("bzImage"),
        tree: entry.join(TREE_DIR),
        release: field("release")?,
        build_secs,
        reused: true,
    }))
}

/// Takes an exclusive lock on `path`, waiting (with a message) while another
/// process holds it. The lock ends when the returned file is dropped.
fn lock(path: &Path) -> Result<File> {
    let file =
        File::create(path).with_context(|| format!("failed to create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("failed to lock {}", path.display()));
        }
    }
    println!(
        "kernel: another process is building the kernel; waiting for {}",
        path.display()
    );
    file.lock()
        .with_context(|| format!("failed to lock {}", path.display()))?;
    Ok(file)
}

/// Extracts, patches, configures and builds the kernel in `entry`, and writes its
/// build-info last. The tree is built where it stays: kbuild records absolute
/// paths, so a built tree should not be moved.
fn build(entry: &Path, root: &Path, inputs: &str, jobs: usize) -> Result<()> {
    if entry.exists() {
        // Left incomplete by an interrupted build; this process holds the build lock.
        fs::remove_dir_all(entry)
            .with_context(|| format!("failed to remove {}", entry.display()))?;
    }
    fs::create_dir_all(entry)?;
    let tree = entry.join(TREE_DIR);
    let started = Instant::now();

    println!("kernel: building in {} with {jobs} job(s)", entry.display());
    println!("kernel: extracting {SOURCE_TARBALL}");
    command::run(
        Command::new("tar")
            .arg("-xJf")
            .arg(SOURCE_TARBALL)
            .arg("-C")
            .arg(entry),
    )?;

    println!("kernel: applying {PATCH}");
    command::output(
        Command::new("patch")
            .args(["-p1", "--batch", "--forward", "--input"])
            .arg(root.join(PATCH))
            .current_dir(&tree),
    )
    .context("the patch does not apply to this linux-source-6.1; update it")?;

    configure(&tree, &root.join(CONFIG_FRAGMENT))?;

    let log = entry.join("build.log");
    println!(
        "kernel: make -j{jobs} all under nice -n 10 (about 15 min on 2 cores); log {}",
        log.display()
    );
    run_logged(
        Command::new("nice")
            .args(["-n", "10", "make", "-C"])
            .arg(&tree)
            .arg(format!("-j{jobs}"))
            .arg("all"),
        &log,
    )?;

    for built in ["arch/x86/boot/bzImage", "vmlinux", "Module.symvers"] {
        if !tree.join(built).is_file() {
            bail!("{built} is missing after the build; see {}", log.display());
        }
    }
    fs::copy(tree.join("arch/x86/boot/bzImage"), entry.join("bzImage"))?;
    let release = command::output(
        Command::new("make")
            .args(["-s", "-C"])
            .arg(&tree)
            .arg("kernelrelease"),
    )?
    .trim()
    .to_owned();
    prune_tree(&tree)?;
    let build_secs = started.elapsed().as_secs_f64();
    let built_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    fs::write(
        entry.join(BUILD_INFO),
        format!(
            "release={release}\nbuild_secs={build_secs:.0}\nbuilt_at={built_at}\njobs={jobs}\n{inputs}"
        ),
    )?;
    println!("kernel: built {release} in {:.1} min", build_secs / 60.0);
    Ok(())
}

/// Deletes what out-of-tree modules do not need from the built tree: the object
/// files outside `scripts/` and `tools/` (whose host programs kbuild runs for
/// modules) and the intermediate `.tmp_vmlinux*` images. That is about 1.7 of the
/// 3.8 GB a build leaves. Modules still build and get BTF, which needs `vmlinux`.
fn prune_tree(tree: &Path) -> Result<()> {
    command::run(
        Command::new("find")
            .args([".", "-name", "*.o", "-type", "f"])
            .args(["-not", "-path", "./scripts/*", "-not", "-path", "./tools/*"])
            .arg("-delete")
            .current_dir(tree),
    )?;
    for entry in fs::read_dir(tree)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(".tmp_vmlinux") && path.is_file() {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Writes `.config`: `x86_64_defconfig`, the fragment merged in, and defaults for
/// the rest. Fails if an option of the fragment did not survive, which happens
/// when its dependencies are not met.
fn configure(tree: &Path, fragment_path: &Path) -> Result<()> {
    println!(
        "kernel: configuring x86_64_defconfig + {}",
        fragment_path.display()
    );
    command::output(
        Command::new("make")
            .arg("-C")
            .arg(tree)
            .arg("x86_64_defconfig"),
    )?;
    command::output(
        Command::new("scripts/kconfig/merge_config.sh")
            .args(["-m", ".config"])
            .arg(fragment_path)
            .current_dir(tree),
    )?;
    command::output(Command::new("make").arg("-C").arg(tree).arg("olddefconfig"))?;

    let config = fs::read_to_string(tree.join(".config"))?;
    let fragment = fs::read_to_string(fragment_path)?;
    let missing = missing_options(&fragment, &config);
    if !missing.is_empty() {
        bail!(
            "these options of {} are not in the final .config (unmet dependencies?): {}",
            fragment_path.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// Lines of a configuration fragment (`CONFIG_X=...` or `# CONFIG_X is not set`)
/// that `.config` does not contain verbatim.
fn missing_options(fragment: &str, config: &str) -> Vec<String> {
    fragment
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.starts_with("CONFIG_")
                || (line.starts_with("# CONFIG_") && line.ends_with(" is not set"))
        })
        .filter(|line| {
            // An option that is off may also be absent when its menu is off.
            let absent_is_fine = line.starts_with('#');
            let name = line
                .trim_start_matches("# ")
                .split(['=', ' '])
                .next()
                .unwrap_or("");
            let defined = config
                .lines()
                .any(|config_line| config_line.starts_with(&format!("{name}=")));
            !(config.lines().any(|config_line| config_line == *line)
                || (absent_is_fine && !defined))
        })
        .map(str::to_owned)
        .collect()
}

/// Runs `command` with stdout and stderr going to `log`, prints a line every
/// minute while it runs, and on failure shows the log's last lines.
fn run_logged(command: &mut Command, log: &Path) -> Result<()> {
    let file = File::create(log).with_context(|| format!("failed to create {}", log.display()))?;
    let line = command::display(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("failed to start `{line}`"))?;

    let started = Instant::now();
    let mut next_report = Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= next_report {
            println!(
                "kernel: still building after {} min",
                next_report.as_secs() / 60
            );
            next_report += Duration::from_secs(60);
        }
        thread::sleep(Duration::from_millis(500));
    };
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(30)..] {
            println!("  {line}");
        }
        bail!(
            "`{line}` failed with {status}; full log in {}",
            log.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_options_reports_changed_values() {
        let fragment = "# comment\nCONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n";
        let config = "CONFIG_A=y\nCONFIG_B=m\n";
        assert_eq!(missing_options(fragment, config), ["CONFIG_B=y"]);
    }

    #[test]
    fn missing_options_reports_option_still_on() {
        let fragment = "# CONFIG_SOUND is not set\n# CONFIG_DRM is not set\n";
        let config = "CONFIG_SOUND=y\n# CONFIG_DRM is not set\n";
        assert_eq!(
            missing_options(fragment, config),
            ["# CONFIG_SOUND is not set"]
        );
    }

    #[test]
    fn missing_options_accepts_quoted_strings() {
        let fragment = "CONFIG_LOCALVERSION=\"-lab\"\n";
        assert!(missing_options(fragment, "CONFIG_LOCALVERSION=\"-lab\"\n").is_empty());
        assert_eq!(
            missing_options(fragment, "CONFIG_LOCALVERSION=\"\"\n").len(),
            1
        );
    }
}

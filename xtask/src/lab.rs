//! `cargo xtask lab`: builds everything the guest needs, boots it once for all
//! requested scenarios and checks their results on the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::command::{self, target_dir, workspace_root};
use crate::initramfs::{self, Contents};
use crate::kernel::{self, GuestKernel};
use crate::modules;
use crate::outputs::{self, LabOutput, MARKER};
use crate::scenarios;
use crate::vm::{self, Accel, VmConfig};

#[derive(Args)]
pub struct LabArgs {
    /// Scenarios to run, in this order (default: all of sample, blocked, observer).
    pub scenarios: Vec<String>,
    /// Open a shell on this terminal after the scenarios, with no time limit.
    /// `poweroff -f` in the guest ends the run, and the checks follow.
    #[arg(long)]
    pub keep: bool,
    /// Run only the kernel side of each scenario: do not build or start the tool,
    /// and skip the checks of its log.
    #[arg(long)]
    pub without_tool: bool,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Time limit for the VM in seconds, after which QEMU is killed.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
}

/// Paths of the lab: the workspace root and the lab's directory under `target/`.
struct LabPaths {
    root: PathBuf,
    work: PathBuf,
}

pub fn run(args: &LabArgs) -> Result<()> {
    let started = Instant::now();
    let selected = scenarios::select(&args.scenarios)?;
    let paths = LabPaths {
        root: workspace_root(),
        // A separate directory lets two lab runs share one checkout.
        work: std::env::var_os("LIVEPATCH_LAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("lab")),
    };
    fs::create_dir_all(&paths.work)?;
    for scenario in &selected {
        let script = paths
            .root
            .join(format!("lab/guest/scenarios/{}.sh", scenario.name));
        if !script.is_file() {
            bail!("guest script {} not found", script.display());
        }
    }

    let tool = if args.without_tool {
        println!("lab: running without the tool");
        None
    } else {
        Some(build_tool()?)
    };
    let kernel = kernel::find_guest_kernel()?;
    println!("lab: guest kernel {}", kernel.version);
    let initrd = build_initramfs(&paths, &kernel, tool.as_deref())?;

    let names: Vec<&str> = selected.iter().map(|scenario| scenario.name).collect();
    let config = VmConfig {
        kernel_image: &kernel.image,
        initrd: &initrd,
        extra_cmdline: format!(
            "lab.scenarios={} lab.tool={} lab.keep={}",
            names.join(","),
            u8::from(tool.is_some()),
            u8::from(args.keep)
        ),
        accel: args.accel,
        console_log: paths.work.join("console.log"),
        data_file: paths.work.join("data.out"),
        interactive: args.keep,
        timeout: Duration::from_secs(args.timeout),
    };
    let vm_started = Instant::now();
    let run = vm::boot(&config, |line| print_progress(line, vm_started))?;

    let output = read_results(&config, &paths.work.join("out"))?;
    let report = scenarios::check_all(&selected, &output, tool.is_some());
    println!(
        "lab: -accel {}: guest booted to /init in {}, VM ran {:.1} s{}; lab took {:.1} s",
        run.accel,
        run.boot_secs
            .map_or("?".to_owned(), |secs| format!("{secs:.1} s")),
        run.total_secs,
        if run.timed_out { " (timed out)" } else { "" },
        started.elapsed().as_secs_f64()
    );
    println!("{}", report.summary());
    if report.failed > 0 || run.timed_out {
        return Err(ChecksFailed.into());
    }
    Ok(())
}

/// Builds the modules and packs them with the tool and the guest scripts into
/// `target/lab/initramfs.cpio.gz`, and returns that path.
fn build_initramfs(paths: &LabPaths, kernel: &GuestKernel, tool: Option<&Path>) -> Result<PathBuf> {
    let kernel_source = kernel::extract_livepatch_sources(&paths.work.join("src"))?;
    let modules = modules::build_all(
        kernel,
        &kernel_source,
        &paths.root.join("lab/modules"),
        &paths.work.join("modules"),
    )?;

    let initrd = paths.work.join("initramfs.cpio.gz");
    let guest_dir = paths.root.join("lab/guest");
    initramfs::build(
        &Contents {
            init: &guest_dir.join("init"),
            guest_dir: &guest_dir,
            modules: modules.into_values().collect(),
            tool,
        },
        &paths.work.join("initramfs"),
        &initrd,
    )?;
    println!(
        "lab: initramfs {} ({:.1} MiB)",
        initrd.display(),
        initramfs::size_mib(&initrd)
    );
    Ok(initrd)
}

/// Parses the data channel and writes each scenario's files to `out_dir`.
fn read_results(config: &VmConfig, out_dir: &Path) -> Result<LabOutput> {
    let data = fs::read(&config.data_file)
        .with_context(|| format!("failed to read {}", config.data_file.display()))?;
    let output = outputs::parse(&String::from_utf8_lossy(&data));
    outputs::write_files(&output, out_dir)?;
    println!(
        "lab: results in {}, guest console in {}",
        out_dir.display(),
        config.console_log.display()
    );
    Ok(output)
}

/// Error for a lab run whose checks failed. The summary line already reports it, so
/// nothing more is printed: that line stays the last line of the output.
#[derive(Debug)]
pub struct ChecksFailed;

impl std::fmt::Display for ChecksFailed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("lab checks failed")
    }
}

impl std::error::Error for ChecksFailed {}

/// Builds the tool in release mode and returns the binary's path.
fn build_tool() -> Result<PathBuf> {
    println!("lab: building livepatch-tui (cargo build --release -p livepatch-tui)");
    command::run(command::cargo().args(["build", "--release", "-p", "livepatch-tui"]))?;
    let binary = target_dir().join("release/livepatch-tui");
    if !Path::new(&binary).is_file() {
        bail!("{} not found after the build", binary.display());
    }
    Ok(binary)
}

/// Prints a line for each scenario the guest finishes.
fn print_progress(line: &str, vm_started: Instant) {
    let elapsed = vm_started.elapsed().as_secs_f64();
    let Some(marker) = line.strip_prefix(MARKER) else {
        return;
    };
    let words: Vec<&str> = marker.split_whitespace().collect();
    match words.as_slice() {
        ["boot"] => println!("lab: [{elapsed:5.1} s] guest is up"),
        ["status", scenario, code] => {
            println!("lab: [{elapsed:5.1} s] scenario {scenario} finished with exit code {code}")
        }
        ["done"] => println!("lab: [{elapsed:5.1} s] all scenarios ran"),
        _ => {}
    }
}

//! `cargo xtask lab`: builds everything the guest needs, boots it once for all
//! requested scenarios and checks their results on the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::command::{self, target_dir, workspace_root};
use crate::initramfs::{self, Contents};
use crate::kernel::{self, GuestKernel, KernelChoice};
use crate::modules;
use crate::outputs::{self, LabOutput, MARKER};
use crate::replace_set_kernel;
use crate::scenarios::{self, Scenario};
use crate::vm::{self, Accel, VmConfig};

#[derive(Args)]
pub struct LabArgs {
    /// Scenarios to run, in this order (default: every scenario for the chosen
    /// kernel).
    pub scenarios: Vec<String>,
    /// Kernel to boot. `replace-set` is 6.1 with replace sets, which
    /// `cargo xtask kernel` builds and caches. Without a cached build, the run
    /// builds it first (11 to 14 min on 2 cores).
    #[arg(long, value_enum, default_value_t = KernelChoice::Debian)]
    pub kernel: KernelChoice,
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
    /// Run only the "demo" scenario and, if its checks pass, copy its log to
    /// livepatch-tui/assets/demo.jsonl, the recording that `livepatch-tui demo`
    /// plays.
    #[arg(long, conflicts_with_all = ["scenarios", "keep", "without_tool"])]
    pub record_demo: bool,
}

/// Scenario whose log becomes the demo recording.
const DEMO_SCENARIO: &str = "demo";

/// Path of the recording that `livepatch-tui demo` plays, from the workspace root.
const DEMO_ASSET: &str = "livepatch-tui/assets/demo.jsonl";

/// Paths of the lab: the workspace root and the lab's directory under `target/`.
pub(crate) struct LabPaths {
    pub(crate) root: PathBuf,
    pub(crate) work: PathBuf,
}

impl LabPaths {
    /// Creates the lab's directory: `$LIVEPATCH_LAB_DIR` if set, else `target/lab`.
    pub(crate) fn new() -> Result<Self> {
        let paths = Self {
            root: workspace_root(),
            // A separate directory lets two lab runs share one checkout.
            work: std::env::var_os("LIVEPATCH_LAB_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| target_dir().join("lab")),
        };
        fs::create_dir_all(&paths.work)?;
        Ok(paths)
    }
}

pub fn run(args: &LabArgs) -> Result<()> {
    let started = Instant::now();
    let names = if args.record_demo {
        vec![DEMO_SCENARIO.to_owned()]
    } else {
        args.scenarios.clone()
    };
    let selected = select_scenarios(&names, args.kernel)?;
    let paths = LabPaths::new()?;
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
    let setup = prepare_kernel(args.kernel, &paths)?;
    let kernel = &setup.kernel;
    println!("lab: guest kernel {}", kernel.version);
    let initrd = build_initramfs(&paths, &setup, tool.as_deref())?;

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
        quiet_console: false,
        timeout: Duration::from_secs(args.timeout),
    };
    let vm_started = Instant::now();
    let run = vm::boot(&config, |line| print_progress(line, vm_started))?;

    let output = read_results(&config, &paths.work.join("out"))?;
    keep_tool_logs(&output)?;
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
        if args.record_demo {
            println!("lab: the demo recording was not saved, because the run failed");
        }
        return Err(ChecksFailed.into());
    }
    if args.record_demo {
        save_demo_recording(&output, &paths)?;
    }
    Ok(())
}

/// Resolves the scenario names for `kernel`. Without names, it selects every
/// scenario that runs on that kernel: the replace-set scenarios on the replace-set
/// kernel, the others on Debian's. A named replace-set scenario needs that kernel.
pub(crate) fn select_scenarios(
    names: &[String],
    kernel: KernelChoice,
) -> Result<Vec<&'static Scenario>> {
    let replace_sets = kernel == KernelChoice::ReplaceSet;
    let selected = scenarios::select(names)?;
    if names.is_empty() {
        return Ok(selected
            .into_iter()
            .filter(|scenario| scenarios::needs_replace_set_kernel(scenario.name) == replace_sets)
            .collect());
    }
    if let Some(scenario) = selected
        .iter()
        .find(|scenario| scenarios::needs_replace_set_kernel(scenario.name) && !replace_sets)
    {
        bail!(
            "scenario {} needs a kernel with replace sets: add --kernel replace-set",
            scenario.name
        );
    }
    Ok(selected)
}

/// The kernel to boot, the source of its livepatch sample and selftest modules,
/// and where modules are built for it.
pub(crate) struct KernelSetup {
    pub(crate) kernel: GuestKernel,
    livepatch_sources: PathBuf,
    modules_dir: PathBuf,
    /// Whether a directory of `lab/modules/` that fails to build is skipped
    /// instead of failing the run. True on the replace-set kernel, where modules
    /// that set `struct klp_patch.replace` cannot compile.
    skip_unbuildable_lab_modules: bool,
}

pub(crate) fn prepare_kernel(choice: KernelChoice, paths: &LabPaths) -> Result<KernelSetup> {
    match choice {
        KernelChoice::Debian => {
            let kernel = kernel::find_guest_kernel()?;
            let livepatch_sources = kernel::extract_livepatch_sources(&paths.work.join("src"))?;
            Ok(KernelSetup {
                kernel,
                livepatch_sources,
                modules_dir: paths.work.join("modules"),
                skip_unbuildable_lab_modules: false,
            })
        }
        KernelChoice::ReplaceSet => {
            let built = replace_set_kernel::ensure(None)?;
            println!(
                "lab: replace-set kernel in {} (its build took {:.1} min)",
                built.dir.display(),
                built.build_secs / 60.0
            );
            // The patched tree's own selftest modules set replace_set in place of
            // replace, so they build against it.
            Ok(KernelSetup {
                kernel: GuestKernel {
                    version: built.release,
                    image: built.image,
                    build_dir: built.tree.clone(),
                },
                livepatch_sources: built.tree,
                modules_dir: paths.work.join("modules-replace-set"),
                skip_unbuildable_lab_modules: true,
            })
        }
    }
}

/// Builds the modules and packs them with the tool and the guest scripts into
/// `target/lab/initramfs.cpio.gz`, and returns that path.
pub(crate) fn build_initramfs(
    paths: &LabPaths,
    setup: &KernelSetup,
    tool: Option<&Path>,
) -> Result<PathBuf> {
    let modules = modules::build_all(
        &setup.kernel,
        &setup.livepatch_sources,
        &paths.root.join("lab/modules"),
        &setup.modules_dir,
        setup.skip_unbuildable_lab_modules,
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
pub(crate) fn read_results(config: &VmConfig, out_dir: &Path) -> Result<LabOutput> {
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
pub(crate) fn build_tool() -> Result<PathBuf> {
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

/// Copies each scenario's tool log to `target/lab-recordings/<scenario>.jsonl`, where
/// later runs of other scenarios leave it. The model bench reads the "scale" log there.
fn keep_tool_logs(output: &LabOutput) -> Result<()> {
    let dir = target_dir().join("lab-recordings");
    for (scenario, scenario_output) in &output.scenarios {
        let Some(log) = scenario_output.files.get("jsonl") else {
            continue;
        };
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{scenario}.jsonl"));
        fs::write(&path, log).with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(())
}

/// Copies the demo scenario's log over the recording that `livepatch-tui demo` plays.
fn save_demo_recording(output: &LabOutput, paths: &LabPaths) -> Result<()> {
    let log = output
        .scenarios
        .get(DEMO_SCENARIO)
        .and_then(|scenario| scenario.files.get("jsonl"))
        .context("the demo scenario sent no tool log")?;
    let asset = paths.root.join(DEMO_ASSET);
    fs::write(&asset, log).with_context(|| format!("failed to write {}", asset.display()))?;
    println!(
        "lab: saved the demo recording ({} lines) to {}",
        log.lines().count(),
        asset.display()
    );
    Ok(())
}

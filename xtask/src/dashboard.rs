//! `cargo xtask lab-dashboard`: boots the lab guest with the live dashboard on its
//! console, attached to this terminal, while a scenario runs in the background. It
//! shows the tool on a real livepatch kernel to anyone who has none.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::kernel::KernelChoice;
use crate::lab::{self, LabPaths};
use crate::vm::{self, Accel, VmConfig};

#[derive(Args)]
pub struct DashboardArgs {
    /// Scenario to run in the background while the dashboard shows it.
    #[arg(default_value = "demo")]
    pub scenario: String,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
}

pub fn run(args: &DashboardArgs) -> Result<()> {
    let selected =
        lab::select_scenarios(std::slice::from_ref(&args.scenario), KernelChoice::Debian)?;
    let (rows, columns) = terminal_size()?;
    let paths = LabPaths::new()?;

    let tool = lab::build_tool()?;
    let setup = lab::prepare_kernel(KernelChoice::Debian, &paths)?;
    println!("lab: guest kernel {}", setup.kernel.version);
    let initrd = lab::build_initramfs(&paths, &setup, Some(&tool))?;

    // The scenario runs without its own `livepatch-tui log` (lab.tool=0): the
    // dashboard is the observer.
    let config = VmConfig {
        kernel_image: &setup.kernel.image,
        initrd: &initrd,
        extra_cmdline: format!(
            "lab.scenarios={} lab.tool=0 lab.keep=0 lab.dashboard={rows}x{columns}",
            selected[0].name
        ),
        accel: args.accel,
        console_log: paths.work.join("console.log"),
        data_file: paths.work.join("data.out"),
        interactive: true,
        quiet_console: true,
        timeout: Duration::MAX,
    };
    println!(
        "lab: the dashboard opens here once the guest has booted and the scenario {} \
         starts when its probes are attached; press q to quit, which powers the guest off",
        selected[0].name
    );
    let run = vm::boot(&config, |_| {})?;
    println!("lab: the guest powered off after {:.1} s", run.total_secs);
    lab::read_results(&config, &paths.work.join("out"))?;
    Ok(())
}

/// Reads the size of this terminal with `stty size`, as (rows, columns).
fn terminal_size() -> Result<(u16, u16)> {
    let output = Command::new("stty")
        .arg("size")
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .output()
        .context("failed to run `stty size`")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let size: Vec<u16> = text
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    match size.as_slice() {
        [rows, columns] if output.status.success() && *rows > 0 && *columns > 0 => {
            Ok((*rows, *columns))
        }
        _ => bail!(
            "lab-dashboard needs a terminal on standard input: `stty size` printed {:?}",
            text.trim()
        ),
    }
}

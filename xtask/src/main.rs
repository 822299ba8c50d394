//! Development tasks for livepatch-tui, run as `cargo xtask <command>`.
//!
//! `setup` installs the toolchain pieces the build needs, `lab` boots a QEMU guest
//! with Debian's 6.1 kernel and checks the tool against real livepatch transitions,
//! and `ci` runs the whole pipeline that CI runs. `kernel` builds the lab's second
//! guest kernel, 6.1 with replace sets.

mod ci;
mod command;
mod dashboard;
mod events;
mod initramfs;
mod kernel;
mod lab;
mod modules;
mod outputs;
mod replace_set_kernel;
mod scenarios;
mod setup;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Development tasks for livepatch-tui")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the pinned nightly toolchain and bpf-linker, skipping what is already installed.
    Setup {
        /// Also install the Debian packages of the kernel lab (needs root and apt).
        #[arg(long)]
        lab: bool,
    },
    /// Boot the lab VM once, run the scenarios in it and check their results.
    Lab(lab::LabArgs),
    /// Boot the lab VM with the live dashboard on this terminal while a scenario
    /// runs in the background; quitting the dashboard powers the VM off.
    LabDashboard(dashboard::DashboardArgs),
    /// Build the 6.1 kernel with replace sets for `lab --kernel replace-set`, or
    /// reuse the cached build, and print its paths and build time.
    Kernel(replace_set_kernel::KernelArgs),
    /// Run the CI pipeline: setup --lab, fmt, clippy, tests, then the lab.
    Ci,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Setup { lab } => setup::run(lab),
        Task::Lab(args) => lab::run(&args),
        Task::LabDashboard(args) => dashboard::run(&args),
        Task::Kernel(args) => replace_set_kernel::run(&args),
        Task::Ci => ci::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<lab::ChecksFailed>() => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

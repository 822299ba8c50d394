//! Development tasks for livepatch-tui, run as `cargo xtask <command>`.
//!
//! `setup` installs the toolchain pieces the build needs, `lab` boots a QEMU guest
//! with Debian's 6.1 kernel and checks the tool against real livepatch transitions,
//! and `ci` runs the whole pipeline that CI runs.

mod ci;
mod command;
mod events;
mod initramfs;
mod kernel;
mod lab;
mod modules;
mod outputs;
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
    /// Run the CI pipeline: setup --lab, fmt, clippy, tests, then the lab.
    Ci,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Setup { lab } => setup::run(lab),
        Task::Lab(args) => lab::run(&args),
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

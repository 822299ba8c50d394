//! `cargo xtask ci`: the pipeline CI runs, step by step, stopping at the first failure.
//! The lab runs last, so its summary line `N passed, N failed` ends the output.

use std::time::Instant;

use anyhow::Result;

use crate::command;
use crate::kernel::KernelChoice;
use crate::lab::{self, LabArgs};
use crate::setup;
use crate::vm::Accel;

pub fn run() -> Result<()> {
    let started = Instant::now();

    step("setup --lab", || setup::run(true))?;
    step("cargo fmt --all --check", || {
        command::run(command::cargo().args(["fmt", "--all", "--check"]))
    })?;
    // Clippy and the tests cover the workspace's default members: the eBPF crate
    // only builds for the BPF target, through livepatch-tui's build script.
    step("cargo clippy --all-targets -- -D warnings", || {
        command::run(command::cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))
    })?;
    step("cargo test", || command::run(command::cargo().arg("test")))?;
    println!(
        "ci: steps before the lab passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // Debian's kernel first; then the replace-set kernel, which is built
    // from source on a machine without a cached build (about 12 minutes on
    // 2 cores), so a failure on Debian's kernel stops the run early.
    for kernel in [KernelChoice::Debian, KernelChoice::ReplaceSet] {
        println!("ci: == lab on the {} kernel", kernel_label(kernel));
        lab::run(&LabArgs {
            scenarios: Vec::new(),
            keep: false,
            without_tool: false,
            kernel,
            accel: Accel::Auto,
            timeout: 900,
            record_demo: false,
        })?;
    }
    Ok(())
}

fn kernel_label(kernel: KernelChoice) -> &'static str {
    match kernel {
        KernelChoice::Debian => "Debian 6.1",
        KernelChoice::ReplaceSet => "replace-set",
    }
}

fn step(name: &str, action: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("ci: == {name}");
    let started = Instant::now();
    action().map_err(|error| error.context(format!("CI step `{name}` failed")))?;
    println!(
        "ci: {name} passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! `cargo xtask setup`: installs the build's toolchain pieces, skipping what is present.

use std::process::Command;

use anyhow::Result;

use crate::command::{self, try_output};

/// Nightly toolchain that builds the eBPF crate. It ships LLVM 22, the LLVM major that
/// bpf-linker 0.10.4 reads, so a nightly on LLVM 23 would need another bpf-linker.
/// livepatch-tui/build.rs pins the same toolchain.
pub const NIGHTLY: &str = "nightly-2026-05-19";

/// bpf-linker release that loads LLVM from the Rust toolchain, so no system LLVM is needed.
pub const BPF_LINKER_VERSION: &str = "0.10.4";

/// Debian 12 packages of the kernel lab: QEMU, the guest kernel with its headers and
/// source (for the sample and selftest livepatch modules), the guest userland, and the
/// tools that build modules and the initramfs.
pub const LAB_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "linux-image-amd64",
    "linux-headers-amd64",
    "linux-source-6.1",
    "busybox-static",
    "cpio",
    "kmod",
    "make",
    // prometheus and promtool, for the metrics tests (livepatch-tui/tests/prometheus.rs).
    "prometheus",
    // A terminal for the dashboard test that drives the binary in a pseudo-terminal.
    "tmux",
    // Building the replace-set kernel (`cargo xtask kernel`): the compiler and
    // kbuild's tools, and pahole (in dwarves) for the kernel's and modules' BTF.
    "gcc",
    "bc",
    "bison",
    "flex",
    "libelf-dev",
    "libssl-dev",
    "dwarves",
    "patch",
    "xz-utils",
];

pub fn run(lab: bool) -> Result<()> {
    install_lint_components()?;
    install_nightly()?;
    install_bpf_linker()?;
    if lab {
        install_lab_packages()?;
    }
    Ok(())
}

/// Adds rustfmt and clippy to the active toolchain, which a minimal rustup profile
/// leaves out. `cargo xtask ci` runs both.
fn install_lint_components() -> Result<()> {
    let components =
        command::output(Command::new("rustup").args(["component", "list", "--installed"]))?;
    let missing: Vec<&str> = ["rustfmt", "clippy"]
        .into_iter()
        .filter(|name| !components.lines().any(|line| line.starts_with(name)))
        .collect();
    if missing.is_empty() {
        println!("setup: rustfmt and clippy already installed");
        return Ok(());
    }
    println!(
        "setup: adding {} to the active toolchain",
        missing.join(" and ")
    );
    command::run(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    )
}

fn install_nightly() -> Result<()> {
    let toolchains = command::output(Command::new("rustup").args(["toolchain", "list"]))?;
    let installed = toolchains
        .lines()
        .any(|line| line.starts_with(&format!("{NIGHTLY}-")));
    if !installed {
        println!("setup: installing toolchain {NIGHTLY} with rust-src");
        return command::run(Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]));
    }

    let components = command::output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))?;
    if components.lines().any(|line| line.starts_with("rust-src")) {
        println!("setup: toolchain {NIGHTLY} with rust-src already installed");
        return Ok(());
    }
    println!("setup: adding rust-src to toolchain {NIGHTLY}");
    command::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        NIGHTLY,
    ]))
}

fn install_bpf_linker() -> Result<()> {
    let version = try_output("bpf-linker", &["--version"]).unwrap_or_default();
    // `bpf-linker --version` prints "bpf-linker 0.10.4".
    if version.split_whitespace().nth(1) == Some(BPF_LINKER_VERSION) {
        println!("setup: bpf-linker {BPF_LINKER_VERSION} already installed");
        return Ok(());
    }
    println!("setup: installing bpf-linker {BPF_LINKER_VERSION} (cargo install, about a minute)");
    command::run(command::cargo().args([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--locked",
    ]))
}

fn install_lab_packages() -> Result<()> {
    let missing: Vec<&str> = LAB_PACKAGES
        .iter()
        .copied()
        .filter(|package| !is_package_installed(package))
        .collect();
    if missing.is_empty() {
        println!("setup: Debian packages of the lab already installed");
        return Ok(());
    }

    println!("setup: missing Debian packages: {}", missing.join(" "));
    println!("setup: apt-get update");
    command::run(Command::new("apt-get").arg("update"))?;
    println!("setup: apt-get install {}", LAB_PACKAGES.join(" "));
    command::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(LAB_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    stop_packaged_prometheus();
    Ok(())
}

/// Stops the Prometheus service that Debian's package starts under systemd:
/// the tests run their own on loopback, and a server listening on every
/// interface is not something a test set-up should leave behind.
fn stop_packaged_prometheus() {
    let active = Command::new("systemctl")
        .args(["is-active", "--quiet", "prometheus"])
        .status()
        .is_ok_and(|status| status.success());
    if !active {
        return;
    }
    println!("setup: systemctl disable --now prometheus (the tests start their own)");
    if let Err(error) =
        command::run(Command::new("systemctl").args(["disable", "--now", "prometheus"]))
    {
        println!("setup: could not stop the packaged Prometheus: {error:#}");
    }
}

fn is_package_installed(package: &str) -> bool {
    try_output("dpkg-query", &["-W", "-f=${db:Status-Status}", package])
        .is_some_and(|status| status.trim() == "installed")
}

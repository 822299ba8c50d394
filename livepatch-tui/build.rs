use std::path::PathBuf;

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

/// Nightly that builds the eBPF crate. bpf-linker 0.10.4 reads its LLVM 22
/// bitcode; a nightly on another LLVM major needs another bpf-linker.
const EBPF_TOOLCHAIN: &str = "nightly-2026-05-19";

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root_dir = manifest_dir.join("../livepatch-ebpf");
    let root_dir = root_dir.to_str().context("workspace path is not UTF-8")?;

    let package = Package {
        name: "livepatch-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom(EBPF_TOOLCHAIN)).context(
        "building the eBPF programs failed; `cargo xtask setup` installs the \
         pinned nightly with rust-src and bpf-linker 0.10.4",
    )
}

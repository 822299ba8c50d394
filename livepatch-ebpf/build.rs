use which::which;

/// Rebuilds the eBPF programs when bpf-linker changes, since it turns the
/// bitcode into BPF object code.
fn main() {
    let bpf_linker = which("bpf-linker").expect(
        "bpf-linker not found in PATH: run `cargo xtask setup`, \
         which installs bpf-linker 0.10.4",
    );
    println!("cargo:rerun-if-changed={}", bpf_linker.to_str().unwrap());
}

//! Builds the eBPF programs (`casa-ebpf`) for the BPF target with aya-build; `casa::sensor`
//! embeds the resulting object. Needs the nightly toolchain with `rust-src` and bpf-linker
//! (`./setup.sh --build-only` installs both).
//!
//! With the `kernel-stub` feature (`make test-unit` only) nothing is built: `casa::sensor`
//! embeds no object and `Sensor::load` fails with `SensorError::NoKernelPrograms`. The feature
//! is the only way to skip the eBPF build; without it a missing toolchain fails the build.
use std::path::PathBuf;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    if std::env::var_os("CARGO_FEATURE_KERNEL_STUB").is_some() {
        // Nothing to rebuild on: the stub depends on this file only.
        println!("cargo:rerun-if-changed=build.rs");
        println!(
            "cargo:warning=casa is built with the `kernel-stub` feature: no eBPF programs; \
             `casa run` and `casa record` will refuse to start"
        );
        return Ok(());
    }
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let root = manifest
        .parent()
        .context("casa crate has no parent dir")?
        .join("casa-ebpf");
    let root = root.to_str().context("non-UTF-8 path to casa-ebpf")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "casa-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs (run ./setup.sh --build-only if bpf-linker or the nightly rust-src is missing; `make test-unit` tests without them)")
}

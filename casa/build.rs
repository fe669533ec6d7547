//! Builds the eBPF programs (`casa-ebpf`) for the BPF target with aya-build; `casa::sensor`
//! embeds the resulting object. Needs the nightly toolchain with `rust-src` and bpf-linker
//! (`./setup.sh --build-only` installs both).
use std::path::PathBuf;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
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
    .context("building the eBPF programs (run ./setup.sh --build-only if bpf-linker or the nightly rust-src is missing)")
}

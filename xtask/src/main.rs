//! Developer tasks that do not belong in a build script. Run as `cargo xtask <task>`.
//!
//! * `check`: formatting and clippy (`-D warnings`) for every crate, the eBPF crate included
//!   (it needs the nightly toolchain and the BPF target, so plain `cargo clippy` skips it).

use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "casa developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// cargo fmt --check and clippy -D warnings on all crates, the eBPF crate included.
    Check,
}

fn run(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: {what}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn check() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?
        .to_owned();
    run(
        "rustfmt (all crates)",
        Command::new("cargo")
            .current_dir(&root)
            .args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "clippy (host crates)",
        Command::new("cargo").current_dir(&root).args([
            "clippy",
            "--workspace",
            "--exclude",
            "casa-ebpf",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(
        "clippy (casa-ebpf, bpfel-unknown-none)",
        Command::new("cargo")
            .current_dir(root.join("casa-ebpf"))
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .args([
                "+nightly",
                "clippy",
                "--release",
                "--locked",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ]),
    )
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Check => check(),
    }
}

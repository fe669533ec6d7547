//! Developer tasks that do not belong in a build script. Run as `cargo xtask <task>`.
//!
//! * `check`: formatting and clippy (`-D warnings`) for every crate, the eBPF crate included
//!   (it needs the nightly toolchain and the BPF target, so plain `cargo clippy` skips it).
//! * `bench [--quick]`: the benchmarks (issue #5), written to `BENCHMARKS.md` (see `bench`).
//! * `bench-corpus`: the 1M-event replay corpus, `target/bench/corpus.rec`.
//! * `instructions [--update]`: the pipeline's instructions per event under callgrind,
//!   checked against a committed baseline (see `instructions`).
//! * `load …`: the workloads the benchmarks run (not for direct use).

mod bench;
mod instructions;
mod load;

use std::{path::PathBuf, process::Command};

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
    /// Run the benchmarks on this machine and write BENCHMARKS.md (items 2-6 need root).
    Bench {
        /// Small workloads and fewer repetitions: checks the harness in a few minutes.
        #[arg(long)]
        quick: bool,
        /// Repetitions of every measurement (default 7; quick 3, which only checks the harness).
        #[arg(long)]
        reps: Option<usize>,
        /// Only these items (1-6), e.g. --only 1,3.
        #[arg(long, value_delimiter = ',')]
        only: Vec<u8>,
        /// Where to write the report (default BENCHMARKS.md; with --quick,
        /// target/bench/BENCHMARKS-quick.md, so a harness check never replaces the figures).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the replay corpus (target/bench/corpus.rec) and the 100-rule set.
    BenchCorpus {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
    },
    /// Count the pipeline's instructions per event with callgrind and check them against
    /// xtask/instructions.baseline.json (fails past +10 %); --update rewrites the baseline.
    Instructions {
        /// The casa binary to measure (default: target/release/casa, built by `make`).
        #[arg(long)]
        casa: Option<PathBuf>,
        /// Write the measurement as the new baseline instead of checking.
        #[arg(long)]
        update: bool,
    },
    /// A benchmark workload (run by `bench`).
    #[command(hide = true, subcommand)]
    Load(load::Load),
}

fn run(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: {what}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?
        .to_owned())
}

fn check() -> anyhow::Result<()> {
    let root = workspace_root()?;
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
    // Copied next to the stand-in launcher as `node`, this binary plays a minimal agent.
    let args: Vec<String> = std::env::args().collect();
    if args
        .first()
        .is_some_and(|a| a.ends_with("/node") || a == "node")
    {
        return load::fake_node(&args[1..]);
    }
    match Cli::parse().task {
        Task::Check => check(),
        Task::Bench {
            quick,
            reps,
            only,
            out,
        } => {
            let root = workspace_root()?;
            let out = out.unwrap_or_else(|| {
                if quick {
                    PathBuf::from("target/bench/BENCHMARKS-quick.md")
                } else {
                    PathBuf::from("BENCHMARKS.md")
                }
            });
            let out = if out.is_absolute() {
                out
            } else {
                root.join(out)
            };
            bench::run(
                &root,
                &bench::Opts {
                    quick,
                    reps: reps.unwrap_or(if quick { 3 } else { 7 }),
                    out,
                    only,
                },
            )
        }
        Task::BenchCorpus { events } => bench::corpus(&workspace_root()?, events),
        Task::Instructions { casa, update } => {
            let root = workspace_root()?;
            let casa = casa.unwrap_or_else(|| root.join("target/release/casa"));
            instructions::run(&root, &casa, update)
        }
        Task::Load(l) => load::run(&l),
    }
}

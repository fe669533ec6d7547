//! The commands behind the CLI: the async edges of casa (signals, files, the sensor's ring).
//! Each command wires library stages together; none holds pipeline logic of its own.

mod dump;
mod record;
mod run;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::{
    cli::{Cli, Command, SensorArgs},
    clock::BootClock,
    recording::Meta,
    sensor::SensorOptions,
};

/// Set up console logging on stderr (`RUST_LOG` filters; default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Dump(args) => dump::dump(&args),
        Command::Record(args) => runtime()?.block_on(record::record(args)),
        Command::Run(args) => runtime()?.block_on(run::run(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn sensor_options(args: &SensorArgs) -> SensorOptions {
    SensorOptions {
        all_processes: args.all_processes,
        ring_bytes: args.ring_size,
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Metadata for a recording started now.
fn meta(clock: BootClock, command: &[std::ffi::OsString], all_processes: bool) -> Meta {
    Meta {
        wire_version: casa_common::WIRE_VERSION,
        clock,
        casa_version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        started_at: clock.rfc3339(BootClock::boottime_now_ns()),
        command: command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        all_processes,
    }
}

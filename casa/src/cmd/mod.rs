//! The commands behind the CLI: the async edges of casa (signals, files, the sensor's ring).
//! Each command wires library stages together; none holds pipeline logic of its own.

mod dump;
mod record;
mod replay;
mod rules;
mod run;
mod sessions;
pub mod verify;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::{
    cli::{Cli, Command, SensorArgs},
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
        Command::Replay(args) => replay::replay(&args),
        Command::Rules(cmd) => rules::rules(&cmd),
        Command::VerifyLog(args) => verify::verify_log(&args),
        Command::Sessions(args) => sessions::sessions(&args),
        Command::Explain(args) => sessions::explain(&args),
        Command::Diff(args) => sessions::diff(&args),
    }
}

pub use crate::assemble::DEFAULT_RULES;

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
        wake_every_record: false,
    }
}

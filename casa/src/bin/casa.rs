//! The `casa` binary: parse the command line, run the command, map errors to an exit code.
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = casa::cli::Cli::parse();
    casa::cmd::init_logging();
    match casa::cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("casa: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

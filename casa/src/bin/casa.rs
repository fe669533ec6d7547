//! The `casa` binary: parse the command line, run the command, map errors to an exit status
//! ([`casa::exit`]: clap's usage errors are 2, an error that ends a command is 3).
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = casa::cli::Cli::parse();
    casa::cmd::init_logging();
    match casa::cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("casa: error: {e:#}");
            casa::exit::Status::of_error(&e).into()
        }
    }
}

//! `casa verify-log FILE [--head FILE]`: check a hash-chained log (`audit.log`, `alert.log`)
//! and its head file (see [`crate::sink::chain`]).
//!
//! Prints a one-line verdict, then indented details (files, where the chain is intact to,
//! warnings), all on stdout. Exit status ([`crate::exit`]): 0 ok (warnings possible: segment
//! starts, interrupted writes, no head file); 1 a finding, named by the verdict line: chain
//! broken (a record edited, deleted, inserted, reordered or forged, garbage, records beyond
//! the head), truncated, or rolled back against the head; 3 the files cannot be read (missing
//! log, unreadable or invalid head).

use std::{path::PathBuf, process::ExitCode};

use crate::{exit::Status, sink::chain};

/// Arguments of `casa verify-log`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// A hash-chained log written by casa (audit.log, alert.log).
    pub file: PathBuf,
    /// Head file to check the log's end against [default: FILE.head]; keep a copy elsewhere
    /// to detect a rewritten log and head.
    #[arg(long)]
    pub head: Option<PathBuf>,
}

/// Run `casa verify-log`. Every outcome, including unreadable files, is a verdict on stdout
/// and an exit status (never `Err`).
pub fn verify_log(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    match chain::verify(&args.file, args.head.as_deref()) {
        Ok(report) => {
            println!("{}", report.verdict());
            for line in report.details() {
                println!("  {line}");
            }
            Ok(Status::from(report.outcome()).into())
        }
        Err(e) => {
            println!("error: cannot verify: {e}");
            Ok(Status::from(&e).into())
        }
    }
}

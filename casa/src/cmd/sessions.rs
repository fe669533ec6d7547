//! `casa sessions`, `casa explain ID` and `casa diff ID`: casa's own logs read back for a
//! person (`crate::report` does the work; this file reads the files and prints).

use std::{path::Path, process::ExitCode};

use anyhow::Context as _;
use serde_json::Value;

use crate::{
    assemble::log_paths,
    cli::{LogsArgs, SessionArgs},
    exit::Status,
    report::{self, SessionRow},
    settings::Env,
    sink::LogPaths,
};

fn paths(args: &LogsArgs) -> LogPaths {
    match &args.logs {
        Some(dir) => LogPaths::in_dir(dir),
        None => log_paths(&Env::load(), None, None, None, None),
    }
}

/// Every record of a log; a log that does not exist yet has none, any other read error or a
/// bad line is an error naming the file.
fn read(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(report::records(&path.display().to_string(), &text)?)
}

fn rows(paths: &LogPaths) -> anyhow::Result<Vec<SessionRow>> {
    if !paths.sessions.exists() {
        anyhow::bail!(
            "{}: no such file (point --logs at the folder casa run writes)",
            paths.sessions.display()
        );
    }
    Ok(report::sessions(&read(&paths.sessions)?))
}

pub fn sessions(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let rows = rows(&paths(args))?;
    print!("{}", report::sessions_table(&rows));
    Ok(Status::Ok.into())
}

fn find(paths: &LogPaths, id: u64) -> anyhow::Result<Option<SessionRow>> {
    let row = rows(paths)?.into_iter().find(|r| r.id == id);
    if row.is_none() {
        eprintln!(
            "casa: no session {id} in {} (`casa sessions` lists them)",
            paths.sessions.display()
        );
    }
    Ok(row)
}

pub fn explain(args: &SessionArgs) -> anyhow::Result<ExitCode> {
    let paths = paths(&args.logs);
    let Some(row) = find(&paths, args.id)? else {
        return Ok(Status::Finding.into());
    };
    let events = read(&paths.events)?;
    let audits = read(&paths.audit)?;
    print!("{}", report::explain(&row, &events, &audits));
    Ok(Status::Ok.into())
}

pub fn diff(args: &SessionArgs) -> anyhow::Result<ExitCode> {
    let paths = paths(&args.logs);
    if find(&paths, args.id)?.is_none() {
        return Ok(Status::Finding.into());
    }
    let events = read(&paths.events)?;
    print!(
        "{}",
        report::diff_text(args.id, &report::diff(args.id, &events))
    );
    Ok(Status::Ok.into())
}

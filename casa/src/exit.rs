//! Exit statuses of the `casa` binary: one scheme for every command, defined here and only
//! here (the commands return a [`Status`], `main` maps an error with [`Status::of_error`]).
//!
//! | status | meaning |
//! |---|---|
//! | 0 | ok |
//! | 1 | a finding: the input was read and fails the command's check (`verify-log`: chain broken, truncated or rolled back, the verdict line says which; `rules check`: invalid rules; `rules test`: a failing case or an invalid rules or fixture file; `replay`, `dump`: undecodable records) |
//! | 2 | usage: the command line is wrong (clap's own status, and [`UsageError`]) |
//! | 3 | failure: I/O or environment (a file missing, unreadable or unwritable, not a casa recording or head file, the kernel refused, not root, a build without kernel programs) |
//!
//! `casa record -- CMD` is the one pass-through: once the recording is written it exits with
//! CMD's status (as a shell reports it), like `time` or `strace`; its own failures are 3.

use std::process::ExitCode;

use crate::{rules::RulesError, sink::chain};

/// What a command's run amounted to; its [`Status::code`] is the process's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 0: done, nothing found.
    Ok,
    /// 1: the input was read and fails the command's check.
    Finding,
    /// 2: the command line is wrong.
    Usage,
    /// 3: I/O or environment: casa could not do what was asked.
    Failure,
}

impl Status {
    /// The numeric exit status.
    pub const fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Finding => 1,
            Status::Usage => 2,
            Status::Failure => 3,
        }
    }

    /// [`Status::Finding`] when `found` is true, else [`Status::Ok`].
    pub const fn finding_if(found: bool) -> Self {
        if found { Status::Finding } else { Status::Ok }
    }

    /// The status of an error that ended a command: [`Status::Usage`] when a [`UsageError`]
    /// is anywhere in its chain, [`Status::Failure`] otherwise (findings are never errors).
    pub fn of_error(e: &anyhow::Error) -> Self {
        if e.chain().any(|c| c.is::<UsageError>()) {
            Status::Usage
        } else {
            Status::Failure
        }
    }
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> Self {
        ExitCode::from(s.code())
    }
}

impl From<chain::Outcome> for Status {
    /// `verify-log`: intact is ok; broken, truncated and rolled back are all findings.
    fn from(o: chain::Outcome) -> Self {
        match o {
            chain::Outcome::Ok => Status::Ok,
            chain::Outcome::Broken | chain::Outcome::HeadMismatch => Status::Finding,
        }
    }
}

impl From<&chain::ChainError> for Status {
    /// `verify-log` could not read the log or its head: a failure, never a finding.
    fn from(_: &chain::ChainError) -> Self {
        Status::Failure
    }
}

impl From<&RulesError> for Status {
    /// A rules or fixture file that cannot be read is a failure; one that is read and is
    /// invalid is a finding.
    fn from(e: &RulesError) -> Self {
        match e {
            RulesError::Io { .. } => Status::Failure,
            _ => Status::Finding,
        }
    }
}

/// A mistake on the command line that clap cannot see when parsing; exits with
/// [`Status::Usage`] (2), like clap's own errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The scheme as `casa --help` prints it (README "Exit status" has the same table).
pub const HELP: &str = "\
Exit status:
  0  ok
  1  a finding: the input was read and fails the check (verify-log: chain broken, truncated
     or rolled back; rules check/test: invalid rules, a failing case; replay, dump:
     undecodable records)
  2  usage: the command line is wrong
  3  I/O or environment: a file unreadable or unwritable, not root, the kernel refused
  `casa record -- CMD` exits with CMD's status once the recording is written.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_fixed() {
        let all = [Status::Ok, Status::Finding, Status::Usage, Status::Failure];
        assert_eq!(all.map(Status::code), [0, 1, 2, 3]);
        assert_eq!(Status::finding_if(true), Status::Finding);
        assert_eq!(Status::finding_if(false), Status::Ok);
    }

    #[test]
    fn usage_errors_are_found_through_context() {
        let e = anyhow::Error::new(UsageError("bad flags".into())).context("starting");
        assert_eq!(Status::of_error(&e), Status::Usage);
        let e = anyhow::anyhow!("disk full").context("writing");
        assert_eq!(Status::of_error(&e), Status::Failure);
    }

    #[test]
    fn verify_outcomes() {
        assert_eq!(Status::from(chain::Outcome::Ok), Status::Ok);
        assert_eq!(Status::from(chain::Outcome::Broken), Status::Finding);
        assert_eq!(Status::from(chain::Outcome::HeadMismatch), Status::Finding);
    }

    #[test]
    fn rules_errors() {
        let io = RulesError::Io {
            path: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(Status::from(&io), Status::Failure);
        let Err(bad) = crate::rules::RuleSet::parse("{", "x.json") else {
            panic!("`{{` is not a rules file");
        };
        assert_eq!(Status::from(&bad), Status::Finding);
    }

    #[test]
    fn help_lists_every_status() {
        for s in [Status::Ok, Status::Finding, Status::Usage, Status::Failure] {
            assert!(HELP.contains(&format!("\n  {}  ", s.code())), "{s:?}");
        }
    }
}

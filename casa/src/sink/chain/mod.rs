//! Tamper-evident logs: a SHA-256 hash chain over `audit.log` and `alert.log`, a head file
//! recording where the chain ends, and the verification behind `casa verify-log`.
//!
//! # Record format
//!
//! Every line of a chained log is one JSON object: the record as the pipeline built it
//! ([`super::records::FullLogRecord`], handed to [`Chain::seal_record`] as a value and
//! serialised once, straight into the canonical body) plus three fields:
//!
//! * `seq` — 1, 2, … within a segment (see below);
//! * `prev_hash` — the `hash` of the previous record of the segment, or 64 zeros
//!   ([`ZERO_HASH`]) for its first record;
//! * `hash` — lowercase hex SHA-256, defined as:
//!
//! ```text
//! body = canonical(record without "hash", with "seq" and "prev_hash")
//! hash = hex(SHA-256(body ‖ prev_hash))        prev_hash: its 64 ASCII hex characters
//! line = body without its final "}" ‖ ,"hash":"<hash>"}
//! ```
//!
//! `canonical` ([`canonical`]) is JSON without any whitespace, object keys sorted by their
//! UTF-8 bytes at every level, strings escaped as serde_json escapes them (`"`, `\` and control
//! characters only; everything else is raw UTF-8) and numbers printed as serde_json prints them.
//! So a line is the canonical body with `hash` appended as its last member, and anyone can
//! check a record without casa:
//!
//! ```text
//! body=$(sed -n 4p audit.log | sed 's/,"hash":"[0-9a-f]*"}$/}/')
//! printf '%s%s' "$body" "$prev_hash" | sha256sum
//! ```
//!
//! Verification parses each line, removes `hash`, recomputes the canonical body and the hash,
//! and also requires the line to be byte for byte `body[..len-1] ‖ ,"hash":"…"}`: added
//! whitespace, reordered or duplicated keys are reported even when they do not change what a
//! JSON parser reads.
//!
//! # Head file
//!
//! `<log>.head` ([`head_path`]) holds the position of the last record written, as
//! `{"seq":…,"hash":"…","lines":…,"bytes":…}` (`lines`: the physical lines of the log up to and
//! including that record; `bytes`: the log's length just after its newline). The writer
//! replaces it atomically after each record ([`Chain::commit_head`]: the log is synced, then
//! a temporary file in the same directory, mode 0600, is written, synced and renamed over the
//! head, and the directory is synced). Against the head, verification detects records
//! appended after it (forged), records removed from the end (truncation) and a log replaced
//! by an older copy (rollback) — none of which the chain alone can show. An attacker who can
//! rewrite both files can forge a consistent pair (there is no secret key): keep a copy of
//! the head elsewhere (`casa verify-log audit.log --head /safe/audit.log.head`).
//!
//! # Markers: segments and interrupted writes
//!
//! A writer never refuses to start and never truncates evidence. When it resumes a log
//! ([`Chain::new`]; also at any seal that finds the log's length changed, or after
//! [`Chain::mark_stale`]) it reads the head and scans back from the end of the log to the last
//! line that is a chained record. Lines after that record which are not chained records
//! (at most [`MAX_DECLARED`], the last possibly without its newline) are what interrupted
//! writes leave: a crash mid-line, or a failed write whose torn line the sink ended.
//!
//! * The head matches that record → the chain continues. If lines were left after it, the
//!   next write first ends an unterminated last line with a newline, then writes a marker
//!   record ([`Interrupted`]) `{"incomplete_lines":[{"line":L,"bytes":N,"sha256":"…"},…],
//!   "reason":"…","timestamp":"…",…}` that chains onto that record and names each such line
//!   (number, length and SHA-256 of its bytes, without the newline). The lines are kept,
//!   outside the chain.
//! * They disagree (no head file, head deleted or unreadable, the log edited, rotated,
//!   truncated, or written past the head by a stop before the head was updated) → a new
//!   *segment*: the next write starts with a marker ([`SegmentStart`]) `{"segment_start":true,
//!   "reason":"…","timestamp":"…","previous":{"last_seq":…,"last_hash":…,"lines":…,"bytes":…,
//!   "head":{…}|null},"seq":1,"prev_hash":"000…",…}` (plus `incomplete_lines` when there are
//!   such lines; a member of `previous` is `null` when unknown, e.g. when the log could not
//!   be read). `previous.last_hash` is the hash of the log's last chained record, so the
//!   segments stay bound to each other: verification requires it to be the hash of the
//!   record before the marker.
//!
//! Markers are written lazily, together with the first record after the resume, so that all
//! writes go through the log's normal writer ([`Chain::seal`] returns them as extra lines in
//! front of the record). Verification reports each segment start and each declared line as a
//! warning (exit status 0): an honest restart stays distinguishable from tampering, and the
//! auditor sees where and why. A line that is not a chained record and that no marker
//! declares is a break — garbage, or an interrupted write no restart has declared yet.
//!
//! # Verification
//!
//! [`verify()`] walks every line and stops at the first problem ([`ProblemKind`]): a line that is
//! not JSON or not a chained record and that no marker declares, a declared line changed
//! since, a record whose content does not match its hash (edited),
//! a record not in canonical form, a `prev_hash`/`seq` that does not follow the previous
//! record (deleted, inserted, reordered), a malformed marker. Then, against the head: complete
//! lines after the head's position (beyond head), a log shorter than the head says
//! (truncated, or rolled back to an older copy), the head's record missing from its position
//! (rolled back and written again, or rewritten). A last line without its newline is an
//! incomplete tail (warning, not a record). [`VerifyReport::outcome`] says which: ok, chain
//! broken (including beyond head), or truncated / rolled back against the head; `casa
//! verify-log` exits 0 for ok and 1 for either finding, and 3 when the files cannot be read
//! ([`ChainError`]) (`crate::exit`).
//!
//! # Layout
//!
//! * [`format`](mod@format): the exact bytes — canonical JSON, the hash, a sealed record's
//!   line, the head file's content, the marker records ([`Marker`]) — and what a chained line
//!   is;
//! * [`writer`]: [`Chain`], which seals records (given as values: [`Chain::seal_record`]),
//!   commits the head and resumes after a restart or a failed write;
//! * [`verify`](mod@verify): [`verify()`] and its [`VerifyReport`].

use std::{
    io,
    path::{Path, PathBuf},
};

pub mod format;
pub mod verify;
pub mod writer;

pub use format::{
    Head, IncompleteLine, Interrupted, MAX_DECLARED, Marker, Previous, RESERVED_FIELDS,
    SegmentStart, ZERO_HASH, canonical, head_path, record_hash,
};
pub use verify::{
    HeadStatus, Outcome, Position, Problem, ProblemKind, VerifyReport, Warning, verify,
};
pub use writer::Chain;

/// Read buffer size for the log.
const CHUNK: usize = 64 << 10;

/// Errors of the chain: reading or writing its files, or a record it cannot seal.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a casa head file: {reason}", path.display())]
    BadHead { path: PathBuf, reason: String },
    #[error("record is not JSON: {0}")]
    NotJson(String),
    #[error("record cannot be serialised as JSON: {0}")]
    Unserialisable(String),
    #[error("record is not a JSON object")]
    NotAnObject,
    #[error("record already has the chain's field `{0}`")]
    ReservedField(&'static str),
    #[error(
        "{}: the log is {found} bytes but the chain expected {expected} (a failed write, or \
         another writer); the next record resumes from the file",
        path.display()
    )]
    OutOfStep {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ChainError + '_ {
    move |source| ChainError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests;

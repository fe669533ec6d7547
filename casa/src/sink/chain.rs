//! Tamper-evident logs: a SHA-256 hash chain over `audit.log` and `alert.log`, a head file
//! recording where the chain ends, and the verification behind `casa verify-log`.
//!
//! # Record format
//!
//! Every line of a chained log is one JSON object: the record as the pipeline built it
//! ([`super::records::FullLogRecord`]) plus three fields:
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
//!   record `{"incomplete_lines":[{"line":L,"bytes":N,"sha256":"…"},…],"reason":"…",
//!   "timestamp":"…",…}` that chains onto that record and names each such line (number,
//!   length and SHA-256 of its bytes, without the newline). The lines are kept, outside the
//!   chain.
//! * They disagree (no head file, head deleted or unreadable, the log edited, rotated,
//!   truncated, or written past the head by a stop before the head was updated) → a new
//!   *segment*: the next write starts with a marker `{"segment_start":true,"reason":"…",
//!   "timestamp":"…","previous":{"last_seq":…,"last_hash":…,"lines":…,"bytes":…,
//!   "head":{…}|null},"seq":1,"prev_hash":"000…",…}` (plus `incomplete_lines` when there are
//!   such lines). `previous.last_hash` is the hash of the log's last chained record, so the
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
//! [`verify`] walks every line and stops at the first problem ([`ProblemKind`]): a line that is
//! not JSON or not a chained record and that no marker declares, a declared line changed
//! since, a record whose content does not match its hash (edited),
//! a record not in canonical form, a `prev_hash`/`seq` that does not follow the previous
//! record (deleted, inserted, reordered), a malformed marker. Then, against the head: complete
//! lines after the head's position (beyond head), a log shorter than the head says
//! (truncated, or rolled back to an older copy), the head's record missing from its position
//! (rolled back and written again, or rewritten). A last line without its newline is an
//! incomplete tail (warning, not a record). [`VerifyReport::exit_code`]: 0 ok, 1 chain broken
//! (including beyond head), 2 truncated or rolled back against the head; errors reading the
//! files ([`ChainError`]) are 3.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first record of a segment.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Fields the chain adds; a record given to [`Chain::seal`] must not have them.
pub const RESERVED_FIELDS: [&str; 5] = [
    "seq",
    "prev_hash",
    "hash",
    "segment_start",
    "incomplete_lines",
];

/// Exit status of `casa verify-log` when the files cannot be read (or the command is misused).
pub const EXIT_IO: u8 = 3;

/// Errors of the chain: reading or writing its files, or a record it cannot seal.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a casa head file: {reason}", path.display())]
    BadHead { path: PathBuf, reason: String },
    #[error("record is not JSON: {0}")]
    NotJson(String),
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

impl ChainError {
    /// `casa verify-log`'s exit status for this error.
    pub fn exit_code(&self) -> u8 {
        EXIT_IO
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ChainError + '_ {
    move |source| ChainError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The head file of `log`: `<log>.head`.
pub fn head_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".head");
    PathBuf::from(s)
}

/// Canonical JSON: no whitespace, object keys sorted by their bytes at every level.
pub fn canonical(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k.as_str()).expect("serialising a JSON string");
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(v: &Value, out: &mut Vec<u8>) {
    // Serialising a scalar into a Vec cannot fail.
    serde_json::to_writer(&mut *out, v).expect("serialising a JSON scalar");
}

/// `hash` of a record: hex SHA-256 of its canonical body followed by its `prev_hash`.
pub fn record_hash(body: &[u8], prev_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(body);
    h.update(prev_hash.as_bytes());
    hex(&h.finalize())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The line of a record: its canonical body with `hash` appended as the last member.
fn line_of(body: &[u8], hash: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(body.len() + 76);
    line.extend_from_slice(&body[..body.len() - 1]);
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}");
    line
}

fn now_rfc3339() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    crate::clock::format_rfc3339(ns)
}

/// The position of the last record written: the content of a head file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// `seq` of the last record (0: none yet).
    pub seq: u64,
    /// `hash` of the last record ([`ZERO_HASH`]: none yet).
    pub hash: String,
    /// Physical lines of the log up to and including the last record.
    pub lines: u64,
    /// Length of the log just after the last record's newline.
    pub bytes: u64,
}

impl Head {
    fn empty() -> Self {
        Self {
            seq: 0,
            hash: ZERO_HASH.to_owned(),
            lines: 0,
            bytes: 0,
        }
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let head: Head = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if !is_hash(&head.hash) {
            return Err(format!("`hash` is not 64 hex digits: {:?}", head.hash));
        }
        Ok(head)
    }

    /// Read a head file; `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<Self>, ChainError> {
        match fs::read(path) {
            Ok(bytes) => Self::parse(&bytes)
                .map(Some)
                .map_err(|reason| ChainError::BadHead {
                    path: path.to_owned(),
                    reason,
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    fn describe(&self) -> String {
        format!(
            "seq {}, hash {}, {}, {} bytes",
            self.seq,
            self.hash,
            plural(self.lines, "line", "lines"),
            self.bytes
        )
    }
}

/// Atomically replace `path` with `head`: temp file (0600) in the same directory, fsync,
/// rename, fsync of the directory.
fn write_head_file(path: &Path, head: &Head) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut text = serde_json::to_vec(head).map_err(io::Error::other)?;
    text.push(b'\n');
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(&text)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

// ---------------------------------------------------------------------------------------------
// Reading the end of a log

/// Most lines one marker declares (interrupted writes); verification accepts no more either.
pub const MAX_DECLARED: usize = 64;

/// Longest line read to see whether it is a chained record (longer: not a record).
const MAX_LINE: u64 = 16 << 20;

/// A line at the end of a log that is not a chained record: what an interrupted write leaves.
#[derive(Debug)]
struct Junk {
    len: u64,
    sha256: String,
}

/// The end of a log as a resuming writer sees it.
struct Tail {
    /// File length.
    len: u64,
    /// The last line that looks like a chained record: (seq, hash, offset just past its
    /// newline — the newline still to be written when it is the unterminated last line).
    last: Option<(u64, String, u64)>,
    /// The lines after it that are not chained records, in file order (the last one may be
    /// unterminated).
    junk: Vec<Junk>,
    /// The file does not end with a newline.
    partial: bool,
    /// More than [`MAX_DECLARED`] such lines: the scan stopped, they are not declared.
    too_much_junk: bool,
}

impl Tail {
    fn empty() -> Self {
        Self {
            len: 0,
            last: None,
            junk: Vec::new(),
            partial: false,
            too_much_junk: false,
        }
    }

    /// Scan back from the end to the last chained record.
    fn read(f: &mut File) -> io::Result<Self> {
        let len = f.metadata()?.len();
        let mut t = Self {
            len,
            ..Self::empty()
        };
        let mut end = rfind_newline(f, len)?.map_or(0, |nl| nl + 1);
        if end < len {
            t.partial = true;
            match line_fields(f, end, len)? {
                Some((seq, hash)) => t.last = Some((seq, hash, len + 1)),
                None => t.junk.push(Junk {
                    len: len - end,
                    sha256: sha256_range(f, end, len)?,
                }),
            }
        }
        while t.last.is_none() && end > 0 {
            if t.junk.len() >= MAX_DECLARED {
                t.too_much_junk = true;
                break;
            }
            let nl = end - 1;
            let start = rfind_newline(f, nl)?.map_or(0, |p| p + 1);
            match line_fields(f, start, nl)? {
                Some((seq, hash)) => t.last = Some((seq, hash, end)),
                None => t.junk.push(Junk {
                    len: nl - start,
                    sha256: sha256_range(f, start, nl)?,
                }),
            }
            end = start;
        }
        t.junk.reverse();
        Ok(t)
    }
}

const CHUNK: usize = 64 << 10;

/// Offset of the last `\n` before `before`.
fn rfind_newline(f: &mut File, before: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; CHUNK];
    let mut end = before;
    while end > 0 {
        let start = end.saturating_sub(CHUNK as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// `(seq, hash)` of the line at `start..end` when it looks like a chained record.
fn line_fields(f: &mut File, start: u64, end: u64) -> io::Result<Option<(u64, String)>> {
    if end - start > MAX_LINE {
        return Ok(None);
    }
    let mut buf = vec![0u8; (end - start) as usize];
    f.seek(SeekFrom::Start(start))?;
    f.read_exact(&mut buf)?;
    Ok(chained_fields(&buf))
}

fn sha256_range(f: &mut File, start: u64, end: u64) -> io::Result<String> {
    f.seek(SeekFrom::Start(start))?;
    let mut h = Sha256::new();
    let mut left = end - start;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        f.read_exact(&mut buf[..n])?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hex(&h.finalize()))
}

fn count_newlines(f: &mut File) -> io::Result<u64> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; CHUNK];
    let mut count = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => return Ok(count),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        count += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// `(seq, hash)` of a line that looks like a chained record (not verified).
fn chained_fields(line: &[u8]) -> Option<(u64, String)> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let seq = v.get("seq")?.as_u64()?;
    let _: &str = v.get("prev_hash")?.as_str().filter(|s| is_hash(s))?;
    let hash = v.get("hash")?.as_str()?;
    is_hash(hash).then(|| (seq, hash.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// The writer

/// A marker record to write before the next record.
#[derive(Debug)]
struct Pending {
    /// End the log's partial last line first.
    newline: bool,
    /// Start a new segment (seq 1, prev_hash zeros).
    segment: bool,
    marker: Map<String, Value>,
}

/// Writer state of one chained log.
///
/// Use: [`Chain::open`] (or [`Chain::new`]) when the log is opened; for each record,
/// [`Chain::seal`]/[`Chain::seal_line`], append the returned bytes plus `\n` to the log and
/// flush, then [`Chain::commit_head`]. After a failed write, or after reopening the log
/// (rotation), call [`Chain::mark_stale`]: the next seal resumes from the file.
#[derive(Debug)]
pub struct Chain {
    log: PathBuf,
    head_path: PathBuf,
    /// Position after the last record sealed.
    pos: Head,
    pending: Option<Pending>,
    stale: bool,
    notes: Vec<String>,
}

impl Chain {
    /// Resume the chain of `existing_log` (which may not exist yet) and its head file.
    ///
    /// Never fails because of what the files contain: a head that does not match the log
    /// starts a new segment and a partial last line is kept and declared (see the module
    /// docs); [`Chain::take_notes`] says what was found. Fails only when the log or head
    /// cannot be read.
    pub fn new(existing_log: &Path) -> Result<Chain, ChainError> {
        let mut chain = Chain {
            log: existing_log.to_owned(),
            head_path: head_path(existing_log),
            pos: Head::empty(),
            pending: None,
            stale: false,
            notes: Vec::new(),
        };
        chain.resume()?;
        Ok(chain)
    }

    /// [`Chain::new`], but infallible (for the daemon): when the log cannot be read, a new
    /// segment is started whose marker says why.
    pub fn open(log: &Path) -> Chain {
        match Chain::new(log) {
            Ok(c) => c,
            Err(e) => {
                let mut c = Chain {
                    log: log.to_owned(),
                    head_path: head_path(log),
                    pos: Head::empty(),
                    pending: None,
                    stale: false,
                    notes: Vec::new(),
                };
                c.fallback(&e);
                c
            }
        }
    }

    /// The log this chain writes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Where the head file is written.
    pub fn head_file(&self) -> &Path {
        &self.head_path
    }

    /// The position after the last record sealed (what [`Chain::commit_head`] writes).
    pub fn head(&self) -> &Head {
        &self.pos
    }

    /// Whether the next seal starts a new segment.
    pub fn starts_segment(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.segment)
    }

    /// What resuming found (segment starts, an interrupted write), for the daemon's log.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The file may no longer be where the chain thinks (a write failed, the log was
    /// reopened or rotated): the next seal resumes from the file.
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Seal a record given as a JSON line (as the pipeline serialises it).
    pub fn seal_line(&mut self, line: &[u8]) -> Result<Vec<u8>, ChainError> {
        let v: Value =
            serde_json::from_slice(line).map_err(|e| ChainError::NotJson(e.to_string()))?;
        self.seal(v)
    }

    /// Add `seq`, `prev_hash` and `hash` to `record` and advance the chain. Returns the bytes
    /// to append to the log, without the final newline: the record's line, preceded after a
    /// resume by a newline ending a partial line and/or a marker line (see the module docs).
    /// Append them (plus `\n`) before the next seal: a seal that finds the log's length
    /// different from where the chain ended resumes from the file (a failed or torn write is
    /// then declared, never chained over). On error nothing changes.
    pub fn seal(&mut self, record: Value) -> Result<Vec<u8>, ChainError> {
        let Value::Object(map) = record else {
            return Err(ChainError::NotAnObject);
        };
        if let Some(k) = RESERVED_FIELDS.iter().find(|k| map.contains_key(**k)) {
            return Err(ChainError::ReservedField(k));
        }
        // Anything else that changed the file (a torn write ended by the sink, rotation, another
        // writer) shows in its length.
        let on_disk = fs::metadata(&self.log).map_or(0, |m| m.len());
        if self.stale || on_disk != self.pos.bytes {
            self.stale = false;
            if let Err(e) = self.resume() {
                self.fallback(&e);
            }
        }
        let mut out = Vec::new();
        if let Some(p) = self.pending.take() {
            if p.newline {
                out.push(b'\n');
                self.pos.lines += 1;
                self.pos.bytes += 1;
            }
            if p.segment {
                self.pos.seq = 0;
                self.pos.hash = ZERO_HASH.to_owned();
            }
            out.extend_from_slice(&self.seal_map(p.marker));
            out.push(b'\n');
        }
        out.extend_from_slice(&self.seal_map(map));
        Ok(out)
    }

    fn seal_map(&mut self, mut map: Map<String, Value>) -> Vec<u8> {
        let seq = self.pos.seq + 1;
        map.insert("seq".into(), seq.into());
        map.insert("prev_hash".into(), self.pos.hash.clone().into());
        let body = canonical(&Value::Object(map));
        let hash = record_hash(&body, &self.pos.hash);
        let line = line_of(&body, &hash);
        self.pos = Head {
            seq,
            hash,
            lines: self.pos.lines + 1,
            bytes: self.pos.bytes + line.len() as u64 + 1,
        };
        line
    }

    /// Write the head file for the last record sealed; call after its line was written and
    /// flushed. Syncs the log first, so the head never points past what is on disk. When the
    /// log's length is not what the chain expects, writes nothing, returns
    /// [`ChainError::OutOfStep`] and the next seal resumes from the file. Does nothing when
    /// nothing was sealed since a resume that left a marker to write.
    pub fn commit_head(&mut self) -> Result<(), ChainError> {
        if self.pending.is_some() || self.stale {
            return Ok(());
        }
        let f = File::open(&self.log).map_err(io_err(&self.log))?;
        let len = f.metadata().map_err(io_err(&self.log))?.len();
        if len != self.pos.bytes {
            self.stale = true;
            return Err(ChainError::OutOfStep {
                path: self.log.clone(),
                expected: self.pos.bytes,
                found: len,
            });
        }
        f.sync_data().map_err(io_err(&self.log))?;
        write_head_file(&self.head_path, &self.pos).map_err(io_err(&self.head_path))
    }

    /// Read the log's end and its head; decide how to continue.
    fn resume(&mut self) -> Result<(), ChainError> {
        self.pending = None;
        let log = self.log.clone();
        let mut file = match File::open(&log) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&log)(e)),
        };
        let tail = match &mut file {
            Some(f) => Tail::read(f).map_err(io_err(&log))?,
            None => Tail::empty(),
        };
        let head = Head::read(&self.head_path);
        let name = self
            .head_path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());

        let mismatch: Option<String> = match &head {
            Err(e) => Some(format!("head file unusable ({e})")),
            Ok(None) if tail.len == 0 => None,
            Ok(None) => Some(format!(
                "no head file {name}: the log's end cannot be confirmed (head deleted, or log \
                 written without one)"
            )),
            Ok(Some(_)) if tail.too_much_junk => Some(format!(
                "more than {MAX_DECLARED} lines at the end of the log are not chained records"
            )),
            Ok(Some(h)) => match &tail.last {
                None if *h == Head::empty() => None,
                None => Some(format!(
                    "the log has no chained record but its head records {} (log rotated, \
                     truncated or replaced)",
                    h.describe()
                )),
                Some((seq, hash, end)) if *seq == h.seq && *hash == h.hash && *end == h.bytes => {
                    None
                }
                Some((seq, hash, end)) => {
                    let why = if *end > h.bytes {
                        "the log continues past the head's position: a stop before the head \
                         was updated, or lines appended by something else"
                    } else if *end < h.bytes {
                        "the log is shorter than the head says: truncated or replaced"
                    } else {
                        "the last record is not the head's: edited or replaced"
                    };
                    Some(format!(
                        "the head does not match the log ({why}): head records {}; the log's \
                         last record is seq {seq}, hash {hash}, ending at byte {end}",
                        h.describe()
                    ))
                }
            },
        };

        let k = tail.junk.len() as u64;
        let partial = u64::from(tail.partial);
        let segment = mismatch.is_some();
        // Complete lines in the file now.
        let complete = match (&mismatch, &head) {
            (None, Ok(Some(h))) => (h.lines + k).saturating_sub(partial),
            (None, _) => k.saturating_sub(partial),
            (Some(_), _) => match &mut file {
                Some(f) => count_newlines(f).map_err(io_err(&log))?,
                None => 0,
            },
        };
        // Line numbers of the lines to declare (the last k lines once the last is ended).
        let first_junk = (complete + partial + 1).saturating_sub(k);
        let declared: Vec<Value> = if tail.too_much_junk {
            Vec::new()
        } else {
            tail.junk
                .iter()
                .enumerate()
                .map(|(i, j)| {
                    serde_json::json!({
                        "line": first_junk + i as u64,
                        "bytes": j.len,
                        "sha256": j.sha256,
                    })
                })
                .collect()
        };
        let span = match k {
            0 => String::new(),
            1 => format!("line {first_junk} is not a chained record"),
            _ => format!(
                "lines {first_junk}-{} are not chained records",
                first_junk + k - 1
            ),
        };
        if !declared.is_empty() {
            self.notes.push(format!(
                "{}: {span} (an interrupted write); kept, and declared by the next record",
                log.display()
            ));
        }

        let mut marker = Map::new();
        if let Some(reason) = &mismatch {
            self.pos = Head {
                seq: 0,
                hash: ZERO_HASH.to_owned(),
                lines: complete,
                bytes: tail.len,
            };
            let head_json = match &head {
                Ok(Some(h)) => serde_json::to_value(h).unwrap_or(Value::Null),
                _ => Value::Null,
            };
            let last = tail.last.as_ref();
            let previous = serde_json::json!({
                "last_seq": last.map(|l| l.0),
                "last_hash": last.map(|l| l.1.clone()),
                "lines": complete + partial,
                "bytes": tail.len,
                "head": head_json,
            });
            marker.insert("segment_start".into(), true.into());
            marker.insert("reason".into(), reason.clone().into());
            marker.insert("previous".into(), previous);
            self.notes.push(format!(
                "{}: starting a new chain segment at line {}: {reason}",
                log.display(),
                complete + partial + 1
            ));
        } else {
            let h = head.ok().flatten().unwrap_or_else(Head::empty);
            self.pos = Head {
                lines: complete,
                bytes: tail.len,
                ..h
            };
            if declared.is_empty() {
                return Ok(());
            }
            marker.insert(
                "reason".into(),
                format!("{span}: left by an interrupted write, kept outside the chain").into(),
            );
        }
        if !declared.is_empty() {
            marker.insert("incomplete_lines".into(), Value::Array(declared));
        }
        marker.insert("timestamp".into(), now_rfc3339().into());
        self.pending = Some(Pending {
            newline: tail.partial,
            segment,
            marker,
        });
        Ok(())
    }

    /// Start a segment without reading the log (it could not be read).
    fn fallback(&mut self, e: &ChainError) {
        let bytes = fs::metadata(&self.log).map_or(0, |m| m.len());
        self.pos = Head {
            bytes,
            ..Head::empty()
        };
        let reason = format!("could not read the log to resume its chain: {e}");
        self.notes.push(format!(
            "{}: starting a new chain segment: {reason}",
            self.log.display()
        ));
        let mut previous = Map::new();
        for k in ["last_seq", "last_hash", "lines", "head"] {
            previous.insert(k.into(), Value::Null);
        }
        previous.insert("bytes".into(), bytes.into());
        let mut marker = Map::new();
        marker.insert("segment_start".into(), true.into());
        marker.insert("reason".into(), reason.into());
        marker.insert("timestamp".into(), now_rfc3339().into());
        marker.insert("previous".into(), Value::Object(previous));
        self.pending = Some(Pending {
            newline: false,
            segment: true,
            marker,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Verification

/// What is wrong, in the order verification looks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A complete line that is not JSON (and not a declared interrupted write).
    InvalidJson,
    /// A JSON line without a valid `seq`, `prev_hash` and `hash`.
    NotChained,
    /// The record's content does not hash to its `hash`.
    Edited,
    /// The record parses to the right content but its bytes are not the canonical form.
    NotCanonical,
    /// `prev_hash` or `seq` does not follow the previous record: deleted, inserted, reordered.
    Linkage,
    /// A marker record that is malformed or does not match what precedes it.
    BadMarker,
    /// A line declared as an interrupted write was changed since.
    IncompleteAltered,
    /// Complete lines after the head's position.
    BeyondHead,
    /// The log is shorter than the head says.
    Truncated,
    /// The head's record is not at its position.
    RolledBack,
}

/// The overall result of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Chain intact and matching the head (warnings possible): exit 0.
    Ok,
    /// A record edited, deleted, inserted, reordered, forged, or beyond the head: exit 1.
    Broken,
    /// Truncated or rolled back against the head: exit 2.
    HeadMismatch,
}

impl ProblemKind {
    pub fn outcome(self) -> Outcome {
        match self {
            ProblemKind::Truncated | ProblemKind::RolledBack => Outcome::HeadMismatch,
            _ => Outcome::Broken,
        }
    }
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The line located (1-based): the broken record, the first line beyond the head, the
    /// first missing line (truncated), the head's line (rolled back).
    pub line: u64,
    /// What the chain requires (e.g. the hash recomputed from the content, the previous
    /// record's hash).
    pub expected: Option<String>,
    /// What the file has.
    pub found: Option<String>,
    /// One-line explanation including `expected` and `found`.
    pub detail: String,
}

/// A remark that does not fail verification (segment start, interrupted write, no head).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub line: Option<u64>,
    pub text: String,
}

/// A verified record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub seq: u64,
    pub hash: String,
    /// Offset just past its newline.
    pub end: u64,
}

/// How the head compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadStatus {
    /// No head file at the default path.
    Missing,
    /// Head and log agree.
    Matches,
    /// Not compared: the chain is broken.
    NotChecked,
    /// See [`VerifyReport::problem`].
    Mismatch,
}

/// The result of [`verify`].
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub log: PathBuf,
    pub head_path: PathBuf,
    pub head: Option<Head>,
    pub head_status: HeadStatus,
    /// Physical lines read (including an incomplete tail); up to the problem when there is one.
    pub lines: u64,
    /// Log length.
    pub bytes: u64,
    /// Chained records verified, markers excluded.
    pub records: u64,
    /// Marker records verified (segment starts, interrupted-write notes).
    pub markers: u64,
    pub segments: u64,
    /// The last record verified.
    pub last: Option<Position>,
    /// A last line without its newline: (line, bytes).
    pub incomplete_tail: Option<(u64, u64)>,
    pub warnings: Vec<Warning>,
    pub problem: Option<Problem>,
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl VerifyReport {
    pub fn outcome(&self) -> Outcome {
        self.problem
            .as_ref()
            .map_or(Outcome::Ok, |p| p.kind.outcome())
    }

    /// `casa verify-log`'s exit status: 0 ok, 1 chain broken, 2 truncated or rolled back.
    pub fn exit_code(&self) -> u8 {
        match self.outcome() {
            Outcome::Ok => 0,
            Outcome::Broken => 1,
            Outcome::HeadMismatch => 2,
        }
    }

    /// The one-line verdict.
    pub fn verdict(&self) -> String {
        match &self.problem {
            None => {
                let head = match self.head_status {
                    HeadStatus::Missing => "no head file",
                    _ => "head matches",
                };
                let mut s = format!(
                    "ok: {}, {}, {head}",
                    plural(self.records, "record", "records"),
                    plural(self.segments, "segment", "segments")
                );
                if !self.warnings.is_empty() {
                    s.push_str(&format!(
                        ", {}",
                        plural(self.warnings.len() as u64, "warning", "warnings")
                    ));
                }
                s
            }
            Some(p) => match p.kind {
                ProblemKind::BeyondHead => format!("beyond head at line {}: {}", p.line, p.detail),
                ProblemKind::Truncated => format!("truncated: {}", p.detail),
                ProblemKind::RolledBack => format!("rolled back at line {}: {}", p.line, p.detail),
                _ => format!("broken at line {}: {}", p.line, p.detail),
            },
        }
    }

    /// Further lines: the files, where the chain is intact to, the warnings.
    pub fn details(&self) -> Vec<String> {
        let mut out = vec![format!(
            "log: {} ({}, {} bytes)",
            self.log.display(),
            plural(self.lines, "line", "lines"),
            self.bytes
        )];
        match &self.head {
            Some(h) => out.push(format!(
                "head: {} ({})",
                self.head_path.display(),
                h.describe()
            )),
            None => out.push(format!(
                "head: none ({} does not exist): records appended or removed at the end cannot \
                 be detected",
                self.head_path.display()
            )),
        }
        if self.problem.is_some() {
            match &self.last {
                Some(l) => out.push(format!(
                    "chain intact through line {} (seq {}, hash {})",
                    l.line, l.seq, l.hash
                )),
                None => out.push("no record verified before the problem".to_owned()),
            }
        }
        for w in &self.warnings {
            match w.line {
                Some(l) => out.push(format!("warning: line {l}: {}", w.text)),
                None => out.push(format!("warning: {}", w.text)),
            }
        }
        out
    }
}

/// One line of the log as read.
struct Line {
    no: u64,
    /// Offset just past it (past its newline when complete).
    end: u64,
    raw: Vec<u8>,
    complete: bool,
}

fn read_line(r: &mut impl BufRead, no: u64, start: u64) -> io::Result<Option<Line>> {
    let mut raw = Vec::new();
    let n = r.read_until(b'\n', &mut raw)?;
    if n == 0 {
        return Ok(None);
    }
    let complete = raw.last() == Some(&b'\n');
    if complete {
        raw.pop();
    }
    Ok(Some(Line {
        no,
        end: start + n as u64,
        raw,
        complete,
    }))
}

/// A complete line that is not a chained record, waiting for a marker to declare it.
struct JunkLine {
    line: u64,
    bytes: u64,
    sha256: String,
    kind: ProblemKind,
    detail: String,
}

/// A line with the chain's fields.
struct Chained {
    map: Map<String, Value>,
    seq: u64,
    prev: String,
    hash: String,
}

/// A chained record, or why the line is not one.
fn classify(raw: &[u8]) -> Result<Chained, (ProblemKind, String)> {
    let v: Value = serde_json::from_slice(raw)
        .map_err(|e| (ProblemKind::InvalidJson, format!("not valid JSON ({e})")))?;
    let Value::Object(map) = v else {
        return Err((ProblemKind::NotChained, "not a JSON object".to_owned()));
    };
    let seq = map.get("seq").and_then(Value::as_u64);
    let prev = map
        .get("prev_hash")
        .and_then(Value::as_str)
        .filter(|s| is_hash(s));
    let hash = map
        .get("hash")
        .and_then(Value::as_str)
        .filter(|s| is_hash(s));
    let (Some(seq), Some(prev), Some(hash)) = (seq, prev, hash) else {
        return Err((
            ProblemKind::NotChained,
            "not a chained record (missing or invalid `seq`, `prev_hash` or `hash`): inserted \
             or forged"
                .to_owned(),
        ));
    };
    let (prev, hash) = (prev.to_owned(), hash.to_owned());
    Ok(Chained {
        map,
        seq,
        prev,
        hash,
    })
}

/// Whether a marker's `incomplete_lines` names exactly these lines.
fn declares_exactly(declared: Option<&Value>, junk: &[JunkLine]) -> bool {
    let Some(Value::Array(items)) = declared else {
        return false;
    };
    items.len() == junk.len()
        && items.iter().zip(junk).all(|(d, j)| {
            d.get("line").and_then(Value::as_u64) == Some(j.line)
                && d.get("bytes").and_then(Value::as_u64) == Some(j.bytes)
                && d.get("sha256").and_then(Value::as_str) == Some(j.sha256.as_str())
        })
}

/// What was at the head's line.
enum AtHead {
    Record(Position),
    Declared,
}

#[derive(Default)]
struct Walker {
    head_lines: Option<u64>,
    last: Option<Position>,
    junk: Vec<JunkLine>,
    records: u64,
    markers: u64,
    segments: u64,
    lines: u64,
    complete_lines: u64,
    at_head: Option<AtHead>,
    first_beyond_head: Option<u64>,
    incomplete_tail: Option<(u64, u64)>,
    warnings: Vec<Warning>,
    problem: Option<Problem>,
}

impl Walker {
    fn fail(
        &mut self,
        kind: ProblemKind,
        line: u64,
        expected: Option<String>,
        found: Option<String>,
        detail: String,
    ) {
        if self.problem.is_none() {
            self.problem = Some(Problem {
                kind,
                line,
                expected,
                found,
                detail,
            });
        }
    }

    /// The first waiting non-record line is the problem.
    fn fail_junk(&mut self) {
        if let Some(j) = self.junk.first() {
            let (kind, line) = (j.kind, j.line);
            let detail = j.detail.clone();
            self.fail(kind, line, None, None, detail);
        }
    }

    /// A declared line whose content changed since the restart declared it.
    fn fail_altered(&mut self, marker: u64, items: &[Value]) {
        let altered = self.junk.iter().find_map(|j| {
            let d = items
                .iter()
                .find(|d| d.get("line").and_then(Value::as_u64) == Some(j.line))?;
            let bytes = d.get("bytes").and_then(Value::as_u64).unwrap_or_default();
            let sha = d.get("sha256").and_then(Value::as_str).unwrap_or_default();
            (bytes != j.bytes || sha != j.sha256).then(|| {
                (
                    j.line,
                    format!("{bytes} bytes, sha256 {sha}"),
                    format!("{} bytes, sha256 {}", j.bytes, j.sha256),
                )
            })
        });
        if let Some((line, expected, found)) = altered {
            let detail = format!(
                "line {line} was changed after line {marker} declared it an interrupted write: \
                 expected {expected}, found {found}"
            );
            self.fail(
                ProblemKind::IncompleteAltered,
                line,
                Some(expected),
                Some(found),
                detail,
            );
        }
    }

    fn warn(&mut self, line: u64, text: String) {
        self.warnings.push(Warning {
            line: Some(line),
            text,
        });
    }

    fn note_complete(&mut self, no: u64, what: AtHead) {
        self.complete_lines += 1;
        if let Some(hl) = self.head_lines {
            if no == hl {
                self.at_head = Some(what);
            } else if no > hl && self.first_beyond_head.is_none() {
                self.first_beyond_head = Some(no);
            }
        }
    }

    fn line(&mut self, cur: Line) {
        self.lines = cur.no;
        if !cur.complete {
            if !self.junk.is_empty() {
                return self.fail_junk();
            }
            self.incomplete_tail = Some((cur.no, cur.raw.len() as u64));
            self.warn(
                cur.no,
                format!(
                    "incomplete tail: the last line has no newline ({} bytes; an interrupted \
                     write); not part of the chain",
                    cur.raw.len()
                ),
            );
            return;
        }
        match classify(&cur.raw) {
            Err((kind, detail)) => {
                if self.junk.len() >= MAX_DECLARED {
                    return self.fail_junk();
                }
                self.junk.push(JunkLine {
                    line: cur.no,
                    bytes: cur.raw.len() as u64,
                    sha256: sha256_hex(&cur.raw),
                    kind,
                    detail,
                });
            }
            Ok(c) => {
                if let Some(pos) = self.record(&cur, c) {
                    self.note_complete(cur.no, AtHead::Record(pos));
                }
            }
        }
    }

    /// End of file.
    fn finish(&mut self) {
        // Non-record lines at the end of a log shorter than its head: the record that declared
        // them was cut off — a truncation, which the head check reports.
        let last_junk = self.junk.last().map(|j| j.line);
        if let (Some(hl), Some(lj)) = (self.head_lines, last_junk)
            && hl > lj
        {
            for j in std::mem::take(&mut self.junk) {
                self.warn(
                    j.line,
                    format!(
                        "not a chained record ({} bytes), and the record that would declare it \
                         is missing",
                        j.bytes
                    ),
                );
                self.note_complete(j.line, AtHead::Declared);
            }
            return;
        }
        self.fail_junk();
    }

    /// Verify a record (and accept the non-record lines before it when it declares them).
    fn record(&mut self, cur: &Line, c: Chained) -> Option<Position> {
        let no = cur.no;
        let Chained {
            map,
            seq,
            prev,
            hash,
        } = c;
        let mut body_map = map.clone();
        body_map.remove("hash");
        let body = canonical(&Value::Object(body_map));
        let computed = record_hash(&body, &prev);
        let intact = computed == hash && line_of(&body, &hash) == cur.raw;
        let declared = map.get("incomplete_lines");
        if !self.junk.is_empty() {
            if !intact || !declares_exactly(declared, &self.junk) {
                if intact && let Some(Value::Array(items)) = declared {
                    self.fail_altered(no, items);
                }
                self.fail_junk();
                return None;
            }
            let junk = std::mem::take(&mut self.junk);
            for j in junk {
                self.warn(
                    j.line,
                    format!(
                        "not a chained record ({} bytes), declared by the restart at line {no} \
                         as an interrupted write; not part of the chain",
                        j.bytes
                    ),
                );
                self.note_complete(j.line, AtHead::Declared);
            }
        } else if declared.is_some() {
            self.fail(
                ProblemKind::BadMarker,
                no,
                None,
                Some(declared.map(Value::to_string).unwrap_or_default()),
                "marker declares interrupted writes, but no such lines are directly before it"
                    .to_owned(),
            );
            return None;
        }
        if computed != hash {
            self.fail(
                ProblemKind::Edited,
                no,
                Some(computed.clone()),
                Some(hash.clone()),
                format!(
                    "record edited (its content does not match its hash): expected hash \
                     {computed}, found {hash}"
                ),
            );
            return None;
        }
        if !intact {
            self.fail(
                ProblemKind::NotCanonical,
                no,
                None,
                None,
                "record bytes altered: not in canonical form (whitespace, key order or \
                 duplicate keys changed)"
                    .to_owned(),
            );
            return None;
        }
        let reason = map
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given")
            .to_owned();
        match map.get("segment_start") {
            None => {
                let (exp_seq, exp_prev) = match &self.last {
                    Some(l) => (l.seq + 1, l.hash.clone()),
                    None => (1, ZERO_HASH.to_owned()),
                };
                if prev != exp_prev {
                    let what = match &self.last {
                        Some(l) => format!(
                            "prev_hash is not the hash of the previous record (line {}): a \
                             record was deleted, inserted or reordered",
                            l.line
                        ),
                        None => "the first record does not start the chain: records before \
                                 it were deleted, or it was moved"
                            .to_owned(),
                    };
                    self.fail(
                        ProblemKind::Linkage,
                        no,
                        Some(exp_prev.clone()),
                        Some(prev.clone()),
                        format!("{what}: expected prev_hash {exp_prev}, found {prev}"),
                    );
                    return None;
                }
                if seq != exp_seq {
                    self.fail(
                        ProblemKind::Linkage,
                        no,
                        Some(exp_seq.to_string()),
                        Some(seq.to_string()),
                        format!(
                            "seq does not follow the previous record: expected seq {exp_seq}, \
                             found {seq}"
                        ),
                    );
                    return None;
                }
                if self.last.is_none() {
                    self.segments += 1;
                }
                if declared.is_some() {
                    self.markers += 1;
                } else {
                    self.records += 1;
                }
            }
            Some(Value::Bool(true)) => {
                if seq != 1 || prev != ZERO_HASH {
                    self.fail(
                        ProblemKind::BadMarker,
                        no,
                        Some(format!("seq 1, prev_hash {ZERO_HASH}")),
                        Some(format!("seq {seq}, prev_hash {prev}")),
                        format!(
                            "a segment start must have seq 1 and prev_hash {ZERO_HASH}: found \
                             seq {seq}, prev_hash {prev}"
                        ),
                    );
                    return None;
                }
                let named = map
                    .get("previous")
                    .and_then(|p| p.get("last_hash"))
                    .and_then(Value::as_str);
                let before = self.last.as_ref().map(|l| l.hash.as_str());
                if named != before {
                    let show = |h: Option<&str>| h.unwrap_or("none").to_owned();
                    let (expected, found) = (show(before), show(named));
                    self.fail(
                        ProblemKind::BadMarker,
                        no,
                        Some(expected.clone()),
                        Some(found.clone()),
                        format!(
                            "the segment start does not name the record before it: expected \
                             previous.last_hash {expected}, found {found}"
                        ),
                    );
                    return None;
                }
                self.segments += 1;
                self.markers += 1;
                let n = self.segments;
                self.warn(no, format!("segment {n} starts: {reason}"));
            }
            Some(other) => {
                self.fail(
                    ProblemKind::BadMarker,
                    no,
                    Some("true".to_owned()),
                    Some(other.to_string()),
                    format!("segment_start must be true, found {other}"),
                );
                return None;
            }
        }
        let pos = Position {
            line: no,
            seq,
            hash,
            end: cur.end,
        };
        self.last = Some(pos.clone());
        Some(pos)
    }

    /// Compare with the head (no chain problem found).
    fn check_head(&mut self, h: &Head) {
        let shown = h.describe();
        match self.at_head.take() {
            _ if h.lines == 0 => {
                if let Some(first) = self.first_beyond_head {
                    let n = self.complete_lines;
                    self.fail(
                        ProblemKind::BeyondHead,
                        first,
                        Some("0 lines".to_owned()),
                        Some(format!("{n} lines")),
                        format!(
                            "the head records an empty log, the file has {n} complete lines; \
                             line {first} onward was not committed to the head (appended or \
                             forged)"
                        ),
                    );
                }
            }
            Some(AtHead::Record(p)) if p.seq == h.seq && p.hash == h.hash && p.end == h.bytes => {
                if let Some(first) = self.first_beyond_head {
                    let n = self.complete_lines;
                    self.fail(
                        ProblemKind::BeyondHead,
                        first,
                        Some(format!("{} lines", h.lines)),
                        Some(format!("{n} lines")),
                        format!(
                            "head records {} lines, file has {n}; line {first} onward was not \
                             committed to the head (appended or forged)",
                            h.lines
                        ),
                    );
                }
            }
            Some(AtHead::Record(p)) => {
                let found = format!("seq {}, hash {}, ending at byte {}", p.seq, p.hash, p.end);
                self.fail(
                    ProblemKind::RolledBack,
                    h.lines,
                    Some(format!(
                        "seq {}, hash {}, ending at byte {}",
                        h.seq, h.hash, h.bytes
                    )),
                    Some(found.clone()),
                    format!(
                        "the head's record is not in the log: expected seq {}, hash {}, ending \
                         at byte {}; found {found} (log replaced by an older copy and written \
                         again, or rewritten)",
                        h.seq, h.hash, h.bytes
                    ),
                );
            }
            Some(AtHead::Declared) => self.fail(
                ProblemKind::RolledBack,
                h.lines,
                Some(format!("seq {}, hash {}", h.seq, h.hash)),
                Some("an incomplete line".to_owned()),
                format!(
                    "the head's record ({shown}) is not in the log: line {} is an incomplete line",
                    h.lines
                ),
            ),
            None => {
                let n = self.complete_lines;
                self.fail(
                    ProblemKind::Truncated,
                    n + 1,
                    Some(format!("{} lines", h.lines)),
                    Some(format!("{n} lines")),
                    format!(
                        "head records {} lines, file has {n} (records removed from the end from \
                         line {}, or log and head rolled back to an older copy); head: {shown}",
                        h.lines,
                        n + 1
                    ),
                );
            }
        }
    }
}

/// Verify a chained log against its head. `head`: `None` uses `<log>.head` when it exists
/// (a missing default head is a warning); an explicit head must exist. Errors only when the
/// files cannot be read or the head is not a head file.
pub fn verify(log: &Path, head: Option<&Path>) -> Result<VerifyReport, ChainError> {
    let file = File::open(log).map_err(io_err(log))?;
    let bytes = file.metadata().map_err(io_err(log))?.len();
    let head_path = head.map_or_else(|| head_path(log), Path::to_owned);
    let head_value = match Head::read(&head_path)? {
        Some(h) => Some(h),
        None if head.is_some() => {
            return Err(ChainError::Io {
                path: head_path,
                source: io::Error::new(io::ErrorKind::NotFound, "head file does not exist"),
            });
        }
        None => None,
    };
    let mut w = Walker {
        head_lines: head_value.as_ref().map(|h| h.lines),
        ..Walker::default()
    };
    let mut reader = BufReader::with_capacity(CHUNK, file);
    let mut start = 0;
    let mut no = 1;
    while w.problem.is_none() {
        let Some(line) = read_line(&mut reader, no, start).map_err(io_err(log))? else {
            w.finish();
            break;
        };
        (start, no) = (line.end, no + 1);
        w.line(line);
    }
    let head_status = if w.problem.is_some() {
        HeadStatus::NotChecked
    } else if let Some(h) = &head_value {
        w.check_head(h);
        if w.problem.is_some() {
            HeadStatus::Mismatch
        } else {
            HeadStatus::Matches
        }
    } else {
        HeadStatus::Missing
    };
    Ok(VerifyReport {
        log: log.to_owned(),
        head_path,
        head: head_value,
        head_status,
        lines: w.lines,
        bytes,
        records: w.records,
        markers: w.markers,
        segments: w.segments,
        last: w.last,
        incomplete_tail: w.incomplete_tail,
        warnings: w.warnings,
        problem: w.problem,
    })
}

#[cfg(test)]
mod tests {
    use std::{
        os::unix::fs::PermissionsExt,
        sync::atomic::{AtomicU32, Ordering},
    };

    use serde_json::json;

    use super::*;

    /// `audit.log` in a scratch directory, removed when the test passes.
    struct TmpLog {
        dir: PathBuf,
        path: PathBuf,
    }

    impl Drop for TmpLog {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = fs::remove_dir_all(&self.dir);
            }
        }
    }

    impl std::ops::Deref for TmpLog {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.path
        }
    }

    impl AsRef<Path> for TmpLog {
        fn as_ref(&self) -> &Path {
            &self.path
        }
    }

    fn tmp_log(name: &str) -> TmpLog {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "casa-chain-unit-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TmpLog {
            path: dir.join("audit.log"),
            dir,
        }
    }

    /// Append what the chain returns plus a newline, then commit the head (as FileSinks does).
    fn write(chain: &mut Chain, record: Value) -> Vec<u8> {
        let line = chain.seal(record).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(chain.log_path())
            .unwrap();
        f.write_all(&line).unwrap();
        f.write_all(b"\n").unwrap();
        chain.commit_head().unwrap();
        line
    }

    fn write_n(log: &Path, n: u64) -> Chain {
        let mut c = Chain::new(log).unwrap();
        for i in 0..n {
            write(&mut c, json!({ "session_id": i, "comm": "bash" }));
        }
        c
    }

    /// A record built by hand: (line, hash).
    fn craft(mut v: Value, seq: u64, prev: &str) -> (String, String) {
        v["seq"] = seq.into();
        v["prev_hash"] = prev.into();
        let body = canonical(&v);
        let hash = record_hash(&body, prev);
        (String::from_utf8(line_of(&body, &hash)).unwrap(), hash)
    }

    fn lines(log: &Path) -> Vec<String> {
        fs::read_to_string(log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn chain_canonical_sorts_keys_at_every_level_without_whitespace() {
        let v = json!({ "z": 1, "a": { "y": [true, null, 1.5], "b": "é\"\n/" }, "M": -3 });
        assert_eq!(
            String::from_utf8(canonical(&v)).unwrap(),
            r#"{"M":-3,"a":{"b":"é\"\n/","y":[true,null,1.5]},"z":1}"#
        );
    }

    #[test]
    fn chain_hash_is_sha256_of_canonical_body_then_prev_hash() {
        // Known answers computed outside casa (sha256sum, Python's json + hashlib).
        let log = tmp_log("kat");
        let mut c = Chain::new(&log).unwrap();
        let first = write(&mut c, json!({ "a": 1 }));
        assert_eq!(
            String::from_utf8(first).unwrap(),
            format!(
                r#"{{"a":1,"prev_hash":"{ZERO_HASH}","seq":1,"hash":"daea6b2190a8380523e7377b28a992648b372fc9fbc326497c83d3a7022909dd"}}"#
            )
        );
        let second = write(
            &mut c,
            json!({ "z": [1, { "y": true, "x": null }], "b": "é\n\"" }),
        );
        assert_eq!(
            String::from_utf8(second).unwrap(),
            r#"{"b":"é\n\"","prev_hash":"daea6b2190a8380523e7377b28a992648b372fc9fbc326497c83d3a7022909dd","seq":2,"z":[1,{"x":null,"y":true}],"hash":"7571e690524b58354e8f2df7a1fb44eab136d85a2314d652dc5c0382f1de5a61"}"#
        );
        assert_eq!(c.head().seq, 2);
        assert_eq!(
            c.head().hash,
            "7571e690524b58354e8f2df7a1fb44eab136d85a2314d652dc5c0382f1de5a61"
        );
    }

    #[test]
    fn chain_seal_rejects_reserved_fields_and_non_objects_without_advancing() {
        let log = tmp_log("reserved");
        let mut c = Chain::new(&log).unwrap();
        for k in RESERVED_FIELDS {
            let mut v = json!({ "a": 1 });
            v[k] = 1.into();
            assert!(matches!(c.seal(v), Err(ChainError::ReservedField(f)) if f == k));
        }
        assert!(matches!(c.seal(json!([1])), Err(ChainError::NotAnObject)));
        assert!(matches!(c.seal_line(b"{oops"), Err(ChainError::NotJson(_))));
        assert_eq!(*c.head(), Head::empty());
        let line = c.seal(json!({ "a": 1 })).unwrap();
        assert!(String::from_utf8(line).unwrap().contains(r#""seq":1,"#));
    }

    #[test]
    fn chain_resume_continues_when_head_matches() {
        let log = tmp_log("resume");
        let before = write_n(&log, 3).head().clone();
        let mut c = Chain::new(&log).unwrap();
        assert!(c.take_notes().is_empty());
        assert_eq!(*c.head(), before);
        let line = write(&mut c, json!({ "a": 4 }));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["seq"], 4);
        assert_eq!(v["prev_hash"], before.hash.as_str());
        let r = verify(&log, None).unwrap();
        assert_eq!(r.verdict(), "ok: 4 records, 1 segment, head matches");
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn chain_head_file_is_0600_json_of_the_last_record_and_replaced_atomically() {
        let log = tmp_log("head");
        let c = write_n(&log, 2);
        let hp = head_path(&log);
        assert_eq!(hp.file_name().unwrap(), "audit.log.head");
        let text = fs::read_to_string(&hp).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{text}");
        for k in ["seq", "hash", "lines", "bytes"] {
            assert!(keys.contains(&k), "{text}");
        }
        assert_eq!(v["seq"], 2);
        assert_eq!(v["lines"], 2);
        assert_eq!(v["bytes"], fs::metadata(&log).unwrap().len());
        assert_eq!(v["hash"], c.head().hash.as_str());
        let mode = fs::metadata(&hp).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(log.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn chain_commit_head_refuses_when_out_of_step_and_next_seal_resumes() {
        let log = tmp_log("outofstep");
        let mut c = write_n(&log, 2);
        let head_before = fs::read(head_path(&log)).unwrap();
        let line = c.seal(json!({ "a": 3 })).unwrap();
        // The write failed half way.
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&line[..10]).unwrap();
        drop(f);
        assert!(matches!(c.commit_head(), Err(ChainError::OutOfStep { .. })));
        assert_eq!(fs::read(head_path(&log)).unwrap(), head_before);
        // The next record: the partial line is ended and declared, the chain continues.
        write(&mut c, json!({ "a": 4 }));
        let l = lines(&log);
        assert_eq!(l.len(), 5);
        let marker: Value = serde_json::from_str(&l[3]).unwrap();
        assert_eq!(marker["incomplete_lines"][0]["line"], 3);
        assert_eq!(marker["incomplete_lines"][0]["bytes"], 10);
        assert_eq!(marker["seq"], 3);
        let r = verify(&log, None).unwrap();
        assert_eq!(r.exit_code(), 0, "{}", r.verdict());
        assert_eq!(r.records, 3);
        assert_eq!(r.markers, 1);
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].line, Some(3));
    }

    #[test]
    fn chain_rotated_log_starts_a_segment_naming_the_old_head() {
        let log = tmp_log("rotate");
        let old = write_n(&log, 3).head().clone();
        fs::rename(&log, log.with_extension("log.1")).unwrap();
        let mut c = Chain::new(&log).unwrap();
        assert!(c.starts_segment());
        let notes = c.take_notes();
        assert!(notes[0].contains("rotated"), "{notes:?}");
        write(&mut c, json!({ "a": 1 }));
        let l = lines(&log);
        let marker: Value = serde_json::from_str(&l[0]).unwrap();
        assert_eq!(marker["segment_start"], true);
        assert_eq!(marker["seq"], 1);
        assert_eq!(marker["prev_hash"], ZERO_HASH);
        assert_eq!(marker["previous"]["head"]["hash"], old.hash.as_str());
        assert_eq!(marker["previous"]["last_hash"], Value::Null);
        let r = verify(&log, None).unwrap();
        assert_eq!(
            r.verdict(),
            "ok: 1 record, 1 segment, head matches, 1 warning"
        );
        assert_eq!(r.warnings[0].line, Some(1));
    }

    #[test]
    fn chain_verify_rejects_bytes_that_are_not_canonical() {
        let log = tmp_log("canon");
        write_n(&log, 3);
        let mut l = lines(&log);
        // Same JSON value, same hash, different bytes.
        l[1] = l[1].replacen('{', "{ ", 1);
        fs::write(&log, l.join("\n") + "\n").unwrap();
        let r = verify(&log, None).unwrap();
        let p = r.problem.clone().unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::NotCanonical, 2));
        assert_eq!(r.exit_code(), 1);
        assert!(
            r.verdict().starts_with("broken at line 2: "),
            "{}",
            r.verdict()
        );
    }

    #[test]
    fn chain_verify_rejects_a_duplicate_key_that_a_parser_would_ignore() {
        let log = tmp_log("dup");
        write_n(&log, 3);
        let mut l = lines(&log);
        // serde_json keeps the last "comm"; a first-wins reader would see "evil".
        l[2] = l[2].replacen('{', r#"{"comm":"evil","#, 1);
        fs::write(&log, l.join("\n") + "\n").unwrap();
        let p = verify(&log, None).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::NotCanonical, 3));
    }

    #[test]
    fn chain_verify_reports_a_seq_gap_in_otherwise_consistent_records() {
        let log = tmp_log("seqgap");
        let (a, ha) = craft(json!({ "n": 1 }), 1, ZERO_HASH);
        let (b, _) = craft(json!({ "n": 2 }), 3, &ha);
        fs::write(&log, format!("{a}\n{b}\n")).unwrap();
        let p = verify(&log, None).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::Linkage, 2));
        assert_eq!(p.expected.as_deref(), Some("2"));
        assert_eq!(p.found.as_deref(), Some("3"));
    }

    #[test]
    fn chain_verify_reports_a_deleted_first_record_at_line_1() {
        let log = tmp_log("first");
        let c = write_n(&log, 3);
        let l = lines(&log);
        fs::write(&log, l[1..].join("\n") + "\n").unwrap();
        let r = verify(&log, None).unwrap();
        let p = r.problem.clone().unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::Linkage, 1));
        assert_eq!(p.expected.as_deref(), Some(ZERO_HASH));
        drop(c);
    }

    #[test]
    fn chain_verify_rejects_a_segment_start_that_does_not_name_the_record_before_it() {
        let log = tmp_log("fakeseg");
        let (a, _) = craft(json!({ "n": 1 }), 1, ZERO_HASH);
        let fake = json!({ "segment_start": true, "reason": "trust me",
            "previous": { "last_hash": "ab".repeat(32) } });
        let (b, _) = craft(fake, 1, ZERO_HASH);
        fs::write(&log, format!("{a}\n{b}\n")).unwrap();
        let p = verify(&log, None).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::BadMarker, 2));
        assert_eq!(p.found, Some("ab".repeat(32)));
    }

    #[test]
    fn chain_verify_rejects_an_interrupted_write_declaration_for_a_line_that_is_not_before_it() {
        let log = tmp_log("stray");
        let (a, ha) = craft(json!({ "n": 1 }), 1, ZERO_HASH);
        let decl = json!({ "incomplete_lines": [{ "line": 7, "bytes": 3, "sha256": "00" }] });
        let (b, _) = craft(decl, 2, &ha);
        fs::write(&log, format!("{a}\n{b}\n")).unwrap();
        let p = verify(&log, None).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::BadMarker, 2));
    }

    #[test]
    fn chain_head_of_an_empty_log() {
        let log = tmp_log("empty");
        fs::write(&log, "").unwrap();
        write_head_file(&head_path(&log), &Head::empty()).unwrap();
        let r = verify(&log, None).unwrap();
        assert_eq!(r.verdict(), "ok: 0 records, 0 segments, head matches");
        // A resuming writer agrees with that head and starts the chain without a marker.
        let mut c = Chain::new(&log).unwrap();
        assert!(!c.starts_segment());
        let (a, _) = craft(json!({ "n": 1 }), 1, ZERO_HASH);
        fs::write(&log, format!("{a}\n")).unwrap();
        let p = verify(&log, None).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::BeyondHead, 1));
        c.mark_stale();
    }

    #[test]
    fn chain_record_cut_before_its_newline_is_an_incomplete_tail_then_a_record() {
        let log = tmp_log("nonl");
        let mut c = write_n(&log, 2);
        let line = c.seal(json!({ "n": 3 })).unwrap();
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&line).unwrap(); // the whole record, not its newline; head not updated
        drop(f);
        let r = verify(&log, None).unwrap();
        assert_eq!(r.exit_code(), 0, "{}", r.verdict());
        assert_eq!(r.records, 2);
        assert_eq!(r.incomplete_tail, Some((3, line.len() as u64)));
        // The restart ends the line: a record the head never committed, so a new segment
        // that names it.
        let mut c = Chain::new(&log).unwrap();
        assert!(c.starts_segment());
        write(&mut c, json!({ "n": 4 }));
        let l = lines(&log);
        let marker: Value = serde_json::from_str(&l[3]).unwrap();
        assert_eq!(marker["previous"]["last_hash"], field_of(&l[2], "hash"));
        let r = verify(&log, None).unwrap();
        assert_eq!(r.exit_code(), 0, "{}", r.verdict());
        assert_eq!((r.records, r.markers, r.segments), (4, 1, 2));
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].line, Some(4));
        assert_eq!(r.last.as_ref().unwrap().line, 5);
    }

    fn field_of(line: &str, key: &str) -> Value {
        serde_json::from_str::<Value>(line).unwrap()[key].clone()
    }

    /// The sink ends a torn line itself when it reopens after a failed write.
    fn torn_write(c: &mut Chain, n: u64) {
        let line = c.seal(json!({ "n": n })).unwrap();
        let mut f = OpenOptions::new().append(true).open(c.log_path()).unwrap();
        f.write_all(&line[..line.len() / 3]).unwrap();
        f.write_all(b"\n").unwrap();
        c.mark_stale();
    }

    #[test]
    fn chain_torn_lines_ended_by_the_sink_are_declared_by_the_next_record() {
        let log = tmp_log("torn");
        let mut c = write_n(&log, 2);
        torn_write(&mut c, 3);
        // Before the next record: an undeclared non-record line is a break.
        let p = verify(&log, None).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::InvalidJson, 3));
        torn_write(&mut c, 3);
        write(&mut c, json!({ "n": 3 }));
        let l = lines(&log);
        let marker: Value = serde_json::from_str(&l[4]).unwrap();
        let declared: Vec<_> = marker["incomplete_lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["line"].as_u64().unwrap())
            .collect();
        assert_eq!(declared, [3, 4]);
        assert_eq!(marker["prev_hash"], field_of(&l[1], "hash"));
        assert_eq!(marker.get("segment_start"), None);
        let r = verify(&log, None).unwrap();
        assert_eq!(
            r.verdict(),
            "ok: 3 records, 1 segment, head matches, 2 warnings"
        );
        let at: Vec<_> = r.warnings.iter().map(|w| w.line).collect();
        assert_eq!(at, [Some(3), Some(4)]);
        // Without mark_stale the length check finds it too.
        let mut c2 = Chain::new(&log).unwrap();
        let line = c2.seal(json!({ "n": 4 })).unwrap();
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&line[..5]).unwrap();
        f.write_all(b"\n").unwrap();
        write(&mut c2, json!({ "n": 4 }));
        let r = verify(&log, None).unwrap();
        assert_eq!(r.exit_code(), 0, "{}", r.verdict());
        assert_eq!(r.warnings.last().unwrap().line, Some(7));
        // A declared line changed later.
        let mut l = lines(&log);
        l[2].push('x');
        fs::write(&log, l.join("\n") + "\n").unwrap();
        let p = verify(&log, None).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::IncompleteAltered, 3));
    }

    #[test]
    fn chain_truncation_after_a_declared_line_is_a_truncation() {
        let log = tmp_log("trunc-junk");
        let mut c = write_n(&log, 2);
        torn_write(&mut c, 3);
        write(&mut c, json!({ "n": 3 }));
        write(&mut c, json!({ "n": 4 }));
        let l = lines(&log);
        assert_eq!(l.len(), 6);
        fs::write(&log, l[..3].join("\n") + "\n").unwrap();
        let r = verify(&log, None).unwrap();
        let p = r.problem.clone().unwrap();
        assert_eq!(
            (p.kind, p.line, r.exit_code()),
            (ProblemKind::Truncated, 4, 2)
        );
        assert!(
            r.verdict()
                .starts_with("truncated: head records 6 lines, file has 3"),
            "{}",
            r.verdict()
        );
        // Without a head to say so, the undeclared line is a break.
        fs::remove_file(head_path(&log)).unwrap();
        let p = verify(&log, None).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::InvalidJson, 3));
    }

    #[test]
    fn chain_too_many_non_record_lines_are_not_declared() {
        let log = tmp_log("junk");
        write_n(&log, 1);
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        for _ in 0..=MAX_DECLARED {
            f.write_all(b"junk\n").unwrap();
        }
        drop(f);
        let mut c = Chain::new(&log).unwrap();
        assert!(c.starts_segment());
        write(&mut c, json!({ "n": 2 }));
        let p = verify(&log, None).unwrap().problem.unwrap();
        assert_eq!((p.kind, p.line), (ProblemKind::InvalidJson, 2));
    }

    #[test]
    fn chain_no_head_and_partial_tail_make_one_segment_marker_declaring_the_line() {
        let log = tmp_log("segpartial");
        write_n(&log, 2);
        fs::remove_file(head_path(&log)).unwrap();
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(br#"{"timestamp":"2026-"#).unwrap();
        drop(f);
        let mut c = Chain::new(&log).unwrap();
        assert!(c.starts_segment());
        let notes = c.take_notes();
        assert_eq!(notes.len(), 2, "{notes:?}");
        write(&mut c, json!({ "n": 3 }));
        let l = lines(&log);
        let marker: Value = serde_json::from_str(&l[3]).unwrap();
        assert_eq!(marker["segment_start"], true);
        assert_eq!(marker["incomplete_lines"][0]["line"], 3);
        let r = verify(&log, None).unwrap();
        assert_eq!(
            r.verdict(),
            "ok: 3 records, 2 segments, head matches, 2 warnings"
        );
        let at: Vec<_> = r.warnings.iter().map(|w| w.line).collect();
        assert_eq!(at, [Some(3), Some(4)]);
    }

    #[test]
    fn chain_open_never_fails() {
        let dir = tmp_log("open");
        // A directory where the log should be: unreadable as a log.
        fs::create_dir_all(&dir).unwrap();
        assert!(Chain::new(&dir).is_err());
        let mut c = Chain::open(&dir);
        assert!(c.starts_segment());
        assert!(c.take_notes()[0].contains("could not read"));
    }
}

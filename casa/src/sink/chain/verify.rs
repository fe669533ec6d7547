//! The reading side of the chain: [`verify`], behind `casa verify-log`. A walker reads the log
//! line by line, checks each record against the format ([`super::format`]) and the previous
//! record, accepts the lines a marker declares, and finally compares the end with the head
//! file (see the parent module's docs).

use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::{
    CHUNK, ChainError,
    format::{
        Chained, Head, IncompleteLine, MAX_DECLARED, Unchained, ZERO_HASH, canonical, classify,
        head_path, line_of, plural, record_hash, sha256_hex,
    },
    io_err,
};

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
    /// Chain intact and matching the head (warnings possible): `verify-log` exits 0.
    Ok,
    /// A record edited, deleted, inserted, reordered, forged, or beyond the head: exit 1.
    Broken,
    /// Truncated or rolled back against the head: exit 1 too (the verdict line says which).
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

impl VerifyReport {
    pub fn outcome(&self) -> Outcome {
        self.problem
            .as_ref()
            .map_or(Outcome::Ok, |p| p.kind.outcome())
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

impl Problem {
    fn new(
        kind: ProblemKind,
        line: u64,
        expected: Option<String>,
        found: Option<String>,
        detail: String,
    ) -> Self {
        Self {
            kind,
            line,
            expected,
            found,
            detail,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Walking the log

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

impl JunkLine {
    fn new(cur: &Line, why: Unchained) -> Self {
        let (kind, detail) = match why {
            Unchained::NotJson(e) => (ProblemKind::InvalidJson, format!("not valid JSON ({e})")),
            Unchained::NotAnObject => (ProblemKind::NotChained, "not a JSON object".to_owned()),
            Unchained::NoChainFields => (
                ProblemKind::NotChained,
                "not a chained record (missing or invalid `seq`, `prev_hash` or `hash`): \
                 inserted or forged"
                    .to_owned(),
            ),
        };
        Self {
            line: cur.no,
            bytes: cur.raw.len() as u64,
            sha256: sha256_hex(&cur.raw),
            kind,
            detail,
        }
    }

    /// The line as a break: no marker declares it.
    fn problem(&self) -> Problem {
        Problem::new(self.kind, self.line, None, None, self.detail.clone())
    }

    /// How a marker declares it.
    fn declaration(&self) -> IncompleteLine {
        IncompleteLine {
            line: self.line,
            bytes: self.bytes,
            sha256: self.sha256.clone(),
        }
    }
}

/// Whether a marker's `incomplete_lines` names exactly these lines.
fn declares_exactly(declared: Option<&Value>, junk: &[JunkLine]) -> bool {
    let Some(Value::Array(items)) = declared else {
        return false;
    };
    items.len() == junk.len()
        && items
            .iter()
            .zip(junk)
            .all(|(d, j)| IncompleteLine::read(d) == Some(j.declaration()))
}

/// What was at the head's line.
enum AtHead {
    Record(Position),
    Declared,
}

/// A record's hash checked against its content and bytes.
struct Sealed {
    /// The hash its content (without `hash`) gives.
    computed: String,
    /// The hash matches and the line is exactly the canonical form.
    intact: bool,
}

impl Sealed {
    fn check(c: &Chained, raw: &[u8]) -> Self {
        let mut body_map = c.map.clone();
        body_map.remove("hash");
        let body = canonical(&Value::Object(body_map));
        let computed = record_hash(&body, &c.prev);
        let intact = computed == c.hash && line_of(&body, &c.hash) == raw;
        Self { computed, intact }
    }

    /// Edited (content does not match the hash), or not canonical.
    fn problem(&self, no: u64, hash: &str) -> Option<Problem> {
        let computed = &self.computed;
        if computed != hash {
            return Some(Problem::new(
                ProblemKind::Edited,
                no,
                Some(computed.clone()),
                Some(hash.to_owned()),
                format!(
                    "record edited (its content does not match its hash): expected hash \
                     {computed}, found {hash}"
                ),
            ));
        }
        (!self.intact).then(|| {
            Problem::new(
                ProblemKind::NotCanonical,
                no,
                None,
                None,
                "record bytes altered: not in canonical form (whitespace, key order or \
                 duplicate keys changed)"
                    .to_owned(),
            )
        })
    }
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
    /// Record the problem (the first one found stays).
    fn fail(&mut self, p: Problem) {
        if self.problem.is_none() {
            self.problem = Some(p);
        }
    }

    /// The first waiting non-record line is the problem.
    fn fail_junk(&mut self) {
        if let Some(p) = self.junk.first().map(JunkLine::problem) {
            self.fail(p);
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
            Err(why) => {
                if self.junk.len() >= MAX_DECLARED {
                    return self.fail_junk();
                }
                self.junk.push(JunkLine::new(&cur, why));
            }
            Ok(c) => match self.record(&cur, &c) {
                Ok(pos) => {
                    self.last = Some(pos.clone());
                    self.note_complete(cur.no, AtHead::Record(pos));
                }
                Err(p) => self.fail(p),
            },
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

    /// Verify a record (and accept the non-record lines before it when it declares them): its
    /// hash and bytes, then its place in the chain, as an ordinary record (or marker that
    /// continues the chain) or as a segment start.
    fn record(&mut self, cur: &Line, c: &Chained) -> Result<Position, Problem> {
        let no = cur.no;
        let sealed = Sealed::check(c, &cur.raw);
        let marker = c.marker();
        self.accept_declared(no, sealed.intact, marker.incomplete_lines)?;
        if let Some(p) = sealed.problem(no, &c.hash) {
            return Err(p);
        }
        match marker.segment_start {
            None => self.follow(no, c, marker.incomplete_lines.is_some())?,
            Some(Value::Bool(true)) => {
                let reason = marker.reason.unwrap_or("no reason given");
                self.start_segment(no, c, marker.previous_last_hash, reason)?;
            }
            Some(other) => {
                return Err(Problem::new(
                    ProblemKind::BadMarker,
                    no,
                    Some("true".to_owned()),
                    Some(other.to_string()),
                    format!("segment_start must be true, found {other}"),
                ));
            }
        }
        Ok(Position {
            line: no,
            seq: c.seq,
            hash: c.hash.clone(),
            end: cur.end,
        })
    }

    /// The non-record lines waiting before the record at line `no` must be exactly what it
    /// declares (then they are accepted, with a warning each); a record that declares lines
    /// must have them directly before it.
    fn accept_declared(
        &mut self,
        no: u64,
        intact: bool,
        declared: Option<&Value>,
    ) -> Result<(), Problem> {
        let Some(first) = self.junk.first() else {
            return match declared {
                None => Ok(()),
                Some(d) => Err(Problem::new(
                    ProblemKind::BadMarker,
                    no,
                    None,
                    Some(d.to_string()),
                    "marker declares interrupted writes, but no such lines are directly before \
                     it"
                    .to_owned(),
                )),
            };
        };
        if !intact || !declares_exactly(declared, &self.junk) {
            let altered = match declared {
                Some(Value::Array(items)) if intact => self.altered(no, items),
                _ => None,
            };
            return Err(altered.unwrap_or_else(|| first.problem()));
        }
        for j in std::mem::take(&mut self.junk) {
            self.warn(
                j.line,
                format!(
                    "not a chained record ({} bytes), declared by the restart at line {no} as \
                     an interrupted write; not part of the chain",
                    j.bytes
                ),
            );
            self.note_complete(j.line, AtHead::Declared);
        }
        Ok(())
    }

    /// A declared line whose content changed since the restart at line `marker` declared it.
    fn altered(&self, marker: u64, items: &[Value]) -> Option<Problem> {
        let (line, expected, found) = self.junk.iter().find_map(|j| {
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
        })?;
        let detail = format!(
            "line {line} was changed after line {marker} declared it an interrupted write: \
             expected {expected}, found {found}"
        );
        Some(Problem::new(
            ProblemKind::IncompleteAltered,
            line,
            Some(expected),
            Some(found),
            detail,
        ))
    }

    /// A record (or a marker that continues the chain) must follow the previous record.
    fn follow(&mut self, no: u64, c: &Chained, is_marker: bool) -> Result<(), Problem> {
        let (seq, prev) = (c.seq, &c.prev);
        let (exp_seq, exp_prev) = match &self.last {
            Some(l) => (l.seq + 1, l.hash.clone()),
            None => (1, ZERO_HASH.to_owned()),
        };
        if *prev != exp_prev {
            let what = match &self.last {
                Some(l) => format!(
                    "prev_hash is not the hash of the previous record (line {}): a record was \
                     deleted, inserted or reordered",
                    l.line
                ),
                None => "the first record does not start the chain: records before it were \
                         deleted, or it was moved"
                    .to_owned(),
            };
            return Err(Problem::new(
                ProblemKind::Linkage,
                no,
                Some(exp_prev.clone()),
                Some(prev.clone()),
                format!("{what}: expected prev_hash {exp_prev}, found {prev}"),
            ));
        }
        if seq != exp_seq {
            return Err(Problem::new(
                ProblemKind::Linkage,
                no,
                Some(exp_seq.to_string()),
                Some(seq.to_string()),
                format!(
                    "seq does not follow the previous record: expected seq {exp_seq}, found \
                     {seq}"
                ),
            ));
        }
        if self.last.is_none() {
            self.segments += 1;
        }
        if is_marker {
            self.markers += 1;
        } else {
            self.records += 1;
        }
        Ok(())
    }

    /// A segment start must begin a chain and name the record before it.
    fn start_segment(
        &mut self,
        no: u64,
        c: &Chained,
        named: Option<&str>,
        reason: &str,
    ) -> Result<(), Problem> {
        let (seq, prev) = (c.seq, &c.prev);
        if seq != 1 || prev != ZERO_HASH {
            return Err(Problem::new(
                ProblemKind::BadMarker,
                no,
                Some(format!("seq 1, prev_hash {ZERO_HASH}")),
                Some(format!("seq {seq}, prev_hash {prev}")),
                format!(
                    "a segment start must have seq 1 and prev_hash {ZERO_HASH}: found seq \
                     {seq}, prev_hash {prev}"
                ),
            ));
        }
        let before = self.last.as_ref().map(|l| l.hash.as_str());
        if named != before {
            let show = |h: Option<&str>| h.unwrap_or("none").to_owned();
            let (expected, found) = (show(before), show(named));
            return Err(Problem::new(
                ProblemKind::BadMarker,
                no,
                Some(expected.clone()),
                Some(found.clone()),
                format!(
                    "the segment start does not name the record before it: expected \
                     previous.last_hash {expected}, found {found}"
                ),
            ));
        }
        self.segments += 1;
        self.markers += 1;
        let n = self.segments;
        self.warn(no, format!("segment {n} starts: {reason}"));
        Ok(())
    }

    /// Compare with the head (no chain problem found).
    fn check_head(&mut self, h: &Head) {
        let at_head = self.at_head.take();
        let problem = match at_head {
            _ if h.lines == 0 => self.beyond_head(h),
            Some(AtHead::Record(p)) if p.seq == h.seq && p.hash == h.hash && p.end == h.bytes => {
                self.beyond_head(h)
            }
            Some(AtHead::Record(p)) => Some(rolled_back(h, &p)),
            Some(AtHead::Declared) => Some(Problem::new(
                ProblemKind::RolledBack,
                h.lines,
                Some(format!("seq {}, hash {}", h.seq, h.hash)),
                Some("an incomplete line".to_owned()),
                format!(
                    "the head's record ({}) is not in the log: line {} is an incomplete line",
                    h.describe(),
                    h.lines
                ),
            )),
            None => Some(self.truncated(h)),
        };
        if let Some(p) = problem {
            self.fail(p);
        }
    }

    /// Complete lines after the head's position, when there are.
    fn beyond_head(&self, h: &Head) -> Option<Problem> {
        let first = self.first_beyond_head?;
        let n = self.complete_lines;
        let detail = if h.lines == 0 {
            format!(
                "the head records an empty log, the file has {n} complete lines; line {first} \
                 onward was not committed to the head (appended or forged)"
            )
        } else {
            format!(
                "head records {} lines, file has {n}; line {first} onward was not committed to \
                 the head (appended or forged)",
                h.lines
            )
        };
        Some(Problem::new(
            ProblemKind::BeyondHead,
            first,
            Some(format!("{} lines", h.lines)),
            Some(format!("{n} lines")),
            detail,
        ))
    }

    /// The log ends before the head's line.
    fn truncated(&self, h: &Head) -> Problem {
        let n = self.complete_lines;
        Problem::new(
            ProblemKind::Truncated,
            n + 1,
            Some(format!("{} lines", h.lines)),
            Some(format!("{n} lines")),
            format!(
                "head records {} lines, file has {n} (records removed from the end from line \
                 {}, or log and head rolled back to an older copy); head: {}",
                h.lines,
                n + 1,
                h.describe()
            ),
        )
    }
}

/// Another record is at the head's line.
fn rolled_back(h: &Head, p: &Position) -> Problem {
    let found = format!("seq {}, hash {}, ending at byte {}", p.seq, p.hash, p.end);
    Problem::new(
        ProblemKind::RolledBack,
        h.lines,
        Some(format!(
            "seq {}, hash {}, ending at byte {}",
            h.seq, h.hash, h.bytes
        )),
        Some(found.clone()),
        format!(
            "the head's record is not in the log: expected seq {}, hash {}, ending at byte {}; \
             found {found} (log replaced by an older copy and written again, or rewritten)",
            h.seq, h.hash, h.bytes
        ),
    )
}

/// Verify a chained log against its head. `head`: `None` uses `<log>.head` when it exists
/// (a missing default head is a warning); an explicit head must exist. Errors only when the
/// files cannot be read or the head is not a head file.
pub fn verify(log: &Path, head: Option<&Path>) -> Result<VerifyReport, ChainError> {
    let file = File::open(log).map_err(io_err(log))?;
    let bytes = file.metadata().map_err(io_err(log))?.len();
    let head_path = head.map_or_else(|| head_path(log), Path::to_owned);
    let head_value = read_head(&head_path, head.is_some())?;
    let mut w = Walker {
        head_lines: head_value.as_ref().map(|h| h.lines),
        ..Walker::default()
    };
    w.walk(BufReader::with_capacity(CHUNK, file))
        .map_err(io_err(log))?;
    let head_status = w.head_status(head_value.as_ref());
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

/// The head to compare with; an explicit one (`required`) must exist.
fn read_head(path: &Path, required: bool) -> Result<Option<Head>, ChainError> {
    match Head::read(path)? {
        None if required => Err(ChainError::Io {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "head file does not exist"),
        }),
        head => Ok(head),
    }
}

impl Walker {
    /// Every line, up to the first problem.
    fn walk(&mut self, mut reader: impl BufRead) -> io::Result<()> {
        let mut start = 0;
        let mut no = 1;
        while self.problem.is_none() {
            let Some(line) = read_line(&mut reader, no, start)? else {
                self.finish();
                break;
            };
            (start, no) = (line.end, no + 1);
            self.line(line);
        }
        Ok(())
    }

    /// After the walk: compare with the head, when there is one and the chain is intact.
    fn head_status(&mut self, head: Option<&Head>) -> HeadStatus {
        if self.problem.is_some() {
            return HeadStatus::NotChecked;
        }
        let Some(h) = head else {
            return HeadStatus::Missing;
        };
        self.check_head(h);
        if self.problem.is_some() {
            HeadStatus::Mismatch
        } else {
            HeadStatus::Matches
        }
    }
}

//! The writing side of the chain: sealing records, committing the head file, and resuming a
//! log after a restart, a crash or a failed write (markers; see the parent module's docs).
//!
//! [`Chain`] does not write the log itself: it returns the bytes to append, and the sink
//! ([`crate::sink::FileSinks`]) appends them through its normal writer.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    CHUNK, ChainError,
    format::{
        Head, IncompleteLine, Interrupted, MAX_DECLARED, Marker, Previous, SegmentStart, True,
        ZERO_HASH, classify, head_path, hex, record_fields, seal_fields,
    },
    io_err,
};

fn now_rfc3339() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    crate::clock::format_rfc3339(ns)
}

/// Atomically replace `path` with `head`: temp file (0600) in the same directory, fsync,
/// rename, fsync of the directory.
pub(super) fn write_head_file(path: &Path, head: &Head) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(&head.to_file_bytes())?;
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

/// Longest line read to see whether it is a chained record (longer: not a record).
const MAX_LINE: u64 = 16 << 20;

/// A line at the end of a log that is not a chained record: what an interrupted write leaves.
#[derive(Debug)]
struct Junk {
    len: u64,
    sha256: String,
}

/// The last line of a log that looks like a chained record.
#[derive(Debug)]
struct LastRecord {
    seq: u64,
    hash: String,
    /// Offset just past its newline (the newline still to be written when it is the
    /// unterminated last line).
    end: u64,
}

/// The end of a log as a resuming writer sees it.
struct Tail {
    /// File length.
    len: u64,
    /// The last line that looks like a chained record.
    last: Option<LastRecord>,
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
            t.take_line(f, end, len, len + 1)?;
        }
        while t.last.is_none() && end > 0 {
            if t.junk.len() >= MAX_DECLARED {
                t.too_much_junk = true;
                break;
            }
            let nl = end - 1;
            let start = rfind_newline(f, nl)?.map_or(0, |p| p + 1);
            t.take_line(f, start, nl, end)?;
            end = start;
        }
        t.junk.reverse();
        Ok(t)
    }

    /// The line at `start..end` (without its newline; `past`: offset past its newline) is the
    /// last record, or one more non-record line.
    fn take_line(&mut self, f: &mut File, start: u64, end: u64, past: u64) -> io::Result<()> {
        match line_fields(f, start, end)? {
            Some((seq, hash)) => {
                self.last = Some(LastRecord {
                    seq,
                    hash,
                    end: past,
                });
            }
            None => self.junk.push(Junk {
                len: end - start,
                sha256: sha256_range(f, start, end)?,
            }),
        }
        Ok(())
    }
}

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
    Ok(classify(&buf).ok().map(|c| (c.seq, c.hash)))
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

// ---------------------------------------------------------------------------------------------
// Deciding how to resume

/// The log (when it exists) and its end.
fn open_tail(log: &Path) -> Result<(Option<File>, Tail), ChainError> {
    let mut file = match File::open(log) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(log)(e)),
    };
    let tail = match &mut file {
        Some(f) => Tail::read(f).map_err(io_err(log))?,
        None => Tail::empty(),
    };
    Ok((file, tail))
}

/// Why the chain cannot continue from the head (a new segment starts), or `None` when the head
/// matches the log's last record.
fn head_mismatch(
    head: &Result<Option<Head>, ChainError>,
    tail: &Tail,
    head_path: &Path,
) -> Option<String> {
    let name = head_path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    match head {
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
            Some(last) if last.seq == h.seq && last.hash == h.hash && last.end == h.bytes => None,
            Some(last) => Some(last_record_mismatch(h, last)),
        },
    }
}

/// A head and a last record that disagree, explained.
fn last_record_mismatch(h: &Head, last: &LastRecord) -> String {
    let why = if last.end > h.bytes {
        "the log continues past the head's position: a stop before the head was updated, or \
         lines appended by something else"
    } else if last.end < h.bytes {
        "the log is shorter than the head says: truncated or replaced"
    } else {
        "the last record is not the head's: edited or replaced"
    };
    format!(
        "the head does not match the log ({why}): head records {}; the log's last record is \
         seq {}, hash {}, ending at byte {}",
        h.describe(),
        last.seq,
        last.hash,
        last.end
    )
}

/// Complete lines in the log now. When the head matches (`head_matches`), from the head and
/// the lines after its record; otherwise counted.
fn complete_lines(
    head_matches: bool,
    head: &Result<Option<Head>, ChainError>,
    tail: &Tail,
    file: Option<&mut File>,
) -> io::Result<u64> {
    let after = tail.junk.len() as u64;
    let partial = u64::from(tail.partial);
    Ok(match (head_matches, head, file) {
        (true, Ok(Some(h)), _) => (h.lines + after).saturating_sub(partial),
        (true, _, _) => after.saturating_sub(partial),
        (false, _, Some(f)) => count_newlines(f)?,
        (false, _, None) => 0,
    })
}

/// The lines left by interrupted writes at the end of a log, numbered.
struct JunkLines {
    /// Line number of the first.
    first: u64,
    /// How many (also when too many to declare).
    count: u64,
    /// What the marker declares (empty when there are none, or too many).
    declared: Vec<IncompleteLine>,
}

impl JunkLines {
    /// `complete`: complete lines in the file now (the last junk line may not be one yet).
    fn new(tail: &Tail, complete: u64) -> Self {
        let count = tail.junk.len() as u64;
        // The last `count` lines, once the last is ended.
        let first = (complete + u64::from(tail.partial) + 1).saturating_sub(count);
        let declared = if tail.too_much_junk {
            Vec::new()
        } else {
            (first..)
                .zip(&tail.junk)
                .map(|(line, j)| IncompleteLine {
                    line,
                    bytes: j.len,
                    sha256: j.sha256.clone(),
                })
                .collect()
        };
        Self {
            first,
            count,
            declared,
        }
    }

    /// `line 3 is not a chained record`, `lines 3-4 are not chained records`.
    fn describe(&self) -> String {
        match self.count {
            0 => String::new(),
            1 => format!("line {} is not a chained record", self.first),
            _ => format!(
                "lines {}-{} are not chained records",
                self.first,
                self.first + self.count - 1
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The writer

/// A marker record to write before the next record.
#[derive(Debug)]
struct Pending {
    /// End the log's partial last line first.
    newline: bool,
    marker: Marker,
}

/// Writer state of one chained log.
///
/// Use: [`Chain::open`] (or [`Chain::new`]) when the log is opened; for each record,
/// [`Chain::seal_record`] (or [`Chain::seal`]/[`Chain::seal_line`]), append the returned bytes
/// plus `\n` to the log and flush, then [`Chain::commit_head`]. After a failed write, or after
/// reopening the log (rotation), call [`Chain::mark_stale`]: the next seal resumes from the
/// file.
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
    /// A chain at the start of `log`, before resuming.
    fn unresumed(log: &Path) -> Chain {
        Chain {
            log: log.to_owned(),
            head_path: head_path(log),
            pos: Head::empty(),
            pending: None,
            stale: false,
            notes: Vec::new(),
        }
    }

    /// Resume the chain of `existing_log` (which may not exist yet) and its head file.
    ///
    /// Never fails because of what the files contain: a head that does not match the log
    /// starts a new segment and a partial last line is kept and declared (see the module
    /// docs); [`Chain::take_notes`] says what was found. Fails only when the log or head
    /// cannot be read.
    pub fn new(existing_log: &Path) -> Result<Chain, ChainError> {
        let mut chain = Chain::unresumed(existing_log);
        chain.resume()?;
        Ok(chain)
    }

    /// [`Chain::new`], but infallible (for the daemon): when the log cannot be read, a new
    /// segment is started whose marker says why.
    pub fn open(log: &Path) -> Chain {
        Chain::new(log).unwrap_or_else(|e| {
            let mut c = Chain::unresumed(log);
            c.fallback(&e);
            c
        })
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
        self.pending
            .as_ref()
            .is_some_and(|p| p.marker.starts_segment())
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

    /// Seal a record given as a value (the pipeline's audit/alert record,
    /// [`crate::sink::records::FullLogRecord`]): it is serialised once, into its canonical
    /// body. See [`Chain::seal`].
    pub fn seal_record<T: Serialize + ?Sized>(
        &mut self,
        record: &T,
    ) -> Result<Vec<u8>, ChainError> {
        let v =
            serde_json::to_value(record).map_err(|e| ChainError::Unserialisable(e.to_string()))?;
        self.seal(v)
    }

    /// Seal a record given as a JSON line (parsed, then sealed as [`Chain::seal`] does).
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
        let fields = record_fields(record)?;
        self.resume_if_moved();
        let mut out = Vec::new();
        if let Some(p) = self.pending.take() {
            self.seal_marker(p, &mut out);
        }
        out.extend_from_slice(&self.seal_next(fields));
        Ok(out)
    }

    /// Resume from the file when it is not where the chain ended: marked stale, or anything
    /// else that changed it (a torn write ended by the sink, rotation, another writer) shows
    /// in its length.
    fn resume_if_moved(&mut self) {
        let on_disk = fs::metadata(&self.log).map_or(0, |m| m.len());
        if self.stale || on_disk != self.pos.bytes {
            self.stale = false;
            if let Err(e) = self.resume() {
                self.fallback(&e);
            }
        }
    }

    /// The pending marker's bytes, and the newline ending a partial line before it.
    fn seal_marker(&mut self, p: Pending, out: &mut Vec<u8>) {
        if p.newline {
            out.push(b'\n');
            self.pos.lines += 1;
            self.pos.bytes += 1;
        }
        if p.marker.starts_segment() {
            self.pos.seq = 0;
            self.pos.hash = ZERO_HASH.to_owned();
        }
        out.extend_from_slice(&self.seal_next(p.marker.fields()));
        out.push(b'\n');
    }

    /// Seal `fields` as the next record; advance the position past its line.
    fn seal_next(&mut self, fields: Map<String, Value>) -> Vec<u8> {
        let seq = self.pos.seq + 1;
        let (line, hash) = seal_fields(fields, seq, &self.pos.hash);
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

    /// Read the log's end and its head; decide how to continue: where the chain stands, and
    /// the marker (if any) to write before the next record.
    fn resume(&mut self) -> Result<(), ChainError> {
        self.pending = None;
        let (mut file, tail) = open_tail(&self.log)?;
        let head = Head::read(&self.head_path);
        let mismatch = head_mismatch(&head, &tail, &self.head_path);
        let complete = complete_lines(mismatch.is_none(), &head, &tail, file.as_mut())
            .map_err(io_err(&self.log))?;
        let junk = JunkLines::new(&tail, complete);
        if !junk.declared.is_empty() {
            self.notes.push(format!(
                "{}: {} (an interrupted write); kept, and declared by the next record",
                self.log.display(),
                junk.describe()
            ));
        }
        let marker = match mismatch {
            Some(reason) => Some(self.start_segment(reason, &head, &tail, complete, junk)),
            None => self.continue_chain(head.ok().flatten(), &tail, complete, junk),
        };
        self.pending = marker.map(|marker| Pending {
            newline: tail.partial,
            marker,
        });
        Ok(())
    }

    /// The head does not match the log: the next record starts a segment after the log's
    /// current end.
    fn start_segment(
        &mut self,
        reason: String,
        head: &Result<Option<Head>, ChainError>,
        tail: &Tail,
        complete: u64,
        junk: JunkLines,
    ) -> Marker {
        self.pos = Head {
            lines: complete,
            bytes: tail.len,
            ..Head::empty()
        };
        let lines = complete + u64::from(tail.partial);
        self.notes.push(format!(
            "{}: starting a new chain segment at line {}: {reason}",
            self.log.display(),
            lines + 1
        ));
        Marker::SegmentStart(SegmentStart {
            segment_start: True,
            reason,
            previous: Previous {
                last_seq: tail.last.as_ref().map(|l| l.seq),
                last_hash: tail.last.as_ref().map(|l| l.hash.clone()),
                lines: Some(lines),
                bytes: tail.len,
                head: head.as_ref().ok().cloned().flatten(),
            },
            incomplete_lines: junk.declared,
            timestamp: now_rfc3339(),
        })
    }

    /// The head matches the log: the chain continues from it, after a marker declaring the
    /// lines interrupted writes left (if any).
    fn continue_chain(
        &mut self,
        head: Option<Head>,
        tail: &Tail,
        complete: u64,
        junk: JunkLines,
    ) -> Option<Marker> {
        self.pos = Head {
            lines: complete,
            bytes: tail.len,
            ..head.unwrap_or_else(Head::empty)
        };
        if junk.declared.is_empty() {
            return None;
        }
        Some(Marker::Interrupted(Interrupted {
            reason: format!(
                "{}: left by an interrupted write, kept outside the chain",
                junk.describe()
            ),
            incomplete_lines: junk.declared,
            timestamp: now_rfc3339(),
        }))
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
        let marker = Marker::SegmentStart(SegmentStart {
            segment_start: True,
            reason,
            previous: Previous {
                last_seq: None,
                last_hash: None,
                lines: None,
                bytes,
                head: None,
            },
            incomplete_lines: Vec::new(),
            timestamp: now_rfc3339(),
        });
        self.pending = Some(Pending {
            newline: false,
            marker,
        });
    }
}

//! Output logs: `events.log`, `sessions.log`, `audit.log`, `alert.log` (JSON lines).
//!
//! The last stage of the pipeline. Record builders ([`records`]) produce the original CASA's
//! field names and meanings (reference §9), with fields only ever added. A [`LogSink`] takes
//! each record as a value ([`Record`]) and serialises it once: an `events.log` or
//! `sessions.log` line is the record's JSON ([`Record::to_json`]); an `audit.log` or
//! `alert.log` record goes to its hash chain ([`chain`]), which serialises it straight into
//! its canonical, sealed line. [`FileSinks`] appends to the four files, [`MemorySink`] keeps
//! the records' JSON for tests. Every line is either on disk or counted as failed: a failed
//! write or flush counts all the lines it lost, the file is reopened on the next line (its
//! torn tail ended first), so writing resumes when the fault clears (the original stopped
//! writing for good after its first error). Files whose path was rotated or removed are
//! reopened. With `--ocsf-log`, [`FileSinks`] also hands every record to an [`ocsf::OcsfLog`]
//! (the same records as OCSF events, written the same way).

pub mod chain;
pub mod ocsf;
pub mod records;

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use records::{EventRecord, FullLogRecord, SessionLogRecord};

/// Which log a line goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Log {
    Events,
    Sessions,
    Audit,
    Alert,
}

impl Log {
    pub const ALL: [Log; 4] = [Log::Events, Log::Sessions, Log::Audit, Log::Alert];

    /// Whether the log is hash-chained (`audit.log`, `alert.log`).
    pub fn is_chained(self) -> bool {
        matches!(self, Log::Audit | Log::Alert)
    }

    pub fn name(self) -> &'static str {
        match self {
            Log::Events => "events",
            Log::Sessions => "sessions",
            Log::Audit => "audit",
            Log::Alert => "alert",
        }
    }
}

/// A record for one of the four logs, as the pipeline built it.
#[derive(Clone, Copy)]
pub enum Record<'a> {
    /// An `events.log` line.
    Event(&'a EventRecord),
    /// A `sessions.log` line.
    Session(&'a SessionLogRecord<'a>),
    /// An `audit.log` record (hash-chained).
    Audit(&'a FullLogRecord),
    /// An `alert.log` record (hash-chained).
    Alert(&'a FullLogRecord),
}

impl Record<'_> {
    /// The log it goes to.
    pub fn log(&self) -> Log {
        match self {
            Record::Event(_) => Log::Events,
            Record::Session(_) => Log::Sessions,
            Record::Audit(_) => Log::Audit,
            Record::Alert(_) => Log::Alert,
        }
    }

    /// The record of a chained log (audit, alert).
    pub fn chained(&self) -> Option<&FullLogRecord> {
        match self {
            Record::Audit(r) | Record::Alert(r) => Some(r),
            Record::Event(_) | Record::Session(_) => None,
        }
    }

    /// The record as one line of JSON (without the newline), members in the order the record
    /// declares them: an `events.log` or `sessions.log` line as written; for an audit or alert
    /// record, its content before the chain seals it (the chain writes the canonical form).
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        match self {
            Record::Event(r) => serde_json::to_vec(r),
            Record::Session(r) => serde_json::to_vec(r),
            Record::Audit(r) | Record::Alert(r) => serde_json::to_vec(r),
        }
    }
}

/// Where finished records go.
pub trait LogSink {
    /// Append one record to its log ([`Record::log`]).
    fn write(&mut self, record: Record<'_>);
    /// Push buffered lines to storage.
    fn flush(&mut self);
    /// Lines that could not be written, per log (counted, never silently lost).
    fn failed(&self) -> [u64; 4] {
        [0; 4]
    }
}

/// Keeps every record's JSON ([`Record::to_json`]) in memory (tests, evaluation).
#[derive(Default, Debug)]
pub struct MemorySink {
    pub lines: Vec<(Log, String)>,
}

impl MemorySink {
    pub fn of(&self, log: Log) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(l, _)| *l == log)
            .map(|(_, s)| s.as_str())
            .collect()
    }
}

impl LogSink for MemorySink {
    fn write(&mut self, record: Record<'_>) {
        match record.to_json() {
            Ok(line) => self
                .lines
                .push((record.log(), String::from_utf8_lossy(&line).into_owned())),
            Err(e) => tracing::error!("serialising a {} record: {e}", record.log().name()),
        }
    }
    fn flush(&mut self) {}
}

/// Paths of the four logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPaths {
    pub events: PathBuf,
    pub sessions: PathBuf,
    pub audit: PathBuf,
    pub alert: PathBuf,
}

impl LogPaths {
    /// All four in `dir` with their default names.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            events: dir.join("events.log"),
            sessions: dir.join("sessions.log"),
            audit: dir.join("audit.log"),
            alert: dir.join("alert.log"),
        }
    }

    pub fn get(&self, log: Log) -> &Path {
        match log {
            Log::Events => &self.events,
            Log::Sessions => &self.sessions,
            Log::Audit => &self.audit,
            Log::Alert => &self.alert,
        }
    }
}

struct OpenLog {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// (device, inode) of the open file, to notice rotation or removal.
    id: Option<(u64, u64)>,
    /// Lines in the buffer, not yet known to be on disk.
    pending: u64,
    written: u64,
    failed: u64,
    last_error: Option<String>,
    /// The hash chain of `audit.log` / `alert.log` (`chain`).
    chain: Option<chain::Chain>,
    /// Lines were chained since the head file was last committed.
    head_dirty: bool,
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn file_id(f: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// After a failed write the file may end in a torn line: end it, so the next record starts on
/// a line of its own (the torn one is among the lines counted as failed).
fn terminate_torn_tail(f: &mut File) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    if last[0] != b'\n' {
        f.write_all(b"\n")?;
    }
    Ok(())
}

impl OpenLog {
    fn open(path: PathBuf) -> io::Result<Self> {
        let f = open_append(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Self {
            path,
            id: file_id(&f),
            out: Some(BufWriter::with_capacity(64 << 10, f)),
            pending: 0,
            written: 0,
            failed: 0,
            last_error: None,
            chain: None,
            head_dirty: false,
        })
    }

    /// Count every buffered line as lost and drop the writer (reopened on the next line).
    fn fail(&mut self, e: &io::Error, extra: u64) {
        if let Some(c) = &mut self.chain {
            c.mark_stale();
        }
        self.failed += self.pending + extra;
        self.pending = 0;
        if self.last_error.is_none() {
            tracing::error!(
                "{}: write failed: {e}; lines are counted until it recovers",
                self.path.display()
            );
        }
        self.last_error = Some(format!("{}: {e}", self.path.display()));
        if let Some(w) = self.out.take() {
            // The buffer's content is lost (and counted); do not try to write it again.
            let _ = w.into_parts();
        }
    }

    fn reopen(&mut self) -> bool {
        match open_append(&self.path).and_then(|mut f| terminate_torn_tail(&mut f).map(|()| f)) {
            Ok(f) => {
                if self.last_error.take().is_some() {
                    tracing::info!("{}: writing again", self.path.display());
                }
                self.id = file_id(&f);
                self.out = Some(BufWriter::with_capacity(64 << 10, f));
                if let Some(c) = &mut self.chain {
                    c.mark_stale();
                }
                true
            }
            Err(e) => {
                self.last_error = Some(format!("{}: {e}", self.path.display()));
                false
            }
        }
    }

    /// Append a record: sealed by the chain for a chained log, its JSON otherwise. A chained
    /// log's lines are handed to the file at once (`sync`).
    fn write(&mut self, record: Record<'_>, sync: bool) {
        if self.out.is_none() && !self.reopen() {
            self.failed += 1;
            return;
        }
        let Some(line) = self.line_of(record) else {
            self.failed += 1;
            return;
        };
        self.append(&line, sync);
    }

    /// Append one line that is not a record of the four logs (the OCSF file's).
    fn write_line(&mut self, line: &[u8]) {
        if self.out.is_none() && !self.reopen() {
            self.failed += 1;
            return;
        }
        self.append(line, false);
    }

    /// Append `line` and its newline to the open file; `sync`: hand it to the file at once.
    fn append(&mut self, line: &[u8], sync: bool) {
        let Some(out) = &mut self.out else { return };
        match out.write_all(line).and_then(|()| out.write_all(b"\n")) {
            Ok(()) => self.pending += 1,
            Err(e) => return self.fail(&e, 1),
        }
        if sync {
            self.flush_buffer();
        }
        self.head_dirty |= self.chain.is_some();
    }

    /// The bytes of a record's line (without the newline): sealed by the log's chain when it
    /// has one (a record the chain cannot seal is written unchained, and the next record's
    /// marker declares it), else the record's JSON. `None`: it cannot be serialised.
    fn line_of(&mut self, record: Record<'_>) -> Option<Vec<u8>> {
        if let (Some(c), Some(full)) = (&mut self.chain, record.chained()) {
            let sealed = c.seal_record(full);
            for note in c.take_notes() {
                tracing::warn!("{note}");
            }
            match sealed {
                Ok(line) => return Some(line),
                Err(e) => tracing::error!("{}: {e}", self.path.display()),
            }
        }
        record
            .to_json()
            .map_err(|e| tracing::error!("serialising a {} record: {e}", record.log().name()))
            .ok()
    }

    /// Hand buffered lines to the file (readers see them).
    fn flush_buffer(&mut self) {
        if let Some(out) = &mut self.out {
            match out.flush() {
                Ok(()) => {
                    self.written += self.pending;
                    self.pending = 0;
                }
                Err(e) => self.fail(&e, 0),
            }
        }
    }

    /// Hand buffered lines to the file and, for a chained log, make them durable and commit
    /// the head file (fsync of the log, atomic head replacement). Alert and audit lines are
    /// visible the moment they are written; the durable commit follows at the end of the
    /// ring-buffer batch (the daemon flushes after each), so an alert is not held back by
    /// three fsyncs per log, and a burst of records shares one commit.
    fn flush(&mut self) {
        self.flush_buffer();
        if self.head_dirty
            && self.out.is_some()
            && self.pending == 0
            && let Some(c) = &mut self.chain
        {
            self.head_dirty = false;
            if let Err(e) = c.commit_head() {
                tracing::warn!("{e}");
            }
        }
    }

    /// Reopen when the path now names another file (rotated) or nothing (removed).
    fn follow_rotation(&mut self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let now = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if self.out.is_some() && now.is_some() && now == self.id {
            return false;
        }
        self.flush();
        if let Some(w) = self.out.take() {
            let _ = w.into_parts();
        }
        let ok = self.reopen();
        if ok {
            tracing::info!("{}: reopened (rotated or removed)", self.path.display());
        }
        ok
    }
}

/// Appends to the four log files, and to the OCSF file when one is configured.
pub struct FileSinks {
    logs: Vec<OpenLog>,
    ocsf: Option<ocsf::OcsfLog>,
}

impl FileSinks {
    /// Open (creating, `0600`, never following a symlink) the four logs for appending.
    pub fn open(paths: &LogPaths) -> io::Result<Self> {
        let mut logs = Vec::new();
        for log in Log::ALL {
            let mut l = OpenLog::open(paths.get(log).to_owned())?;
            if log.is_chained() {
                let mut c = chain::Chain::open(&l.path);
                for note in c.take_notes() {
                    tracing::warn!("{note}");
                }
                l.chain = Some(c);
            }
            logs.push(l);
        }
        Ok(Self { logs, ocsf: None })
    }

    /// Also write every record as OCSF to `path` (`--ocsf-log`), opened like the logs.
    pub fn with_ocsf(mut self, path: &Path, cfg: ocsf::OcsfConfig) -> io::Result<Self> {
        self.ocsf = Some(ocsf::OcsfLog::open(path, cfg)?);
        Ok(self)
    }

    /// The OCSF file's lines (written, failed), when there is one.
    pub fn ocsf_lines(&self) -> Option<(u64, u64)> {
        self.ocsf.as_ref().map(|o| (o.written(), o.failed()))
    }

    fn all_files(&mut self) -> impl Iterator<Item = &mut OpenLog> {
        self.logs
            .iter_mut()
            .chain(self.ocsf.as_mut().map(|o| &mut o.file))
    }

    /// Reopen every file (SIGHUP: after `logrotate`).
    pub fn reopen(&mut self) {
        for l in self.all_files() {
            l.flush();
            if let Some(w) = l.out.take() {
                let _ = w.into_parts();
            }
            l.reopen();
        }
    }

    /// Reopen the files whose path was rotated or removed; returns how many.
    pub fn follow_rotation(&mut self) -> usize {
        self.all_files()
            .filter_map(|l| l.follow_rotation().then_some(()))
            .count()
    }

    /// Lines known to be on disk, per log.
    pub fn written(&self) -> [u64; 4] {
        [
            self.logs[0].written,
            self.logs[1].written,
            self.logs[2].written,
            self.logs[3].written,
        ]
    }
}

impl LogSink for FileSinks {
    fn write(&mut self, record: Record<'_>) {
        let log = record.log();
        self.logs[log as usize].write(record, log.is_chained());
        if let Some(o) = &mut self.ocsf {
            o.write(record);
        }
    }

    fn flush(&mut self) {
        for l in self.all_files() {
            l.flush();
        }
    }

    fn failed(&self) -> [u64; 4] {
        [
            self.logs[0].failed,
            self.logs[1].failed,
            self.logs[2].failed,
            self.logs[3].failed,
        ]
    }
}

impl Drop for FileSinks {
    fn drop(&mut self) {
        self.flush();
        for l in self.all_files() {
            if let Some(out) = &mut l.out {
                let _ = out.get_ref().sync_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::{
        records::{AuditEvent, DecisionRecord, EventFields, TriggeredRuleRecord},
        *,
    };

    /// A scratch directory, removed when the test passes.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = fs::remove_dir_all(&self.0);
            }
        }
    }

    fn scratch(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "casa-sink-unit-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn fields(i: u64) -> EventFields {
        EventFields {
            path: Some(format!("/tmp/é \"x\"\n{i}")),
            args: Some(vec!["sh".into(), "-c".into(), "echo\t\u{1}".into()]),
            result: Some(-13),
            status: Some(0),
            ..EventFields::default()
        }
    }

    fn event_record(i: u64) -> EventRecord {
        EventRecord {
            timestamp: format!("2026-05-21T10:17:{i:02}.000000001Z"),
            pid: 4100,
            tid: 4101,
            ppid: 1,
            uid: 0,
            kind: "OPENAT",
            comm: "sh".into(),
            fields: fields(i),
            session_id: i,
        }
    }

    fn audit_record(i: u64) -> FullLogRecord {
        FullLogRecord {
            timestamp: format!("2026-05-21T10:17:{i:02}.123456789Z"),
            session_id: u64::MAX - i,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            event: AuditEvent {
                kind: "EXECVE",
                pid: 7,
                ppid: 1,
                uid: 1000,
                comm: "bash".into(),
                fields: fields(i),
            },
            decision: DecisionRecord {
                action: "ALERT",
                score: -(i as i64),
                log_threshold: 4,
                alert_threshold: 9,
                triggered_rules: vec![
                    TriggeredRuleRecord {
                        name: "b_rule".into(),
                        expr: "a && b".into(),
                        weight: 5,
                    },
                    TriggeredRuleRecord {
                        name: "a_rule".into(),
                        expr: String::new(),
                        weight: 0,
                    },
                ],
            },
            response: None,
        }
    }

    #[test]
    fn sink_file_lines_are_the_records_json_and_chained_records_are_sealed_from_their_json() {
        let d = scratch("files");
        let paths = LogPaths::in_dir(&d.0);
        let mut sinks = FileSinks::open(&paths).unwrap();
        for i in 0..3 {
            sinks.write(Record::Event(&event_record(i)));
            sinks.write(Record::Audit(&audit_record(i)));
            if i == 1 {
                sinks.write(Record::Alert(&audit_record(i)));
            }
        }
        sinks.flush();
        assert_eq!(sinks.written(), [3, 0, 3, 1]);
        assert_eq!(sinks.failed(), [0; 4]);
        drop(sinks);

        // events.log: each record's JSON, in declaration order.
        let mut want = Vec::new();
        for i in 0..3 {
            want.extend(serde_json::to_vec(&event_record(i)).unwrap());
            want.push(b'\n');
        }
        assert_eq!(fs::read(&paths.events).unwrap(), want);

        // audit.log / alert.log: exactly what sealing the record's serialised line gives (the
        // way records reached the chain before they were handed over as values).
        let reference = scratch("reference");
        for (log, ids) in [(Log::Audit, &[0, 1, 2][..]), (Log::Alert, &[1][..])] {
            let path = reference.0.join(log.name());
            let mut c = chain::Chain::new(&path).unwrap();
            for &i in ids {
                let line = serde_json::to_vec(&audit_record(i)).unwrap();
                let mut sealed = c.seal_line(&line).unwrap();
                sealed.push(b'\n');
                let mut f = open_append(&path).unwrap();
                f.write_all(&sealed).unwrap();
                c.commit_head().unwrap();
            }
            let text = |p: &Path| String::from_utf8(fs::read(p).unwrap()).unwrap();
            assert_eq!(text(paths.get(log)), text(&path), "{}", log.name());
            assert_eq!(
                fs::read(chain::head_path(paths.get(log))).unwrap(),
                fs::read(chain::head_path(&path)).unwrap()
            );
            let r = chain::verify(paths.get(log), None).unwrap();
            assert_eq!(r.outcome(), chain::Outcome::Ok, "{}", r.verdict());
            assert_eq!(r.records, ids.len() as u64);
        }
    }

    #[test]
    fn sink_memory_keeps_each_records_json_under_its_log() {
        let mut m = MemorySink::default();
        m.write(Record::Event(&event_record(1)));
        m.write(Record::Audit(&audit_record(2)));
        m.write(Record::Alert(&audit_record(2)));
        let audit = serde_json::to_string(&audit_record(2)).unwrap();
        assert_eq!(
            m.of(Log::Events),
            [serde_json::to_string(&event_record(1)).unwrap()]
        );
        assert_eq!(m.of(Log::Audit), [audit.as_str()]);
        assert_eq!(m.of(Log::Alert), [audit.as_str()]);
        assert!(m.of(Log::Sessions).is_empty());
    }
}

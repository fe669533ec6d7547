//! Output logs: `events.log`, `sessions.log`, `audit.log`, `alert.log` (JSON lines).
//!
//! The last stage of the pipeline. Record builders ([`records`]) produce the original CASA's
//! field names and meanings (reference §9), with fields only ever added. A [`LogSink`] takes
//! finished lines: [`FileSinks`] appends them to the four files, [`MemorySink`] keeps them
//! for tests. A write that fails is counted and reported, and writing resumes when the fault
//! clears (the original stopped writing for good after its first error).

pub mod records;

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

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

    pub fn name(self) -> &'static str {
        match self {
            Log::Events => "events",
            Log::Sessions => "sessions",
            Log::Audit => "audit",
            Log::Alert => "alert",
        }
    }
}

/// Where finished log lines go.
pub trait LogSink {
    /// Append one JSON line (without the newline).
    fn write_line(&mut self, log: Log, line: &[u8]);
    /// Push buffered lines to storage.
    fn flush(&mut self);
    /// Lines that could not be written, per log (counted, never silently lost).
    fn failed(&self) -> [u64; 4] {
        [0; 4]
    }
}

/// Keeps every line in memory (tests, evaluation).
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
    fn write_line(&mut self, log: Log, line: &[u8]) {
        self.lines
            .push((log, String::from_utf8_lossy(line).into_owned()));
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
    failed: u64,
    last_error: Option<String>,
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Appends to the four log files.
pub struct FileSinks {
    logs: Vec<OpenLog>,
}

impl FileSinks {
    /// Open (creating) the four logs for appending.
    pub fn open(paths: &LogPaths) -> io::Result<Self> {
        let mut logs = Vec::new();
        for log in Log::ALL {
            let path = paths.get(log).to_owned();
            let f = open_append(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            logs.push(OpenLog {
                path,
                out: Some(BufWriter::with_capacity(64 << 10, f)),
                failed: 0,
                last_error: None,
            });
        }
        Ok(Self { logs })
    }

    /// Reopen every file (after `logrotate` or a SIGHUP).
    pub fn reopen(&mut self) {
        for l in &mut self.logs {
            if let Some(mut out) = l.out.take() {
                let _ = out.flush();
            }
            match open_append(&l.path) {
                Ok(f) => l.out = Some(BufWriter::with_capacity(64 << 10, f)),
                Err(e) => l.last_error = Some(format!("{}: {e}", l.path.display())),
            }
        }
    }

    /// The last error per log, if any (for reports).
    pub fn errors(&self) -> Vec<String> {
        self.logs
            .iter()
            .filter_map(|l| l.last_error.clone())
            .collect()
    }
}

impl LogSink for FileSinks {
    fn write_line(&mut self, log: Log, line: &[u8]) {
        let l = &mut self.logs[log as usize];
        if l.out.is_none() {
            // Try to come back after an earlier failure.
            if let Ok(f) = open_append(&l.path) {
                l.out = Some(BufWriter::with_capacity(64 << 10, f));
            }
        }
        let ok = match &mut l.out {
            Some(out) => out.write_all(line).and_then(|()| out.write_all(b"\n")),
            None => Err(io::Error::other("log file is not open")),
        };
        if let Err(e) = ok {
            l.failed += 1;
            l.last_error = Some(format!("{}: {e}", l.path.display()));
            l.out = None;
        }
        if matches!(log, Log::Audit | Log::Alert)
            && let Some(out) = &mut l.out
            && let Err(e) = out.flush()
        {
            l.failed += 1;
            l.last_error = Some(format!("{}: {e}", l.path.display()));
            l.out = None;
        }
    }

    fn flush(&mut self) {
        for l in &mut self.logs {
            if let Some(out) = &mut l.out
                && let Err(e) = out.flush()
            {
                l.failed += 1;
                l.last_error = Some(format!("{}: {e}", l.path.display()));
                l.out = None;
            }
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
        for l in &mut self.logs {
            if let Some(out) = &mut l.out {
                let _ = out.get_ref().sync_all();
            }
        }
    }
}

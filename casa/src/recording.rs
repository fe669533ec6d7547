//! Recording files: raw kernel records captured by `casa record`, read back by replay.
//!
//! A recording keeps the records exactly as the kernel wrote them, so replay exercises the
//! same decoder as live capture. Format (all integers little-endian):
//!
//! ```text
//! file   := MAGIC (8 bytes, "CASAREC\n") version:u32 meta_len:u32 meta (JSON, meta_len bytes) frame*
//! frame  := len:u32 type:u8 payload (len bytes)
//! type 1 := one kernel record (header + body + data, see casa_common::wire)
//! type 2 := end-of-recording summary (JSON, see [`Summary`])
//! type 3 := processes found running at start-up (JSON, see [`Seed`])         (version 2)
//! type 4 := the daemon's clock tick: now_ns:u64 (kernel boot-clock time)      (version 2)
//! type 5 := kernel loss seen: lost:u64 (total so far); open sessions incomplete (version 2)
//! type 6 := the daemon stopped: now_ns:u64                                     (version 2)
//! type 7 := processes found gone without an exit event: now_ns:u64 pid:u32*  (version 3)
//! type 8 := the edge's answer about a gateway tool process (JSON, see
//!           [`crate::session::attribution::Attribution`])                      (version 4)
//! ```
//!
//! `casa record` writes records and the summary. `casa run --record` writes every input the
//! live pipeline consumed, in the order it consumed them (the start-up `/proc` scan, kernel
//! records, clock ticks, loss, gateway attributions, shutdown), so `casa replay` of that file
//! reproduces the run's logs line for line. Readers accept versions 1 to 4.
//!
//! Version 3 adds frame type 7 and marks recordings whose kernel records may be of wire
//! version 2 (file identity, exec context, joined paths of failed opens, new event kinds).
//! Each record carries its own wire version and is decoded by it, so recordings of versions 1
//! and 2 (wire version 1) replay exactly as before; a wire version outside the range this
//! casa decodes is refused when the file is opened.
//!
//! A file whose name ends in `.gz` is written gzip-compressed (the whole stream above), and
//! readers recognise gzip by its magic bytes: recordings of agent runs, mostly repeated paths,
//! shrink about fifteenfold, which is what lets the evaluation commit one per case.
//!
//! `meta` ([`Meta`]) carries the wire version and the boot-clock offset that maps kernel
//! timestamps to wall-clock time. A recording cut short (crash, full disk) reads up to its
//! last complete frame and then reports where it was cut.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::clock::BootClock;

/// First bytes of every recording.
pub const MAGIC: &[u8; 8] = b"CASAREC\n";
/// Version of the framing described in the module docs (written by this casa).
pub const FORMAT_VERSION: u32 = 4;
/// Oldest version this casa reads (version 1 has no frames of types 3 to 6).
pub const FORMAT_VERSION_MIN: u32 = 1;
/// Frame type of a kernel record.
pub const FRAME_RECORD: u8 = 1;
/// Frame type of the end-of-recording summary.
pub const FRAME_SUMMARY: u8 = 2;
/// Frame type of the start-up process scan.
pub const FRAME_SEED: u8 = 3;
/// Frame type of a clock tick.
pub const FRAME_TICK: u8 = 4;
/// Frame type of a loss notice.
pub const FRAME_LOST: u8 = 5;
/// Frame type of the shutdown time.
pub const FRAME_FINISH: u8 = 6;
/// Frame type of processes found gone without an exit event.
pub const FRAME_REAPED: u8 = 7;
/// Frame type of a gateway attribution answer.
pub const FRAME_ATTRIBUTION: u8 = 8;
/// Largest frame a reader accepts (a kernel record is at most `wire::RECORD_MAX`).
pub const FRAME_MAX: u32 = 1 << 20;

/// What a recording says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// `casa_common::WIRE_VERSION` of the records.
    pub wire_version: u16,
    pub clock: BootClock,
    pub casa_version: String,
    pub hostname: String,
    pub kernel: String,
    /// RFC 3339 time the recording started.
    pub started_at: String,
    /// The command casa started and tracked, if any.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub all_processes: bool,
}

/// Counts written at the end of a recording.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Records written, by event kind name.
    pub events: BTreeMap<String, u64>,
    /// Records that did not decode (they are still in the recording).
    pub decode_errors: u64,
    /// Kernel-side counters (`casa_common::stats`), summed over CPUs, by name.
    pub kernel: BTreeMap<String, u64>,
    /// Pid of the command casa started and tracked, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_pid: Option<u32>,
    /// Its `wait(2)` status, if it ended during the recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_status: Option<i32>,
}

/// A process found running when the daemon started (read from `/proc`), as the pipeline
/// was seeded with it. Byte strings stay bytes (paths and argv need not be UTF-8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedProcess {
    pub pid: u32,
    pub ppid: u32,
    pub comm: Vec<u8>,
    /// `/proc/PID/exe`.
    pub exe: Vec<u8>,
    /// The name it was started as (argv\[0\] when that is a path, else `exe`).
    pub filename: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
}

impl SeedProcess {
    /// The exec the pipeline is seeded with: what `/proc` says, nothing the kernel would
    /// have added at exec time (capabilities, seccomp) because `/proc` cannot vouch for it.
    pub fn exec(&self) -> crate::event::Exec {
        use crate::event::Bytes;
        crate::event::Exec {
            result: 0,
            path: Bytes(self.exe.clone()),
            path_resolved: true,
            script: false,
            path_truncated: false,
            filename: Bytes(self.filename.clone()),
            argv: self.argv.iter().cloned().map(Bytes).collect(),
            argv_truncated: false,
            argv_unreadable: false,
            via_execveat: false,
            old_tid: self.pid,
            cap_effective: None,
            seccomp_mode: None,
            no_new_privs: false,
            facts: crate::event::ExecFacts::default(),
        }
    }
}

/// The start-up process scan (frame type 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Kernel boot-clock time of the scan.
    pub now_ns: u64,
    /// Parents before children.
    pub processes: Vec<SeedProcess>,
}

/// Errors reading or writing a recording; each says where.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a casa recording (bad magic bytes)")]
    BadMagic { path: PathBuf },
    #[error(
        "{path}: recording format version {found} is not supported (this casa reads {FORMAT_VERSION_MIN} to {FORMAT_VERSION})"
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error("{path}: bad metadata at byte 16: {source}")]
    BadMeta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}: records have wire version {found}, this casa decodes versions {} to {expected}",
        casa_common::WIRE_VERSION_MIN
    )]
    WireVersion {
        path: PathBuf,
        found: u16,
        expected: u16,
    },
    #[error(
        "{path}: truncated at byte {offset} (frame {frame}): needed {needed} more bytes, file ends after {had}"
    )]
    Truncated {
        path: PathBuf,
        offset: u64,
        frame: u64,
        needed: usize,
        had: usize,
    },
    #[error(
        "{path}: frame {frame} at byte {offset} has length {len}, over the {FRAME_MAX}-byte limit"
    )]
    FrameTooLarge {
        path: PathBuf,
        offset: u64,
        frame: u64,
        len: u32,
    },
    #[error("{path}: frame {frame} at byte {offset} has unknown type {kind}")]
    UnknownFrame {
        path: PathBuf,
        offset: u64,
        frame: u64,
        kind: u8,
    },
    #[error("{path}: frame {frame} at byte {offset} (type {kind}) has {len} bytes, expected 8")]
    BadTime {
        path: PathBuf,
        offset: u64,
        frame: u64,
        kind: u8,
        len: usize,
    },
    #[error(
        "{path}: frame {frame} at byte {offset} (processes gone) has {len} bytes, expected 8 \
         plus 4 per pid"
    )]
    BadReaped {
        path: PathBuf,
        offset: u64,
        frame: u64,
        len: usize,
    },
    #[error("{path}: bad {what} in frame {frame} at byte {offset}: {source}")]
    BadJson {
        path: PathBuf,
        what: &'static str,
        offset: u64,
        frame: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes a recording.
pub struct Writer<W: Write> {
    out: W,
    path: PathBuf,
}

/// A recording file being written: plain, or gzip when its name ends in `.gz`.
pub enum FileOut {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
}

impl Write for FileOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            FileOut::Plain(w) => w.write(buf),
            FileOut::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            FileOut::Plain(w) => w.flush(),
            FileOut::Gzip(w) => w.flush(),
        }
    }
}

impl FileOut {
    /// Write everything out (for gzip, the stream's trailer too).
    pub fn close(self) -> io::Result<()> {
        match self {
            FileOut::Plain(mut w) => w.flush(),
            FileOut::Gzip(w) => w.finish()?.flush(),
        }
    }
}

impl Writer<FileOut> {
    /// Create (or truncate) `path` and write the file header; gzip when the name ends in
    /// `.gz`.
    pub fn create(path: &Path, meta: &Meta) -> Result<Self, RecordingError> {
        let file = File::create(path).map_err(|source| RecordingError::Io {
            path: path.to_owned(),
            source,
        })?;
        let buf = BufWriter::with_capacity(1 << 20, file);
        let out = if path.extension().is_some_and(|e| e == "gz") {
            FileOut::Gzip(flate2::write::GzEncoder::new(
                buf,
                flate2::Compression::default(),
            ))
        } else {
            FileOut::Plain(buf)
        };
        Writer::new(out, path, meta)
    }

    /// Append the summary and close the file.
    pub fn finish_file(self, summary: &Summary) -> Result<(), RecordingError> {
        let path = self.path.clone();
        self.finish(summary)?
            .close()
            .map_err(|source| RecordingError::Io { path, source })
    }
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, path: &Path, meta: &Meta) -> Result<Self, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = serde_json::to_vec(meta).expect("Meta serialises");
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes()).map_err(io)?;
        out.write_all(&(meta.len() as u32).to_le_bytes())
            .map_err(io)?;
        out.write_all(&meta).map_err(io)?;
        Ok(Self {
            out,
            path: path.to_owned(),
        })
    }

    fn frame(&mut self, kind: u8, payload: &[u8]) -> Result<(), RecordingError> {
        let io = |source| RecordingError::Io {
            path: self.path.clone(),
            source,
        };
        self.out
            .write_all(&(payload.len() as u32).to_le_bytes())
            .map_err(io)?;
        self.out.write_all(&[kind]).map_err(io)?;
        self.out.write_all(payload).map_err(io)
    }

    /// Append one kernel record.
    pub fn record(&mut self, raw: &[u8]) -> Result<(), RecordingError> {
        self.frame(FRAME_RECORD, raw)
    }

    /// Append the start-up process scan.
    pub fn seed(&mut self, seed: &Seed) -> Result<(), RecordingError> {
        let json = serde_json::to_vec(seed).expect("Seed serialises");
        self.frame(FRAME_SEED, &json)
    }

    /// Append a clock tick.
    pub fn tick(&mut self, now_ns: u64) -> Result<(), RecordingError> {
        self.frame(FRAME_TICK, &now_ns.to_le_bytes())
    }

    /// Append a loss notice (`lost`: kernel-side losses so far).
    pub fn lost(&mut self, lost: u64) -> Result<(), RecordingError> {
        self.frame(FRAME_LOST, &lost.to_le_bytes())
    }

    /// Append the shutdown time.
    pub fn stop(&mut self, now_ns: u64) -> Result<(), RecordingError> {
        self.frame(FRAME_FINISH, &now_ns.to_le_bytes())
    }

    /// Append processes found gone without an exit event.
    pub fn reaped(&mut self, now_ns: u64, pids: &[u32]) -> Result<(), RecordingError> {
        let mut payload = Vec::with_capacity(8 + 4 * pids.len());
        payload.extend_from_slice(&now_ns.to_le_bytes());
        for p in pids {
            payload.extend_from_slice(&p.to_le_bytes());
        }
        self.frame(FRAME_REAPED, &payload)
    }

    /// Append the edge's answer about a gateway tool process.
    pub fn attribution(
        &mut self,
        a: &crate::session::attribution::Attribution,
    ) -> Result<(), RecordingError> {
        let json = serde_json::to_vec(a).expect("Attribution serialises");
        self.frame(FRAME_ATTRIBUTION, &json)
    }

    /// Write buffered frames to the file.
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.out.flush().map_err(|source| RecordingError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Append the summary and flush everything to the file.
    pub fn finish(mut self, summary: &Summary) -> Result<W, RecordingError> {
        let json = serde_json::to_vec(summary).expect("Summary serialises");
        self.frame(FRAME_SUMMARY, &json)?;
        self.out.flush().map_err(|source| RecordingError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.out)
    }
}

/// One item read from a recording.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Record(Vec<u8>),
    Summary(Summary),
    Seed(Seed),
    Tick(u64),
    Lost(u64),
    Finish(u64),
    /// Processes the daemon found gone (no exit event reached it), at `now_ns`.
    Reaped {
        now_ns: u64,
        pids: Vec<u32>,
    },
    /// What the edge found out about a gateway tool process.
    Attribution(crate::session::attribution::Attribution),
}

/// Reads a recording frame by frame.
pub struct Reader<R: Read> {
    input: R,
    path: PathBuf,
    meta: Meta,
    offset: u64,
    frame: u64,
}

impl Reader<Box<dyn Read + Send>> {
    /// Open a recording file, plain or gzip-compressed.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
        let gzip = std::io::BufRead::fill_buf(&mut file)
            .map_err(io)?
            .starts_with(&[0x1f, 0x8b]);
        let input: Box<dyn Read + Send> = if gzip {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(file),
            ))
        } else {
            Box::new(file)
        };
        Reader::new(input, path)
    }
}

/// Read exactly `buf.len()` bytes; Ok(n) with n < len when the input ends first.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: Read> Reader<R> {
    pub fn new(mut input: R, path: &Path) -> Result<Self, RecordingError> {
        let p = || path.to_owned();
        let io = |source| RecordingError::Io { path: p(), source };
        let mut head = [0u8; 16];
        let got = read_full(&mut input, &mut head).map_err(io)?;
        if got < 8 || &head[..8] != MAGIC {
            return Err(RecordingError::BadMagic { path: p() });
        }
        if got < 16 {
            return Err(RecordingError::Truncated {
                path: p(),
                offset: 0,
                frame: 0,
                needed: 16,
                had: got,
            });
        }
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&version) {
            return Err(RecordingError::UnsupportedVersion {
                path: p(),
                found: version,
            });
        }
        let meta_len = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
        if meta_len > FRAME_MAX {
            return Err(RecordingError::FrameTooLarge {
                path: p(),
                offset: 12,
                frame: 0,
                len: meta_len,
            });
        }
        let mut meta = vec![0u8; meta_len as usize];
        let got = read_full(&mut input, &mut meta).map_err(io)?;
        if got < meta.len() {
            return Err(RecordingError::Truncated {
                path: p(),
                offset: 16,
                frame: 0,
                needed: meta.len(),
                had: got,
            });
        }
        let meta: Meta = serde_json::from_slice(&meta)
            .map_err(|source| RecordingError::BadMeta { path: p(), source })?;
        if !(casa_common::WIRE_VERSION_MIN..=casa_common::WIRE_VERSION).contains(&meta.wire_version)
        {
            return Err(RecordingError::WireVersion {
                path: p(),
                found: meta.wire_version,
                expected: casa_common::WIRE_VERSION,
            });
        }
        Ok(Self {
            input,
            path: p(),
            meta,
            offset: 16 + meta_len as u64,
            frame: 0,
        })
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The next frame; `Ok(None)` at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, RecordingError> {
        let mut head = [0u8; 5];
        let got = read_full(&mut self.input, &mut head).map_err(|source| RecordingError::Io {
            path: self.path.clone(),
            source,
        })?;
        if got == 0 {
            return Ok(None);
        }
        let (offset, frame) = (self.offset, self.frame);
        if got < head.len() {
            return Err(RecordingError::Truncated {
                path: self.path.clone(),
                offset,
                frame,
                needed: head.len(),
                had: got,
            });
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let kind = head[4];
        if len > FRAME_MAX {
            return Err(RecordingError::FrameTooLarge {
                path: self.path.clone(),
                offset,
                frame,
                len,
            });
        }
        let mut payload = vec![0u8; len as usize];
        let got =
            read_full(&mut self.input, &mut payload).map_err(|source| RecordingError::Io {
                path: self.path.clone(),
                source,
            })?;
        if got < payload.len() {
            return Err(RecordingError::Truncated {
                path: self.path.clone(),
                offset,
                frame,
                needed: payload.len(),
                had: got,
            });
        }
        self.offset += 5 + len as u64;
        self.frame += 1;
        match kind {
            FRAME_RECORD => Ok(Some(Frame::Record(payload))),
            FRAME_SUMMARY => serde_json::from_slice(&payload)
                .map(|s| Some(Frame::Summary(s)))
                .map_err(|source| RecordingError::BadJson {
                    path: self.path.clone(),
                    what: "summary",
                    offset,
                    frame,
                    source,
                }),
            FRAME_SEED => serde_json::from_slice(&payload)
                .map(|s| Some(Frame::Seed(s)))
                .map_err(|source| RecordingError::BadJson {
                    path: self.path.clone(),
                    what: "process scan",
                    offset,
                    frame,
                    source,
                }),
            FRAME_TICK | FRAME_LOST | FRAME_FINISH => {
                let Ok(bytes) = <[u8; 8]>::try_from(&payload[..]) else {
                    return Err(RecordingError::BadTime {
                        path: self.path.clone(),
                        offset,
                        frame,
                        kind,
                        len: payload.len(),
                    });
                };
                let v = u64::from_le_bytes(bytes);
                Ok(Some(match kind {
                    FRAME_TICK => Frame::Tick(v),
                    FRAME_LOST => Frame::Lost(v),
                    _ => Frame::Finish(v),
                }))
            }
            FRAME_REAPED if payload.len() >= 8 && (payload.len() - 8).is_multiple_of(4) => {
                let now_ns = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
                let pids = payload[8..]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect();
                Ok(Some(Frame::Reaped { now_ns, pids }))
            }
            FRAME_ATTRIBUTION => serde_json::from_slice(&payload)
                .map(|a| Some(Frame::Attribution(a)))
                .map_err(|source| RecordingError::BadJson {
                    path: self.path.clone(),
                    what: "attribution",
                    offset,
                    frame,
                    source,
                }),
            FRAME_REAPED => Err(RecordingError::BadReaped {
                path: self.path.clone(),
                offset,
                frame,
                len: payload.len(),
            }),
            kind => Err(RecordingError::UnknownFrame {
                path: self.path.clone(),
                offset,
                frame,
                kind,
            }),
        }
    }
}

impl Frame {
    /// The pipeline input this frame recorded (`None` for the summary, which is no input).
    pub fn input(&self) -> Option<crate::pipeline::Input<'_>> {
        use crate::pipeline::Input;
        Some(match self {
            Frame::Record(raw) => Input::Record(raw),
            Frame::Seed(seed) => Input::Scan(seed),
            Frame::Tick(now) => Input::Tick(*now),
            Frame::Lost(total) => Input::Lost(*total),
            Frame::Finish(now) => Input::Shutdown(*now),
            Frame::Reaped { now_ns, pids } => Input::Reaped {
                now_ns: *now_ns,
                pids,
            },
            Frame::Attribution(a) => Input::Attribution(a),
            Frame::Summary(_) => return None,
        })
    }
}

impl Meta {
    /// Metadata for a recording started now on this host.
    pub fn now(clock: BootClock, command: &[std::ffi::OsString], all_processes: bool) -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        Meta {
            wire_version: casa_common::WIRE_VERSION,
            clock,
            casa_version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: read("/proc/sys/kernel/hostname"),
            kernel: read("/proc/sys/kernel/osrelease"),
            started_at: clock.rfc3339(BootClock::boottime_now_ns()),
            command: command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            all_processes,
        }
    }
}

/// A recording file being written, frame by frame, with the frames counted: the one writer
/// behind `casa run --record` (every pipeline input) and `casa record` (kernel records).
pub struct Recorder {
    writer: Writer<FileOut>,
    frames: u64,
}

impl Recorder {
    /// Create (or truncate) `path`; gzip when its name ends in `.gz`.
    pub fn create(path: &Path, meta: &Meta) -> Result<Self, RecordingError> {
        Ok(Self {
            writer: Writer::create(path, meta)?,
            frames: 0,
        })
    }

    /// Append the frame that records `input`.
    pub fn write(&mut self, input: &crate::pipeline::Input<'_>) -> Result<(), RecordingError> {
        use crate::pipeline::Input;
        let w = &mut self.writer;
        match *input {
            Input::Scan(seed) => w.seed(seed),
            Input::Record(raw) => w.record(raw),
            Input::Tick(now) => w.tick(now),
            Input::Lost(total) => w.lost(total),
            Input::Shutdown(now) => w.stop(now),
            Input::Reaped { now_ns, pids } => w.reaped(now_ns, pids),
            Input::Attribution(a) => w.attribution(a),
        }?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.writer.path
    }

    /// Write buffered frames to the file.
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.writer.flush()
    }

    /// Append the summary and close the file.
    pub fn finish(self, summary: &Summary) -> Result<(), RecordingError> {
        self.writer.finish_file(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::build;

    fn meta() -> Meta {
        Meta {
            wire_version: casa_common::WIRE_VERSION,
            clock: BootClock { offset_ns: 1_000 },
            casa_version: "test".into(),
            hostname: "h".into(),
            kernel: "k".into(),
            started_at: "t".into(),
            command: vec!["true".into()],
            all_processes: false,
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), Path::new("mem"), &meta()).unwrap();
        w.record(&build::fork(1, 2, 3)).unwrap();
        w.record(&build::exec(2, 3, "/bin/true", &["true"]))
            .unwrap();
        let mut s = Summary::default();
        s.events.insert("exec".into(), 1);
        w.finish(&s).unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let mut r = Reader::new(&bytes[..], Path::new("mem")).unwrap();
        assert_eq!(r.meta(), &meta());
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::Record(build::fork(1, 2, 3)))
        );
        assert!(matches!(r.next_frame().unwrap(), Some(Frame::Record(_))));
        assert!(
            matches!(r.next_frame().unwrap(), Some(Frame::Summary(s)) if s.events["exec"] == 1)
        );
        assert_eq!(r.next_frame().unwrap(), None);
    }

    #[test]
    fn daemon_frames_round_trip_and_bad_ones_say_where() {
        let seed = Seed {
            now_ns: 5,
            processes: vec![SeedProcess {
                pid: 10,
                ppid: 1,
                comm: b"node".to_vec(),
                exe: b"/opt/n/bin/node".to_vec(),
                filename: b"/opt/n/bin/node".to_vec(),
                argv: vec![b"node".to_vec(), vec![0xff, 0xfe]],
            }],
        };
        let mut w = Writer::new(Vec::new(), Path::new("mem"), &meta()).unwrap();
        w.seed(&seed).unwrap();
        w.tick(7).unwrap();
        w.lost(3).unwrap();
        w.reaped(8, &[41, 42]).unwrap();
        w.stop(9).unwrap();
        let mut bytes = w.finish(&Summary::default()).unwrap();
        let mut r = Reader::new(&bytes[..], Path::new("mem")).unwrap();
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Seed(seed.clone())));
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Tick(7)));
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Lost(3)));
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::Reaped {
                now_ns: 8,
                pids: vec![41, 42]
            })
        );
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Finish(9)));
        assert!(matches!(r.next_frame().unwrap(), Some(Frame::Summary(_))));
        assert_eq!(seed.processes[0].exec().argv[1].as_bytes(), &[0xff, 0xfe]);
        // A tick frame of the wrong length is a located error, not a guess.
        let head = Writer::new(Vec::new(), Path::new("m"), &meta())
            .unwrap()
            .out
            .len();
        bytes.truncate(head);
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.push(FRAME_TICK);
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut r = Reader::new(&bytes[..], Path::new("m.rec")).unwrap();
        let e = r.next_frame().unwrap_err().to_string();
        assert!(
            e.contains("m.rec: frame 0 at byte") && e.contains("expected 8"),
            "{e}"
        );
    }

    #[test]
    fn gzip_recordings_round_trip_and_a_cut_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("casa-rec-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.rec.gz");
        let mut w = Writer::create(&path, &meta()).unwrap();
        for i in 0..1000 {
            w.record(&build::exec(i, 1, "/usr/bin/true", &["true"]))
                .unwrap();
        }
        w.finish_file(&Summary::default()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
        let mut r = Reader::open(&path).unwrap();
        let mut n = 0;
        while let Some(f) = r.next_frame().unwrap() {
            n += matches!(f, Frame::Record(_)) as u32;
        }
        assert_eq!(n, 1000);
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let mut r = Reader::open(&path).unwrap();
        let err = loop {
            match r.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a cut gzip recording read as complete"),
                Err(e) => break e,
            }
        };
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn attribution_frames_round_trip_and_version_3_files_still_read() {
        use crate::session::attribution::Attribution;
        let found = Attribution {
            pid: 4242,
            exec_ns: 7_000_000_123,
            transcript_session: Some("h7-A".into()),
            message: Some("[case:GA] it's \"quoted\"\n".into()),
        };
        let none = Attribution {
            pid: 4243,
            exec_ns: 8,
            ..Default::default()
        };
        let mut w = Writer::new(Vec::new(), Path::new("mem"), &meta()).unwrap();
        w.attribution(&found).unwrap();
        w.attribution(&none).unwrap();
        let bytes = w.finish(&Summary::default()).unwrap();
        assert_eq!(&bytes[8..12], &4u32.to_le_bytes(), "written as version 4");
        let mut r = Reader::new(&bytes[..], Path::new("mem")).unwrap();
        let first = r.next_frame().unwrap().unwrap();
        assert_eq!(first, Frame::Attribution(found.clone()));
        assert!(
            matches!(first.input(), Some(crate::pipeline::Input::Attribution(a)) if *a == found)
        );
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Attribution(none)));
        // A bad payload is a located error.
        let mut w = Writer::new(Vec::new(), Path::new("m"), &meta()).unwrap();
        w.frame(FRAME_ATTRIBUTION, b"{\"pid\":1}").unwrap();
        let bytes = w.out;
        let mut r = Reader::new(&bytes[..], Path::new("m.rec")).unwrap();
        let e = r.next_frame().unwrap_err().to_string();
        assert!(e.contains("bad attribution in frame 0"), "{e}");
        // Version 3 (before this frame existed) still reads.
        let mut old = sample();
        old[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(Reader::new(&old[..], Path::new("v3")).is_ok());
    }

    #[test]
    fn version_1_recordings_still_read() {
        let mut bytes = sample();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert!(Reader::new(&bytes[..], Path::new("v1")).is_ok());
    }

    #[test]
    fn every_truncation_is_a_located_error_after_the_complete_frames() {
        let bytes = sample();
        let full = {
            let mut r = Reader::new(&bytes[..], Path::new("mem")).unwrap();
            let mut n = 0;
            while r.next_frame().unwrap().is_some() {
                n += 1;
            }
            n
        };
        for cut in 0..bytes.len() {
            let mut frames = 0;
            let result = Reader::new(&bytes[..cut], Path::new("mem")).and_then(|mut r| {
                while r.next_frame()?.is_some() {
                    frames += 1;
                }
                Ok(())
            });
            match result {
                Err(RecordingError::Truncated { .. } | RecordingError::BadMagic { .. }) => {
                    assert!(frames < full)
                }
                Ok(()) => assert!(frames < full, "cut at {cut} read as complete"),
                Err(e) => panic!("cut at {cut}: unexpected error {e}"),
            }
        }
    }

    #[test]
    fn truncation_message_says_where() {
        let bytes = sample();
        let cut = bytes.len() - 3;
        let mut r = Reader::new(&bytes[..cut], Path::new("run.rec")).unwrap();
        let err = loop {
            match r.next_frame() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error"),
                Err(e) => break e,
            }
        };
        let msg = err.to_string();
        assert!(msg.starts_with("run.rec: truncated at byte"), "{msg}");
        assert!(msg.contains("(frame 2)"), "{msg}");
    }

    #[test]
    fn wire_versions_one_and_two_read_others_refused_clearly() {
        for (wire, ok) in [(0u16, false), (1, true), (2, true), (3, false)] {
            let m = Meta {
                wire_version: wire,
                ..meta()
            };
            let bytes = Writer::new(Vec::new(), Path::new("mem"), &m)
                .unwrap()
                .finish(&Summary::default())
                .unwrap();
            match Reader::new(&bytes[..], Path::new("w.rec")) {
                Ok(r) => assert!(ok && r.meta().wire_version == wire, "wire {wire} read"),
                Err(e) => {
                    assert!(!ok, "wire {wire} refused: {e}");
                    assert!(
                        matches!(e, RecordingError::WireVersion { found, .. } if found == wire)
                    );
                    assert!(e.to_string().contains("decodes versions 1 to 2"), "{e}");
                }
            }
        }
    }

    #[test]
    fn rejects_other_files_and_versions() {
        assert!(matches!(
            Reader::new(&b"{\"kind\":1}\n"[..], Path::new("x")),
            Err(RecordingError::BadMagic { .. })
        ));
        let mut bytes = sample();
        bytes[8] = 9;
        assert!(matches!(
            Reader::new(&bytes[..], Path::new("x")),
            Err(RecordingError::UnsupportedVersion { found: 9, .. })
        ));
    }

    #[test]
    fn oversized_frame_rejected_without_allocating() {
        let mut bytes = Writer::new(Vec::new(), Path::new("m"), &meta())
            .unwrap()
            .out;
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.push(FRAME_RECORD);
        let mut r = Reader::new(&bytes[..], Path::new("m")).unwrap();
        assert!(matches!(
            r.next_frame(),
            Err(RecordingError::FrameTooLarge { .. })
        ));
    }
}

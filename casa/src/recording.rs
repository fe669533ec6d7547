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
//! ```
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
/// Version of the framing described in the module docs.
pub const FORMAT_VERSION: u32 = 1;
/// Frame type of a kernel record.
pub const FRAME_RECORD: u8 = 1;
/// Frame type of the end-of-recording summary.
pub const FRAME_SUMMARY: u8 = 2;
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
        "{path}: recording format version {found} is not supported (this casa reads {FORMAT_VERSION})"
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error("{path}: bad metadata at byte 16: {source}")]
    BadMeta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: records have wire version {found}, this casa decodes {expected}")]
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
    #[error("{path}: bad summary in frame {frame} at byte {offset}: {source}")]
    BadSummary {
        path: PathBuf,
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

impl Writer<BufWriter<File>> {
    /// Create (or truncate) `path` and write the file header.
    pub fn create(path: &Path, meta: &Meta) -> Result<Self, RecordingError> {
        let file = File::create(path).map_err(|source| RecordingError::Io {
            path: path.to_owned(),
            source,
        })?;
        Writer::new(BufWriter::with_capacity(1 << 20, file), path, meta)
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
}

/// Reads a recording frame by frame.
pub struct Reader<R: Read> {
    input: R,
    path: PathBuf,
    meta: Meta,
    offset: u64,
    frame: u64,
}

impl Reader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let file = File::open(path).map_err(|source| RecordingError::Io {
            path: path.to_owned(),
            source,
        })?;
        Reader::new(BufReader::with_capacity(1 << 20, file), path)
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
        if version != FORMAT_VERSION {
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
        if meta.wire_version != casa_common::WIRE_VERSION {
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
                .map_err(|source| RecordingError::BadSummary {
                    path: self.path.clone(),
                    offset,
                    frame,
                    source,
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

//! The chain's exact bytes: canonical JSON, the record hash, the line of a sealed record, the
//! head file's content and the marker records (see the parent module's docs for the format).
//!
//! Both sides use only this module to know what a chained line is: the writer
//! ([`super::writer`]) builds lines with `seal_fields`, the verifier
//! ([`super::verify`](mod@super::verify)) rebuilds them with [`canonical`], [`record_hash`]
//! and `line_of` and reads lines with `classify`.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{ChainError, io_err};

/// `prev_hash` of the first record of a segment.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Fields the chain adds; a record given to [`super::Chain::seal`] must not have them.
pub const RESERVED_FIELDS: [&str; 5] = [
    "seq",
    "prev_hash",
    "hash",
    "segment_start",
    "incomplete_lines",
];

/// Most lines one marker declares (interrupted writes); verification accepts no more either.
pub const MAX_DECLARED: usize = 64;

/// The head file of `log`: `<log>.head`.
pub fn head_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".head");
    PathBuf::from(s)
}

// ---------------------------------------------------------------------------------------------
// Canonical bytes and hashes

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

/// Hex SHA-256 of `bytes` (how a marker names a declared line).
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// 64 lowercase hex digits.
pub(super) fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The line of a record: its canonical body with `hash` appended as the last member.
pub(super) fn line_of(body: &[u8], hash: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(body.len() + 76);
    line.extend_from_slice(&body[..body.len() - 1]);
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}");
    line
}

/// A record's members as a JSON object, checked to have none of the [`RESERVED_FIELDS`].
pub(super) fn record_fields(record: Value) -> Result<Map<String, Value>, ChainError> {
    let Value::Object(map) = record else {
        return Err(ChainError::NotAnObject);
    };
    match RESERVED_FIELDS.iter().find(|k| map.contains_key(**k)) {
        Some(k) => Err(ChainError::ReservedField(k)),
        None => Ok(map),
    }
}

/// Seal a record's members as record `seq` after `prev_hash`: its line (without the newline)
/// and its hash.
pub(super) fn seal_fields(
    mut fields: Map<String, Value>,
    seq: u64,
    prev_hash: &str,
) -> (Vec<u8>, String) {
    fields.insert("seq".into(), seq.into());
    fields.insert("prev_hash".into(), prev_hash.into());
    let body = canonical(&Value::Object(fields));
    let hash = record_hash(&body, prev_hash);
    (line_of(&body, &hash), hash)
}

// ---------------------------------------------------------------------------------------------
// Reading a line

/// A line with the chain's fields (not verified).
#[derive(Debug)]
pub(super) struct Chained {
    /// Every member, `hash` included.
    pub map: Map<String, Value>,
    pub seq: u64,
    pub prev: String,
    pub hash: String,
}

/// Why a line is not a chained record.
#[derive(Debug)]
pub(super) enum Unchained {
    /// Not JSON at all.
    NotJson(serde_json::Error),
    /// JSON, but not an object.
    NotAnObject,
    /// An object without a valid `seq`, `prev_hash` and `hash`.
    NoChainFields,
}

/// The chain's fields of a line, or why it is not a chained record. The one definition of
/// "looks like a chained record", for the resuming writer and the verifier alike.
pub(super) fn classify(raw: &[u8]) -> Result<Chained, Unchained> {
    let v: Value = serde_json::from_slice(raw).map_err(Unchained::NotJson)?;
    let Value::Object(map) = v else {
        return Err(Unchained::NotAnObject);
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
        return Err(Unchained::NoChainFields);
    };
    let (prev, hash) = (prev.to_owned(), hash.to_owned());
    Ok(Chained {
        map,
        seq,
        prev,
        hash,
    })
}

/// The marker members of a chained record, as found (a verifier reports what is wrong with
/// them rather than refusing to read them).
pub(super) struct MarkerFields<'a> {
    /// `segment_start` (a writer only writes `true`).
    pub segment_start: Option<&'a Value>,
    /// `reason`, when it is a string.
    pub reason: Option<&'a str>,
    /// `previous.last_hash`, when it is a string.
    pub previous_last_hash: Option<&'a str>,
    /// `incomplete_lines`.
    pub incomplete_lines: Option<&'a Value>,
}

impl Chained {
    /// The members a marker has (all `None` for an ordinary record).
    pub fn marker(&self) -> MarkerFields<'_> {
        MarkerFields {
            segment_start: self.map.get("segment_start"),
            reason: self.map.get("reason").and_then(Value::as_str),
            previous_last_hash: self
                .map
                .get("previous")
                .and_then(|p| p.get("last_hash"))
                .and_then(Value::as_str),
            incomplete_lines: self.map.get("incomplete_lines"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The head file

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
    /// No record yet.
    pub(super) fn empty() -> Self {
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

    /// The head file's bytes: its JSON and a newline.
    pub(super) fn to_file_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec(self).expect("a head serialises");
        text.push(b'\n');
        text
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

    /// `seq …, hash …, N lines, N bytes`, for messages.
    pub(super) fn describe(&self) -> String {
        format!(
            "seq {}, hash {}, {}, {} bytes",
            self.seq,
            self.hash,
            plural(self.lines, "line", "lines"),
            self.bytes
        )
    }
}

/// `1 line`, `2 lines`.
pub(super) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

// ---------------------------------------------------------------------------------------------
// Marker records

/// A marker record: what a resuming writer seals in front of its first record (see the
/// parent module's docs). It has no `seq`, `prev_hash` or `hash` yet; sealing adds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Marker {
    /// A new segment starts (seq 1, prev_hash zeros).
    SegmentStart(SegmentStart),
    /// The chain continues; lines before this record are left by interrupted writes.
    Interrupted(Interrupted),
}

impl Marker {
    /// Whether sealing it starts a new segment.
    pub fn starts_segment(&self) -> bool {
        matches!(self, Marker::SegmentStart(_))
    }

    /// Its members, to seal.
    pub(super) fn fields(&self) -> Map<String, Value> {
        // Only strings, integers, options and vectors of them: serialising cannot fail, and
        // the result is an object.
        match serde_json::to_value(self).expect("a marker serialises") {
            Value::Object(map) => map,
            _ => unreachable!("a marker is a struct"),
        }
    }
}

/// `"segment_start": true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct True;

impl Serialize for True {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(true)
    }
}

/// `{"segment_start":true,"reason":…,"previous":{…},["incomplete_lines":[…],]"timestamp":…}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentStart {
    pub segment_start: True,
    /// Why the previous chain could not be continued.
    pub reason: String,
    /// Where the log stood when the segment started.
    pub previous: Previous,
    /// Lines left by interrupted writes just before the marker (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomplete_lines: Vec<IncompleteLine>,
    /// When the writer resumed (RFC 3339, UTC).
    pub timestamp: String,
}

/// `previous` of a segment start: the log as the resuming writer found it. Every member is
/// written, `null` when unknown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Previous {
    /// `seq` of the log's last chained record.
    pub last_seq: Option<u64>,
    /// `hash` of the log's last chained record: verification requires it to be the hash of
    /// the record before the marker, binding the segments together.
    pub last_hash: Option<String>,
    /// Lines in the log (`null`: the log could not be read).
    pub lines: Option<u64>,
    /// The log's length.
    pub bytes: u64,
    /// The head file found, when it could be read.
    pub head: Option<Head>,
}

/// `{"reason":…,"incomplete_lines":[…],"timestamp":…}`: a marker that continues the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    /// Which lines, and that they were left by an interrupted write.
    pub reason: String,
    /// The lines.
    pub incomplete_lines: Vec<IncompleteLine>,
    /// When the writer resumed (RFC 3339, UTC).
    pub timestamp: String,
}

/// One line a marker declares: its number, length and SHA-256 (without the newline).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IncompleteLine {
    pub line: u64,
    pub bytes: u64,
    pub sha256: String,
}

impl IncompleteLine {
    /// The declaration as a verifier reads it from a marker's `incomplete_lines` item:
    /// `None` unless it has all three members with the right types.
    pub(super) fn read(item: &Value) -> Option<Self> {
        Some(Self {
            line: item.get("line")?.as_u64()?,
            bytes: item.get("bytes")?.as_u64()?,
            sha256: item.get("sha256")?.as_str()?.to_owned(),
        })
    }
}

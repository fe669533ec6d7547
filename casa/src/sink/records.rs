//! The JSON records of the four logs, field for field as the original CASA writes them
//! (reference §9), plus fields casa adds (marked below). Every record is one line.
//!
//! * `events.log` — [`EventRecord`]: one line per event accepted into a session.
//!   `timestamp, pid, tid, ppid, uid, type (EXECVE|OPENAT|CONNECT|EXIT), comm` and, by type,
//!   `path, args` / `path, flags, mode` / `addr, port`; added: `session_id`, `result` (open,
//!   connect: fd or `-errno`), `raw_path` (open: the caller's string, when it differs from the
//!   resolved `path`), `status`/`signal` (exit).
//! * `audit.log`, `alert.log` — [`FullLogRecord`]: `timestamp, session_id, event{type, pid,
//!   ppid, uid, comm, …}, decision{action, score, log_threshold, alert_threshold,
//!   triggered_rules[{name, expr, weight}]}`; `triggered_rules` lists only the rules this event
//!   newly triggered, `score` is the session's running total; added: `trace_id`, `span_id` of
//!   the session's span.
//! * `sessions.log` — [`SessionLogRecord`]: `timestamp, session_id, reason
//!   (periodic_flush|session_closed|shutdown), session{created_at, updated_at, closed_at,
//!   recent_events[…]}`; added: `session.started_at`, `session.kind`, `session.leader_pid`, `session.close_reason`,
//!   `session.joined_midway`, `session.incomplete`, `session.final_score`, `session.final_action`,
//!   `session.invocation` (argv of the exec that started the session).

use serde::Serialize;

use crate::event::{Detail, Event, SockAddr};

/// CASA's event type name.
pub fn type_name(ev: &Event) -> &'static str {
    match &ev.detail {
        Detail::Exec(_) => "EXECVE",
        Detail::Open(_) => "OPENAT",
        Detail::Connect(_) => "CONNECT",
        Detail::Exit(_) => "EXIT",
        Detail::Fork(_) => "FORK",
        // Not logged yet (ignored as `not_yet_analysed` before any sink sees them).
        Detail::Activity(_) => "ACTIVITY",
    }
}

/// The per-type fields shared by events.log and the `event` of audit/alert records.
#[derive(Serialize, Default)]
pub struct EventFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// casa: the open's/connect's result (fd, 0, or `-errno`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<i64>,
    /// casa: the path string the caller passed to `openat`, when it differs from `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<String>,
    /// casa: exit status / terminating signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<u8>,
}

impl EventFields {
    pub fn of(ev: &Event) -> Self {
        match &ev.detail {
            Detail::Exec(x) => Self {
                path: Some(x.path.to_text()),
                args: Some(x.argv.iter().map(|a| a.to_text()).collect()),
                ..Self::default()
            },
            Detail::Open(o) => {
                let path = o.best_path().to_text();
                let raw = o.raw_path.to_text();
                Self {
                    raw_path: (raw != path).then_some(raw),
                    path: Some(path),
                    flags: Some(o.flags),
                    mode: Some(o.mode),
                    result: Some(o.result),
                    ..Self::default()
                }
            }
            Detail::Connect(c) => {
                let (addr, port) = match &c.addr {
                    SockAddr::Inet { addr, port, .. } => (addr.to_string(), *port),
                    SockAddr::Unix { path } => (format!("unix:{}", path.to_text()), 0),
                    _ => (String::new(), 0),
                };
                Self {
                    addr: Some(addr),
                    port: Some(port),
                    result: Some(c.result.into()),
                    ..Self::default()
                }
            }
            Detail::Exit(x) => Self {
                status: x.status,
                signal: x.signal,
                ..Self::default()
            },
            Detail::Fork(_) | Detail::Activity(_) => Self::default(),
        }
    }
}

/// One `events.log` line.
#[derive(Serialize)]
pub struct EventRecord {
    pub timestamp: String,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub comm: String,
    #[serde(flatten)]
    pub fields: EventFields,
    /// casa: the session the event was accepted into.
    pub session_id: u64,
}

impl EventRecord {
    pub fn new(ev: &Event, timestamp: String, session_id: u64) -> Self {
        Self {
            timestamp,
            pid: ev.pid,
            tid: ev.tid,
            ppid: ev.ppid,
            uid: ev.uid,
            kind: type_name(ev),
            comm: ev.comm.to_text(),
            fields: EventFields::of(ev),
            session_id,
        }
    }
}

/// The `event` object of an audit/alert record.
#[derive(Serialize)]
pub struct AuditEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: String,
    #[serde(flatten)]
    pub fields: EventFields,
}

impl AuditEvent {
    pub fn new(ev: &Event) -> Self {
        Self {
            kind: type_name(ev),
            pid: ev.pid,
            ppid: ev.ppid,
            uid: ev.uid,
            comm: ev.comm.to_text(),
            fields: EventFields::of(ev),
        }
    }
}

/// A rule in `decision.triggered_rules`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct TriggeredRuleRecord {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub expr: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub weight: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `decision` of an audit/alert record.
#[derive(Serialize, Clone, Debug)]
pub struct DecisionRecord {
    pub action: &'static str,
    pub score: i64,
    pub log_threshold: i64,
    pub alert_threshold: i64,
    pub triggered_rules: Vec<TriggeredRuleRecord>,
}

/// One `audit.log` / `alert.log` line.
#[derive(Serialize)]
pub struct FullLogRecord {
    pub timestamp: String,
    pub session_id: u64,
    /// casa: the session's OpenTelemetry trace id and span id (hex), linking the record to its
    /// trace in Jaeger.
    pub trace_id: String,
    pub span_id: String,
    pub event: AuditEvent,
    pub decision: DecisionRecord,
    /// casa: the response this decision ordered, or that ended (`crate::respond`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<crate::respond::ResponseRecord>,
}

/// `session` of a sessions.log line.
#[derive(Serialize)]
pub struct SessionBody<'a> {
    pub created_at: String,
    /// casa: when the session started (the invocation's exec; the span's start time).
    pub started_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    pub recent_events: Vec<crate::context::RecentEventSorted<'a>>,
    /// casa additions.
    pub kind: &'static str,
    pub leader_pid: u32,
    /// casa: argv of the exec that started the session (the CLI invocation, or a gateway
    /// session's first tool process), redacted like every argv.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invocation: Vec<String>,
    /// casa: how the gateway tool processes in this CLI session were attributed to it:
    /// `transcript` (the runtime's transcript named this session) or `recency` (the newest
    /// open CLI session; used for at least one). Omitted when none joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub joined_midway: bool,
    /// casa: the kernel lost events while the session was open (ring buffer full).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// casa: records the kernel lost while the session was open (the total of every kind:
    /// the kernel's count does not say which kind; every session open at that moment
    /// counts the whole loss). Omitted when 0.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub events_lost: u64,
    /// casa: the evidence for `history.tainted_file_*`, `session <id> wrote <path> after
    /// reading <source>` per tainted file of an earlier session this one opened or ran.
    /// Omitted when empty.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub taint_origins: &'a [String],
    pub final_score: i64,
    pub final_action: &'static str,
}

/// One `sessions.log` line.
#[derive(Serialize)]
pub struct SessionLogRecord<'a> {
    pub timestamp: String,
    pub session_id: u64,
    pub reason: &'static str,
    pub session: SessionBody<'a>,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

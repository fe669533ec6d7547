//! OCSF output (`--ocsf-log FILE`): the records of the four logs, mapped to OCSF 1.8.0 events,
//! one JSON object per line.
//!
//! One more consumer at the end of the pipeline, beside the four logs: [`super::FileSinks`]
//! hands every [`Record`] it writes to an [`OcsfLog`] as well, which maps it here and appends
//! the result through the same writer as the other logs (so a write failure is counted the
//! same way and writing resumes when the fault clears). The mapping ([`OcsfMapper`]) is pure:
//! records in, OCSF values out, with time taken from the records' timestamps only, so a
//! replay gives the same lines every time.
//!
//! | casa record | OCSF event |
//! |---|---|
//! | `events.log` `EXECVE` | Process Activity (1007), Launch (1) |
//! | `events.log` `EXIT` | Process Activity (1007), Terminate (2) |
//! | `events.log` `OPENAT` | File System Activity (1001), Open (14) |
//! | `events.log` `CONNECT` | Network Activity (4001), Open (1) |
//! | `audit.log` record (a LOG or ALERT decision) | Detection Finding (2004): Create (1) on the session's first, Update (2) on each later one |
//! | `sessions.log` close of a session with a finding | Detection Finding (2004), Close (3) |
//!
//! Other kinds of event (`FORK`, …) and periodic session snapshots produce nothing; an
//! `alert.log` record is the same decision as its `audit.log` twin and is not mapped twice.
//! Every event carries the session as `actor.session.uid` (OCSF 1.8.0) and as
//! `ai_agent.instance_uid` (top level, and in each finding evidence): `ai_agent` is an OCSF
//! 1.9.0-dev object that 1.8.0 does not have ([`DEV_FIELDS`]).

use std::{collections::HashMap, io, path::Path};

use serde::Serialize;

use super::{
    OpenLog, Record,
    records::{AuditEvent, EventFields, EventRecord, FullLogRecord, SessionLogRecord},
};

/// The OCSF schema version the events follow (`metadata.version`).
pub const OCSF_VERSION: &str = "1.8.0";

/// Attributes casa writes that OCSF 1.8.0 does not define (they are OCSF 1.9.0-dev), as
/// JSON paths: `ai_agent` at the top level of every event, and in every finding evidence.
pub const DEV_FIELDS: [&str; 2] = ["ai_agent", "evidences[].ai_agent"];

/// Most evidences (and related analytics) one finding lists: the first ones are kept.
const MAX_EVIDENCES: usize = 64;
/// Most processes remembered per session to name an event's parent process.
const MAX_PROCESSES: usize = 4096;

/// What the mapping needs besides the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcsfConfig {
    /// The monitored host (`device.hostname`): the live host, or the recording's.
    pub hostname: String,
    /// The agent runtime casa watches (`ai_agent.uid`, `ai_agent.name`), e.g. `openclaw`.
    pub agent: String,
}

// ---------------------------------------------------------------------------------------
// OCSF objects (only the attributes casa fills).

/// `metadata.product`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Product {
    pub name: &'static str,
    pub vendor_name: &'static str,
    pub version: &'static str,
}

/// `metadata`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Metadata {
    pub version: &'static str,
    pub product: Product,
    /// The profiles the event uses: `host` (it names the host, `device`, and the process
    /// that acted, `actor`; Network Activity has these attributes only through it).
    pub profiles: [&'static str; 1],
    /// The casa log the event was mapped from (`events`, `audit`, `sessions`).
    pub log_name: &'static str,
    /// The record's own timestamp (RFC 3339, nanoseconds).
    pub original_time: String,
    /// Findings: the session's trace id, which links the finding to its span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_uid: Option<String>,
}

/// `device`: the monitored host.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Device {
    /// 0: Unknown (casa does not know the host's kind).
    pub type_id: u8,
    pub hostname: String,
}

/// `user` (of a process).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct User {
    /// The numeric uid, as a string.
    pub uid: String,
}

/// `file` (an opened file, or a process's executable).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct File {
    pub name: String,
    pub path: String,
    /// 0: Unknown (an open's target may be anything), 1: Regular File (an executable).
    pub type_id: u8,
}

impl File {
    fn at(path: &str, type_id: u8) -> Self {
        let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path);
        Self {
            name: name.to_owned(),
            path: path.to_owned(),
            type_id,
        }
    }
}

/// `process`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Process {
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_process: Option<Box<Process>>,
}

/// `session` (casa's session: the agent invocation the activity belongs to).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Session {
    pub uid: String,
}

/// `actor`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Actor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    pub session: Session,
}

/// `src_endpoint` / `dst_endpoint`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct NetworkEndpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// A unix socket's path, or `unknown` for an address casa could not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `connection_info`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ConnectionInfo {
    /// 2: Outbound.
    pub direction_id: u8,
    pub direction: &'static str,
}

/// `ai_agent` (OCSF 1.9.0-dev): the agent runtime and the casa session it ran in.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct AiAgent {
    pub uid: String,
    pub name: String,
    /// The casa session id.
    pub instance_uid: String,
}

/// `analytic`: one rule of `rules.json` that fired.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Analytic {
    /// The rule's name.
    pub name: String,
    /// The rule's name (rule names are unique in a rules file).
    pub uid: String,
    /// The rule's CEL expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// 1: Rule.
    pub type_id: u8,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `finding_info`.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct FindingInfo {
    /// The session's trace id: one finding per session, stable over its updates.
    pub uid: String,
    pub title: String,
    pub desc: String,
    pub types: Vec<&'static str>,
    /// The first decision's time.
    pub created_time: i64,
    pub first_seen_time: i64,
    /// The latest decision's time.
    pub last_seen_time: i64,
    pub modified_time: i64,
    /// The rule that opened the finding (the first that fired in the first decision).
    pub analytic: Analytic,
    /// Every rule that fired in the session's decisions so far, in order.
    pub related_analytics: Vec<Analytic>,
}

/// One `evidences` item: the event a decision was made on.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Evidence {
    /// The event's casa type (`EXECVE`, `OPENAT`, `CONNECT`, `EXIT`).
    pub name: &'static str,
    pub actor: Actor,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<NetworkEndpoint>,
    /// OCSF 1.9.0-dev.
    pub ai_agent: AiAgent,
}

/// The attributes every OCSF event has.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Base {
    pub class_uid: u32,
    pub class_name: &'static str,
    pub category_uid: u8,
    pub category_name: &'static str,
    pub activity_id: u8,
    pub activity_name: &'static str,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: u32,
    pub type_name: String,
    pub severity_id: u8,
    pub severity: &'static str,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_id: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub metadata: Metadata,
    pub device: Device,
    /// OCSF 1.9.0-dev.
    pub ai_agent: AiAgent,
}

/// Process Activity (1007).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ProcessActivity {
    #[serde(flatten)]
    pub base: Base,
    pub actor: Actor,
    pub process: Process,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// File System Activity (1001).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct FileActivity {
    #[serde(flatten)]
    pub base: Base,
    pub actor: Actor,
    pub file: File,
}

/// Network Activity (4001).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct NetworkActivity {
    #[serde(flatten)]
    pub base: Base,
    pub actor: Actor,
    pub dst_endpoint: NetworkEndpoint,
    pub connection_info: ConnectionInfo,
}

/// Detection Finding (2004).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct DetectionFinding {
    #[serde(flatten)]
    pub base: Base,
    pub finding_info: FindingInfo,
    pub evidences: Vec<Evidence>,
    /// The session's score (its running total; the final score at Close).
    pub risk_score: i64,
    pub risk_level_id: u8,
    pub risk_level: &'static str,
    /// The session reached the ALERT threshold.
    pub is_alert: bool,
    pub start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
}

/// One OCSF event.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum OcsfEvent {
    /// From an `EXECVE` or `EXIT` event.
    Process(Box<ProcessActivity>),
    /// From an `OPENAT` event.
    File(Box<FileActivity>),
    /// From a `CONNECT` event.
    Network(Box<NetworkActivity>),
    /// From a decision (audit record) or the close of a session that had one.
    Finding(Box<DetectionFinding>),
}

impl OcsfEvent {
    /// The event's attributes common to every class.
    pub fn base(&self) -> &Base {
        match self {
            OcsfEvent::Process(e) => &e.base,
            OcsfEvent::File(e) => &e.base,
            OcsfEvent::Network(e) => &e.base,
            OcsfEvent::Finding(e) => &e.base,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Classes, activities, severities.

struct Class {
    uid: u32,
    name: &'static str,
    category_uid: u8,
    category_name: &'static str,
}

const PROCESS_ACTIVITY: Class = Class {
    uid: 1007,
    name: "Process Activity",
    category_uid: 1,
    category_name: "System Activity",
};
const FILE_ACTIVITY: Class = Class {
    uid: 1001,
    name: "File System Activity",
    category_uid: 1,
    category_name: "System Activity",
};
const NETWORK_ACTIVITY: Class = Class {
    uid: 4001,
    name: "Network Activity",
    category_uid: 4,
    category_name: "Network Activity",
};
const DETECTION_FINDING: Class = Class {
    uid: 2004,
    name: "Detection Finding",
    category_uid: 2,
    category_name: "Findings",
};

/// `severity_id` and its caption.
#[derive(Clone, Copy)]
struct Severity(u8, &'static str);

const INFORMATIONAL: Severity = Severity(1, "Informational");
const MEDIUM: Severity = Severity(3, "Medium");
const HIGH: Severity = Severity(4, "High");

/// A decision's action → (severity, `risk_level_id`, `risk_level`).
fn grade(action: &str) -> (Severity, u8, &'static str) {
    if action == "ALERT" {
        (HIGH, 3, "High")
    } else {
        (MEDIUM, 2, "Medium")
    }
}

/// `status_id` / `status` of an activity: `Success` or `Failure`.
const SUCCESS: (u8, &str) = (1, "Success");
const FAILURE: (u8, &str) = (2, "Failure");

/// The errno of `EINPROGRESS` (a non-blocking connect under way).
const EINPROGRESS: i64 = 115;

// ---------------------------------------------------------------------------------------
// Time.

/// Milliseconds since the Unix epoch of an RFC 3339 UTC timestamp as casa writes them
/// (`2026-05-21T10:17:00.123456789Z`; fraction optional). `None`: not that form.
pub fn unix_ms(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = ts.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let frac = &ts[19..ts.len() - 1];
    let ms = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => {
            let mut digits = f.bytes().take(3).map(|c| i64::from(c - b'0'));
            let mut v = 0;
            for _ in 0..3 {
                v = v * 10 + digits.next().unwrap_or(0);
            }
            v
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of `clock`'s
/// `civil_from_days`, H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------------------
// The mapping.

/// What casa learnt about a process from its exec (to name it as a parent).
#[derive(Clone, Debug)]
struct Known {
    name: String,
    path: Option<String>,
    cmd_line: Option<String>,
}

/// A session's open finding.
#[derive(Debug)]
struct Finding {
    uid: String,
    created: i64,
    last: i64,
    score: i64,
    action: &'static str,
    analytics: Vec<Analytic>,
    evidences: Vec<Evidence>,
}

/// What the mapping keeps about one open session.
#[derive(Default, Debug)]
struct SessionState {
    processes: HashMap<u32, Known>,
    finding: Option<Finding>,
}

/// Maps casa's records to OCSF events, remembering per open session the processes it saw
/// start (to name parents) and its finding (Create, Update, Close). State is dropped when the
/// session closes.
#[derive(Debug)]
pub struct OcsfMapper {
    cfg: OcsfConfig,
    sessions: HashMap<u64, SessionState>,
}

impl OcsfMapper {
    /// A mapper with no session state yet.
    pub fn new(cfg: OcsfConfig) -> Self {
        Self {
            cfg,
            sessions: HashMap::new(),
        }
    }

    /// Sessions whose state is held (open sessions that had an event or a decision).
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The OCSF events of one record (none, or one).
    pub fn map(&mut self, record: Record<'_>) -> Option<OcsfEvent> {
        match record {
            Record::Event(e) => self.event(e),
            Record::Audit(r) => self.decision(r),
            // The same decision as its audit record.
            Record::Alert(_) => None,
            Record::Session(s) => self.session(s),
        }
    }

    fn ai_agent(&self, session: u64) -> AiAgent {
        AiAgent {
            uid: self.cfg.agent.clone(),
            name: self.cfg.agent.clone(),
            instance_uid: session.to_string(),
        }
    }

    fn base(
        &self,
        class: &Class,
        (activity_id, activity_name): (u8, &'static str),
        severity: Severity,
        timestamp: &str,
        log_name: &'static str,
        session: u64,
    ) -> Base {
        Base {
            class_uid: class.uid,
            class_name: class.name,
            category_uid: class.category_uid,
            category_name: class.category_name,
            activity_id,
            activity_name,
            type_uid: class.uid * 100 + u32::from(activity_id),
            type_name: format!("{}: {activity_name}", class.name),
            severity_id: severity.0,
            severity: severity.1,
            time: unix_ms(timestamp).unwrap_or(0),
            status_id: None,
            status: None,
            status_code: None,
            status_detail: None,
            message: None,
            metadata: Metadata {
                version: OCSF_VERSION,
                product: Product {
                    name: "casa",
                    vendor_name: "casa",
                    version: env!("CARGO_PKG_VERSION"),
                },
                profiles: ["host"],
                log_name,
                original_time: timestamp.to_owned(),
                correlation_uid: None,
            },
            device: Device {
                type_id: 0,
                hostname: self.cfg.hostname.clone(),
            },
            ai_agent: self.ai_agent(session),
        }
    }

    /// The process an event is about, with its parent when casa saw the parent start.
    fn process(&self, session: u64, ev: Subject<'_>) -> Process {
        let known = self
            .sessions
            .get(&session)
            .and_then(|s| s.processes.get(&ev.pid));
        let parent = self
            .sessions
            .get(&session)
            .and_then(|s| s.processes.get(&ev.ppid));
        let exec = ev.fields.args.is_some();
        Process {
            pid: ev.pid,
            name: Some(ev.comm.to_owned()),
            cmd_line: if exec {
                ev.fields.args.as_ref().map(|a| a.join(" "))
            } else {
                known.and_then(|k| k.cmd_line.clone())
            },
            file: if exec {
                ev.fields.path.as_deref().map(|p| File::at(p, 1))
            } else {
                known
                    .and_then(|k| k.path.as_deref())
                    .map(|p| File::at(p, 1))
            },
            user: Some(User {
                uid: ev.uid.to_string(),
            }),
            parent_process: (ev.ppid != 0).then(|| {
                Box::new(Process {
                    pid: ev.ppid,
                    name: parent.map(|k| k.name.clone()),
                    cmd_line: parent.and_then(|k| k.cmd_line.clone()),
                    file: parent
                        .and_then(|k| k.path.as_deref())
                        .map(|p| File::at(p, 1)),
                    user: None,
                    parent_process: None,
                })
            }),
        }
    }

    fn actor(&self, session: u64, process: Option<Process>) -> Actor {
        Actor {
            process,
            session: Session {
                uid: session.to_string(),
            },
        }
    }

    /// The process that acted: for an exec, the parent that started the new program (as
    /// OCSF's Process Activity has it); otherwise the process itself.
    fn acting_process(ev: Subject<'_>, launched: &Process) -> Process {
        if ev.kind == "EXECVE" {
            match &launched.parent_process {
                Some(p) => (**p).clone(),
                None => launched.clone(),
            }
        } else {
            launched.clone()
        }
    }

    fn event(&mut self, e: &EventRecord) -> Option<OcsfEvent> {
        let ev = Subject {
            kind: e.kind,
            pid: e.pid,
            ppid: e.ppid,
            uid: e.uid,
            comm: &e.comm,
            fields: &e.fields,
        };
        let id = e.session_id;
        let out = match e.kind {
            "EXECVE" => {
                let process = self.process(id, ev);
                let actor = self.actor(id, Some(Self::acting_process(ev, &process)));
                let mut base = self.base(
                    &PROCESS_ACTIVITY,
                    (1, "Launch"),
                    INFORMATIONAL,
                    &e.timestamp,
                    "events",
                    id,
                );
                (base.status_id, base.status) = (Some(SUCCESS.0), Some(SUCCESS.1));
                OcsfEvent::Process(Box::new(ProcessActivity {
                    base,
                    actor,
                    process,
                    exit_code: None,
                }))
            }
            "EXIT" => {
                let process = self.process(id, ev);
                let actor = self.actor(id, Some(process.clone()));
                let mut base = self.base(
                    &PROCESS_ACTIVITY,
                    (2, "Terminate"),
                    INFORMATIONAL,
                    &e.timestamp,
                    "events",
                    id,
                );
                base.status_detail = e.fields.signal.map(|s| format!("killed by signal {s}"));
                OcsfEvent::Process(Box::new(ProcessActivity {
                    base,
                    actor,
                    process,
                    exit_code: e.fields.status.map(i32::from),
                }))
            }
            "OPENAT" => {
                let actor = self.actor(id, Some(self.process(id, ev)));
                let mut base = self.base(
                    &FILE_ACTIVITY,
                    (14, "Open"),
                    INFORMATIONAL,
                    &e.timestamp,
                    "events",
                    id,
                );
                set_result(&mut base, e.fields.result, false);
                OcsfEvent::File(Box::new(FileActivity {
                    base,
                    actor,
                    file: File::at(e.fields.path.as_deref().unwrap_or_default(), 0),
                }))
            }
            "CONNECT" => {
                let actor = self.actor(id, Some(self.process(id, ev)));
                let mut base = self.base(
                    &NETWORK_ACTIVITY,
                    (1, "Open"),
                    INFORMATIONAL,
                    &e.timestamp,
                    "events",
                    id,
                );
                set_result(&mut base, e.fields.result, true);
                OcsfEvent::Network(Box::new(NetworkActivity {
                    base,
                    actor,
                    dst_endpoint: endpoint(&e.fields),
                    connection_info: ConnectionInfo {
                        direction_id: 2,
                        direction: "Outbound",
                    },
                }))
            }
            _ => return None,
        };
        self.learn(id, ev);
        Some(out)
    }

    /// Remember an exec'd process (to name it as a parent later); forget an exited one.
    fn learn(&mut self, session: u64, ev: Subject<'_>) {
        let s = self.sessions.entry(session).or_default();
        match ev.kind {
            "EXECVE" if s.processes.len() < MAX_PROCESSES || s.processes.contains_key(&ev.pid) => {
                s.processes.insert(
                    ev.pid,
                    Known {
                        name: ev.comm.to_owned(),
                        path: ev.fields.path.clone(),
                        cmd_line: ev.fields.args.as_ref().map(|a| a.join(" ")),
                    },
                );
            }
            "EXIT" => {
                s.processes.remove(&ev.pid);
            }
            _ => {}
        }
    }

    fn evidence(&self, session: u64, ev: &AuditEvent) -> Evidence {
        let subject = Subject {
            kind: ev.kind,
            pid: ev.pid,
            ppid: ev.ppid,
            uid: ev.uid,
            comm: &ev.comm,
            fields: &ev.fields,
        };
        let process = self.process(session, subject);
        let (actor, process, file, dst) = match ev.kind {
            "EXECVE" | "EXIT" => (
                Self::acting_process(subject, &process),
                Some(process),
                None,
                None,
            ),
            "OPENAT" => (
                process,
                None,
                Some(File::at(ev.fields.path.as_deref().unwrap_or_default(), 0)),
                None,
            ),
            "CONNECT" => (process, None, None, Some(endpoint(&ev.fields))),
            _ => (process, None, None, None),
        };
        Evidence {
            name: ev.kind,
            actor: self.actor(session, Some(actor)),
            process,
            file,
            dst_endpoint: dst,
            ai_agent: self.ai_agent(session),
        }
    }

    fn decision(&mut self, r: &FullLogRecord) -> Option<OcsfEvent> {
        let id = r.session_id;
        let time = unix_ms(&r.timestamp).unwrap_or(0);
        let evidence = self.evidence(id, &r.event);
        let rules: Vec<Analytic> = r
            .decision
            .triggered_rules
            .iter()
            .map(|t| Analytic {
                name: t.name.clone(),
                uid: t.name.clone(),
                desc: (!t.expr.is_empty()).then(|| t.expr.clone()),
                type_id: 1,
                kind: "Rule",
            })
            .collect();
        let state = self.sessions.entry(id).or_default();
        let created = state.finding.is_none();
        let f = state.finding.get_or_insert_with(|| Finding {
            uid: r.trace_id.clone(),
            created: time,
            last: time,
            score: 0,
            action: "LOG",
            analytics: Vec::new(),
            evidences: Vec::new(),
        });
        f.last = time;
        f.score = r.decision.score;
        if r.decision.action == "ALERT" || f.action != "ALERT" {
            f.action = r.decision.action;
        }
        for a in rules {
            if f.analytics.len() < MAX_EVIDENCES && !f.analytics.iter().any(|x| x.uid == a.uid) {
                f.analytics.push(a);
            }
        }
        if f.evidences.len() < MAX_EVIDENCES {
            f.evidences.push(evidence);
        }
        let (activity, status) = if created {
            ((1, "Create"), (1, "New"))
        } else {
            ((2, "Update"), (2, "In Progress"))
        };
        let message = format!(
            "casa {}: session {id} scored {} (log at {}, alert at {}); rules: {}",
            r.decision.action,
            r.decision.score,
            r.decision.log_threshold,
            r.decision.alert_threshold,
            r.decision
                .triggered_rules
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Some(self.finding(id, &r.timestamp, "audit", activity, status, message, None))
    }

    /// A Detection Finding of session `id`'s open finding in its current state.
    #[allow(clippy::too_many_arguments)]
    fn finding(
        &self,
        id: u64,
        timestamp: &str,
        log_name: &'static str,
        activity: (u8, &'static str),
        (status_id, status): (u8, &'static str),
        message: String,
        end_time: Option<i64>,
    ) -> OcsfEvent {
        let f = self.sessions[&id]
            .finding
            .as_ref()
            .expect("a finding is open for this session");
        let (severity, risk_level_id, risk_level) = grade(f.action);
        let mut base = self.base(
            &DETECTION_FINDING,
            activity,
            severity,
            timestamp,
            log_name,
            id,
        );
        base.status_id = Some(status_id);
        base.status = Some(status);
        base.message = Some(message);
        base.metadata.correlation_uid = Some(f.uid.clone());
        let rules = f
            .analytics
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        OcsfEvent::Finding(Box::new(DetectionFinding {
            base,
            finding_info: FindingInfo {
                uid: f.uid.clone(),
                title: format!("AI agent session {id}: {rules}"),
                desc: format!(
                    "casa scored {} agent session {id} at {} ({}) from the rules that fired: {rules}",
                    self.cfg.agent, f.score, f.action
                ),
                types: vec!["AI Agent Activity"],
                created_time: f.created,
                first_seen_time: f.created,
                last_seen_time: f.last,
                modified_time: end_time.unwrap_or(f.last),
                analytic: f.analytics[0].clone(),
                related_analytics: f.analytics.clone(),
            },
            evidences: f.evidences.clone(),
            risk_score: f.score,
            risk_level_id,
            risk_level,
            is_alert: f.action == "ALERT",
            start_time: f.created,
            end_time,
        }))
    }

    fn session(&mut self, s: &SessionLogRecord<'_>) -> Option<OcsfEvent> {
        let closed = s.session.closed_at.as_deref()?;
        let id = s.session_id;
        let Some(f) = self.sessions.get_mut(&id)?.finding.as_mut() else {
            // No decision in this session: nothing to close, only its state to drop.
            self.sessions.remove(&id);
            return None;
        };
        f.score = s.session.final_score;
        if s.session.final_action == "ALERT" {
            f.action = "ALERT";
        }
        let end = unix_ms(closed).unwrap_or(0);
        let message = format!(
            "casa: session {id} closed ({}) with score {} ({})",
            s.session.close_reason.unwrap_or(s.reason),
            s.session.final_score,
            s.session.final_action
        );
        let out = self.finding(
            id,
            closed,
            "sessions",
            (3, "Close"),
            (4, "Resolved"),
            message,
            Some(end),
        );
        self.sessions.remove(&id);
        Some(out)
    }
}

/// The event fields the mapping reads, from an `events.log` record or an audit record's
/// `event`.
#[derive(Clone, Copy)]
struct Subject<'a> {
    kind: &'static str,
    pid: u32,
    ppid: u32,
    uid: u32,
    comm: &'a str,
    fields: &'a EventFields,
}

/// `status_id`, `status`, `status_code` of an open or connect from its result (`-errno` on
/// failure). A non-blocking connect still under way (`EINPROGRESS`) has no outcome yet:
/// `Unknown`.
fn set_result(base: &mut Base, result: Option<i64>, connect: bool) {
    let Some(r) = result else { return };
    let (id, status) = if r >= 0 {
        SUCCESS
    } else if connect && r == -EINPROGRESS {
        (0, "Unknown")
    } else {
        FAILURE
    };
    base.status_id = Some(id);
    base.status = Some(status);
    if r < 0 {
        base.status_code = Some(format!("errno {}", -r));
        if connect && r == -EINPROGRESS {
            base.status_detail = Some("connection in progress (EINPROGRESS)".into());
        }
    }
}

/// A connect's destination: an IP and port, a unix socket's path, or `unknown`.
fn endpoint(f: &EventFields) -> NetworkEndpoint {
    let addr = f.addr.as_deref().unwrap_or_default();
    if let Some(path) = addr.strip_prefix("unix:") {
        return NetworkEndpoint {
            ip: None,
            port: None,
            name: Some(path.to_owned()),
        };
    }
    match addr.parse::<std::net::IpAddr>() {
        Ok(ip) => NetworkEndpoint {
            ip: Some(ip.to_string()),
            port: f.port,
            name: None,
        },
        Err(_) => NetworkEndpoint {
            ip: None,
            port: None,
            name: Some("unknown".into()),
        },
    }
}

// ---------------------------------------------------------------------------------------
// The writer (the I/O edge).

/// The OCSF file: the mapping, and the file it appends to (with the other logs' failure
/// policy: every line on disk or counted as failed; reopened after a failure, on rotation
/// and on SIGHUP).
pub struct OcsfLog {
    mapper: OcsfMapper,
    pub(super) file: OpenLog,
}

impl OcsfLog {
    /// Open (creating, `0600`, never following a symlink) `path` for appending.
    pub fn open(path: &Path, cfg: OcsfConfig) -> io::Result<Self> {
        Ok(Self {
            mapper: OcsfMapper::new(cfg),
            file: OpenLog::open(path.to_owned())?,
        })
    }

    /// Map a record and append its OCSF event, if it has one.
    pub fn write(&mut self, record: Record<'_>) {
        let Some(event) = self.mapper.map(record) else {
            return;
        };
        match serde_json::to_vec(&event) {
            Ok(line) => self.file.write_line(&line),
            Err(e) => {
                tracing::error!("serialising an OCSF event: {e}");
                self.file.failed += 1;
            }
        }
    }

    /// Lines known to be on disk.
    pub fn written(&self) -> u64 {
        self.file.written
    }

    /// Lines that could not be written.
    pub fn failed(&self) -> u64 {
        self.file.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::records::{DecisionRecord, SessionBody, TriggeredRuleRecord};

    fn cfg() -> OcsfConfig {
        OcsfConfig {
            hostname: "host-a".into(),
            agent: "openclaw".into(),
        }
    }

    fn event(kind: &'static str, pid: u32, ppid: u32, fields: EventFields) -> EventRecord {
        EventRecord {
            timestamp: "2026-11-22T06:17:54.761503389Z".into(),
            pid,
            tid: pid,
            ppid,
            uid: 1000,
            kind,
            comm: format!("c{pid}"),
            fields,
            session_id: 7,
        }
    }

    fn exec(pid: u32, ppid: u32, path: &str, args: &[&str]) -> EventRecord {
        event(
            "EXECVE",
            pid,
            ppid,
            EventFields {
                path: Some(path.into()),
                args: Some(args.iter().map(|a| a.to_string()).collect()),
                ..EventFields::default()
            },
        )
    }

    fn json(e: &OcsfEvent) -> serde_json::Value {
        serde_json::to_value(e).unwrap()
    }

    fn decision(ts: &str, action: &'static str, score: i64, rules: &[&str]) -> FullLogRecord {
        FullLogRecord {
            timestamp: ts.into(),
            session_id: 7,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            event: AuditEvent {
                kind: "CONNECT",
                pid: 20,
                ppid: 10,
                uid: 1000,
                comm: "curl".into(),
                fields: EventFields {
                    addr: Some("203.0.113.9".into()),
                    port: Some(443),
                    result: Some(0),
                    ..EventFields::default()
                },
            },
            decision: DecisionRecord {
                action,
                score,
                log_threshold: 4,
                alert_threshold: 9,
                triggered_rules: rules
                    .iter()
                    .map(|r| TriggeredRuleRecord {
                        name: r.to_string(),
                        expr: format!("{r}_expr"),
                        weight: 4,
                    })
                    .collect(),
            },
            response: None,
        }
    }

    fn map_session(
        m: &mut OcsfMapper,
        closed: Option<&str>,
        score: i64,
        action: &'static str,
    ) -> Option<OcsfEvent> {
        let origins: Vec<String> = Vec::new();
        let rec = SessionLogRecord {
            timestamp: closed.unwrap_or("2026-11-22T06:18:00Z").into(),
            session_id: 7,
            reason: if closed.is_some() {
                "session_closed"
            } else {
                "periodic_flush"
            },
            session: SessionBody {
                created_at: "2026-11-22T06:17:54Z".into(),
                started_at: "2026-11-22T06:17:54Z".into(),
                updated_at: "2026-11-22T06:17:55Z".into(),
                closed_at: closed.map(str::to_owned),
                recent_events: Vec::new(),
                kind: "cli",
                leader_pid: 10,
                invocation: Vec::new(),
                attribution: None,
                close_reason: closed.map(|_| "leader_exit"),
                joined_midway: false,
                incomplete: false,
                events_lost: 0,
                taint_origins: &origins,
                final_score: score,
                final_action: action,
            },
        };
        m.map(Record::Session(&rec))
    }

    #[test]
    fn ocsf_times_are_epoch_milliseconds_of_casas_timestamps() {
        assert_eq!(unix_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_ms("1970-01-01T00:00:01.999999999Z"), Some(1999));
        assert_eq!(
            unix_ms("2026-11-22T06:17:54.761503389Z"),
            Some(1_795_328_274_761)
        );
        assert_eq!(unix_ms("2000-02-29T12:00:00.5Z"), Some(951_825_600_500));
        // Agrees with the formatter the pipeline uses, across years.
        for ns in [0i128, 951_825_600_123_456_789, 4_102_444_799_999_000_000] {
            let ts = crate::clock::format_rfc3339(ns);
            assert_eq!(unix_ms(&ts), Some((ns / 1_000_000) as i64), "{ts}");
        }
        for bad in [
            "",
            "2026-11-22 06:17:54Z",
            "2026-13-01T00:00:00Z",
            "2026-11-22T06:17:54.Z",
            "2026-11-22T06:17:54+01:00",
        ] {
            assert_eq!(unix_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn ocsf_exec_is_a_process_launch_by_its_parent_with_the_parent_named_when_seen() {
        let mut m = OcsfMapper::new(cfg());
        m.map(Record::Event(&exec(
            10,
            1,
            "/usr/bin/bash",
            &["bash", "-c", "x"],
        )));
        let e = m
            .map(Record::Event(&exec(
                20,
                10,
                "/usr/bin/curl",
                &["curl", "-d", "@f", "h"],
            )))
            .unwrap();
        let v = json(&e);
        assert_eq!(v["class_uid"], 1007);
        assert_eq!(v["category_uid"], 1);
        assert_eq!(v["activity_id"], 1);
        assert_eq!(v["type_uid"], 100_701);
        assert_eq!(v["severity_id"], 1);
        assert_eq!(v["time"], 1_795_328_274_761i64);
        assert_eq!(v["metadata"]["version"], "1.8.0");
        assert_eq!(v["metadata"]["product"]["name"], "casa");
        assert_eq!(v["device"]["hostname"], "host-a");
        assert_eq!(v["process"]["pid"], 20);
        assert_eq!(v["process"]["cmd_line"], "curl -d @f h");
        assert_eq!(v["process"]["file"]["path"], "/usr/bin/curl");
        assert_eq!(v["process"]["file"]["name"], "curl");
        assert_eq!(v["process"]["user"]["uid"], "1000");
        assert_eq!(v["process"]["parent_process"]["pid"], 10);
        assert_eq!(v["process"]["parent_process"]["cmd_line"], "bash -c x");
        assert_eq!(v["actor"]["process"]["pid"], 10);
        assert_eq!(v["actor"]["process"]["file"]["path"], "/usr/bin/bash");
        assert_eq!(v["actor"]["session"]["uid"], "7");
        assert_eq!(v["ai_agent"]["instance_uid"], "7");
        assert_eq!(v["ai_agent"]["uid"], "openclaw");
    }

    #[test]
    fn ocsf_exit_open_connect_map_to_their_classes_with_outcomes() {
        let mut m = OcsfMapper::new(cfg());
        let exit = event(
            "EXIT",
            20,
            10,
            EventFields {
                status: Some(3),
                ..EventFields::default()
            },
        );
        let v = json(&m.map(Record::Event(&exit)).unwrap());
        assert_eq!(
            (v["class_uid"].clone(), v["activity_id"].clone()),
            (1007.into(), 2.into())
        );
        assert_eq!(v["type_uid"], 100_702);
        assert_eq!(v["exit_code"], 3);

        let open = |result| {
            event(
                "OPENAT",
                20,
                10,
                EventFields {
                    path: Some("/home/u/.ssh/id_rsa".into()),
                    flags: Some(0),
                    mode: Some(0),
                    result: Some(result),
                    ..EventFields::default()
                },
            )
        };
        let v = json(&m.map(Record::Event(&open(3))).unwrap());
        assert_eq!(v["class_uid"], 1001);
        assert_eq!(v["type_uid"], 100_114);
        assert_eq!(v["file"]["name"], "id_rsa");
        assert_eq!(v["file"]["path"], "/home/u/.ssh/id_rsa");
        assert_eq!(v["status_id"], 1);
        assert_eq!(v["actor"]["process"]["pid"], 20);
        let v = json(&m.map(Record::Event(&open(-13))).unwrap());
        assert_eq!(v["status_id"], 2);
        assert_eq!(v["status_code"], "errno 13");

        let connect = |addr: &str, result| {
            event(
                "CONNECT",
                20,
                10,
                EventFields {
                    addr: Some(addr.into()),
                    port: Some(443),
                    result: Some(result),
                    ..EventFields::default()
                },
            )
        };
        let v = json(&m.map(Record::Event(&connect("203.0.113.9", -115))).unwrap());
        assert_eq!(v["class_uid"], 4001);
        assert_eq!(v["category_uid"], 4);
        assert_eq!(v["type_uid"], 400_101);
        assert_eq!(v["dst_endpoint"]["ip"], "203.0.113.9");
        assert_eq!(v["dst_endpoint"]["port"], 443);
        assert_eq!(v["connection_info"]["direction_id"], 2);
        assert_eq!(v["status_id"], 0);
        let v = json(
            &m.map(Record::Event(&connect("unix:/run/x.sock", 0)))
                .unwrap(),
        );
        assert_eq!(v["dst_endpoint"]["name"], "/run/x.sock");
        assert!(v["dst_endpoint"].get("ip").is_none());
        assert_eq!(v["status_id"], 1);

        assert!(
            m.map(Record::Event(&event(
                "FORK",
                21,
                20,
                EventFields::default()
            )))
            .is_none()
        );
    }

    #[test]
    fn ocsf_finding_is_created_updated_and_closed_with_the_sessions_score_and_rules() {
        let mut m = OcsfMapper::new(cfg());
        // No decision yet: a periodic snapshot or a close without a finding says nothing.
        assert!(map_session(&mut m, None, 0, "IGNORE").is_none());

        let first = decision("2026-11-22T06:17:55Z", "LOG", 4, &["sensitive_read"]);
        let v = json(&m.map(Record::Audit(&first)).unwrap());
        assert!(
            m.map(Record::Alert(&first)).is_none(),
            "alert twin mapped once"
        );
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["category_uid"], 2);
        assert_eq!(v["activity_id"], 1);
        assert_eq!(v["type_uid"], 200_401);
        assert_eq!(v["status_id"], 1);
        assert_eq!(v["severity_id"], 3);
        assert_eq!(v["risk_score"], 4);
        assert_eq!(v["is_alert"], false);
        assert_eq!(v["finding_info"]["uid"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["finding_info"]["analytic"]["name"], "sensitive_read");
        assert_eq!(v["finding_info"]["analytic"]["desc"], "sensitive_read_expr");
        assert_eq!(v["finding_info"]["analytic"]["type_id"], 1);
        assert_eq!(v["evidences"].as_array().unwrap().len(), 1);
        assert_eq!(v["evidences"][0]["dst_endpoint"]["ip"], "203.0.113.9");
        assert_eq!(v["evidences"][0]["actor"]["process"]["pid"], 20);
        assert_eq!(v["evidences"][0]["ai_agent"]["instance_uid"], "7");
        assert_eq!(v["ai_agent"]["instance_uid"], "7");

        let second = decision("2026-11-22T06:17:56Z", "ALERT", 9, &["exfil_a", "exfil_b"]);
        let v = json(&m.map(Record::Audit(&second)).unwrap());
        assert_eq!(v["activity_id"], 2);
        assert_eq!(v["type_uid"], 200_402);
        assert_eq!(v["status_id"], 2);
        assert_eq!(v["severity_id"], 4);
        assert_eq!(v["risk_level_id"], 3);
        assert_eq!(v["risk_score"], 9);
        assert_eq!(v["is_alert"], true);
        assert_eq!(v["finding_info"]["uid"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let names: Vec<&str> = v["finding_info"]["related_analytics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["sensitive_read", "exfil_a", "exfil_b"]);
        assert_eq!(v["evidences"].as_array().unwrap().len(), 2);
        assert_eq!(v["finding_info"]["created_time"], 1_795_328_275_000i64);
        assert_eq!(v["finding_info"]["last_seen_time"], 1_795_328_276_000i64);

        // A periodic snapshot does not close it.
        assert!(map_session(&mut m, None, 9, "ALERT").is_none());
        let v = json(&map_session(&mut m, Some("2026-11-22T06:17:58Z"), 11, "ALERT").unwrap());
        assert_eq!(v["activity_id"], 3);
        assert_eq!(v["type_uid"], 200_403);
        assert_eq!(v["status_id"], 4);
        assert_eq!(v["risk_score"], 11);
        assert_eq!(v["end_time"], 1_795_328_278_000i64);
        assert_eq!(v["metadata"]["log_name"], "sessions");
        assert_eq!(
            v["finding_info"]["related_analytics"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(m.open_sessions(), 0, "state dropped at close");
        // Closed once.
        assert!(map_session(&mut m, Some("2026-11-22T06:17:59Z"), 11, "ALERT").is_none());
    }

    #[test]
    fn ocsf_file_sinks_write_each_record_to_its_log_and_its_ocsf_event_to_the_ocsf_file() {
        use crate::sink::{FileSinks, LogPaths, LogSink};
        let dir = std::env::temp_dir().join(format!("casa-ocsf-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = LogPaths::in_dir(&dir);
        let path = dir.join("ocsf.jsonl");
        let mut sinks = FileSinks::open(&paths)
            .unwrap()
            .with_ocsf(&path, cfg())
            .unwrap();
        let d = decision("2026-11-22T06:17:55Z", "ALERT", 9, &["r"]);
        sinks.write(Record::Event(&exec(10, 1, "/usr/bin/bash", &["bash"])));
        sinks.write(Record::Audit(&d));
        sinks.write(Record::Alert(&d));
        sinks.flush();
        assert_eq!(sinks.written(), [1, 0, 1, 1]);
        assert_eq!(sinks.ocsf_lines(), Some((2, 0)));
        drop(sinks);
        let text = std::fs::read_to_string(&path).unwrap();
        let classes: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["class_uid"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(classes, [1007, 2004]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ocsf_a_failed_write_is_counted_like_the_logs() {
        // /dev/full takes the open and refuses the data (ENOSPC) when the buffer is flushed.
        let mut log = OcsfLog::open(Path::new("/dev/full"), cfg()).unwrap();
        log.write(Record::Event(&exec(10, 1, "/usr/bin/bash", &["bash"])));
        log.write(Record::Event(&exec(11, 10, "/usr/bin/cat", &["cat"])));
        log.file.flush();
        assert_eq!((log.written(), log.failed()), (0, 2));
        // Writing goes on (the file is reopened) and keeps counting.
        log.write(Record::Event(&exec(12, 10, "/usr/bin/id", &["id"])));
        log.file.flush();
        assert_eq!((log.written(), log.failed()), (0, 3));
    }

    #[test]
    fn ocsf_a_session_without_decisions_is_forgotten_at_close() {
        let mut m = OcsfMapper::new(cfg());
        m.map(Record::Event(&exec(10, 1, "/usr/bin/bash", &["bash"])));
        assert_eq!(m.open_sessions(), 1);
        assert!(map_session(&mut m, Some("2026-11-22T06:17:58Z"), 0, "IGNORE").is_none());
        assert_eq!(m.open_sessions(), 0);
    }
}

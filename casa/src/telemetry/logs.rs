//! Audit and alert records (and, when asked, `events.log` records) as OTLP log records,
//! correlated with the session's span.
//!
//! A side branch of the pipeline's last stage, beside the span: whenever the pipeline writes
//! an audit or alert record it also hands it to a [`LogRecordSink`] with the session's trace
//! and span ids and the event's time ([`LogContext`]). [`log_record`] (pure) turns it into an
//! OTLP `LogRecord`: the body is the record's JSON as the pipeline built it (the `audit.log` /
//! `alert.log` line is that JSON with the chain's `seq`, `prev_hash` and `hash` added), the
//! attributes name the log, the session, the decision and the response. [`OtlpLogs`] queues
//! it on a [`Sender`]; [`MemoryLogs`] keeps it (tests). Nothing here changes the files.

use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, ArrayValue, KeyValue, any_value},
    logs::v1::{LogRecord, SeverityNumber},
};

use super::{
    send::Sender,
    span::{Attr, Value, response_attrs},
};
use crate::sink::Record;

/// The session a record belongs to, and when its event happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The event's time (Unix epoch, ns).
    pub unix_ns: i128,
}

/// Where the pipeline hands records for OTLP logs (the OTLP sender, or a test's memory).
pub trait LogRecordSink: Send {
    /// Whether `events.log` records are wanted too (audit and alert records always are).
    fn wants_events(&self) -> bool;
    /// Hand over one record; must not block.
    fn export(&mut self, record: Record<'_>, ctx: &LogContext);
    /// Flush everything handed over, within a bounded time (shutdown, end of a replay).
    fn shutdown(&mut self);
}

/// An attribute value as OTLP's `AnyValue`.
pub fn any_value(v: &Value) -> AnyValue {
    use any_value::Value as V;
    let value = match v {
        Value::Str(s) => V::StringValue(s.clone()),
        Value::I64(i) => V::IntValue(*i),
        Value::Bool(b) => V::BoolValue(*b),
        Value::StrArray(a) => V::ArrayValue(ArrayValue {
            values: a
                .iter()
                .map(|s| AnyValue {
                    value: Some(V::StringValue(s.clone())),
                })
                .collect(),
        }),
    };
    AnyValue { value: Some(value) }
}

/// Attributes as OTLP key-values.
pub fn key_values(attrs: &[Attr]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue {
            key: (*k).to_owned(),
            value: Some(any_value(v)),
            ..Default::default()
        })
        .collect()
}

/// The OTLP log record of `record` (`None` for a `sessions.log` record, or one that does not
/// serialise). Severity: INFO for audit, WARN for alert, DEBUG for events.
pub fn log_record(record: Record<'_>, ctx: &LogContext) -> Option<LogRecord> {
    let body = String::from_utf8(record.to_json().ok()?).ok()?;
    let (severity, text, attrs): (SeverityNumber, &str, Vec<Attr>) = match record {
        Record::Session(_) => return None,
        Record::Event(e) => (
            SeverityNumber::Debug,
            "DEBUG",
            vec![
                ("casa.log", Value::Str("events".into())),
                ("casa.session.id", Value::I64(e.session_id as i64)),
                ("casa.event.type", Value::Str(e.kind.into())),
                ("process.pid", Value::I64(e.pid.into())),
            ],
        ),
        Record::Audit(r) | Record::Alert(r) => {
            let alert = matches!(record, Record::Alert(_));
            let d = &r.decision;
            let mut a = vec![
                (
                    "casa.log",
                    Value::Str(if alert { "alert" } else { "audit" }.into()),
                ),
                ("casa.session.id", Value::I64(r.session_id as i64)),
                ("casa.event.type", Value::Str(r.event.kind.into())),
                ("process.pid", Value::I64(r.event.pid.into())),
                ("casa.decision.action", Value::Str(d.action.into())),
                ("casa.decision.score", Value::I64(d.score)),
                ("casa.decision.log_threshold", Value::I64(d.log_threshold)),
                (
                    "casa.decision.alert_threshold",
                    Value::I64(d.alert_threshold),
                ),
                (
                    "casa.decision.triggered_rule_names",
                    Value::StrArray(d.triggered_rules.iter().map(|t| t.name.clone()).collect()),
                ),
            ];
            if let Some(resp) = &r.response {
                a.extend(response_attrs(resp));
            }
            if alert {
                (SeverityNumber::Warn, "WARN", a)
            } else {
                (SeverityNumber::Info, "INFO", a)
            }
        }
    };
    let t = u64::try_from(ctx.unix_ns).unwrap_or(0);
    Some(LogRecord {
        time_unix_nano: t,
        // casa observed the event when the kernel reported it: the same time, so a replay
        // exports the same records.
        observed_time_unix_nano: t,
        severity_number: severity as i32,
        severity_text: text.into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        attributes: key_values(&attrs),
        // W3C trace flags: sampled (the session's span is always exported).
        flags: 1,
        trace_id: ctx.trace_id.to_vec(),
        span_id: ctx.span_id.to_vec(),
        ..Default::default()
    })
}

/// Log records to an OTLP endpoint through a [`Sender`].
pub struct OtlpLogs {
    sender: Sender,
    events: bool,
    /// How long [`LogRecordSink::shutdown`] waits for the queue to drain.
    pub flush_limit: std::time::Duration,
}

impl OtlpLogs {
    /// Records through `sender`; `events`: `events.log` records too.
    pub fn new(sender: Sender, events: bool) -> Self {
        Self {
            sender,
            events,
            flush_limit: std::time::Duration::from_secs(5),
        }
    }
}

impl LogRecordSink for OtlpLogs {
    fn wants_events(&self) -> bool {
        self.events
    }

    fn export(&mut self, record: Record<'_>, ctx: &LogContext) {
        if let Some(r) = log_record(record, ctx) {
            self.sender.log(r);
        }
    }

    fn shutdown(&mut self) {
        if !self.sender.flush(self.flush_limit) {
            tracing::warn!(
                "telemetry: log records not all exported within {:?}",
                self.flush_limit
            );
        }
    }
}

/// Keeps log records in memory (tests).
#[derive(Default, Debug)]
pub struct MemoryLogs {
    pub events: bool,
    pub records: Vec<LogRecord>,
}

impl LogRecordSink for MemoryLogs {
    fn wants_events(&self) -> bool {
        self.events
    }
    fn export(&mut self, record: Record<'_>, ctx: &LogContext) {
        self.records.extend(log_record(record, ctx));
    }
    fn shutdown(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        respond::ResponseRecord,
        sink::records::{AuditEvent, DecisionRecord, FullLogRecord, TriggeredRuleRecord},
    };

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        r.attributes
            .iter()
            .find(|a| a.key == key)?
            .value
            .as_ref()?
            .value
            .as_ref()
    }

    fn full(response: Option<ResponseRecord>) -> FullLogRecord {
        FullLogRecord {
            timestamp: "2026-11-22T06:17:54.247377591Z".into(),
            session_id: 4,
            trace_id: "0102".into(),
            span_id: "03".into(),
            event: AuditEvent {
                kind: "EXECVE",
                pid: 77,
                ppid: 1,
                uid: 0,
                comm: "sh".into(),
                fields: Default::default(),
            },
            decision: DecisionRecord {
                action: "ALERT",
                score: 9,
                log_threshold: 4,
                alert_threshold: 9,
                triggered_rules: vec![TriggeredRuleRecord {
                    name: "r1".into(),
                    expr: "x".into(),
                    weight: 9,
                }],
            },
            response,
        }
    }

    const CTX: LogContext = LogContext {
        trace_id: [7; 16],
        span_id: [8; 8],
        unix_ns: 1_700_000_000_123_456_789,
    };

    #[test]
    fn an_alert_record_becomes_a_warn_log_record_of_its_session() {
        let rec = full(None);
        let r = log_record(Record::Alert(&rec), &CTX).unwrap();
        let body = match r.body.as_ref().unwrap().value.as_ref().unwrap() {
            any_value::Value::StringValue(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            body.as_bytes(),
            Record::Alert(&rec).to_json().unwrap().as_slice()
        );
        assert_eq!(r.trace_id, vec![7; 16]);
        assert_eq!(r.span_id, vec![8; 8]);
        assert_eq!(r.time_unix_nano, 1_700_000_000_123_456_789);
        assert_eq!(r.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(
            attr(&r, "casa.log"),
            Some(&any_value::Value::StringValue("alert".into()))
        );
        assert_eq!(
            attr(&r, "casa.session.id"),
            Some(&any_value::Value::IntValue(4))
        );
        assert_eq!(
            attr(&r, "casa.decision.score"),
            Some(&any_value::Value::IntValue(9))
        );
        assert!(matches!(
            attr(&r, "casa.decision.triggered_rule_names"),
            Some(any_value::Value::ArrayValue(a)) if a.values.len() == 1
        ));
        assert_eq!(attr(&r, "casa.response.mode"), None);
        let audit = log_record(Record::Audit(&rec), &CTX).unwrap();
        assert_eq!(audit.severity_number, SeverityNumber::Info as i32);
        assert_eq!(
            attr(&audit, "casa.log"),
            Some(&any_value::Value::StringValue("audit".into()))
        );
    }

    #[test]
    fn sessions_log_records_are_not_log_records() {
        use crate::sink::records::{SessionBody, SessionLogRecord};
        let rec = SessionLogRecord {
            timestamp: "t".into(),
            session_id: 1,
            reason: "session_closed",
            session: SessionBody {
                created_at: "c".into(),
                started_at: "s".into(),
                updated_at: "u".into(),
                closed_at: None,
                recent_events: Vec::new(),
                kind: "cli",
                leader_pid: 1,
                invocation: Vec::new(),
                attribution: None,
                close_reason: None,
                joined_midway: false,
                incomplete: false,
                events_lost: 0,
                taint_origins: &[],
                final_score: 0,
                final_action: "IGNORE",
            },
        };
        let mut mem = MemoryLogs::default();
        mem.export(Record::Session(&rec), &CTX);
        assert!(mem.records.is_empty());
        mem.export(Record::Audit(&full(None)), &CTX);
        assert_eq!(mem.records.len(), 1);
    }

    #[test]
    fn a_response_is_described_by_its_attributes() {
        let rec = full(Some(ResponseRecord {
            mode: "dry_run",
            actions: vec!["kill"],
            because: vec!["threshold".into()],
            pids: vec![77, 78],
            outcome: None,
        }));
        let r = log_record(Record::Audit(&rec), &CTX).unwrap();
        assert_eq!(
            attr(&r, "casa.response.mode"),
            Some(&any_value::Value::StringValue("dry_run".into()))
        );
        assert_eq!(
            attr(&r, "casa.response.pids"),
            Some(&any_value::Value::StringValue("77,78".into()))
        );
    }
}

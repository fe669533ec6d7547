//! The span of one session, accumulated by the pipeline (pure; no OpenTelemetry types).
//!
//! One span per session covers its whole life (`session <id>`), with the session's story as
//! span events — `process`, `file`, `network`, `exit`, `rule matched: <name>`, `audit emitted`,
//! `alert emitted` — and its final state as attributes, with the original CASA's names
//! (reference §10.1). Routine events are capped per session; security-relevant ones (rule
//! matches, audit/alert, and the events that triggered them) are always kept, and the number
//! of routine events left out is recorded on the span (`casa.session.events_dropped`). The
//! context part of the final state is every field of the context definition
//! (`casa.<group>.<field>`, see `context/fields.rs`).

use crate::{
    context::{Context, FieldValue},
    event::{Detail, Event, SockAddr},
    sink::records::type_name,
};

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    I64(i64),
    Bool(bool),
    StrArray(Vec<String>),
}

pub type Attr = (&'static str, Value);

/// One span event.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    pub name: String,
    pub unix_ns: i128,
    pub attrs: Vec<Attr>,
}

/// A finished session span, ready to export.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub name: String,
    pub start_unix_ns: i128,
    pub end_unix_ns: i128,
    pub attrs: Vec<Attr>,
    pub events: Vec<SpanEvent>,
}

/// Routine events kept per span (the SDK limit is set above routine + security).
pub const ROUTINE_EVENT_CAP: usize = 3000;
/// Span-event limit configured on the tracer provider.
pub const MAX_EVENTS_PER_SPAN: u32 = 8192;

/// Deterministic ids of a session's span: the same recording gives the same ids, so the
/// `trace_id` in audit/alert records is reproducible; different sessions or boots differ.
pub fn span_ids(seed: i128, session_id: u64, created_ns: u64, leader: u32) -> ([u8; 16], [u8; 8]) {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let a = mix(seed as u64 ^ mix((seed >> 64) as u64));
    let b = mix(a ^ session_id);
    let c = mix(b ^ created_ns);
    let d = mix(c ^ u64::from(leader));
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&c.to_be_bytes());
    trace[8..].copy_from_slice(&d.to_be_bytes());
    let span = mix(d ^ 0x5eed).to_be_bytes();
    // All-zero ids are invalid in OTLP.
    if trace == [0; 16] {
        trace[15] = 1;
    }
    let span = if span == [0; 8] {
        [0, 0, 0, 0, 0, 0, 0, 1]
    } else {
        span
    };
    (trace, span)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The span of an open session.
#[derive(Clone, Debug)]
pub struct SpanBuilder {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    session_id: u64,
    leader: u32,
    start_unix_ns: i128,
    events: Vec<SpanEvent>,
    routine: usize,
    dropped: u64,
    /// The last accepted event, when the routine cap kept it out (added if it triggers rules).
    held_back: Option<SpanEvent>,
    counts: [i64; 5],
    audit_emitted: bool,
    alert_emitted: bool,
}

/// Attributes describing an event (reference §10.1 "Event attributes").
pub fn event_attrs(session_id: u64, ev: &Event, timestamp: &str) -> Vec<Attr> {
    let mut a: Vec<Attr> = vec![
        ("casa.session.id", Value::I64(session_id as i64)),
        ("casa.event.type", Value::Str(type_name(ev).into())),
        ("casa.event.timestamp", Value::Str(timestamp.into())),
        ("process.pid", Value::I64(ev.pid.into())),
        ("process.parent_pid", Value::I64(ev.ppid.into())),
        ("thread.id", Value::I64(ev.tid.into())),
        ("user.id", Value::I64(ev.uid.into())),
    ];
    if !ev.comm.as_bytes().is_empty() {
        a.push(("process.command", Value::Str(ev.comm.to_text())));
    }
    match &ev.detail {
        Detail::Exec(x) => {
            a.push(("process.executable.path", Value::Str(x.path.to_text())));
            a.push((
                "process.args",
                Value::StrArray(x.argv.iter().map(|s| s.to_text()).collect()),
            ));
        }
        Detail::Open(o) => {
            a.push(("file.path", Value::Str(o.best_path().to_text())));
            a.push(("file.flags", Value::I64(o.flags.into())));
            a.push(("file.mode", Value::I64(o.mode.into())));
        }
        Detail::Connect(c) => {
            if let SockAddr::Inet { addr, port, .. } = c.addr {
                a.push(("server.address", Value::Str(addr.to_string())));
                a.push(("server.port", Value::I64(port.into())));
            }
        }
        Detail::Exit(_) | Detail::Fork(_) | Detail::Activity(_) => {}
    }
    a
}

fn kind_event_name(ev: &Event) -> &'static str {
    match ev.detail {
        Detail::Exec(_) => "process",
        Detail::Open(_) => "file",
        Detail::Connect(_) => "network",
        Detail::Exit(_) => "exit",
        Detail::Fork(_) | Detail::Activity(_) => "event",
    }
}

/// Attributes describing a response (`casa.response.*`), on its span event and on the OTLP
/// log record of its audit/alert record.
pub fn response_attrs(r: &crate::respond::ResponseRecord) -> Vec<Attr> {
    let pids: Vec<String> = r.pids.iter().map(u32::to_string).collect();
    let mut attrs = vec![
        ("casa.response.mode", Value::Str(r.mode.into())),
        ("casa.response.actions", Value::Str(r.actions.join(","))),
        ("casa.response.because", Value::Str(r.because.join(","))),
        ("casa.response.pids", Value::Str(pids.join(","))),
    ];
    if let Some(o) = &r.outcome {
        attrs.push(("casa.response.killed", Value::I64(o.killed as i64)));
        attrs.push((
            "casa.response.after_trigger_ms_max",
            Value::Str(format!("{:.3}", o.after_trigger_ms_max)),
        ));
    }
    attrs
}

/// A decision as the span needs it.
pub struct DecisionInfo<'a> {
    pub score: i64,
    pub action: &'static str,
    pub log_threshold: i64,
    pub alert_threshold: i64,
    /// (name, expr, weight) of the newly triggered rules.
    pub triggered: &'a [(String, String, i64)],
}

fn decision_attrs(d: &DecisionInfo<'_>) -> Vec<Attr> {
    vec![
        ("casa.decision.score", Value::I64(d.score)),
        ("casa.decision.action", Value::Str(d.action.into())),
        ("casa.decision.log_threshold", Value::I64(d.log_threshold)),
        (
            "casa.decision.alert_threshold",
            Value::I64(d.alert_threshold),
        ),
    ]
}

impl SpanBuilder {
    pub fn new(
        trace_id: [u8; 16],
        span_id: [u8; 8],
        session_id: u64,
        leader: u32,
        start_unix_ns: i128,
    ) -> Self {
        Self {
            trace_id,
            span_id,
            session_id,
            leader,
            start_unix_ns,
            events: Vec::new(),
            routine: 0,
            dropped: 0,
            held_back: None,
            counts: [0; 5],
            audit_emitted: false,
            alert_emitted: false,
        }
    }

    /// An accepted event.
    pub fn event(&mut self, ev: &Event, unix_ns: i128, timestamp: &str) {
        let i = match ev.detail {
            Detail::Connect(_) => 1,
            Detail::Open(_) => 2,
            Detail::Exec(_) => 3,
            Detail::Exit(_) => 4,
            Detail::Fork(_) | Detail::Activity(_) => 0,
        };
        self.counts[0] += 1;
        if i > 0 {
            self.counts[i] += 1;
        }
        let e = SpanEvent {
            name: kind_event_name(ev).into(),
            unix_ns,
            attrs: event_attrs(self.session_id, ev, timestamp),
        };
        if self.routine < ROUTINE_EVENT_CAP {
            self.routine += 1;
            self.events.push(e);
            self.held_back = None;
        } else {
            if self.held_back.replace(e).is_some() {
                self.dropped += 1;
            }
        }
    }

    /// A response (`crate::respond`): one span event `response: <actions>` with the mode,
    /// the reasons, the processes and, for the record closing a kill, its timing.
    pub fn response(
        &mut self,
        ev: &Event,
        unix_ns: i128,
        timestamp: &str,
        r: &crate::respond::ResponseRecord,
    ) {
        if let Some(e) = self.held_back.take() {
            self.events.push(e);
        }
        let mut attrs = event_attrs(self.session_id, ev, timestamp);
        attrs.extend(response_attrs(r));
        let verb = if r.outcome.is_some() {
            "response done"
        } else if r.mode == "enforce" {
            "response"
        } else {
            "response (dry run)"
        };
        self.events.push(SpanEvent {
            name: format!("{verb}: {}", r.actions.join(",")),
            unix_ns,
            attrs,
        });
    }

    /// Rules newly triggered by the last accepted event.
    pub fn decision(
        &mut self,
        ev: &Event,
        unix_ns: i128,
        timestamp: &str,
        d: &DecisionInfo<'_>,
        audit: bool,
        alert: bool,
    ) {
        if let Some(e) = self.held_back.take() {
            self.events.push(e);
        }
        let base = event_attrs(self.session_id, ev, timestamp);
        for (name, expr, weight) in d.triggered {
            let mut attrs = base.clone();
            attrs.push(("casa.rule.name", Value::Str(name.clone())));
            attrs.push(("casa.rule.expr", Value::Str(expr.clone())));
            attrs.push(("casa.rule.weight", Value::I64(*weight)));
            attrs.extend(decision_attrs(d));
            self.events.push(SpanEvent {
                name: format!("rule matched: {name}"),
                unix_ns,
                attrs,
            });
        }
        let names: Vec<String> = d.triggered.iter().map(|t| t.0.clone()).collect();
        for (on, prefix, kind) in [
            (audit, "casa.audit", "audit"),
            (alert, "casa.alert", "alert"),
        ] {
            if !on {
                continue;
            }
            let mut attrs = base.clone();
            attrs.push((
                if kind == "audit" {
                    "casa.audit.kind"
                } else {
                    "casa.alert.kind"
                },
                Value::Str(kind.into()),
            ));
            attrs.extend(decision_attrs(d));
            let (count_key, names_key) = if prefix == "casa.audit" {
                (
                    "casa.audit.triggered_rule_count",
                    "casa.audit.triggered_rule_names",
                )
            } else {
                (
                    "casa.alert.triggered_rule_count",
                    "casa.alert.triggered_rule_names",
                )
            };
            attrs.push((count_key, Value::I64(names.len() as i64)));
            attrs.push((names_key, Value::StrArray(names.clone())));
            self.events.push(SpanEvent {
                name: format!("{kind} emitted"),
                unix_ns,
                attrs,
            });
        }
        self.audit_emitted |= audit;
        self.alert_emitted |= alert;
    }

    /// Close the span with the session's final state.
    pub fn finish(mut self, f: &FinalState<'_>) -> SessionSpan {
        let (end_unix_ns, created_at, closed_at, final_score, final_action, kind, ctx) = (
            f.end_unix_ns,
            f.created_at,
            f.closed_at,
            f.final_score,
            f.final_action,
            f.kind,
            f.ctx,
        );
        if self.held_back.take().is_some() {
            self.dropped += 1;
        }
        let mut attrs: Vec<Attr> = vec![
            ("casa.session.id", Value::I64(self.session_id as i64)),
            ("casa.session.pid", Value::I64(self.leader.into())),
            ("casa.session.kind", Value::Str(kind.into())),
            ("casa.session.created_at", Value::Str(created_at.into())),
            ("casa.session.closed_at", Value::Str(closed_at.into())),
            ("casa.session.final_score", Value::I64(final_score)),
            ("casa.session.final_action", Value::Str(final_action.into())),
            (
                "casa.session.audit_emitted",
                Value::Bool(self.audit_emitted),
            ),
            (
                "casa.session.alert_emitted",
                Value::Bool(self.alert_emitted),
            ),
            (
                "casa.session.event_count.accepted",
                Value::I64(self.counts[0]),
            ),
            (
                "casa.session.event_count.connect",
                Value::I64(self.counts[1]),
            ),
            (
                "casa.session.event_count.openat",
                Value::I64(self.counts[2]),
            ),
            (
                "casa.session.event_count.execve",
                Value::I64(self.counts[3]),
            ),
            ("casa.session.event_count.exit", Value::I64(self.counts[4])),
            (
                "casa.session.events_dropped",
                Value::I64(self.dropped as i64),
            ),
        ];
        // Every field of the context definition, as `casa.<group>.<field>`, in definition order.
        attrs.extend(ctx.values().map(|(f, v)| (f.span_key, context_value(v))));
        SessionSpan {
            trace_id: self.trace_id,
            span_id: self.span_id,
            name: format!("session {}", self.session_id),
            start_unix_ns: self.start_unix_ns,
            end_unix_ns,
            attrs,
            events: self.events,
        }
    }
}

/// The span attribute value of a context field.
fn context_value(v: FieldValue<'_>) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(b),
        FieldValue::Int(i) => Value::I64(i),
        FieldValue::StrList(items) => Value::StrArray(items.to_vec()),
    }
}

/// A session's final state, recorded on its span.
pub struct FinalState<'a> {
    pub end_unix_ns: i128,
    pub created_at: &'a str,
    pub closed_at: &'a str,
    pub final_score: i64,
    pub final_action: &'a str,
    pub kind: &'a str,
    pub ctx: &'a Context,
}

/// Where finished session spans go (the OTLP exporter, or a test collector).
pub trait SpanSink: Send {
    /// Hand over a finished span; must not block.
    fn export(&mut self, span: SessionSpan);
    /// Flush everything handed over, within a bounded time (shutdown).
    fn shutdown(&mut self);
}

/// Keeps spans in memory (tests).
#[derive(Default, Debug)]
pub struct MemorySpans {
    pub spans: Vec<SessionSpan>,
}

impl SpanSink for MemorySpans {
    fn export(&mut self, span: SessionSpan) {
        self.spans.push(span);
    }
    fn shutdown(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::{Bytes, Exec};

    fn exec_event(n: u64) -> Event {
        Event {
            ktime_ns: n,
            pid: 10,
            tid: 10,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            comm: Bytes::from("sh"),
            detail: Detail::Exec(Exec {
                result: 0,
                path: Bytes::from("/bin/true"),
                path_resolved: true,
                script: false,
                path_truncated: false,
                filename: Bytes::from("/bin/true"),
                argv: vec![Bytes::from("true")],
                argv_truncated: false,
                argv_unreadable: false,
                via_execveat: false,
                old_tid: 10,
                cap_effective: Some(0),
                seccomp_mode: Some(0),
                no_new_privs: false,
                facts: Default::default(),
            }),
        }
    }

    #[test]
    fn routine_events_are_capped_but_security_events_kept_and_drops_counted() {
        let mut b = SpanBuilder::new([1; 16], [2; 8], 1, 10, 0);
        let total = ROUTINE_EVENT_CAP + 50;
        for i in 0..total as u64 {
            b.event(&exec_event(i), i as i128, "t");
        }
        // The last event triggers a rule: it is kept although the cap was reached.
        let triggered = vec![("r".to_owned(), "x".to_owned(), 9)];
        let d = DecisionInfo {
            score: 9,
            action: "ALERT",
            log_threshold: 4,
            alert_threshold: 9,
            triggered: &triggered,
        };
        b.decision(
            &exec_event(total as u64),
            total as i128,
            "t",
            &d,
            true,
            true,
        );
        let ctx = Context::default();
        let span = b.finish(&FinalState {
            end_unix_ns: 100,
            created_at: "c",
            closed_at: "e",
            final_score: 9,
            final_action: "ALERT",
            kind: "cli",
            ctx: &ctx,
        });
        let routine = span.events.iter().filter(|e| e.name == "process").count();
        assert_eq!(
            routine,
            ROUTINE_EVENT_CAP + 1,
            "cap plus the triggering event"
        );
        let names: Vec<&str> = span
            .events
            .iter()
            .rev()
            .take(3)
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["alert emitted", "audit emitted", "rule matched: r"]);
        let dropped = span
            .attrs
            .iter()
            .find(|(k, _)| *k == "casa.session.events_dropped")
            .map(|(_, v)| v.clone());
        assert_eq!(dropped, Some(Value::I64(49)));
        let accepted = span
            .attrs
            .iter()
            .find(|(k, _)| *k == "casa.session.event_count.accepted")
            .map(|(_, v)| v.clone());
        assert_eq!(accepted, Some(Value::I64(total as i64)));
    }

    #[test]
    fn final_state_carries_every_context_field_of_the_definition() {
        // Every field set to its positive value, so each attribute's value is checked.
        let mut ctx = Context {
            session_id: 3,
            ..Context::default()
        };
        for f in Context::GROUPS.iter().flat_map(|g| g.fields) {
            let one: Context = serde_json::from_value(f.positive_fixture()).expect("fixture");
            ctx.execution.merge(&one.execution);
            ctx.capability.merge(&one.capability);
            ctx.history.merge(&one.history);
        }
        let span = SpanBuilder::new([1; 16], [2; 8], 3, 10, 0).finish(&FinalState {
            end_unix_ns: 1,
            created_at: "c",
            closed_at: "e",
            final_score: 0,
            final_action: "NONE",
            kind: "cli",
            ctx: &ctx,
        });
        let got: Vec<(&str, Value)> = span
            .attrs
            .iter()
            .filter(|(k, _)| {
                Context::GROUPS
                    .iter()
                    .any(|g| k.starts_with(&format!("casa.{}.", g.name)))
            })
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let want: Vec<(&str, Value)> = Context::GROUPS
            .iter()
            .flat_map(|g| g.fields)
            .map(|f| {
                let v = match f.kind {
                    crate::context::FieldKind::Bool => Value::Bool(true),
                    crate::context::FieldKind::Int => Value::I64(1),
                    crate::context::FieldKind::StrList => Value::StrArray(vec!["x".into()]),
                };
                (f.span_key, v)
            })
            .collect();
        assert_eq!(got, want);
        // The context attributes close the list, after the session's own.
        assert_eq!(
            span.attrs[span.attrs.len() - want.len() - 1].0,
            "casa.session.events_dropped"
        );
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = span_ids(42, 1, 1000, 7);
        assert_eq!(a, span_ids(42, 1, 1000, 7));
        assert_ne!(a.0, span_ids(42, 2, 1000, 7).0);
        assert_ne!(a.0, span_ids(43, 1, 1000, 7).0);
        assert_eq!(hex(&[0xab, 0x01]), "ab01");
    }
}

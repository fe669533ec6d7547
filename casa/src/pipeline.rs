//! The pipeline: the one path from a decoded [`Event`] to the logs, shared by the live daemon
//! and replay.
//!
//! ```text
//! Event ─▶ session::Tracker::observe ─▶ filter::ignore_reason ─▶ context::SessionContext::apply
//!       ─▶ rules::RuleSet::matching ─▶ rules::Scorer::decide ─▶ sink (events/sessions/audit/alert)
//! ```
//!
//! Time comes only from the events (`ktime_ns`) and from [`Pipeline::advance`], which the live
//! daemon calls with the kernel clock when no events arrive; so a replay of the same
//! recording produces the same bytes every time. Rules are evaluated only when a session's
//! context changed, and only the rules the session has not triggered yet (each counts once);
//! `PipelineOptions::naive` turns both shortcuts off, and a test checks that the outputs are
//! identical.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use serde::Serialize;
use tracing::info;

use crate::{
    clock::BootClock,
    context::{Observed, SessionContext},
    event::{Detail, Event},
    filter::{self, FilterPolicy, IgnoreReason},
    rules::{Action, RuleSet, Scorer},
    session::{
        AgentProfile, CloseReason, Closed, SessionId, SessionKind, Timeouts, Tracker, Verdict,
    },
    sink::{
        Log, LogSink,
        records::{
            AuditEvent, DecisionRecord, EventRecord, FullLogRecord, SessionBody, SessionLogRecord,
            TriggeredRuleRecord,
        },
    },
    telemetry::span::{DecisionInfo, FinalState, SpanBuilder, SpanSink, hex, span_ids},
};

/// Interval of `periodic_flush` snapshots in `sessions.log` (event time).
pub const SESSION_FLUSH_NS: u64 = 30_000_000_000;

/// Knobs of the pipeline.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub profiles: Vec<AgentProfile>,
    pub timeouts: Timeouts,
    /// Print the original's `[DECISION DEBUG]` lines (`CASA_DEBUG_EVAL`).
    pub debug_eval: bool,
    /// Evaluate every rule on every accepted event (reference behaviour, for tests).
    pub naive: bool,
    /// Redact secrets in argv before anything else sees the event (`crate::redact`).
    pub redact: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            profiles: vec![AgentProfile::openclaw()],
            timeouts: Timeouts::default(),
            debug_eval: false,
            naive: false,
            redact: true,
        }
    }
}

/// Counters of the pipeline (reported at shutdown and by `replay`).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PipelineStats {
    pub events: u64,
    pub accepted: u64,
    pub ignored: BTreeMap<&'static str, u64>,
    pub pending_shells: u64,
    pub sessions_started: u64,
    pub sessions_closed: u64,
    pub rule_evaluations: u64,
    pub audit_records: u64,
    pub alert_records: u64,
    /// Events whose argv had secrets redacted.
    pub redacted: u64,
}

/// Time spent in each stage, measured only when [`Pipeline::time_stages`] turned it on (for
/// `casa replay --bench`; off, each stage boundary costs one branch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Redacting secrets in exec argv.
    pub redact_ns: u64,
    /// Session tracking: time passing (expiry), process tree, session membership.
    pub sessions_ns: u64,
    /// Noise filter, lineage and the session's CASA context.
    pub context_ns: u64,
    /// Rule evaluation and scoring.
    pub rules_ns: u64,
    /// Formatting and serialising log records, and the sink's write.
    pub sinks_ns: u64,
    /// Intervals measured (each costs about one clock read).
    pub intervals: u64,
}

#[derive(Clone, Copy)]
enum Stage {
    Redact,
    Sessions,
    Context,
    Rules,
    Sinks,
}

fn stage_start(st: &Option<Box<StageTimes>>) -> Option<Instant> {
    st.as_ref().map(|_| Instant::now())
}

/// Add the time since `t` to `stage`, minus `exclude_ns` (time already counted elsewhere).
fn stage_end(st: &mut Option<Box<StageTimes>>, t: Option<Instant>, stage: Stage, exclude_ns: u64) {
    if let (Some(t), Some(s)) = (t, st.as_mut()) {
        let ns = (t.elapsed().as_nanos() as u64).saturating_sub(exclude_ns);
        *match stage {
            Stage::Redact => &mut s.redact_ns,
            Stage::Sessions => &mut s.sessions_ns,
            Stage::Context => &mut s.context_ns,
            Stage::Rules => &mut s.rules_ns,
            Stage::Sinks => &mut s.sinks_ns,
        } += ns;
        s.intervals += 1;
    }
}

fn sinks_ns(st: &Option<Box<StageTimes>>) -> u64 {
    st.as_ref().map_or(0, |s| s.sinks_ns)
}

struct SessionState {
    ctx: SessionContext,
    /// The session span's ids (always computed: audit/alert records carry them).
    trace_id: [u8; 16],
    span_id: [u8; 8],
    /// The span being built, when telemetry is on.
    span: Option<SpanBuilder>,
    /// What the tracker knew when the state was created (it forgets a session on close).
    kind: SessionKind,
    leader: u32,
    started_ns: u64,
    joined_midway: bool,
    /// The kernel lost events while this session was open.
    incomplete: bool,
    scorer: Scorer,
    /// At least one event was accepted (only such sessions get snapshots).
    recorded: bool,
    /// Highest action reached (ALERT > LOG > IGNORE).
    final_action: Action,
}

/// Work the edge must do after an event (the pipeline itself touches no kernel state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EdgeAction {
    /// Add this pid to the kernel's tracked set.
    Track(u32),
}

/// The pipeline over one sink.
pub struct Pipeline<S: LogSink> {
    tracker: Tracker,
    sessions: HashMap<SessionId, SessionState>,
    /// argv of the exec that started each open session (redacted), for its snapshots.
    invocations: HashMap<SessionId, Vec<String>>,
    rules: RuleSet,
    filter: FilterPolicy,
    clock: BootClock,
    sink: S,
    opts: PipelineOptions,
    next_flush_ns: Option<u64>,
    last_ns: u64,
    spans: Option<Box<dyn SpanSink>>,
    stages: Option<Box<StageTimes>>,
    pub stats: PipelineStats,
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Ignore => "IGNORE",
        Action::Log => "LOG",
        Action::Alert => "ALERT",
    }
}

fn action_rank(a: Action) -> u8 {
    match a {
        Action::Ignore => 1,
        Action::Log => 2,
        Action::Alert => 3,
    }
}

impl<S: LogSink> Pipeline<S> {
    pub fn new(
        rules: RuleSet,
        filter: FilterPolicy,
        clock: BootClock,
        sink: S,
        opts: PipelineOptions,
    ) -> Self {
        Self {
            tracker: Tracker::new(opts.profiles.clone(), opts.timeouts),
            sessions: HashMap::new(),
            invocations: HashMap::new(),
            rules,
            filter,
            clock,
            sink,
            opts,
            next_flush_ns: None,
            last_ns: 0,
            spans: None,
            stages: None,
            stats: PipelineStats::default(),
        }
    }

    /// Export one span per session to `spans` (telemetry on).
    pub fn with_spans(mut self, spans: Box<dyn SpanSink>) -> Self {
        self.spans = Some(spans);
        self
    }

    /// Measure the time spent per stage from now on (see [`StageTimes`]).
    pub fn time_stages(&mut self) {
        self.stages = Some(Box::default());
    }

    /// The time measured per stage, if [`Self::time_stages`] was called.
    pub fn stage_times(&self) -> Option<&StageTimes> {
        self.stages.as_deref()
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Sessions whose state is held (open sessions with accepted events).
    pub fn session_states(&self) -> usize {
        self.sessions.len()
    }

    /// Swap in new rules and filter settings. Sessions keep the rules they already triggered
    /// (by name) and their scores.
    pub fn reload(&mut self, rules: RuleSet, filter: FilterPolicy) {
        self.rules = rules;
        self.filter = filter;
        for s in self.sessions.values_mut() {
            s.scorer.rebind(&self.rules);
        }
    }

    /// The configured endpoints in use.
    pub fn endpoints(&self) -> &filter::Endpoints {
        &self.filter.endpoints
    }

    /// Replace the configured endpoints (after a DNS refresh).
    pub fn set_endpoints(&mut self, e: filter::Endpoints) {
        self.filter.endpoints = e;
    }

    /// The kernel lost events: every session open now may miss some of its own.
    pub fn mark_incomplete(&mut self) {
        for s in self.sessions.values_mut() {
            s.incomplete = true;
        }
    }

    /// Register a process found running at start-up; returns pids to track.
    pub fn seed(
        &mut self,
        pid: u32,
        ppid: u32,
        comm: &[u8],
        exec: &crate::event::Exec,
        now_ns: u64,
    ) -> Vec<u32> {
        self.tracker.seed(pid, ppid, comm, exec, now_ns)
    }

    /// Let time pass to `now_ns` (kernel clock): close sessions, write periodic snapshots.
    pub fn advance(&mut self, now_ns: u64) {
        if now_ns < self.last_ns {
            return;
        }
        self.last_ns = now_ns;
        for c in self.tracker.expire(now_ns) {
            self.close(c);
        }
        match self.next_flush_ns {
            None => self.next_flush_ns = Some(now_ns + SESSION_FLUSH_NS),
            Some(at) if now_ns >= at => {
                let mut ids: Vec<SessionId> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.recorded)
                    .map(|(id, _)| *id)
                    .collect();
                ids.sort_unstable();
                for id in ids {
                    self.snapshot(id, "periodic_flush", at, None);
                }
                self.next_flush_ns = Some(now_ns + SESSION_FLUSH_NS);
            }
            Some(_) => {}
        }
    }

    /// Process one event. Returns what the edge must do for the kernel.
    pub fn process(&mut self, ev: &Event) -> Vec<EdgeAction> {
        if self.opts.redact
            && let Detail::Exec(_) = ev.detail
        {
            let t = stage_start(&self.stages);
            let mut owned = ev.clone();
            let redacted = crate::redact::redact_event(&mut owned);
            stage_end(&mut self.stages, t, Stage::Redact, 0);
            if redacted {
                self.stats.redacted += 1;
                return self.process_inner(&owned);
            }
        }
        self.process_inner(ev)
    }

    fn process_inner(&mut self, ev: &Event) -> Vec<EdgeAction> {
        self.stats.events += 1;
        let (t, sinks_before) = (stage_start(&self.stages), sinks_ns(&self.stages));
        self.advance(ev.ktime_ns);
        let obs = self.tracker.observe(ev);
        let in_sinks = sinks_ns(&self.stages) - sinks_before;
        stage_end(&mut self.stages, t, Stage::Sessions, in_sinks);
        if let Some(id) = obs.started {
            self.stats.sessions_started += 1;
            if let Some(s) = self.tracker.session(id) {
                let (argv, args): (Vec<String>, String) = match &ev.detail {
                    Detail::Exec(x) => (
                        x.argv.iter().map(|a| a.to_text()).collect(),
                        // Console: control characters escaped.
                        x.argv
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    _ => (Vec::new(), String::new()),
                };
                self.invocations.insert(id, argv);
                info!(
                    "[SESSION] start id={id} kind={:?} cli_pid={} root_pid={} path={} args={args}",
                    s.kind,
                    s.leader,
                    s.leader_ppid,
                    match &ev.detail {
                        Detail::Exec(x) => x.path.to_string(),
                        _ => String::new(),
                    }
                );
            }
        }
        let actions = obs.track.iter().map(|&p| EdgeAction::Track(p)).collect();
        match obs.verdict {
            Verdict::Outside => {}
            Verdict::PendingShellExec { .. } => self.stats.pending_shells += 1,
            Verdict::Session {
                session,
                runtime,
                pending_shell,
            } => {
                let t = stage_start(&self.stages);
                let reason = filter::ignore_reason(ev, &self.filter, runtime);
                stage_end(&mut self.stages, t, Stage::Context, 0);
                if pending_shell {
                    if reason.is_none() && !matches!(ev.detail, Detail::Exit(_)) {
                        self.tracker.promote(ev.pid);
                    } else {
                        return actions;
                    }
                }
                match reason {
                    Some(r) => self.ignore(session, ev, r),
                    None => self.accept(session, ev),
                }
            }
        }
        actions
    }

    fn ignore(&mut self, session: SessionId, ev: &Event, reason: IgnoreReason) {
        let t = stage_start(&self.stages);
        self.ignore_inner(session, ev, reason);
        stage_end(&mut self.stages, t, Stage::Context, 0);
    }

    fn ignore_inner(&mut self, session: SessionId, ev: &Event, reason: IgnoreReason) {
        *self.stats.ignored.entry(reason.name()).or_default() += 1;
        if reason == IgnoreReason::TransparentRoutineExec
            && let Some(s) = self.sessions.get_mut(&session)
        {
            s.ctx
                .prune_transparent_shell(ev.ppid, self.rules.heuristics());
        }
    }

    fn accept(&mut self, id: SessionId, ev: &Event) {
        self.stats.accepted += 1;
        let t = stage_start(&self.stages);
        let h = self.rules.heuristics();
        let lineage = self.tracker.lineage(ev.pid, h.lineage_max_depth);
        let (created, leader, kind, midway) = self
            .tracker
            .session(id)
            .map_or((ev.ktime_ns, ev.pid, SessionKind::Cli, false), |s| {
                (s.created_ns, s.leader, s.kind, s.joined_midway)
            });
        let (clock, spans_on) = (self.clock, self.spans.is_some());
        let state = self.sessions.entry(id).or_insert_with(|| {
            let (trace_id, span_id) = span_ids(clock.offset_ns, id, created, leader);
            SessionState {
                trace_id,
                span_id,
                kind,
                leader,
                started_ns: created,
                joined_midway: midway,
                incomplete: false,
                span: spans_on.then(|| {
                    SpanBuilder::new(trace_id, span_id, id, leader, clock.unix_ns(created))
                }),
                ctx: SessionContext::new(id),
                scorer: Scorer::new(),
                recorded: false,
                final_action: Action::Ignore,
            }
        });
        let first = !state.recorded;
        state.recorded = true;
        let changed = state.ctx.apply(
            Observed {
                event: ev,
                lineage: &lineage,
            },
            h,
        );
        stage_end(&mut self.stages, t, Stage::Context, 0);
        let t = stage_start(&self.stages);
        let ts = self.clock.rfc3339(ev.ktime_ns);
        write_json(
            &mut self.sink,
            Log::Events,
            &EventRecord::new(ev, ts.clone(), id),
        );
        stage_end(&mut self.stages, t, Stage::Sinks, 0);
        if let Some(span) = &mut state.span {
            span.event(ev, self.clock.unix_ns(ev.ktime_ns), &ts);
        }

        if !(changed || first || self.opts.naive) {
            return;
        }
        self.stats.rule_evaluations += 1;
        let t = stage_start(&self.stages);
        let ctx = state.ctx.context();
        let matched = if self.opts.naive {
            self.rules.matching_all(ctx)
        } else {
            self.rules.matching(ctx, state.scorer.triggered())
        };
        let d = state.scorer.decide(&matched, &self.rules);
        stage_end(&mut self.stages, t, Stage::Rules, 0);
        if self.opts.debug_eval {
            info!(
                "[DECISION DEBUG] session={id} newly_triggered={:?} increment={} score={} action={} history={:?}",
                d.triggered
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>(),
                d.increment,
                d.score,
                action_name(d.action),
                ctx.history
            );
        }
        if d.triggered.is_empty() {
            return;
        }
        if action_rank(d.action) > action_rank(state.final_action) {
            state.final_action = d.action;
        }
        let (log_t, alert_t) = (d.log_threshold, d.alert_threshold);
        let (audit, alert) = (d.score >= log_t, d.score >= alert_t);
        if let Some(span) = &mut state.span {
            let triggered: Vec<(String, String, i64)> = d
                .triggered
                .iter()
                .map(|t| (t.name.clone(), t.expr.clone(), t.weight))
                .collect();
            let info = DecisionInfo {
                score: d.score,
                action: action_name(d.action),
                log_threshold: log_t,
                alert_threshold: alert_t,
                triggered: &triggered,
            };
            span.decision(
                ev,
                self.clock.unix_ns(ev.ktime_ns),
                &ts,
                &info,
                audit,
                alert,
            );
        }
        if !audit {
            return;
        }
        let t = stage_start(&self.stages);
        let record = FullLogRecord {
            timestamp: ts,
            session_id: id,
            trace_id: hex(&state.trace_id),
            span_id: hex(&state.span_id),
            event: AuditEvent::new(ev),
            decision: DecisionRecord {
                action: action_name(d.action),
                score: d.score,
                log_threshold: log_t,
                alert_threshold: alert_t,
                triggered_rules: d
                    .triggered
                    .iter()
                    .map(|t| TriggeredRuleRecord {
                        name: t.name.clone(),
                        expr: t.expr.clone(),
                        weight: t.weight,
                    })
                    .collect(),
            },
        };
        write_json(&mut self.sink, Log::Audit, &record);
        self.stats.audit_records += 1;
        if alert {
            write_json(&mut self.sink, Log::Alert, &record);
            self.stats.alert_records += 1;
            info!(
                "ALERT session={id} score={} rules={:?} pid={} comm={}",
                d.score,
                record
                    .decision
                    .triggered_rules
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
                ev.pid,
                ev.comm
            );
        }
        stage_end(&mut self.stages, t, Stage::Sinks, 0);
    }

    fn snapshot(
        &mut self,
        id: SessionId,
        reason: &'static str,
        at_ns: u64,
        closed: Option<&Closed>,
    ) {
        let t = stage_start(&self.stages);
        self.snapshot_inner(id, reason, at_ns, closed);
        stage_end(&mut self.stages, t, Stage::Sinks, 0);
    }

    fn snapshot_inner(
        &mut self,
        id: SessionId,
        reason: &'static str,
        at_ns: u64,
        closed: Option<&Closed>,
    ) {
        let Some(state) = self.sessions.get(&id) else {
            return;
        };
        let (kind, leader, midway, started) = (
            state.kind,
            state.leader,
            state.joined_midway,
            state.started_ns,
        );
        let created = state.ctx.created_ns().unwrap_or(at_ns);
        let updated = state.ctx.updated_ns().unwrap_or(at_ns);
        let record = SessionLogRecord {
            timestamp: self.clock.rfc3339(at_ns),
            session_id: id,
            reason,
            session: SessionBody {
                created_at: self.clock.rfc3339(created),
                started_at: self.clock.rfc3339(started),
                updated_at: self.clock.rfc3339(updated),
                closed_at: closed.map(|c| self.clock.rfc3339(c.closed_ns)),
                recent_events: state
                    .ctx
                    .recent()
                    .map(|r| crate::context::RecentEventSorted {
                        timestamp: self.clock.rfc3339(r.ktime_ns),
                        event: r,
                    })
                    .collect(),
                kind: match kind {
                    SessionKind::Cli => "cli",
                    SessionKind::Gateway => "gateway",
                },
                leader_pid: leader,
                invocation: self.invocations.get(&id).cloned().unwrap_or_default(),
                close_reason: closed.map(|c| match c.reason {
                    CloseReason::LeaderExit => "leader_exit",
                    CloseReason::Quiet => "quiet",
                    CloseReason::Idle => "idle",
                    CloseReason::MaxAge => "max_age",
                    CloseReason::Shutdown => "shutdown",
                }),
                joined_midway: midway,
                incomplete: state.incomplete,
                final_score: state.scorer.score(),
                final_action: action_name(state.final_action),
            },
        };
        write_json(&mut self.sink, Log::Sessions, &record);
    }

    fn close(&mut self, c: Closed) {
        self.stats.sessions_closed += 1;
        info!(
            "[SESSION] end id={} closed_at={} reason={:?}",
            c.id,
            self.clock.rfc3339(c.closed_ns),
            c.reason
        );
        let reason = if c.reason == CloseReason::Shutdown {
            "shutdown"
        } else {
            "session_closed"
        };
        self.snapshot(c.id, reason, c.closed_ns, Some(&c));
        self.invocations.remove(&c.id);
        if let Some(state) = self.sessions.remove(&c.id)
            && let (Some(span), Some(sink)) = (state.span, self.spans.as_mut())
        {
            let created = state.ctx.created_ns().unwrap_or(c.closed_ns);
            let (created_at, closed_at) =
                (self.clock.rfc3339(created), self.clock.rfc3339(c.closed_ns));
            let span = span.finish(&FinalState {
                end_unix_ns: self.clock.unix_ns(c.closed_ns),
                created_at: &created_at,
                closed_at: &closed_at,
                final_score: state.scorer.score(),
                final_action: action_name(state.final_action),
                kind: c.kind,
                ctx: state.ctx.context(),
            });
            sink.export(span);
        }
    }

    /// End of input (shutdown or end of replay) at `now_ns`: close every session, flush.
    pub fn finish(&mut self, now_ns: u64) {
        self.advance(now_ns);
        for c in self.tracker.close_all(now_ns.max(self.last_ns)) {
            self.close(c);
        }
        self.sink.flush();
        if let Some(spans) = &mut self.spans {
            spans.shutdown();
        }
    }

    pub fn flush(&mut self) {
        self.sink.flush();
    }
}

fn write_json<S: LogSink, T: Serialize>(sink: &mut S, log: Log, value: &T) {
    match serde_json::to_vec(value) {
        Ok(line) => sink.write_line(log, &line),
        Err(e) => tracing::error!("serialising a {} record: {e}", log.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{Bytes, Exec, Exit, Fork, Open},
        sink::MemorySink,
    };

    const S: u64 = 1_000_000_000;
    const BIN: &str = "/opt/node/bin";

    fn ev(t: u64, pid: u32, tid: u32, ppid: u32, detail: Detail) -> Event {
        Event {
            ktime_ns: t,
            pid,
            tid,
            ppid,
            uid: 1000,
            gid: 1000,
            cgroup_id: 1,
            comm: Bytes::from("x"),
            detail,
        }
    }

    fn exec(path: &str, argv: &[&str]) -> Detail {
        Detail::Exec(Exec {
            seccomp_mode: Some(2),
            ..Exec::test(path, argv)
        })
    }

    fn open(path: &str) -> Detail {
        Detail::Open(Open {
            syscall: "openat",
            result: 3,
            flags: 0,
            mode: 0,
            dfd: -100,
            raw_path: Bytes::from(path),
            path: Some(Bytes::from(path)),
            path_truncated: false,
            raw_unreadable: false,
            facts: Default::default(),
        })
    }

    fn exit(leader: bool, gone: bool) -> Detail {
        Detail::Exit(Exit {
            exit_code: 0,
            status: Some(0),
            signal: None,
            core_dumped: false,
            leader,
            process_gone: gone,
        })
    }

    fn pipeline() -> Pipeline<MemorySink> {
        let rules =
            RuleSet::parse(include_str!("../../rules.json"), "rules.json").expect("shipped rules");
        Pipeline::new(
            rules,
            FilterPolicy::default(),
            BootClock { offset_ns: 0 },
            MemorySink::default(),
            PipelineOptions::default(),
        )
    }

    fn start(p: &mut Pipeline<MemorySink>, t: u64) {
        let launcher = format!("{BIN}/openclaw");
        p.process(&ev(
            t,
            100,
            100,
            1,
            exec(
                &format!("{BIN}/node"),
                &["node", &launcher, "agent", "--agent", "main", "-m", "x"],
            ),
        ));
        p.process(&ev(
            t,
            100,
            100,
            1,
            Detail::Fork(Fork {
                child_pid: 110,
                child_tid: 110,
            }),
        ));
        p.process(&ev(
            t,
            110,
            110,
            100,
            exec("/usr/bin/cat", &["cat", "/etc/os-release"]),
        ));
    }

    #[test]
    fn periodic_flush_every_30s_of_event_time() {
        let mut p = pipeline();
        start(&mut p, S);
        p.process(&ev(10 * S, 110, 110, 100, open("/etc/os-release")));
        assert!(p.sink().of(Log::Sessions).is_empty());
        p.advance(31 * S + 1);
        let s = p.sink().of(Log::Sessions);
        assert_eq!(s.len(), 1);
        assert!(s[0].contains("\"periodic_flush\""), "{}", s[0]);
        p.advance(45 * S);
        assert_eq!(
            p.sink().of(Log::Sessions).len(),
            1,
            "no second flush before 30 s more"
        );
    }

    #[test]
    fn non_leader_thread_exit_does_not_close_the_session() {
        let mut p = pipeline();
        start(&mut p, S);
        p.process(&ev(2 * S, 100, 101, 1, exit(false, false)));
        p.advance(10 * S);
        assert!(
            p.sink().of(Log::Sessions).is_empty(),
            "a thread exit closed the session"
        );
        p.process(&ev(11 * S, 100, 100, 1, exit(true, true)));
        p.advance(13 * S + 1);
        let s = p.sink().of(Log::Sessions);
        assert_eq!(s.len(), 1);
        assert!(s[0].contains("\"session_closed\""));
        assert_eq!(p.session_states(), 0, "session state is freed on close");
    }

    #[test]
    fn noise_does_not_promote_a_pending_shell_but_a_real_open_does() {
        let mut p = pipeline();
        start(&mut p, S);
        p.process(&ev(
            2 * S,
            110,
            110,
            100,
            Detail::Fork(Fork {
                child_pid: 120,
                child_tid: 120,
            }),
        ));
        p.process(&ev(2 * S, 120, 120, 110, exec("/bin/sh", &["sh"])));
        let before = p.stats.accepted;
        p.process(&ev(3 * S, 120, 120, 110, open("/etc/hosts")));
        assert_eq!(
            p.stats.accepted, before,
            "an /etc/hosts open must not promote the shell"
        );
        p.process(&ev(4 * S, 120, 120, 110, open("/home/u/.ssh/id_rsa")));
        assert_eq!(
            p.stats.accepted,
            before + 1,
            "a meaningful open promotes and is accepted"
        );
    }

    #[test]
    fn events_outside_sessions_write_nothing() {
        let mut p = pipeline();
        p.process(&ev(S, 500, 500, 1, exec("/usr/bin/curl", &["curl", "x"])));
        p.process(&ev(S, 500, 500, 1, open("/etc/shadow")));
        p.finish(2 * S);
        assert!(p.sink().lines.is_empty());
    }

    #[test]
    fn stage_timing_changes_no_output_and_counts_every_stage() {
        let run = |timed: bool| {
            let mut p = pipeline();
            if timed {
                p.time_stages();
            }
            start(&mut p, S);
            p.process(&ev(2 * S, 110, 110, 100, open("/etc/os-release")));
            p.process(&ev(3 * S, 110, 110, 100, open("/etc/shadow")));
            p.process(&ev(4 * S, 110, 110, 100, exit(true, true)));
            p.process(&ev(5 * S, 100, 100, 1, exit(true, true)));
            p.finish(10 * S);
            (p.sink().lines.clone(), p.stage_times().cloned())
        };
        let (plain, none) = run(false);
        let (timed, stages) = run(true);
        assert_eq!(plain, timed);
        assert!(none.is_none());
        let st = stages.expect("stage times");
        assert!(st.intervals > 0);
        assert!(
            st.sessions_ns > 0 && st.context_ns > 0 && st.sinks_ns > 0,
            "{st:?}"
        );
    }
}

//! The pipeline: the one path from an input (a kernel record, the start-up `/proc` scan, a
//! clock tick, a loss notice, the shutdown) to the logs and the session spans, shared by the
//! live daemon, replay, the benchmark and the tests.
//!
//! ```text
//! Input ─▶ decode ─▶ session::Tracker::observe ─▶ filter::ignore_reason
//!       ─▶ context::SessionContext::apply_in ─▶ rules::RuleSet::matching ─▶ rules::Scorer::decide
//!       ─▶ sink (events/sessions/audit/alert) + telemetry span
//! ```
//!
//! [`Pipeline::feed`] is the single entry point: every caller hands it an [`Input`] (the same
//! set as a recording's frames, so a recording replays exactly what the daemon consumed) and
//! reads back an [`Outcome`] (pids to track, what was written). Time comes only from the
//! inputs (`ktime_ns`, ticks), so a replay of the same recording produces the same bytes
//! every time. Rules are evaluated only when a session's context changed, and only the rules
//! the session has not triggered yet (each counts once); `PipelineOptions::naive` turns both
//! shortcuts off, and a test checks that the outputs are identical.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use serde::Serialize;
use tracing::info;

use crate::{
    clock::BootClock,
    context::{Observed, SessionContext, TaintStore, basename, name_in},
    decode::{DecodeError, decode},
    event::{Detail, Event},
    filter::{self, FilterPolicy, IgnoreReason},
    recording::Seed,
    respond::{Order, Responder, ResponseRecord},
    rules::ResponseAction,
    rules::{Action, RuleSet, Scorer},
    session::{
        AgentProfile, CloseReason, Closed, SessionId, SessionKind, Timeouts, Tracker, Verdict,
        attribution::{Attribution, Method, Request},
    },
    sink::{
        LogSink, Record,
        records::{
            AuditEvent, DecisionRecord, EventRecord, FullLogRecord, SessionBody, SessionLogRecord,
            TriggeredRuleRecord,
        },
    },
    telemetry::{
        logs::{LogContext, LogRecordSink},
        span::{DecisionInfo, FinalState, SpanBuilder, SpanSink, hex, span_ids},
    },
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
    /// Carry responses out (`casa run --enforce`): the edge acts on [`Outcome::orders`] and
    /// the records say `enforce`; otherwise they are dry runs.
    pub enforce: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            profiles: vec![AgentProfile::openclaw()],
            timeouts: Timeouts::default(),
            debug_eval: false,
            naive: false,
            redact: true,
            enforce: false,
        }
    }
}

/// Counters of the pipeline (reported at shutdown and by `replay`).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PipelineStats {
    pub events: u64,
    /// `events` by kind, in the order of [`EVENT_KINDS`].
    pub events_by_kind: [u64; 6],
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
    /// Kernel records that did not decode (counted, never dropped silently).
    pub undecodable: u64,
    /// The kernel's count of lost records, as last reported by an [`Input::Lost`].
    pub kernel_lost: u64,
    /// Processes found gone without an exit event ([`Input::Reaped`]).
    pub reaped: u64,
    /// Response records written (`crate::respond`: orders, dry runs, preventive kills, kill
    /// outcomes).
    #[serde(skip_serializing_if = "is_zero")]
    pub responses: u64,
}

/// The kinds of [`PipelineStats::events_by_kind`] (the metrics' `kind` label).
pub const EVENT_KINDS: [&str; 6] = ["exec", "fork", "exit", "open", "connect", "activity"];

fn kind_index(d: &Detail) -> usize {
    match d {
        Detail::Exec(_) => 0,
        Detail::Fork(_) => 1,
        Detail::Exit(_) => 2,
        Detail::Open(_) => 3,
        Detail::Connect(_) => 4,
        Detail::Activity(_) => 5,
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One input of the pipeline: the same set as a recording's frames
/// (`crate::recording::Frame`), so that a recording of the daemon's inputs replays to the
/// same logs.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// The processes found running at start-up (`/proc`), parents before children.
    Scan(&'a Seed),
    /// One raw record from the kernel's ring buffer (decoded by the pipeline).
    Record(&'a [u8]),
    /// Time passed with no record (kernel boot clock, ns): sessions expire, snapshots fall
    /// due.
    Tick(u64),
    /// The kernel's total of lost records so far: when it grew, every open session is marked
    /// incomplete.
    Lost(u64),
    /// End of input at this time: every session closes, sinks and spans flush.
    Shutdown(u64),
    /// Processes of sessions that the edge found gone although no exit event reached the
    /// pipeline (the kernel lost it): they leave their sessions as if they had exited, so a
    /// lost exit cannot hold a session open. The edge checks [`Pipeline::unconfirmed_pids`].
    Reaped { now_ns: u64, pids: &'a [u32] },
    /// The edge's answer to the [`Outcome::attribute`] request of the input before: which
    /// transcript session issued a gateway tool process's command (or nothing found). The
    /// tool process joins the CLI session it names; any other input in its place means no
    /// answer, and the process joins by recency.
    Attribution(&'a Attribution),
}

/// What one [`Input`] did: the edge acts on it (tracks pids, stamps latency) instead of
/// diffing the pipeline's counters.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Pids the edge must add to the kernel's tracked set.
    pub track: Vec<u32>,
    /// The decoded event of an [`Input::Record`].
    pub event: Option<Event>,
    /// Why an [`Input::Record`] did not decode (also counted in `stats.undecodable`).
    pub decode_error: Option<DecodeError>,
    /// The event was accepted into a session (an `events.log` line was written).
    pub accepted: bool,
    /// `audit.log` records written for this input.
    pub audit_records: u64,
    /// `alert.log` records written for this input.
    pub alert_records: u64,
    /// A gateway tool process whose session the edge can find out: the edge looks the
    /// command up (`crate::transcript`) and feeds the answer as the very next input
    /// ([`Input::Attribution`]); until then the process's exec is held back.
    pub attribute: Option<Request>,
    /// Responses the edge must carry out (`crate::respond`; only when enforcing).
    pub orders: Vec<Order>,
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
    /// The context changed outside an event (the kernel lost records): evaluate the rules
    /// with the session's next event.
    pending_eval: bool,
    /// How gateway tool processes were attributed to this session, if any joined.
    attribution: Option<Method>,
}

impl SessionState {
    /// This session's audit/alert record of `decision` on `ev` (at `ts`, `unix_ns`), and the
    /// context its OTLP log record carries.
    fn audit_record(
        &self,
        id: SessionId,
        ev: &Event,
        ts: String,
        unix_ns: i128,
        decision: DecisionRecord,
        response: Option<ResponseRecord>,
    ) -> (FullLogRecord, LogContext) {
        let record = FullLogRecord {
            timestamp: ts,
            session_id: id,
            trace_id: hex(&self.trace_id),
            span_id: hex(&self.span_id),
            event: AuditEvent::new(ev),
            decision,
            response,
        };
        let ctx = LogContext {
            trace_id: self.trace_id,
            span_id: self.span_id,
            unix_ns,
        };
        (record, ctx)
    }
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
    /// Latest time any input carried (end of a recording without a shutdown frame).
    latest_ns: u64,
    /// An [`Input::Shutdown`] was fed.
    finished: bool,
    spans: Option<Box<dyn SpanSink>>,
    /// Audit/alert (and optionally events) records as OTLP log records, when telemetry is on.
    logs: Option<Box<dyn LogRecordSink>>,
    stages: Option<Box<StageTimes>>,
    /// Files sessions wrote after reading sensitive ones, per uid: spans sessions, so it
    /// lives here (`context::TaintStore`; bounded, expiring by event time).
    taint: TaintStore,
    /// A gateway tool process's exec held back until the edge says who asked for it.
    pending: Option<(Event, Request)>,
    /// Pids to track found while resuming a held exec (handed out with the next outcome).
    resumed_track: Vec<u32>,
    /// Responses: decided from the decisions, followed through forks and exits.
    responder: Responder,
    pub stats: PipelineStats,
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
            responder: Responder::new(opts.enforce),
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
            latest_ns: 0,
            finished: false,
            spans: None,
            logs: None,
            stages: None,
            taint: TaintStore::default(),
            pending: None,
            resumed_track: Vec::new(),
            stats: PipelineStats::default(),
        }
    }

    /// The cross-session taint store.
    pub fn taint(&self) -> &TaintStore {
        &self.taint
    }

    /// Export one span per session to `spans` (telemetry on).
    pub fn with_spans(mut self, spans: Box<dyn SpanSink>) -> Self {
        self.spans = Some(spans);
        self
    }

    /// Hand every audit/alert record (and, if it wants them, every events.log record) to
    /// `logs` as it is written (telemetry on).
    pub fn with_logs(mut self, logs: Box<dyn LogRecordSink>) -> Self {
        self.logs = Some(logs);
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

    /// Feed one input; the single entry point of the pipeline (live, replay, bench, tests).
    pub fn feed(&mut self, input: Input<'_>) -> Outcome {
        let mut out = Outcome::default();
        if !matches!(input, Input::Attribution(_)) {
            // The input after a request is not its answer: none is coming.
            self.resolve_pending(None);
        }
        match input {
            Input::Attribution(answer) => {
                let before = (
                    self.stats.accepted,
                    self.stats.audit_records,
                    self.stats.alert_records,
                );
                out.event = self.resolve_pending(Some(answer));
                out.accepted = self.stats.accepted > before.0;
                out.audit_records = self.stats.audit_records - before.1;
                out.alert_records = self.stats.alert_records - before.2;
            }
            Input::Scan(seed) => {
                self.latest_ns = self.latest_ns.max(seed.now_ns);
                for p in &seed.processes {
                    let pids = self
                        .tracker
                        .seed(p.pid, p.ppid, &p.comm, &p.exec(), seed.now_ns);
                    out.track.extend(pids);
                }
            }
            Input::Record(raw) => match decode(raw) {
                Ok(ev) => {
                    self.latest_ns = self.latest_ns.max(ev.ktime_ns);
                    let before = (
                        self.stats.accepted,
                        self.stats.audit_records,
                        self.stats.alert_records,
                    );
                    out.track = self.process(&ev);
                    out.attribute = self
                        .pending
                        .as_ref()
                        .filter(|(held, _)| held.pid == ev.pid && held.ktime_ns == ev.ktime_ns)
                        .map(|(_, req)| req.clone());
                    out.accepted = self.stats.accepted > before.0;
                    out.audit_records = self.stats.audit_records - before.1;
                    out.alert_records = self.stats.alert_records - before.2;
                    out.event = Some(ev);
                }
                Err(e) => {
                    self.stats.undecodable += 1;
                    out.decode_error = Some(e);
                }
            },
            Input::Tick(now_ns) => {
                self.latest_ns = self.latest_ns.max(now_ns);
                self.advance(now_ns);
            }
            Input::Lost(total) => {
                if total > self.stats.kernel_lost {
                    let lost = total - self.stats.kernel_lost;
                    self.stats.kernel_lost = total;
                    self.mark_incomplete(lost);
                }
            }
            Input::Shutdown(now_ns) => {
                self.finish(now_ns);
                self.finished = true;
            }
            Input::Reaped { now_ns, pids } => {
                self.latest_ns = self.latest_ns.max(now_ns);
                self.advance(now_ns);
                for &pid in pids {
                    if self.tracker.reaped(pid, now_ns) {
                        self.stats.reaped += 1;
                    }
                }
            }
        }
        out.track.append(&mut self.resumed_track);
        out.orders = self.responder.take_orders();
        out
    }

    /// Decide the held gateway tool process (if any) with the edge's `answer` (`None`: no
    /// answer, by recency) and take its exec in. Returns that exec.
    fn resolve_pending(&mut self, answer: Option<&Attribution>) -> Option<Event> {
        let (ev, req) = self.pending.take()?;
        self.tracker.attribute(&req, answer);
        let track = self.process_inner(&ev, false);
        self.resumed_track.extend(track);
        // A tool call of a transcript whose session was killed: the gateway goes on for it.
        if let Some(key) = answer
            .filter(|a| a.pid == req.pid && a.exec_ns == req.exec_ns)
            .and_then(|a| a.transcript_session.as_deref())
            && let Some(joined) = self.tracker.session_of(ev.pid)
            && let Some(r) = self.responder.continuation(key, joined, &ev)
        {
            self.write_response(joined, &ev, r);
        }
        Some(ev)
    }

    /// Processes the edge should check are still running: the remaining processes of
    /// sessions whose leader has exited, and every process of a session that lost events
    /// (an exit may have been lost). At most `limit`, in pid order.
    pub fn unconfirmed_pids(&self, limit: usize) -> Vec<u32> {
        self.tracker.unconfirmed(limit)
    }

    /// The input ended: a recording without a shutdown frame (`casa record`) finishes at the
    /// latest time any of its inputs carried. Nothing to do after an [`Input::Shutdown`].
    pub fn end_of_input(&mut self) {
        if !self.finished {
            let at = self.latest_ns;
            self.feed(Input::Shutdown(at));
        }
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

    /// The kernel lost `lost` more events: every session open now may miss some of its own
    /// (an exit too: the tracker has the edge confirm its processes), and its context says so
    /// (`history.events_lost`, evaluated with its next event).
    fn mark_incomplete(&mut self, lost: u64) {
        self.tracker.mark_lost();
        for s in self.sessions.values_mut() {
            s.incomplete = true;
            s.pending_eval |= s.ctx.note_lost(lost);
        }
    }

    /// Let time pass to `now_ns` (kernel clock): close sessions, write periodic snapshots.
    fn advance(&mut self, now_ns: u64) {
        // A held exec comes before whatever let time pass.
        self.resolve_pending(None);
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

    /// Process one decoded event. Returns the pids the edge must track.
    fn process(&mut self, ev: &Event) -> Vec<u32> {
        if self.opts.redact
            && let Detail::Exec(_) = ev.detail
        {
            let t = stage_start(&self.stages);
            let mut owned = ev.clone();
            let redacted = crate::redact::redact_event(&mut owned);
            stage_end(&mut self.stages, t, Stage::Redact, 0);
            if redacted {
                self.stats.redacted += 1;
                let track = self.process_inner(&owned, true);
                self.ask_with_original(ev);
                return track;
            }
        }
        self.process_inner(ev, true)
    }

    /// A held exec's request carries the command as the kernel saw it, not as redaction left
    /// it (the transcript has the original).
    fn ask_with_original(&mut self, ev: &Event) {
        if let Some((held, req)) = &mut self.pending
            && held.pid == ev.pid
            && held.ktime_ns == ev.ktime_ns
            && let Detail::Exec(x) = &ev.detail
            && let Some((command, state_dir)) =
                crate::session::attribution::wrapped_command(&x.argv)
        {
            req.command = command;
            req.state_dir = state_dir;
        }
    }

    /// Take one event in (`fresh`: first time; a held exec resumed is not counted twice).
    fn process_inner(&mut self, ev: &Event, fresh: bool) -> Vec<u32> {
        if fresh {
            self.stats.events += 1;
            self.stats.events_by_kind[kind_index(&ev.detail)] += 1;
        }
        let (t, sinks_before) = (stage_start(&self.stages), sinks_ns(&self.stages));
        self.advance(ev.ktime_ns);
        let obs = self.tracker.observe(ev);
        if let Some(req) = obs.attribute {
            // Held until the edge answers (the next input) or does not.
            stage_end(&mut self.stages, t, Stage::Sessions, 0);
            self.pending = Some((ev.clone(), req));
            return obs.track;
        }
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
        let actions = obs.track;
        // Responses follow the session's forks (which are not session events) and exits.
        let responding = match (&ev.detail, &obs.verdict) {
            _ if !self.responder.following() => None,
            (Detail::Fork(_), _) => self.tracker.session_of(ev.pid),
            (_, Verdict::Session { session, .. }) => Some(*session),
            _ => None,
        };
        if let Some(id) = responding
            && let Some(r) = self.responder.follow(id, ev)
        {
            self.write_response(id, ev, r);
        }
        match obs.verdict {
            Verdict::Outside => {}
            Verdict::PendingShellExec { .. } => self.stats.pending_shells += 1,
            Verdict::Session {
                session,
                runtime,
                pending_shell,
                runtime_started,
            } => {
                let t = stage_start(&self.stages);
                let actor = filter::Actor {
                    runtime,
                    runtime_started,
                };
                let reason = filter::ignore_reason(ev, &self.filter, actor);
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
        let (created, leader, kind, midway, reparented, attribution) =
            self.tracker.session(id).map_or(
                (ev.ktime_ns, ev.pid, SessionKind::Cli, false, 0, None),
                |s| {
                    let reparented = s.reparented.len() as u64 + s.reparented_dropped;
                    (
                        s.created_ns,
                        s.leader,
                        s.kind,
                        s.joined_midway,
                        reparented,
                        s.attribution,
                    )
                },
            );
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
                pending_eval: false,
                attribution: None,
            }
        });
        state.attribution = attribution;
        let first = !state.recorded;
        state.recorded = true;
        let reparented_changed = state.ctx.note_reparented(reparented);
        let changed = state.ctx.apply_in(
            Observed {
                event: ev,
                lineage: &lineage,
            },
            h,
            Some(&mut self.taint),
        ) || reparented_changed
            || std::mem::take(&mut state.pending_eval);
        stage_end(&mut self.stages, t, Stage::Context, 0);
        let t = stage_start(&self.stages);
        let ts = self.clock.rfc3339(ev.ktime_ns);
        let line = EventRecord::new(ev, ts.clone(), id);
        self.sink.write(Record::Event(&line));
        if let Some(logs) = self.logs.as_mut().filter(|l| l.wants_events()) {
            let ctx = LogContext {
                trace_id: state.trace_id,
                span_id: state.span_id,
                unix_ns: self.clock.unix_ns(ev.ktime_ns),
            };
            logs.export(Record::Event(&line), &ctx);
        }
        stage_end(&mut self.stages, t, Stage::Sinks, 0);
        if let Some(span) = &mut state.span {
            span.event(ev, self.clock.unix_ns(ev.ktime_ns), &ts);
        }
        let prevented = match &ev.detail {
            Detail::Exec(x) if x.result == 0 => {
                if self.responder.enforcing()
                    && name_in(basename(&x.path.to_text()), &h.network_tool_names)
                {
                    self.responder.network_tool(self.rules.response(), ev.pid);
                }
                if !self.responder.may_prevent(self.rules.response(), x) {
                    None
                } else {
                    let facts = state.ctx.facts();
                    let fetched = [x.facts.file, x.facts.script_file]
                        .into_iter()
                        .flatten()
                        .any(|f| facts.is_fetched_id((f.dev, f.ino)));
                    self.responder
                        .prevented(self.rules.response(), id, ev, fetched)
                }
            }
            _ => None,
        };
        if self.responder.enforcing() && changed {
            self.responder.fetched(state.ctx.facts().fetched_ids());
        }
        if let Some(r) = prevented {
            self.write_response(id, ev, r);
        }
        let Some(state) = self.sessions.get_mut(&id) else {
            return;
        };

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
                d.action.as_str(),
                ctx.history
            );
        }
        if d.triggered.is_empty() {
            return;
        }
        state.final_action = state.final_action.max(d.action);
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
                action: d.action.as_str(),
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
        let pids = self
            .tracker
            .session(id)
            .map(|s| s.live_pids())
            .unwrap_or_default();
        let key = self
            .tracker
            .session(id)
            .and_then(|s| s.transcript_key())
            .map(str::to_owned);
        let response = self.responder.decide(
            self.rules.response(),
            id,
            d.score,
            d.triggered.iter().map(|t| t.name.as_str()),
            pids,
            ev,
        );
        if let (Some(r), Some(key)) = (&response, key)
            && r.actions.contains(&ResponseAction::Kill.name())
        {
            self.responder.killed_transcript(&key, id);
            self.tracker.ask_for_every_tool_call();
        }
        if let (Some(r), Some(span)) = (&response, &mut state.span) {
            span.response(ev, self.clock.unix_ns(ev.ktime_ns), &ts, r);
        }
        if response.is_some() {
            self.stats.responses += 1;
        }
        if !audit && response.is_none() {
            return;
        }
        let t = stage_start(&self.stages);
        let (record, ctx) = state.audit_record(
            id,
            ev,
            ts,
            self.clock.unix_ns(ev.ktime_ns),
            DecisionRecord {
                action: d.action.as_str(),
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
            response,
        );
        self.write_decision(&record, alert, &ctx);
        if alert {
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

    /// An audit record (and an alert record when the session is at ALERT) for a response
    /// that is not part of a decision: a preventive kill, or the end of a kill order. Its
    /// decision is the session's standing one, with no newly triggered rules.
    fn write_response(&mut self, id: SessionId, ev: &Event, r: ResponseRecord) {
        let Some(state) = self.sessions.get_mut(&id) else {
            return;
        };
        let ts = self.clock.rfc3339(ev.ktime_ns);
        if let Some(span) = &mut state.span {
            span.response(ev, self.clock.unix_ns(ev.ktime_ns), &ts, &r);
        }
        let t = self.rules.thresholds();
        let alert = state.final_action == Action::Alert;
        let (record, ctx) = state.audit_record(
            id,
            ev,
            ts,
            self.clock.unix_ns(ev.ktime_ns),
            DecisionRecord {
                action: state.final_action.as_str(),
                score: state.scorer.score(),
                log_threshold: t.log,
                alert_threshold: t.alert,
                triggered_rules: Vec::new(),
            },
            Some(r),
        );
        self.stats.responses += 1;
        self.write_decision(&record, alert, &ctx);
    }

    /// An audit record, and the same as an alert record when `alert`: to the logs, and to
    /// the OTLP log records when telemetry is on.
    fn write_decision(&mut self, record: &FullLogRecord, alert: bool, ctx: &LogContext) {
        self.sink.write(Record::Audit(record));
        self.stats.audit_records += 1;
        if let Some(logs) = &mut self.logs {
            logs.export(Record::Audit(record), ctx);
        }
        if alert {
            self.sink.write(Record::Alert(record));
            self.stats.alert_records += 1;
            if let Some(logs) = &mut self.logs {
                logs.export(Record::Alert(record), ctx);
            }
        }
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
                kind: crate::names::variant_name(&kind),
                leader_pid: leader,
                invocation: self.invocations.get(&id).cloned().unwrap_or_default(),
                attribution: state.attribution.map(Method::as_str),
                close_reason: closed.map(|c| crate::names::variant_name(&c.reason)),
                joined_midway: midway,
                incomplete: state.incomplete,
                events_lost: state.ctx.facts().lost,
                taint_origins: &state.ctx.facts().origins,
                final_score: state.scorer.score(),
                final_action: state.final_action.as_str(),
            },
        };
        self.sink.write(Record::Session(&record));
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
        self.responder.closed(c.id);
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
                final_action: state.final_action.as_str(),
                kind: c.kind,
                ctx: state.ctx.context(),
            });
            sink.export(span);
        }
    }

    /// End of input (shutdown or end of replay) at `now_ns`: close every session, flush.
    fn finish(&mut self, now_ns: u64) {
        self.advance(now_ns);
        for c in self.tracker.close_all(now_ns.max(self.last_ns)) {
            self.close(c);
        }
        self.sink.flush();
        if let Some(spans) = &mut self.spans {
            spans.shutdown();
        }
        if let Some(logs) = &mut self.logs {
            logs.shutdown();
        }
    }

    pub fn flush(&mut self) {
        self.sink.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{Bytes, Connect, Exec, Exit, Fork, Open, SockAddr},
        sink::{Log, MemorySink},
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

    fn open_flags(path: &str, flags: u32) -> Detail {
        match open(path) {
            Detail::Open(o) => Detail::Open(Open { flags, ..o }),
            d => d,
        }
    }

    fn connect(ip: &str, port: u16) -> Detail {
        Detail::Connect(Connect {
            result: 0,
            fd: 3,
            addr: SockAddr::Inet {
                addr: ip.parse().unwrap(),
                port,
                v4_mapped: false,
            },
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
        let rules = RuleSet::parse(include_str!("../../rules.casa.json"), "rules.casa.json")
            .expect("CASA's rules");
        pipeline_with(rules)
    }

    /// A pipeline with casa's own shipped rules (`rules.json`).
    fn casa_pipeline() -> Pipeline<MemorySink> {
        pipeline_with(
            RuleSet::parse(include_str!("../../rules.json"), "rules.json").expect("rules"),
        )
    }

    fn pipeline_with(rules: RuleSet) -> Pipeline<MemorySink> {
        Pipeline::new(
            rules,
            FilterPolicy::default(),
            BootClock { offset_ns: 0 },
            MemorySink::default(),
            PipelineOptions::default(),
        )
    }

    fn start(p: &mut Pipeline<MemorySink>, t: u64) {
        start_as(p, t, 100, 110);
    }

    /// An `openclaw agent` invocation `leader` whose tool process `tool` runs `cat`.
    fn start_as(p: &mut Pipeline<MemorySink>, t: u64, leader: u32, tool: u32) {
        let launcher = format!("{BIN}/openclaw");
        p.process(&ev(
            t,
            leader,
            leader,
            1,
            exec(
                &format!("{BIN}/node"),
                &["node", &launcher, "agent", "--agent", "main", "-m", "x"],
            ),
        ));
        p.process(&ev(
            t,
            leader,
            leader,
            1,
            Detail::Fork(Fork {
                child_pid: tool,
                child_tid: tool,
            }),
        ));
        p.process(&ev(
            t,
            tool,
            tool,
            leader,
            exec("/usr/bin/cat", &["cat", "/etc/os-release"]),
        ));
    }

    fn session_lines(p: &Pipeline<MemorySink>) -> Vec<serde_json::Value> {
        p.sink()
            .of(Log::Sessions)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn history_of(p: &Pipeline<MemorySink>, pid: u32) -> crate::context::History {
        p.sessions
            .values()
            .find(|s| s.ctx.has_process(pid))
            .expect("in a session")
            .ctx
            .context()
            .history
            .clone()
    }

    /// A gateway (50, its spawn broker 51) and two overlapping CLI turns through it: A (100,
    /// `--session-id A`) and B (200, newer). Tool processes: 60 runs A's command, 70 B's, 80
    /// one the transcript does not know, 90 one asked about with no answer at all. Fed as the
    /// live edge does (`answer` plays the transcript), recorded, and replayed.
    fn overlapping_gateway_turns(
        answer: impl Fn(&Request) -> Option<Attribution>,
    ) -> (Vec<crate::recording::Frame>, Pipeline<MemorySink>) {
        use crate::{decode::build, recording::Frame};
        let launcher = format!("{BIN}/openclaw");
        let node = format!("{BIN}/node");
        let worker = "/opt/node/lib/node_modules/openclaw/dist/process/spawn-broker/worker.js";
        let cli = |t: u64, pid: u32, id: &str, m: &str| {
            build::exec(
                t,
                pid,
                &node,
                &[
                    "node",
                    &launcher,
                    "agent",
                    "--agent",
                    "main",
                    "--session-id",
                    id,
                    "-m",
                    m,
                ],
            )
        };
        let shim = |t: u64, pid: u32, cmd: &str| {
            let snap = "/srv/oc/.openclaw/cache/shell-snapshots/ab.sh";
            let script = format!(
                "if [ -r '{snap}' ]; then . '{snap}'; fi\nexport PATH='/usr/bin:/bin'\neval 'export PATH=\"${{OPENCLAW_PREPEND_PATH}}${{PATH:+:$PATH}}\"; unset OPENCLAW_PREPEND_PATH; {cmd}'"
            );
            build::exec(
                t,
                pid,
                "/usr/bin/dash",
                &[
                    "/bin/sh",
                    "-c",
                    "echo 1000 > /proc/self/oom_score_adj 2>/dev/null; exec \"$0\" \"$@\"",
                    "/bin/bash",
                    "--noprofile",
                    "--norc",
                    "-c",
                    &script,
                ],
            )
        };
        let tool = |t: u64, pid: u32, cmd: &str, prog: &str| {
            vec![
                build::fork(t, 51, pid),
                shim(t, pid, cmd),
                build::fork(t, pid, pid + 1),
                build::exec(t, pid + 1, prog, &[prog, "/etc/os-release"]),
                build::exit(t + 1, pid + 1, pid + 1, 0, true),
                build::exit(t + 1, pid, pid, 0, true),
            ]
        };
        let mut records = vec![
            build::exec(S, 50, &node, &["node", &launcher, "gateway", "run"]),
            build::fork(S, 50, 51),
            build::exec(S, 51, &node, &["node", worker]),
            cli(2 * S, 100, "A", "go A"),
            cli(3 * S, 200, "B", "go B"),
        ];
        records.extend(tool(4 * S, 60, "cat /etc/os-release", "/usr/bin/cat"));
        records.extend(tool(5 * S, 70, "head -1 /etc/os-release", "/usr/bin/head"));
        records.extend(tool(6 * S, 80, "tail -1 /etc/os-release", "/usr/bin/tail"));
        let late = tool(7 * S, 90, "wc -l /etc/os-release", "/usr/bin/wc");
        let mut p = pipeline();
        let mut fed = Vec::new();
        let mut feed = |p: &mut Pipeline<MemorySink>, frame: Frame| {
            let out = p.feed(frame.input().unwrap());
            fed.push(frame);
            if let Some(req) = out.attribute
                && let Some(a) = answer(&req)
            {
                let out = p.feed(Input::Attribution(&a));
                assert!(out.attribute.is_none());
                fed.push(Frame::Attribution(a));
            }
        };
        for r in records {
            feed(&mut p, Frame::Record(r));
        }
        // 90's exec is the last record before a tick: no answer came.
        feed(&mut p, Frame::Record(late[0].clone()));
        feed(&mut p, Frame::Record(late[1].clone()));
        feed(&mut p, Frame::Tick(7 * S + 1));
        for r in &late[2..] {
            feed(&mut p, Frame::Record(r.clone()));
        }
        for (t, pid) in [(9 * S, 100), (9 * S, 200)] {
            feed(&mut p, Frame::Record(build::exit(t, pid, pid, 0, true)));
        }
        feed(&mut p, Frame::Finish(20 * S));
        (fed, p)
    }

    /// `session_id` of the accepted exec of `pid`, and each session's `attribution`.
    fn attributed(p: &Pipeline<MemorySink>) -> (BTreeMap<u64, u64>, BTreeMap<u64, String>) {
        let events = p
            .sink()
            .of(Log::Events)
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["type"] == "EXECVE")
            .map(|e| {
                (
                    e["pid"].as_u64().unwrap(),
                    e["session_id"].as_u64().unwrap(),
                )
            })
            .collect();
        let sessions = session_lines(p)
            .iter()
            .map(|l| {
                (
                    l["session"]["leader_pid"].as_u64().unwrap(),
                    l["session"]["attribution"]
                        .as_str()
                        .unwrap_or("-")
                        .to_owned(),
                )
            })
            .collect();
        (events, sessions)
    }

    #[test]
    fn overlapping_gateway_turns_get_their_own_tool_processes_also_in_replay() {
        let transcript = |req: &Request| {
            let session = match req.command.as_str() {
                "cat /etc/os-release" => Some("A"),
                "head -1 /etc/os-release" => Some("B"),
                "tail -1 /etc/os-release" => None, // not in the transcript
                _ => return None,                  // no answer at all
            };
            assert_eq!(req.state_dir.as_deref(), Some("/srv/oc/.openclaw"));
            Some(Attribution {
                pid: req.pid,
                exec_ns: req.exec_ns,
                transcript_session: session.map(str::to_owned),
                message: None,
            })
        };
        let (frames, live) = overlapping_gateway_turns(transcript);
        let (events, sessions) = attributed(&live);
        let id = |leader: u32| {
            session_lines(&live)
                .iter()
                .find(|l| l["session"]["leader_pid"] == leader)
                .unwrap()["session_id"]
                .as_u64()
                .unwrap()
        };
        let (a, b) = (id(100), id(200));
        assert_eq!(events[&61], a, "A's command went to A although B is newer");
        assert_eq!(events[&71], b);
        assert_eq!(
            events[&81], b,
            "unknown to the transcript: the newest, by recency"
        );
        assert_eq!(events[&91], b, "no answer: by recency");
        assert_eq!(sessions[&100], "transcript");
        assert_eq!(
            sessions[&200], "recency",
            "the weaker method is the session's"
        );
        assert_eq!(
            live.stats.events, 31,
            "31 records, a held exec counted once"
        );
        let answers = frames
            .iter()
            .filter(|f| matches!(f, crate::recording::Frame::Attribution(_)))
            .count();
        assert_eq!(answers, 3);
        // Replay: the recorded answers give the same logs, with no transcript at hand.
        let path = std::env::temp_dir().join(format!("casa-attr-{}.rec", std::process::id()));
        let meta = crate::recording::Meta::now(BootClock { offset_ns: 0 }, &[], false);
        let mut rec = crate::recording::Recorder::create(&path, &meta).unwrap();
        for f in &frames {
            rec.write(&f.input().unwrap()).unwrap();
        }
        rec.finish(&crate::recording::Summary::default()).unwrap();
        let mut r = crate::recording::Reader::open(&path).unwrap();
        let mut replayed = pipeline();
        while let Some(f) = r.next_frame().unwrap() {
            if let Some(input) = f.input() {
                replayed.feed(input);
            }
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(replayed.sink().lines, live.sink().lines);
        // Without any answer (a recording made before attribution existed), every tool
        // process joins by recency, as before: the newest CLI session, B.
        let (_, old) = overlapping_gateway_turns(|_| None);
        let (events, sessions) = attributed(&old);
        let newest = session_lines(&old)
            .iter()
            .find(|l| l["session"]["leader_pid"] == 200)
            .unwrap()["session_id"]
            .as_u64()
            .unwrap();
        for pid in [61, 71, 81, 91] {
            assert_eq!(events[&pid], newest, "tool of {pid}");
        }
        assert_eq!(sessions[&200], "recency");
        assert_eq!(sessions[&100], "-");
    }

    #[test]
    fn a_secret_split_across_two_sessions_is_one_fact() {
        let mut p = pipeline();
        // Session 1: `cp /root/.ssh/id_rsa /tmp/loot` (sensitive under the shipped lists).
        start_as(&mut p, S, 100, 110);
        p.process(&ev(2 * S, 110, 110, 100, open("/root/.ssh/id_rsa")));
        p.process(&ev(2 * S, 110, 110, 100, open_flags("/tmp/loot", 0x241)));
        p.process(&ev(3 * S, 110, 110, 100, exit(true, true)));
        p.process(&ev(3 * S, 100, 100, 1, exit(true, true)));
        p.advance(10 * S);
        let closed = session_lines(&p);
        assert_eq!(closed.len(), 1);
        let first = closed[0]["session_id"].as_u64().unwrap();
        assert!(closed[0]["session"].get("taint_origins").is_none());
        // Session 2 (same uid), a minute later: sends it.
        start_as(&mut p, 60 * S, 200, 210);
        p.process(&ev(61 * S, 210, 210, 200, open("/tmp/loot")));
        assert!(
            !history_of(&p, 210).tainted_file_sent,
            "opened, not sent yet"
        );
        p.process(&ev(62 * S, 210, 210, 200, connect("203.0.113.7", 443)));
        let hist = history_of(&p, 210);
        assert!(hist.tainted_file_sent);
        let origin = format!("session {first} wrote /tmp/loot after reading /root/.ssh/id_rsa");
        assert_eq!(hist.taint_origins, std::slice::from_ref(&origin));
        p.finish(70 * S);
        let lines = session_lines(&p);
        let second = lines.last().unwrap();
        assert_ne!(second["session_id"].as_u64().unwrap(), first);
        assert_eq!(
            second["session"]["taint_origins"],
            serde_json::json!([origin])
        );
        assert_eq!(p.taint().len(), 1);
    }

    #[test]
    fn seventy_cheap_opens_between_write_and_run_still_score() {
        let mut p = pipeline();
        start(&mut p, S);
        p.process(&ev(2 * S, 110, 110, 100, open_flags("/tmp/x.sh", 0x241)));
        let before = p.stats.accepted;
        for i in 0..70 {
            p.process(&ev(2 * S + i, 110, 110, 100, open("/etc/hostname")));
        }
        assert_eq!(
            p.stats.accepted,
            before + 70,
            "the cheap opens reach the ring"
        );
        p.process(&ev(3 * S, 110, 110, 100, exec("/tmp/x.sh", &["/tmp/x.sh"])));
        let hist = history_of(&p, 110);
        assert!(hist.write_then_exec_same_path);
        let audit = p.sink().of(Log::Audit);
        assert!(
            audit
                .iter()
                .any(|l| l.contains("\"write_then_exec_same_path\"")),
            "{audit:?}"
        );
    }

    #[test]
    fn lost_events_are_evidence_with_their_count() {
        let mut p = pipeline();
        start(&mut p, S);
        p.process(&ev(2 * S, 110, 110, 100, open("/etc/os-release")));
        assert!(!history_of(&p, 110).events_lost);
        p.feed(Input::Lost(5));
        p.feed(Input::Lost(5)); // no growth: nothing new lost
        p.feed(Input::Lost(12));
        let hist = history_of(&p, 110);
        assert!(hist.events_lost);
        assert_eq!(hist.events_lost_count, 12);
        p.finish(10 * S);
        let line = &session_lines(&p)[0]["session"];
        assert_eq!(line["events_lost"], 12);
        assert_eq!(line["incomplete"], true);
        // A session that lost nothing says nothing.
        let mut p = pipeline();
        start(&mut p, S);
        p.process(&ev(2 * S, 110, 110, 100, open("/etc/os-release")));
        p.finish(10 * S);
        assert!(session_lines(&p)[0]["session"].get("events_lost").is_none());
    }

    #[test]
    fn a_loss_is_scored_with_the_sessions_next_event() {
        let mut p = casa_pipeline();
        start(&mut p, S);
        p.process(&ev(2 * S, 110, 110, 100, open("/etc/os-release")));
        p.feed(Input::Lost(40));
        assert!(p.sink().of(Log::Audit).is_empty());
        // The loss changed the context without an event: the next event is evaluated even
        // though it changes nothing itself.
        p.process(&ev(3 * S, 110, 110, 100, open("/etc/os-release")));
        let audit = p.sink().of(Log::Audit);
        assert!(
            audit
                .iter()
                .any(|l| l.contains("\"events_lost_during_session\"")),
            "{audit:?}"
        );
    }

    #[test]
    fn a_daemonised_process_is_a_fact_of_its_session() {
        let mut p = pipeline();
        start(&mut p, S);
        // `setsid sh -c 'sleep 45; …' &`: 110 forks 120 and exits; 120 acts later.
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
        p.process(&ev(
            2 * S,
            120,
            120,
            110,
            exec("/usr/bin/sleep", &["sleep", "45"]),
        ));
        assert!(!history_of(&p, 120).reparented);
        p.process(&ev(3 * S, 110, 110, 100, exit(true, true)));
        p.process(&ev(4 * S, 100, 100, 1, exit(true, true)));
        p.process(&ev(48 * S, 120, 120, 1, open("/home/u/.ssh/id_rsa")));
        let hist = history_of(&p, 120);
        assert!(hist.reparented);
        assert_eq!(hist.reparented_count, 1);
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
        // The tool (110) finishes first; the session ends grace after its last process.
        p.process(&ev(10 * S, 110, 110, 100, exit(true, true)));
        p.process(&ev(11 * S, 100, 100, 1, exit(true, true)));
        p.advance(13 * S + 1);
        let s = p.sink().of(Log::Sessions);
        assert_eq!(s.len(), 1);
        assert!(s[0].contains("\"session_closed\""));
        assert_eq!(p.session_states(), 0, "session state is freed on close");
    }

    #[test]
    fn a_process_that_outlives_the_invocation_keeps_its_session_open() {
        let closed = |p: &Pipeline<MemorySink>| {
            p.sink()
                .of(Log::Sessions)
                .iter()
                .filter(|l| l.contains("\"session_closed\""))
                .count()
        };
        let mut p = pipeline();
        start(&mut p, S);
        // The invocation exits while its tool (110) still runs, as a daemonised payload
        // would; what 110 does later is still the session's.
        p.process(&ev(2 * S, 100, 100, 1, exit(true, true)));
        p.advance(40 * S);
        assert_eq!(closed(&p), 0, "the session closed while its subtree lived");
        let before = p.stats.accepted;
        p.process(&ev(41 * S, 110, 110, 1, open("/home/u/.ssh/id_rsa")));
        assert_eq!(
            p.stats.accepted,
            before + 1,
            "the survivor's open is the session's"
        );
        p.process(&ev(42 * S, 110, 110, 1, exit(true, true)));
        p.advance(44 * S + 1);
        assert_eq!(closed(&p), 1);
    }

    #[test]
    fn a_lost_exit_found_gone_by_the_edge_does_not_hold_the_session_open() {
        let closed = |p: &Pipeline<MemorySink>| {
            p.sink()
                .of(Log::Sessions)
                .iter()
                .filter(|l| l.contains("\"session_closed\""))
                .count()
        };
        let mut p = pipeline();
        start(&mut p, S);
        // The ring overflowed: 110's exit never arrives.
        p.feed(Input::Lost(7));
        assert_eq!(p.unconfirmed_pids(10), vec![100, 110]);
        p.process(&ev(2 * S, 100, 100, 1, exit(true, true)));
        p.advance(20 * S);
        assert_eq!(closed(&p), 0, "110 may still run");
        assert_eq!(p.unconfirmed_pids(1), vec![110], "bounded");
        p.feed(Input::Reaped {
            now_ns: 21 * S,
            pids: &[110, 4242],
        });
        assert_eq!(
            p.stats.reaped, 1,
            "a pid outside every session is not counted"
        );
        p.advance(23 * S + 1);
        assert_eq!(closed(&p), 1);
        assert!(p.unconfirmed_pids(10).is_empty());
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

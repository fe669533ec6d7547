//! Agent sessions: which events belong to which agent session.
//!
//! Sits right after decoding: every [`Event`] passes through [`Tracker::observe`], which keeps
//! the process table (lineage from fork/exec/exit), recognises the agent runtime's processes and
//! session-starting invocations ([`agent::AgentProfile`]), and says whether the event belongs to
//! a session. It is a pure state machine driven by event timestamps: the same events give the
//! same sessions, live or replayed.
//!
//! Beyond the original CASA (one global time window):
//! * several sessions at once, each owning the events of its own process subtree;
//! * a CLI invocation's own subtree is in its session (with `--local`, OpenClaw runs tools as
//!   its own descendants);
//! * through a gateway, a tool process started by the runtime joins the CLI session that asked
//!   for it ([`attribution`]: the runtime's transcript names it, through an answer the edge
//!   feeds back; with no answer, the newest open CLI session, marked as by recency), or, when
//!   no CLI session is open, starts a `gateway` session (channel-driven turns are evaluated
//!   too);
//! * a CLI session closes `grace` after its leader exits; a gateway session `gateway_quiet`
//!   after its last process exits; any session after `idle` without events or at `max_age`, so
//!   a lost exit never keeps a session open forever; all per-session state is freed on close.

pub mod agent;
pub mod attribution;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::{
    context::LineageNode,
    event::{Bytes, Detail, Event, Exec},
};
pub use agent::AgentProfile;
use attribution::{Attribution, Method, Request};

/// Session identifier (1, 2, …) in order of creation.
pub type SessionId = u64;

/// How a session started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// An agent CLI invocation (`openclaw agent … -m …`).
    Cli,
    /// Tool activity of the runtime with no CLI invocation (gateway / chat channels).
    Gateway,
}

/// Why a session closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Every process of the CLI invocation's subtree exited (the leader and everything it
    /// started, daemons included) and the grace period passed.
    LeaderExit,
    /// A gateway session's processes all exited and the quiet period passed.
    Quiet,
    /// No event for the idle limit.
    Idle,
    /// The session reached its maximum age.
    MaxAge,
    /// casa stopped (or the replay ended) with the session still open.
    Shutdown,
}

/// Time limits, nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub grace_ns: u64,
    pub gateway_quiet_ns: u64,
    pub idle_ns: u64,
    pub max_age_ns: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            grace_ns: 2_000_000_000,
            gateway_quiet_ns: 10_000_000_000,
            idle_ns: 15 * 60 * 1_000_000_000,
            max_age_ns: 6 * 3600 * 1_000_000_000,
        }
    }
}

/// One open session.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    pub kind: SessionKind,
    /// The invocation's pid (CLI) or the first tool process (gateway).
    pub leader: u32,
    pub leader_ppid: u32,
    pub created_ns: u64,
    pub last_event_ns: u64,
    /// When the close countdown started and when it ends.
    pub closing: Option<(u64, u64)>,
    /// casa started (or restarted) while this session was already running.
    pub joined_midway: bool,
    /// Processes of the session whose parent exited while they lived (a daemonised or
    /// double-forked payload, anything that outlived the agent's turn): `(pid, time)`, the
    /// first [`REPARENTED_MAX`] of them.
    pub reparented: Vec<(u32, u64)>,
    /// How many more were re-parented beyond [`REPARENTED_MAX`] (the bound is itself a fact).
    pub reparented_dropped: u64,
    /// How the gateway tool processes that joined this CLI session were attributed (the
    /// weaker method when both were used); `None` when none joined.
    pub attribution: Option<Method>,
    /// The transcript session a CLI invocation names (`--session-id`).
    transcript_key: Option<String>,
    /// The message a CLI invocation sends (`-m`), for a transcript session it does not name.
    message: Option<String>,
    /// The kernel lost events while this session was open (an exit may be missing).
    lost_events: bool,
    /// Live processes of the session.
    live: HashSet<u32>,
}

impl Session {
    /// The transcript session a CLI invocation names (`--session-id`), if any.
    pub fn transcript_key(&self) -> Option<&str> {
        self.transcript_key.as_deref()
    }

    /// The session's live processes, in pid order.
    pub fn live_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.live.iter().copied().collect();
        pids.sort_unstable();
        pids
    }
}

/// Most re-parented processes a session remembers individually.
pub const REPARENTED_MAX: usize = 64;

/// A session that just closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub id: SessionId,
    pub closed_ns: u64,
    pub reason: CloseReason,
    /// `cli` or `gateway`.
    pub kind: &'static str,
}

fn kind_name(k: SessionKind) -> &'static str {
    crate::names::variant_name(&k)
}

#[derive(Clone, Debug)]
struct Proc {
    ppid: u32,
    /// Basename of the executable (or comm until an exec is seen).
    name: String,
    /// Part of the agent runtime (not a tool it runs).
    runtime: bool,
    /// Hidden from lineage (a bare shell wrapper).
    transparent: bool,
    /// Runtime housekeeping (a profile's `housekeeping` command or its descendant).
    housekeeping: bool,
    /// The runtime's tool plumbing (a profile's `tool_wrappers`), until it execs something
    /// else.
    wrapper: bool,
    /// The launcher script this process's last exec ran (`#!/usr/bin/env node`), for the
    /// interpreter exec that follows.
    launched: Option<Box<[u8]>>,
    /// A bare shell held back until it does something meaningful.
    pending_shell: bool,
    /// Started by the runtime itself (forked by a runtime process, or by a bare shell the
    /// runtime started), not by an agent command: only such processes can be the runtime's
    /// routine probes or held-back shells.
    runtime_started: bool,
    session: Option<SessionId>,
}

/// What the tracker says about one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not part of any session (or not an analysed kind: fork, thread exit).
    Outside,
    /// The exec of a bare shell (`sh` with no arguments): held back, dropped unless the shell
    /// itself later does something meaningful.
    PendingShellExec { session: SessionId },
    /// Belongs to `session`. `runtime`: the acting process is the agent runtime itself.
    /// `pending_shell`: the process is a held-back bare shell (the caller promotes it with
    /// [`Tracker::promote`] when the event is meaningful, or drops the event).
    /// `runtime_started`: the process was started by the runtime itself, not by an agent
    /// command (the filter treats routine probes as noise only then).
    Session {
        session: SessionId,
        runtime: bool,
        pending_shell: bool,
        runtime_started: bool,
    },
}

/// The result of [`Tracker::observe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub verdict: Verdict,
    /// A session this event started.
    pub started: Option<SessionId>,
    /// Processes that the kernel must now track (new runtime roots and session leaders).
    pub track: Vec<u32>,
    /// A gateway tool process whose session the edge can tell ([`attribution`]): the event
    /// was not taken in; the caller answers with [`Tracker::attribute`] (or without an
    /// answer) and observes the same event again.
    pub attribute: Option<Request>,
}

/// A decision about one gateway tool process, taken by [`Tracker::attribute`] and used when
/// its exec is observed again.
#[derive(Clone, Debug)]
struct Decision {
    pid: u32,
    exec_ns: u64,
    session: Option<SessionId>,
    method: Method,
}

/// The process table and the open sessions.
pub struct Tracker {
    profiles: Vec<AgentProfile>,
    patterns: Vec<agent::Patterns>,
    timeouts: Timeouts,
    procs: HashMap<u32, Proc>,
    sessions: BTreeMap<SessionId, Session>,
    next_id: SessionId,
    /// No session can close before this time (a lower bound of every open session's close,
    /// idle and max-age deadlines): `expire` scans the sessions only once it has passed.
    next_due_ns: u64,
    /// The attribution of the gateway tool process being asked about.
    decided: Option<Decision>,
    /// Ask about every gateway tool call, even with no CLI session open (set once a session
    /// naming a transcript was ordered killed: the gateway may go on with its calls).
    ask_always: bool,
}

fn basename(p: &[u8]) -> String {
    let b = p.rsplit(|&c| c == b'/').next().unwrap_or(p);
    String::from_utf8_lossy(b).into_owned()
}

/// Shells whose bare exec (no arguments) is held back (the original's pending shells).
const PENDING_SHELLS: [&str; 4] = ["sh", "bash", "dash", "zsh"];

fn is_bare_shell(x: &Exec) -> bool {
    let name = basename(x.path.as_bytes());
    PENDING_SHELLS.contains(&name.as_str()) && x.argv.len() <= 1
}

impl Tracker {
    /// A tracker for these runtimes. Profiles whose patterns do not compile contribute none
    /// (`cmd` validates them first and refuses to start).
    pub fn new(profiles: Vec<AgentProfile>, timeouts: Timeouts) -> Self {
        let patterns = profiles
            .iter()
            .filter_map(|p| p.patterns().ok())
            .filter(|p| !p.is_empty())
            .collect();
        Self {
            profiles,
            patterns,
            timeouts,
            procs: HashMap::new(),
            sessions: BTreeMap::new(),
            next_id: 1,
            next_due_ns: u64::MAX,
            decided: None,
            ask_always: false,
        }
    }

    fn is_runtime(&self, comm: &[u8], exe: &[u8], argv: &[Bytes]) -> bool {
        self.profiles.iter().any(|p| p.is_runtime(comm, exe, argv))
    }

    fn is_invocation(&self, x: &Exec) -> bool {
        self.profiles.iter().any(|p| p.is_invocation(x))
    }

    fn is_invocation_after(&self, x: &Exec, launched: Option<&[u8]>) -> bool {
        self.profiles
            .iter()
            .any(|p| p.is_invocation_after(x, launched))
    }

    /// Register a process found running at start-up (parents before children). Runtime
    /// processes become roots; a running invocation starts a session marked as joined
    /// mid-way; descendants of session members join their session. Returns pids to track.
    pub fn seed(&mut self, pid: u32, ppid: u32, comm: &[u8], exec: &Exec, now_ns: u64) -> Vec<u32> {
        let parent_session = self.procs.get(&ppid).and_then(|p| p.session);
        let runtime = self.is_runtime(comm, exec.path.as_bytes(), &exec.argv);
        let mut session = parent_session;
        let mut track = Vec::new();
        if session.is_none() && self.is_invocation(exec) {
            let id = self.open_session(SessionKind::Cli, pid, ppid, now_ns, true);
            self.name_transcript(id, exec);
            session = Some(id);
            track.push(pid);
        } else if runtime && session.is_none() {
            track.push(pid);
        }
        if session.is_none() && !runtime && !self.procs.contains_key(&ppid) {
            return track;
        }
        if let Some(id) = session
            && let Some(s) = self.sessions.get_mut(&id)
        {
            s.live.insert(pid);
        }
        self.procs.insert(
            pid,
            Proc {
                ppid,
                name: basename(exec.path.as_bytes()),
                runtime,
                transparent: false,
                housekeeping: false,
                wrapper: false,
                launched: None,
                pending_shell: false,
                runtime_started: false,
                session,
            },
        );
        track
    }

    fn open_session(
        &mut self,
        kind: SessionKind,
        leader: u32,
        ppid: u32,
        now_ns: u64,
        midway: bool,
    ) -> SessionId {
        let id = self.next_id;
        self.next_id += 1;
        let mut live = HashSet::new();
        live.insert(leader);
        self.note_due(self.timeout_at(now_ns, now_ns).0);
        self.sessions.insert(
            id,
            Session {
                id,
                kind,
                leader,
                leader_ppid: ppid,
                created_ns: now_ns,
                last_event_ns: now_ns,
                closing: None,
                joined_midway: midway,
                reparented: Vec::new(),
                reparented_dropped: 0,
                attribution: None,
                transcript_key: None,
                message: None,
                lost_events: false,
                live,
            },
        );
        id
    }

    /// Remember the transcript session and message a CLI invocation names.
    fn name_transcript(&mut self, id: SessionId, exec: &Exec) {
        if let Some(s) = self.sessions.get_mut(&id) {
            (s.transcript_key, s.message) = attribution::invocation_keys(&exec.argv);
        }
    }

    /// The open CLI session (not closing) an answer names: the one whose invocation has that
    /// `--session-id`, else one without `--session-id` whose message is the transcript
    /// session's user message; the newest when several do.
    fn named_by(&self, a: &Attribution) -> Option<SessionId> {
        let open = || {
            self.sessions
                .values()
                .rev()
                .filter(|s| s.kind == SessionKind::Cli && s.closing.is_none())
        };
        let key = a.transcript_session.as_ref()?;
        if let Some(s) = open().find(|s| s.transcript_key.as_ref() == Some(key)) {
            return Some(s.id);
        }
        let msg = a.message.as_ref()?;
        open()
            .find(|s| s.transcript_key.is_none() && s.message.as_ref() == Some(msg))
            .map(|s| s.id)
    }

    /// Decide which session the gateway tool process of `req` joins, from the edge's
    /// `answer` (ignored unless it is about that process): the session it names, else the
    /// newest open CLI session ([`Method::Recency`]). Observe the process's exec again next.
    pub fn attribute(&mut self, req: &Request, answer: Option<&Attribution>) -> Method {
        let named = answer
            .filter(|a| a.pid == req.pid && a.exec_ns == req.exec_ns)
            .and_then(|a| self.named_by(a));
        let (session, method) = match named {
            Some(id) => (Some(id), Method::Transcript),
            None => (self.newest_open_cli(), Method::Recency),
        };
        self.decided = Some(Decision {
            pid: req.pid,
            exec_ns: req.exec_ns,
            session,
            method,
        });
        method
    }

    /// The newest CLI session that is still open (for gateway-mode tool processes).
    fn newest_open_cli(&self) -> Option<SessionId> {
        self.sessions
            .values()
            .rev()
            .find(|s| s.kind == SessionKind::Cli && s.closing.is_none())
            .map(|s| s.id)
    }

    /// Observe one event (call [`Tracker::expire`] with its time first).
    pub fn observe(&mut self, ev: &Event) -> Observation {
        let mut obs = Observation {
            verdict: Verdict::Outside,
            started: None,
            track: Vec::new(),
            attribute: None,
        };
        match &ev.detail {
            Detail::Fork(f) => {
                if let Some(parent) = self.procs.get(&ev.pid).cloned() {
                    if let Some(id) = parent.session
                        && let Some(s) = self.sessions.get_mut(&id)
                    {
                        // The subtree is alive again: no close countdown.
                        s.live.insert(f.child_pid);
                        s.closing = None;
                    }
                    self.procs.insert(
                        f.child_pid,
                        Proc {
                            ppid: ev.pid,
                            name: parent.name.clone(),
                            runtime: parent.runtime,
                            transparent: false,
                            housekeeping: parent.housekeeping,
                            wrapper: false,
                            launched: None,
                            pending_shell: false,
                            runtime_started: parent.runtime
                                || (parent.pending_shell && parent.runtime_started),
                            session: parent.session,
                        },
                    );
                }
            }
            Detail::Exec(x) if x.result == 0 => self.observe_exec(ev, x, &mut obs),
            Detail::Exec(_) => {
                obs.verdict = self.membership(ev);
            }
            Detail::Exit(x) => {
                let verdict = if x.leader {
                    self.membership(ev)
                } else {
                    Verdict::Outside
                };
                if x.leader || x.process_gone {
                    self.observe_exit(ev, x.process_gone);
                }
                obs.verdict = verdict;
            }
            Detail::Open(_) | Detail::Connect(_) | Detail::Activity(_) => {
                obs.verdict = self.membership(ev);
            }
        }
        if let Verdict::Session { session, .. } | Verdict::PendingShellExec { session } =
            obs.verdict
            && let Some(s) = self.sessions.get_mut(&session)
        {
            s.last_event_ns = s.last_event_ns.max(ev.ktime_ns);
        }
        obs
    }

    /// Session membership of the acting process, adopting it from its parent when its fork
    /// was not seen.
    fn membership(&mut self, ev: &Event) -> Verdict {
        if !self.procs.contains_key(&ev.pid)
            && let Some(parent) = self.procs.get(&ev.ppid).cloned()
            && parent.session.is_some()
        {
            self.procs.insert(
                ev.pid,
                Proc {
                    ppid: ev.ppid,
                    name: String::from_utf8_lossy(ev.comm.as_bytes()).into_owned(),
                    runtime: parent.housekeeping,
                    transparent: false,
                    housekeeping: parent.housekeeping,
                    wrapper: false,
                    launched: None,
                    pending_shell: false,
                    runtime_started: parent.runtime,
                    session: parent.session,
                },
            );
            if let Some(s) = parent.session.and_then(|id| self.sessions.get_mut(&id)) {
                s.live.insert(ev.pid);
                s.closing = None;
            }
        }
        match self.procs.get(&ev.pid) {
            Some(p) => match p.session {
                Some(session) if self.sessions.contains_key(&session) => Verdict::Session {
                    session,
                    runtime: p.runtime,
                    pending_shell: p.pending_shell,
                    runtime_started: p.runtime_started,
                },
                _ => Verdict::Outside,
            },
            None => Verdict::Outside,
        }
    }

    fn observe_exec(&mut self, ev: &Event, x: &Exec, obs: &mut Observation) {
        let known = self.procs.get(&ev.pid).cloned();
        // Forked by a runtime process and not exec'd anything since: where the runtime's
        // housekeeping and tool wrappers start.
        let from_runtime = known.as_ref().is_some_and(|p| p.runtime);
        let was_wrapper = known.as_ref().is_some_and(|p| p.wrapper);
        let (mut housekeeping, mut wrapper) =
            (known.as_ref().is_some_and(|p| p.housekeeping), false);
        if !housekeeping && (from_runtime || was_wrapper) && !self.patterns.is_empty() {
            let text = x
                .argv
                .iter()
                .map(|a| a.to_text())
                .collect::<Vec<_>>()
                .join(" ");
            housekeeping = from_runtime && self.patterns.iter().any(|p| p.housekeeping(&text));
            wrapper = !housekeeping && self.patterns.iter().any(|p| p.tool_wrapper(&text));
        }
        let invocation =
            self.is_invocation_after(x, known.as_ref().and_then(|p| p.launched.as_deref()));
        // A launcher script run directly: remembered for the interpreter exec that follows.
        let launched = (x.script
            && self
                .profiles
                .iter()
                .any(|p| p.is_launcher_script(x.path.as_bytes())))
        .then(|| x.path.as_bytes().into());
        // Inside a session only the runtime's own lineage can be the runtime: a tool that
        // execs a file whose name merely contains a marker (`/tmp/openclaw-x.sh`) is still
        // the agent's doing, never exempt.
        let in_session = known
            .as_ref()
            .and_then(|p| p.session)
            .filter(|id| self.sessions.contains_key(id));
        let may_be_runtime = from_runtime || invocation || in_session.is_none();
        let runtime = housekeeping
            || (may_be_runtime && self.is_runtime(ev.comm.as_bytes(), x.path.as_bytes(), &x.argv));
        let parent_known = known.is_some() || self.procs.contains_key(&ev.ppid);

        let session = match in_session {
            Some(id) => Some(id),
            None if invocation => {
                let id = self.open_session(SessionKind::Cli, ev.pid, ev.ppid, ev.ktime_ns, false);
                self.name_transcript(id, x);
                obs.started = Some(id);
                obs.track.push(ev.pid);
                Some(id)
            }
            None if runtime => {
                if !known.as_ref().is_some_and(|p| p.runtime) {
                    obs.track.push(ev.pid);
                }
                None
            }
            // A tool process started by the runtime outside any session: the CLI session that
            // asked for it (decided by `attribute`, asked for here), else a gateway session.
            None if known.as_ref().is_some_and(|p| p.runtime) => {
                let decided = self
                    .decided
                    .take_if(|d| d.pid == ev.pid && d.exec_ns == ev.ktime_ns);
                let cli = match decided {
                    Some(d) => d.session.map(|id| (id, d.method)),
                    None => match self.newest_open_cli() {
                        newest if wrapper && (newest.is_some() || self.ask_always) => {
                            if let Some((command, state_dir)) =
                                attribution::wrapped_command(&x.argv)
                            {
                                obs.attribute = Some(Request {
                                    pid: ev.pid,
                                    exec_ns: ev.ktime_ns,
                                    command,
                                    state_dir,
                                });
                                return;
                            }
                            self.newest_open_cli().map(|id| (id, Method::Recency))
                        }
                        newest => newest.map(|id| (id, Method::Recency)),
                    },
                };
                match cli {
                    Some((id, method)) => {
                        if let Some(s) = self.sessions.get_mut(&id) {
                            s.live.insert(ev.pid);
                            s.attribution = Some(s.attribution.map_or(method, |m| m.max(method)));
                        }
                        Some(id)
                    }
                    None => {
                        let reopen = self
                            .sessions
                            .values()
                            .rev()
                            .find(|s| s.kind == SessionKind::Gateway && s.leader_ppid == ev.ppid)
                            .map(|s| s.id);
                        let id = match reopen {
                            Some(id) => id,
                            None => {
                                let id = self.open_session(
                                    SessionKind::Gateway,
                                    ev.pid,
                                    ev.ppid,
                                    ev.ktime_ns,
                                    false,
                                );
                                obs.started = Some(id);
                                id
                            }
                        };
                        if let Some(s) = self.sessions.get_mut(&id) {
                            s.live.insert(ev.pid);
                            s.closing = None;
                        }
                        Some(id)
                    }
                }
            }
            None => None,
        };
        if session.is_none() && !runtime && !parent_known {
            return;
        }
        // Started by the runtime (this process was forked by it, or by a bare shell it
        // started) and not exec'd anything of the agent's since.
        let runtime_started = from_runtime
            || known
                .as_ref()
                .is_some_and(|p| p.runtime_started && !p.wrapper);
        // A bare shell is held back only when the runtime started it: one an agent command
        // starts (`curl … | sh`, `base64 -d | sh`) runs what it reads, an exec like any other.
        let pending =
            session.is_some() && !invocation && !runtime && runtime_started && is_bare_shell(x);
        self.procs.insert(
            ev.pid,
            Proc {
                ppid: known.as_ref().map_or(ev.ppid, |p| p.ppid),
                name: basename(x.path.as_bytes()),
                runtime,
                transparent: pending,
                housekeeping,
                wrapper,
                launched,
                pending_shell: pending,
                runtime_started,
                session,
            },
        );
        obs.verdict = match session {
            Some(id) if pending => Verdict::PendingShellExec { session: id },
            // The wrapper's own exec is the runtime's doing (its children are the agent's).
            Some(id) => Verdict::Session {
                session: id,
                runtime: runtime || wrapper,
                pending_shell: false,
                runtime_started,
            },
            None => Verdict::Outside,
        };
    }

    fn observe_exit(&mut self, ev: &Event, gone: bool) {
        let Some(p) = self.procs.get(&ev.pid) else {
            return;
        };
        if let Some(id) = p.session
            && let Some(s) = self.sessions.get_mut(&id)
        {
            if gone {
                s.live.remove(&ev.pid);
                // Its children that still live are re-parented (to init or a subreaper):
                // they stay in the session, and that they outlived their parent is a fact.
                let mut orphans: Vec<u32> = s
                    .live
                    .iter()
                    .copied()
                    .filter(|pid| self.procs.get(pid).is_some_and(|c| c.ppid == ev.pid))
                    .collect();
                orphans.sort_unstable();
                for pid in orphans {
                    if s.reparented.len() < REPARENTED_MAX {
                        s.reparented.push((pid, ev.ktime_ns));
                    } else {
                        s.reparented_dropped += 1;
                    }
                }
            }
            // The session lives as long as its subtree: the countdown starts when the last
            // process exits (a CLI session's leader exiting is not enough: what it left
            // running is still the session's).
            if s.live.is_empty() && s.closing.is_none() {
                let grace = match s.kind {
                    SessionKind::Cli => self.timeouts.grace_ns,
                    SessionKind::Gateway => self.timeouts.gateway_quiet_ns,
                };
                // An exit stamped before the session began (events out of order) counts from
                // the session's start: a session never closes before it was created.
                let at = ev.ktime_ns.max(s.created_ns);
                let until = at.saturating_add(grace);
                s.closing = Some((at, until));
                self.next_due_ns = self.next_due_ns.min(until);
            }
        }
        if gone {
            self.procs.remove(&ev.pid);
        }
    }

    /// `pid` was found gone without an exit event (the kernel lost it): it leaves its session
    /// as if it had exited at `now_ns`. Returns whether it was a session's process.
    pub fn reaped(&mut self, pid: u32, now_ns: u64) -> bool {
        let in_session = self
            .procs
            .get(&pid)
            .and_then(|p| p.session)
            .and_then(|id| self.sessions.get(&id))
            .is_some_and(|s| s.live.contains(&pid));
        if in_session {
            let ev = Event {
                ktime_ns: now_ns,
                pid,
                tid: pid,
                ppid: self.procs.get(&pid).map_or(0, |p| p.ppid),
                uid: 0,
                gid: 0,
                cgroup_id: 0,
                comm: Bytes::default(),
                detail: Detail::Exit(crate::event::Exit {
                    exit_code: 0,
                    status: None,
                    signal: None,
                    core_dumped: false,
                    leader: true,
                    process_gone: true,
                }),
            };
            self.observe_exit(&ev, true);
        }
        in_session
    }

    /// Live processes whose exit the edge should confirm: those of sessions whose leader has
    /// exited (a daemon, or an exit the kernel lost) and those of sessions marked as having
    /// lost events. At most `limit`, in pid order.
    pub fn unconfirmed(&self, limit: usize) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .sessions
            .values()
            .filter(|s| !s.live.contains(&s.leader) || s.lost_events)
            .flat_map(|s| s.live.iter().copied())
            .collect();
        pids.sort_unstable();
        pids.truncate(limit);
        pids
    }

    /// The kernel lost events while these sessions were open: their exits may be missing.
    pub fn mark_lost(&mut self) {
        for s in self.sessions.values_mut() {
            s.lost_events = true;
        }
    }

    /// Un-hide a pending shell that did something meaningful.
    pub fn promote(&mut self, pid: u32) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.pending_shell = false;
            p.transparent = false;
        }
    }

    /// The visible lineage of `pid`, itself first, at most `max_depth + 1` nodes.
    pub fn lineage(&self, pid: u32, max_depth: usize) -> Vec<LineageNode> {
        let mut out = Vec::new();
        let mut seen: Vec<u32> = Vec::new();
        let mut cur = pid;
        for _ in 0..=max_depth.min(self.procs.len()) {
            // Pid reuse can make a parent chain loop: each process counts once.
            if seen.contains(&cur) {
                break;
            }
            seen.push(cur);
            let Some(p) = self.procs.get(&cur) else {
                break;
            };
            if !p.transparent {
                out.push(LineageNode {
                    pid: cur,
                    name: p.name.clone(),
                });
            }
            if p.ppid == cur || p.ppid == 0 {
                break;
            }
            cur = p.ppid;
        }
        out
    }

    /// Close every session whose time is up at `now_ns`, oldest close first.
    /// When a session with these times closes for idleness or age, and why.
    fn timeout_at(&self, last_event_ns: u64, created_ns: u64) -> (u64, CloseReason) {
        let idle_at = last_event_ns.saturating_add(self.timeouts.idle_ns);
        let max_at = created_ns.saturating_add(self.timeouts.max_age_ns);
        if idle_at <= max_at {
            (idle_at, CloseReason::Idle)
        } else {
            (max_at, CloseReason::MaxAge)
        }
    }

    fn note_due(&mut self, at: u64) {
        self.next_due_ns = self.next_due_ns.min(at);
    }

    pub fn expire(&mut self, now_ns: u64) -> Vec<Closed> {
        // Deadlines only move later between scans except where `next_due_ns` is lowered
        // (a session created, a close countdown started), so before it nothing is due.
        if now_ns <= self.next_due_ns {
            return Vec::new();
        }
        let mut next_due = u64::MAX;
        let mut closed: Vec<Closed> = Vec::new();
        for s in self.sessions.values() {
            if let Some((_, until)) = s.closing {
                if now_ns > until {
                    let reason = match s.kind {
                        SessionKind::Cli => CloseReason::LeaderExit,
                        SessionKind::Gateway => CloseReason::Quiet,
                    };
                    closed.push(Closed {
                        id: s.id,
                        kind: kind_name(s.kind),
                        closed_ns: until,
                        reason,
                    });
                    continue;
                }
                next_due = next_due.min(until);
            }
            let (at, reason) = self.timeout_at(s.last_event_ns, s.created_ns);
            if now_ns > at {
                closed.push(Closed {
                    id: s.id,
                    kind: kind_name(s.kind),
                    closed_ns: at,
                    reason,
                });
            } else {
                next_due = next_due.min(at);
            }
        }
        self.next_due_ns = next_due;
        closed.sort_by_key(|c| (c.closed_ns, c.id));
        for c in &closed {
            self.forget(c.id);
        }
        closed
    }

    /// Close every open session (casa stopping, or the end of a replay): a session whose
    /// close countdown was running closes as it would have (at the countdown's end); any
    /// other one closes with [`CloseReason::Shutdown`] at `now_ns`.
    pub fn close_all(&mut self, now_ns: u64) -> Vec<Closed> {
        let mut closed: Vec<Closed> = self
            .sessions
            .values()
            .map(|s| match s.closing {
                // Its countdown was running: nothing can arrive any more to stop it.
                Some((_, until)) => Closed {
                    id: s.id,
                    kind: kind_name(s.kind),
                    closed_ns: until,
                    reason: match s.kind {
                        SessionKind::Cli => CloseReason::LeaderExit,
                        SessionKind::Gateway => CloseReason::Quiet,
                    },
                },
                _ => Closed {
                    id: s.id,
                    kind: kind_name(s.kind),
                    closed_ns: now_ns.max(s.last_event_ns),
                    reason: CloseReason::Shutdown,
                },
            })
            .collect();
        closed.sort_by_key(|c| (c.closed_ns, c.id));
        for c in &closed {
            self.forget(c.id);
        }
        closed
    }

    fn forget(&mut self, id: SessionId) {
        if self.sessions.remove(&id).is_some() {
            for p in self.procs.values_mut() {
                if p.session == Some(id) {
                    p.session = None;
                }
            }
        }
    }

    /// Ask the edge about every gateway tool call from now on, even when no CLI session is
    /// open (responses need to know a call continues a killed session).
    pub fn ask_for_every_tool_call(&mut self) {
        self.ask_always = true;
    }

    /// The open session process `pid` belongs to, if any.
    pub fn session_of(&self, pid: u32) -> Option<SessionId> {
        self.procs.get(&pid).and_then(|p| p.session)
    }

    /// An open session by id.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn open_sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Processes in the table (bounded by the live processes of interest).
    pub fn process_count(&self) -> usize {
        self.procs.len()
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

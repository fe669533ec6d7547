//! [`SessionContext`]: the per-session fold from accepted events to [`Context`].
//!
//! Pipeline position: the session stage attributes an event to a session and decides that it
//! enters the security pipeline (tree, session and noise gates); the caller builds the exec's
//! lineage and hands the event here as an [`Observed`]. [`SessionContext::apply`] updates the
//! session's process state and event ring and returns whether the [`Context`] changed; the
//! rule engine then evaluates [`SessionContext::context`], and the sinks write
//! [`SessionContext::recent`] into `sessions.log`. Everything is driven by the events'
//! `ktime_ns`; nothing reads a clock.
//!
//! # Semantics
//!
//! The original CASA's (reference §5.2–§5.4):
//!
//! * Process state is keyed by tgid and created by any accepted event. An exec records the
//!   path, the lineage (visible nodes, target first) and its depth, and contributes
//!   `execution.*` and `capability.*`; an exit contributes `execution.*` again (for a process
//!   never seen exec'ing, from its comm). Both groups are sticky ORs over the session
//!   (`dangerous_count`: maximum).
//! * `history.*` sequence flags are over the whole session (the ring of the last
//!   `recent_event_limit` events, arrival order, plus what left it), sticky: see
//!   [`super::history_reference`] for the definitions and `history.rs` for how they are
//!   maintained without keeping the events. The other `history.*` fields come from the
//!   session's bounded fact sets (`facts.rs`), fed by every folded event, and from what the
//!   pipeline hands over: the tracker's re-parented processes
//!   ([`SessionContext::note_reparented`]), the kernel's losses
//!   ([`SessionContext::note_lost`]) and the cross-session taint store
//!   ([`SessionContext::apply_in`]).
//! * [`SessionContext::prune_transparent_shell`] is the original's §4.3 normalisation: a
//!   shell that only wrapped routine commands is removed with its ring entries, and
//!   `execution`/`capability` are rebuilt from the remaining processes (by pid).
//!
//! # Deliberate differences from the original
//!
//! * Paths are the kernel-resolved absolute paths, so `./x.sh` and `/tmp/x.sh` are the same
//!   file with no special handling, and paths are compared exactly (no whitespace trimming).
//! * `write_then_exec_same_path` needs the write-intent open to have **succeeded**
//!   (`result >= 0`); an exec of `P (deleted)` matches a write of `P` (written, then unlinked
//!   and run through its fd).
//! * A sensitive open counts for `sensitive_then_*` **even when it failed**: the attempt is
//!   the evidence.
//! * Burst thresholds ≤ 1 mean "one counted event is enough"; the original reported a burst
//!   even with no event at all (§16.6).
//! * Connects count for `connect_then_exec` and `sensitive_then_network` whatever their result
//!   (refused connects are what scans look like). `burst_connect` leaves out local
//!   destinations: the original's IPv4 loopback/link-local/private ranges, plus the IPv6
//!   equivalents, the unspecified address and non-IP (Unix socket) connects.
//! * `opened_deleted_path`: an open whose path ends with ` (deleted)` (the kernel's marker),
//!   which now really happens, anywhere in the session (the original looked at each
//!   process's last `max_per_process_artifacts` opens; that knob is now unused). `memfd_or_deleted_exec`: the exec path starts with
//!   `memfd:` or `/memfd:` or contains ` (deleted)`; `suspicious_path_exec` also includes
//!   those.
//! * Capabilities come with the exec event. `capability_unknown` is set when the effective
//!   set or the seccomp mode is missing, and the part that was read still counts.
//! * Windows use a non-decreasing session clock (see `history.rs`), so slightly reordered
//!   events cannot produce negative gaps; event time zero is not special.
//! * A shell is a transparent wrapper only if it never made a connect and **none of its opens
//!   ever** was outside the burst ignore list (the original looked at its last 16 opens), and
//!   it was not itself run from a suspicious, memfd or deleted path (such a "shell" is the
//!   finding, not noise), and it never wrote a persistence location. Its removal takes
//!   effect at once, not at the next event; it removes its events from the ring only (what
//!   left the ring is settled) and leaves the fact sets as they are.
//! * Failed execs and fork events are not folded (no process state, no ring entry).
//! * `recent_event_limit` is read on every event (the original fixed the ring size at
//!   start-up) and only bounds the ring (`recent_events` in `sessions.log`); a change of the
//!   history knobs keeps the flags established so far and re-derives the ring's part at the
//!   next event.

use std::collections::HashMap;

use super::{
    Capability, Context, Execution, Heuristics, History, LineageNode,
    capability::exec_capability,
    classify::{
        basename, has_write_intent, is_burst_ignored_open, is_memfd_or_deleted,
        is_suspicious_exec_path, name_in,
    },
    facts::{Facts, Owner, Parent, ProcessFacts, persistence_kind},
    history::{RecentEvent, RecentKind, Ring},
    taint::TaintStore,
};

/// `-EINPROGRESS`'s magnitude: a non-blocking connect under way counts as established.
const EINPROGRESS: i32 = 115;
use crate::event::{Detail, Event, SockAddr};

/// One accepted event with what the caller knows about its process.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    pub event: &'a Event,
    /// The process's visible lineage, target first (node 0 is the process itself), already
    /// bounded by `lineage_max_depth`. Read for execs only.
    pub lineage: &'a [LineageNode],
}

/// What the session knows about one process (tgid).
#[derive(Clone, Debug, Default)]
struct ProcessState {
    comm: String,
    exec_path: Option<String>,
    /// Visible lineage nodes − 1, from the last exec.
    lineage_depth: usize,
    /// Lineage node names from the last exec, target first.
    lineage_names: Vec<String>,
    /// Opens ever made outside the burst ignore list.
    unignorable_opens: u64,
    /// It wrote a persistence location (never a transparent wrapper then).
    wrote_persistence: bool,
    /// What the provenance of its writes depends on.
    facts: ProcessFacts,
    connects: u64,
    /// This process's sticky contributions.
    execution: Execution,
    capability: Capability,
}

impl ProcessState {
    /// basename of the exec path, or the comm when no exec was seen.
    fn name(&self) -> &str {
        match &self.exec_path {
            Some(p) => basename(p),
            None => &self.comm,
        }
    }

    fn chain_has(&self, names: &[String]) -> bool {
        name_in(self.name(), names)
            || self
                .lineage_names
                .iter()
                .any(|n| name_in(basename(n), names))
    }

    /// `execution.*` of this process now (reference §5.4).
    fn current_execution(&self, h: &Heuristics) -> Execution {
        let path = self.exec_path.as_deref().unwrap_or("");
        Execution {
            suspicious_path_exec: is_suspicious_exec_path(path, h),
            deep_chain: self.lineage_depth >= h.deep_chain_threshold,
            shell_in_chain: self.chain_has(&h.shell_names),
            network_tool_in_chain: self.chain_has(&h.network_tool_names),
            interpreter_in_chain: self.chain_has(&h.interpreter_names),
            container_runtime_in_chain: self.chain_has(&h.container_runtime_names),
            memfd_or_deleted_exec: !path.is_empty() && is_memfd_or_deleted(path),
        }
    }
}

/// The `addr` text and IP of a connect destination.
fn connect_target(addr: &SockAddr) -> (String, u16, Option<std::net::IpAddr>) {
    match addr {
        SockAddr::Inet { addr, port, .. } => (addr.to_string(), *port, Some(*addr)),
        SockAddr::Unix { path } => (path.to_text(), 0, None),
        SockAddr::Unspec | SockAddr::Other { .. } | SockAddr::Unreadable => {
            (String::new(), 0, None)
        }
    }
}

/// One session's context state (see the module docs).
#[derive(Clone, Debug)]
pub struct SessionContext {
    ctx: Context,
    processes: HashMap<u32, ProcessState>,
    ring: Ring,
    facts: Facts,
    created_ns: Option<u64>,
    updated_ns: Option<u64>,
}

impl SessionContext {
    pub fn new(session_id: u64) -> Self {
        Self {
            ctx: Context {
                session_id,
                ..Context::default()
            },
            processes: HashMap::new(),
            ring: Ring::default(),
            facts: Facts::default(),
            created_ns: None,
            updated_ns: None,
        }
    }

    /// Fold one accepted event with no cross-session store; returns true when the
    /// [`Context`] changed.
    pub fn apply(&mut self, obs: Observed<'_>, h: &Heuristics) -> bool {
        self.apply_in(obs, h, None)
    }

    /// Fold one accepted event, publishing tainted writes to and looking up opened and run
    /// files in `store` (the pipeline's, shared by all sessions); returns true when the
    /// [`Context`] changed.
    pub fn apply_in(
        &mut self,
        obs: Observed<'_>,
        h: &Heuristics,
        store: Option<&mut TaintStore>,
    ) -> bool {
        let e = obs.event;
        match &e.detail {
            Detail::Fork(_) => return false,
            Detail::Exec(x) if x.result != 0 => return false,
            _ => {}
        }
        let before = self.ctx.clone();
        self.created_ns.get_or_insert(e.ktime_ns);
        self.updated_ns = Some(e.ktime_ns);

        let owner = Owner {
            session_id: self.ctx.session_id,
            uid: e.uid,
            ktime_ns: e.ktime_ns,
            pid: e.pid,
        };
        let parent = (e.ppid != e.pid)
            .then(|| self.processes.get(&e.ppid))
            .flatten();
        let parent_inline_fetched = parent.is_some_and(|p| p.facts.inline_fetched());
        let parent_fetched = parent.is_some_and(|p| p.facts.runs_fetched());
        // A parent that never exec'd (a subshell) has no state here: the tracker's lineage
        // names it (a fork carries its parent's name).
        let parent_name = parent
            .map(|p| p.name().to_owned())
            .or_else(|| obs.lineage.get(1).map(|n| n.name.clone()))
            .unwrap_or_default();
        let proc = self.processes.entry(e.pid).or_default();
        // A child of a process running fetched code runs it too (forks are not folded: the
        // child's first event carries it over).
        proc.facts.inherit_fetched(parent_fetched);
        if proc.comm.is_empty() {
            proc.comm = e.comm.to_text();
        }
        // A process that renamed itself (`prctl(PR_SET_NAME)`, `setproctitle`) after the agent
        // runtime while its program is something else imitates the runtime (T1036.004).
        if !matches!(e.detail, Detail::Exec(_))
            && let Some(exe) = proc.exec_path.as_deref()
            && matches!(
                e.comm.as_bytes(),
                b"openclaw" | b"openclaw-gatewa" | b"node"
            )
            && !matches!(basename(exe), "node" | "openclaw" | "nodejs")
            && !basename(exe).starts_with("node")
        {
            self.facts.flags.masquerade_run = true;
        }
        let kind = match &e.detail {
            Detail::Exec(x) => {
                let path = x.path.to_text();
                proc.comm = basename(&path).to_owned();
                proc.lineage_depth = obs.lineage.len().saturating_sub(1);
                proc.lineage_names = obs.lineage.iter().map(|n| n.name.clone()).collect();
                proc.exec_path = Some(path.clone());
                let exec = proc.current_execution(h);
                proc.execution.merge(&exec);
                self.ctx.execution.merge(&exec);
                let cap = exec_capability(x, h);
                proc.capability.merge(&cap);
                self.ctx.capability.merge(&cap);
                let argv = || x.argv.iter().map(|a| a.to_text()).collect();
                let store = store.as_deref();
                self.facts.on_exec(
                    &mut proc.facts,
                    &path,
                    argv,
                    h,
                    owner,
                    store,
                    Parent {
                        inline_fetched: parent_inline_fetched,
                        name: &parent_name,
                    },
                    &x.facts,
                );
                RecentKind::Exec { path }
            }
            Detail::Open(o) => {
                let path = o.best_path().to_text();
                if !is_burst_ignored_open(&path) {
                    proc.unignorable_opens += 1;
                }
                if o.result >= 0 && has_write_intent(o.flags) && persistence_kind(&path).is_some() {
                    proc.wrote_persistence = true;
                }
                self.facts.on_open(
                    &mut proc.facts,
                    &path,
                    o.flags,
                    o.result,
                    o.facts.file,
                    h,
                    owner,
                    store,
                );
                RecentKind::Open {
                    path,
                    flags: o.flags,
                    mode: o.mode,
                    result: o.result,
                }
            }
            Detail::Connect(c) => {
                if let SockAddr::Unix { path } = &c.addr {
                    // Context only: CASA's sequence flags never saw Unix sockets.
                    self.facts.on_unix_connect(&proc.facts, &path.to_text(), h);
                    return self.settle(before);
                }
                proc.connects += 1;
                let (addr, port, ip) = connect_target(&c.addr);
                let ok = c.result == 0 || c.result == -EINPROGRESS;
                self.facts
                    .on_connect(&mut proc.facts, ip, port, ok, e.ktime_ns);
                RecentKind::Connect { addr, port, ip }
            }
            Detail::Exit(x) => {
                let exec = proc.current_execution(h);
                proc.execution.merge(&exec);
                self.ctx.execution.merge(&exec);
                if x.process_gone {
                    // Its writes' provenance is settled: nothing it does can change it now.
                    proc.facts.exited();
                }
                RecentKind::Exit
            }
            Detail::Activity(a) => {
                // Durable facts only: the recent ring (and CASA's sequence flags over it)
                // keeps the original's event kinds.
                self.facts.on_activity(&mut proc.facts, a, h, owner, store);
                return self.settle(before);
            }
            Detail::Fork(_) => unreachable!("forks return above"),
        };
        let clock_ns = self.ring.clock_for(e.ktime_ns);
        self.ring.push(
            RecentEvent {
                ktime_ns: e.ktime_ns,
                clock_ns,
                pid: e.pid,
                tid: e.tid,
                kind,
            },
            h,
        );
        self.refresh_history();
        self.apply_marks();
        self.ctx != before
    }

    /// After a fact-only event: mark late-found fetched-code processes, refresh the history
    /// fields and say whether the [`Context`] changed.
    fn settle(&mut self, before: Context) -> bool {
        self.refresh_history();
        self.apply_marks();
        self.ctx != before
    }

    /// Processes found to run fetched or decoded code after they started (their pipe's
    /// writer started second).
    fn apply_marks(&mut self) {
        for pid in self.facts.take_marks() {
            if let Some(p) = self.processes.get_mut(&pid) {
                p.facts.inherit_fetched(true);
            }
        }
    }

    fn refresh_history(&mut self) {
        let f = &self.facts;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let total = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.ctx.history = History {
            reparented: f.reparented > 0,
            reparented_count: total(f.reparented),
            sensitive_read_count: count(f.sensitive_read.len()),
            sensitive_attempt_count: count(f.sensitive_attempted.len()),
            sensitive_then_external: f.flags.sensitive_then_external,
            sensitive_copy_written: f.flags.sensitive_copy_written,
            external_destination_count: count(f.destinations.len()),
            program_count: count(f.programs.len()),
            persistence_written: !f.persistence.is_empty(),
            persistence_kinds: f.persistence_kinds.clone(),
            fetched_file_run: f.flags.fetched_file_run,
            decoded_file_run: f.flags.decoded_file_run,
            tainted_file_sent: f.flags.tainted_file_sent,
            tainted_file_run: f.flags.tainted_file_run,
            taint_origins: f.origins.clone(),
            discovery_program_count: count(f.discovery.len()),
            written_file_run: f.flags.written_file_run,
            loader_preload: f.flags.loader_preload,
            loader_preload_written: f.flags.loader_preload_written,
            interpreter_on_socket: f.flags.interpreter_on_socket,
            fetched_code_piped: f.flags.fetched_code_piped,
            decoded_code_piped: f.flags.decoded_code_piped,
            loader_run_direct: f.flags.loader_run_direct,
            loader_ran_written_file: f.flags.loader_ran_written_file,
            inline_code_run: f.flags.inline_code_run,
            inline_code_then_external: f.flags.inline_code_then_external,
            inline_code_fetch_then_exec: f.flags.inline_code_fetch_then_exec,
            history_file_tampered: f.flags.history_file_tampered,
            fetched_code_then_external: f.flags.fetched_code_then_external,
            credential_search: f.flags.credential_search,
            logs_tampered: f.flags.logs_tampered,
            timestomp: f.flags.timestomp,
            shell_from_network_tool: f.flags.shell_from_network_tool,
            fetched_run_hidden: f.flags.fetched_run_hidden,
            masquerade_run: f.flags.masquerade_run,
            inline_code_evaluates_data: f.flags.inline_code_evaluates_data,
            account_discovery_count: count(f.account_discovery.len()),
            privilege_discovery: !f.privilege_discovery.is_empty(),
            security_software_count: count(f.security_products.len()),
            setid_mode_set: f.flags.setid_mode_set,
            persistence_attempted: f.flags.persistence_attempted,
            container_socket_access: f.flags.container_socket_access,
            ports_probed_max: i64::from(f.ports_probed_max),
            external_bytes_sent: total(f.external_bytes_sent()),
            facts_overflowed: f.overflowed() || self.ring.overflowed(),
            events_lost: f.lost > 0,
            events_lost_count: total(f.lost),
            ..self.ring.flags()
        };
    }

    /// The kernel lost `count` more records while this session was open; returns whether
    /// the [`Context`] changed.
    pub fn note_lost(&mut self, count: u64) -> bool {
        let before = self.ctx.history.clone();
        self.facts.lost = self.facts.lost.saturating_add(count);
        self.refresh_history();
        self.ctx.history != before
    }

    /// The session tracker's count of re-parented session processes (see
    /// `crate::session::Session::reparented`); returns whether the [`Context`] changed.
    pub fn note_reparented(&mut self, total: u64) -> bool {
        if total == self.facts.reparented {
            return false;
        }
        self.facts.reparented = total;
        self.refresh_history();
        true
    }

    /// Hook for the sensor's exec-time loader variables (`LD_PRELOAD=…`): recorded in the
    /// session's bounded set.
    pub fn note_loader_variables<'a>(&mut self, vars: impl IntoIterator<Item = &'a str>) {
        self.facts.note_loader_variables(vars);
        self.refresh_history();
    }

    /// Hook for the sensor's bytes-sent reports: `bytes` more sent to `(ip, port)` (an
    /// external destination).
    pub fn note_sent(&mut self, ip: std::net::IpAddr, port: u16, bytes: u64, ktime_ns: u64) {
        self.facts.note_sent(ip, port, bytes, ktime_ns);
        self.refresh_history();
    }

    /// The session's durable facts.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// The flags of the recent ring alone (the original's ring-bounded semantics).
    #[cfg(test)]
    pub(crate) fn ring_flags(&self) -> History {
        self.ring.ring_flags()
    }

    /// Files remembered as written by `pid` (for provenance).
    #[cfg(test)]
    pub(crate) fn process_writes(&self, pid: u32) -> usize {
        self.processes.get(&pid).map_or(0, |p| p.facts.writes_len())
    }

    /// Distinct written paths the write→exec fact remembers beyond the ring.
    #[cfg(test)]
    pub(crate) fn settled_written(&self) -> usize {
        self.ring.settled_written()
    }

    /// The current context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The bounded session ring, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &RecentEvent> + ExactSizeIterator {
        self.ring.iter()
    }

    /// `ktime_ns` of the first folded event.
    pub fn created_ns(&self) -> Option<u64> {
        self.created_ns
    }

    /// `ktime_ns` of the last folded event.
    pub fn updated_ns(&self) -> Option<u64> {
        self.updated_ns
    }

    /// Processes the session holds state for.
    pub fn process_count(&self) -> usize {
        self.processes.len()
    }

    /// Whether the session holds state for `pid`.
    pub fn has_process(&self, pid: u32) -> bool {
        self.processes.contains_key(&pid)
    }

    /// Whether `pid` is a transparent shell wrapper: its name (exec basename, else comm) is
    /// in `shell_names`, it never connected, every open it made is on the burst ignore list,
    /// and it was not run from a suspicious, memfd or deleted path.
    pub fn is_transparent_shell(&self, pid: u32, h: &Heuristics) -> bool {
        self.processes.get(&pid).is_some_and(|p| {
            name_in(p.name(), &h.shell_names)
                && p.connects == 0
                && p.unignorable_opens == 0
                && !p.wrote_persistence
                && !p.execution.suspicious_path_exec
                && !p.execution.memfd_or_deleted_exec
        })
    }

    /// Reference §4.3: remove a transparent shell wrapper ([`Self::is_transparent_shell`]),
    /// its process state and its ring entries, and rebuild `execution`/`capability` from the
    /// remaining processes (by pid) and the history from the remaining ring. Returns whether
    /// it pruned.
    pub fn prune_transparent_shell(&mut self, pid: u32, h: &Heuristics) -> bool {
        if !self.is_transparent_shell(pid, h) {
            return false;
        }
        if self.processes.remove(&pid).is_none() {
            return false;
        }
        self.ring.remove_pid(pid, h);

        let mut pids: Vec<u32> = self.processes.keys().copied().collect();
        pids.sort_unstable();
        let mut execution = Execution::default();
        let mut capability = Capability::default();
        for p in pids.iter().filter_map(|pid| self.processes.get(pid)) {
            execution.merge(&p.execution);
            capability.merge(&p.capability);
        }
        self.ctx.execution = execution;
        self.ctx.capability = capability;
        self.refresh_history();
        true
    }
}

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
//! * `history.*` is over the session ring of the last `recent_event_limit` events (arrival
//!   order), except `opened_deleted_path`, which is over each process's last
//!   `max_per_process_artifacts` opens. See [`super::history_reference`] for the definitions
//!   and `history.rs` for how they are maintained without rescanning the ring.
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
//! * `opened_deleted_path`: a recorded open whose path ends with ` (deleted)` (the kernel's
//!   marker), which now really happens. `memfd_or_deleted_exec`: the exec path starts with
//!   `memfd:` or `/memfd:` or contains ` (deleted)`; `suspicious_path_exec` also includes
//!   those.
//! * Capabilities come with the exec event. `capability_unknown` is set when the effective
//!   set or the seccomp mode is missing, and the part that was read still counts.
//! * Windows use a non-decreasing session clock (see `history.rs`), so slightly reordered
//!   events cannot produce negative gaps; event time zero is not special.
//! * A shell is a transparent wrapper only if it never made a connect and **none of its opens
//!   ever** was outside the burst ignore list (the original looked at its last 16 opens), and
//!   it was not itself run from a suspicious, memfd or deleted path (such a "shell" is the
//!   finding, not noise). Its removal takes effect at once, not at the next event.
//! * Failed execs and fork events are not folded (no process state, no ring entry).
//! * `recent_event_limit` and `max_per_process_artifacts` are read on every event (the
//!   original fixed the ring size at start-up); a change of the history knobs re-derives the
//!   history flags from the ring at the next event.

use std::collections::{HashMap, VecDeque};

use super::{
    Capability, Context, Execution, Heuristics, History, LineageNode,
    capability::{exec_capability, merge_capability},
    classify::{
        basename, is_burst_ignored_open, is_deleted_path, is_memfd_or_deleted,
        is_suspicious_exec_path, name_in,
    },
    history::{RecentEvent, RecentKind, Ring},
};
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
    /// Last `max_per_process_artifacts` open paths.
    opens: VecDeque<String>,
    /// How many of `opens` are marked deleted.
    deleted_opens: usize,
    /// Opens ever made outside the burst ignore list.
    unignorable_opens: u64,
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

    /// Forget opens beyond `limit`; returns how many deleted-marked ones went.
    fn trim_opens(&mut self, limit: usize) -> usize {
        let mut gone = 0;
        while self.opens.len() > limit {
            if let Some(p) = self.opens.pop_front()
                && is_deleted_path(&p)
            {
                gone += 1;
            }
        }
        self.deleted_opens -= gone;
        gone
    }
}

fn merge_execution(dst: &mut Execution, src: &Execution) {
    dst.suspicious_path_exec |= src.suspicious_path_exec;
    dst.deep_chain |= src.deep_chain;
    dst.shell_in_chain |= src.shell_in_chain;
    dst.network_tool_in_chain |= src.network_tool_in_chain;
    dst.interpreter_in_chain |= src.interpreter_in_chain;
    dst.container_runtime_in_chain |= src.container_runtime_in_chain;
    dst.memfd_or_deleted_exec |= src.memfd_or_deleted_exec;
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
    /// Deleted-marked opens over all processes' recorded opens.
    deleted_opens: usize,
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
            deleted_opens: 0,
            created_ns: None,
            updated_ns: None,
        }
    }

    /// Fold one accepted event; returns true when the [`Context`] changed.
    pub fn apply(&mut self, obs: Observed<'_>, h: &Heuristics) -> bool {
        let e = obs.event;
        match &e.detail {
            Detail::Fork(_) | Detail::Activity(_) => return false,
            Detail::Exec(x) if x.result != 0 => return false,
            _ => {}
        }
        let before = self.ctx.clone();
        self.created_ns.get_or_insert(e.ktime_ns);
        self.updated_ns = Some(e.ktime_ns);

        let proc = self.processes.entry(e.pid).or_default();
        if proc.comm.is_empty() {
            proc.comm = e.comm.to_text();
        }
        let kind = match &e.detail {
            Detail::Exec(x) => {
                let path = x.path.to_text();
                proc.comm = basename(&path).to_owned();
                proc.lineage_depth = obs.lineage.len().saturating_sub(1);
                proc.lineage_names = obs.lineage.iter().map(|n| n.name.clone()).collect();
                proc.exec_path = Some(path.clone());
                let exec = proc.current_execution(h);
                merge_execution(&mut proc.execution, &exec);
                merge_execution(&mut self.ctx.execution, &exec);
                let cap = exec_capability(x, h);
                merge_capability(&mut proc.capability, &cap);
                merge_capability(&mut self.ctx.capability, &cap);
                RecentKind::Exec { path }
            }
            Detail::Open(o) => {
                let path = o.best_path().to_text();
                if !is_burst_ignored_open(&path) {
                    proc.unignorable_opens += 1;
                }
                if is_deleted_path(&path) {
                    proc.deleted_opens += 1;
                    self.deleted_opens += 1;
                }
                proc.opens.push_back(path.clone());
                self.deleted_opens -= proc.trim_opens(h.max_per_process_artifacts);
                RecentKind::Open {
                    path,
                    flags: o.flags,
                    mode: o.mode,
                    result: o.result,
                }
            }
            Detail::Connect(c) => {
                proc.connects += 1;
                let (addr, port, ip) = connect_target(&c.addr);
                RecentKind::Connect { addr, port, ip }
            }
            Detail::Exit(_) | Detail::Fork(_) | Detail::Activity(_) => {
                let exec = proc.current_execution(h);
                merge_execution(&mut proc.execution, &exec);
                merge_execution(&mut self.ctx.execution, &exec);
                RecentKind::Exit
            }
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
        self.ctx != before
    }

    fn refresh_history(&mut self) {
        self.ctx.history = History {
            opened_deleted_path: self.deleted_opens > 0,
            ..self.ring.flags()
        };
    }

    /// The current context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The bounded session ring, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &RecentEvent> + ExactSizeIterator {
        self.ring.iter()
    }

    /// The recorded (per-process, bounded) open paths of every process, in no fixed order.
    pub fn recorded_open_paths(&self) -> impl Iterator<Item = &str> {
        self.processes
            .values()
            .flat_map(|p| p.opens.iter().map(String::as_str))
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
        let Some(gone) = self.processes.remove(&pid) else {
            return false;
        };
        self.deleted_opens -= gone.deleted_opens;
        self.ring.remove_pid(pid, h);

        let mut pids: Vec<u32> = self.processes.keys().copied().collect();
        pids.sort_unstable();
        let mut execution = Execution::default();
        let mut capability = Capability::default();
        for p in pids.iter().filter_map(|pid| self.processes.get(pid)) {
            merge_execution(&mut execution, &p.execution);
            merge_capability(&mut capability, &p.capability);
        }
        self.ctx.execution = execution;
        self.ctx.capability = capability;
        self.refresh_history();
        true
    }
}

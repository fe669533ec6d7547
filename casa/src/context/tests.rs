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

fn history_of(events: &[Event], h: &Heuristics) -> History {
    let mut s = SessionContext::new(1);
    fold(&mut s, events, h);
    assert_reference(&s, h);
    s.context().history
}

fn assert_reference(s: &SessionContext, h: &Heuristics) {
    let ring: Vec<RecentEvent> = s.recent().cloned().collect();
    let reference = history_reference(&ring, s.recorded_open_paths(), h);
    assert_eq!(s.context().history, reference, "ring: {ring:#?}");
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
fn write_then_exec_forgets_evicted_writes() {
    let h = Heuristics {
        recent_event_limit: 3,
        ..Heuristics::default()
    };
    let p = "/tmp/x.sh";
    let mut s = SessionContext::new(1);
    fold(&mut s, &[open(T0, 100, p, 0x241), exec(T0 + 1, 101, p)], &h);
    assert!(s.context().history.write_then_exec_same_path);
    fold(
        &mut s,
        &[exit(T0 + 2, 101, "x.sh"), exit(T0 + 3, 100, "x")],
        &h,
    );
    assert_eq!(s.recent().len(), 3);
    assert!(!s.context().history.write_then_exec_same_path);
    assert_reference(&s, &h);
}

// ---- opened_deleted_path ----

#[test]
fn opened_deleted_path_from_recorded_opens() {
    let h = Heuristics {
        max_per_process_artifacts: 2,
        ..Heuristics::default()
    };
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0, 100, "/tmp/openclaw-eval/backdoor.sh", 0x241),
            open(T0 + 1, 100, "/tmp/ghost (deleted)", 0),
        ],
        &h,
    );
    assert!(s.context().history.opened_deleted_path);
    assert_reference(&s, &h);
    // Another process's opens do not push it out; this process's later opens do.
    fold(&mut s, &[open(T0 + 2, 200, "/tmp/a", 0)], &h);
    assert!(s.context().history.opened_deleted_path);
    fold(
        &mut s,
        &[
            open(T0 + 3, 100, "/tmp/b", 0),
            open(T0 + 4, 100, "/tmp/c", 0),
        ],
        &h,
    );
    assert!(!s.context().history.opened_deleted_path);
    assert_reference(&s, &h);
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
    let x = s.context().execution;
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
        let x = s.context().execution;
        assert!(x.memfd_or_deleted_exec, "{path}");
        assert!(x.suspicious_path_exec, "{path}");
    }
    let mut s = SessionContext::new(1);
    exec_with(&mut s, &exec(T0, 100, "/tmp/x.sh"), &[], &h);
    let x = s.context().execution;
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
    let c = s.context().capability;
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
    let c = s.context().capability;
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
    let c = s.context().capability;
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
    let c = s.context().capability;
    assert!(c.capability_unknown && c.seccomp_disabled && !c.has_dangerous_caps);
    x.cap_effective = Some(1 << 21);
    x.seccomp_mode = None;
    let mut s = SessionContext::new(1);
    fold(&mut s, &[event(T0, 100, "ls", Detail::Exec(x))], &h);
    let c = s.context().capability;
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
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[
            open(T0 + 10 * SEC, 100, "/tmp/a", 0),
            open(T0, 100, "/tmp/b", 0), // arrived late, stamped earlier
            open(T0 + 10 * SEC + 1, 100, "/tmp/c", 0),
        ],
        &h,
    );
    let clocks: Vec<(u64, u64)> = s.recent().map(|e| (e.ktime_ns, e.clock_ns)).collect();
    assert_eq!(
        clocks,
        [
            (T0 + 10 * SEC, T0 + 10 * SEC),
            (T0, T0 + 10 * SEC),
            (T0 + 10 * SEC + 1, T0 + 10 * SEC + 1)
        ]
    );
    assert!(s.context().history.burst_open);
    assert_reference(&s, &h);
}

#[test]
fn heuristics_change_rederives_history() {
    let mut h = burst_h(3, 3, 3);
    let mut s = SessionContext::new(1);
    fold(
        &mut s,
        &[open(T0, 100, "/tmp/a", 0), open(T0 + 1, 100, "/tmp/b", 0)],
        &h,
    );
    assert!(!s.context().history.burst_open);
    h.burst_open_threshold = 2;
    fold(&mut s, &[exit(T0 + 2, 100, "x")], &h);
    assert!(s.context().history.burst_open);
    assert_reference(&s, &h);
}

// ---- prune ----

#[test]
fn prune_transparent_shell_removes_the_wrapper() {
    let h = Heuristics::default();
    let mut s = SessionContext::new(1);
    let sh = exec(T0, 50, "/bin/sh");
    exec_with(&mut s, &sh, &[node(50, "sh"), node(1, "openclaw")], &h);
    fold(
        &mut s,
        &[
            open(T0 + 1, 50, "/etc/ld.so.cache", 0),
            open(T0 + 2, 50, "/lib/x86_64-linux-gnu/libc.so.6", 0),
            connect(T0 + 3, 60, "8.8.8.8", 443),
        ],
        &h,
    );
    let curl = exec(T0 + 4, 61, "/usr/bin/curl");
    exec_with(&mut s, &curl, &[node(61, "curl"), node(1, "openclaw")], &h);
    let x = s.context().execution;
    assert!(x.shell_in_chain && x.interpreter_in_chain && x.network_tool_in_chain);
    assert!(s.context().history.connect_then_exec);
    assert_eq!(s.process_count(), 3);

    assert!(s.prune_transparent_shell(50, &h));
    assert!(!s.has_process(50));
    assert_eq!(s.process_count(), 2);
    assert!(s.recent().all(|e| e.pid != 50));
    assert_eq!(s.recent().len(), 2);
    let x = s.context().execution;
    assert!(
        !x.shell_in_chain && !x.interpreter_in_chain,
        "rebuilt: {x:?}"
    );
    assert!(x.network_tool_in_chain);
    assert!(s.context().history.connect_then_exec);
    assert_reference(&s, &h);
    // Gone: a second prune does nothing.
    assert!(!s.prune_transparent_shell(50, &h));
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
    let c = s.context().capability;
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
        let mut s = SessionContext::new(1);
        let mut t = T0;
        let mut h = &h1;
        // After a switch the knobs are re-read at the next folded event (or a prune).
        let mut stale = false;
        for (op, gap) in &ops {
            if *gap == 13 {
                t -= SEC / 2;
            } else {
                t += gap * SEC / 4;
            }
            match op {
                Op::Prune(pid) => {
                    let expect = s.is_transparent_shell(*pid, h);
                    prop_assert_eq!(s.prune_transparent_shell(*pid, h), expect);
                    stale &= !expect;
                    prop_assert!(!expect || !s.has_process(*pid));
                    prop_assert!(!expect || s.recent().all(|e| e.pid != *pid));
                }
                Op::Switch => {
                    h = if std::ptr::eq(h, &h1) { &h2 } else { &h1 };
                    stale = true;
                }
                _ => {
                    if let Some(e) = op_event(op, t) {
                        let before = s.context().clone();
                        let changed = s.apply(Observed { event: &e, lineage: &[] }, h);
                        prop_assert_eq!(changed, &before != s.context());
                        stale = false;
                    }
                }
            }
            prop_assert!(s.recent().len() <= h.recent_event_limit.max(h1.recent_event_limit).max(h2.recent_event_limit));
            if !stale {
                let ring: Vec<RecentEvent> = s.recent().cloned().collect();
                let clocks_sorted = ring.windows(2).all(|w| w[0].clock_ns <= w[1].clock_ns);
                prop_assert!(clocks_sorted);
                let reference = history_reference(&ring, s.recorded_open_paths(), h);
                prop_assert_eq!(s.context().history, reference);
            }
        }
    }
}

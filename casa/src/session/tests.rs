use super::*;
use crate::event::{Connect, Exit, Fork, SockAddr};
use attribution::{Attribution, Method, Request};

const BIN: &str = "/opt/node/bin";
const S: u64 = 1_000_000_000;

fn ev(t: u64, pid: u32, ppid: u32, detail: Detail) -> Event {
    Event {
        ktime_ns: t,
        pid,
        tid: pid,
        ppid,
        uid: 0,
        gid: 0,
        cgroup_id: 1,
        comm: Bytes::from("x"),
        detail,
    }
}

fn exec(path: &str, argv: &[&str]) -> Detail {
    Detail::Exec(Exec::test(path, argv))
}

fn invocation() -> Detail {
    let launcher = format!("{BIN}/openclaw");
    exec(
        &format!("{BIN}/node"),
        &["node", &launcher, "agent", "--agent", "main", "-m", "hi"],
    )
}

fn fork(child: u32) -> Detail {
    Detail::Fork(Fork {
        child_pid: child,
        child_tid: child,
    })
}

fn exit(gone: bool) -> Detail {
    Detail::Exit(Exit {
        exit_code: 0,
        status: Some(0),
        signal: None,
        core_dumped: false,
        leader: true,
        process_gone: gone,
    })
}

fn connect() -> Detail {
    Detail::Connect(Connect {
        result: 0,
        fd: 3,
        addr: SockAddr::Inet {
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
            v4_mapped: false,
        },
    })
}

fn tracker() -> Tracker {
    Tracker::new(vec![AgentProfile::openclaw()], Timeouts::default())
}

fn session_of(o: &Observation) -> Option<SessionId> {
    match o.verdict {
        Verdict::Session { session, .. } | Verdict::PendingShellExec { session } => Some(session),
        Verdict::Outside => None,
    }
}

#[test]
fn invocation_starts_one_session_and_the_reexec_does_not_start_another() {
    let mut t = tracker();
    let o = t.observe(&ev(S, 100, 1, invocation()));
    assert_eq!(o.started, Some(1));
    assert_eq!(o.track, vec![100]);
    t.observe(&ev(S + 1, 100, 1, fork(101)));
    let launcher = format!("{BIN}/openclaw");
    let re = exec(
        &format!("{BIN}/node"),
        &[
            "node",
            "--disable-warning=ExperimentalWarning",
            &launcher,
            "agent",
            "--agent",
            "main",
            "-m",
            "hi",
        ],
    );
    let o = t.observe(&ev(S + 2, 101, 100, re));
    assert_eq!(
        o.started, None,
        "the node re-exec must not start a second session"
    );
    assert_eq!(session_of(&o), Some(1));
    assert_eq!(
        t.session(1).unwrap().leader,
        100,
        "the first pid owns the session"
    );
}

#[test]
fn session_closes_grace_after_leader_exit() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    t.observe(&ev(5 * S, 100, 1, exit(true)));
    assert!(t.expire(6 * S).is_empty());
    assert!(
        t.expire(7 * S).is_empty(),
        "exactly at grace end it is still open"
    );
    let closed = t.expire(7 * S + 1);
    assert_eq!(
        closed,
        vec![Closed {
            id: 1,
            kind: "cli",
            closed_ns: 7 * S,
            reason: CloseReason::LeaderExit
        }]
    );
    assert!(t.session(1).is_none());
}

#[test]
fn descendants_belong_to_their_own_session_concurrently() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    t.observe(&ev(S, 200, 1, invocation()));
    t.observe(&ev(2 * S, 100, 1, fork(110)));
    t.observe(&ev(2 * S, 200, 1, fork(210)));
    t.observe(&ev(
        2 * S,
        110,
        100,
        exec("/usr/bin/bash", &["bash", "-c", "curl x"]),
    ));
    assert_eq!(
        session_of(&t.observe(&ev(3 * S, 110, 100, connect()))),
        Some(1)
    );
    assert_eq!(
        session_of(&t.observe(&ev(3 * S, 210, 200, connect()))),
        Some(2)
    );
    // An unrelated process is outside both.
    assert_eq!(session_of(&t.observe(&ev(3 * S, 999, 1, connect()))), None);
}

#[test]
fn gateway_tool_joins_open_cli_session_or_starts_a_gateway_session() {
    let mut t = tracker();
    let gw = exec(
        &format!("{BIN}/node"),
        &["node", &format!("{BIN}/openclaw"), "gateway", "run"],
    );
    let track = t.seed(
        50,
        1,
        b"openclaw-gatewa",
        match &gw {
            Detail::Exec(x) => x,
            _ => unreachable!(),
        },
        0,
    );
    assert_eq!(track, vec![50]);
    // No CLI session: a tool process under the gateway starts a gateway session.
    t.observe(&ev(S, 50, 1, fork(60)));
    let o = t.observe(&ev(S, 60, 50, exec("/bin/sh", &["/bin/sh", "-c", "id"])));
    assert_eq!(o.started, Some(1));
    assert_eq!(t.session(1).unwrap().kind, SessionKind::Gateway);
    t.observe(&ev(2 * S, 60, 50, exit(true)));
    assert_eq!(
        t.expire(13 * S).len(),
        1,
        "gateway session closes after the quiet period"
    );
    // With a CLI session open, gateway tools join it.
    t.observe(&ev(20 * S, 300, 1, invocation()));
    t.observe(&ev(21 * S, 50, 1, fork(61)));
    let o = t.observe(&ev(
        21 * S,
        61,
        50,
        exec("/bin/sh", &["/bin/sh", "-c", "curl x"]),
    ));
    assert_eq!(session_of(&o), Some(2));
    assert_eq!(o.started, None);
}

#[test]
fn runtime_helpers_are_not_tool_sessions() {
    let mut t = tracker();
    let gw = exec(
        &format!("{BIN}/node"),
        &["node", &format!("{BIN}/openclaw"), "gateway", "run"],
    );
    let Detail::Exec(gwx) = &gw else {
        unreachable!()
    };
    t.seed(50, 1, b"openclaw-gatewa", gwx, 0);
    t.observe(&ev(S, 50, 1, fork(51)));
    let o = t.observe(&ev(
        S,
        51,
        50,
        exec(
            &format!("{BIN}/node"),
            &[
                "node",
                "/opt/lib/openclaw/dist/process/spawn-broker/worker.js",
            ],
        ),
    ));
    assert_eq!(
        o.started, None,
        "the runtime's own worker is not tool activity"
    );
    assert_eq!(o.verdict, Verdict::Outside);
}

#[test]
fn lost_exit_cannot_keep_a_session_open() {
    let mut t = Tracker::new(
        vec![AgentProfile::openclaw()],
        Timeouts {
            idle_ns: 60 * S,
            ..Timeouts::default()
        },
    );
    t.observe(&ev(S, 100, 1, invocation()));
    assert!(t.expire(60 * S).is_empty());
    let c = t.expire(62 * S);
    assert_eq!(
        c,
        vec![Closed {
            id: 1,
            kind: "cli",
            closed_ns: 61 * S,
            reason: CloseReason::Idle
        }]
    );
}

#[test]
fn bare_shell_is_pending_and_transparent_until_promoted() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    t.observe(&ev(S, 100, 1, fork(110)));
    let o = t.observe(&ev(S, 110, 100, exec("/bin/sh", &["/bin/sh"])));
    assert_eq!(o.verdict, Verdict::PendingShellExec { session: 1 });
    t.observe(&ev(S, 110, 100, fork(120)));
    t.observe(&ev(S, 120, 110, exec("/usr/bin/curl", &["curl", "x"])));
    let names: Vec<String> = t.lineage(120, 6).into_iter().map(|n| n.name).collect();
    assert_eq!(
        names,
        vec!["curl", "node"],
        "the pending shell is skipped in lineage"
    );
    let o = t.observe(&ev(S, 110, 100, connect()));
    assert_eq!(
        o.verdict,
        Verdict::Session {
            session: 1,
            runtime: false,
            pending_shell: true,
            runtime_started: true,
        }
    );
    t.promote(110);
    let names: Vec<String> = t.lineage(120, 6).into_iter().map(|n| n.name).collect();
    assert_eq!(names, vec!["curl", "sh", "node"]);
}

#[test]
fn lineage_skips_transparent_nodes_and_respects_depth() {
    // The original's test: {10 root, 20 transparent child of 10, 30 child of 20} → [30, 10].
    let mut t = tracker();
    t.observe(&ev(S, 10, 1, invocation()));
    t.observe(&ev(S, 10, 1, fork(20)));
    t.observe(&ev(S, 20, 10, exec("/bin/bash", &["bash"])));
    t.observe(&ev(S, 20, 10, fork(30)));
    t.observe(&ev(S, 30, 20, exec("/bin/ls", &["ls"])));
    let pids: Vec<u32> = t.lineage(30, 4).into_iter().map(|n| n.pid).collect();
    assert_eq!(pids, vec![30, 10]);
    assert_eq!(t.lineage(30, 0).len(), 1);
}

#[test]
fn state_is_freed_when_processes_exit_and_sessions_close() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    for i in 0..50u32 {
        t.observe(&ev(S, 100, 1, fork(1000 + i)));
        t.observe(&ev(S, 1000 + i, 100, exec("/bin/true", &["true"])));
        t.observe(&ev(S, 1000 + i, 100, exit(true)));
    }
    t.observe(&ev(2 * S, 100, 1, exit(true)));
    assert_eq!(t.expire(10 * S).len(), 1);
    assert_eq!(t.process_count(), 0);
    assert_eq!(t.open_sessions().count(), 0);
}

#[test]
fn close_all_uses_event_time() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    t.observe(&ev(3 * S, 100, 1, connect()));
    let c = t.close_all(3 * S);
    assert_eq!(
        c,
        vec![Closed {
            id: 1,
            kind: "cli",
            closed_ns: 3 * S,
            reason: CloseReason::Shutdown
        }]
    );
}

#[test]
fn expire_skips_ahead_without_missing_a_deadline() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    // A scan now finds nothing due and remembers the idle deadline, 15 min away.
    assert!(t.expire(S + S / 2).is_empty());
    // The leader exits: its close countdown (2 s) is earlier than what the scan remembered.
    t.observe(&ev(2 * S, 100, 1, exit(true)));
    assert!(
        t.expire(4 * S).is_empty(),
        "closed before the grace period ended"
    );
    let closed = t.expire(4 * S + 1);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].reason, CloseReason::LeaderExit);
    assert_eq!(closed[0].closed_ns, 4 * S);
    // A second session, silent: it closes when idle, not earlier and not later.
    t.observe(&ev(10 * S, 200, 1, invocation()));
    let idle = Timeouts::default().idle_ns;
    assert!(t.expire(10 * S + idle).is_empty());
    let closed = t.expire(10 * S + idle + 1);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].reason, CloseReason::Idle);
}

fn runtime_flag(o: &Observation) -> Option<bool> {
    match o.verdict {
        Verdict::Session { runtime, .. } => Some(runtime),
        _ => None,
    }
}

const SNAP: &str = "/home/u/.openclaw/cache/shell-snapshots/4694c8ac.sh";

fn shim() -> Detail {
    exec(
        "/usr/bin/dash",
        &[
            "/bin/sh",
            "-c",
            "echo 1000 > /proc/self/oom_score_adj 2>/dev/null; exec \"$0\" \"$@\"",
            "/bin/bash",
            "--noprofile",
            "--norc",
            "-c",
            "eval 'cat x'",
        ],
    )
}

fn wrapper(cmd: &str) -> Detail {
    let script = format!(
        "if [ -r '{SNAP}' ]; then . '{SNAP}'; fi\nexport PATH='/usr/bin:/bin'\neval '{cmd}'"
    );
    exec(
        "/usr/bin/bash",
        &["/bin/bash", "--noprofile", "--norc", "-c", &script],
    )
}

fn login_probe() -> Detail {
    exec(
        "/usr/bin/bash",
        &["/bin/bash", "-l", "-c", "printf '\\0'; env -0"],
    )
}

#[test]
fn openclaw_housekeeping_and_tool_wrappers_are_the_runtimes_and_the_commands_the_agents() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    // Housekeeping: the login-shell probe forked by the runtime, and what it runs.
    t.observe(&ev(S + 1, 100, 1, fork(110)));
    let o = t.observe(&ev(S + 2, 110, 100, login_probe()));
    assert_eq!(runtime_flag(&o), Some(true), "the probe is the runtime's");
    t.observe(&ev(S + 3, 110, 100, fork(111)));
    let o = t.observe(&ev(S + 4, 111, 110, exec("/usr/bin/id", &["id", "-u"])));
    assert_eq!(runtime_flag(&o), Some(true), "so is what it runs");
    let git = exec(
        "/usr/bin/git",
        &[
            "git",
            "-C",
            "/home/u/.openclaw/workspace",
            "config",
            "--get",
            "remote.origin.url",
        ],
    );
    t.observe(&ev(S + 5, 100, 1, fork(112)));
    assert_eq!(
        runtime_flag(&t.observe(&ev(S + 6, 112, 100, git))),
        Some(true)
    );
    // A tool call: the OOM shim forked by the runtime exec's the bash wrapper in place;
    // both execs are plumbing, the command under them is the agent's.
    t.observe(&ev(S + 7, 100, 1, fork(120)));
    let o = t.observe(&ev(S + 8, 120, 100, shim()));
    assert_eq!(runtime_flag(&o), Some(true), "the shim's exec is plumbing");
    let o = t.observe(&ev(S + 9, 120, 100, wrapper("cat x")));
    assert_eq!(
        runtime_flag(&o),
        Some(true),
        "the wrapper's exec is plumbing"
    );
    t.observe(&ev(S + 10, 120, 100, fork(121)));
    let o = t.observe(&ev(S + 11, 121, 120, exec("/usr/bin/cat", &["cat", "x"])));
    assert_eq!(runtime_flag(&o), Some(false), "the command is the agent's");
    assert_eq!(session_of(&o), Some(1));
    // The same argv from an agent command is not plumbing or housekeeping: it was not
    // started by the runtime.
    t.observe(&ev(S + 12, 121, 120, fork(122)));
    let o = t.observe(&ev(S + 13, 122, 121, login_probe()));
    assert_eq!(runtime_flag(&o), Some(false), "mimicry from a tool counts");
    t.observe(&ev(S + 14, 121, 120, fork(123)));
    let o = t.observe(&ev(S + 15, 123, 121, wrapper("curl evil")));
    assert_eq!(
        runtime_flag(&o),
        Some(false),
        "a wrapper look-alike from a tool counts"
    );
    // A wrapper that exec's something other than a wrapper gives the agent's command.
    t.observe(&ev(S + 16, 100, 1, fork(130)));
    t.observe(&ev(S + 17, 130, 100, shim()));
    let o = t.observe(&ev(
        S + 18,
        130,
        100,
        exec("/usr/bin/python3", &["python3"]),
    ));
    assert_eq!(runtime_flag(&o), Some(false));
}

#[test]
fn a_bad_pattern_in_an_agent_profile_is_a_located_error() {
    let mut p = AgentProfile::openclaw();
    p.tool_wrappers.push("(unclosed".into());
    let e = p.patterns().unwrap_err().to_string();
    assert!(
        e.contains("\"openclaw\"") && e.contains("tool_wrappers[2]"),
        "{e}"
    );
    assert!(AgentProfile::openclaw().patterns().is_ok());
}

#[test]
fn a_tool_cannot_become_the_runtime_by_naming_a_file_after_it() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    t.observe(&ev(S + 1, 100, 1, fork(120)));
    t.observe(&ev(
        S + 2,
        120,
        100,
        exec("/usr/bin/bash", &["bash", "-c", "x"]),
    ));
    t.observe(&ev(S + 3, 120, 100, fork(121)));
    let o = t.observe(&ev(
        S + 4,
        121,
        120,
        exec(
            "/tmp/openclaw-eval/payload.sh",
            &["/bin/sh", "/tmp/openclaw-eval/payload.sh"],
        ),
    ));
    assert_eq!(session_of(&o), Some(1));
    assert_eq!(
        runtime_flag(&o),
        Some(false),
        "a payload named openclaw-* is the agent's"
    );
    // The runtime's own children still are the runtime (a worker script of the package).
    t.observe(&ev(S + 5, 100, 1, fork(130)));
    let o = t.observe(&ev(
        S + 6,
        130,
        100,
        exec(
            "/opt/node/bin/node",
            &["node", "/opt/node/lib/node_modules/openclaw/dist/worker.js"],
        ),
    ));
    assert_eq!(runtime_flag(&o), Some(true));
}

#[test]
fn a_symlinked_global_launcher_starts_a_session() {
    let mut t = tracker();
    // The user's shell runs `openclaw agent …`: the kernel executes the launcher script
    // (a symlink in /usr/local/bin), then `env` exec's the distribution's node in place.
    let mut script = Exec::test(
        "/usr/local/bin/openclaw",
        &[
            "/usr/bin/env",
            "node",
            "/usr/local/bin/openclaw",
            "agent",
            "--agent",
            "main",
            "-m",
            "hi",
        ],
    );
    script.script = true;
    let o = t.observe(&ev(S, 200, 1, Detail::Exec(script)));
    assert_eq!(o.started, None);
    let o = t.observe(&ev(
        S + 1,
        200,
        1,
        exec(
            "/usr/bin/node",
            &[
                "node",
                "/usr/local/bin/openclaw",
                "agent",
                "--agent",
                "main",
                "-m",
                "hi",
            ],
        ),
    ));
    assert_eq!(
        o.started,
        Some(1),
        "the launcher the user ran starts the session"
    );
    // Without the script exec before it, the same node exec in another process does not.
    let o = t.observe(&ev(
        S + 2,
        300,
        1,
        exec(
            "/usr/bin/node",
            &[
                "node",
                "/usr/local/bin/openclaw",
                "agent",
                "--agent",
                "main",
                "-m",
                "hi",
            ],
        ),
    ));
    assert_eq!(o.started, None);
}

#[test]
fn a_cli_session_lives_as_long_as_its_subtree_and_records_who_outlived_a_parent() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    t.observe(&ev(S, 100, 1, fork(110)));
    t.observe(&ev(S, 110, 100, exec("/bin/sh", &["sh", "-c", "x"])));
    // `setsid sh -c '…' &` then the shell exits: 120 is re-parented.
    t.observe(&ev(2 * S, 110, 100, fork(120)));
    t.observe(&ev(
        2 * S,
        120,
        110,
        exec("/usr/bin/sleep", &["sleep", "45"]),
    ));
    t.observe(&ev(3 * S, 110, 100, exit(true)));
    t.observe(&ev(4 * S, 100, 1, exit(true)));
    assert!(t.expire(60 * S).is_empty(), "120 still runs");
    let s = t.session(1).expect("open");
    assert_eq!(s.reparented, vec![(120, 3 * S)]);
    assert_eq!(s.reparented_dropped, 0);
    // The payload acts after the invocation is gone: still the session's.
    let o = t.observe(&ev(61 * S, 120, 1, connect()));
    assert_eq!(session_of(&o), Some(1));
    t.observe(&ev(62 * S, 120, 1, exit(true)));
    let closed = t.expire(64 * S + 1);
    assert_eq!(
        closed,
        vec![Closed {
            id: 1,
            kind: "cli",
            closed_ns: 64 * S,
            reason: CloseReason::LeaderExit
        }]
    );
}

#[test]
fn re_parented_processes_are_bounded_and_the_overflow_is_counted() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    t.observe(&ev(S, 100, 1, fork(110)));
    let n = super::REPARENTED_MAX as u32 + 5;
    for i in 0..n {
        t.observe(&ev(S, 110, 100, fork(1000 + i)));
    }
    t.observe(&ev(2 * S, 110, 100, exit(true)));
    let s = t.session(1).expect("open");
    assert_eq!(s.reparented.len(), super::REPARENTED_MAX);
    assert_eq!(s.reparented_dropped, 5);
    assert!(s.reparented.windows(2).all(|w| w[0] < w[1]), "in pid order");
}

#[test]
fn a_bare_shell_an_agent_command_starts_is_an_exec_like_any_other() {
    let mut t = tracker();
    t.observe(&ev(S, 100, 1, invocation()));
    t.observe(&ev(S, 100, 1, fork(110)));
    t.observe(&ev(
        S,
        110,
        100,
        exec("/bin/bash", &["bash", "-c", "curl x | sh"]),
    ));
    t.observe(&ev(S, 110, 100, fork(120)));
    // `curl … | sh`: the shell reads its program from the pipe.
    let o = t.observe(&ev(S, 120, 110, exec("/bin/sh", &["sh"])));
    assert_eq!(
        o.verdict,
        Verdict::Session {
            session: 1,
            runtime: false,
            pending_shell: false,
            runtime_started: false,
        }
    );
}

#[test]
fn a_users_wrapper_named_after_the_runtime_is_not_the_runtime() {
    // `run_openclaw_case.sh` starts a model server with nohup, polls it with curl, then runs
    // the real invocation: the invocation gets its own session, the wrapper's own work none.
    let mut t = tracker();
    let script = "/home/u/run_openclaw_case.sh";
    let mut wrapper = ev(S, 50, 1, exec(script, &["/bin/bash", script]));
    wrapper.comm = Bytes::from("run_openclaw_ca");
    let o = t.observe(&wrapper);
    assert_eq!(o.verdict, Verdict::Outside);
    assert!(
        o.track.is_empty(),
        "the wrapper is not tracked as the runtime"
    );
    t.observe(&ev(S, 50, 1, fork(51)));
    let o = t.observe(&ev(
        S,
        51,
        50,
        exec("/usr/bin/curl", &["curl", "-s", "127.0.0.1:18080"]),
    ));
    assert_eq!(
        o.verdict,
        Verdict::Outside,
        "the wrapper's health check is nobody's session"
    );
    assert_eq!(o.started, None);
    t.observe(&ev(2 * S, 50, 1, fork(52)));
    let o = t.observe(&ev(2 * S, 52, 50, invocation()));
    assert_eq!(
        o.started,
        Some(1),
        "the invocation inside the wrapper starts its own session"
    );
    assert_eq!(
        t.session(1).map(|s| (s.kind, s.leader)),
        Some((SessionKind::Cli, 52))
    );
    assert_eq!(t.open_sessions().count(), 1);
}

/// A gateway (50) with its spawn broker (51), as found running at start-up.
fn gateway_tracker() -> Tracker {
    let mut t = tracker();
    let gw = exec(
        &format!("{BIN}/node"),
        &["node", &format!("{BIN}/openclaw"), "gateway", "run"],
    );
    let Detail::Exec(gwx) = &gw else {
        unreachable!()
    };
    t.seed(50, 1, b"openclaw-gatewa", gwx, 0);
    t.observe(&ev(S, 50, 1, fork(51)));
    t.observe(&ev(
        S,
        51,
        50,
        exec(
            &format!("{BIN}/node"),
            &[
                "node",
                "/opt/lib/openclaw/dist/process/spawn-broker/worker.js",
            ],
        ),
    ));
    t
}

fn cli(args: &[&str]) -> Detail {
    let launcher = format!("{BIN}/openclaw");
    let mut argv = vec!["node", launcher.as_str(), "agent", "--agent", "main"];
    argv.extend_from_slice(args);
    exec(&format!("{BIN}/node"), &argv)
}

/// The OOM shim the broker's child `pid` execs for `cmd` at `t`, observed once: the tracker
/// asks who issued it.
fn gateway_tool(t: &mut Tracker, at: u64, pid: u32, cmd: &str) -> (Event, Request) {
    t.observe(&ev(at, 51, 50, fork(pid)));
    let script = format!(
        "if [ -r '{SNAP}' ]; then . '{SNAP}'; fi\nexport PATH='/usr/bin:/bin'\neval '{}'",
        cmd.replace('\'', "'\\''")
    );
    let e = ev(
        at,
        pid,
        51,
        exec(
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
        ),
    );
    let o = t.observe(&e);
    assert_eq!(o.verdict, Verdict::Outside, "held until answered");
    let req = o.attribute.expect("a gateway tool process is asked about");
    assert_eq!((req.pid, req.exec_ns), (pid, at));
    assert_eq!(req.command, cmd);
    assert_eq!(
        req.state_dir.as_deref(),
        Some("/home/u/.openclaw"),
        "named by the snapshot path"
    );
    (e, req)
}

fn answer(req: &Request, session: Option<&str>, message: Option<&str>) -> Attribution {
    Attribution {
        pid: req.pid,
        exec_ns: req.exec_ns,
        transcript_session: session.map(str::to_owned),
        message: message.map(str::to_owned),
    }
}

#[test]
fn overlapping_gateway_turns_each_get_the_tool_processes_they_issued() {
    let mut t = gateway_tracker();
    t.observe(&ev(
        2 * S,
        100,
        1,
        cli(&["--session-id", "A", "-m", "go A"]),
    ));
    t.observe(&ev(
        3 * S,
        200,
        1,
        cli(&["--session-id", "B", "-m", "go B"]),
    ));
    // A CLI without --session-id is named by its message.
    t.observe(&ev(4 * S, 300, 1, cli(&["-m", "it's C"])));
    let (a, b, c) = (1, 2, 3);
    // A's command, though C is the newest.
    let (e, req) = gateway_tool(&mut t, 5 * S, 60, "cat '/etc/os-release'");
    assert_eq!(
        t.attribute(&req, Some(&answer(&req, Some("A"), Some("go A")))),
        Method::Transcript
    );
    assert_eq!(session_of(&t.observe(&e)), Some(a));
    assert_eq!(t.session(a).unwrap().attribution, Some(Method::Transcript));
    // Its children follow it.
    t.observe(&ev(5 * S, 60, 51, fork(61)));
    assert_eq!(
        session_of(&t.observe(&ev(5 * S, 61, 60, exec("/usr/bin/cat", &["cat"])))),
        Some(a)
    );
    // B's.
    let (e, req) = gateway_tool(&mut t, 6 * S, 70, "id");
    t.attribute(&req, Some(&answer(&req, Some("B"), None)));
    assert_eq!(session_of(&t.observe(&e)), Some(b));
    // C's: the transcript session is OpenClaw's own id; the message names C.
    let (e, req) = gateway_tool(&mut t, 7 * S, 80, "uname -r");
    t.attribute(&req, Some(&answer(&req, Some("0b9e-uuid"), Some("it's C"))));
    assert_eq!(session_of(&t.observe(&e)), Some(c));
    assert_eq!(t.session(c).unwrap().attribution, Some(Method::Transcript));
    // A message that is B's does not name B: B named its transcript session itself.
    let (e, req) = gateway_tool(&mut t, 8 * S, 90, "true");
    assert_eq!(
        t.attribute(&req, Some(&answer(&req, Some("x"), Some("go B")))),
        Method::Recency
    );
    assert_eq!(
        session_of(&t.observe(&e)),
        Some(c),
        "the newest, by recency"
    );
    assert_eq!(t.session(c).unwrap().attribution, Some(Method::Recency));
    assert_eq!(t.session(b).unwrap().attribution, Some(Method::Transcript));
}

#[test]
fn no_answer_or_a_stray_one_means_recency_and_says_so() {
    let mut t = gateway_tracker();
    t.observe(&ev(
        2 * S,
        100,
        1,
        cli(&["--session-id", "A", "-m", "go A"]),
    ));
    t.observe(&ev(
        3 * S,
        200,
        1,
        cli(&["--session-id", "B", "-m", "go B"]),
    ));
    // No answer.
    let (e, req) = gateway_tool(&mut t, 4 * S, 60, "echo 1");
    assert_eq!(t.attribute(&req, None), Method::Recency);
    assert_eq!(session_of(&t.observe(&e)), Some(2));
    assert_eq!(t.session(2).unwrap().attribution, Some(Method::Recency));
    // An answer about another process (or another exec of this pid) is not this one's.
    let (e, req) = gateway_tool(&mut t, 5 * S, 70, "echo 2");
    let mut other = answer(&req, Some("A"), None);
    other.exec_ns += 1;
    assert_eq!(t.attribute(&req, Some(&other)), Method::Recency);
    assert_eq!(session_of(&t.observe(&e)), Some(2));
    // A session that is closing (its subtree gone) cannot take a new tool process.
    t.observe(&ev(6 * S, 100, 1, exit(true)));
    let (e, req) = gateway_tool(&mut t, 6 * S, 80, "echo 3");
    assert_eq!(
        t.attribute(&req, Some(&answer(&req, Some("A"), None))),
        Method::Recency
    );
    assert_eq!(session_of(&t.observe(&e)), Some(2));
    assert_eq!(t.session(1).unwrap().attribution, None, "A got none");
    // With no CLI session open nothing is asked: a gateway session starts, as before.
    for pid in [60, 70, 80, 200] {
        t.observe(&ev(7 * S, pid, 1, exit(true)));
    }
    assert_eq!(t.expire(10 * S).len(), 2);
    t.observe(&ev(11 * S, 51, 50, fork(90)));
    let o = t.observe(&ev(11 * S, 90, 51, shim()));
    assert!(o.attribute.is_none());
    assert!(o.started.is_some());
    assert_eq!(
        t.session(o.started.unwrap()).unwrap().kind,
        SessionKind::Gateway
    );
}

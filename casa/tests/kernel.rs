//! Kernel integration tests: load casa's eBPF programs for real (as root), run real processes,
//! and assert on what the sensor recorded. Each test runs `casa record` on a workload of its
//! own and only ever touches processes it started.
//!
//! Workloads are small Python programs (CPython is on every machine casa is tested on), so a
//! test states exactly which syscalls it makes.

mod support;

use std::{
    io::Read,
    net::{TcpListener, UdpSocket},
    os::unix::net::UnixListener,
    process::{Command, Stdio},
};

use casa::event::{Bytes, SockAddr};
use support::{record, require_root, tempdir};

fn py(code: &str) -> Vec<String> {
    vec![support::python().into(), "-c".into(), code.into()]
}

fn run_py(name: &str, extra: &[&str], code: &str) -> support::Recorded {
    let cmd = py(code);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    record(name, extra, &cmd)
}

#[test]
fn exec_argv_20_args_1kib_arg_and_non_utf8() {
    // argv: 20 args, one of 1 KiB, one with bytes that are not UTF-8.
    let r = run_py(
        "argv",
        &[],
        r#"
import os
args = [b'/bin/true'] + [b'a%d' % i for i in range(17)] + [b'x' * 1024, b'bad\xff\xfe\x80']
os.execv(b'/bin/true', args)
"#,
    );
    let (_, x) = r.exec_arg0(b"/bin/true");
    check!(
        r,
        x.argv.len() == 20,
        "expected 20 args, got {}",
        x.argv.len()
    );
    check!(
        r,
        x.argv[18] == Bytes(vec![b'x'; 1024]),
        "1 KiB argument not intact"
    );
    check!(
        r,
        x.argv[19] == Bytes(b"bad\xff\xfe\x80".to_vec()),
        "non-UTF-8 argument not intact"
    );
    check!(
        r,
        !x.argv_truncated && x.result == 0,
        "exec flagged truncated or failed"
    );
    check!(
        r,
        x.path == Bytes::from("/usr/bin/true"),
        "path {} is not the resolved binary",
        x.path
    );
    check!(
        r,
        x.argv[19].to_text() == "bad\\xff\\xfe\\x80",
        "escaped text form wrong"
    );
}

#[test]
fn exec_argv_longer_than_4k_is_truncated_and_flagged() {
    let r = run_py(
        "argv-long",
        &[],
        "import os; os.execv('/bin/true', ['/bin/true'] + ['y' * 1000] * 8)",
    );
    let (_, x) = r.exec_arg0(b"/bin/true");
    check!(r, x.argv_truncated, "8 KB of argv not flagged truncated");
    let total: usize = x.argv.iter().map(|a| a.as_bytes().len() + 1).sum();
    check!(
        r,
        (4000..=4097).contains(&total),
        "captured {total} argv bytes"
    );
}

#[test]
fn fexecve_of_memfd_shows_memfd_path() {
    let r = run_py(
        "memfd",
        &[],
        r#"
import os
fd = os.memfd_create('casa-payload', 0)
os.write(fd, open('/bin/true', 'rb').read())
os.execve(fd, ['payload'], {})
"#,
    );
    let (_, x) = r.exec_arg0(b"payload");
    check!(
        r,
        x.path == Bytes::from("/memfd:casa-payload (deleted)"),
        "memfd exec path is {}",
        x.path
    );
    check!(
        r,
        x.via_execveat && x.memfd_or_deleted(),
        "not flagged as execveat/memfd"
    );
}

#[test]
fn fexecve_of_deleted_file_shows_deleted_path() {
    let dir = tempdir("deleted-exec");
    let bin = dir.join("gone-bin");
    let code = format!(
        r#"
import os, shutil
shutil.copy('/bin/true', '{bin}')
fd = os.open('{bin}', os.O_RDONLY)
os.unlink('{bin}')
os.execve(fd, ['gone'], {{}})
"#,
        bin = bin.display()
    );
    let r = run_py("deleted-exec", &[], &code);
    let (_, x) = r.exec_arg0(b"gone");
    let want = format!("{} (deleted)", bin.display());
    check!(
        r,
        x.path == Bytes::from(want.as_str()),
        "deleted exec path is {}",
        x.path
    );
    check!(r, x.memfd_or_deleted(), "not flagged memfd_or_deleted");
}

#[test]
fn script_exec_reports_the_script_not_its_interpreter() {
    let dir = tempdir("script");
    let script = dir.join("helper.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cmd = format!(
        "cd {} && ./helper.sh && cd / && {}/../{}/helper.sh",
        dir.display(),
        dir.display(),
        dir.file_name().unwrap().to_str().unwrap()
    );
    let r = record("script", &[], &["/bin/sh", "-c", &cmd]);
    let want = script.display().to_string();
    let scripts: Vec<_> = r
        .execs()
        .into_iter()
        .filter(|(_, x)| x.script)
        .map(|(_, x)| x.clone())
        .collect();
    check!(
        r,
        scripts.len() == 2,
        "expected two script execs, saw {}",
        scripts.len()
    );
    for x in &scripts {
        check!(
            r,
            x.path == Bytes::from(want.as_str()),
            "script exec path {} (filename {})",
            x.path,
            x.filename
        );
        check!(
            r,
            x.argv.first() == Some(&Bytes::from("/bin/sh")),
            "argv[0] should be the interpreter: {:?}",
            x.argv
        );
    }
    check!(
        r,
        scripts[0].filename == Bytes::from("./helper.sh"),
        "filename {}",
        scripts[0].filename
    );
}

#[test]
fn failed_exec_is_reported_with_errno() {
    let r = run_py(
        "exec-fail",
        &[],
        "import os\ntry:\n    os.execv('/nonexistent/casa-prog', ['casa-prog', 'arg1'])\nexcept OSError:\n    pass",
    );
    let (_, x) = r.exec_arg0(b"casa-prog");
    check!(r, x.result == -2, "failed exec result {}", x.result);
    check!(
        r,
        x.path == Bytes::from("/nonexistent/casa-prog"),
        "failed exec path {}",
        x.path
    );
    check!(
        r,
        x.argv == vec![Bytes::from("casa-prog"), Bytes::from("arg1")],
        "argv {:?}",
        x.argv
    );
}

#[test]
fn exec_carries_caps_seccomp_and_no_new_privs_read_at_exec_time() {
    // prctl(PR_SET_NO_NEW_PRIVS) then exec: the flag and the (root) capabilities must be the
    // exec's own, read in the kernel, not from /proc later.
    let r = run_py(
        "creds",
        &[],
        "import ctypes, os\nctypes.CDLL(None).prctl(38, 1, 0, 0, 0)\nos.execv('/bin/true', ['nnp-true'])",
    );
    let (_, x) = r.exec_arg0(b"nnp-true");
    check!(r, x.no_new_privs, "no_new_privs not seen");
    check!(
        r,
        x.seccomp_mode == Some(0),
        "seccomp mode {:?}",
        x.seccomp_mode
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let capeff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    check!(
        r,
        x.cap_effective == Some(capeff),
        "cap_effective {:?} != this root test's {capeff:#x}",
        x.cap_effective
    );
    // The python process itself (not no_new_privs) for contrast.
    let (_, py) = r.exec_arg0(support::python().as_bytes());
    check!(
        r,
        !py.no_new_privs,
        "python exec wrongly flagged no_new_privs"
    );
}

#[test]
fn fork_lineage_grandchild_child_root() {
    let r = run_py(
        "lineage",
        &[],
        r#"
import os
pid = os.fork()
if pid == 0:
    gpid = os.fork()
    if gpid == 0:
        os.execv('/bin/true', ['grandchild'])
    os.waitpid(gpid, 0)
    os._exit(0)
os.waitpid(pid, 0)
"#,
    );
    let root = r.root();
    let (g, _) = r.exec_arg0(b"grandchild");
    let child = g.ppid;
    check!(
        r,
        child != root && child != 0,
        "grandchild's parent {child} should be the child"
    );
    let forked = |parent: u32, kid: u32| {
        r.events.iter().any(|e| {
            matches!(&e.detail, casa::event::Detail::Fork(f) if e.pid == parent && f.child_pid == kid)
        })
    };
    check!(
        r,
        forked(root, child),
        "no fork event root {root} -> child {child}"
    );
    check!(
        r,
        forked(child, g.pid),
        "no fork event child {child} -> grandchild {}",
        g.pid
    );
    let child_ppid = r.events.iter().find(|e| e.pid == child).map(|e| e.ppid);
    check!(
        r,
        child_ppid == Some(root),
        "child's ppid {child_ppid:?} is not the root {root}"
    );
}

#[test]
fn opens_creat_wronly_enoent_and_relative() {
    let dir = tempdir("opens");
    let code = format!(
        r#"
import os
os.chdir('{dir}')
fd = os.open('created.txt', os.O_CREAT | os.O_WRONLY, 0o640)
os.close(fd)
try:
    os.open('{dir}/missing/nothing.txt', os.O_RDONLY)
except FileNotFoundError:
    pass
"#,
        dir = dir.display()
    );
    let r = run_py("opens", &[], &code);
    let (_, created) = r.open_raw("created.txt");
    let want = format!("{}/created.txt", dir.display());
    check!(
        r,
        created.path == Some(Bytes::from(want.as_str())),
        "relative open resolved to {:?}",
        created.path
    );
    check!(
        r,
        created.result >= 0,
        "O_CREAT open result {}",
        created.result
    );
    check!(
        r,
        created.flags & (libc::O_CREAT | libc::O_WRONLY) as u32
            == (libc::O_CREAT | libc::O_WRONLY) as u32,
        "flags {:#x}",
        created.flags
    );
    check!(r, created.mode == 0o640, "mode {:o}", created.mode);
    let missing = format!("{}/missing/nothing.txt", dir.display());
    let (_, failed) = r.open_raw(&missing);
    check!(
        r,
        failed.result == -(libc::ENOENT as i64),
        "failing open result {}",
        failed.result
    );
    check!(
        r,
        failed.path.is_none(),
        "failed open has a resolved path {:?}",
        failed.path
    );
}

#[test]
fn open_through_fd_of_unlinked_file_is_deleted() {
    let dir = tempdir("unlinked");
    let code = format!(
        r#"
import os
p = '{dir}/ghost.txt'
fd = os.open(p, os.O_CREAT | os.O_RDWR)
os.write(fd, b'secret')
os.unlink(p)
with open('/proc/self/fd/%d' % fd) as f:
    f.read()
"#,
        dir = dir.display()
    );
    let r = run_py("unlinked", &[], &code);
    let tree = r.tree();
    let reopen = r.opens().into_iter().find(|(e, o)| {
        tree.contains(&e.pid) && o.raw_path.as_bytes().starts_with(b"/proc/self/fd/")
    });
    let Some((_, o)) = reopen else {
        panic!("no reopen through /proc/self/fd\n{}", r.dump())
    };
    let want = format!("{}/ghost.txt (deleted)", dir.display());
    check!(
        r,
        o.path == Some(Bytes::from(want.as_str())),
        "reopened path {:?}",
        o.path
    );
}

#[test]
fn openat2_is_captured() {
    let dir = tempdir("openat2");
    // openat2(AT_FDCWD, path, &how{flags=O_RDONLY}, 24) via ctypes: syscall 437.
    let code = format!(
        r#"
import ctypes, os
open('{dir}/o2.txt', 'w').close()
libc = ctypes.CDLL(None, use_errno=True)
how = (ctypes.c_uint64 * 3)(0, 0, 0)
fd = libc.syscall(437, -100, b'{dir}/o2.txt', ctypes.byref(how), 24)
assert fd >= 0, ctypes.get_errno()
"#,
        dir = dir.display()
    );
    let r = run_py("openat2", &[], &code);
    let raw = format!("{}/o2.txt", dir.display());
    let tree = r.tree();
    let found = r.opens().into_iter().any(|(e, o)| {
        tree.contains(&e.pid)
            && o.syscall == "openat2"
            && o.raw_path.as_bytes() == raw.as_bytes()
            && o.result >= 0
    });
    check!(r, found, "no successful openat2 of {raw}");
}

#[test]
fn connects_ipv4_ipv6_unix_and_refused() {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    // A port with nothing listening: bind a UDP socket to learn a free port, then drop it.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir("connect");
    let sock = dir.join("s.sock");
    let _ux = UnixListener::bind(&sock).unwrap();
    let code = format!(
        r#"
import socket
a = socket.socket(socket.AF_INET); a.connect(('127.0.0.1', {p4}))
b = socket.socket(socket.AF_INET6); b.connect(('::1', {p6}))
m = socket.socket(socket.AF_INET6); m.connect(('::ffff:127.0.0.1', {p4}))
u = socket.socket(socket.AF_UNIX); u.connect('{sock}')
c = socket.socket(socket.AF_INET)
try:
    c.connect(('127.0.0.1', {closed}))
except ConnectionRefusedError:
    pass
n = socket.socket(socket.AF_INET); n.setblocking(False)
n.connect_ex(('127.0.0.1', {p4}))
"#,
        p4 = v4.local_addr().unwrap().port(),
        p6 = v6.local_addr().unwrap().port(),
        sock = sock.display(),
    );
    let r = run_py("connect", &[], &code);
    let tree = r.tree();
    let cs: Vec<_> = r
        .connects()
        .into_iter()
        .filter(|(e, _)| tree.contains(&e.pid))
        .map(|(_, c)| c.clone())
        .collect();
    let has = |addr: &str, port: u16, mapped: bool, result: i32| {
        cs.iter().any(|c| {
            c.result == result
                && c.addr
                    == SockAddr::Inet {
                        addr: addr.parse().unwrap(),
                        port,
                        v4_mapped: mapped,
                    }
        })
    };
    let p4 = v4.local_addr().unwrap().port();
    check!(
        r,
        has("127.0.0.1", p4, false, 0),
        "no IPv4 connect to {p4} with result 0"
    );
    check!(
        r,
        has("::1", v6.local_addr().unwrap().port(), false, 0),
        "no IPv6 connect"
    );
    check!(
        r,
        has("127.0.0.1", p4, true, 0),
        "no v4-mapped IPv6 connect"
    );
    check!(
        r,
        has("127.0.0.1", closed, false, -(libc::ECONNREFUSED)),
        "no refused connect to {closed}"
    );
    let nonblocking = cs
        .iter()
        .filter(|c| matches!(c.addr, SockAddr::Inet { port, v4_mapped: false, .. } if port == p4))
        .count();
    check!(
        r,
        nonblocking == 2,
        "expected the blocking and the non-blocking IPv4 connect, saw {nonblocking}"
    );
    let unix = cs.iter().any(|c| {
        c.result == 0
            && c.addr
                == SockAddr::Unix {
                    path: Bytes::from(sock.to_str().unwrap()),
                }
    });
    check!(r, unix, "no unix-socket connect to {}", sock.display());
}

#[test]
fn exit_codes_normal_status_and_sigkill() {
    let r = run_py(
        "exits",
        &[],
        r#"
import os, signal
for how in ('zero', 'three', 'kill'):
    pid = os.fork()
    if pid == 0:
        if how == 'zero': os._exit(0)
        if how == 'three': os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
"#,
    );
    let root = r.root();
    let kids: Vec<_> = r
        .exits()
        .into_iter()
        .filter(|(e, x)| e.ppid == root && x.process_gone)
        .map(|(_, x)| (x.status, x.signal))
        .collect();
    check!(
        r,
        kids == vec![(Some(0), None), (Some(3), None), (None, Some(9))],
        "child exits {kids:?}"
    );
}

#[test]
fn thread_exit_is_not_the_leaders_exit() {
    let r = run_py(
        "threads",
        &[],
        "import threading\nt = threading.Thread(target=lambda: None)\nt.start()\nt.join()",
    );
    let root = r.root();
    let exits: Vec<_> = r
        .exits()
        .into_iter()
        .filter(|(e, _)| e.pid == root)
        .collect();
    let thread = exits.iter().find(|(e, _)| e.tid != root);
    let Some((te, t)) = thread else {
        panic!("no thread exit seen\n{}", r.dump())
    };
    let leader = exits.iter().find(|(e, _)| e.tid == root);
    let Some((le, l)) = leader else {
        panic!("no leader exit\n{}", r.dump())
    };
    check!(r, !t.leader, "thread exit looks like the leader's: {t:?}");
    check!(r, l.leader, "leader exit not marked as the leader's: {l:?}");
    // `join` returns once the thread's lock is released, before the kernel
    // task is gone, so either task may be the process's last: the process
    // is gone exactly once, on whichever exit came last, and only that one
    // carries the process's status.
    let (first, last) = if te.ktime_ns < le.ktime_ns {
        (t, l)
    } else {
        (l, t)
    };
    check!(
        r,
        !first.process_gone && last.process_gone && last.status == Some(0),
        "process gone on the wrong exit: first {first:?}, last {last:?}"
    );
}

#[test]
fn scoping_untracked_opens_hidden_tracked_children_shown() {
    require_root();
    let dir = tempdir("scoping");
    let out = dir.join("scope.rec");
    let mut casa = Command::new(support::casa_bin())
        .arg("record")
        .arg("--out")
        .arg(&out)
        .arg("--duration")
        .arg("4s")
        .args([
            "--",
            "sh",
            "-c",
            &format!(
                "sleep 1; sh -c 'cat {0}/tracked-grandchild 2>/dev/null; true'",
                dir.display()
            ),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the sensor to be running (it starts the tracked command then).
    let mut stderr = casa.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("started and tracking") {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "casa exited before starting: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // An untracked process (started by the test, not by casa) opens a file of its own.
    let untracked_path = dir.join("untracked-file");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat {} 2>/dev/null; true",
            untracked_path.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let output = casa.wait_with_output().unwrap();
    let mut output = output;
    output.stderr = format!("{seen}{rest}").into_bytes();
    let r = support::read_recording(&out, output);
    let untracked = untracked_path.display().to_string();
    let leaked = r
        .opens()
        .into_iter()
        .any(|(_, o)| o.raw_path.as_bytes() == untracked.as_bytes());
    check!(r, !leaked, "open of untracked process was emitted");
    let seen_exec = r
        .execs()
        .into_iter()
        .any(|(_, x)| x.argv.iter().any(|a| a.as_bytes() == untracked.as_bytes()));
    check!(
        r,
        seen_exec,
        "exec of the untracked process should still be seen (execs are global)"
    );
    let tracked = format!("{}/tracked-grandchild", dir.display());
    let (e, _) = r.open_raw(&tracked);
    check!(
        r,
        e.pid != r.root(),
        "tracked grandchild's open came from the root itself"
    );
}

#[test]
fn forced_ring_overflow_counts_loss() {
    // An 8 KiB ring and a tracked burst of 200,000 opens: the kernel must count what it could
    // not hand over.
    let r = run_py(
        "overflow",
        &["--ring-size", "8K"],
        "import os\nfor _ in range(200000):\n    os.close(os.open('/dev/null', os.O_RDONLY))",
    );
    let lost = r.summary.kernel.get("lost_open").copied().unwrap_or(0);
    check!(
        r,
        lost > 0,
        "no loss counted with an 8 KiB ring and 200k opens"
    );
    let seen = r.summary.events.get("open").copied().unwrap_or(0);
    check!(
        r,
        seen + lost >= 200_000,
        "seen {seen} + lost {lost} < 200000 opens"
    );
    check!(
        r,
        r.stderr.contains("lost:"),
        "summary does not report loss"
    );
}

#[test]
fn casa_does_not_report_itself() {
    let r = run_py("self", &[], "pass");
    // This recording's casa is the parent of the command it started (other casa processes,
    // of tests running in parallel, are other processes: their exits are not its own).
    let child = r.summary.command_pid.expect("the command's pid");
    let casa_pids: Vec<u32> = r
        .events
        .iter()
        .filter(|e| e.pid == child)
        .map(|e| e.ppid)
        .take(1)
        .collect();
    check!(r, !casa_pids.is_empty(), "no event of the command {child}");
    // The recorded command is forked by casa, so its fork event is casa's; nothing else.
    let non_fork: Vec<&casa::event::Event> = r
        .events
        .iter()
        .filter(|e| casa_pids.contains(&e.pid) && !matches!(e.detail, casa::event::Detail::Fork(_)))
        .collect();
    check!(
        r,
        non_fork.is_empty(),
        "casa's own activity was reported ({} events): {non_fork:?}",
        non_fork.len()
    );
}

/// `(st_dev, st_ino)` of `path` (symlinks followed), as the sensor's [`casa::event::FileId`].
fn stat_id(path: &std::path::Path) -> casa::event::FileId {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    casa::event::FileId {
        dev: m.dev(),
        ino: m.ino(),
    }
}

#[test]
fn open_and_exec_carry_the_file_identity_stat_reports() {
    let dir = tempdir("identity");
    let file = dir.join("data.txt");
    std::fs::write(&file, "x").unwrap();
    let code = format!(
        "import os\nopen('{}').read()\nos.execv('/bin/true', ['identity-true'])",
        file.display()
    );
    let r = run_py("identity", &[], &code);
    let (_, o) = r.open_raw(&file.display().to_string());
    check!(
        r,
        o.facts.file == Some(stat_id(&file)),
        "open identity {:?}, stat says {:?}",
        o.facts.file,
        stat_id(&file)
    );
    let (_, x) = r.exec_arg0(b"identity-true");
    let bin = std::path::Path::new("/bin/true");
    check!(
        r,
        x.facts.file == Some(stat_id(bin)),
        "exec identity {:?}, stat says {:?}",
        x.facts.file,
        stat_id(bin)
    );
    check!(r, x.facts.script_file.is_none(), "a binary has no script");
}

#[test]
fn symlinked_script_exec_reports_the_real_script_and_its_identity() {
    let dir = tempdir("script-link");
    let real = dir.join("real");
    let links = dir.join("links");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&links).unwrap();
    let script = real.join("payload.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let link = links.join("innocent.sh");
    std::os::unix::fs::symlink(&script, &link).unwrap();
    let cmd = format!("{}; exit 0", link.display());
    let r = record("script-link", &[], &["/bin/sh", "-c", &cmd]);
    let scripts: Vec<_> = r.execs().into_iter().filter(|(_, x)| x.script).collect();
    check!(r, scripts.len() == 1, "expected one script exec");
    let x = scripts[0].1;
    check!(
        r,
        x.facts.script_path == Some(Bytes::from(script.display().to_string().as_str())),
        "script's own path {:?} (filename {}), want the real script {}",
        x.facts.script_path,
        x.filename,
        script.display()
    );
    // `path` stays the name the interpreter was handed (what CASA's rules and the session
    // tracker's launcher matching see).
    check!(
        r,
        x.path == Bytes::from(link.display().to_string().as_str()),
        "script exec path {}",
        x.path
    );
    check!(
        r,
        x.filename == Bytes::from(link.display().to_string().as_str()),
        "filename {}",
        x.filename
    );
    check!(
        r,
        x.facts.script_file == Some(stat_id(&script)),
        "script identity {:?}, stat says {:?}",
        x.facts.script_file,
        stat_id(&script)
    );
    check!(
        r,
        x.facts.file == Some(stat_id(std::path::Path::new("/bin/sh"))),
        "interpreter identity {:?}",
        x.facts.file
    );
}

#[test]
fn failed_relative_open_carries_the_absolute_path() {
    let dir = tempdir("relopen");
    // Unprivileged, as an agent's tool command runs: `cd /etc && cat shadow` fails with EACCES;
    // then a relative open against a directory fd that is not the working directory.
    let code = format!(
        r#"
import os
os.setgid(65534); os.setuid(65534)
os.chdir('/etc')
try:
    open('shadow')
except PermissionError:
    pass
d = os.open('{dir}', os.O_RDONLY | os.O_DIRECTORY)
try:
    os.open('sub/../nope.txt', os.O_RDONLY, dir_fd=d)
except FileNotFoundError:
    pass
"#,
        dir = dir.display()
    );
    let r = run_py("relopen", &[], &code);
    let (_, o) = r.open_raw("shadow");
    check!(
        r,
        o.result == -(libc::EACCES as i64),
        "result {} (want -EACCES)",
        o.result
    );
    check!(
        r,
        o.path == Some(Bytes::from("/etc/shadow")) && o.facts.path_joined,
        "path {:?} joined {}",
        o.path,
        o.facts.path_joined
    );
    check!(r, o.raw_path == Bytes::from("shadow"), "raw {}", o.raw_path);
    let (_, d) = r.open_raw("sub/../nope.txt");
    let want = format!("{}/nope.txt", dir.display());
    check!(
        r,
        d.result == -(libc::ENOENT as i64) && d.path == Some(Bytes::from(want.as_str())),
        "dfd-relative open: result {} path {:?}",
        d.result,
        d.path
    );
}

#[test]
fn preloaded_exec_shows_the_loader_variables() {
    // 80 ordinary variables first: the scan must reach the loader variables behind them.
    let r = run_py(
        "preload",
        &[],
        r#"
import os
env = {'FILLER_%02d' % i: 'v' * 40 for i in range(80)}
env['LD_PRELOAD'] = '/dev/shm/casa-test-x.so'
env['LD_LIBRARY_PATH'] = '/opt/casa-test'
env['LD_PRELOADX'] = 'not-a-loader-variable'
os.execve('/bin/true', ['preloaded-true'], env)
"#,
    );
    let (_, x) = r.exec_arg0(b"preloaded-true");
    let env: Vec<String> = x.facts.loader_env.iter().map(Bytes::to_text).collect();
    check!(
        r,
        env.contains(&"LD_PRELOAD=/dev/shm/casa-test-x.so".to_owned())
            && env.contains(&"LD_LIBRARY_PATH=/opt/casa-test".to_owned())
            && env.len() == 2,
        "loader variables {env:?}"
    );
    check!(r, !x.facts.env_truncated, "scan flagged truncated");
}

#[test]
fn shell_with_a_tcp_socket_on_stdin_shows_socket_and_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        r#"
import os, socket
s = socket.create_connection(('127.0.0.1', {port}))
os.dup2(s.fileno(), 0)
os.dup2(s.fileno(), 1)
os.execv('/bin/sh', ['revshell-sh', '-c', 'exit 0'])
"#
    );
    let accept = std::thread::spawn(move || listener.accept().map(|_| ()));
    let r = run_py("revshell", &[], &code);
    let _ = accept.join();
    let (_, x) = r.exec_arg0(b"revshell-sh");
    let kinds: Vec<_> = x.facts.stdio.iter().map(|s| s.kind).collect();
    // fd 2 is whatever the test harness gave casa (a pipe or a tty).
    check!(
        r,
        kinds.len() == 3
            && kinds[..2] == [casa::event::FdKind::Socket, casa::event::FdKind::Socket],
        "stdio kinds {kinds:?}"
    );
    let peer = x.facts.stdio[0].peer.clone();
    check!(
        r,
        peer == Some(SockAddr::Inet {
            addr: "127.0.0.1".parse().unwrap(),
            port,
            v4_mapped: false
        }) && x.facts.stdio[0].family == Some(2),
        "fd 0 peer {peer:?}"
    );
}

#[test]
fn piped_shell_shows_a_pipe_on_stdin() {
    let r = record(
        "pipe-sh",
        &[],
        &["/bin/sh", "-c", "echo 'exit 0' | /bin/sh"],
    );
    let tree = r.tree();
    let inner = r
        .execs()
        .into_iter()
        .find(|(e, x)| tree.contains(&e.pid) && x.argv == [Bytes::from("/bin/sh")]);
    let Some((_, x)) = inner else {
        panic!("no exec of the piped shell\n{}", r.dump())
    };
    check!(
        r,
        x.facts.stdio.first().map(|s| s.kind) == Some(casa::event::FdKind::Pipe)
            && x.facts.stdio[0].file.is_some(),
        "fd 0 of the piped shell: {:?}",
        x.facts.stdio.first()
    );
}

#[test]
fn legacy_open_and_creat_are_captured() {
    let dir = tempdir("legacy-open");
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "s").unwrap();
    let made = dir.join("made.txt");
    // x86_64: open = 2, creat = 85 (glibc never calls them itself).
    let code = format!(
        r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
assert libc.syscall(2, b'{secret}', 0, 0) >= 0, ctypes.get_errno()
assert libc.syscall(85, b'{made}', 0o600) >= 0, ctypes.get_errno()
"#,
        secret = secret.display(),
        made = made.display()
    );
    let r = run_py("legacy-open", &[], &code);
    let (_, o) = r.open_raw(&secret.display().to_string());
    check!(
        r,
        o.syscall == "open" && o.result >= 0 && o.facts.file == Some(stat_id(&secret)),
        "open(2): {o:?}"
    );
    let (_, c) = r.open_raw(&made.display().to_string());
    check!(
        r,
        c.syscall == "creat"
            && c.result >= 0
            && c.mode == 0o600
            && c.flags == (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32
            && c.path == Some(Bytes::from(made.display().to_string().as_str())),
        "creat(2): {c:?}"
    );
}

fn socket_ops(r: &support::Recorded) -> Vec<casa::event::SocketOp> {
    let tree = r.tree();
    r.events
        .iter()
        .filter(|e| tree.contains(&e.pid))
        .filter_map(|e| match &e.detail {
            casa::event::Detail::Activity(casa::event::Activity::Socket(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn inet(ip: &str, port: u16) -> SockAddr {
    SockAddr::Inet {
        addr: ip.parse().unwrap(),
        port,
        v4_mapped: false,
    }
}

#[test]
fn udp_sends_without_connect_carry_destination_and_bytes_once_per_destination() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let code = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b'secret-1', ('127.0.0.1', {pa}))
s.sendto(b'secret-2', ('127.0.0.1', {pa}))
s.sendmsg([b'abc', b'defg'], [], 0, ('127.0.0.1', {pb}))
"#
    );
    let r = run_py("udp-send", &[], &code);
    let ops = socket_ops(&r);
    let to_a: Vec<_> = ops
        .iter()
        .filter(|s| s.addr == inet("127.0.0.1", pa))
        .collect();
    check!(
        r,
        to_a.len() == 1
            && to_a[0].op == casa::event::SocketOpKind::Sendto
            && to_a[0].result == 8
            && to_a[0].len == 8,
        "sendto events to port {pa}: {to_a:?}"
    );
    let to_b: Vec<_> = ops
        .iter()
        .filter(|s| s.addr == inet("127.0.0.1", pb))
        .collect();
    check!(
        r,
        to_b.len() == 1 && to_b[0].op == casa::event::SocketOpKind::Sendmsg && to_b[0].result == 7,
        "sendmsg events to port {pb}: {to_b:?}"
    );
}

#[test]
fn bind_listen_accept_and_tcp_states_carry_addresses() {
    let dir = tempdir("server");
    let out = dir.join("client-port");
    let code = format!(
        r#"
import socket
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(7)
port = s.getsockname()[1]
c = socket.create_connection(('127.0.0.1', port))
conn, peer = s.accept()
open('{out}', 'w').write(str(c.getsockname()[1]))
"#,
        out = out.display()
    );
    let r = run_py("server", &[], &code);
    let client_port: u16 = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("client port: {e}\n{}", r.dump()))
        .parse()
        .unwrap();
    let ops = socket_ops(&r);
    let bind = ops.iter().find(|s| s.op == casa::event::SocketOpKind::Bind);
    let Some(bind) = bind else {
        panic!("no bind\n{}", r.dump())
    };
    check!(
        r,
        bind.result == 0 && bind.addr == inet("127.0.0.1", 0),
        "bind {bind:?}"
    );
    let listen = ops
        .iter()
        .find(|s| s.op == casa::event::SocketOpKind::Listen);
    let Some(listen) = listen else {
        panic!("no listen\n{}", r.dump())
    };
    let SockAddr::Inet { port, .. } = listen.addr else {
        panic!("listen address {:?}\n{}", listen.addr, r.dump())
    };
    check!(
        r,
        port != 0 && listen.addr == inet("127.0.0.1", port) && listen.len == 7,
        "listen {listen:?}"
    );
    let accept = ops.iter().find(|s| {
        matches!(
            s.op,
            casa::event::SocketOpKind::Accept | casa::event::SocketOpKind::Accept4
        )
    });
    let Some(accept) = accept else {
        panic!("no accept\n{}", r.dump())
    };
    let tcp: Vec<casa::event::TcpState> = r
        .events
        .iter()
        .filter_map(|e| match &e.detail {
            casa::event::Detail::Activity(casa::event::Activity::Tcp(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let syn = tcp.iter().find(|t| t.new == "syn_sent");
    let Some(syn) = syn else {
        panic!("no syn_sent state\n{}", r.dump())
    };
    check!(r, syn.remote == inet("127.0.0.1", port), "syn_sent {syn:?}");
    // The accepted peer is the client's end.
    check!(
        r,
        accept.result >= 0 && accept.addr == inet("127.0.0.1", client_port),
        "accept {accept:?}, client port {client_port}"
    );
    check!(
        r,
        tcp.iter()
            .any(|t| t.new == "listen" && t.local == inet("127.0.0.1", port)),
        "no listen state: {tcp:?}"
    );
}

fn file_ops(r: &support::Recorded) -> Vec<casa::event::FileOp> {
    let tree = r.tree();
    r.events
        .iter()
        .filter(|e| tree.contains(&e.pid))
        .filter_map(|e| match &e.detail {
            casa::event::Detail::Activity(casa::event::Activity::File(f)) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn file_lifecycle_carries_absolute_old_and_new_paths_and_results() {
    use casa::event::FileOpKind as K;
    let dir = tempdir("lifecycle");
    let d = dir.display().to_string();
    let code = format!(
        r#"
import os
os.chdir('{d}')
open('x.sh', 'w').write('#!/bin/sh\n')
os.rename('x.sh', 'y.sh')
os.link('y.sh', '{d}/hard.sh')
os.symlink('y.sh', 'soft.sh')
os.chmod('y.sh', 0o755)
fd = os.open('y.sh', os.O_RDONLY)
os.fchmod(fd, 0o700)
os.unlink('soft.sh')
try:
    os.unlink('missing.sh')
except FileNotFoundError:
    pass
"#
    );
    let r = run_py("lifecycle", &[], &code);
    let ops = file_ops(&r);
    let b = |s: &str| Some(Bytes::from(format!("{d}/{s}").as_str()));
    let find = |k: K| {
        ops.iter()
            .find(|o| o.op == k && o.result == 0)
            .unwrap_or_else(|| panic!("no successful {k:?}\n{}", r.dump()))
    };
    let rename = ops
        .iter()
        .find(|o| matches!(o.op, K::Rename | K::Renameat | K::Renameat2))
        .unwrap_or_else(|| panic!("no rename\n{}", r.dump()));
    check!(
        r,
        rename.result == 0
            && rename.path == b("x.sh")
            && rename.new_path == b("y.sh")
            && rename.raw_path == Bytes::from("x.sh"),
        "rename {rename:?}"
    );
    let link = ops
        .iter()
        .find(|o| matches!(o.op, K::Link | K::Linkat))
        .unwrap_or_else(|| panic!("no link\n{}", r.dump()));
    check!(
        r,
        link.path == b("y.sh") && link.new_path == b("hard.sh"),
        "link {link:?}"
    );
    let symlink = ops
        .iter()
        .find(|o| matches!(o.op, K::Symlink | K::Symlinkat))
        .unwrap_or_else(|| panic!("no symlink\n{}", r.dump()));
    check!(
        r,
        symlink.raw_path == Bytes::from("y.sh")
            && symlink.path.is_none()
            && symlink.new_path == b("soft.sh"),
        "symlink {symlink:?}"
    );
    let chmod = ops
        .iter()
        .find(|o| matches!(o.op, K::Chmod | K::Fchmodat | K::Fchmodat2))
        .unwrap_or_else(|| panic!("no chmod\n{}", r.dump()));
    check!(
        r,
        chmod.path == b("y.sh") && chmod.mode == Some(0o755),
        "chmod {chmod:?}"
    );
    let fchmod = find(K::Fchmod);
    check!(
        r,
        fchmod.path == b("y.sh")
            && fchmod.mode == Some(0o700)
            && fchmod.file == Some(stat_id(&dir.join("y.sh"))),
        "fchmod {fchmod:?}"
    );
    let unlinks: Vec<_> = ops
        .iter()
        .filter(|o| matches!(o.op, K::Unlink | K::Unlinkat))
        .collect();
    check!(
        r,
        unlinks
            .iter()
            .any(|o| o.result == 0 && o.path == b("soft.sh"))
            && unlinks
                .iter()
                .any(|o| o.result == -(libc::ENOENT as i64) && o.path == b("missing.sh")),
        "unlinks {unlinks:?}"
    );
}

#[test]
fn setsid_ptrace_attach_and_memfd_create_are_reported() {
    use casa::event::{Activity, Detail};
    let dir = tempdir("procops");
    let out = dir.join("pids");
    let code = format!(
        r#"
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
fd = os.memfd_create('casa-mem', os.MFD_CLOEXEC)
child = os.fork()
if child == 0:
    os.setsid()
    time.sleep(5)
    os._exit(0)
time.sleep(0.2)
assert libc.ptrace(16, child, None, None) == 0, ctypes.get_errno()
os.waitpid(child, 0)
libc.ptrace(17, child, None, None)
os.kill(child, signal.SIGKILL)
os.waitpid(child, 0)
open('{out}', 'w').write(str(child))
"#,
        out = out.display()
    );
    let r = run_py("procops", &[], &code);
    let child: u32 = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("child pid: {e}\n{}", r.dump()))
        .parse()
        .unwrap();
    let acts: Vec<(u32, &Activity)> = r
        .events
        .iter()
        .filter_map(|e| match &e.detail {
            Detail::Activity(a) => Some((e.pid, a)),
            _ => None,
        })
        .collect();
    check!(
        r,
        acts.iter().any(|(pid, a)| *pid == child
            && matches!(a, Activity::Setsid(s) if s.result == child as i64)),
        "no setsid by the child {child}"
    );
    check!(
        r,
        acts.iter().any(|(pid, a)| *pid == r.root()
            && matches!(a, Activity::Ptrace(p)
                if p.request == "attach" && p.target_pid == child && p.result == 0)),
        "no ptrace attach of {child}"
    );
    check!(
        r,
        acts.iter().any(|(_, a)| matches!(a, Activity::Memfd(m)
            if m.name == Bytes::from("casa-mem") && m.result >= 0 && m.flags == 1)),
        "no memfd_create of casa-mem"
    );
}

/// A minimal io_uring client in Python (raw syscalls, no liburing): `submit(sqe)` queues one
/// 64-byte SQE, enters the kernel and returns the completion's result.
const PY_URING: &str = r#"
import ctypes, mmap, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
params = ctypes.create_string_buffer(120)
ring = libc.syscall(425, 4, params)
assert ring >= 0, ctypes.get_errno()
p = params.raw
sq_entries, cq_entries = struct.unpack_from('2I', p, 0)
features = struct.unpack_from('I', p, 20)[0]
sq_head, sq_tail, sq_mask, _, _, _, sq_array = struct.unpack_from('7I', p, 40)
cq_head, cq_tail, cq_mask, _, _, cq_cqes = struct.unpack_from('6I', p, 80)
rw = mmap.PROT_READ | mmap.PROT_WRITE
sq_size = sq_array + sq_entries * 4
cq_size = cq_cqes + cq_entries * 16
if features & 1:
    sq = cq = mmap.mmap(ring, max(sq_size, cq_size), mmap.MAP_SHARED, rw, offset=0)
else:
    sq = mmap.mmap(ring, sq_size, mmap.MAP_SHARED, rw, offset=0)
    cq = mmap.mmap(ring, cq_size, mmap.MAP_SHARED, rw, offset=0x8000000)
sqes = mmap.mmap(ring, sq_entries * 64, mmap.MAP_SHARED, rw, offset=0x10000000)
u32 = lambda m, o: struct.unpack_from('I', m, o)[0]
def submit(opcode, fd, addr, length=0, off=0, op_flags=0):
    tail = u32(sq, sq_tail)
    i = tail & u32(sq, sq_mask)
    sqes[i * 64:(i + 1) * 64] = struct.pack('BBHiQQIIQ', opcode, 0, 0, fd, off, addr, length, op_flags, 7) + bytes(24)
    struct.pack_into('I', sq, sq_array + i * 4, i)
    struct.pack_into('I', sq, sq_tail, tail + 1)
    assert libc.syscall(426, ring, 1, 1, 1, None, 0) == 1, ctypes.get_errno()
    head = u32(cq, cq_head)
    res = struct.unpack_from('i', cq, cq_cqes + (head & u32(cq, cq_mask)) * 16 + 8)[0]
    struct.pack_into('I', cq, cq_head, head + 1)
    return res
"#;

#[test]
fn io_uring_ring_openat_and_connect_are_seen() {
    use casa::event::{Activity, Detail, IoUringOp};
    let dir = tempdir("uring");
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "s").unwrap();
    let moved = dir.join("moved.txt");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uport = udp.local_addr().unwrap().port();
    let code = format!(
        r#"{PY_URING}
import socket
path = ctypes.create_string_buffer(b'{secret}')
fd = submit(18, -100, ctypes.addressof(path))
assert fd >= 0, fd
s = socket.socket()
sa = ctypes.create_string_buffer(struct.pack('!HH4s8x', 0, {port}, bytes([127, 0, 0, 1])))
struct.pack_into('H', sa, 0, socket.AF_INET)
assert submit(16, s.fileno(), ctypes.addressof(sa), 0, 16) == 0
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
msg = ctypes.create_string_buffer(b'exfil')
ua = ctypes.create_string_buffer(struct.pack('!HH4s8x', 0, {uport}, bytes([127, 0, 0, 1])))
struct.pack_into('H', ua, 0, socket.AF_INET)
# IORING_OP_SEND with a destination: addr2 = sockaddr, addr_len (u16) at byte 44.
tail = u32(sq, sq_tail)
i = tail & u32(sq, sq_mask)
sqes[i * 64:(i + 1) * 64] = struct.pack('BBHiQQIIQHHiQQ', 26, 0, 0, u.fileno(), ctypes.addressof(ua), ctypes.addressof(msg), 5, 0, 8, 0, 0, 0, 0, 0)
struct.pack_into('H', sqes, i * 64 + 44, 16)
struct.pack_into('I', sq, sq_array + i * 4, i)
struct.pack_into('I', sq, sq_tail, tail + 1)
assert libc.syscall(426, ring, 1, 1, 1, None, 0) == 1, ctypes.get_errno()
struct.pack_into('I', cq, cq_head, u32(cq, cq_head) + 1)
old = ctypes.create_string_buffer(b'{secret}')
new = ctypes.create_string_buffer(b'{moved}')
assert submit(35, -100, ctypes.addressof(old), 0xffffff9c, ctypes.addressof(new)) == 0
assert submit(36, -100, ctypes.addressof(new)) == 0
"#,
        secret = secret.display(),
        moved = moved.display()
    );
    let accept = std::thread::spawn(move || listener.accept().map(|_| ()));
    let r = run_py("uring", &[], &code);
    let _ = accept.join();
    let tree = r.tree();
    let urings: Vec<&casa::event::IoUring> = r
        .events
        .iter()
        .filter(|e| tree.contains(&e.pid))
        .filter_map(|e| match &e.detail {
            Detail::Activity(Activity::IoUring(u)) => Some(u),
            _ => None,
        })
        .collect();
    check!(
        r,
        urings
            .iter()
            .any(|u| u.op == IoUringOp::Create && u.sq_entries == Some(4)),
        "no ring creation: {urings:?}"
    );
    let want = secret.display().to_string();
    check!(
        r,
        urings
            .iter()
            .any(|u| u.opcode_name == Some("openat") && u.path == Some(Bytes::from(want.as_str()))),
        "no io_uring openat of {want}: {urings:?}"
    );
    check!(
        r,
        urings
            .iter()
            .any(|u| u.opcode_name == Some("connect") && u.addr == Some(inet("127.0.0.1", port))),
        "no io_uring connect to port {port}: {urings:?}"
    );
    check!(
        r,
        urings
            .iter()
            .any(|u| u.opcode_name == Some("send") && u.addr == Some(inet("127.0.0.1", uport))),
        "no io_uring send to port {uport}: {urings:?}"
    );
    let moved_s = moved.display().to_string();
    check!(
        r,
        urings.iter().any(|u| u.opcode_name == Some("renameat")
            && u.path == Some(Bytes::from(want.as_str()))
            && u.new_path == Some(Bytes::from(moved_s.as_str())))
            && urings.iter().any(|u| u.opcode_name == Some("unlinkat")
                && u.path == Some(Bytes::from(moved_s.as_str()))),
        "no io_uring renameat {want} -> {moved_s} and unlinkat: {urings:?}"
    );
    // The connect is also seen where it lands, whatever made it.
    check!(
        r,
        r.events.iter().any(|e| tree.contains(&e.pid)
            && matches!(&e.detail, Detail::Activity(Activity::Tcp(t))
                if t.new == "syn_sent" && t.remote == inet("127.0.0.1", port))),
        "no syn_sent to port {port}"
    );
}

#[test]
fn o_tmpfile_linked_into_place_shows_the_file_and_its_identity() {
    let dir = tempdir("tmpfile");
    let dest = dir.join("dropped.sh");
    // O_TMPFILE | O_WRONLY, then linkat(fd, "", AT_FDCWD, dest, AT_EMPTY_PATH).
    let code = format!(
        r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open('{dir}', os.O_TMPFILE | os.O_WRONLY, 0o700)
os.write(fd, b'#!/bin/sh\n')
assert libc.linkat(fd, b'', -100, b'{dest}', 0x1000) == 0, ctypes.get_errno()
"#,
        dir = dir.display(),
        dest = dest.display()
    );
    let r = run_py("tmpfile", &[], &code);
    let link = file_ops(&r)
        .into_iter()
        .find(|o| o.op == casa::event::FileOpKind::Linkat)
        .unwrap_or_else(|| panic!("no linkat\n{}", r.dump()));
    let id = stat_id(&dest);
    let want = format!("{}/#{} (deleted)", dir.display(), id.ino);
    check!(
        r,
        link.result == 0
            && link.path == Some(Bytes::from(want.as_str()))
            && link.file == Some(id)
            && link.new_path == Some(Bytes::from(dest.display().to_string().as_str())),
        "linkat {link:?}, want {want} and {id:?}"
    );
}

#[test]
fn send_volume_is_reported_at_the_first_send_and_each_doubling() {
    use casa::event::{Activity, Detail};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        sink.len()
    });
    let code = format!(
        r#"
import socket
s = socket.create_connection(('127.0.0.1', {port}))
for _ in range(10):
    s.sendall(b'x' * 10240)
s.close()
"#
    );
    let r = run_py("send-volume", &[], &code);
    let received = reader.join().unwrap();
    let tree = r.tree();
    let vols: Vec<&casa::event::SendVolume> = r
        .events
        .iter()
        .filter(|e| tree.contains(&e.pid))
        .filter_map(|e| match &e.detail {
            Detail::Activity(Activity::SendVolume(v)) => Some(v),
            _ => None,
        })
        .collect();
    check!(r, received == 102400, "peer received {received} bytes");
    check!(
        r,
        vols.len() >= 3
            && vols.len() < 10
            && vols
                .iter()
                .all(|v| v.remote == inet("127.0.0.1", port) && v.protocol == 6),
        "volume events {vols:?}"
    );
    check!(
        r,
        vols.windows(2)
            .all(|w| w[1].total_bytes >= 2 * w[0].total_bytes)
            && vols[0].total_bytes == vols[0].last_bytes
            && (51200..=102400).contains(&vols.last().unwrap().total_bytes),
        "totals {:?}",
        vols.iter().map(|v| v.total_bytes).collect::<Vec<_>>()
    );
}

#[test]
fn untracked_processes_get_no_new_kinds_and_no_exec_context() {
    use casa::event::Detail;
    require_root();
    let dir = tempdir("scoping2");
    let out = dir.join("scope.rec");
    let mut casa = Command::new(support::casa_bin())
        .args(["record", "--out"])
        .arg(&out)
        .args(["--duration", "4s", "--", "sleep", "2"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = casa.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("started and tracking") {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "casa exited before starting: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Everything the new programs report, done by a process casa does not track.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let code = format!(
        r#"
import ctypes, os, socket
os.chdir('{dir}')
open('a', 'w').close()
os.rename('a', 'b')
os.chmod('b', 0o700)
os.unlink('b')
os.memfd_create('untracked-mem')
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
libc.syscall(425, 4, params)
if os.fork() == 0:
    os.setsid()
    os._exit(0)
os.wait()
"#,
        dir = dir.display()
    );
    let mut child = Command::new(support::python())
        .args(["-c", &code])
        .env("LD_LIBRARY_PATH", "/casa-untracked")
        .spawn()
        .unwrap();
    let untracked_pid = child.id();
    assert!(child.wait().unwrap().success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let mut output = casa.wait_with_output().unwrap();
    output.stderr = format!("{seen}{rest}").into_bytes();
    let r = support::read_recording(&out, output);
    let leaked: Vec<_> = r
        .events
        .iter()
        .filter(|e| matches!(e.detail, Detail::Activity(_)) && e.ppid != r.root())
        .filter(|e| e.pid == untracked_pid || e.ppid == untracked_pid)
        .collect();
    check!(
        r,
        leaked.is_empty(),
        "new kinds of an untracked process: {leaked:?}"
    );
    let exec = r
        .execs()
        .into_iter()
        .find(|(e, _)| e.pid == untracked_pid)
        .map(|(_, x)| x.clone());
    let Some(x) = exec else {
        panic!("no exec of the untracked process\n{}", r.dump())
    };
    check!(
        r,
        x.facts.stdio.is_empty() && x.facts.loader_env.is_empty() && x.facts.file.is_some(),
        "untracked exec facts {:?}",
        x.facts
    );
}

#[test]
fn script_exec_in_place_by_a_shell_with_many_mapped_files_reports_the_script() {
    // bash runs the last command of `-c` by exec'ing in place: its whole address space
    // (libraries, every C.UTF-8 locale file) is released during the exec, queueing many more
    // deferred file releases than a forked child's exec does.
    let dir = tempdir("script-inplace");
    let script = dir.join("inplace.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cmd = format!(
        "export LANG=C.UTF-8 LC_ALL=C.UTF-8; exec /bin/bash -c 'printf %s x >/dev/null; {}'",
        script.display()
    );
    let r = record("script-inplace", &[], &["/bin/sh", "-c", &cmd]);
    let scripts: Vec<_> = r.execs().into_iter().filter(|(_, x)| x.script).collect();
    check!(r, scripts.len() == 1, "expected one script exec");
    let x = scripts[0].1;
    check!(
        r,
        x.facts.script_path == Some(Bytes::from(script.display().to_string().as_str()))
            && x.facts.script_file == Some(stat_id(&script)),
        "script's own path {:?} identity {:?}, want {} {:?}",
        x.facts.script_path,
        x.facts.script_file,
        script.display(),
        stat_id(&script)
    );
}

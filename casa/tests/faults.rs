//! Faults and safety as root: a second daemon, a planted pid-file symlink, the rules file
//! deleted before SIGHUP, and casa killed with SIGKILL and restarted while an agent session runs.
//! The scenarios alert on a write→exec in `/tmp`, which CASA's ruleset (`rules.casa.json`)
//! scores; casa's own rules leave a compile-and-run alone.

mod support;

use std::{process::Command, time::Duration};

use serde_json::Value;
use support::daemon::{Daemon, casa_rules};

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_second_daemon_on_the_same_files_is_refused() {
    let _serial = support::daemon::serial();
    let mut first = Daemon::start("fault-second", &casa_rules());
    let o = Command::new(support::casa_bin())
        .current_dir(&first.dir)
        .arg("run")
        .arg("--rules")
        .arg(casa_rules())
        .arg("--events-log")
        .arg(first.logs.join("events.log"))
        .arg("--sessions-log")
        .arg(first.logs.join("sessions.log"))
        .arg("--audit-log")
        .arg(first.logs.join("audit.log"))
        .arg("--alert-log")
        .arg(first.logs.join("alert.log"))
        .arg("--pid-file")
        .arg(first.dir.join("casa.pid"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("another casa is running"), "{err}");
    // The first one is unaffected.
    assert!(first.stop().success());
}

#[test]
fn a_pid_file_symlink_is_refused_not_followed() {
    let _serial = support::daemon::serial();
    support::require_root();
    let dir = support::tempdir("fault-symlink");
    let target = dir.join("victim");
    std::fs::write(&target, "do not touch\n").unwrap();
    let pid = dir.join("casa.pid");
    std::os::unix::fs::symlink(&target, &pid).unwrap();
    let o = Command::new(support::casa_bin())
        .current_dir(&dir)
        .args(["run", "--rules"])
        .arg(casa_rules())
        .arg("--events-log")
        .arg(dir.join("events.log"))
        .arg("--pid-file")
        .arg(&pid)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "do not touch\n");
}

#[test]
fn a_start_that_fails_after_the_pid_file_leaves_no_stale_pid_file() {
    let _serial = support::daemon::serial();
    support::require_root();
    let dir = support::tempdir("fault-stale-pid");
    let pid = dir.join("casa.pid");
    // The latency trace is opened after the pid file is written and the sensor loaded.
    let o = Command::new(support::casa_bin())
        .current_dir(&dir)
        .args(["run", "--rules"])
        .arg(casa_rules())
        .arg("--events-log")
        .arg(dir.join("events.log"))
        .arg("--sessions-log")
        .arg(dir.join("sessions.log"))
        .arg("--audit-log")
        .arg(dir.join("audit.log"))
        .arg("--alert-log")
        .arg(dir.join("alert.log"))
        .arg("--pid-file")
        .arg(&pid)
        .arg("--latency-log")
        .arg(dir.join("no-such-dir/latency.log"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("latency trace"), "{err}");
    assert!(
        !pid.exists(),
        "a failed start left its pid file behind\n{err}"
    );
}

#[test]
fn rules_file_deleted_before_sighup_keeps_the_last_good_rules() {
    let _serial = support::daemon::serial();
    let dir = support::tempdir("fault-rules-gone");
    let rules = dir.join("rules.json");
    std::fs::copy(casa_rules(), &rules).unwrap();
    let mut casa = Daemon::start("fault-rules-gone-d", &rules);
    std::fs::remove_file(&rules).unwrap();
    casa.signal(libc::SIGHUP);
    casa.wait_stderr("rule reload failed", Duration::from_secs(10));
    assert!(
        casa.stderr().contains(&rules.display().to_string()),
        "{}",
        casa.dump()
    );
    // Still analysing with the previous rules: a write->exec in /tmp alerts.
    let work = casa.workdir("w");
    let h = work.join("h.sh");
    casa.agent(&format!(
        "[exec] printf '#!/bin/sh\\n' > {h} && chmod +x {h} && {h}",
        h = h.display()
    ));
    casa.wait(
        Duration::from_secs(15),
        "an alert with the kept rules",
        || !casa.log("alert.log").is_empty(),
    );
    assert!(casa.stop().success());
}

#[test]
fn killed_and_restarted_casa_rejoins_the_running_session_midway() {
    let _serial = support::daemon::serial();
    let mut first = Daemon::start("fault-sigkill", &casa_rules());
    let dir = first.dir.clone();
    let work = first.workdir("w");
    // An agent session that outlives the first daemon.
    let marker = work.join("go");
    let h = work.join("late.sh");
    let message = format!(
        "[exec] while [ ! -e {m} ]; do sleep 0.2; done; printf '#!/bin/sh\\n' > {h} && chmod +x {h} && {h}",
        m = marker.display(),
        h = h.display()
    );
    let agent = std::thread::spawn({
        let d = first.dir.clone();
        let message = message.clone();
        move || support::daemon::run_agent(&d, &message)
    });
    first.wait(Duration::from_secs(15), "the session to start", || {
        first.stderr().contains("[SESSION] start")
    });
    first.signal(libc::SIGKILL);
    let _ = first.stop_killed();
    // A new daemon on the same files: it finds the running invocation and joins it mid-way.
    let mut second = Daemon::restart_in(&dir, &casa_rules());
    std::fs::write(&marker, "").unwrap();
    let st = agent.join().unwrap();
    assert!(st.success(), "{}", second.dump());
    second.wait(
        Duration::from_secs(15),
        "the alert after the restart",
        || !second.log("alert.log").is_empty(),
    );
    second.wait(Duration::from_secs(15), "the session to close", || {
        second.log("sessions.log").contains("\"session_closed\"")
    });
    assert!(second.stop().success());
    let dump = second.dump();
    let closed: Vec<Value> = lines(&second.log("sessions.log"))
        .into_iter()
        .filter(|s| s["reason"] == "session_closed")
        .collect();
    assert!(
        closed.iter().any(|s| s["session"]["joined_midway"] == true),
        "the rejoined session is not marked joined_midway\n{dump}"
    );
    assert!(second.stderr().contains("kernel: no loss"), "{dump}");
}

/// A tmpfs mounted by the test, unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_counted_and_writing_resumes_when_space_returns() {
    let _serial = support::daemon::serial();
    support::require_root();
    let dir = support::tempdir("fault-enospc");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&logs)
        .status()
        .unwrap();
    assert!(st.success(), "cannot mount a tmpfs for the test");
    let _m = Mount(logs.clone());
    let mut casa = Daemon::start_in(&dir, &casa_rules());
    // Fill the filesystem.
    let filler = logs.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![b'x'; 4096];
        while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    }
    casa.agent("[exec] head -n 3 /etc/os-release");
    casa.wait_stderr("write failed", Duration::from_secs(15));
    // Space returns: writing resumes with the next lines.
    std::fs::remove_file(&filler).unwrap();
    casa.agent("[exec] head -n 1 /etc/os-release");
    casa.wait(
        Duration::from_secs(20),
        "a session_closed snapshot after recovery",
        || casa.log("sessions.log").contains("\"session_closed\""),
    );
    assert!(casa.stop().success());
    let stderr = casa.stderr();
    let dump = casa.dump();
    let last = stderr
        .lines()
        .find(|l| l.contains("pipeline exited"))
        .unwrap_or_else(|| panic!("{dump}"));
    let nums = |key: &str| -> Vec<u64> {
        let after = last
            .split(key)
            .nth(1)
            .unwrap_or_else(|| panic!("no `{key}` in {last}"));
        let list = &after[after.find('[').unwrap() + 1..after.find(']').unwrap()];
        list.split(',').map(|n| n.trim().parse().unwrap()).collect()
    };
    let accepted: u64 = last
        .split(" accepted")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (written, failed) = (nums("written"), nums("failed"));
    assert!(
        failed[0] > 0,
        "no events.log line was counted as failed: {last}\n{dump}"
    );
    assert_eq!(
        written[0] + failed[0],
        accepted,
        "every accepted event is written or counted: {last}"
    );
    let on_disk = casa
        .log("events.log")
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .count() as u64;
    assert_eq!(
        on_disk, written[0],
        "complete lines on disk vs written count: {last}\n{dump}"
    );
}

#[test]
fn rotated_or_removed_logs_are_reopened() {
    let _serial = support::daemon::serial();
    let mut casa = Daemon::start("fault-rotate", &casa_rules());
    casa.agent("[exec] head -n 1 /etc/os-release");
    casa.wait(Duration::from_secs(15), "the first session closed", || {
        casa.own_closed() == 1
    });
    // Another agent on the machine may have sessions too: only this test's count.
    let first = casa.own_sessions();
    assert_eq!(first.len(), 1, "{}", casa.dump());
    // logrotate-style rename, and an outright removal.
    std::fs::rename(casa.logs.join("events.log"), casa.logs.join("events.log.1")).unwrap();
    std::fs::remove_file(casa.logs.join("sessions.log")).unwrap();
    casa.wait_stderr("reopened (rotated or removed)", Duration::from_secs(5));
    casa.agent("[exec] head -n 2 /etc/os-release");
    casa.wait(
        Duration::from_secs(15),
        "the second session closed in the new sessions.log",
        || casa.own_closed() == 1,
    );
    assert!(casa.stop().success());
    let dump = casa.dump();
    let second = casa.own_sessions();
    assert_eq!(second.len(), 1, "{dump}");
    assert_ne!(first, second, "{dump}");
    let (s1, s2) = (first[0], second[0]);
    let rotated = std::fs::read_to_string(casa.logs.join("events.log.1")).unwrap();
    let fresh = casa.log("events.log");
    assert!(!rotated.is_empty() && !fresh.is_empty(), "{dump}");
    assert!(
        rotated.contains(&format!("\"session_id\":{s1}"))
            && fresh.contains(&format!("\"session_id\":{s2}")),
        "{dump}"
    );
    assert!(
        !fresh.contains(&format!("\"session_id\":{s1},")),
        "the first session's events leaked into the new file\n{dump}"
    );
}

#[test]
fn ring_overflow_is_counted_and_marks_the_session_incomplete() {
    let _serial = support::daemon::serial();
    support::require_root();
    let dir = support::tempdir("fault-overflow");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut casa = Daemon::start_in_with_args(&dir, &casa_rules(), &["--ring-size", "8K"]);
    casa.agent("[exec] python3 -c 'import os\nfor _ in range(200000): os.close(os.open(\"/etc/hostname\", 0))'");
    casa.wait(Duration::from_secs(30), "the session to close", || {
        casa.log("sessions.log").contains("session_closed")
    });
    assert!(casa.stop().success());
    let dump = casa.dump();
    let stderr = casa.stderr();
    assert!(stderr.contains("lost_open="), "loss not reported\n{dump}");
    let closed: Vec<Value> = lines(&casa.log("sessions.log"))
        .into_iter()
        .filter(|s| s["reason"] == "session_closed")
        .collect();
    assert!(
        closed.iter().any(|s| s["session"]["incomplete"] == true),
        "session not marked incomplete\n{dump}"
    );
}

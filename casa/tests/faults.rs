//! Faults and safety as root: a second daemon, a planted pid-file symlink, the rules file
//! deleted before SIGHUP, and casa killed with SIGKILL and restarted while an agent session runs.

mod support;

use std::{process::Command, time::Duration};

use serde_json::Value;
use support::daemon::{Daemon, shipped_rules};

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_second_daemon_on_the_same_files_is_refused() {
    let mut first = Daemon::start("fault-second", &shipped_rules());
    let o = Command::new(support::casa_bin())
        .current_dir(&first.dir)
        .arg("run")
        .arg("--rules")
        .arg(shipped_rules())
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
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("another casa is running"), "{err}");
    // The first one is unaffected.
    assert!(first.stop().success());
}

#[test]
fn a_pid_file_symlink_is_refused_not_followed() {
    support::require_root();
    let dir = support::tempdir("fault-symlink");
    let target = dir.join("victim");
    std::fs::write(&target, "do not touch\n").unwrap();
    let pid = dir.join("casa.pid");
    std::os::unix::fs::symlink(&target, &pid).unwrap();
    let o = Command::new(support::casa_bin())
        .current_dir(&dir)
        .args(["run", "--rules"])
        .arg(shipped_rules())
        .arg("--events-log")
        .arg(dir.join("events.log"))
        .arg("--pid-file")
        .arg(&pid)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "do not touch\n");
}

#[test]
fn rules_file_deleted_before_sighup_keeps_the_last_good_rules() {
    let dir = support::tempdir("fault-rules-gone");
    let rules = dir.join("rules.json");
    std::fs::copy(shipped_rules(), &rules).unwrap();
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
    let mut first = Daemon::start("fault-sigkill", &shipped_rules());
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
    let mut second = Daemon::restart_in(&dir, &shipped_rules());
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

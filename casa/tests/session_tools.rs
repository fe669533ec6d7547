//! `casa sessions`, `casa explain` and `casa diff` on the logs of a recorded malicious
//! session (the golden `write_exec` recording replayed): the tree, the evidence and the
//! rules are there, in order, and the exit statuses follow the scheme.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn casa(args: &[&str], logs: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_casa"))
        .args(args)
        .arg("--logs")
        .arg(logs)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The four logs of the write_exec recording, replayed into a fresh folder.
fn logs(name: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("casa-tools-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new(env!("CARGO_BIN_EXE_casa"))
        .arg("replay")
        .arg(fixtures().join("recordings/write_exec.rec"))
        .arg("--rules")
        .arg(fixtures().join("recordings/rules.test.json"))
        .arg("--out-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn sessions_lists_the_alerting_session() {
    let dir = logs("sessions");
    let o = casa(&["sessions"], &dir);
    assert!(o.status.success());
    let out = stdout(&o);
    let row = out.lines().nth(1).unwrap_or_default();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[0], "1", "{out}");
    assert_eq!(cols[1], "cli", "{out}");
    assert_eq!(&cols[4..], ["9", "ALERT", "no"], "{out}");
}

#[test]
fn explain_shows_the_tree_the_evidence_and_the_rules_in_order() {
    let dir = logs("explain");
    let o = casa(&["explain", "1"], &dir);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.starts_with("session 1 (cli"), "{out}");
    assert!(out.contains("ALERT score 9"), "{out}");
    // The tree: the tool's shell under the runtime, chmod under the shell.
    let tree: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "process tree:")
        .take_while(|l| !l.is_empty())
        .collect();
    // A node: `└─ <pid> <command>`, indented by its depth.
    let node = |starts: &str| {
        tree.iter().position(|l| {
            l.trim_start()
                .strip_prefix("└─ ")
                .and_then(|rest| rest.split_once(' '))
                .is_some_and(|(_, command)| command.starts_with(starts))
        })
    };
    let indent = |i: usize| tree[i].len() - tree[i].trim_start().len();
    let shell = node("/bin/bash --noprofile").unwrap_or_else(|| panic!("{out}"));
    let chmod = node("chmod +x /tmp/casa-golden/helper.sh").unwrap_or_else(|| panic!("{out}"));
    assert!(shell < chmod && indent(shell) < indent(chmod), "{out}");
    // The evidence, in order: the write, the chmod, the run, and the rules on the run.
    let steps: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("steps"))
        .collect();
    let at = |needle: &str| {
        steps
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} missing\n{out}"))
    };
    let write = at("OPENAT /tmp/casa-golden/helper.sh (flags 0o1101");
    let chmod = at("EXECVE /usr/bin/chmod");
    let run = at("EXECVE /tmp/casa-golden/helper.sh");
    let rules = at(
        "▲ ALERT score 9: write_then_exec_same_path (+5), write_then_exec_from_suspicious_path (+4)",
    );
    assert!(write < chmod && chmod < run && run + 1 == rules, "{out}");
}

#[test]
fn diff_lists_the_written_script() {
    let dir = logs("diff");
    let o = casa(&["diff", "1"], &dir);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.starts_with("session 1: 1 files changed"), "{out}");
    assert!(
        out.lines().any(|l| l.contains("created")
            && l.contains("/tmp/casa-golden/helper.sh")
            && l.contains("by bash")),
        "{out}"
    );
}

#[test]
fn an_unknown_session_is_a_finding_and_missing_logs_a_failure() {
    let dir = logs("status");
    assert_eq!(casa(&["explain", "42"], &dir).status.code(), Some(1));
    assert_eq!(casa(&["diff", "42"], &dir).status.code(), Some(1));
    let none = dir.join("no-such-folder");
    let o = casa(&["sessions"], &none);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("sessions.log: no such file"));
    // A damaged log is named with its line.
    std::fs::write(
        dir.join("sessions.log"),
        "{\"session_id\":1}\ngarbage\n{}\n",
    )
    .unwrap();
    let o = casa(&["sessions"], &dir);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sessions.log:2: not a JSON record"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

//! Reading casa's own logs back for a person: the session table (`casa sessions`), one
//! session's story (`casa explain`) and the files it wrote (`casa diff`).
//!
//! Sits after the sinks, outside the pipeline: it parses `sessions.log`, `events.log` and
//! `audit.log` as JSON lines (fields casa may add later are ignored) and renders plain text
//! for a terminal. Pure: the commands in `cmd/sessions.rs` read the files and print.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use serde_json::Value;

/// A line of a log that is not a JSON object: reported with its place, never skipped
/// silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{log}:{line}: not a JSON record: {problem}")]
pub struct BadLine {
    pub log: String,
    pub line: usize,
    pub problem: String,
}

/// Parse JSON lines; an incomplete last line (a write in progress) is skipped, any other bad
/// line is an error naming the log and line.
pub fn records(log: &str, text: &str) -> Result<Vec<Value>, BadLine> {
    let mut out = Vec::new();
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(l) {
            Ok(v) if v.is_object() => out.push(v),
            Ok(_) => {
                return Err(BadLine {
                    log: log.into(),
                    line: i + 1,
                    problem: "not an object".into(),
                });
            }
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => {
                return Err(BadLine {
                    log: log.into(),
                    line: i + 1,
                    problem: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// One session as its latest `sessions.log` record describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: u64,
    pub kind: String,
    pub leader_pid: u64,
    pub started_at: String,
    /// `None` while the session is open (only periodic snapshots so far).
    pub closed_at: Option<String>,
    pub close_reason: Option<String>,
    pub score: i64,
    pub action: String,
    pub incomplete: bool,
    pub invocation: Vec<String>,
    /// The whole record, for details the table does not show.
    pub record: Value,
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_default()
}

/// A command line for one terminal line: control characters escaped (`\n`, `\t`, `\u{1b}`).
fn one_line(args: &[String]) -> String {
    let mut out = String::new();
    for c in args.join(" ").chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Device and process entries are not files a session leaves behind (`> /dev/null`); files
/// in memory-backed folders (`/dev/shm/`) are.
fn is_file_on_disk(path: &str) -> bool {
    !(path.starts_with("/proc/")
        || path.starts_with("/sys/")
        || (path.starts_with("/dev/") && !path.starts_with("/dev/shm/")))
}

/// The sessions of a `sessions.log`, by id; each from its latest record (a close or shutdown
/// snapshot supersedes periodic ones).
pub fn sessions(records: &[Value]) -> Vec<SessionRow> {
    let mut by_id: BTreeMap<u64, SessionRow> = BTreeMap::new();
    for r in records {
        let Some(id) = r["session_id"].as_u64() else {
            continue;
        };
        let s = &r["session"];
        let row = SessionRow {
            id,
            kind: text(&s["kind"]),
            leader_pid: s["leader_pid"].as_u64().unwrap_or(0),
            started_at: text(&s["started_at"]),
            closed_at: s["closed_at"].as_str().map(str::to_owned),
            close_reason: s["close_reason"].as_str().map(str::to_owned),
            score: s["final_score"].as_i64().unwrap_or(0),
            action: text(&s["final_action"]),
            incomplete: s["incomplete"].as_bool().unwrap_or(false),
            invocation: s["invocation"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default(),
            record: r.clone(),
        };
        by_id.insert(id, row);
    }
    by_id.into_values().collect()
}

/// `casa sessions`: one line per session.
pub fn sessions_table(rows: &[SessionRow]) -> String {
    let mut out = format!(
        "{:>6}  {:<8}  {:<30}  {:<30}  {:>5}  {:<6}  {}\n",
        "ID", "AGENT", "START", "END", "SCORE", "ACTION", "INCOMPLETE"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:>6}  {:<8}  {:<30}  {:<30}  {:>5}  {:<6}  {}",
            r.id,
            r.kind,
            r.started_at,
            r.closed_at.as_deref().unwrap_or("(open)"),
            r.score,
            r.action,
            if r.incomplete { "yes" } else { "no" }
        );
    }
    out
}

/// A process of the session, from its events.
#[derive(Debug, Clone, Default, PartialEq)]
struct Proc {
    ppid: u64,
    comm: String,
    /// The command lines it exec'd, in order (a shell exec'ing a script in place shows both).
    commands: Vec<String>,
}

/// An `events.log` record in one line: `OPENAT /etc/shadow (flags 0x0, fd 3)`.
fn step(e: &Value) -> String {
    let kind = text(&e["type"]);
    match kind.as_str() {
        "EXECVE" => {
            let args: Vec<String> = e["args"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            format!("EXECVE {} ({})", text(&e["path"]), one_line(&args))
        }
        "OPENAT" => format!(
            "OPENAT {} (flags {:#o}, result {})",
            text(&e["path"]),
            e["flags"].as_u64().unwrap_or(0),
            e["result"]
        ),
        "CONNECT" => format!(
            "CONNECT {}:{} (result {})",
            text(&e["addr"]),
            e["port"],
            e["result"]
        ),
        "EXIT" => format!("EXIT status {}", e["status"]),
        other => {
            // Kinds a newer casa logs: show what the record says.
            let mut fields = e.as_object().cloned().unwrap_or_default();
            for k in [
                "timestamp",
                "pid",
                "tid",
                "ppid",
                "uid",
                "type",
                "comm",
                "session_id",
            ] {
                fields.remove(k);
            }
            format!("{other} {}", Value::Object(fields))
        }
    }
}

/// The decision an audit record carries, in one line.
fn decision(a: &Value) -> String {
    let d = &a["decision"];
    let rules: Vec<String> = d["triggered_rules"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| format!("{} (+{})", text(&r["name"]), r["weight"]))
                .collect()
        })
        .unwrap_or_default();
    let mut line = format!(
        "{} score {}: {}",
        text(&d["action"]),
        d["score"],
        rules.join(", ")
    );
    if let Some(r) = a.get("response").filter(|r| r.is_object()) {
        line.push_str(&response(r));
    }
    line
}

/// A response an audit record carries (`crate::respond::ResponseRecord`), as a suffix.
fn response(r: &Value) -> String {
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    let o = &r["outcome"];
    if o.is_object() {
        return format!(
            " | {} done: {} killed, {} ms after the trigger at most (median {})",
            list(&r["actions"]),
            o["killed"],
            o["after_trigger_ms_max"],
            o["after_trigger_ms_p50"]
        );
    }
    let pids: Vec<String> = r["pids"]
        .as_array()
        .map(|a| a.iter().map(|p| p.to_string()).collect())
        .unwrap_or_default();
    format!(
        " | response ({}): {} because {} on pids {}",
        text(&r["mode"]),
        list(&r["actions"]),
        list(&r["because"]),
        pids.join(",")
    )
}

/// Whether an audit record's event is this events.log record.
fn same_event(audit_event: &Value, e: &Value) -> bool {
    ["pid", "type", "path", "addr", "port"]
        .iter()
        .all(|k| audit_event[k] == e[k] || audit_event[k].is_null())
        && audit_event["pid"] == e["pid"]
}

/// `casa explain`: the session's summary, its process tree, then every step in order with
/// the rules that fired on it.
pub fn explain(session: &SessionRow, events: &[Value], audits: &[Value]) -> String {
    let mut out = String::new();
    let s = &session.record["session"];
    let _ = writeln!(
        out,
        "session {} ({}, leader pid {}): {} score {}",
        session.id, session.kind, session.leader_pid, session.action, session.score
    );
    if !session.invocation.is_empty() {
        let _ = writeln!(out, "  invocation: {}", one_line(&session.invocation));
    }
    let _ = writeln!(
        out,
        "  from {} to {}{}",
        session.started_at,
        session.closed_at.as_deref().unwrap_or("(still open)"),
        session
            .close_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    if session.incomplete {
        let lost = s["events_lost"].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "  INCOMPLETE: the kernel lost events while it ran ({lost} lost)"
        );
    }
    if let Some(origins) = s["taint_origins"].as_array().filter(|a| !a.is_empty()) {
        for o in origins {
            let _ = writeln!(out, "  inherited: {}", text(o));
        }
    }

    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["session_id"].as_u64() == Some(session.id))
        .collect();
    let mut procs: BTreeMap<u64, Proc> = BTreeMap::new();
    for e in &mine {
        let pid = e["pid"].as_u64().unwrap_or(0);
        let p = procs.entry(pid).or_insert_with(|| Proc {
            ppid: e["ppid"].as_u64().unwrap_or(0),
            comm: text(&e["comm"]),
            commands: Vec::new(),
        });
        if e["type"] == "EXECVE" {
            let args: Vec<String> = e["args"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            p.commands.push(if args.is_empty() {
                text(&e["path"])
            } else {
                one_line(&args)
            });
        }
    }
    // The leader's own exec (the invocation) is the runtime's, not an event: take it from
    // the session record.
    if let Some(p) = procs.get_mut(&session.leader_pid)
        && p.commands.is_empty()
        && !session.invocation.is_empty()
    {
        p.commands.push(one_line(&session.invocation));
    }
    let _ = writeln!(out, "\nprocess tree:");
    let pids: BTreeSet<u64> = procs.keys().copied().collect();
    let roots: Vec<u64> = procs
        .iter()
        .filter(|(_, p)| !pids.contains(&p.ppid))
        .map(|(&pid, _)| pid)
        .collect();
    fn tree(
        out: &mut String,
        procs: &BTreeMap<u64, Proc>,
        pid: u64,
        depth: usize,
        seen: &mut BTreeSet<u64>,
    ) {
        if !seen.insert(pid) {
            return;
        }
        let p = &procs[&pid];
        let indent = "   ".repeat(depth);
        let mark = if depth == 0 { "" } else { "└─ " };
        let command = if p.commands.is_empty() {
            format!("({})", p.comm)
        } else {
            p.commands.join(" ⇒ ")
        };
        let _ = writeln!(out, "  {indent}{mark}{pid} {command}");
        let children: Vec<u64> = procs
            .iter()
            .filter(|(c, q)| q.ppid == pid && **c != pid)
            .map(|(&c, _)| c)
            .collect();
        for c in children {
            tree(out, procs, c, depth + 1, seen);
        }
    }
    let mut seen = BTreeSet::new();
    for r in roots {
        tree(&mut out, &procs, r, 0, &mut seen);
    }

    let _ = writeln!(out, "\nsteps ({} events):", mine.len());
    let mut decisions: Vec<&Value> = audits
        .iter()
        .filter(|a| a["session_id"].as_u64() == Some(session.id))
        .collect();
    for e in &mine {
        let _ = writeln!(
            out,
            "  {} {:>7} {}",
            text(&e["timestamp"]),
            e["pid"],
            step(e)
        );
        if let Some(i) = decisions
            .iter()
            .position(|a| a["timestamp"] == e["timestamp"] && same_event(&a["event"], e))
        {
            let a = decisions.remove(i);
            let _ = writeln!(out, "      ▲ {}", decision(a));
        }
    }
    for a in decisions {
        // A decision whose event line is not in events.log (rotated away): still shown.
        let _ = writeln!(
            out,
            "  {} {:>7} (event not in events.log)\n      ▲ {}",
            text(&a["timestamp"]),
            a["event"]["pid"],
            decision(a)
        );
    }
    out
}

/// What a session did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    /// `created` (opened with `O_CREAT`), `truncated` or `written`; once created, it stays so.
    pub change: &'static str,
    pub first: String,
    pub last: String,
    /// The programs (comm) that changed it.
    pub by: BTreeSet<String>,
}

/// `casa diff`: files the session changed, from its successful write-intent opens (renames
/// and deletions appear once the sensor's file lifecycle events are in `events.log`).
pub fn diff(session: u64, events: &[Value]) -> Vec<FileChange> {
    const O_ACCMODE: u64 = 0o3;
    const O_CREAT: u64 = 0o100;
    const O_TRUNC: u64 = 0o1000;
    const O_APPEND: u64 = 0o2000;
    let mut files: BTreeMap<String, FileChange> = BTreeMap::new();
    for e in events {
        if e["session_id"].as_u64() != Some(session)
            || e["type"] != "OPENAT"
            || e["result"].as_i64().is_none_or(|r| r < 0)
        {
            continue;
        }
        let flags = e["flags"].as_u64().unwrap_or(0);
        if flags & O_ACCMODE == 0 && flags & (O_CREAT | O_TRUNC | O_APPEND) == 0 {
            continue;
        }
        let change = if flags & O_CREAT != 0 {
            "created"
        } else if flags & O_TRUNC != 0 {
            "truncated"
        } else {
            "written"
        };
        let path = text(&e["path"]);
        if !is_file_on_disk(&path) {
            continue;
        }
        let ts = text(&e["timestamp"]);
        let f = files.entry(path.clone()).or_insert_with(|| FileChange {
            path,
            change,
            first: ts.clone(),
            last: ts.clone(),
            by: BTreeSet::new(),
        });
        if f.change != "created" && change == "created" {
            f.change = change;
        }
        f.last = ts;
        f.by.insert(text(&e["comm"]));
    }
    files.into_values().collect()
}

/// The `casa diff` listing.
pub fn diff_text(session: u64, changes: &[FileChange]) -> String {
    let mut out = format!("session {session}: {} files changed\n", changes.len());
    for c in changes {
        let by: Vec<&str> = c.by.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "  {:<9} {}  (by {}; {} .. {})",
            c.change,
            c.path,
            by.join(", "),
            c.first,
            c.last
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bad_line_is_located_and_a_torn_last_line_is_not_an_error() {
        let e = records("events.log", "{\"a\":1}\nnot json\n{\"b\":2}\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("events.log:2:"), "{e}");
        assert_eq!(records("x", "{\"a\":1}\n{\"b\":").unwrap().len(), 1);
        assert!(records("x", "[1]\n").is_err());
    }

    #[test]
    fn a_decision_line_says_what_response_it_ordered_and_how_it_ended() {
        let order = json!({"decision": {"action": "ALERT", "score": 9, "triggered_rules": [{"name": "r", "weight": 9}]},
            "response": {"mode": "enforce", "actions": ["kill"], "because": ["threshold"], "pids": [7, 8]}});
        let line = decision(&order);
        assert!(
            line.ends_with("| response (enforce): kill because threshold on pids 7,8"),
            "{line}"
        );
        let done = json!({"decision": {"action": "ALERT", "score": 9, "triggered_rules": []},
            "response": {"mode": "enforce", "actions": ["kill"], "because": ["threshold"], "pids": [],
                "outcome": {"killed": 2, "after_trigger_ms_p50": 1.5, "after_trigger_ms_max": 2.25}}});
        let line = decision(&done);
        assert!(
            line.contains("kill done: 2 killed, 2.25 ms after the trigger at most (median 1.5)"),
            "{line}"
        );
        assert!(!decision(&json!({"decision": {"action": "LOG", "score": 4}})).contains('|'));
    }

    #[test]
    fn the_latest_record_of_a_session_wins() {
        let r = vec![
            json!({"session_id": 2, "reason": "periodic_flush", "session": {"kind": "cli", "final_score": 4, "final_action": "LOG", "started_at": "t0"}}),
            json!({"session_id": 2, "reason": "session_closed", "session": {"kind": "cli", "final_score": 9, "final_action": "ALERT", "started_at": "t0", "closed_at": "t9", "incomplete": true}}),
            json!({"session_id": 1, "reason": "session_closed", "session": {"kind": "gateway", "final_score": 0, "final_action": "IGNORE", "started_at": "s"}}),
        ];
        let rows = sessions(&r);
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((rows[1].score, rows[1].action.as_str()), (9, "ALERT"));
        assert!(rows[1].incomplete);
        let t = sessions_table(&rows);
        assert!(t.lines().nth(2).unwrap().contains("ALERT"), "{t}");
        assert!(t.contains("(open)"), "{t}");
    }

    #[test]
    fn diff_lists_written_files_once_with_their_writers() {
        let ev = |path: &str, flags: u64, result: i64, comm: &str| json!({"session_id": 1, "type": "OPENAT", "path": path, "flags": flags, "result": result, "comm": comm, "timestamp": "t"});
        let events = vec![
            ev("/tmp/x.sh", 0o1101, 3, "bash"),
            ev("/tmp/x.sh", 0o2001, 3, "sh"),
            ev("/etc/hostname", 0, 3, "cat"),
            ev("/etc/shadow", 0o1, -13, "sh"),
            ev("/home/u/.bashrc", 0o2001, 3, "bash"),
            ev("/dev/null", 0o1101, 3, "sh"),
            ev("/dev/shm/x", 0o101, 3, "sh"),
        ];
        let d = diff(1, &events);
        let got: Vec<(&str, &str)> = d.iter().map(|c| (c.path.as_str(), c.change)).collect();
        assert_eq!(
            got,
            [
                ("/dev/shm/x", "created"),
                ("/home/u/.bashrc", "written"),
                ("/tmp/x.sh", "created")
            ]
        );
        assert_eq!(d[2].by.iter().collect::<Vec<_>>(), ["bash", "sh"]);
        assert!(diff(2, &events).is_empty());
    }
}

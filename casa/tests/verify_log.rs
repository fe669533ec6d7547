//! Tamper-evident logs: logs written through the chain (`casa::sink::chain`) exactly as the
//! daemon writes `audit.log` (seal, append the line and a newline, flush, commit the head),
//! then tampered with in every way the chain must show, each located at its exact line.
//!
//! The library tests check the verdict and exit status `casa verify-log` prints and returns
//! (`VerifyReport::verdict`, and `casa::exit::Status` of its outcome: 0 ok, 1 broken,
//! truncated or rolled back, 3 unreadable); one test runs the `casa verify-log` binary itself.

use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use casa::{
    exit::Status,
    sink::{
        chain::{self, Chain, ProblemKind, VerifyReport, ZERO_HASH},
        records::{AuditEvent, DecisionRecord, EventFields, FullLogRecord, TriggeredRuleRecord},
    },
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A scratch directory, removed when the test passes (kept for a look when it fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn dir(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("casa-verify-log-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// An audit record as the pipeline builds it, serialised as the pipeline serialises it.
fn record(i: u64) -> Vec<u8> {
    let rec = FullLogRecord {
        timestamp: format!("2026-05-21T10:17:{i:02}.{:09}Z", i * 7919),
        session_id: 3,
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
        event: AuditEvent {
            kind: "EXECVE",
            pid: 4100 + i as u32,
            ppid: 4099,
            uid: 1000,
            comm: "bash".into(),
            fields: EventFields {
                path: Some("/usr/bin/curl".into()),
                args: Some(vec![
                    "curl".into(),
                    "-s".into(),
                    format!("http://203.0.113.{i}/x.sh"),
                ]),
                ..EventFields::default()
            },
        },
        decision: DecisionRecord {
            action: if i >= 5 { "ALERT" } else { "LOG" },
            score: 2 * i as i64,
            log_threshold: 4,
            alert_threshold: 9,
            triggered_rules: vec![TriggeredRuleRecord {
                name: format!("rule_{i}"),
                expr: "execution.shell_in_chain && capability.network_egress".into(),
                weight: 2,
            }],
        },
        // Every third record carries a response, as an enforcing daemon writes them.
        response: i.is_multiple_of(3).then(|| casa::respond::ResponseRecord {
            mode: "enforce",
            actions: vec!["kill"],
            because: vec!["threshold".into()],
            pids: vec![4100 + i as u32],
            outcome: None,
        }),
    };
    serde_json::to_vec(&rec).unwrap()
}

/// Writes like `FileSinks`: seal, append line + newline, flush, commit the head.
struct Writer {
    chain: Chain,
    file: File,
}

impl Writer {
    fn open(log: &Path) -> Self {
        let chain = Chain::new(log).unwrap();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(log)
            .unwrap();
        Self { chain, file }
    }

    fn write(&mut self, i: u64) {
        let line = self.chain.seal_line(&record(i)).unwrap();
        self.file.write_all(&line).unwrap();
        self.file.write_all(b"\n").unwrap();
        self.file.flush().unwrap();
        self.chain.commit_head().unwrap();
    }
}

/// `audit.log` in a scratch directory.
struct Log {
    _dir: Scratch,
    path: PathBuf,
}

impl std::ops::Deref for Log {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Log {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// A log of `n` chained records in a fresh directory.
fn log_of(name: &str, n: u64) -> Log {
    let dir = dir(name);
    let path = dir.join("audit.log");
    let mut w = Writer::open(&path);
    for i in 1..=n {
        w.write(i);
    }
    Log { _dir: dir, path }
}

fn lines(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn put_lines(log: &Path, lines: &[String]) {
    fs::write(log, lines.join("\n") + "\n").unwrap();
}

fn field(line: &str, key: &str) -> Value {
    serde_json::from_str::<Value>(line).unwrap()[key].clone()
}

fn hash_of(line: &str) -> String {
    field(line, "hash").as_str().unwrap().to_owned()
}

/// `casa verify-log`'s exit status for a report.
fn status(r: &VerifyReport) -> u8 {
    Status::from(r.outcome()).code()
}

fn check(log: &Path, head: Option<&Path>) -> VerifyReport {
    chain::verify(log, head).unwrap()
}

/// The problem's (kind, line) and the exit status.
fn located(r: &VerifyReport) -> (ProblemKind, u64, u8) {
    let p = r
        .problem
        .as_ref()
        .unwrap_or_else(|| panic!("no problem found: {}", r.verdict()));
    (p.kind, p.line, status(r))
}

#[test]
fn untouched_log_verifies() {
    let log = log_of("untouched", 10);
    let r = check(&log, None);
    assert_eq!(r.verdict(), "ok: 10 records, 1 segment, head matches");
    assert_eq!(status(&r), 0);
    assert!(r.warnings.is_empty());
    assert_eq!(r.last.as_ref().unwrap().line, 10);
    assert_eq!(r.last.as_ref().unwrap().seq, 10);
}

#[test]
fn record_format_is_the_record_plus_seq_prev_hash_and_a_recomputable_hash() {
    let log = log_of("format", 10);
    let mut prev = ZERO_HASH.to_owned();
    for (i, line) in lines(&log).iter().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        // The original record, field for field.
        let mut original: Value = serde_json::from_slice(&record(i as u64 + 1)).unwrap();
        for k in ["seq", "prev_hash", "hash"] {
            original[k] = v[k].clone();
        }
        assert_eq!(v, original);
        assert_eq!(v["seq"], i as u64 + 1);
        assert_eq!(v["prev_hash"], prev.as_str());
        // hash = SHA-256(line without its `,"hash":"…"` member ‖ prev_hash), computed here
        // without casa's code.
        let hash = hash_of(line);
        let suffix = format!(",\"hash\":\"{hash}\"}}");
        assert!(
            line.ends_with(&suffix),
            "hash must be the last member: {line}"
        );
        let body = format!("{}}}", &line[..line.len() - suffix.len()]);
        let mut h = Sha256::new();
        h.update(body.as_bytes());
        h.update(prev.as_bytes());
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, hash, "line {}", i + 1);
        // Keys sorted at every level, no whitespace.
        assert_eq!(
            body.as_bytes(),
            chain::canonical(&serde_json::from_str(&body).unwrap())
        );
        prev = hash;
    }
    let head: Value = serde_json::from_slice(&fs::read(chain::head_path(&log)).unwrap()).unwrap();
    assert_eq!(head["seq"], 10);
    assert_eq!(head["hash"], prev.as_str());
    assert_eq!(head["lines"], 10);
    assert_eq!(head["bytes"], fs::metadata(&log).unwrap().len());
}

#[test]
fn edited_record_is_broken_at_its_line_with_both_hashes() {
    let log = log_of("edited", 10);
    let mut l = lines(&log);
    let stored = hash_of(&l[3]);
    l[3] = l[3].replacen("\"comm\":\"bash\"", "\"comm\":\"bask\"", 1);
    put_lines(&log, &l);
    let r = check(&log, None);
    assert_eq!(located(&r), (ProblemKind::Edited, 4, 1));
    let p = r.problem.as_ref().unwrap();
    assert_eq!(p.found.as_deref(), Some(stored.as_str()));
    let expected = p.expected.clone().unwrap();
    assert_ne!(expected, stored);
    assert_eq!(
        r.verdict(),
        format!(
            "broken at line 4: record edited (its content does not match its hash): expected \
             hash {expected}, found {stored}"
        )
    );
    assert!(
        r.details()
            .iter()
            .any(|d| d.starts_with("chain intact through line 3 (seq 3")),
        "{:?}",
        r.details()
    );
}

#[test]
fn edit_that_changes_the_length_is_broken_at_its_line() {
    let log = log_of("edited-len", 10);
    let mut l = lines(&log);
    l[3] = l[3].replacen("\"score\":8,", "\"score\":0,", 1);
    l[6] = l[6].replacen("\"action\":\"ALERT\"", "\"action\":\"LOG\"", 1);
    put_lines(&log, &l);
    assert_eq!(located(&check(&log, None)), (ProblemKind::Edited, 4, 1));
}

#[test]
fn deleted_record_is_broken_at_its_line() {
    let log = log_of("deleted", 10);
    let mut l = lines(&log);
    let h4 = hash_of(&l[3]);
    let h5 = hash_of(&l[4]);
    l.remove(4);
    put_lines(&log, &l);
    let r = check(&log, None);
    assert_eq!(located(&r), (ProblemKind::Linkage, 5, 1));
    let p = r.problem.as_ref().unwrap();
    assert_eq!(p.expected.as_deref(), Some(h4.as_str()));
    assert_eq!(p.found.as_deref(), Some(h5.as_str()));
    assert!(
        r.verdict()
            .starts_with("broken at line 5: prev_hash is not the hash of the previous"),
        "{}",
        r.verdict()
    );
}

#[test]
fn swapped_records_are_broken_at_the_first_of_them() {
    let log = log_of("swapped", 10);
    let mut l = lines(&log);
    let h2 = hash_of(&l[1]);
    l.swap(2, 3);
    put_lines(&log, &l);
    let r = check(&log, None);
    assert_eq!(located(&r), (ProblemKind::Linkage, 3, 1));
    assert_eq!(
        r.problem.as_ref().unwrap().expected.as_deref(),
        Some(h2.as_str())
    );
}

#[test]
fn forged_record_chaining_correctly_is_beyond_the_head() {
    let log = log_of("forged", 10);
    let kept_dir = dir("forged-kept");
    let kept_head = kept_dir.join("audit.log.head");
    fs::copy(chain::head_path(&log), &kept_head).unwrap();
    // The attacker has the library: the forged record chains onto record 10.
    let mut forger = Chain::new(&log).unwrap();
    let forged = forger.seal_line(&record(11)).unwrap();
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&forged).unwrap();
    f.write_all(b"\n").unwrap();
    drop(f);
    let r = check(&log, None);
    assert_eq!(located(&r), (ProblemKind::BeyondHead, 11, 1));
    assert!(
        r.verdict()
            .starts_with("beyond head at line 11: head records 10 lines, file has 11"),
        "{}",
        r.verdict()
    );
    // Updating the head too hides it from the head next to the log, not from a kept copy.
    forger.commit_head().unwrap();
    assert_eq!(status(&check(&log, None)), 0);
    assert_eq!(
        located(&check(&log, Some(&kept_head))),
        (ProblemKind::BeyondHead, 11, 1)
    );
}

#[test]
fn forged_garbage_is_broken_at_its_line() {
    let log = log_of("garbage", 10);
    let mut l = lines(&log);
    l.push("rm -rf / # nothing to see".to_owned());
    put_lines(&log, &l);
    let r = check(&log, None);
    assert_eq!(located(&r), (ProblemKind::InvalidJson, 11, 1));
    assert!(r.verdict().starts_with("broken at line 11: not valid JSON"));

    // A plausible record without the chain's fields, in the middle.
    let log = log_of("garbage-json", 10);
    let mut l = lines(&log);
    l.insert(6, String::from_utf8(record(42)).unwrap());
    put_lines(&log, &l);
    assert_eq!(located(&check(&log, None)), (ProblemKind::NotChained, 7, 1));
}

#[test]
fn truncated_log_is_reported_against_the_head() {
    let log = log_of("truncated", 10);
    let l = lines(&log);
    put_lines(&log, &l[..8]);
    let r = check(&log, None);
    assert_eq!(located(&r), (ProblemKind::Truncated, 9, 1));
    assert!(
        r.verdict()
            .starts_with("truncated: head records 10 lines, file has 8"),
        "{}",
        r.verdict()
    );
}

#[test]
fn rolled_back_log_is_reported_against_a_newer_head() {
    let log = log_of("rollback", 6);
    let head = chain::head_path(&log);
    let old = dir("rollback-old");
    fs::copy(&log, old.join("audit.log")).unwrap();
    fs::copy(&head, old.join("audit.log.head")).unwrap();
    let mut w = Writer::open(&log);
    for i in 7..=10 {
        w.write(i);
    }
    drop(w);
    let kept_dir = dir("rollback-kept");
    let newer = kept_dir.join("audit.log.head");
    fs::copy(&head, &newer).unwrap();
    // Roll log and head back together: consistent with each other...
    fs::copy(old.join("audit.log"), &log).unwrap();
    fs::copy(old.join("audit.log.head"), &head).unwrap();
    assert_eq!(status(&check(&log, None)), 0);
    // ...but not with the newer head kept elsewhere.
    let r = check(&log, Some(&newer));
    assert_eq!(located(&r), (ProblemKind::Truncated, 7, 1));
    assert!(r.verdict().contains("rolled back"), "{}", r.verdict());
    // casa runs on from the old copy: the head's record is replaced at its line.
    let mut w = Writer::open(&log);
    for i in 100..105 {
        w.write(i);
    }
    drop(w);
    assert_eq!(status(&check(&log, None)), 0);
    let r = check(&log, Some(&newer));
    assert_eq!(located(&r), (ProblemKind::RolledBack, 10, 1));
    assert!(
        r.verdict().starts_with("rolled back at line 10: "),
        "{}",
        r.verdict()
    );
}

#[test]
fn crash_mid_write_leaves_an_incomplete_tail_and_the_restart_continues_the_chain() {
    let log = log_of("crash", 10);
    let h10 = hash_of(&lines(&log)[9]);
    // casa dies while writing record 11: part of its line, no newline, head not updated.
    let mut dying = Chain::new(&log).unwrap();
    let line = dying.seal_line(&record(11)).unwrap();
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&line[..line.len() / 2]).unwrap();
    drop(f);
    let r = check(&log, None);
    assert_eq!(status(&r), 0, "{}", r.verdict());
    assert_eq!(
        r.verdict(),
        "ok: 10 records, 1 segment, head matches, 1 warning"
    );
    assert_eq!(r.incomplete_tail, Some((11, (line.len() / 2) as u64)));
    assert_eq!(r.warnings[0].line, Some(11));
    assert!(r.warnings[0].text.starts_with("incomplete tail"));

    // The restart keeps the partial line, ends it, declares it and chains onto record 10.
    let mut w = Writer::open(&log);
    let notes = w.chain.take_notes();
    assert!(notes.iter().any(|n| n.contains("line 11")), "{notes:?}");
    w.write(11);
    w.write(12);
    drop(w);
    let l = lines(&log);
    assert_eq!(l.len(), 14);
    assert_eq!(l[10].as_bytes(), &line[..line.len() / 2]);
    assert_eq!(field(&l[11], "incomplete_lines")[0]["line"], 11);
    assert_eq!(field(&l[11], "prev_hash"), h10.as_str());
    assert_eq!(field(&l[11], "seq"), 11);
    let r = check(&log, None);
    assert_eq!(status(&r), 0, "{}", r.verdict());
    assert_eq!(
        r.verdict(),
        "ok: 12 records, 1 segment, head matches, 1 warning"
    );
    assert_eq!(r.warnings[0].line, Some(11));
    assert_eq!(r.markers, 1);

    // The kept partial line is evidence too.
    let mut l = l;
    l[10] = l[10].replacen("bash", "bask", 1);
    put_lines(&log, &l);
    assert_eq!(
        located(&check(&log, None)),
        (ProblemKind::IncompleteAltered, 11, 1)
    );
}

#[test]
fn writer_resuming_after_a_deleted_head_starts_a_segment() {
    let log = log_of("nohead", 10);
    let h10 = hash_of(&lines(&log)[9]);
    fs::remove_file(chain::head_path(&log)).unwrap();
    let r = check(&log, None);
    assert_eq!(r.verdict(), "ok: 10 records, 1 segment, no head file");
    assert_eq!(status(&r), 0);

    let mut w = Writer::open(&log);
    assert!(w.chain.starts_segment());
    let notes = w.chain.take_notes();
    assert!(
        notes[0].contains("line 11") && notes[0].contains("no head file"),
        "{notes:?}"
    );
    w.write(11);
    drop(w);
    let l = lines(&log);
    assert_eq!(field(&l[10], "segment_start"), true);
    assert_eq!(field(&l[10], "seq"), 1);
    assert_eq!(field(&l[10], "prev_hash"), ZERO_HASH);
    assert_eq!(field(&l[10], "previous")["last_hash"], h10.as_str());
    assert_eq!(field(&l[11], "seq"), 2);

    let r = check(&log, None);
    assert_eq!(status(&r), 0, "{}", r.verdict());
    assert_eq!(
        r.verdict(),
        "ok: 11 records, 2 segments, head matches, 1 warning"
    );
    assert_eq!(r.warnings[0].line, Some(11));
    assert!(
        r.warnings[0]
            .text
            .starts_with("segment 2 starts: no head file")
    );

    // The segment start is bound to the record before it: editing record 10 still shows.
    let mut l = l;
    l[9] = l[9].replacen("bash", "bask", 1);
    put_lines(&log, &l);
    assert_eq!(located(&check(&log, None)), (ProblemKind::Edited, 10, 1));
}

#[test]
fn unreadable_input_is_an_error_with_status_3() {
    let d = dir("errors");
    let e = chain::verify(&d.join("missing.log"), None).unwrap_err();
    assert_eq!(Status::from(&e).code(), 3);
    let log = log_of("errors-log", 2);
    let e = chain::verify(&log, Some(&d.join("missing.head"))).unwrap_err();
    assert_eq!(Status::from(&e).code(), 3);
    fs::write(chain::head_path(&log), "{\"seq\":1}").unwrap();
    let e = chain::verify(&log, None).unwrap_err();
    assert!(matches!(e, chain::ChainError::BadHead { .. }), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Through the binary (needs `verify-log` wired into the CLI).

fn casa_verify(args: &[&Path]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_casa"))
        .arg("verify-log")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn verify_log_command_verdicts_and_exit_statuses() {
    let log = log_of("cli-ok", 10);
    let (code, out) = casa_verify(&[&log]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().next(),
        Some("ok: 10 records, 1 segment, head matches")
    );

    let log = log_of("cli-edited", 10);
    let mut l = lines(&log);
    l[3] = l[3].replacen("bash", "bask", 1);
    put_lines(&log, &l);
    let (code, out) = casa_verify(&[&log]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("broken at line 4: "), "{out}");

    let log = log_of("cli-truncated", 10);
    let kept_dir = dir("cli-kept");
    let kept = kept_dir.join("head");
    fs::copy(chain::head_path(&log), &kept).unwrap();
    put_lines(&log, &lines(&log)[..8]);
    fs::remove_file(chain::head_path(&log)).unwrap();
    let (code, out) = casa_verify(&[&log, Path::new("--head"), &kept]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("truncated: head records 10 lines, file has 8"),
        "{out}"
    );

    let (code, out) = casa_verify(&[Path::new("/nonexistent/audit.log")]);
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("error: "), "{out}");
}

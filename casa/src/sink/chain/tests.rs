//! The chain's unit tests: writer and verifier together, as `FileSinks` and `casa verify-log`
//! use them.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use serde_json::{Value, json};

use super::{format::line_of, writer::write_head_file, *};

/// `audit.log` in a scratch directory, removed when the test passes.
struct TmpLog {
    dir: PathBuf,
    path: PathBuf,
}

impl Drop for TmpLog {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl std::ops::Deref for TmpLog {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TmpLog {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

fn tmp_log(name: &str) -> TmpLog {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "casa-chain-unit-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    TmpLog {
        path: dir.join("audit.log"),
        dir,
    }
}

/// Append what the chain returns plus a newline, then commit the head (as FileSinks does).
fn write(chain: &mut Chain, record: Value) -> Vec<u8> {
    let line = chain.seal(record).unwrap();
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(chain.log_path())
        .unwrap();
    f.write_all(&line).unwrap();
    f.write_all(b"\n").unwrap();
    chain.commit_head().unwrap();
    line
}

fn write_n(log: &Path, n: u64) -> Chain {
    let mut c = Chain::new(log).unwrap();
    for i in 0..n {
        write(&mut c, json!({ "session_id": i, "comm": "bash" }));
    }
    c
}

/// A record built by hand: (line, hash).
fn craft(mut v: Value, seq: u64, prev: &str) -> (String, String) {
    v["seq"] = seq.into();
    v["prev_hash"] = prev.into();
    let body = canonical(&v);
    let hash = record_hash(&body, prev);
    (String::from_utf8(line_of(&body, &hash)).unwrap(), hash)
}

fn lines(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn chain_canonical_sorts_keys_at_every_level_without_whitespace() {
    let v = json!({ "z": 1, "a": { "y": [true, null, 1.5], "b": "é\"\n/" }, "M": -3 });
    assert_eq!(
        String::from_utf8(canonical(&v)).unwrap(),
        r#"{"M":-3,"a":{"b":"é\"\n/","y":[true,null,1.5]},"z":1}"#
    );
}

#[test]
fn chain_hash_is_sha256_of_canonical_body_then_prev_hash() {
    // Known answers computed outside casa (sha256sum, Python's json + hashlib).
    let log = tmp_log("kat");
    let mut c = Chain::new(&log).unwrap();
    let first = write(&mut c, json!({ "a": 1 }));
    assert_eq!(
        String::from_utf8(first).unwrap(),
        format!(
            r#"{{"a":1,"prev_hash":"{ZERO_HASH}","seq":1,"hash":"daea6b2190a8380523e7377b28a992648b372fc9fbc326497c83d3a7022909dd"}}"#
        )
    );
    let second = write(
        &mut c,
        json!({ "z": [1, { "y": true, "x": null }], "b": "é\n\"" }),
    );
    assert_eq!(
        String::from_utf8(second).unwrap(),
        r#"{"b":"é\n\"","prev_hash":"daea6b2190a8380523e7377b28a992648b372fc9fbc326497c83d3a7022909dd","seq":2,"z":[1,{"x":null,"y":true}],"hash":"7571e690524b58354e8f2df7a1fb44eab136d85a2314d652dc5c0382f1de5a61"}"#
    );
    assert_eq!(c.head().seq, 2);
    assert_eq!(
        c.head().hash,
        "7571e690524b58354e8f2df7a1fb44eab136d85a2314d652dc5c0382f1de5a61"
    );
}

#[test]
fn chain_seal_rejects_reserved_fields_and_non_objects_without_advancing() {
    let log = tmp_log("reserved");
    let mut c = Chain::new(&log).unwrap();
    for k in RESERVED_FIELDS {
        let mut v = json!({ "a": 1 });
        v[k] = 1.into();
        assert!(matches!(c.seal(v), Err(ChainError::ReservedField(f)) if f == k));
    }
    assert!(matches!(c.seal(json!([1])), Err(ChainError::NotAnObject)));
    assert!(matches!(c.seal_line(b"{oops"), Err(ChainError::NotJson(_))));
    assert_eq!(*c.head(), Head::empty());
    let line = c.seal(json!({ "a": 1 })).unwrap();
    assert!(String::from_utf8(line).unwrap().contains(r#""seq":1,"#));
}

#[test]
fn chain_resume_continues_when_head_matches() {
    let log = tmp_log("resume");
    let before = write_n(&log, 3).head().clone();
    let mut c = Chain::new(&log).unwrap();
    assert!(c.take_notes().is_empty());
    assert_eq!(*c.head(), before);
    let line = write(&mut c, json!({ "a": 4 }));
    let v: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["seq"], 4);
    assert_eq!(v["prev_hash"], before.hash.as_str());
    let r = verify(&log, None).unwrap();
    assert_eq!(r.verdict(), "ok: 4 records, 1 segment, head matches");
    assert_eq!(r.outcome(), Outcome::Ok);
}

#[test]
fn chain_head_file_is_0600_json_of_the_last_record_and_replaced_atomically() {
    let log = tmp_log("head");
    let c = write_n(&log, 2);
    let hp = head_path(&log);
    assert_eq!(hp.file_name().unwrap(), "audit.log.head");
    let text = fs::read_to_string(&hp).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{text}");
    for k in ["seq", "hash", "lines", "bytes"] {
        assert!(keys.contains(&k), "{text}");
    }
    assert_eq!(v["seq"], 2);
    assert_eq!(v["lines"], 2);
    assert_eq!(v["bytes"], fs::metadata(&log).unwrap().len());
    assert_eq!(v["hash"], c.head().hash.as_str());
    let mode = fs::metadata(&hp).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let leftovers: Vec<_> = fs::read_dir(log.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn chain_commit_head_refuses_when_out_of_step_and_next_seal_resumes() {
    let log = tmp_log("outofstep");
    let mut c = write_n(&log, 2);
    let head_before = fs::read(head_path(&log)).unwrap();
    let line = c.seal(json!({ "a": 3 })).unwrap();
    // The write failed half way.
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&line[..10]).unwrap();
    drop(f);
    assert!(matches!(c.commit_head(), Err(ChainError::OutOfStep { .. })));
    assert_eq!(fs::read(head_path(&log)).unwrap(), head_before);
    // The next record: the partial line is ended and declared, the chain continues.
    write(&mut c, json!({ "a": 4 }));
    let l = lines(&log);
    assert_eq!(l.len(), 5);
    let marker: Value = serde_json::from_str(&l[3]).unwrap();
    assert_eq!(marker["incomplete_lines"][0]["line"], 3);
    assert_eq!(marker["incomplete_lines"][0]["bytes"], 10);
    assert_eq!(marker["seq"], 3);
    let r = verify(&log, None).unwrap();
    assert_eq!(r.outcome(), Outcome::Ok, "{}", r.verdict());
    assert_eq!(r.records, 3);
    assert_eq!(r.markers, 1);
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].line, Some(3));
}

#[test]
fn chain_rotated_log_starts_a_segment_naming_the_old_head() {
    let log = tmp_log("rotate");
    let old = write_n(&log, 3).head().clone();
    fs::rename(&log, log.with_extension("log.1")).unwrap();
    let mut c = Chain::new(&log).unwrap();
    assert!(c.starts_segment());
    let notes = c.take_notes();
    assert!(notes[0].contains("rotated"), "{notes:?}");
    write(&mut c, json!({ "a": 1 }));
    let l = lines(&log);
    let marker: Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(marker["segment_start"], true);
    assert_eq!(marker["seq"], 1);
    assert_eq!(marker["prev_hash"], ZERO_HASH);
    assert_eq!(marker["previous"]["head"]["hash"], old.hash.as_str());
    assert_eq!(marker["previous"]["last_hash"], Value::Null);
    let r = verify(&log, None).unwrap();
    assert_eq!(
        r.verdict(),
        "ok: 1 record, 1 segment, head matches, 1 warning"
    );
    assert_eq!(r.warnings[0].line, Some(1));
}

#[test]
fn chain_verify_rejects_bytes_that_are_not_canonical() {
    let log = tmp_log("canon");
    write_n(&log, 3);
    let mut l = lines(&log);
    // Same JSON value, same hash, different bytes.
    l[1] = l[1].replacen('{', "{ ", 1);
    fs::write(&log, l.join("\n") + "\n").unwrap();
    let r = verify(&log, None).unwrap();
    let p = r.problem.clone().unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::NotCanonical, 2));
    assert_eq!(r.outcome(), Outcome::Broken);
    assert!(
        r.verdict().starts_with("broken at line 2: "),
        "{}",
        r.verdict()
    );
}

#[test]
fn chain_verify_rejects_a_duplicate_key_that_a_parser_would_ignore() {
    let log = tmp_log("dup");
    write_n(&log, 3);
    let mut l = lines(&log);
    // serde_json keeps the last "comm"; a first-wins reader would see "evil".
    l[2] = l[2].replacen('{', r#"{"comm":"evil","#, 1);
    fs::write(&log, l.join("\n") + "\n").unwrap();
    let p = verify(&log, None).unwrap().problem.unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::NotCanonical, 3));
}

#[test]
fn chain_verify_reports_a_seq_gap_in_otherwise_consistent_records() {
    let log = tmp_log("seqgap");
    let (a, ha) = craft(json!({ "n": 1 }), 1, ZERO_HASH);
    let (b, _) = craft(json!({ "n": 2 }), 3, &ha);
    fs::write(&log, format!("{a}\n{b}\n")).unwrap();
    let p = verify(&log, None).unwrap().problem.unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::Linkage, 2));
    assert_eq!(p.expected.as_deref(), Some("2"));
    assert_eq!(p.found.as_deref(), Some("3"));
}

#[test]
fn chain_verify_reports_a_deleted_first_record_at_line_1() {
    let log = tmp_log("first");
    let c = write_n(&log, 3);
    let l = lines(&log);
    fs::write(&log, l[1..].join("\n") + "\n").unwrap();
    let r = verify(&log, None).unwrap();
    let p = r.problem.clone().unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::Linkage, 1));
    assert_eq!(p.expected.as_deref(), Some(ZERO_HASH));
    drop(c);
}

#[test]
fn chain_verify_rejects_a_segment_start_that_does_not_name_the_record_before_it() {
    let log = tmp_log("fakeseg");
    let (a, _) = craft(json!({ "n": 1 }), 1, ZERO_HASH);
    let fake = json!({ "segment_start": true, "reason": "trust me",
        "previous": { "last_hash": "ab".repeat(32) } });
    let (b, _) = craft(fake, 1, ZERO_HASH);
    fs::write(&log, format!("{a}\n{b}\n")).unwrap();
    let p = verify(&log, None).unwrap().problem.unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::BadMarker, 2));
    assert_eq!(p.found, Some("ab".repeat(32)));
}

#[test]
fn chain_verify_rejects_an_interrupted_write_declaration_for_a_line_that_is_not_before_it() {
    let log = tmp_log("stray");
    let (a, ha) = craft(json!({ "n": 1 }), 1, ZERO_HASH);
    let decl = json!({ "incomplete_lines": [{ "line": 7, "bytes": 3, "sha256": "00" }] });
    let (b, _) = craft(decl, 2, &ha);
    fs::write(&log, format!("{a}\n{b}\n")).unwrap();
    let p = verify(&log, None).unwrap().problem.unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::BadMarker, 2));
}

#[test]
fn chain_head_of_an_empty_log() {
    let log = tmp_log("empty");
    fs::write(&log, "").unwrap();
    write_head_file(&head_path(&log), &Head::empty()).unwrap();
    let r = verify(&log, None).unwrap();
    assert_eq!(r.verdict(), "ok: 0 records, 0 segments, head matches");
    // A resuming writer agrees with that head and starts the chain without a marker.
    let mut c = Chain::new(&log).unwrap();
    assert!(!c.starts_segment());
    let (a, _) = craft(json!({ "n": 1 }), 1, ZERO_HASH);
    fs::write(&log, format!("{a}\n")).unwrap();
    let p = verify(&log, None).unwrap().problem.unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::BeyondHead, 1));
    c.mark_stale();
}

#[test]
fn chain_record_cut_before_its_newline_is_an_incomplete_tail_then_a_record() {
    let log = tmp_log("nonl");
    let mut c = write_n(&log, 2);
    let line = c.seal(json!({ "n": 3 })).unwrap();
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&line).unwrap(); // the whole record, not its newline; head not updated
    drop(f);
    let r = verify(&log, None).unwrap();
    assert_eq!(r.outcome(), Outcome::Ok, "{}", r.verdict());
    assert_eq!(r.records, 2);
    assert_eq!(r.incomplete_tail, Some((3, line.len() as u64)));
    // The restart ends the line: a record the head never committed, so a new segment
    // that names it.
    let mut c = Chain::new(&log).unwrap();
    assert!(c.starts_segment());
    write(&mut c, json!({ "n": 4 }));
    let l = lines(&log);
    let marker: Value = serde_json::from_str(&l[3]).unwrap();
    assert_eq!(marker["previous"]["last_hash"], field_of(&l[2], "hash"));
    let r = verify(&log, None).unwrap();
    assert_eq!(r.outcome(), Outcome::Ok, "{}", r.verdict());
    assert_eq!((r.records, r.markers, r.segments), (4, 1, 2));
    assert_eq!(r.warnings.len(), 1);
    assert_eq!(r.warnings[0].line, Some(4));
    assert_eq!(r.last.as_ref().unwrap().line, 5);
}

fn field_of(line: &str, key: &str) -> Value {
    serde_json::from_str::<Value>(line).unwrap()[key].clone()
}

/// The sink ends a torn line itself when it reopens after a failed write.
fn torn_write(c: &mut Chain, n: u64) {
    let line = c.seal(json!({ "n": n })).unwrap();
    let mut f = OpenOptions::new().append(true).open(c.log_path()).unwrap();
    f.write_all(&line[..line.len() / 3]).unwrap();
    f.write_all(b"\n").unwrap();
    c.mark_stale();
}

#[test]
fn chain_torn_lines_ended_by_the_sink_are_declared_by_the_next_record() {
    let log = tmp_log("torn");
    let mut c = write_n(&log, 2);
    torn_write(&mut c, 3);
    // Before the next record: an undeclared non-record line is a break.
    let p = verify(&log, None).unwrap().problem.unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::InvalidJson, 3));
    torn_write(&mut c, 3);
    write(&mut c, json!({ "n": 3 }));
    let l = lines(&log);
    let marker: Value = serde_json::from_str(&l[4]).unwrap();
    let declared: Vec<_> = marker["incomplete_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["line"].as_u64().unwrap())
        .collect();
    assert_eq!(declared, [3, 4]);
    assert_eq!(marker["prev_hash"], field_of(&l[1], "hash"));
    assert_eq!(marker.get("segment_start"), None);
    let r = verify(&log, None).unwrap();
    assert_eq!(
        r.verdict(),
        "ok: 3 records, 1 segment, head matches, 2 warnings"
    );
    let at: Vec<_> = r.warnings.iter().map(|w| w.line).collect();
    assert_eq!(at, [Some(3), Some(4)]);
    // Without mark_stale the length check finds it too.
    let mut c2 = Chain::new(&log).unwrap();
    let line = c2.seal(json!({ "n": 4 })).unwrap();
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&line[..5]).unwrap();
    f.write_all(b"\n").unwrap();
    write(&mut c2, json!({ "n": 4 }));
    let r = verify(&log, None).unwrap();
    assert_eq!(r.outcome(), Outcome::Ok, "{}", r.verdict());
    assert_eq!(r.warnings.last().unwrap().line, Some(7));
    // A declared line changed later.
    let mut l = lines(&log);
    l[2].push('x');
    fs::write(&log, l.join("\n") + "\n").unwrap();
    let p = verify(&log, None).unwrap().problem.unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::IncompleteAltered, 3));
}

#[test]
fn chain_truncation_after_a_declared_line_is_a_truncation() {
    let log = tmp_log("trunc-junk");
    let mut c = write_n(&log, 2);
    torn_write(&mut c, 3);
    write(&mut c, json!({ "n": 3 }));
    write(&mut c, json!({ "n": 4 }));
    let l = lines(&log);
    assert_eq!(l.len(), 6);
    fs::write(&log, l[..3].join("\n") + "\n").unwrap();
    let r = verify(&log, None).unwrap();
    let p = r.problem.clone().unwrap();
    assert_eq!(
        (p.kind, p.line, r.outcome()),
        (ProblemKind::Truncated, 4, Outcome::HeadMismatch)
    );
    assert!(
        r.verdict()
            .starts_with("truncated: head records 6 lines, file has 3"),
        "{}",
        r.verdict()
    );
    // Without a head to say so, the undeclared line is a break.
    fs::remove_file(head_path(&log)).unwrap();
    let p = verify(&log, None).unwrap().problem.unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::InvalidJson, 3));
}

#[test]
fn chain_too_many_non_record_lines_are_not_declared() {
    let log = tmp_log("junk");
    write_n(&log, 1);
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    for _ in 0..=MAX_DECLARED {
        f.write_all(b"junk\n").unwrap();
    }
    drop(f);
    let mut c = Chain::new(&log).unwrap();
    assert!(c.starts_segment());
    write(&mut c, json!({ "n": 2 }));
    let p = verify(&log, None).unwrap().problem.unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::InvalidJson, 2));
}

#[test]
fn chain_no_head_and_partial_tail_make_one_segment_marker_declaring_the_line() {
    let log = tmp_log("segpartial");
    write_n(&log, 2);
    fs::remove_file(head_path(&log)).unwrap();
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(br#"{"timestamp":"2026-"#).unwrap();
    drop(f);
    let mut c = Chain::new(&log).unwrap();
    assert!(c.starts_segment());
    let notes = c.take_notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    write(&mut c, json!({ "n": 3 }));
    let l = lines(&log);
    let marker: Value = serde_json::from_str(&l[3]).unwrap();
    assert_eq!(marker["segment_start"], true);
    assert_eq!(marker["incomplete_lines"][0]["line"], 3);
    let r = verify(&log, None).unwrap();
    assert_eq!(
        r.verdict(),
        "ok: 3 records, 2 segments, head matches, 2 warnings"
    );
    let at: Vec<_> = r.warnings.iter().map(|w| w.line).collect();
    assert_eq!(at, [Some(3), Some(4)]);
}

#[test]
fn chain_open_never_fails() {
    let dir = tmp_log("open");
    // A directory where the log should be: unreadable as a log.
    fs::create_dir_all(&dir).unwrap();
    assert!(Chain::new(&dir).is_err());
    let mut c = Chain::open(&dir);
    assert!(c.starts_segment());
    assert!(c.take_notes()[0].contains("could not read"));
}

#[test]
fn chain_seal_record_gives_the_bytes_of_sealing_its_serialised_line() {
    // Every JSON shape a record has: nested objects, arrays, escapes, unicode, negative and
    // large integers, null, booleans. Sealed as a value or as its serialised line, the bytes
    // (and so the hashes) are the same.
    let records = [
        json!({ "timestamp": "2026-05-21T10:17:00Z", "session_id": u64::MAX,
            "event": { "type": "OPENAT", "path": "/tmp/é \"x\"\n\t\u{1}", "result": -13,
                "args": ["sh", "-c", "echo ✓"] },
            "decision": { "score": -9, "triggered_rules": [{ "name": "z", "weight": 2 }],
                "flag": true, "none": null } }),
        json!({ "a": [], "b": {}, "c": [[1, 2], { "y": 1, "x": 2 }] }),
    ];
    let (by_value, by_line) = (tmp_log("by-value"), tmp_log("by-line"));
    let mut a = Chain::new(&by_value).unwrap();
    let mut b = Chain::new(&by_line).unwrap();
    for r in &records {
        let line = serde_json::to_vec(r).unwrap();
        assert_eq!(a.seal_record(r).unwrap(), b.seal_line(&line).unwrap());
    }
    assert_eq!(a.head(), b.head());
    // A value that is not an object, or has the chain's fields, is refused as before.
    assert!(matches!(
        a.seal_record(&[1, 2]),
        Err(ChainError::NotAnObject)
    ));
    assert!(matches!(
        a.seal_record(&json!({ "seq": 1 })),
        Err(ChainError::ReservedField("seq"))
    ));
}

#[test]
fn chain_markers_serialise_to_the_members_the_format_names() {
    let head = Head {
        seq: 3,
        hash: "ab".repeat(32),
        lines: 3,
        bytes: 900,
    };
    let declared = vec![IncompleteLine {
        line: 4,
        bytes: 10,
        sha256: "cd".repeat(32),
    }];
    let segment = Marker::SegmentStart(SegmentStart {
        segment_start: format::True,
        reason: "why".into(),
        previous: Previous {
            last_seq: Some(3),
            last_hash: Some("ef".repeat(32)),
            lines: Some(4),
            bytes: 910,
            head: Some(head.clone()),
        },
        incomplete_lines: declared.clone(),
        timestamp: "2026-05-21T10:17:00Z".into(),
    });
    assert!(segment.starts_segment());
    assert_eq!(
        serde_json::to_value(&segment).unwrap(),
        json!({ "segment_start": true, "reason": "why",
            "previous": { "last_seq": 3, "last_hash": "ef".repeat(32), "lines": 4, "bytes": 910,
                "head": { "seq": 3, "hash": "ab".repeat(32), "lines": 3, "bytes": 900 } },
            "incomplete_lines": [{ "line": 4, "bytes": 10, "sha256": "cd".repeat(32) }],
            "timestamp": "2026-05-21T10:17:00Z" })
    );
    // Unknown members are written as null; no declared lines, no `incomplete_lines`.
    let unread = Marker::SegmentStart(SegmentStart {
        segment_start: format::True,
        reason: "unreadable".into(),
        previous: Previous {
            last_seq: None,
            last_hash: None,
            lines: None,
            bytes: 7,
            head: None,
        },
        incomplete_lines: Vec::new(),
        timestamp: "t".into(),
    });
    assert_eq!(
        serde_json::to_value(&unread).unwrap(),
        json!({ "segment_start": true, "reason": "unreadable", "timestamp": "t",
            "previous": { "last_seq": null, "last_hash": null, "lines": null, "bytes": 7,
                "head": null } })
    );
    let interrupted = Marker::Interrupted(Interrupted {
        reason: "line 4".into(),
        incomplete_lines: declared,
        timestamp: "t".into(),
    });
    assert!(!interrupted.starts_segment());
    assert_eq!(
        serde_json::to_value(&interrupted).unwrap(),
        json!({ "reason": "line 4", "timestamp": "t",
            "incomplete_lines": [{ "line": 4, "bytes": 10, "sha256": "cd".repeat(32) }] })
    );
}

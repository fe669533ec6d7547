//! The exit-status scheme (`casa::exit`), command by command, through the real binary:
//! 0 ok, 1 a finding, 2 usage, 3 I/O or environment. No root, kernel or BPF toolchain needed
//! (part of `make test-unit`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use casa::{
    clock::BootClock,
    decode::build,
    recording::{Meta, Summary, Writer},
};

/// A scratch directory, removed when the test passes (kept for a look when it fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("casa-exit-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    root().join("casa/tests/fixtures/recordings").join(name)
}

/// Run casa from the repository root, without any telemetry endpoint or rules path from the
/// environment.
fn casa<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_casa"))
        .current_dir(root())
        .args(args)
        .env_remove("CASA_RULES_PATH")
        .env_remove("CASA_OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap()
}

/// Assert the exit status, showing both streams when it differs.
#[track_caller]
fn expect(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A recording of a fork, then a record cut short (undecodable).
fn recording_with_a_bad_record(path: &Path) {
    let meta = Meta {
        wire_version: casa_common::WIRE_VERSION,
        clock: BootClock { offset_ns: 1_000 },
        casa_version: "test".into(),
        hostname: "h".into(),
        kernel: "k".into(),
        started_at: "t".into(),
        command: vec![],
        all_processes: false,
    };
    let mut w = Writer::create(path, &meta).unwrap();
    w.record(&build::fork(1, 2, 3)).unwrap();
    let mut cut = build::fork(2, 2, 4);
    cut.truncate(20);
    w.record(&cut).unwrap();
    w.finish_file(&Summary::default()).unwrap();
}

#[test]
fn usage_is_2_and_help_is_0() {
    expect(&casa(["no-such-command"]), 2);
    expect(&casa(["verify-log"]), 2);
    expect(&casa(["replay", "--no-such-flag", "x.rec"]), 2);
    expect(&casa(["record", "--ring-size", "12M", "--out", "x.rec"]), 2);
    let help = casa(["--help"]);
    expect(&help, 0);
    let text = stdout(&help);
    for line in [
        "Exit status:",
        "  0  ok",
        "  1  a finding",
        "  2  usage",
        "  3  I/O or environment",
    ] {
        assert!(text.contains(line), "--help lacks {line:?}:\n{text}");
    }
    for cmd in ["run", "record", "dump", "replay", "verify-log"] {
        let o = casa([cmd, "--help"]);
        expect(&o, 0);
        assert!(stdout(&o).contains("Exit status:"), "{cmd} --help");
    }
    for cmd in ["check", "test"] {
        let o = casa(["rules", cmd, "--help"]);
        expect(&o, 0);
        assert!(stdout(&o).contains("Exit status:"), "rules {cmd} --help");
    }
}

#[test]
fn verify_log_ok_0_broken_or_truncated_1_unreadable_3() {
    let d = scratch("verify");
    let out = d.0.join("logs");
    expect(
        &casa([
            "replay".as_ref(),
            fixture("write_exec.rec").as_os_str(),
            "--rules".as_ref(),
            fixture("rules.test.json").as_os_str(),
            "--out-dir".as_ref(),
            out.as_os_str(),
        ]),
        0,
    );
    let log = out.join("audit.log");
    let verify = |log: &Path| casa(["verify-log".as_ref(), log.as_os_str()]);
    let o = verify(&log);
    expect(&o, 0);
    assert!(stdout(&o).starts_with("ok: "), "{}", stdout(&o));

    let text = fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'), "the fixture writes audit records");

    // The last record dropped, the head kept: truncated.
    let body = &text[..text.len() - 1];
    fs::write(&log, &text[..body.rfind('\n').map_or(0, |i| i + 1)]).unwrap();
    let o = verify(&log);
    expect(&o, 1);
    assert!(stdout(&o).starts_with("truncated: "), "{}", stdout(&o));

    // A record edited: broken.
    let edited = text.replacen("\"seq\":1,", "\"seq\":7,", 1);
    assert_ne!(edited, text, "the first record has seq 1");
    fs::write(&log, edited).unwrap();
    let o = verify(&log);
    expect(&o, 1);
    assert!(
        stdout(&o).starts_with("broken at line 1: "),
        "{}",
        stdout(&o)
    );

    // No log; a head file that is not one.
    expect(&verify(&d.0.join("missing.log")), 3);
    fs::write(&log, text).unwrap();
    fs::write(out.join("audit.log.head"), "not a head").unwrap();
    let o = verify(&log);
    expect(&o, 3);
    assert!(stdout(&o).starts_with("error: "), "{}", stdout(&o));
}

#[test]
fn rules_check_valid_0_invalid_1_unreadable_3() {
    expect(&casa(["rules", "check", "rules.json"]), 0);
    let d = scratch("rules-check");
    let bad = d.0.join("bad.json");
    fs::write(&bad, "{ \"thresholds\": ").unwrap();
    expect(
        &casa(["rules".as_ref(), "check".as_ref(), bad.as_os_str()]),
        1,
    );
    let missing = d.0.join("missing.json");
    let o = casa(["rules".as_ref(), "check".as_ref(), missing.as_os_str()]);
    expect(&o, 3);
    assert!(stderr(&o).contains("missing.json"), "{}", stderr(&o));
}

#[test]
fn rules_test_pass_0_failing_case_1_unreadable_3() {
    expect(&casa(["rules", "test", "--rules", "rules.json"]), 0);
    let d = scratch("rules-test");
    // A rule with no positive fixture that fires on every baseline: two failing cases.
    let rules = d.0.join("rules.json");
    fs::write(
        &rules,
        r#"{ "analysis": { "lineage_max_depth": 6 }, "thresholds": { "log": 4, "alert": 9 },
  "rules": [ { "name": "always", "expr": "true", "weight": 1, "enabled": true } ] }"#,
    )
    .unwrap();
    let o = casa([
        "rules".as_ref(),
        "test".as_ref(),
        "--rules".as_ref(),
        rules.as_os_str(),
    ]);
    expect(&o, 1);
    assert!(stdout(&o).contains("failed"), "{}", stdout(&o));
    // The rules cannot be read.
    let missing = d.0.join("missing.json");
    expect(
        &casa([
            "rules".as_ref(),
            "test".as_ref(),
            "--rules".as_ref(),
            missing.as_os_str(),
        ]),
        3,
    );
    // The baseline "directory" is a file: it cannot be listed.
    let fixtures = d.0.join("fixtures");
    fs::create_dir_all(fixtures.join("positive")).unwrap();
    fs::write(fixtures.join("baseline"), "").unwrap();
    expect(
        &casa([
            "rules".as_ref(),
            "test".as_ref(),
            "--rules".as_ref(),
            "rules.json".as_ref(),
            "--fixtures".as_ref(),
            fixtures.as_os_str(),
        ]),
        3,
    );
}

#[test]
fn dump_ok_0_undecodable_1_unreadable_3() {
    expect(
        &casa(["dump".as_ref(), fixture("benign.rec").as_os_str()]),
        0,
    );
    let d = scratch("dump");
    let bad = d.0.join("bad.rec");
    recording_with_a_bad_record(&bad);
    let o = casa(["dump".as_ref(), bad.as_os_str()]);
    expect(&o, 1);
    assert_eq!(stdout(&o).lines().count(), 1, "the good record is printed");
    assert!(stderr(&o).contains("1 undecodable"), "{}", stderr(&o));
    let not_a_recording = d.0.join("x.rec");
    fs::write(&not_a_recording, "hello, this is not a recording").unwrap();
    expect(&casa(["dump".as_ref(), not_a_recording.as_os_str()]), 3);
    expect(
        &casa(["dump".as_ref(), d.0.join("missing.rec").as_os_str()]),
        3,
    );
}

#[test]
fn replay_ok_0_undecodable_1_unreadable_or_unwritable_3() {
    let d = scratch("replay");
    let replay = |rec: &Path, out: &Path| {
        casa([
            "replay".as_ref(),
            rec.as_os_str(),
            "--rules".as_ref(),
            fixture("rules.test.json").as_os_str(),
            "--out-dir".as_ref(),
            out.as_os_str(),
        ])
    };
    expect(&replay(&fixture("benign.rec"), &d.0.join("ok")), 0);
    let bad = d.0.join("bad.rec");
    recording_with_a_bad_record(&bad);
    let o = replay(&bad, &d.0.join("bad"));
    expect(&o, 1);
    assert!(stderr(&o).contains("undecodable record"), "{}", stderr(&o));
    expect(&replay(&d.0.join("missing.rec"), &d.0.join("missing")), 3);
    // The output directory cannot be created: a file is in the way.
    let blocked = d.0.join("blocked");
    fs::write(&blocked, "").unwrap();
    expect(&replay(&fixture("benign.rec"), &blocked.join("logs")), 3);
    // Invalid rules stop the replay before it starts: an environment failure, not a finding.
    let rules = d.0.join("bad-rules.json");
    fs::write(&rules, "{").unwrap();
    expect(
        &casa([
            "replay".as_ref(),
            fixture("benign.rec").as_os_str(),
            "--rules".as_ref(),
            rules.as_os_str(),
            "--out-dir".as_ref(),
            d.0.join("x").as_os_str(),
        ]),
        3,
    );
}

/// `run` with rules it cannot read stops before it touches the kernel (any build, any user).
#[test]
fn run_with_unreadable_rules_is_3() {
    let d = scratch("run-rules");
    let p = |name: &str| d.0.join(name).into_os_string();
    let o = casa([
        "run".into(),
        "--rules".into(),
        p("missing.json"),
        "--pid-file".into(),
        p("casa.pid"),
        "--events-log".into(),
        p("events.log"),
    ]);
    expect(&o, 3);
    assert!(stderr(&o).contains("missing.json"), "{}", stderr(&o));
    assert!(
        !d.0.join("casa.pid").exists(),
        "stopped before claiming the pid file"
    );
}

/// `run` and `record` cannot start without kernel programs (a `kernel-stub` build) or without
/// root: status 3, with the reason on stderr. A normal build run as root would really start
/// the sensor, so this runs in the unit tier (`make test-unit`) only.
#[test]
#[cfg_attr(
    not(feature = "kernel-stub"),
    ignore = "needs a kernel-stub build (make test-unit)"
)]
fn run_and_record_without_kernel_programs_are_3() {
    let d = scratch("sensor");
    let p = |name: &str| d.0.join(name).into_os_string();
    let o = casa([
        "run".into(),
        "--rules".into(),
        fixture("rules.test.json").into_os_string(),
        "--pid-file".into(),
        p("casa.pid"),
        "--events-log".into(),
        p("events.log"),
        "--sessions-log".into(),
        p("sessions.log"),
        "--audit-log".into(),
        p("audit.log"),
        "--alert-log".into(),
        p("alert.log"),
    ]);
    expect(&o, 3);
    assert!(stderr(&o).contains("kernel-stub"), "{}", stderr(&o));
    let o = casa(["record".into(), "--out".into(), p("x.rec")]);
    expect(&o, 3);
    assert!(stderr(&o).contains("kernel-stub"), "{}", stderr(&o));
}

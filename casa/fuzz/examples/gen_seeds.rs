//! Writes the committed seed corpora of the fuzz targets (`corpus/<target>/`). Throwaway
//! generator, kept so the seeds can be regenerated after a wire or format change:
//!
//! ```sh
//! cd casa/fuzz && cargo +nightly run --example gen_seeds   # then review `git status corpus`
//! ```
//!
//! * `decode`: records built with `casa::decode::build` (every kind and flag family, valid and
//!   subtly invalid), plus the first records of each kind found in the golden recordings.
//! * `recording`: the golden recordings, cut copies of one, and tiny synthetic recordings.
//! * `rules`: the shipped `rules.json`, the replay rules, and small variants (legacy
//!   `feature`/`match` rules, bad CEL, unknown keys, bad shapes).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use casa::{
    clock::BootClock,
    decode::build,
    recording::{Frame, Meta, Reader, Summary, Writer},
};
use casa_common::wire::{
    self, BODY_OFFSET, ConnectBody, EventKind, ExecBody, ExitBody, OpenBody, SOCKADDR_MAX,
};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn exec_with(
    flags: u32,
    result: i32,
    path: &str,
    argv: &[&str],
    filename: &str,
    comm: &str,
) -> Vec<u8> {
    let mut argv_bytes = Vec::new();
    for a in argv {
        argv_bytes.extend_from_slice(a.as_bytes());
        argv_bytes.push(0);
    }
    exec_bytes(flags, result, path, &argv_bytes, filename, comm)
}

fn exec_raw_argv(flags: u32, path: &str, argv_bytes: &[u8], filename: &str) -> Vec<u8> {
    let comm = path.rsplit('/').next().unwrap_or(path);
    exec_bytes(flags, 0, path, argv_bytes, filename, comm)
}

fn exec_bytes(
    flags: u32,
    result: i32,
    path: &str,
    argv_bytes: &[u8],
    filename: &str,
    comm: &str,
) -> Vec<u8> {
    let body = ExecBody {
        result,
        old_tid: 7,
        cap_effective: 0x1_ffff_ffff,
        seccomp_mode: 2,
        flags,
        path_len: path.len() as u16,
        argv_len: argv_bytes.len() as u16,
        filename_len: filename.len() as u16,
        _pad0: 0,
    };
    let mut data = path.as_bytes().to_vec();
    data.extend_from_slice(argv_bytes);
    data.extend_from_slice(filename.as_bytes());
    // A wire-version-1 layout (no extension): seeds the decoder's compatibility path.
    let mut h = build::header(EventKind::Exec, 1_000, 4242, 4242, comm);
    h.version = 1;
    build::record(h, &body, &data)
}

fn open_with(syscall: u32, flags2: u32, raw: &str, path: &str) -> Vec<u8> {
    let body = OpenBody {
        result: 5,
        open_flags: 0o1101, // O_WRONLY | O_CREAT | O_TRUNC
        mode: 0o755,
        dfd: -100,
        syscall,
        flags2,
        raw_len: raw.len() as u16,
        path_len: path.len() as u16,
    };
    let mut data = raw.as_bytes().to_vec();
    data.extend_from_slice(path.as_bytes());
    // A wire-version-1 layout (no extension): seeds the decoder's compatibility path.
    let mut h = build::header(EventKind::Open, 2_000, 4242, 4243, "sh");
    h.version = 1;
    build::record(h, &body, &data)
}

fn connect_unreadable() -> Vec<u8> {
    let body = ConnectBody {
        result: -14,
        fd: 3,
        addrlen: 16,
        flags: wire::CONNECT_ADDR_UNREADABLE,
        sockaddr: [0; SOCKADDR_MAX],
    };
    build::record(
        build::header(EventKind::Connect, 3_000, 4242, 4242, "curl"),
        &body,
        &[],
    )
}

fn exit_raw(exit_code: u32, flags: u32) -> Vec<u8> {
    build::record(
        build::header(EventKind::Exit, 4_000, 4242, 4244, "node"),
        &ExitBody { exit_code, flags },
        &[],
    )
}

fn decode_seeds() -> usize {
    const BIN: &str = "/opt/bin";
    let node = format!("{BIN}/node");
    let launcher = format!("{BIN}/openclaw");
    let mut seeds: Vec<(String, Vec<u8>)> = vec![
        (
            "exec_invocation".into(),
            build::exec(
                1,
                100,
                &node,
                &["node", &launcher, "agent", "--agent", "main", "-m", "x"],
            ),
        ),
        (
            "exec_shell_c".into(),
            build::exec(2, 101, "/usr/bin/bash", &["bash", "-c", "curl -s http://x"]),
        ),
        (
            "exec_bare_shell".into(),
            build::exec(3, 102, "/bin/sh", &["/bin/sh"]),
        ),
        ("exec_no_argv".into(), build::exec(4, 103, "/bin/true", &[])),
        (
            "exec_script_relative".into(),
            exec_with(
                wire::EXEC_PATH_RESOLVED | wire::EXEC_SCRIPT | wire::EXEC_CREDS_VALID,
                0,
                "/tmp/./x/../update.sh",
                &["/bin/sh", "./update.sh"],
                "./update.sh",
                "update.sh",
            ),
        ),
        (
            "exec_memfd_execveat".into(),
            exec_with(
                wire::EXEC_PATH_RESOLVED
                    | wire::EXEC_PATH_DELETED
                    | wire::EXEC_VIA_EXECVEAT
                    | wire::EXEC_NO_NEW_PRIVS
                    | wire::EXEC_CREDS_VALID,
                0,
                "/memfd:payload",
                &["payload"],
                "",
                "3",
            ),
        ),
        (
            "exec_failed_unresolved".into(),
            exec_with(
                wire::EXEC_ARGV_TRUNCATED,
                -2,
                "",
                &["nosuch", "a"],
                "./nosuch",
                "sh",
            ),
        ),
        (
            "exec_argv_unreadable_truncated_path".into(),
            exec_with(
                wire::EXEC_PATH_RESOLVED | wire::EXEC_ARGV_UNREADABLE | wire::EXEC_PATH_TRUNCATED,
                0,
                "deep/er/bin/x",
                &[],
                "x",
                "x",
            ),
        ),
        (
            // The last argument cut without its NUL (argv longer than the capture limit).
            "exec_argv_cut_no_nul".into(),
            exec_raw_argv(
                wire::EXEC_PATH_RESOLVED | wire::EXEC_ARGV_TRUNCATED,
                "/usr/bin/python3",
                b"python3\0-c\0imp",
                "/usr/bin/python3",
            ),
        ),
        (
            "open_resolved".into(),
            build::open(5, 104, "/etc/shadow", Some("/etc/shadow"), 0, 3),
        ),
        (
            "open_failed".into(),
            build::open(6, 104, "missing", None, 0, -2),
        ),
        (
            "open_openat2_deleted_truncated".into(),
            open_with(
                wire::OPEN_SYSCALL_OPENAT2,
                wire::OPEN_PATH_RESOLVED | wire::OPEN_PATH_DELETED | wire::OPEN_PATH_TRUNCATED,
                "/proc/self/fd/3",
                "/tmp/x",
            ),
        ),
        (
            "open_raw_unreadable".into(),
            open_with(wire::OPEN_SYSCALL_OPENAT, wire::OPEN_RAW_UNREADABLE, "", ""),
        ),
        ("fork".into(), build::fork(7, 100, 105)),
        (
            "exit_leader_gone".into(),
            build::exit(8, 105, 105, 3 << 8, true),
        ),
        ("exit_thread".into(), build::exit(9, 105, 106, 0, false)),
        (
            "exit_killed_core".into(),
            exit_raw(0x80 | 11, wire::EXIT_GROUP_DEAD),
        ),
        ("connect_unreadable".into(), connect_unreadable()),
    ];
    let v4 = [2, 0, 0x46, 0x50, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    seeds.push(("connect_inet".into(), build::connect(10, 104, &v4, 0)));
    let mut v6 = vec![10, 0, 0x01, 0xbb, 0, 0, 0, 0];
    v6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    v6.extend_from_slice(&[0; 4]);
    seeds.push(("connect_inet6".into(), build::connect(11, 104, &v6, -115)));
    let mut mapped = vec![10, 0, 0, 53, 0, 0, 0, 0];
    mapped.extend_from_slice(
        &std::net::Ipv4Addr::new(10, 1, 2, 3)
            .to_ipv6_mapped()
            .octets(),
    );
    mapped.extend_from_slice(&[0; 4]);
    seeds.push((
        "connect_v4_mapped".into(),
        build::connect(12, 104, &mapped, 0),
    ));
    let mut unix = vec![1, 0];
    unix.extend_from_slice(b"/run/docker.sock\0");
    seeds.push(("connect_unix".into(), build::connect(13, 104, &unix, 0)));
    seeds.push((
        "connect_abstract".into(),
        build::connect(14, 104, &[1, 0, 0, b'a', b'b', b's'], 0),
    ));
    seeds.push(("connect_unspec".into(), build::connect(15, 104, &[0, 0], 0)));
    seeds.push((
        "connect_short".into(),
        build::connect(16, 104, &[2, 0, 0, 80], 0),
    ));
    seeds.push((
        "connect_other_af".into(),
        build::connect(17, 104, &[17, 0, 1, 2], 0),
    ));
    // Invalid on purpose: each stops at a different check of the decoder.
    let mut wrong_version = build::fork(1, 2, 3);
    wrong_version[0] = 9;
    seeds.push(("bad_version".into(), wrong_version));
    let mut wrong_kind = build::fork(1, 2, 3);
    wrong_kind[2] = 4;
    seeds.push(("bad_kind".into(), wrong_kind));
    let mut trailing = build::fork(1, 2, 3);
    trailing.extend_from_slice(&[0xaa; 8]);
    seeds.push(("bad_size".into(), trailing));
    let mut overrun = build::open(1, 2, "/etc/passwd", None, 0, 3);
    let off = BODY_OFFSET + std::mem::offset_of!(OpenBody, raw_len);
    overrun[off..off + 2].copy_from_slice(&500u16.to_ne_bytes());
    seeds.push(("bad_strings_overrun".into(), overrun));
    let short = build::exec(1, 2, "/bin/sh", &["sh"]);
    seeds.push(("bad_short_body".into(), short[..BODY_OFFSET + 8].to_vec()));
    seeds.push(("bad_short_header".into(), short[..40].to_vec()));

    // Real records: the first two of each kind in every golden recording.
    let recordings = fuzz_dir().join("../tests/fixtures/recordings");
    for rec in golden_recordings(&recordings) {
        let stem = rec.file_stem().unwrap().to_string_lossy().into_owned();
        let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
        let mut reader = Reader::open(&rec).expect("golden recording opens");
        while let Some(frame) = reader.next_frame().expect("golden recording reads") {
            let Frame::Record(raw) = frame else { continue };
            let Ok(ev) = casa::decode::decode(&raw) else {
                continue;
            };
            let kind = ev.detail.kind_name().to_owned();
            let n = per_kind.entry(kind.clone()).or_default();
            if *n < 2 {
                seeds.push((format!("rec_{stem}_{kind}_{n}"), raw));
                *n += 1;
            }
        }
    }
    for (name, bytes) in &seeds {
        let ok = casa::decode::decode(bytes).is_ok();
        assert_eq!(ok, !name.starts_with("bad_"), "seed {name} decodes: {ok}");
        write("decode", name, bytes);
    }
    seeds.len()
}

fn golden_recordings(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("recordings dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rec"))
        .collect();
    v.sort();
    v
}

fn meta() -> Meta {
    Meta {
        wire_version: casa_common::WIRE_VERSION,
        clock: BootClock { offset_ns: 1_000 },
        casa_version: "fuzz".into(),
        hostname: "h".into(),
        kernel: "k".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        command: vec!["sh".into(), "-c".into(), "true".into()],
        all_processes: false,
    }
}

fn recording_seeds() -> usize {
    let mut n = 0;
    let recordings = fuzz_dir().join("../tests/fixtures/recordings");
    for rec in golden_recordings(&recordings) {
        let name = rec.file_name().unwrap().to_string_lossy().into_owned();
        write("recording", &name, &fs::read(&rec).expect("read recording"));
        n += 1;
    }
    // Cut copies of the smallest golden recording: in the header, in the metadata, at a
    // frame boundary, inside a frame head and inside a payload (a cut summary is below, on a
    // small recording).
    let benign = fs::read(recordings.join("benign.rec")).expect("benign.rec");
    let meta_len = u32::from_le_bytes(benign[12..16].try_into().unwrap()) as usize;
    let first_frame = 16 + meta_len;
    let first_len =
        u32::from_le_bytes(benign[first_frame..first_frame + 4].try_into().unwrap()) as usize;
    let second_frame = first_frame + 5 + first_len;
    for (label, cut) in [
        ("magic", 6),
        ("header", 12),
        ("meta", 16 + meta_len / 2),
        ("frame0_boundary", first_frame),
        ("frame0_head", first_frame + 3),
        ("frame0_payload", first_frame + 5 + first_len / 2),
        ("frame1_boundary", second_frame),
        ("frame1_payload", second_frame + 40),
    ] {
        write(
            "recording",
            &format!("benign_cut_{label}.rec"),
            &benign[..cut],
        );
        n += 1;
    }
    // Tiny synthetic recordings: quick to mutate.
    let mut w = Writer::new(Vec::new(), Path::new("mem"), &meta()).unwrap();
    w.record(&build::fork(1, 2, 3)).unwrap();
    w.record(&build::exec(2, 3, "/bin/true", &["true"]))
        .unwrap();
    w.record(&build::open(3, 3, "/etc/shadow", Some("/etc/shadow"), 0, 3))
        .unwrap();
    w.record(&build::exit(4, 3, 3, 0, true)).unwrap();
    let mut s = Summary::default();
    s.events.insert("exec".into(), 1);
    s.events.insert("fork".into(), 1);
    s.kernel.insert("ringbuf_full".into(), 0);
    s.command_pid = Some(3);
    s.command_status = Some(0);
    let small = w.finish(&s).unwrap();
    write("recording", "synthetic_small.rec", &small);
    write(
        "recording",
        "synthetic_small_cut_summary.rec",
        &small[..small.len() - 10],
    );
    let w = Writer::new(Vec::new(), Path::new("mem"), &meta()).unwrap();
    write(
        "recording",
        "synthetic_empty.rec",
        &w.finish(&Summary::default()).unwrap(),
    );
    // A frame with an unknown type and one with a huge length after a valid header.
    let header_only = &small[..16 + u32::from_le_bytes(small[12..16].try_into().unwrap()) as usize];
    let mut unknown = header_only.to_vec();
    unknown.extend_from_slice(&3u32.to_le_bytes());
    unknown.push(7);
    unknown.extend_from_slice(b"abc");
    write("recording", "synthetic_unknown_frame.rec", &unknown);
    let mut huge = header_only.to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.push(1);
    write("recording", "synthetic_huge_frame.rec", &huge);
    n + 5
}

fn rules_seeds() -> usize {
    let root = fuzz_dir().join("../..");
    let mut n = 0;
    for (name, path) in [
        ("rules.json", root.join("rules.json")),
        (
            "rules.test.json",
            root.join("casa/tests/fixtures/recordings/rules.test.json"),
        ),
    ] {
        write("rules", name, &fs::read(&path).expect("read rules file"));
        n += 1;
    }
    let variants: [(&str, &str); 12] = [
        (
            "legacy_feature_match.json",
            r#"{
  "analysis": {"lineage_max_depth": 6},
  "thresholds": {"log": 4, "alert": 9},
  "rules": [
    {"name": "a", "feature": "history.connect_then_exec", "match": "bool_true", "weight": 6, "enabled": true},
    {"name": "b", "feature": "execution.deep_chain", "weight": 3, "enabled": true},
    {"name": "n", "feature": "capability.dangerous_count", "match": "number_gte", "min_value": 2.0, "weight": 2, "enabled": true},
    {"name": "r", "feature": "history.burst_open", "match": "regex", "enabled": true}
  ]
}
"#,
        ),
        (
            "legacy_gone_feature.json",
            r#"{"analysis": {"lineage_max_depth": 6}, "rules": [
  {"name": "n", "feature": "history.connect_count", "match": "number_gte", "min_value": 3, "enabled": true}]}
"#,
        ),
        (
            "bad_cel.json",
            r#"{"analysis": {"lineage_max_depth": 6}, "thresholds": {"log": 1, "alert": 2},
 "rules": [{"name": "x", "expr": "execution.shell_in_chain &&", "weight": 1, "enabled": true},
           {"name": "y", "expr": "history.nope || size(session_id)", "weight": 1, "enabled": true}]}
"#,
        ),
        (
            "cel_operators.json",
            r#"{"analysis": {"lineage_max_depth": 3},
 "thresholds": {"log": 0, "alert": 0},
 "rules": [
  {"name": "arith", "expr": "capability.dangerous_count * 2 + 1 >= 3 && !capability.seccomp_disabled", "weight": 2, "enabled": true},
  {"name": "ternary", "expr": "execution.deep_chain ? session_id > 0u : history.burst_exec", "weight": 1, "enabled": true},
  {"name": "macro", "expr": "[1, 2, 3].exists(x, x > capability.dangerous_count) && 'a' in ['a']", "weight": 1, "enabled": true},
  {"name": "div", "expr": "capability.dangerous_count / 0 == 1", "weight": 1, "enabled": false}
 ]}
"#,
        ),
        (
            "unknown_top_key.json",
            "{\n  \"analysis\": {\"lineage_max_depth\": 6},\n  \"treshold\": {}\n}\n",
        ),
        (
            "unknown_analysis_key.json",
            "{\n  \"analysis\": {\n    \"lineage_max_depth\": 6,\n    \"burst_windw_seconds\": 3\n  }\n}\n",
        ),
        (
            "unknown_rule_key.json",
            r#"{"analysis": {"lineage_max_depth": 6}, "rules": [{"name": "a", "expr": "true", "wieght": 1}]}"#,
        ),
        (
            "bad_shapes.json",
            "{\n  \"analysis\": {\"lineage_max_depth\": 6,\n    \"allowed_loopback_ports\": [18000, 70000]},\n  \"thresholds\": [4, 9]\n}",
        ),
        (
            "lineage_zero.json",
            "{\n  \"analysis\": {\n    \"lineage_max_depth\": 0\n  }\n}\n",
        ),
        (
            "extremes.json",
            r#"{"analysis": {"lineage_max_depth": 9223372036854775807, "burst_window_seconds": 9223372036854775807,
  "sensitive_history_window_seconds": -1, "recent_event_limit": 1, "known_cidrs": ["10.0.0.0/8", "::1/129", "x"],
  "ignored_connect_ips": ["::ffff:1.2.3.4", "nope"], "llm_provider_urls": ["http://[::1]:99999/", "https://a.b"],
  "dangerous_capability_names": ["CAP_SYS_ADMIN", "CAP_NOPE"], "configured_connect_refresh_seconds": -5},
 "thresholds": {"log": -1, "alert": 9223372036854775807},
 "rules": [{"name": "w", "expr": "true", "weight": 9223372036854775807, "enabled": true},
           {"name": "w2", "expr": "true", "weight": 9223372036854775807, "enabled": true}]}
"#,
        ),
        (
            "duplicate_names.json",
            r#"{"analysis": {"lineage_max_depth": 6}, "rules": [
  {"name": "a", "expr": "true", "weight": 1, "enabled": true},
  {"name": "a", "expr": "false", "weight": -1, "enabled": true},
  {"name": "", "expr": "", "enabled": null}]}
"#,
        ),
        ("empty_object.json", "{}"),
    ];
    for (name, text) in variants {
        write("rules", name, text.as_bytes());
        n += 1;
    }
    n
}

fn main() {
    let d = decode_seeds();
    let r = recording_seeds();
    let u = rules_seeds();
    println!("seeds written: decode {d}, recording {r}, rules {u}");
}

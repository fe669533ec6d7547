//! Live end-to-end tests (root): `casa run` with its eBPF sensor, an agent-shaped process tree
//! driven through it, and assertions on the four logs.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{
    daemon::{Daemon, casa_rules, shipped_rules},
    otlp::{Receiver, attr},
};

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a log line is valid JSON"))
        .collect()
}

fn rule_names(record: &Value) -> Vec<String> {
    record["decision"]["triggered_rules"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn write_then_exec_of_a_tmp_script_alerts_with_score_9_and_the_session_closes() {
    let _serial = support::daemon::serial();
    let mut casa = Daemon::start("live-write-exec", &casa_rules());
    let work = casa.workdir("oc-eval");
    let helper = work.join("helper.sh");
    let message = format!(
        "write a helper and run it\n[exec] printf '#!/bin/sh\\necho helper-ran\\n' > {h} && chmod +x {h} && {h}",
        h = helper.display()
    );
    let st = casa.agent(&message);
    assert!(st.success(), "agent run failed: {st}\n{}", casa.dump());
    casa.wait(Duration::from_secs(15), "an alert", || {
        !casa.log("alert.log").is_empty()
    });
    casa.wait(Duration::from_secs(15), "the session to close", || {
        casa.log("sessions.log").contains("\"session_closed\"")
    });
    let status = casa.stop();
    let dump = casa.dump();
    assert!(status.success(), "casa exited with {status}\n{dump}");

    let alerts = lines(&casa.log("alert.log"));
    assert_eq!(alerts.len(), 1, "expected one alert\n{dump}");
    let a = &alerts[0];
    let mut names = rule_names(a);
    names.sort();
    assert_eq!(
        names,
        [
            "write_then_exec_from_suspicious_path",
            "write_then_exec_same_path"
        ],
        "\n{dump}"
    );
    assert_eq!(a["decision"]["score"], 9, "\n{dump}");
    assert_eq!(a["decision"]["action"], "ALERT", "\n{dump}");
    assert_eq!(a["event"]["type"], "EXECVE", "\n{dump}");
    assert_eq!(a["event"]["path"], helper.display().to_string(), "\n{dump}");
    // The alert is in audit.log too (an alert is an audit record that crossed the threshold).
    let audits = lines(&casa.log("audit.log"));
    assert!(
        audits.iter().any(|r| r == a),
        "alert record missing from audit.log\n{dump}"
    );

    let sessions = lines(&casa.log("sessions.log"));
    let own = casa.own_sessions();
    assert_eq!(own.len(), 1, "\n{dump}");
    let closed: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["reason"] == "session_closed" && s["session_id"] == own[0])
        .collect();
    assert_eq!(closed.len(), 1, "\n{dump}");
    let s = closed[0];
    assert_eq!(s["session_id"], a["session_id"], "\n{dump}");
    assert!(s["session"]["closed_at"].is_string(), "\n{dump}");
    assert_eq!(s["session"]["close_reason"], "leader_exit", "\n{dump}");
    assert_eq!(s["session"]["final_action"], "ALERT", "\n{dump}");
    assert!(
        s["session"]["recent_events"]
            .as_array()
            .is_some_and(|r| r.iter().any(|e| e["path"] == helper.display().to_string())),
        "the helper's exec is not among the session's recent events\n{dump}"
    );
    let stderr = casa.stderr();
    assert!(
        stderr.contains("kernel: no loss"),
        "kernel lost events\n{dump}"
    );
}

#[test]
fn benign_session_is_logged_without_alert() {
    let _serial = support::daemon::serial();
    let mut casa = Daemon::start("live-benign", &shipped_rules());
    let st = casa.agent("read os-release\n[exec] head -n 2 /etc/os-release");
    assert!(st.success(), "{st}\n{}", casa.dump());
    casa.wait(Duration::from_secs(15), "the session to close", || {
        casa.log("sessions.log").contains("\"session_closed\"")
    });
    let status = casa.stop();
    assert!(status.success());
    let dump = casa.dump();
    assert!(
        casa.log("alert.log").is_empty(),
        "benign session alerted\n{dump}"
    );
    let events = lines(&casa.log("events.log"));
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "EXECVE" && e["path"] == "/usr/bin/head"),
        "the tool's exec is not in events.log\n{dump}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "OPENAT" && e["path"] == "/etc/os-release"
                || e["path"] == "/usr/lib/os-release"),
        "the tool's open is not in events.log\n{dump}"
    );
}

#[test]
fn sighup_reload_applies_valid_rules_and_keeps_them_on_a_broken_file() {
    let _serial = support::daemon::serial();
    let dir = support::tempdir("live-reload-rules");
    let rules = dir.join("rules.json");
    std::fs::copy(shipped_rules(), &rules).unwrap();
    let mut casa = Daemon::start("live-reload", &rules);
    let work = casa.workdir("w");

    // 1. Before the reload: an `id` call alerts nothing under the shipped rules.
    casa.agent("[exec] id -u > /dev/null");
    casa.wait(
        Duration::from_secs(15),
        "the test's session to close",
        || casa.own_closed() >= 1,
    );
    assert!(casa.own_records("alert.log").is_empty(), "{}", casa.dump());

    // 2. A valid new file with an extra rule: it takes effect after SIGHUP.
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&rules).unwrap()).unwrap();
    doc["rules"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "reload_marker", "description": "added by the reload test",
            "expr": "execution.shell_in_chain", "weight": 9, "enabled": true
        }));
    std::fs::write(&rules, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    casa.signal(libc::SIGHUP);
    casa.wait_stderr("rule config reloaded", Duration::from_secs(10));
    casa.agent(&format!("[exec] touch {}/after-reload", work.display()));
    casa.wait(Duration::from_secs(15), "the new rule to alert", || {
        casa.log("alert.log").contains("reload_marker")
    });

    // 3. A broken file: the reload fails with a located error and the old set stays.
    std::fs::write(
        &rules,
        "{ \"analysis\": { \"lineage_max_depth\": 6 },\n  \"rules\": [ oops ] }\n",
    )
    .unwrap();
    casa.signal(libc::SIGHUP);
    casa.wait_stderr("rule reload failed", Duration::from_secs(10));
    let stderr = casa.stderr();
    let want = format!("{}:2:", rules.display());
    assert!(
        stderr.contains(&want),
        "the error does not name file and line ({want})\n{}",
        casa.dump()
    );
    let before = casa.log("alert.log").matches("reload_marker").count();
    casa.agent(&format!("[exec] touch {}/after-broken", work.display()));
    casa.wait(
        Duration::from_secs(15),
        "the kept rule to alert again",
        || casa.log("alert.log").matches("reload_marker").count() > before,
    );
    let status = casa.stop();
    assert!(status.success());
    let stderr = casa.stderr();
    assert!(
        stderr.contains("kernel: no loss") && stderr.contains(" 0 undecodable"),
        "events were lost\n{}",
        casa.dump()
    );
}

#[test]
fn live_session_span_is_exported_over_otlp() {
    let _serial = support::daemon::serial();
    let rx = Receiver::start(false);
    let endpoint = rx.endpoint();
    let mut casa = Daemon::start_with_env(
        "live-otlp",
        &shipped_rules(),
        &[("CASA_OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    );
    casa.wait_stderr("telemetry on", Duration::from_secs(5));
    let st = casa.agent("[exec] head -n 1 /etc/os-release");
    assert!(st.success(), "{}", casa.dump());
    casa.wait(Duration::from_secs(20), "the span to arrive", || {
        !rx.spans().is_empty()
    });
    let status = casa.stop();
    assert!(status.success());
    let own = casa.own_sessions();
    let all = rx.spans();
    let dump = format!(
        "{}\nspans: {:?}",
        casa.dump(),
        all.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
    );
    assert_eq!(own.len(), 1, "{dump}");
    // One span per session: exactly one for this test's session (another agent running on
    // the machine has its own).
    let name = format!("session {}", own[0]);
    let spans: Vec<_> = all.iter().filter(|(_, s)| s.name == name).collect();
    assert_eq!(spans.len(), 1, "{dump}");
    let (_, span) = spans[0];
    assert!(
        span.events.iter().any(|e| e.name == "process"
            && attr(&e.attributes, "process.executable.path").as_deref() == Some("/usr/bin/head")),
        "the tool's exec is not a span event\n{dump}"
    );
    assert_eq!(
        attr(&span.attributes, "casa.session.final_action").as_deref(),
        Some("IGNORE"),
        "{dump}"
    );
    // Every span casa exported arrived (this session's and any other agent's).
    assert!(
        casa.stderr().contains(&format!("exported {},", all.len())),
        "{dump}"
    );
}

#[test]
fn memfd_exec_and_deleted_open_really_fire() {
    let _serial = support::daemon::serial();
    // CASA's M08 and M09, which the original could not see: a file read back through the fd
    // of its unlinked path, and a binary executed from a memfd.
    let mut casa = Daemon::start("live-memfd", &casa_rules());
    let work = casa.workdir("m");
    let py = format!(
        "import os\np = '{w}/ghost.txt'\nfd = os.open(p, os.O_CREAT | os.O_RDWR)\nos.write(fd, b'x')\nos.unlink(p)\nopen('/proc/self/fd/%d' % fd).read()\nm = os.memfd_create('payload', 0)\nos.write(m, open('/bin/true', 'rb').read())\nos.execve(m, ['payload'], {{}})\n",
        w = work.display()
    );
    let script = work.join("m.py");
    std::fs::write(&script, py).unwrap();
    let st = casa.agent(&format!("[exec] python3 {}", script.display()));
    assert!(st.success(), "{}", casa.dump());
    casa.wait(Duration::from_secs(15), "the session to close", || {
        casa.log("sessions.log").contains("\"session_closed\"")
    });
    let status = casa.stop();
    assert!(status.success());
    let dump = casa.dump();
    let audit = lines(&casa.log("audit.log"));
    let fired: Vec<String> = audit.iter().flat_map(rule_names).collect();
    assert!(
        fired.contains(&"opened_deleted_path".to_owned()),
        "opened_deleted_path did not fire: {fired:?}\n{dump}"
    );
    assert!(
        fired.contains(&"memfd_or_deleted_exec".to_owned()),
        "memfd_or_deleted_exec did not fire: {fired:?}\n{dump}"
    );
    let alerts = lines(&casa.log("alert.log"));
    let memfd = alerts
        .iter()
        .find(|a| rule_names(a).contains(&"memfd_or_deleted_exec".to_owned()));
    let Some(memfd) = memfd else {
        panic!("no alert for the memfd exec\n{dump}")
    };
    assert_eq!(
        memfd["event"]["path"], "/memfd:payload (deleted)",
        "\n{dump}"
    );
}

#[test]
fn hostile_argv_gives_valid_json_no_raw_escapes_and_no_key_anywhere() {
    let _serial = support::daemon::serial();
    const KEY: &str = "sk-proj-CASAtestFAKEkey0123456789abcdefXYZ";
    let rx = Receiver::start(false);
    let endpoint = rx.endpoint();
    let mut casa = Daemon::start_with_env(
        "live-hostile",
        &shipped_rules(),
        &[("CASA_OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    );
    let work = casa.workdir("h");
    // A 4 KiB argv: ANSI escapes, newlines, control bytes, invalid UTF-8, and the key twice.
    let py = format!(
        "import os\nnasty = [b'\\x1b[31mred\\x1b[0m\\n\\r\\x07' * 40, bytes(range(1, 32)) * 20, b'\\xff\\xfe\\xc3(' * 100, b'--api-key={k}', b'Authorization: Bearer {k}']\nos.execv('/bin/true', [b'true'] + nasty + [b'x' * 600])\n",
        k = KEY
    );
    let script = work.join("hostile.py");
    std::fs::write(&script, py).unwrap();
    let st = casa.agent(&format!("[exec] python3 {}", script.display()));
    assert!(st.success(), "{}", casa.dump());
    casa.wait(Duration::from_secs(15), "the session to close", || {
        casa.log("sessions.log").contains("\"session_closed\"")
    });
    casa.wait(Duration::from_secs(15), "the span", || {
        !rx.spans().is_empty()
    });
    let status = casa.stop();
    assert!(status.success());
    let dump = casa.dump();
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    for log in ["events.log", "sessions.log", "audit.log", "alert.log"] {
        outputs.push((
            log.to_owned(),
            std::fs::read(casa.logs.join(log)).unwrap_or_default(),
        ));
    }
    outputs.push(("stderr".to_owned(), casa.stderr().into_bytes()));
    let spans = format!("{:?}", rx.spans());
    outputs.push(("spans".to_owned(), spans.into_bytes()));
    for (name, bytes) in &outputs {
        assert!(
            !bytes.contains(&0x1b),
            "{name} contains a raw ESC byte\n{dump}"
        );
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "{name} contains the API key\n{dump}"
        );
        if name.ends_with(".log") {
            let text =
                String::from_utf8(bytes.clone()).unwrap_or_else(|_| panic!("{name} is not UTF-8"));
            for line in text.lines() {
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|e| panic!("{name}: invalid JSON ({e}): {line}"));
            }
        }
    }
    let events = lines(&casa.log("events.log"));
    let hostile = events
        .iter()
        .find(|e| e["type"] == "EXECVE" && e["path"] == "/usr/bin/true")
        .unwrap_or_else(|| panic!("the hostile exec is not in events.log\n{dump}"));
    let args: Vec<&str> = hostile["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args[1].starts_with("\u{1b}[31mred"),
        "escapes are kept as data (JSON-escaped on disk)"
    );
    assert!(
        args[3].contains("\\xff\\xfe"),
        "invalid UTF-8 shown as \\x escapes: {:?}",
        args[3]
    );
    assert!(
        args[4].starts_with("--api-key=[REDACTED len=42 sha256="),
        "{}",
        args[4]
    );
    assert!(
        args[5].starts_with("Authorization: Bearer [REDACTED len=42"),
        "{}",
        args[5]
    );
}

#[test]
fn a_live_recording_replays_to_the_same_logs_and_the_latency_trace_has_the_alert() {
    let _serial = support::daemon::serial();
    let rec_dir = support::tempdir("live-record-replay-out");
    let rec = rec_dir.join("run.rec");
    let trace = rec_dir.join("latency.jsonl");
    let dir = support::tempdir("live-record-replay");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut casa = Daemon::start_in_with_args(
        &dir,
        &casa_rules(),
        &[
            "--record",
            rec.to_str().unwrap(),
            "--latency-log",
            trace.to_str().unwrap(),
        ],
    );
    let work = casa.workdir("oc-eval");
    let helper = work.join("helper.sh");
    let message = format!(
        "write a helper and run it\n[exec] cat /etc/hostname\n[exec] printf '#!/bin/sh\\necho ok\\n' > {h} && chmod +x {h} && {h}",
        h = helper.display()
    );
    let st = casa.agent(&message);
    assert!(st.success(), "agent run failed: {st}\n{}", casa.dump());
    casa.wait(Duration::from_secs(20), "the session to close", || {
        casa.log("sessions.log").contains("\"session_closed\"")
    });
    let status = casa.stop();
    let dump = casa.dump();
    assert!(status.success(), "casa exited with {status}\n{dump}");
    assert!(
        casa.log("alert.log").contains("\"ALERT\""),
        "no alert live\n{dump}"
    );

    // The latency trace: one line per accepted event and one for the alert, each with the
    // kernel timestamp of its event and a non-negative latency.
    let t = lines(&std::fs::read_to_string(&trace).unwrap());
    let accepted = casa.log("events.log").lines().count();
    assert_eq!(
        t.iter().filter(|l| l["log"] == "events").count(),
        accepted,
        "one trace line per events.log line\n{dump}"
    );
    let alerts: Vec<&Value> = t.iter().filter(|l| l["log"] == "alert").collect();
    assert_eq!(alerts.len(), 1, "{t:?}");
    let a = alerts[0];
    assert_eq!(a["type"], "EXECVE");
    assert_eq!(
        a["latency_ns"].as_u64().unwrap(),
        a["written_ns"].as_u64().unwrap() - a["event_ns"].as_u64().unwrap()
    );
    assert!(
        casa.stderr().contains("to alert.log: n=1 "),
        "exit summary lacks the alert latency\n{dump}"
    );

    // Replaying the recording reproduces the four logs byte for byte.
    let out = rec_dir.join("replayed");
    let o = std::process::Command::new(support::casa_bin())
        .arg("replay")
        .arg(&rec)
        .arg("--rules")
        .arg(casa_rules())
        .arg("--out-dir")
        .arg(&out)
        .env_remove("CASA_OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for log in ["events.log", "sessions.log", "audit.log", "alert.log"] {
        let live = casa.log(log);
        let replayed = std::fs::read_to_string(out.join(log)).unwrap();
        assert!(
            !live.is_empty() || log == "audit.log",
            "{log} is empty\n{dump}"
        );
        assert_eq!(
            live, replayed,
            "{log} differs between the live run and its replay"
        );
    }
}

#[test]
fn a_launcher_symlinked_away_from_node_and_run_from_path_starts_a_session() {
    let _serial = support::daemon::serial();
    let mut casa = Daemon::start("live-symlink-launcher", &shipped_rules());
    // The global-install layout: `openclaw` is a symlink in its own bin directory, node is
    // the distribution's (/usr/bin/node): the original same-directory rule does not apply.
    let bin = casa.workdir("global-bin");
    let launcher = bin.join("openclaw");
    std::os::unix::fs::symlink(
        support::daemon::repo_root().join("casa/tests/fixtures/fake-openclaw/openclaw"),
        &launcher,
    )
    .unwrap();
    let st = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["openclaw", "agent", "--agent", "main", "-m"])
        .arg("symlinked launcher\n[exec] cat /etc/hostname")
        .current_dir("/")
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        )
        .env("HOME", "/tmp")
        .env("LANG", "C.UTF-8")
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{st}\n{}", casa.dump());
    casa.wait(Duration::from_secs(20), "the session to close", || {
        casa.log("sessions.log").contains("\"session_closed\"")
    });
    casa.stop();
    let dump = casa.dump();
    let sessions = lines(&casa.log("sessions.log"));
    let s = sessions
        .iter()
        .find(|s| s["reason"] == "session_closed")
        .unwrap_or_else(|| panic!("no session\n{dump}"));
    let inv: Vec<&str> = s["session"]["invocation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(inv[1], launcher.display().to_string(), "{inv:?}\n{dump}");
    assert!(
        casa.log("events.log").contains("/etc/hostname"),
        "the tool's open is in the session\n{dump}"
    );
}

/// `GET /metrics` from casa's loopback listener.
fn scrape(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).expect("connect to the metrics listener");
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: casa\r\n\r\n")
        .unwrap();
    let mut r = String::new();
    c.read_to_string(&mut r).unwrap();
    r
}

#[test]
fn prometheus_metrics_are_served_on_loopback_and_count_the_session() {
    let _serial = support::daemon::serial();
    let dir = support::tempdir("live-metrics");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A free loopback port.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let casa = Daemon::start_in_with_args(
        &dir,
        &shipped_rules(),
        &["--metrics-listen", &addr.to_string()],
    );
    let st = casa.agent("[exec] cat /etc/hostname");
    assert!(st.success(), "{}", casa.dump());
    casa.wait(Duration::from_secs(20), "the session to close", || {
        casa.own_closed() >= 1
    });
    // The page is rendered every tick (500 ms).
    let sample = |name: &str| -> Option<u64> {
        let page = scrape(addr);
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        assert!(page.contains("text/plain; version=0.0.4"), "{page}");
        let body = page.split_once("\r\n\r\n").unwrap().1.to_owned();
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(|v| v.parse().expect("a counter value"))
    };
    let mut started = 0;
    for _ in 0..20 {
        started = sample("casa_sessions_started_total").unwrap_or(0);
        if started >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(started >= 1, "no session counted\n{}", casa.dump());
    assert!(sample("casa_events_total").unwrap() > 0);
    assert!(sample("casa_sessions_closed_total").unwrap() >= 1);
    // A non-loopback address is refused before casa runs.
    let out = std::process::Command::new(support::casa_bin())
        .args(["run", "--metrics-listen", "0.0.0.0:9464", "--rules"])
        .arg(shipped_rules())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ocsf_log_of_a_live_attack_validates_and_its_finding_closes_with_the_session() {
    let _serial = support::daemon::serial();
    let dir = support::tempdir("live-ocsf");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ocsf = dir.join("logs/ocsf.jsonl");
    let mut casa =
        Daemon::start_in_with_args(&dir, &casa_rules(), &["--ocsf-log", ocsf.to_str().unwrap()]);
    let work = casa.workdir("oc-ocsf");
    let helper = work.join("helper.sh");
    let message = format!(
        "write a helper and run it\n[exec] printf '#!/bin/sh\\necho helper-ran\\n' > {h} && chmod +x {h} && {h}",
        h = helper.display()
    );
    let st = casa.agent(&message);
    assert!(st.success(), "agent run failed: {st}\n{}", casa.dump());
    casa.wait(Duration::from_secs(20), "the session to close", || {
        casa.own_closed() >= 1
    });
    let status = casa.stop();
    let dump = casa.dump();
    assert!(status.success(), "casa exited with {status}\n{dump}");

    let (code, summary) = support::ocsf::validate(&ocsf);
    assert_eq!(code, 0, "OCSF schema validation failed:\n{summary}\n{dump}");
    let own = casa.own_sessions();
    assert_eq!(own.len(), 1, "\n{dump}");
    let sid = own[0].to_string();
    let events = lines(&std::fs::read_to_string(&ocsf).unwrap());
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["ai_agent"]["instance_uid"] == sid.as_str())
        .collect();
    // The helper's launch, with its command line.
    assert!(
        mine.iter().any(|e| e["class_uid"] == 1007
            && e["activity_id"] == 1
            && e["process"]["file"]["path"] == helper.display().to_string()),
        "no Process Activity launch of the helper\n{dump}"
    );
    let findings: Vec<&&Value> = mine.iter().filter(|e| e["class_uid"] == 2004).collect();
    let activities: Vec<u64> = findings
        .iter()
        .map(|f| f["activity_id"].as_u64().unwrap())
        .collect();
    assert_eq!(activities.first(), Some(&1), "created first\n{dump}");
    assert_eq!(activities.last(), Some(&3), "closed last\n{dump}");
    let alerts = lines(&casa.log("alert.log"));
    let closed = casa
        .own_records("sessions.log")
        .into_iter()
        .find(|s| s["session"]["closed_at"].is_string())
        .expect("the session's close");
    let last = findings.last().unwrap();
    assert_eq!(
        last["risk_score"], closed["session"]["final_score"],
        "\n{dump}"
    );
    let mut fired: Vec<String> = alerts
        .iter()
        .filter(|a| a["session_id"] == own[0])
        .flat_map(rule_names)
        .collect();
    fired.sort();
    fired.dedup();
    let mut analytics: Vec<String> = last["finding_info"]["related_analytics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    analytics.sort();
    assert_eq!(analytics, fired, "\n{dump}");
    assert!(!fired.is_empty(), "no alert\n{dump}");
}

#[test]
fn live_findings_and_metrics_are_exported_over_otlp_and_scraped() {
    use std::io::{Read, Write};
    let _serial = support::daemon::serial();
    let rx = Receiver::start(false);
    let endpoint = rx.endpoint();
    let metrics_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{metrics_port}");
    let mut casa = Daemon::start_with_env(
        "live-otlp-logs",
        &casa_rules(),
        &[
            ("CASA_OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
            ("CASA_METRICS_LISTEN", listen.as_str()),
        ],
    );
    let work = casa.workdir("oc-otlp");
    let helper = work.join("helper.sh");
    let st = casa.agent(&format!(
        "write a helper and run it\n[exec] printf '#!/bin/sh\\necho helper-ran\\n' > {h} && chmod +x {h} && {h}",
        h = helper.display()
    ));
    assert!(st.success(), "agent run failed: {st}\n{}", casa.dump());
    casa.wait(Duration::from_secs(15), "an alert", || {
        !casa.own_records("alert.log").is_empty()
    });
    let alert = casa.own_records("alert.log").remove(0);
    let trace = alert["trace_id"].as_str().unwrap().to_owned();
    let exported = |log: &str| {
        rx.log_records()
            .into_iter()
            .filter(|(_, r)| {
                support::otlp::hex(&r.trace_id) == trace
                    && attr(&r.attributes, "casa.log").as_deref() == Some(log)
            })
            .count()
    };
    casa.wait(Duration::from_secs(15), "the alert's log record", || {
        exported("alert") == 1
    });
    // A periodic metrics export that counts the alert.
    casa.wait(Duration::from_secs(15), "metrics with the alert", || {
        rx.metric_exports().iter().any(|(_, m)| {
            support::otlp::metric_value(m, "casa_decisions", Some(("log", "alert")))
                .is_some_and(|n| n >= 1)
        })
    });
    // A real scrape of the Prometheus page: the alert's latency is in the histogram.
    let mut page = String::new();
    casa.wait(
        Duration::from_secs(5),
        "a scrape with the alert latency",
        || {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            page.clear();
            c.read_to_string(&mut page).unwrap();
            page.lines().any(|l| {
                l.starts_with("casa_event_to_log_latency_seconds_count{log=\"alert\"} ")
                    && !l.ends_with(" 0")
            })
        },
    );
    assert!(
        page.contains("casa_otlp_export_failures_total{signal=\"logs\"} 0"),
        "{page}"
    );
    let status = casa.stop();
    let dump = format!("{}\n--- scrape ---\n{page}", casa.dump());
    assert!(status.success(), "{dump}");
    let audits = casa
        .own_records("audit.log")
        .iter()
        .filter(|r| r["trace_id"] == trace.as_str())
        .count();
    assert_eq!(
        exported("audit"),
        audits,
        "one log record per audit record\n{dump}"
    );
    let stderr = casa.stderr();
    assert!(
        stderr.contains("telemetry: log records handed over")
            && stderr.contains("telemetry: metric exports handed over"),
        "{dump}"
    );
}

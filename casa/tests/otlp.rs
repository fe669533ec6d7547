//! OpenTelemetry export, received for real: a recorded malicious session replayed with an OTLP
//! endpoint produces one span whose contents are checked field by field, and a dead or stalled
//! endpoint changes nothing in the logs.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::otlp::{Receiver, attr, hex};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn replay(name: &str, out: &Path, endpoint: Option<&str>) -> Output {
    let _ = std::fs::remove_dir_all(out);
    let mut c = Command::new(env!("CARGO_BIN_EXE_casa"));
    c.arg("replay")
        .arg(fixtures().join(format!("recordings/{name}.rec")))
        .arg("--rules")
        .arg(fixtures().join("recordings/rules.test.json"))
        .arg("--out-dir")
        .arg(out)
        .env_remove("CASA_OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    if let Some(e) = endpoint {
        c.env("CASA_OTEL_EXPORTER_OTLP_ENDPOINT", e);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn unix_ns(rfc3339: &str) -> u64 {
    // 2026-11-22T06:17:54.247377591Z
    let (date, rest) = rfc3339.split_once('T').unwrap();
    let mut d = date.split('-').map(|x| x.parse::<i64>().unwrap());
    let (y, m, day) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let rest = rest.trim_end_matches('Z');
    let (hms, frac) = rest.split_once('.').unwrap();
    let mut t = hms.split(':').map(|x| x.parse::<i64>().unwrap());
    let (hh, mm, ss) = (t.next().unwrap(), t.next().unwrap(), t.next().unwrap());
    // days from civil (Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86400 + hh * 3600 + mm * 60 + ss) as u64) * 1_000_000_000
        + frac.parse::<u64>().unwrap()
}

#[test]
fn replayed_malicious_session_exports_its_span() {
    let rx = Receiver::start(false);
    let out = std::env::temp_dir().join(format!("casa-otlp-{}", std::process::id()));
    let o = replay("write_exec", &out, Some(&rx.endpoint()));
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let spans = rx.spans();
    assert_eq!(
        spans.len(),
        1,
        "expected one span, got {}\n{stderr}",
        spans.len()
    );
    let (service, span) = &spans[0];
    assert!(service.contains("casa"), "service.name {service}");
    assert_eq!(span.name, "session 1");
    assert!(
        span.parent_span_id.is_empty(),
        "the session span is a root span"
    );

    let sessions = json_lines(&out.join("sessions.log"));
    let closed = sessions
        .iter()
        .find(|s| s["reason"] == "session_closed")
        .expect("session_closed");
    assert_eq!(
        span.start_time_unix_nano,
        unix_ns(closed["session"]["started_at"].as_str().unwrap())
    );
    assert_eq!(
        span.end_time_unix_nano,
        unix_ns(closed["session"]["closed_at"].as_str().unwrap())
    );

    let alert = &json_lines(&out.join("alert.log"))[0];
    assert_eq!(
        hex(&span.trace_id),
        alert["trace_id"].as_str().unwrap(),
        "trace id differs from alert.log"
    );
    assert_eq!(hex(&span.span_id), alert["span_id"].as_str().unwrap());

    // The story, in order: events, then at the helper's exec the two rule matches, audit, alert.
    let names: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
    let events = json_lines(&out.join("events.log"));
    let accepted = names
        .iter()
        .filter(|n| ["process", "file", "network", "exit"].contains(n))
        .count();
    assert_eq!(accepted, events.len(), "one span event per events.log line");
    let i = names
        .iter()
        .position(|n| *n == "rule matched: write_then_exec_same_path")
        .expect("rule event");
    assert_eq!(
        &names[i - 1..i + 4],
        &[
            "process",
            "rule matched: write_then_exec_same_path",
            "rule matched: write_then_exec_from_suspicious_path",
            "audit emitted",
            "alert emitted"
        ],
        "{names:?}"
    );
    let rule = &span.events[i].attributes;
    assert_eq!(
        attr(rule, "casa.rule.name").as_deref(),
        Some("write_then_exec_same_path")
    );
    assert_eq!(
        attr(rule, "casa.rule.expr").as_deref(),
        Some("history.write_then_exec_same_path")
    );
    assert_eq!(attr(rule, "casa.rule.weight").as_deref(), Some("5"));
    assert_eq!(attr(rule, "casa.decision.score").as_deref(), Some("9"));
    assert_eq!(attr(rule, "casa.decision.action").as_deref(), Some("ALERT"));
    assert_eq!(
        attr(rule, "casa.decision.alert_threshold").as_deref(),
        Some("9")
    );
    assert_eq!(
        attr(rule, "process.executable.path").as_deref(),
        alert["event"]["path"].as_str()
    );
    let alert_ev = &span.events[i + 3].attributes;
    assert_eq!(attr(alert_ev, "casa.alert.kind").as_deref(), Some("alert"));
    assert_eq!(
        attr(alert_ev, "casa.alert.triggered_rule_count").as_deref(),
        Some("2")
    );

    let a = &span.attributes;
    assert_eq!(attr(a, "casa.session.id").as_deref(), Some("1"));
    assert_eq!(attr(a, "casa.session.final_score").as_deref(), Some("9"));
    assert_eq!(
        attr(a, "casa.session.final_action").as_deref(),
        Some("ALERT")
    );
    assert_eq!(
        attr(a, "casa.session.alert_emitted").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(a, "casa.session.audit_emitted").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(a, "casa.history.write_then_exec_same_path").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(a, "casa.execution.suspicious_path_exec").as_deref(),
        Some("true")
    );
    assert_eq!(
        attr(a, "casa.capability.has_dangerous_caps").as_deref(),
        Some("false")
    );
    let execs = events
        .iter()
        .filter(|e| e["type"] == "EXECVE")
        .count()
        .to_string();
    assert_eq!(attr(a, "casa.session.event_count.execve"), Some(execs));
    assert_eq!(attr(a, "casa.session.events_dropped").as_deref(), Some("0"));
    assert!(stderr.contains("exported 1"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn dead_or_stalled_endpoint_leaves_the_logs_unchanged() {
    let base = std::env::temp_dir().join(format!("casa-otlp-faults-{}", std::process::id()));
    let plain = base.join("plain");
    replay("sensitive_upload", &plain, None);
    // A closed port: bind, learn the port, close it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let stalled = Receiver::start(true);
    for (what, endpoint) in [
        (
            "closed port",
            format!("http://127.0.0.1:{closed}/v1/traces"),
        ),
        ("stalled receiver", stalled.endpoint()),
    ] {
        let out = base.join(what.replace(' ', "-"));
        let t = Instant::now();
        let o = replay("sensitive_upload", &out, Some(&endpoint));
        let took = t.elapsed();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        for log in ["events.log", "sessions.log", "audit.log", "alert.log"] {
            let a = std::fs::read(plain.join(log)).unwrap();
            let b = std::fs::read(out.join(log)).unwrap();
            assert!(
                a == b,
                "{what}: {log} differs from the run without telemetry"
            );
        }
        assert!(
            stderr.contains("failed exports 1"),
            "{what}: export failure not counted: {stderr}"
        );
        // Liveness, not performance: a bounded shutdown even against a stalled endpoint.
        assert!(
            took < Duration::from_secs(20),
            "{what}: replay took {took:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

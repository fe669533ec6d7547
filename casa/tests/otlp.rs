//! OpenTelemetry export, received for real: a recorded malicious session replayed with an OTLP
//! endpoint produces one span whose contents are checked field by field, one log record per
//! audit/alert line (bodies equal to the lines, the span's trace id) and the metrics of the
//! replay's summary; a dead or stalled endpoint changes nothing in the logs.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::otlp::{Receiver, attr, hex, metric_value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn replay(name: &str, out: &Path, endpoint: Option<&str>) -> Output {
    replay_with(name, out, endpoint, &[])
}

fn replay_with(name: &str, out: &Path, endpoint: Option<&str>, env: &[(&str, &str)]) -> Output {
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
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env_remove("OTEL_LOGS_EXPORTER")
        .env_remove("OTEL_METRICS_EXPORTER")
        .env_remove("CASA_OTEL_LOG_EVENTS");
    if let Some(e) = endpoint {
        c.env("CASA_OTEL_EXPORTER_OTLP_ENDPOINT", e);
    }
    c.envs(env.iter().copied());
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
        let logs = stderr
            .lines()
            .find(|l| l.contains("telemetry: log records handed over"))
            .unwrap_or_else(|| panic!("{what}: no log records line: {stderr}"));
        assert!(
            logs.contains("exported 0,") && logs.contains("failed exports 1 ("),
            "{what}: log record export failure not counted: {logs}"
        );
        let metrics = stderr
            .lines()
            .find(|l| l.contains("telemetry: metric exports handed over 1,"))
            .unwrap_or_else(|| panic!("{what}: no metrics line: {stderr}"));
        assert!(
            metrics.contains("failed exports 1 ("),
            "{what}: metrics export failure not counted: {metrics}"
        );
        // Liveness, not performance: a bounded shutdown even against a stalled endpoint.
        assert!(
            took < Duration::from_secs(20),
            "{what}: replay took {took:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// A chained line without the chain's members: the record as the pipeline built it.
fn unchained(mut line: Value) -> Value {
    let o = line.as_object_mut().unwrap();
    for k in ["seq", "prev_hash", "hash"] {
        assert!(o.remove(k).is_some(), "chained line without {k}");
    }
    line
}

/// The number before `what` in the replay's summary line (`casa replay: 9 events, ...`).
fn summary(stderr: &str, what: &str) -> i64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("casa replay: ") && l.contains(" events, "))
        .expect("summary line");
    let words: Vec<&str> = line
        .trim_start_matches("casa replay: ")
        .split([',', ' '])
        .filter(|w| !w.is_empty())
        .collect();
    let i = words.iter().position(|w| *w == what).expect(what);
    words[i - 1].parse().unwrap()
}

#[test]
fn replayed_malicious_session_exports_its_records_as_logs_and_its_counts_as_metrics() {
    let rx = Receiver::start(false);
    let out = std::env::temp_dir().join(format!("casa-otlp-logs-{}", std::process::id()));
    let o = replay("write_exec", &out, Some(&rx.endpoint()));
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let spans = rx.spans();
    assert_eq!(spans.len(), 1, "{stderr}");
    let span = &spans[0].1;

    let audit = json_lines(&out.join("audit.log"));
    let alert = json_lines(&out.join("alert.log"));
    assert!(
        !audit.is_empty() && !alert.is_empty(),
        "a malicious session"
    );
    let records = rx.log_records();
    assert_eq!(
        records.len(),
        audit.len() + alert.len(),
        "one log record per audit and alert line\n{stderr}"
    );
    for (log, lines, severity) in [("audit", &audit, "INFO"), ("alert", &alert, "WARN")] {
        let of_log: Vec<_> = records
            .iter()
            .filter(|(_, r)| attr(&r.attributes, "casa.log").as_deref() == Some(log))
            .collect();
        assert_eq!(of_log.len(), lines.len(), "{log}");
        for ((resource, r), line) in of_log.iter().zip(lines.iter()) {
            let body = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s,
                other => panic!("{log}: body {other:?}"),
            };
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                body,
                unchained(line.clone()),
                "{log}: body differs from the line"
            );
            assert_eq!(hex(&r.trace_id), hex(&span.trace_id), "{log}: trace id");
            assert_eq!(hex(&r.trace_id), line["trace_id"].as_str().unwrap());
            assert_eq!(hex(&r.span_id), hex(&span.span_id), "{log}: span id");
            assert_eq!(
                r.time_unix_nano,
                unix_ns(line["timestamp"].as_str().unwrap())
            );
            assert_eq!(r.severity_text, severity);
            let a = &r.attributes;
            assert_eq!(
                attr(a, "casa.session.id"),
                Some(line["session_id"].to_string())
            );
            assert_eq!(
                attr(a, "casa.decision.action").as_deref(),
                line["decision"]["action"].as_str()
            );
            assert_eq!(
                attr(a, "casa.decision.score"),
                Some(line["decision"]["score"].to_string())
            );
            assert_eq!(
                attr(&resource.attributes, "service.name").as_deref(),
                Some("casa")
            );
            assert!(
                attr(&resource.attributes, "host.name").is_some_and(|h| !h.is_empty()),
                "host.name on the resource"
            );
        }
    }
    // events.log records only when asked.
    assert!(
        records
            .iter()
            .all(|(_, r)| attr(&r.attributes, "casa.log").as_deref() != Some("events"))
    );

    // One metrics export at the end of the replay, with the summary's figures.
    let exports = rx.metric_exports();
    assert_eq!(exports.len(), 1, "{stderr}");
    let (resource, m) = &exports[0];
    assert!(attr(&resource.attributes, "host.name").is_some());
    assert_eq!(
        metric_value(m, "casa_events", None),
        Some(summary(&stderr, "events"))
    );
    let by_kind: i64 = ["exec", "fork", "exit", "open", "connect", "activity"]
        .iter()
        .map(|k| metric_value(m, "casa_events_by_kind", Some(("kind", k))).unwrap())
        .sum();
    assert_eq!(by_kind, summary(&stderr, "events"), "events by kind add up");
    let execs = json_lines(&out.join("events.log"))
        .iter()
        .filter(|e| e["type"] == "EXECVE")
        .count() as i64;
    assert!(
        metric_value(m, "casa_events_by_kind", Some(("kind", "exec"))).unwrap() >= execs,
        "every accepted exec was decoded"
    );
    assert_eq!(
        metric_value(m, "casa_events_accepted", None),
        Some(summary(&stderr, "accepted"))
    );
    assert_eq!(
        metric_value(m, "casa_sessions_started", None),
        Some(summary(&stderr, "sessions"))
    );
    assert_eq!(
        metric_value(m, "casa_decisions", Some(("log", "audit"))),
        Some(audit.len() as i64)
    );
    assert_eq!(
        metric_value(m, "casa_decisions", Some(("log", "alert"))),
        Some(alert.len() as i64)
    );
    assert_eq!(
        metric_value(m, "casa_otlp_export_failures", Some(("signal", "logs"))),
        Some(0)
    );
    assert!(
        rx.rejected.lock().unwrap().is_empty(),
        "requests to unknown paths"
    );
    let n = records.len();
    assert!(
        stderr.contains(&format!(
            "log records handed over {n}, exported {n}, dropped 0"
        )),
        "{stderr}"
    );

    // The same replay again: the same records and metrics (deterministic content).
    let rx2 = Receiver::start(false);
    replay("write_exec", &out, Some(&rx2.endpoint()));
    let again: Vec<_> = rx2.log_records().into_iter().map(|(_, r)| r).collect();
    let first: Vec<_> = records.into_iter().map(|(_, r)| r).collect();
    assert_eq!(again, first, "log records differ between two replays");
    assert_eq!(rx2.metric_exports()[0].1, exports[0].1, "metrics differ");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn events_are_log_records_too_when_asked() {
    let rx = Receiver::start(false);
    let out = std::env::temp_dir().join(format!("casa-otlp-events-{}", std::process::id()));
    let o = replay_with(
        "write_exec",
        &out,
        Some(&rx.endpoint()),
        &[
            ("CASA_OTEL_LOG_EVENTS", "true"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines: Vec<String> = std::fs::read_to_string(out.join("events.log"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let bodies: Vec<String> = rx
        .log_records()
        .into_iter()
        .filter(|(_, r)| attr(&r.attributes, "casa.log").as_deref() == Some("events"))
        .map(|(_, r)| match r.body.and_then(|b| b.value) {
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s,
            other => panic!("body {other:?}"),
        })
        .collect();
    assert!(!lines.is_empty());
    assert_eq!(
        bodies, lines,
        "each events.log line, byte for byte\n{stderr}"
    );
    assert!(rx.metric_exports().is_empty(), "OTEL_METRICS_EXPORTER=none");
    assert!(!stderr.contains("metric exports"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}

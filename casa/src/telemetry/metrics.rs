//! Prometheus metrics: casa's counters in the text exposition format, served on a loopback
//! address (`casa run --metrics-listen 127.0.0.1:9464`).
//!
//! A side branch at the daemon's edge: every tick `cmd/run.rs` takes a [`Snapshot`] of the
//! pipeline's and the kernel's counters, [`render`]s it (pure) into the text a scrape returns,
//! and hands it to the [`serve`] task, which answers `GET /metrics` with the last rendering.
//! Nothing here reads or changes the pipeline.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::pipeline::PipelineStats;

/// What one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub pipeline: PipelineStats,
    /// The kernel's counters by name (`casa_common::stats::NAMES`), totals over CPUs.
    pub kernel: Vec<(&'static str, u64)>,
    /// The kernel's lost records (ring full, pending state full), all kinds.
    pub kernel_lost: u64,
    pub sessions_open: usize,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// Write failures per log: events, sessions, audit, alert.
    pub log_write_failures: [u64; 4],
}

/// Errors of the metrics listener.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Metrics are served on loopback only: they describe the host's agents.
    #[error(
        "--metrics-listen {0}: metrics are served on a loopback address only (127.0.0.1 or ::1)"
    )]
    NotLoopback(SocketAddr),
    #[error("--metrics-listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One metric family: `# HELP`, `# TYPE` and its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn one(v: u64) -> Vec<(String, u64)> {
    vec![(String::new(), v)]
}

fn label(key: &str, value: &str) -> String {
    // Label values here are casa's own names (snake_case), never agent input.
    format!("{{{key}=\"{value}\"}}")
}

/// The text exposition format (version 0.0.4) of `s`.
pub fn render(s: &Snapshot) -> String {
    let p = &s.pipeline;
    let mut out = String::new();
    family(
        &mut out,
        "casa_build_info",
        "gauge",
        "casa's version (value 1).",
        &[(label("version", env!("CARGO_PKG_VERSION")), 1)],
    );
    family(
        &mut out,
        "casa_events_total",
        "counter",
        "Kernel records decoded by the pipeline.",
        &one(p.events),
    );
    family(
        &mut out,
        "casa_events_accepted_total",
        "counter",
        "Events accepted into a session's analysis.",
        &one(p.accepted),
    );
    let ignored: Vec<(String, u64)> = p
        .ignored
        .iter()
        .map(|(reason, n)| (label("reason", reason), *n))
        .collect();
    family(
        &mut out,
        "casa_events_ignored_total",
        "counter",
        "Session events kept out of analysis, by reason.",
        &ignored,
    );
    family(
        &mut out,
        "casa_events_undecodable_total",
        "counter",
        "Kernel records that did not decode (counted, never dropped silently).",
        &one(p.undecodable),
    );
    family(
        &mut out,
        "casa_kernel_lost_total",
        "counter",
        "Records the kernel could not hand over (ring buffer or pending state full).",
        &one(s.kernel_lost),
    );
    let kernel: Vec<(String, u64)> = s
        .kernel
        .iter()
        .map(|(name, n)| (label("counter", name), *n))
        .collect();
    family(
        &mut out,
        "casa_kernel_counter_total",
        "counter",
        "The kernel programs' counters, by name (losses by kind, failed reads).",
        &kernel,
    );
    family(
        &mut out,
        "casa_sessions_open",
        "gauge",
        "Agent sessions open now.",
        &one(s.sessions_open as u64),
    );
    family(
        &mut out,
        "casa_sessions_started_total",
        "counter",
        "Agent sessions started.",
        &one(p.sessions_started),
    );
    family(
        &mut out,
        "casa_sessions_closed_total",
        "counter",
        "Agent sessions closed.",
        &one(p.sessions_closed),
    );
    family(
        &mut out,
        "casa_rule_evaluations_total",
        "counter",
        "Rule evaluations (a session's context changed).",
        &one(p.rule_evaluations),
    );
    family(
        &mut out,
        "casa_decisions_total",
        "counter",
        "Records written for decisions at or above a threshold, by log.",
        &[
            (label("log", "audit"), p.audit_records),
            (label("log", "alert"), p.alert_records),
        ],
    );
    family(
        &mut out,
        "casa_rule_reloads_total",
        "counter",
        "SIGHUP reloads of the rules file, by result.",
        &[
            (label("result", "ok"), s.reloads_ok),
            (label("result", "failed"), s.reloads_failed),
        ],
    );
    let logs = ["events", "sessions", "audit", "alert"];
    let failures: Vec<(String, u64)> = logs
        .iter()
        .zip(s.log_write_failures)
        .map(|(l, n)| (label("log", l), n))
        .collect();
    family(
        &mut out,
        "casa_log_write_failures_total",
        "counter",
        "Failed writes to casa's logs, by log.",
        &failures,
    );
    family(
        &mut out,
        "casa_processes_reaped_total",
        "counter",
        "Session processes found gone without an exit event.",
        &one(p.reaped),
    );
    out
}

/// Bind `addr` (loopback only) for [`serve`].
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    if !addr.ip().is_loopback() {
        return Err(MetricsError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })
}

/// Answer scrapes on `listener` with the latest text in `page`: `GET /metrics` gets it, any
/// other request a 404. One short request per connection; runs until the daemon exits.
pub async fn serve(listener: TcpListener, page: Arc<Mutex<String>>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let page = Arc::clone(&page);
        tokio::spawn(async move {
            let mut req = [0u8; 1024];
            let mut n = 0;
            // The request line and headers: up to the blank line, at most 1 KiB.
            while n < req.len() {
                match conn.read(&mut req[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
                if req[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let metrics = req[..n].starts_with(b"GET /metrics ");
            let (status, body) = if metrics {
                let body = page.lock().map(|p| p.clone()).unwrap_or_default();
                ("200 OK", body)
            } else {
                (
                    "404 Not Found",
                    "not found: casa serves /metrics\n".to_owned(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strict reader of the exposition format: every sample line is `name{labels} value`
    /// with a family declared by `# TYPE` before it.
    fn parse(text: &str) -> Vec<(String, String, u64)> {
        let mut typed = std::collections::HashSet::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(matches!(kind, "counter" | "gauge"), "{line}");
                typed.insert(name.to_owned());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').expect("closed labels")),
                None => (series, ""),
            };
            assert!(typed.contains(name), "{name} has no TYPE");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
            samples.push((
                name.to_owned(),
                labels.to_owned(),
                value.parse().expect("u64"),
            ));
        }
        samples
    }

    #[test]
    fn the_page_is_valid_exposition_text_with_the_counters() {
        let mut s = Snapshot::default();
        s.pipeline.events = 12;
        s.pipeline.accepted = 7;
        s.pipeline.ignored.insert("runtime_loader_noise", 5);
        s.pipeline.audit_records = 2;
        s.pipeline.alert_records = 1;
        s.kernel = vec![("lost_open", 3)];
        s.kernel_lost = 3;
        s.sessions_open = 1;
        s.reloads_failed = 1;
        let samples = parse(&render(&s));
        let get = |name: &str, labels: &str| {
            samples
                .iter()
                .find(|(n, l, _)| n == name && l == labels)
                .map(|s| s.2)
        };
        assert_eq!(get("casa_events_total", ""), Some(12));
        assert_eq!(get("casa_events_accepted_total", ""), Some(7));
        assert_eq!(
            get(
                "casa_events_ignored_total",
                "reason=\"runtime_loader_noise\""
            ),
            Some(5)
        );
        assert_eq!(get("casa_decisions_total", "log=\"alert\""), Some(1));
        assert_eq!(
            get("casa_kernel_counter_total", "counter=\"lost_open\""),
            Some(3)
        );
        assert_eq!(get("casa_sessions_open", ""), Some(1));
        assert_eq!(get("casa_rule_reloads_total", "result=\"failed\""), Some(1));
    }

    #[tokio::test]
    async fn only_loopback_and_only_metrics() {
        let e = bind("0.0.0.0:0".parse().unwrap()).await.unwrap_err();
        assert!(matches!(e, MetricsError::NotLoopback(_)), "{e}");
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let page = Arc::new(Mutex::new("casa_events_total 1\n".to_owned()));
        tokio::spawn(serve(listener, page));
        let get = |path: &'static str| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut r = String::new();
            c.read_to_string(&mut r).await.unwrap();
            r
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.ends_with("casa_events_total 1\n"), "{ok}");
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
    }
}

//! Metrics: casa's counters in the Prometheus text exposition format, served on a loopback
//! address (`casa run --metrics-listen 127.0.0.1:9464`), and the same figures as OTLP metrics.
//!
//! A side branch at the daemon's edge: every tick `cmd/run.rs` takes a [`Snapshot`] of the
//! pipeline's and the kernel's counters, [`render`]s it (pure) into the text a scrape returns,
//! and hands it to the [`serve`] task, which answers `GET /metrics` with the last rendering;
//! at the OTLP metrics interval (and at the end of a replay) it exports [`otlp_request`] of
//! the same snapshot. Both are built from [`families`], the one definition of each metric's
//! name, kind and help. Nothing here reads or changes the pipeline.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest, common::v1::KeyValue,
};

use super::{
    logs::key_values,
    send::scope,
    span::{Attr, Value},
};
use crate::pipeline::{EVENT_KINDS, PipelineStats};

/// What one scrape (or one OTLP metrics export) shows.
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
    /// OTLP export failures per signal (`spans`, `logs`, `metrics`): failed requests, and
    /// items lost (dropped from a full queue or in a failed request).
    pub exports: Vec<(&'static str, ExportLoss)>,
    /// Event→log latency per log (`events`, `alert`), from `crate::latency`.
    pub latency: Vec<(&'static str, LatencyHistogram)>,
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

/// Failed OTLP exports of one signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportLoss {
    pub failed_requests: u64,
    pub lost_items: u64,
}

/// Upper bounds of the latency histograms' buckets, ns (the last bucket is `+Inf`).
pub const LATENCY_BOUNDS_NS: [u64; 14] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
];

/// A latency histogram over [`LATENCY_BOUNDS_NS`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyHistogram {
    /// Count per bucket (not cumulative): `LATENCY_BOUNDS_NS.len() + 1` entries, the last
    /// one above every bound.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_ns: f64,
}

/// How a family's values behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (Prometheus `counter`; an OTLP monotonic cumulative sum).
    Counter,
    /// Goes up and down (`gauge`).
    Gauge,
    /// Latency in seconds (`histogram`).
    Histogram,
}

/// One sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleValue {
    Int(u64),
    Histogram(LatencyHistogram),
}

/// One metric family: the single definition of each name, rendered for Prometheus
/// ([`render`]) and for OTLP ([`otlp_request`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The Prometheus name (`casa_events_total`); OTLP uses it without `_total`.
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Samples with their labels (casa's own names, snake_case, never agent input).
    pub samples: Vec<(Vec<(&'static str, String)>, SampleValue)>,
}

impl Family {
    /// The OTLP metric name: the Prometheus name without the `_total` of counters.
    pub fn otlp_name(&self) -> &'static str {
        match self.kind {
            Kind::Counter => self.name.strip_suffix("_total").unwrap_or(self.name),
            Kind::Gauge | Kind::Histogram => self.name,
        }
    }
}

fn fam(name: &'static str, kind: Kind, help: &'static str, v: u64) -> Family {
    labelled(name, kind, help, vec![(Vec::new(), v)])
}

fn labelled(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, u64)>,
) -> Family {
    Family {
        name,
        kind,
        help,
        samples: samples
            .into_iter()
            .map(|(l, v)| (l, SampleValue::Int(v)))
            .collect(),
    }
}

fn by(
    key: &'static str,
    items: impl IntoIterator<Item = (String, u64)>,
) -> Vec<(Vec<(&'static str, String)>, u64)> {
    items
        .into_iter()
        .map(|(v, n)| (vec![(key, v)], n))
        .collect()
}

/// Every family of `s`, in page order.
pub fn families(s: &Snapshot) -> Vec<Family> {
    use Kind::{Counter, Gauge};
    let p = &s.pipeline;
    let logs = ["events", "sessions", "audit", "alert"];
    vec![
        labelled(
            "casa_build_info",
            Gauge,
            "casa's version (value 1).",
            by("version", [(env!("CARGO_PKG_VERSION").to_owned(), 1)]),
        ),
        fam(
            "casa_events_total",
            Counter,
            "Kernel records decoded by the pipeline.",
            p.events,
        ),
        labelled(
            "casa_events_by_kind_total",
            Counter,
            "Kernel records decoded by the pipeline, by kind (exec, fork, exit, open, connect, activity).",
            by(
                "kind",
                EVENT_KINDS
                    .iter()
                    .zip(p.events_by_kind)
                    .map(|(k, n)| ((*k).to_owned(), n)),
            ),
        ),
        fam(
            "casa_events_accepted_total",
            Counter,
            "Events accepted into a session's analysis.",
            p.accepted,
        ),
        labelled(
            "casa_events_ignored_total",
            Counter,
            "Session events kept out of analysis, by reason.",
            by(
                "reason",
                p.ignored.iter().map(|(r, n)| ((*r).to_owned(), *n)),
            ),
        ),
        fam(
            "casa_events_undecodable_total",
            Counter,
            "Kernel records that did not decode (counted, never dropped silently).",
            p.undecodable,
        ),
        fam(
            "casa_kernel_lost_total",
            Counter,
            "Records the kernel could not hand over (ring buffer or pending state full).",
            s.kernel_lost,
        ),
        labelled(
            "casa_kernel_counter_total",
            Counter,
            "The kernel programs' counters, by name (losses by kind, failed reads).",
            by(
                "counter",
                s.kernel.iter().map(|(n, v)| ((*n).to_owned(), *v)),
            ),
        ),
        fam(
            "casa_sessions_open",
            Gauge,
            "Agent sessions open now.",
            s.sessions_open as u64,
        ),
        fam(
            "casa_sessions_started_total",
            Counter,
            "Agent sessions started.",
            p.sessions_started,
        ),
        fam(
            "casa_sessions_closed_total",
            Counter,
            "Agent sessions closed.",
            p.sessions_closed,
        ),
        fam(
            "casa_rule_evaluations_total",
            Counter,
            "Rule evaluations (a session's context changed).",
            p.rule_evaluations,
        ),
        labelled(
            "casa_decisions_total",
            Counter,
            "Records written for decisions at or above a threshold, by log.",
            by(
                "log",
                [
                    ("audit".to_owned(), p.audit_records),
                    ("alert".to_owned(), p.alert_records),
                ],
            ),
        ),
        labelled(
            "casa_rule_reloads_total",
            Counter,
            "SIGHUP reloads of the rules file, by result.",
            by(
                "result",
                [
                    ("ok".to_owned(), s.reloads_ok),
                    ("failed".to_owned(), s.reloads_failed),
                ],
            ),
        ),
        labelled(
            "casa_log_write_failures_total",
            Counter,
            "Failed writes to casa's logs, by log.",
            by(
                "log",
                logs.iter()
                    .zip(s.log_write_failures)
                    .map(|(l, n)| ((*l).to_owned(), n)),
            ),
        ),
        fam(
            "casa_processes_reaped_total",
            Counter,
            "Session processes found gone without an exit event.",
            p.reaped,
        ),
        labelled(
            "casa_otlp_export_failures_total",
            Counter,
            "Failed OTLP export requests, by signal (spans, logs, metrics).",
            by(
                "signal",
                s.exports
                    .iter()
                    .map(|(sig, l)| ((*sig).to_owned(), l.failed_requests)),
            ),
        ),
        labelled(
            "casa_otlp_items_lost_total",
            Counter,
            "Spans, log records or metric exports not delivered (queue full or request failed), by signal.",
            by(
                "signal",
                s.exports
                    .iter()
                    .map(|(sig, l)| ((*sig).to_owned(), l.lost_items)),
            ),
        ),
        Family {
            name: "casa_event_to_log_latency_seconds",
            kind: Kind::Histogram,
            help: "Time from an event in the kernel to its line in the log, by log (events, alert).",
            samples: s
                .latency
                .iter()
                .map(|(log, h)| {
                    (
                        vec![("log", (*log).to_owned())],
                        SampleValue::Histogram(h.clone()),
                    )
                })
                .collect(),
        },
    ]
}

fn prom_labels(labels: &[(&str, String)], extra: Option<(&str, &str)>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .chain(extra.map(|(k, v)| format!("{k}=\"{v}\"")))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Seconds as Prometheus prints a bucket bound.
fn seconds(ns: u64) -> String {
    format!("{}", ns as f64 / 1e9)
}

/// The text exposition format (version 0.0.4) of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    for f in families(s) {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for (labels, v) in &f.samples {
            match v {
                SampleValue::Int(n) => {
                    let _ = writeln!(out, "{}{} {n}", f.name, prom_labels(labels, None));
                }
                SampleValue::Histogram(h) => {
                    let mut cum = 0;
                    for (i, n) in h.buckets.iter().enumerate() {
                        cum += n;
                        let le = LATENCY_BOUNDS_NS
                            .get(i)
                            .map_or_else(|| "+Inf".to_owned(), |&b| seconds(b));
                        let _ = writeln!(
                            out,
                            "{}_bucket{} {cum}",
                            f.name,
                            prom_labels(labels, Some(("le", &le)))
                        );
                    }
                    let l = prom_labels(labels, None);
                    let _ = writeln!(out, "{}_sum{l} {}", f.name, h.sum_ns / 1e9);
                    let _ = writeln!(out, "{}_count{l} {}", f.name, h.count);
                }
            }
        }
    }
    out
}

/// The families of `s` as one OTLP metrics request (the resource is filled in by the
/// sender): counters as monotonic cumulative sums since `start_unix_ns`, gauges, and the
/// latency histograms (seconds), all at `time_unix_ns`.
pub fn otlp_request(
    s: &Snapshot,
    start_unix_ns: u64,
    time_unix_ns: u64,
) -> ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::metrics::v1::{
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
    };
    let attrs = |labels: &[(&'static str, String)]| -> Vec<KeyValue> {
        let a: Vec<Attr> = labels
            .iter()
            .map(|(k, v)| (*k, Value::Str(v.clone())))
            .collect();
        key_values(&a)
    };
    let number = |labels: &[(&'static str, String)], v: u64| NumberDataPoint {
        attributes: attrs(labels),
        start_time_unix_nano: start_unix_ns,
        time_unix_nano: time_unix_ns,
        value: Some(number_data_point::Value::AsInt(v as i64)),
        ..Default::default()
    };
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = families(s)
        .into_iter()
        .map(|f| {
            let ints = || {
                f.samples
                    .iter()
                    .filter_map(|(l, v)| match v {
                        SampleValue::Int(n) => Some(number(l, *n)),
                        SampleValue::Histogram(_) => None,
                    })
                    .collect()
            };
            let data = match f.kind {
                Kind::Counter => Data::Sum(Sum {
                    data_points: ints(),
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                }),
                Kind::Gauge => Data::Gauge(Gauge {
                    data_points: ints(),
                }),
                Kind::Histogram => Data::Histogram(Histogram {
                    data_points: f
                        .samples
                        .iter()
                        .filter_map(|(l, v)| match v {
                            SampleValue::Histogram(h) => Some(HistogramDataPoint {
                                attributes: attrs(l),
                                start_time_unix_nano: start_unix_ns,
                                time_unix_nano: time_unix_ns,
                                count: h.count,
                                sum: Some(h.sum_ns / 1e9),
                                bucket_counts: h.buckets.clone(),
                                explicit_bounds: LATENCY_BOUNDS_NS
                                    .iter()
                                    .map(|&b| b as f64 / 1e9)
                                    .collect(),
                                ..Default::default()
                            }),
                            SampleValue::Int(_) => None,
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                }),
            };
            Metric {
                name: f.otlp_name().to_owned(),
                description: f.help.to_owned(),
                unit: if f.kind == Kind::Histogram { "s" } else { "1" }.to_owned(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
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
    /// Histogram samples (`_bucket`, `_sum`, `_count`) belong to their histogram's family;
    /// their values are read as f64 and returned truncated.
    fn parse(text: &str) -> Vec<(String, String, u64)> {
        let mut typed = std::collections::HashMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(matches!(kind, "counter" | "gauge" | "histogram"), "{line}");
                typed.insert(name.to_owned(), kind.to_owned());
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
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"));
            if family.is_some() {
                let v: f64 = value.parse().expect("f64");
                assert!(v >= 0.0, "{line}");
                assert!(
                    !name.ends_with("_bucket") || labels.contains("le=\""),
                    "{line}"
                );
                samples.push((name.to_owned(), labels.to_owned(), v as u64));
                continue;
            }
            assert!(typed.contains_key(name), "{name} has no TYPE");
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
        s.pipeline.events_by_kind[3] = 9;
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
        assert_eq!(get("casa_events_by_kind_total", "kind=\"open\""), Some(9));
        assert_eq!(get("casa_events_by_kind_total", "kind=\"exec\""), Some(0));
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

    fn histogram() -> LatencyHistogram {
        let mut buckets = vec![0; LATENCY_BOUNDS_NS.len() + 1];
        buckets[0] = 2; // <= 100 us
        buckets[3] = 1; // <= 1 ms
        buckets[LATENCY_BOUNDS_NS.len()] = 1; // above 5 s
        LatencyHistogram {
            buckets,
            count: 4,
            sum_ns: 6_001_150_000.0,
        }
    }

    #[test]
    fn latency_is_a_cumulative_histogram_and_export_losses_are_counted() {
        let s = Snapshot {
            latency: vec![("alert", histogram())],
            exports: vec![(
                "logs",
                ExportLoss {
                    failed_requests: 2,
                    lost_items: 7,
                },
            )],
            ..Snapshot::default()
        };
        let text = render(&s);
        let samples = parse(&text);
        let get = |name: &str, labels: &str| {
            samples
                .iter()
                .find(|(n, l, _)| n == name && l == labels)
                .map(|s| s.2)
        };
        let h = "casa_event_to_log_latency_seconds";
        assert_eq!(
            get(&format!("{h}_bucket"), "log=\"alert\",le=\"0.0001\""),
            Some(2)
        );
        assert_eq!(
            get(&format!("{h}_bucket"), "log=\"alert\",le=\"0.001\""),
            Some(3),
            "cumulative"
        );
        assert_eq!(
            get(&format!("{h}_bucket"), "log=\"alert\",le=\"+Inf\""),
            Some(4)
        );
        assert_eq!(get(&format!("{h}_count"), "log=\"alert\""), Some(4));
        assert_eq!(get(&format!("{h}_sum"), "log=\"alert\""), Some(6));
        assert_eq!(
            get("casa_otlp_export_failures_total", "signal=\"logs\""),
            Some(2)
        );
        assert_eq!(
            get("casa_otlp_items_lost_total", "signal=\"logs\""),
            Some(7)
        );
    }

    #[test]
    fn otlp_metrics_are_the_same_families_under_the_same_names() {
        use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
        let mut s = Snapshot::default();
        s.pipeline.events = 12;
        s.pipeline.alert_records = 1;
        s.sessions_open = 3;
        s.latency = vec![("events", histogram())];
        let req = otlp_request(&s, 5, 9);
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let fams = families(&s);
        assert_eq!(metrics.len(), fams.len(), "one metric per family");
        for (m, f) in metrics.iter().zip(&fams) {
            assert_eq!(m.name, f.otlp_name());
        }
        let find = |name: &str| metrics.iter().find(|m| m.name == name).unwrap();
        let Some(Data::Sum(sum)) = &find("casa_events").data else {
            panic!("casa_events is a sum")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(12))
        );
        assert_eq!(
            (
                sum.data_points[0].start_time_unix_nano,
                sum.data_points[0].time_unix_nano
            ),
            (5, 9)
        );
        let Some(Data::Sum(decisions)) = &find("casa_decisions").data else {
            panic!("casa_decisions is a sum")
        };
        let alert = decisions
            .data_points
            .iter()
            .find(|p| {
                p.attributes[0].value.as_ref().unwrap().value
                    == Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            "alert".into(),
                        ),
                    )
            })
            .unwrap();
        assert_eq!(alert.value, Some(number_data_point::Value::AsInt(1)));
        let Some(Data::Gauge(open)) = &find("casa_sessions_open").data else {
            panic!("casa_sessions_open is a gauge")
        };
        assert_eq!(
            open.data_points[0].value,
            Some(number_data_point::Value::AsInt(3))
        );
        let Some(Data::Histogram(h)) = &find("casa_event_to_log_latency_seconds").data else {
            panic!("latency is a histogram")
        };
        let p = &h.data_points[0];
        assert_eq!(p.count, 4);
        assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 4);
        assert_eq!(p.explicit_bounds[0], 0.0001);
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

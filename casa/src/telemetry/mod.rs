//! OpenTelemetry: one span per session, the audit/alert records as log records and casa's
//! counters as metrics, exported over OTLP/HTTP to Jaeger or any collector.
//!
//! A side branch of the pipeline's last stage: while a session is open the pipeline folds its
//! story into a [`span::SpanBuilder`]; at close it hands the finished span to a
//! [`span::SpanSink`] — [`export::OtlpSpans`] in production. Each audit/alert record (and,
//! when asked, each `events.log` record) goes to a [`logs::LogRecordSink`] as it is written —
//! [`logs::OtlpLogs`] in production, which turns it into an OTLP log record ([`logs::log_record`],
//! pure) carrying the session's trace id. The daemon's edge exports the same [`metrics::Snapshot`]
//! that the Prometheus page renders as OTLP metrics ([`metrics::otlp_request`]). Logs and
//! metrics travel through [`send::Sender`] (a bounded queue and one thread POSTing protobuf).
//! Telemetry is off when no endpoint is configured.

pub mod export;
pub mod logs;
pub mod metrics;
pub mod send;
pub mod span;

use std::time::Duration;

use crate::settings::Env;

/// Where and how to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// Full OTLP/HTTP traces URL (`http://host:4318/v1/traces`); `None` = telemetry off.
    pub endpoint: Option<String>,
    pub service_name: String,
    /// Plain HTTP allowed (`CASA_OTEL_EXPORTER_OTLP_INSECURE`, default true).
    pub insecure: bool,
    /// Per-export timeout.
    pub timeout: Duration,
    /// Spans waiting for export at most (more are dropped and counted).
    pub queue: usize,
    /// Full OTLP/HTTP logs URL (`http://host:4318/v1/logs`); `None` = no log records.
    pub logs_endpoint: Option<String>,
    /// Full OTLP/HTTP metrics URL (`http://host:4318/v1/metrics`); `None` = no OTLP metrics.
    pub metrics_endpoint: Option<String>,
    /// Every `events.log` record as a log record too (`CASA_OTEL_LOG_EVENTS`, default false).
    pub log_events: bool,
    /// How often `casa run` exports metrics (`OTEL_METRIC_EXPORT_INTERVAL`, ms; default 60 s).
    pub metrics_interval: Duration,
    /// Resource attributes identifying the host, besides `service.name` and
    /// `service.version`: `host.name`, `host.id` (set by the command: the live host, or a
    /// recording's host name).
    pub host: Vec<(&'static str, String)>,
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL: the traces path is appended.
fn with_traces_path(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// `http://` in front of a bare `host:port`.
fn with_scheme(v: &str) -> String {
    if v.starts_with("http://") || v.starts_with("https://") {
        v.to_owned()
    } else {
        format!("http://{v}")
    }
}

/// The base URL of casa's own endpoint variable (a traces URL): without its `/v1/traces`
/// path, or, for another path, the scheme and authority alone.
fn base_of_traces_url(v: &str) -> String {
    let v = with_scheme(v.trim_end_matches('/'));
    if let Some(base) = v.strip_suffix("/v1/traces") {
        return base.to_owned();
    }
    let after_scheme = v.find("://").map_or(0, |i| i + 3);
    match v[after_scheme..].find('/') {
        Some(i) => v[..after_scheme + i].to_owned(),
        None => v,
    }
}

impl TelemetryConfig {
    /// From the environment (and `.env`): `CASA_OTEL_EXPORTER_OTLP_ENDPOINT`, then
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (both used as the full traces URL; a bare
    /// `host:port` gets `http://` and `/v1/traces`), then `OTEL_EXPORTER_OTLP_ENDPOINT` (a base
    /// URL, `/v1/traces` appended).
    pub fn from_env(env: &Env) -> Self {
        let full = |v: &str| {
            if v.starts_with("http://") || v.starts_with("https://") {
                v.to_owned()
            } else {
                format!("http://{}/v1/traces", v.trim_end_matches('/'))
            }
        };
        let endpoint = env
            .first(&["CASA_OTEL_EXPORTER_OTLP_ENDPOINT"])
            .map(full)
            .or_else(|| env.first(&["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]).map(full))
            .or_else(|| {
                env.first(&["OTEL_EXPORTER_OTLP_ENDPOINT"]).map(|v| {
                    if v.starts_with("http://") || v.starts_with("https://") {
                        with_traces_path(v)
                    } else {
                        with_traces_path(&format!("http://{v}"))
                    }
                })
            });
        // Logs and metrics: their own variable (a full URL), else the base of casa's
        // endpoint, else OTEL_EXPORTER_OTLP_ENDPOINT, with the signal's path appended;
        // `OTEL_<SIGNAL>_EXPORTER=none` turns the signal off.
        let signal = |var: &str, off_var: &str, path: &str| -> Option<String> {
            if env
                .first(&[off_var])
                .is_some_and(|v| v.eq_ignore_ascii_case("none"))
            {
                return None;
            }
            let bare = |v: &str| {
                if v.starts_with("http://") || v.starts_with("https://") {
                    v.to_owned()
                } else {
                    format!("http://{}{path}", v.trim_end_matches('/'))
                }
            };
            env.first(&[var]).map(bare).or_else(|| {
                env.first(&["CASA_OTEL_EXPORTER_OTLP_ENDPOINT"])
                    .map(base_of_traces_url)
                    .or_else(|| {
                        env.first(&["OTEL_EXPORTER_OTLP_ENDPOINT"])
                            .map(|v| with_scheme(v.trim_end_matches('/')))
                    })
                    .map(|base| format!("{base}{path}"))
            })
        };
        let logs_endpoint = signal(
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "OTEL_LOGS_EXPORTER",
            "/v1/logs",
        );
        let metrics_endpoint = signal(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "OTEL_METRICS_EXPORTER",
            "/v1/metrics",
        );
        let metrics_interval = env
            .first(&["OTEL_METRIC_EXPORT_INTERVAL"])
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map_or(Duration::from_secs(60), Duration::from_millis);
        let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "1" | "t" | "true");
        let insecure = env
            .first(&[
                "CASA_OTEL_EXPORTER_OTLP_INSECURE",
                "OTEL_EXPORTER_OTLP_INSECURE",
            ])
            .is_none_or(truthy);
        Self {
            endpoint,
            service_name: env
                .first(&["CASA_OTEL_SERVICE_NAME", "OTEL_SERVICE_NAME"])
                .unwrap_or("casa")
                .to_owned(),
            insecure,
            timeout: Duration::from_secs(3),
            queue: 2048,
            logs_endpoint,
            metrics_endpoint,
            log_events: env.first(&["CASA_OTEL_LOG_EVENTS"]).is_some_and(truthy),
            metrics_interval,
            host: Vec::new(),
        }
    }

    /// Whether anything is exported at all.
    pub fn any(&self) -> bool {
        self.endpoint.is_some() || self.logs_endpoint.is_some() || self.metrics_endpoint.is_some()
    }

    /// The resource of every export: `service.name`, `service.version`, then [`Self::host`].
    pub fn resource(&self) -> Vec<(&'static str, String)> {
        let mut r = vec![
            ("service.name", self.service_name.clone()),
            ("service.version", env!("CARGO_PKG_VERSION").to_owned()),
        ];
        r.extend(self.host.iter().cloned());
        r
    }

    /// A problem with the configuration, if any (e.g. plain HTTP while insecure is off).
    pub fn problem(&self) -> Option<String> {
        [&self.endpoint, &self.logs_endpoint, &self.metrics_endpoint]
            .into_iter()
            .flatten()
            .find_map(|e| {
                if e.starts_with("http://") && !self.insecure {
                    Some(format!(
                        "OTLP endpoint {e} is plain HTTP but CASA_OTEL_EXPORTER_OTLP_INSECURE is false"
                    ))
                } else if e.starts_with("https://") {
                    Some(format!(
                        "OTLP endpoint {e}: this build exports over plain HTTP only (use an http:// collector on the host)"
                    ))
                } else {
                    None
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> TelemetryConfig {
        TelemetryConfig::from_env(&Env::from_parts(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
            Vec::new(),
        ))
    }

    #[test]
    fn endpoint_precedence_and_path_rules() {
        assert_eq!(cfg(&[]).endpoint, None);
        assert_eq!(
            cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4318/")])
                .endpoint
                .as_deref(),
            Some("http://h:4318/v1/traces")
        );
        assert_eq!(
            cfg(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://h:4318/custom")])
                .endpoint
                .as_deref(),
            Some("http://h:4318/custom")
        );
        assert_eq!(
            cfg(&[
                ("CASA_OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:1")
            ])
            .endpoint
            .as_deref(),
            Some("http://localhost:4318/v1/traces")
        );
        assert_eq!(cfg(&[]).service_name, "casa");
        assert_eq!(cfg(&[("OTEL_SERVICE_NAME", "x")]).service_name, "x");
        let c = cfg(&[
            ("CASA_OTEL_EXPORTER_OTLP_ENDPOINT", "http://h/v1/traces"),
            ("CASA_OTEL_EXPORTER_OTLP_INSECURE", "false"),
        ]);
        assert!(c.problem().is_some());
    }

    #[test]
    fn logs_and_metrics_share_the_base_endpoint_unless_told_otherwise() {
        let c = cfg(&[(
            "CASA_OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://h:4318/v1/traces",
        )]);
        assert_eq!(c.logs_endpoint.as_deref(), Some("http://h:4318/v1/logs"));
        assert_eq!(
            c.metrics_endpoint.as_deref(),
            Some("http://h:4318/v1/metrics")
        );
        let c = cfg(&[("CASA_OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]);
        assert_eq!(
            c.logs_endpoint.as_deref(),
            Some("http://localhost:4318/v1/logs")
        );
        let c = cfg(&[(
            "CASA_OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://h:1/custom/traces",
        )]);
        assert_eq!(c.logs_endpoint.as_deref(), Some("http://h:1/v1/logs"));
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:4318/"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:9/in"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
            ("CASA_OTEL_LOG_EVENTS", "true"),
        ]);
        assert_eq!(c.endpoint.as_deref(), Some("http://b:4318/v1/traces"));
        assert_eq!(c.logs_endpoint.as_deref(), Some("http://l:9/in"));
        assert_eq!(c.metrics_endpoint, None);
        assert_eq!(c.metrics_interval, Duration::from_secs(5));
        assert!(c.log_events);
        let off = cfg(&[]);
        assert!(!off.any() && !off.log_events);
        assert_eq!(off.metrics_interval, Duration::from_secs(60));
        let c = cfg(&[(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "https://m/v1/metrics",
        )]);
        assert!(c.problem().is_some(), "https metrics endpoint refused");
    }
}

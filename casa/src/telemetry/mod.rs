//! OpenTelemetry: one span per session, exported over OTLP/HTTP to Jaeger or any collector.
//!
//! A side branch of the pipeline's last stage: while a session is open the pipeline folds its
//! story into a [`span::SpanBuilder`]; at close it hands the finished span to a
//! [`span::SpanSink`] — [`export::OtlpSpans`] in production. Telemetry is off when no endpoint
//! is configured.

pub mod export;
pub mod metrics;
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
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL: the traces path is appended.
fn with_traces_path(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
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
        let insecure = env
            .first(&[
                "CASA_OTEL_EXPORTER_OTLP_INSECURE",
                "OTEL_EXPORTER_OTLP_INSECURE",
            ])
            .is_none_or(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "t" | "true"));
        Self {
            endpoint,
            service_name: env
                .first(&["CASA_OTEL_SERVICE_NAME", "OTEL_SERVICE_NAME"])
                .unwrap_or("casa")
                .to_owned(),
            insecure,
            timeout: Duration::from_secs(3),
            queue: 2048,
        }
    }

    /// A problem with the configuration, if any (e.g. plain HTTP while insecure is off).
    pub fn problem(&self) -> Option<String> {
        match &self.endpoint {
            Some(e) if e.starts_with("http://") && !self.insecure => Some(format!(
                "OTLP endpoint {e} is plain HTTP but CASA_OTEL_EXPORTER_OTLP_INSECURE is false"
            )),
            Some(e) if e.starts_with("https://") => Some(format!(
                "OTLP endpoint {e}: this build exports over plain HTTP only (use an http:// collector on the host)"
            )),
            _ => None,
        }
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
}

//! Assembling a pipeline from its configuration: the rules file, the agent profiles, the
//! filter policy with its configured endpoints, and the OTLP exporters (spans, log records,
//! metrics).
//!
//! Sits before [`crate::pipeline`]: `casa run` and `casa replay` (and the tests) build their
//! pipeline here, so the two read the same configuration the same way. The command layer
//! (`cmd/`) only parses arguments and owns signals and I/O edges.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use crate::{
    cli::PipelineArgs,
    filter::{Endpoints, FilterPolicy},
    pipeline::Pipeline,
    pipeline::PipelineOptions,
    rules::{RuleSet, RulesError},
    session::AgentProfile,
    settings::Env,
    sink::{FileSinks, LogPaths, ocsf::OcsfConfig},
    telemetry::{
        TelemetryConfig,
        export::{ExportStats, OtlpSpans},
        logs::OtlpLogs,
        metrics,
        send::{Sender, SenderConfig},
    },
};

/// Default rules file (relative to the working directory, as `make run` starts casa).
pub const DEFAULT_RULES: &str = "rules.json";

/// The four logs' paths: each flag, else its environment variable (CASA's names), else
/// `logs/<name>.log`. `casa run` writes there and the session tools read there.
pub fn log_paths(
    env: &Env,
    events: Option<PathBuf>,
    sessions: Option<PathBuf>,
    audit: Option<PathBuf>,
    alert: Option<PathBuf>,
) -> LogPaths {
    LogPaths {
        events: env.path(
            events,
            &["CASA_EVENTS_LOG_PATH", "CASA_EVENTS_LOG"],
            "logs/events.log",
        ),
        sessions: env.path(
            sessions,
            &["CASA_SESSIONS_LOG_PATH", "CASA_SESSIONS_LOG"],
            "logs/sessions.log",
        ),
        audit: env.path(audit, &["CASA_AUDIT_LOG_PATH"], "logs/audit.log"),
        alert: env.path(alert, &["CASA_ALERT_LOG_PATH"], "logs/alert.log"),
    }
}

/// Why a pipeline could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The rules file is unreadable or invalid (the error carries file, line and column).
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The agent profiles file cannot be read.
    #[error("reading {path}: {source}")]
    ProfilesUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The agent profiles file is not a list of profiles, or a pattern in it is invalid.
    #[error("{path}: {problem}")]
    ProfilesInvalid { path: PathBuf, problem: String },
    /// A built-in profile's pattern does not compile (a bug).
    #[error("built-in agent profile: {0}")]
    BuiltinProfile(String),
    /// The OTLP exporter cannot be set up.
    #[error("initialize telemetry: {0}")]
    Telemetry(String),
}

/// Everything the pipeline needs besides its sink and clock.
pub struct PipelineConfig {
    pub rules: RuleSet,
    pub rules_path: PathBuf,
    pub options: PipelineOptions,
}

impl PipelineConfig {
    /// Load rules and agent profiles from the CLI, the environment and `.env`.
    pub fn load(args: &PipelineArgs, env: &Env) -> Result<Self, AssembleError> {
        let rules_path = env.path(args.rules.clone(), &["CASA_RULES_PATH"], DEFAULT_RULES);
        let rules = RuleSet::load(&rules_path)?;
        for w in rules.warnings() {
            tracing::warn!("{w}");
        }
        let profiles = match &args.agents {
            Some(p) => load_profiles(p)?,
            None => vec![AgentProfile::openclaw()],
        };
        for p in &profiles {
            p.patterns().map_err(|e| match &args.agents {
                Some(path) => AssembleError::ProfilesInvalid {
                    path: path.clone(),
                    problem: e.to_string(),
                },
                None => AssembleError::BuiltinProfile(e.to_string()),
            })?;
        }
        Ok(Self {
            rules,
            rules_path,
            options: PipelineOptions {
                profiles,
                debug_eval: args.debug_eval || env.flag("CASA_DEBUG_EVAL"),
                redact: !args.no_redact,
                enforce: args.enforce || env.flag("CASA_ENFORCE"),
                ..Default::default()
            },
        })
    }
}

/// The four logs' files, and the OCSF file when `--ocsf-log` names one; `hostname` is the
/// monitored host's (the live host, or the recording's), the agent is named by the profiles.
pub fn open_sinks(
    paths: &LogPaths,
    args: &PipelineArgs,
    options: &PipelineOptions,
    hostname: &str,
) -> std::io::Result<FileSinks> {
    let sinks = FileSinks::open(paths)?;
    let Some(path) = &args.ocsf_log else {
        return Ok(sinks);
    };
    let agent = options
        .profiles
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join("+");
    let cfg = OcsfConfig {
        hostname: hostname.trim().to_owned(),
        agent: if agent.is_empty() {
            "unknown".into()
        } else {
            agent
        },
    };
    // The error names the path already.
    sinks
        .with_ocsf(path, cfg)
        .map_err(|e| std::io::Error::new(e.kind(), format!("OCSF log: {e}")))
}

fn load_profiles(path: &Path) -> Result<Vec<AgentProfile>, AssembleError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| AssembleError::ProfilesUnreadable {
            path: path.to_owned(),
            source,
        })?;
    serde_json::from_str(&text).map_err(|e| AssembleError::ProfilesInvalid {
        path: path.to_owned(),
        problem: format!("not a list of agent profiles: {e}"),
    })
}

/// The OTLP exporters configured in the environment (`telemetry`): the span exporter and the
/// sender of log records and metrics, each `None` when its endpoint is not configured.
pub struct Telemetry {
    pub config: TelemetryConfig,
    /// Until [`Telemetry::install`] hands it to the pipeline.
    pub spans: Option<OtlpSpans>,
    /// The span exporter's counters (kept after `install`).
    pub span_stats: Option<Arc<ExportStats>>,
    pub sender: Option<Sender>,
}

impl Telemetry {
    /// Hand the pipeline its span and log-record sinks.
    pub fn install<S: crate::sink::LogSink>(&mut self, mut p: Pipeline<S>) -> Pipeline<S> {
        if let Some(spans) = self.spans.take() {
            p = p.with_spans(Box::new(spans));
        }
        if let Some(sender) = self.sender.as_ref().filter(|s| s.has_logs()) {
            p = p.with_logs(Box::new(OtlpLogs::new(
                sender.clone(),
                self.config.log_events,
            )));
        }
        p
    }

    /// Failed exports and lost items per signal, for the metrics.
    pub fn losses(&self) -> Vec<(&'static str, metrics::ExportLoss)> {
        let mut out = Vec::new();
        if let Some(st) = &self.span_stats {
            out.push((
                "spans",
                metrics::ExportLoss {
                    failed_requests: st.export_failures.load(Ordering::Relaxed),
                    lost_items: st.spans_failed.load(Ordering::Relaxed),
                },
            ));
        }
        if let Some(sender) = &self.sender {
            for (signal, on, st) in [
                ("logs", sender.has_logs(), sender.log_stats()),
                ("metrics", sender.has_metrics(), sender.metric_stats()),
            ] {
                if on {
                    let (failed_requests, lost_items) = st.lost();
                    out.push((
                        signal,
                        metrics::ExportLoss {
                            failed_requests,
                            lost_items,
                        },
                    ));
                }
            }
        }
        out
    }

    /// One line per configured signal for the reports (`spans handed over …`, `log records
    /// handed over …`, `metric exports handed over …`).
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self.span_stats.iter().map(|s| s.describe()).collect();
        if let Some(sender) = &self.sender {
            if sender.has_logs() {
                out.push(sender.log_stats().describe("log records"));
            }
            if sender.has_metrics() {
                out.push(sender.metric_stats().describe("metric exports"));
            }
        }
        out
    }

    /// Wait (blocking, at most `limit`) until the log records and metrics queued so far are
    /// sent, then stop the sender's thread.
    pub fn finish(&self, limit: std::time::Duration) {
        if let Some(sender) = &self.sender {
            if !sender.flush(limit) {
                tracing::warn!(
                    "telemetry: log records and metrics not all exported within {limit:?}"
                );
            }
            sender.close();
        }
    }

    /// Queue one metrics export of `snapshot` (a no-op without a metrics endpoint).
    pub fn export_metrics(
        &self,
        snapshot: &metrics::Snapshot,
        start_unix_ns: u64,
        now_unix_ns: u64,
    ) {
        if let Some(sender) = self.sender.as_ref().filter(|s| s.has_metrics()) {
            sender.metrics(metrics::otlp_request(snapshot, start_unix_ns, now_unix_ns));
        }
    }
}

/// The OTLP exporters, when any endpoint is configured; `host`: the resource attributes
/// naming the monitored host (`host.name`, `host.id`). Blocking: call outside the async
/// runtime.
pub fn telemetry(env: &Env, host: Vec<(&'static str, String)>) -> Result<Telemetry, AssembleError> {
    let mut config = TelemetryConfig::from_env(env);
    config.host = host;
    if !config.any() {
        return Ok(Telemetry {
            config,
            spans: None,
            span_stats: None,
            sender: None,
        });
    }
    if let Some(p) = config.problem() {
        return Err(AssembleError::Telemetry(p));
    }
    let spans = match &config.endpoint {
        Some(e) => {
            let spans = OtlpSpans::new(&config).map_err(AssembleError::Telemetry)?;
            tracing::info!(
                "telemetry on: one span per session to {e} (service {})",
                config.service_name
            );
            Some(spans)
        }
        None => None,
    };
    let sender = if config.logs_endpoint.is_some() || config.metrics_endpoint.is_some() {
        let sender = Sender::new(SenderConfig {
            logs: config.logs_endpoint.clone(),
            metrics: config.metrics_endpoint.clone(),
            resource: config.resource(),
            timeout: config.timeout,
            capacity: config.queue,
        })
        .map_err(|e| AssembleError::Telemetry(e.to_string()))?;
        for (what, e) in [
            ("log records", &config.logs_endpoint),
            ("metrics", &config.metrics_endpoint),
        ] {
            if let Some(e) = e {
                tracing::info!("telemetry on: {what} to {e}");
            }
        }
        Some(sender)
    } else {
        None
    };
    Ok(Telemetry {
        config,
        span_stats: spans.as_ref().map(|s| Arc::clone(&s.stats)),
        spans,
        sender,
    })
}

/// `host.name` and, when known, `host.id` (`/etc/machine-id`) of the machine casa runs on.
pub fn live_host(hostname: &str) -> Vec<(&'static str, String)> {
    let mut host = vec![("host.name", hostname.trim().to_owned())];
    if let Ok(id) = std::fs::read_to_string("/etc/machine-id")
        && !id.trim().is_empty()
    {
        host.push(("host.id", id.trim().to_owned()));
    }
    host
}

/// The configured endpoints of a rule set: LLM-provider and channel URLs, and known CIDRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointConfig {
    pub urls: Vec<String>,
    pub cidrs: Vec<(IpAddr, u8)>,
}

impl EndpointConfig {
    pub fn of(rules: &RuleSet) -> Self {
        let f = rules.filters();
        Self {
            urls: f
                .llm_provider_urls
                .iter()
                .chain(&f.channel_urls)
                .cloned()
                .collect(),
            cidrs: f.known_cidrs.clone(),
        }
    }

    /// Resolve every URL (blocking DNS, each URL on its own). Returns the problems with
    /// individual URLs beside the endpoints that did resolve.
    pub fn resolve(&self) -> (Endpoints, Vec<String>) {
        Endpoints::resolve(&self.urls, &self.cidrs)
    }
}

/// The filter policy of a rule set, with configured endpoints taken from literal IPs and
/// CIDRs only (no DNS: replay must not depend on the network).
pub fn policy_offline(rules: &RuleSet) -> FilterPolicy {
    let f = rules.filters();
    let e = EndpointConfig::of(rules);
    FilterPolicy {
        allowed_loopback_ports: f.allowed_loopback_ports.iter().copied().collect(),
        ignored_connect_ips: f.ignored_connect_ips.iter().copied().collect(),
        endpoints: Endpoints::offline(&e.urls, &e.cidrs),
    }
}

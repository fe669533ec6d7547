//! Assembling a pipeline from its configuration: the rules file, the agent profiles, the
//! filter policy with its configured endpoints, and the OTLP span exporter.
//!
//! Sits before [`crate::pipeline`]: `casa run` and `casa replay` (and the tests) build their
//! pipeline here, so the two read the same configuration the same way. The command layer
//! (`cmd/`) only parses arguments and owns signals and I/O edges.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use crate::{
    cli::PipelineArgs,
    filter::{Endpoints, FilterPolicy},
    pipeline::PipelineOptions,
    rules::{RuleSet, RulesError},
    session::AgentProfile,
    settings::Env,
    sink::{FileSinks, LogPaths, ocsf::OcsfConfig},
    telemetry::{TelemetryConfig, export::OtlpSpans},
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

/// The OTLP exporter, when an endpoint is configured (`None`: telemetry off). Blocking: call
/// outside the async runtime.
pub fn span_exporter(env: &Env) -> Result<Option<OtlpSpans>, AssembleError> {
    let cfg = TelemetryConfig::from_env(env);
    if cfg.endpoint.is_none() {
        return Ok(None);
    }
    if let Some(p) = cfg.problem() {
        return Err(AssembleError::Telemetry(p));
    }
    let spans = OtlpSpans::new(&cfg).map_err(AssembleError::Telemetry)?;
    tracing::info!(
        "telemetry on: one span per session to {} (service {})",
        cfg.endpoint.as_deref().unwrap_or_default(),
        cfg.service_name
    );
    Ok(Some(spans))
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

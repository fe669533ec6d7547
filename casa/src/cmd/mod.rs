//! The commands behind the CLI: the async edges of casa (signals, files, the sensor's ring).
//! Each command wires library stages together; none holds pipeline logic of its own.

mod dump;
mod record;
mod replay;
mod rules;
mod run;
pub mod verify;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::{
    cli::{Cli, Command, SensorArgs},
    clock::BootClock,
    recording::Meta,
    sensor::SensorOptions,
};

/// Set up console logging on stderr (`RUST_LOG` filters; default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Dump(args) => dump::dump(&args),
        Command::Record(args) => runtime()?.block_on(record::record(args)),
        Command::Run(args) => runtime()?.block_on(run::run(args)),
        Command::Replay(args) => replay::replay(&args),
        Command::Rules(cmd) => rules::rules(&cmd),
        Command::VerifyLog(args) => verify::verify_log(&args),
    }
}

/// Default rules file (relative to the working directory, as `make run` starts casa).
pub const DEFAULT_RULES: &str = "rules.json";

/// Everything the pipeline needs besides its sink and clock.
pub struct PipelineConfig {
    pub rules: crate::rules::RuleSet,
    pub rules_path: std::path::PathBuf,
    pub options: crate::pipeline::PipelineOptions,
}

/// Load rules and agent profiles from the CLI, environment and `.env`.
pub fn load_pipeline_config(args: &crate::cli::PipelineArgs) -> anyhow::Result<PipelineConfig> {
    let env = crate::settings::Env::load();
    let rules_path = env.path(args.rules.clone(), &["CASA_RULES_PATH"], DEFAULT_RULES);
    let rules = crate::rules::RuleSet::load(&rules_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    for w in rules.warnings() {
        tracing::warn!("{w}");
    }
    let profiles = match &args.agents {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a list of agent profiles", p.display()))?
        }
        None => vec![crate::session::AgentProfile::openclaw()],
    };
    let profiles: Vec<crate::session::AgentProfile> = profiles;
    for p in &profiles {
        p.patterns().map_err(|e| match &args.agents {
            Some(file) => anyhow::anyhow!("{}: {e}", file.display()),
            None => anyhow::anyhow!("{e}"),
        })?;
    }
    Ok(PipelineConfig {
        rules,
        rules_path,
        options: crate::pipeline::PipelineOptions {
            profiles,
            debug_eval: args.debug_eval || env.flag("CASA_DEBUG_EVAL"),
            redact: !args.no_redact,
            ..Default::default()
        },
    })
}

/// The OTLP exporter, when an endpoint is configured (`None`: telemetry off). Blocking: call
/// outside the async runtime.
pub fn span_exporter(
    env: &crate::settings::Env,
) -> anyhow::Result<Option<crate::telemetry::export::OtlpSpans>> {
    let cfg = crate::telemetry::TelemetryConfig::from_env(env);
    if cfg.endpoint.is_none() {
        return Ok(None);
    }
    if let Some(p) = cfg.problem() {
        anyhow::bail!("initialize telemetry: {p}");
    }
    let spans = crate::telemetry::export::OtlpSpans::new(&cfg)
        .map_err(|e| anyhow::anyhow!("initialize telemetry: {e}"))?;
    tracing::info!(
        "telemetry on: one span per session to {} (service {})",
        cfg.endpoint.as_deref().unwrap_or_default(),
        cfg.service_name
    );
    Ok(Some(spans))
}

/// The configured LLM-provider and channel URLs of a rule set, and its known CIDRs.
pub fn endpoint_config(
    rules: &crate::rules::RuleSet,
) -> (Vec<String>, Vec<(std::net::IpAddr, u8)>) {
    let f = rules.filters();
    (
        f.llm_provider_urls
            .iter()
            .chain(&f.channel_urls)
            .cloned()
            .collect(),
        f.known_cidrs.clone(),
    )
}

/// The filter policy of a rule set, with configured endpoints taken from literal IPs and
/// CIDRs only (no DNS: replay must not depend on the network).
pub fn policy_offline(rules: &crate::rules::RuleSet) -> crate::filter::FilterPolicy {
    let f = rules.filters();
    let (urls, cidrs) = endpoint_config(rules);
    crate::filter::FilterPolicy {
        allowed_loopback_ports: f.allowed_loopback_ports.iter().copied().collect(),
        ignored_connect_ips: f.ignored_connect_ips.iter().copied().collect(),
        endpoints: crate::filter::Endpoints::offline(&urls, &cidrs),
    }
}

/// The filter policy with every configured endpoint resolved (blocking DNS; each URL on its
/// own). Returns the problems with individual URLs.
pub fn policy_resolved(
    rules: &crate::rules::RuleSet,
) -> (crate::filter::FilterPolicy, Vec<String>) {
    let (urls, cidrs) = endpoint_config(rules);
    let (endpoints, errors) = crate::filter::Endpoints::resolve(&urls, &cidrs);
    let mut policy = policy_offline(rules);
    policy.endpoints = endpoints;
    (policy, errors)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn sensor_options(args: &SensorArgs) -> SensorOptions {
    SensorOptions {
        all_processes: args.all_processes,
        ring_bytes: args.ring_size,
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Metadata for a recording started now.
fn meta(clock: BootClock, command: &[std::ffi::OsString], all_processes: bool) -> Meta {
    Meta {
        wire_version: casa_common::WIRE_VERSION,
        clock,
        casa_version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        started_at: clock.rfc3339(BootClock::boottime_now_ns()),
        command: command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        all_processes,
    }
}

//! The raw `rules.json` document, exactly as CASA writes it. Every object denies unknown keys;
//! every value is optional here (absent and `null` both mean the Go zero value) and is checked
//! by the loader.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rules.json object with analysis, thresholds and rules"
)]
pub(crate) struct RawConfig {
    pub analysis: Option<RawAnalysis>,
    pub thresholds: Option<RawThresholds>,
    pub rules: Option<Vec<RawRule>>,
    /// casa: the response policy (`super::response`).
    pub response: Option<super::response::RawResponse>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with log and alert")]
pub(crate) struct RawThresholds {
    pub log: Option<i64>,
    pub alert: Option<i64>,
}

/// `analysis`: the keys of CASA's `AnalysisConfig` (reference §6.1).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an analysis object")]
pub(crate) struct RawAnalysis {
    pub lineage_max_depth: Option<i64>,
    pub recent_event_limit: Option<i64>,
    pub max_per_process_artifacts: Option<i64>,
    pub deep_chain_threshold: Option<i64>,
    pub burst_open_threshold: Option<i64>,
    pub burst_connect_threshold: Option<i64>,
    pub burst_exec_threshold: Option<i64>,
    pub burst_window_seconds: Option<i64>,
    pub sensitive_history_window_seconds: Option<i64>,
    pub suspicious_path_patterns: Option<Vec<String>>,
    pub sensitive_path_prefixes: Option<Vec<String>>,
    pub sensitive_path_patterns: Option<Vec<String>>,
    pub shell_names: Option<Vec<String>>,
    pub network_tool_names: Option<Vec<String>>,
    pub interpreter_names: Option<Vec<String>>,
    pub container_runtime_names: Option<Vec<String>>,
    pub dangerous_capability_names: Option<Vec<String>>,
    pub llm_provider_urls: Option<Vec<String>>,
    pub channel_urls: Option<Vec<String>>,
    pub known_cidrs: Option<Vec<String>>,
    pub configured_connect_refresh_seconds: Option<i64>,
    pub allowed_loopback_ports: Option<Vec<u16>>,
    pub ignored_connect_ips: Option<Vec<String>>,
}

/// One entry of `rules`: the CEL form (`expr`) or the legacy one (`feature`/`match`/`min_value`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a rule object")]
pub(crate) struct RawRule {
    pub name: Option<String>,
    pub description: Option<String>,
    pub expr: Option<String>,
    pub weight: Option<i64>,
    pub enabled: Option<bool>,
    pub feature: Option<String>,
    #[serde(rename = "match")]
    pub match_mode: Option<String>,
    pub min_value: Option<serde_json::Number>,
}

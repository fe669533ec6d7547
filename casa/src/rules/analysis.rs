//! `analysis` → [`Heuristics`] (for the context stage) and [`Filters`] (for the pipeline's
//! noise gates and the configured-connect classifier).

use std::net::IpAddr;

use serde::Serialize;

use super::config::RawAnalysis;
use super::error::RulesError;
use super::locate::Source;
use crate::context::Heuristics;

/// Default `configured_connect_refresh_seconds`.
pub const DEFAULT_CONNECT_REFRESH_SECONDS: u64 = 300;

/// The pipeline-facing part of `analysis`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Filters {
    /// Loopback connects to these ports are *not* ignored.
    pub allowed_loopback_ports: Vec<u16>,
    /// Connects to these addresses are ignored (IPv4-mapped IPv6 addresses are unmapped).
    pub ignored_connect_ips: Vec<IpAddr>,
    /// LLM provider endpoints, as written (parsed by the configured-connect classifier).
    pub llm_provider_urls: Vec<String>,
    /// Channel endpoints (e.g. `https://api.telegram.org`), as written.
    pub channel_urls: Vec<String>,
    /// Known networks as `(network address, prefix length)`, host bits masked off.
    pub known_cidrs: Vec<(IpAddr, u8)>,
    /// How often the classifier re-resolves its endpoints (code default 300 when absent / ≤ 0).
    pub configured_connect_refresh_seconds: u64,
}

impl Default for Filters {
    fn default() -> Self {
        Self {
            allowed_loopback_ports: Vec::new(),
            ignored_connect_ips: Vec::new(),
            llm_provider_urls: Vec::new(),
            channel_urls: Vec::new(),
            known_cidrs: Vec::new(),
            configured_connect_refresh_seconds: DEFAULT_CONNECT_REFRESH_SECONDS,
        }
    }
}

pub use crate::context::capability_bit;

/// `CAP_<NAME>` of a capability bit.
pub fn capability_name(bit: u8) -> Option<String> {
    crate::context::CAPABILITY_NAMES
        .get(usize::from(bit))
        .map(|n| format!("CAP_{n}"))
}

fn positive_usize(v: Option<i64>, default: usize) -> usize {
    match v {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => default,
    }
}

fn positive_seconds_ns(v: Option<i64>, default_ns: u64) -> u64 {
    match v {
        Some(n) if n > 0 => u64::try_from(n)
            .unwrap_or(u64::MAX)
            .saturating_mul(1_000_000_000),
        _ => default_ns,
    }
}

fn non_empty(v: &Option<Vec<String>>, default: &[String]) -> Vec<String> {
    match v {
        Some(list) if !list.is_empty() => list.clone(),
        _ => default.to_vec(),
    }
}

/// CASA's `ConfigureHeuristics`: a value overrides the code default only when present and
/// `> 0` / non-empty. `lineage_max_depth` must already have been validated (> 0).
pub(crate) fn heuristics(
    a: &RawAnalysis,
    src: &Source<'_>,
    warnings: &mut Vec<String>,
) -> Heuristics {
    let d = Heuristics::default();
    let dangerous_capabilities = match &a.dangerous_capability_names {
        Some(names) if !names.is_empty() => {
            let mut bits = Vec::new();
            for (i, name) in names.iter().enumerate() {
                match capability_bit(name) {
                    Some(bit) if !bits.contains(&bit) => bits.push(bit),
                    Some(_) => {}
                    None => {
                        let loc = src.locate(&format!("analysis.dangerous_capability_names[{i}]"));
                        warnings.push(format!(
                            "{loc}: unknown capability name {name:?} in \
                             analysis.dangerous_capability_names: ignored"
                        ));
                    }
                }
            }
            bits
        }
        _ => d.dangerous_capabilities.clone(),
    };
    Heuristics {
        lineage_max_depth: positive_usize(a.lineage_max_depth, d.lineage_max_depth),
        recent_event_limit: positive_usize(a.recent_event_limit, d.recent_event_limit),
        max_per_process_artifacts: positive_usize(
            a.max_per_process_artifacts,
            d.max_per_process_artifacts,
        ),
        deep_chain_threshold: positive_usize(a.deep_chain_threshold, d.deep_chain_threshold),
        burst_open_threshold: positive_usize(a.burst_open_threshold, d.burst_open_threshold),
        burst_connect_threshold: positive_usize(
            a.burst_connect_threshold,
            d.burst_connect_threshold,
        ),
        burst_exec_threshold: positive_usize(a.burst_exec_threshold, d.burst_exec_threshold),
        burst_window_ns: positive_seconds_ns(a.burst_window_seconds, d.burst_window_ns),
        sensitive_history_window_ns: positive_seconds_ns(
            a.sensitive_history_window_seconds,
            d.sensitive_history_window_ns,
        ),
        suspicious_path_patterns: non_empty(
            &a.suspicious_path_patterns,
            &d.suspicious_path_patterns,
        ),
        sensitive_path_prefixes: non_empty(&a.sensitive_path_prefixes, &d.sensitive_path_prefixes),
        sensitive_path_patterns: non_empty(&a.sensitive_path_patterns, &d.sensitive_path_patterns),
        shell_names: non_empty(&a.shell_names, &d.shell_names),
        network_tool_names: non_empty(&a.network_tool_names, &d.network_tool_names),
        interpreter_names: non_empty(&a.interpreter_names, &d.interpreter_names),
        container_runtime_names: non_empty(&a.container_runtime_names, &d.container_runtime_names),
        dangerous_capabilities,
    }
}

/// Parses `a.b.c.d/n` or `v6/n` into the masked network and prefix length.
fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty value".to_owned());
    }
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| "no '/' prefix length".to_owned())?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|e| format!("invalid address {addr:?}: {e}"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| format!("invalid prefix length {prefix:?}"))?;
    match addr {
        IpAddr::V4(v4) => {
            if prefix > 32 {
                return Err(format!("prefix length {prefix} out of range for IPv4"));
            }
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            Ok((IpAddr::V4((u32::from(v4) & mask).into()), prefix))
        }
        IpAddr::V6(v6) => {
            if prefix > 128 {
                return Err(format!("prefix length {prefix} out of range for IPv6"));
            }
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            Ok((IpAddr::V6((u128::from(v6) & mask).into()), prefix))
        }
    }
}

/// The pipeline filters and classifier settings; IP and CIDR parse errors are located.
pub(crate) fn filters(a: &RawAnalysis, src: &Source<'_>) -> Result<Filters, RulesError> {
    let mut ignored_connect_ips = Vec::new();
    for (index, value) in a.ignored_connect_ips.iter().flatten().enumerate() {
        let ip: IpAddr = value.trim().parse().map_err(|_| RulesError::InvalidIp {
            loc: src.locate(&format!("analysis.ignored_connect_ips[{index}]")),
            index,
            value: value.clone(),
        })?;
        ignored_connect_ips.push(ip.to_canonical());
    }
    let mut known_cidrs = Vec::new();
    for (index, value) in a.known_cidrs.iter().flatten().enumerate() {
        let cidr = parse_cidr(value).map_err(|message| RulesError::InvalidCidr {
            loc: src.locate(&format!("analysis.known_cidrs[{index}]")),
            value: value.clone(),
            message,
        })?;
        known_cidrs.push(cidr);
    }
    Ok(Filters {
        allowed_loopback_ports: a.allowed_loopback_ports.clone().unwrap_or_default(),
        ignored_connect_ips,
        llm_provider_urls: a.llm_provider_urls.clone().unwrap_or_default(),
        channel_urls: a.channel_urls.clone().unwrap_or_default(),
        known_cidrs,
        configured_connect_refresh_seconds: match a.configured_connect_refresh_seconds {
            Some(n) if n > 0 => u64::try_from(n).unwrap_or(u64::MAX),
            _ => DEFAULT_CONNECT_REFRESH_SECONDS,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names() {
        assert_eq!(capability_bit("cap_net_raw"), Some(13));
        assert_eq!(capability_bit("NET_RAW"), Some(13));
        assert_eq!(capability_bit("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability_bit(" Cap_Sys_Ptrace "), Some(19));
        assert_eq!(capability_bit("CAP_CHOWN"), Some(0));
        assert_eq!(capability_bit("checkpoint_restore"), Some(40));
        assert_eq!(capability_bit("CAP_BPF"), Some(39));
        assert_eq!(capability_bit("CAP_NOPE"), None);
        assert_eq!(capability_bit("CAP_"), None);
        assert_eq!(capability_bit(""), None);
        assert_eq!(capability_name(12).as_deref(), Some("CAP_NET_ADMIN"));
        assert_eq!(capability_name(41), None);
        for bit in 0..=40u8 {
            let name = capability_name(bit).unwrap_or_default();
            assert_eq!(capability_bit(&name), Some(bit));
        }
    }

    #[test]
    fn cidrs_are_masked() {
        assert_eq!(
            parse_cidr("10.1.2.3/8"),
            Ok(("10.0.0.0".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])), 8))
        );
        assert_eq!(parse_cidr("0.0.0.0/0"), Ok((IpAddr::from([0, 0, 0, 0]), 0)));
        assert_eq!(
            parse_cidr("192.168.1.7/32"),
            Ok((IpAddr::from([192, 168, 1, 7]), 32))
        );
        let (net, len) = parse_cidr("2001:db8::1/32").unwrap_or((IpAddr::from([0; 4]), 0));
        assert_eq!(net.to_string(), "2001:db8::");
        assert_eq!(len, 32);
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("").is_err());
        assert!(parse_cidr("x/8").is_err());
    }
}

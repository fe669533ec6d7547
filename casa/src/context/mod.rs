//! Session context: what CASA's rules read (`execution.*`, `capability.*`, `history.*`).
//!
//! Sits after the session stage: every event accepted into a session is folded into that
//! session's [`SessionContext`], which yields the [`Context`] the rule engine evaluates. All
//! derivation is pure and driven by event timestamps only.
//!
//! Semantics follow the original CASA (`docs/casa-reference.md` §5), with its gaps closed:
//! paths are the kernel-resolved absolute paths, so write→exec matches `./x.sh` against
//! `/tmp/x.sh`, and `opened_deleted_path` / `memfd_or_deleted_exec` really fire.

use serde::Serialize;

/// The CEL input of one session at one moment. Field names are the CEL names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Context {
    pub session_id: u64,
    pub execution: Execution,
    pub capability: Capability,
    pub history: History,
}

/// `execution.*`: sticky (OR-accumulated over the session's processes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Execution {
    pub suspicious_path_exec: bool,
    pub deep_chain: bool,
    pub shell_in_chain: bool,
    pub network_tool_in_chain: bool,
    pub interpreter_in_chain: bool,
    pub container_runtime_in_chain: bool,
    pub memfd_or_deleted_exec: bool,
}

/// `capability.*`: sticky; `dangerous_count` is the session maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Capability {
    pub has_dangerous_caps: bool,
    pub dangerous_count: i64,
    pub seccomp_disabled: bool,
    /// Not exposed to CEL: no credential snapshot was available for the exec.
    #[serde(skip)]
    pub capability_unknown: bool,
}

/// `history.*`: derived from the session's recent events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct History {
    pub connect_then_exec: bool,
    pub sensitive_then_network: bool,
    pub sensitive_then_execve: bool,
    pub burst_open: bool,
    pub burst_connect: bool,
    pub burst_exec: bool,
    pub write_then_exec_same_path: bool,
    pub opened_deleted_path: bool,
}

/// One visible node of a process's lineage, target first (node 0 is the process itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineageNode {
    pub pid: u32,
    /// Basename of the node's executable path, or its comm when no exec was seen.
    pub name: String,
}

/// The `analysis` knobs of `rules.json`, resolved: a key absent from the file (or `0` /
/// empty, as in the original) takes the code default of [`Heuristics::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heuristics {
    pub lineage_max_depth: usize,
    pub recent_event_limit: usize,
    pub max_per_process_artifacts: usize,
    pub deep_chain_threshold: usize,
    pub burst_open_threshold: usize,
    pub burst_connect_threshold: usize,
    pub burst_exec_threshold: usize,
    /// Burst sliding window, nanoseconds.
    pub burst_window_ns: u64,
    /// Sensitive-access ↔ network/exec window, nanoseconds; 0 = unlimited.
    pub sensitive_history_window_ns: u64,
    pub suspicious_path_patterns: Vec<String>,
    pub sensitive_path_prefixes: Vec<String>,
    pub sensitive_path_patterns: Vec<String>,
    pub shell_names: Vec<String>,
    pub network_tool_names: Vec<String>,
    pub interpreter_names: Vec<String>,
    pub container_runtime_names: Vec<String>,
    /// Capability bits (`CAP_*` numbers) from `dangerous_capability_names` (unknown names
    /// ignored, case-insensitive, `CAP_` prefix optional).
    pub dangerous_capabilities: Vec<u8>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for Heuristics {
    /// The original's code defaults (reference §5.1, "code default" column).
    fn default() -> Self {
        Self {
            lineage_max_depth: 6,
            recent_event_limit: 64,
            max_per_process_artifacts: 16,
            deep_chain_threshold: 5,
            burst_open_threshold: 8,
            burst_connect_threshold: 3,
            burst_exec_threshold: 3,
            burst_window_ns: 10_000_000_000,
            sensitive_history_window_ns: 30_000_000_000,
            suspicious_path_patterns: strings(&[
                "/tmp/",
                "/var/tmp/",
                "/dev/shm/",
                "/run/user/",
                "/proc/self/fd/",
            ]),
            sensitive_path_prefixes: strings(&[
                "/etc/",
                "/root/",
                "/home/",
                "/proc/",
                "/sys/",
                "/var/run/secrets/",
                "/run/secrets/",
                "/var/lib/kubelet/",
                "/var/lib/docker/",
                "/var/lib/containerd/",
            ]),
            sensitive_path_patterns: strings(&[
                "/.ssh/",
                "/.gnupg/",
                "/.aws/",
                "/.azure/",
                "/.gcloud/",
                "/.kube/",
                "/.docker/",
                "/.config/",
                "/.npmrc",
                "/.pypirc",
                "/.netrc",
                "/id_rsa",
                "/id_ed25519",
                "/authorized_keys",
                "/known_hosts",
                "/credentials",
                "/credentials.json",
                "/token",
                "/secret",
                "/shadow",
            ]),
            shell_names: strings(&["sh", "bash", "zsh", "dash", "ksh", "fish"]),
            network_tool_names: strings(&[
                "curl", "wget", "nc", "netcat", "ncat", "socat", "ssh", "scp", "rsync",
            ]),
            interpreter_names: strings(&[
                "python", "python3", "perl", "ruby", "node", "php", "lua", "bash", "sh", "dash",
                "zsh",
            ]),
            container_runtime_names: strings(&[
                "docker",
                "containerd",
                "ctr",
                "runc",
                "crun",
                "podman",
                "nerdctl",
            ]),
            // CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_PTRACE
            dangerous_capabilities: vec![21, 12, 13, 19],
        }
    }
}

mod capability;
mod classify;
mod history;
mod session;
#[cfg(test)]
mod tests;

pub use capability::{
    CAPABILITY_NAMES, capability_bit, capability_bits, dangerous_mask, exec_capability,
};
pub use classify::{
    has_write_intent, is_burst_excluded_connect, is_burst_ignored_open, is_memfd_or_deleted,
    is_sensitive_path, is_suspicious_exec_path,
};
pub use history::{RecentEvent, RecentEventSorted, RecentKind, history_reference};
pub use session::{Observed, SessionContext};

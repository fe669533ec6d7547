//! `capability.*`: Linux capability names, and the per-exec capability facts.
//!
//! The rules file names dangerous capabilities (`dangerous_capability_names`); [`capability_bit`]
//! and [`capability_bits`] map those names to `CAP_*` bit numbers for
//! [`Heuristics::dangerous_capabilities`]. [`exec_capability`] turns the credentials the sensor
//! read right after an exec into the [`Capability`] facts that
//! [`super::SessionContext`] folds into the session (bools OR, `dangerous_count` max).

use super::{Capability, Heuristics};
use crate::event::Exec;

/// `CAP_*` names in bit order (`include/uapi/linux/capability.h`), without the prefix.
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The bit number of a capability name: case-insensitive, `CAP_` prefix optional, surrounding
/// whitespace ignored. `None` for an unknown name.
pub fn capability_bit(name: &str) -> Option<u8> {
    let name = name.trim();
    let bare = match name.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("CAP_") => &name[4..],
        _ => name,
    };
    CAPABILITY_NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(bare))
        .and_then(|i| u8::try_from(i).ok())
}

/// The bit numbers of `names`, in order, without duplicates; unknown names are ignored (as in
/// the original).
pub fn capability_bits<S: AsRef<str>>(names: &[S]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(names.len());
    for bit in names.iter().filter_map(|n| capability_bit(n.as_ref())) {
        if !out.contains(&bit) {
            out.push(bit);
        }
    }
    out
}

/// The mask of `h.dangerous_capabilities` (bits ≥ 64 cannot be set and are ignored).
pub fn dangerous_mask(h: &Heuristics) -> u64 {
    h.dangerous_capabilities
        .iter()
        .filter(|&&b| b < 64)
        .fold(0u64, |m, &b| m | (1u64 << b))
}

/// The capability facts of one successful exec.
///
/// `capability_unknown` is set when the effective set or the seccomp mode could not be read;
/// the part that was read still counts (the original dropped both when either was missing).
pub fn exec_capability(exec: &Exec, h: &Heuristics) -> Capability {
    let mut c = Capability {
        capability_unknown: exec.cap_effective.is_none() || exec.seccomp_mode.is_none(),
        ..Capability::default()
    };
    if let Some(eff) = exec.cap_effective {
        c.dangerous_count = i64::from((eff & dangerous_mask(h)).count_ones());
        c.has_dangerous_caps = c.dangerous_count > 0;
    }
    if let Some(mode) = exec.seccomp_mode {
        c.seccomp_disabled = mode == 0;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_bits() {
        assert_eq!(capability_bit("cap_net_raw"), Some(13));
        assert_eq!(capability_bit("CAP_NET_RAW"), Some(13));
        assert_eq!(capability_bit("net_raw"), Some(13));
        assert_eq!(capability_bit(" Cap_Sys_Admin "), Some(21));
        assert_eq!(capability_bit("CAP_NET_ADMIN"), Some(12));
        assert_eq!(capability_bit("CAP_SYS_PTRACE"), Some(19));
        assert_eq!(capability_bit("CAP_CHOWN"), Some(0));
        assert_eq!(capability_bit("CAP_BPF"), Some(39));
        assert_eq!(capability_bit("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_bit("CAP_NOPE"), None);
        assert_eq!(capability_bit("CAP_"), None);
        assert_eq!(capability_bit(""), None);
        assert_eq!(
            capability_bits(&["CAP_SYS_ADMIN", "cap_sys_admin", "bogus", "CAP_NET_RAW"]),
            vec![21, 13]
        );
    }

    #[test]
    fn default_heuristics_match_the_default_names() {
        let names = [
            "CAP_SYS_ADMIN",
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_SYS_PTRACE",
        ];
        assert_eq!(
            capability_bits(&names),
            Heuristics::default().dangerous_capabilities
        );
    }
}

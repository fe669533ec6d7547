//! Pure classifiers over paths, names, open flags and connect destinations.
//!
//! Used by [`super::SessionContext`] when it folds an event, and by
//! [`super::history_reference`]: both sides of the incremental-vs-reference check share these
//! predicates, so the property test exercises the bookkeeping, while the unit tests pin the
//! predicates themselves. Paths are compared as given (kernel-resolved strings), without the
//! original's whitespace trimming.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Heuristics;

/// The marker the kernel appends to the path of an unlinked file.
pub const DELETED_SUFFIX: &str = " (deleted)";

/// `O_WRONLY`, `O_RDWR`, `O_CREAT`, `O_TRUNC`, `O_APPEND` (x86-64 / arm64 values).
const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
pub(crate) const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;

/// The last component of `path` (the whole string when it has no `/`). A trailing `/` is
/// ignored, like `filepath.Base`.
pub fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return path;
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Whether `path` is sensitive: it starts with one of `sensitive_path_prefixes` or contains
/// one of `sensitive_path_patterns` (empty list entries never match).
pub fn is_sensitive_path(path: &str, h: &Heuristics) -> bool {
    if path.is_empty() {
        return false;
    }
    h.sensitive_path_prefixes
        .iter()
        .any(|p| !p.is_empty() && path.starts_with(p.as_str()))
        || h.sensitive_path_patterns
            .iter()
            .any(|p| match p.strip_suffix('$') {
                // A pattern ending in `$` matches the end of the path (`/.env$`: a file named
                // `.env`, not `.envrc` or a `.env/` virtual environment).
                Some(end) => !end.is_empty() && path.ends_with(end),
                None => !p.is_empty() && path.contains(p.as_str()),
            })
}

/// Whether an executed file is a memfd or an unlinked file: the path starts with `memfd:` or
/// `/memfd:` (how the kernel names a memfd), or carries the ` (deleted)` marker.
pub fn is_memfd_or_deleted(path: &str) -> bool {
    path.starts_with("memfd:") || path.starts_with("/memfd:") || path.contains(DELETED_SUFFIX)
}

/// `execution.suspicious_path_exec` for one exec path: a `suspicious_path_patterns`
/// substring, or a memfd / deleted file.
pub fn is_suspicious_exec_path(path: &str, h: &Heuristics) -> bool {
    if path.is_empty() {
        return false;
    }
    is_memfd_or_deleted(path)
        || h.suspicious_path_patterns
            .iter()
            .any(|p| !p.is_empty() && path.contains(p.as_str()))
}

/// Whether a recorded open's path is marked deleted by the kernel.
pub fn is_deleted_path(path: &str) -> bool {
    path.ends_with(DELETED_SUFFIX)
}

/// The form in which write and exec paths are compared for write→exec: without the kernel's
/// ` (deleted)` marker, so writing `/tmp/x`, unlinking it and running it through its fd still
/// matches.
pub fn match_key(path: &str) -> &str {
    path.strip_suffix(DELETED_SUFFIX).unwrap_or(path)
}

/// Write intent of an `open(2)` flags word: write access mode, or `O_CREAT`, `O_TRUNC`,
/// `O_APPEND`.
pub fn has_write_intent(flags: u32) -> bool {
    let acc = flags & O_ACCMODE;
    acc == O_WRONLY || acc == O_RDWR || flags & (O_CREAT | O_TRUNC | O_APPEND) != 0
}

/// Opens that never count towards `burst_open` (runtime loaders, shell start-up files,
/// package manifests, pseudo files) and that a transparent shell wrapper may have made.
///
/// The original's list (reference §5.4) with two changes: its `/home/ubuntu/.profile` and
/// `/home/ubuntu/.bashrc` entries are the suffixes `/.profile` and `/.bashrc` for any home,
/// and the exact names (e.g. `/usr/lib/locale/locale-archive`) are checked before the
/// `/usr/lib/` rule, which in the original returned early and made them unreachable.
pub fn is_burst_ignored_open(path: &str) -> bool {
    const EXACT: &[&str] = &[
        "/etc/ld.so.cache",
        "/dev/null",
        "/dev/tty",
        "/dev/urandom",
        "/etc/localtime",
        "/usr/lib/locale/locale-archive",
        "package.json",
        "package-lock.json",
    ];
    const SUFFIXES: &[&str] = &[
        "/package.json",
        "/package-lock.json",
        "/.profile",
        "/.bashrc",
    ];
    if path.is_empty() || EXACT.contains(&path) {
        return true;
    }
    let loader_dir =
        path.starts_with("/lib/") || path.starts_with("/usr/lib/") || path.starts_with("/lib64/");
    if loader_dir && path.contains(".so") {
        return true;
    }
    if path == "/proc" || path.starts_with("/proc/") || path == "/sys" || path.starts_with("/sys/")
    {
        return true;
    }
    path.contains("/.nvm/")
        || path.contains("/.openclaw/")
        || SUFFIXES.iter().any(|s| path.ends_with(s))
}

fn is_local_v4(a: Ipv4Addr) -> bool {
    // loopback 127/8, unspecified, link-local 169.254/16, private 10/8, 172.16/12, 192.168/16
    a.is_loopback() || a.is_unspecified() || a.is_link_local() || a.is_private()
}

fn is_local_v6(a: Ipv6Addr) -> bool {
    let first = a.segments()[0];
    a.is_loopback()
        || a.is_unspecified()
        || first & 0xffc0 == 0xfe80 // link-local fe80::/10
        || first & 0xfe00 == 0xfc00 // unique local fc00::/7
        || a.to_ipv4_mapped().is_some_and(is_local_v4)
}

/// Connects that never count towards `burst_connect`: destinations on loopback, link-local or
/// private networks (IPv4 as in the original, plus their IPv6 counterparts and the unspecified
/// address), which covers the original's "port 53 to a local resolver" rule, and connects
/// without an IP destination (Unix sockets and other families: local IPC, not a scan).
pub fn is_burst_excluded_connect(ip: Option<IpAddr>, _port: u16) -> bool {
    match ip {
        None => true,
        Some(IpAddr::V4(a)) => is_local_v4(a),
        Some(IpAddr::V6(a)) => is_local_v6(a),
    }
}

/// Whether `name` is one of `names` (list entries are trimmed; empty names never match).
pub fn name_in(name: &str, names: &[String]) -> bool {
    !name.is_empty() && names.iter().any(|n| n.trim() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basename_matches_filepath_base() {
        assert_eq!(basename("/usr/bin/curl"), "curl");
        assert_eq!(basename("curl"), "curl");
        assert_eq!(basename("/usr/bin/"), "bin");
        assert_eq!(basename("/"), "/");
        assert_eq!(basename(""), "");
    }

    #[test]
    fn write_intent_flags() {
        assert!(has_write_intent(0x241)); // O_WRONLY|O_CREAT|O_TRUNC
        assert!(has_write_intent(1));
        assert!(has_write_intent(2));
        assert!(has_write_intent(0x40));
        assert!(has_write_intent(0x200));
        assert!(has_write_intent(0x400));
        assert!(!has_write_intent(0));
        assert!(!has_write_intent(0x80000)); // O_CLOEXEC alone
    }

    #[test]
    fn sensitive_paths() {
        let h = Heuristics::default();
        assert!(is_sensitive_path("/etc/shadow", &h));
        assert!(is_sensitive_path("/work/.ssh/id_rsa", &h));
        assert!(is_sensitive_path("/opt/app/credentials.json", &h));
        assert!(!is_sensitive_path("/tmp/a", &h));
        assert!(!is_sensitive_path("", &h));
    }

    #[test]
    fn suspicious_and_memfd_paths() {
        let h = Heuristics::default();
        assert!(is_suspicious_exec_path("/tmp/x.sh", &h));
        assert!(is_suspicious_exec_path("/dev/shm/p", &h));
        assert!(is_suspicious_exec_path("/memfd:payload (deleted)", &h));
        assert!(is_suspicious_exec_path("memfd:payload", &h));
        assert!(is_suspicious_exec_path("/opt/x (deleted)", &h));
        assert!(!is_suspicious_exec_path("/usr/bin/ls", &h));
        assert!(is_memfd_or_deleted("/memfd:x (deleted)"));
        assert!(!is_memfd_or_deleted("/tmp/x.sh"));
        assert_eq!(match_key("/tmp/x (deleted)"), "/tmp/x");
    }

    #[test]
    fn burst_open_ignore_list() {
        for p in [
            "",
            "/etc/ld.so.cache",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/libz.so.1",
            "/lib64/ld-linux-x86-64.so.2",
            "/proc",
            "/proc/self/status",
            "/sys",
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "/home/u/.nvm/versions/node/v24/bin/node",
            "/workspace/project/package.json",
            "/workspace/project/package-lock.json",
            "/home/u/.openclaw/config.json",
            "/dev/null",
            "/dev/tty",
            "/dev/urandom",
            "/etc/localtime",
            "/usr/lib/locale/locale-archive",
            "/home/ubuntu/.profile",
            "/root/.bashrc",
            "package.json",
            "package-lock.json",
        ] {
            assert!(is_burst_ignored_open(p), "{p:?} should be ignored");
        }
        for p in [
            "/tmp/a",
            "/etc/passwd",
            "/usr/lib/python3/x.py",
            "/etc/profile",
            "/home/u/.bashrc.bak",
            "/dev/zero",
        ] {
            assert!(!is_burst_ignored_open(p), "{p:?} should count");
        }
    }

    #[test]
    fn burst_connect_exclusions() {
        let ex = |s: &str, port| is_burst_excluded_connect(Some(s.parse().unwrap()), port);
        for a in [
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(ex(a, 443), "{a} should be excluded");
            assert!(ex(a, 53), "{a}:53 should be excluded");
        }
        for a in [
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "1.1.1.1",
            "2001:db8::1",
        ] {
            assert!(!ex(a, 443), "{a} should count");
            assert!(!ex(a, 53), "{a}:53 should count");
        }
        assert!(is_burst_excluded_connect(None, 0));
    }

    #[test]
    fn names_are_exact_after_trimming_the_list() {
        let names = vec![" sh ".to_owned(), "bash".to_owned()];
        assert!(name_in("sh", &names));
        assert!(name_in("bash", &names));
        assert!(!name_in("shx", &names));
        assert!(!name_in("", &[String::new()]));
    }
}

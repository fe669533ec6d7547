//! Noise filtering: which session events enter security analysis.
//!
//! Sits between the session stage and context derivation. An event of a session that matches
//! one of the original CASA's noise classes (reference §4.2) is dropped with a reason: loader
//! and package files, OpenClaw's own state files, its routine probes (`uname -a`, `ip neigh
//! show`, …), loopback and ignored addresses, and the agent runtime's own connections to its
//! configured LLM provider and channel endpoints (§4.4; the same endpoint reached from a tool
//! process is kept). Differences from the original, on purpose: failed execs and unix-socket
//! connects are dropped by name instead of by accident, `http://` endpoints default to port
//! 80, and one endpoint that does not resolve does not disable the others ([`Endpoints`]).
//! Execs by the agent runtime's own processes (the launcher's re-exec, its node workers) are
//! platform machinery, not agent actions: they are dropped as `agent_runtime_exec` (the
//! original never saw them, as its gateway was running before it started); the runtime's
//! opens and connects are still analysed.

use std::{
    collections::HashSet,
    net::{IpAddr, ToSocketAddrs},
};

use serde::Serialize;

use crate::context::is_container_socket;
use crate::event::{Activity, Detail, Event, Exec, SockAddr};

/// Why an event was kept out of analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    MissingStructuredFields,
    RuntimeLoaderNoise,
    RoutineSessionFileNoise,
    TransparentRoutineExec,
    IgnorableConnectNoise,
    ConfiguredConnect,
    FailedExec,
    UnixSocketConnect,
    /// An exec by the agent runtime itself (its launcher re-exec, its worker processes).
    AgentRuntimeExec,
    /// An event kind added with sensor wire version 2 that no context field reads yet
    /// (`setsid`, `ptrace`, `memfd_create`): seen by the session tracker, not scored or
    /// logged.
    NotYetAnalysed,
    /// Socket, TCP, file-lifecycle, io_uring or send-volume activity of the agent runtime
    /// itself (its own connections are judged by their connect events).
    AgentRuntimeActivity,
}

impl IgnoreReason {
    /// The reason's name in reports (the same as its serialised form).
    pub fn name(self) -> &'static str {
        match self {
            Self::MissingStructuredFields => "missing_structured_fields",
            Self::RuntimeLoaderNoise => "runtime_loader_noise",
            Self::RoutineSessionFileNoise => "routine_session_file_noise",
            Self::TransparentRoutineExec => "transparent_routine_exec",
            Self::IgnorableConnectNoise => "ignorable_connect_noise",
            Self::ConfiguredConnect => "configured_connect",
            Self::FailedExec => "failed_exec",
            Self::UnixSocketConnect => "unix_socket_connect",
            Self::AgentRuntimeExec => "agent_runtime_exec",
            Self::NotYetAnalysed => "not_yet_analysed",
            Self::AgentRuntimeActivity => "agent_runtime_activity",
        }
    }
}

/// Resolved LLM-provider / channel endpoints and known CIDRs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub addrs: HashSet<(IpAddr, u16)>,
    pub cidrs: Vec<(IpAddr, u8)>,
}

/// A configured URL as host and port (`http` → 80, `https` → 443, explicit port wins).
pub fn parse_endpoint(url: &str) -> Result<(String, u16), String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("configured urls contain empty value".into());
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        _ => 443,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.is_empty() {
        return Err(format!("configured url {url:?} missing host"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("parse configured url {url:?}: bad IPv6 host"))?;
        let port = tail
            .strip_prefix(':')
            .map(str::parse)
            .transpose()
            .map_err(|_| format!("parse configured url {url:?}: bad port"))?;
        (h.to_owned(), port)
    } else if let Some((h, p)) = authority.rsplit_once(':') {
        (
            h.to_owned(),
            Some(
                p.parse()
                    .map_err(|_| format!("parse configured url {url:?}: bad port"))?,
            ),
        )
    } else {
        (authority.to_owned(), None)
    };
    if host.is_empty() {
        return Err(format!("configured url {url:?} missing host"));
    }
    Ok((host.to_ascii_lowercase(), port.unwrap_or(default_port)))
}

impl Endpoints {
    /// Resolve each URL on its own (blocking DNS: call from the edge, not the pipeline).
    /// Returns the set and one message per URL that could not be used.
    pub fn resolve(urls: &[String], cidrs: &[(IpAddr, u8)]) -> (Self, Vec<String>) {
        let mut out = Self {
            addrs: HashSet::new(),
            cidrs: cidrs.to_vec(),
        };
        let mut errors = Vec::new();
        for url in urls {
            match parse_endpoint(url) {
                Ok((host, port)) => match (host.as_str(), port).to_socket_addrs() {
                    Ok(addrs) => {
                        for a in addrs {
                            out.addrs.insert((unmap(a.ip()), port));
                        }
                    }
                    Err(e) => errors.push(format!("resolve {host}: {e}")),
                },
                Err(e) => errors.push(e),
            }
        }
        (out, errors)
    }

    /// Literal-IP URLs and CIDRs only, without DNS (replay).
    pub fn offline(urls: &[String], cidrs: &[(IpAddr, u8)]) -> Self {
        let mut out = Self {
            addrs: HashSet::new(),
            cidrs: cidrs.to_vec(),
        };
        for url in urls {
            if let Ok((host, port)) = parse_endpoint(url)
                && let Ok(ip) = host.parse::<IpAddr>()
            {
                out.addrs.insert((unmap(ip), port));
            }
        }
        out
    }

    pub fn contains(&self, ip: IpAddr, port: u16) -> bool {
        let ip = unmap(ip);
        self.addrs.contains(&(ip, port))
            || self.cidrs.iter().any(|&(net, len)| in_cidr(ip, net, len))
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// True when `ip` is inside `net/len`.
pub fn in_cidr(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = len.min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = len.min(128);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The filter's settings (from `rules.json` `analysis`, plus resolved endpoints).
#[derive(Clone, Debug, Default)]
pub struct FilterPolicy {
    pub allowed_loopback_ports: HashSet<u16>,
    pub ignored_connect_ips: HashSet<IpAddr>,
    pub endpoints: Endpoints,
}

fn basename(p: &[u8]) -> &[u8] {
    p.rsplit(|&c| c == b'/').next().unwrap_or(p)
}

/// `path` is loader or runtime noise (§4.2 "runtime loader noise"), plus locale data: with a
/// `C.UTF-8` locale every program opens a dozen `/usr/lib/locale/C.utf8/LC_*` files, which
/// would push an agent's real actions out of the session's recent-event ring.
fn loader_noise(path: &str) -> bool {
    let p = path.trim().to_ascii_lowercase();
    p.starts_with("/usr/lib/locale/")
        || p.starts_with("/usr/share/locale/")
        || p == "/etc/ld.so.cache"
        || ((p.starts_with("/lib/") || p.starts_with("/usr/lib/") || p.starts_with("/lib64/"))
            && p.contains(".so"))
        || p == "/proc"
        || p.starts_with("/proc/")
        || p.contains("/.nvm/")
        || interpreter_startup(&p)
}

/// What a Python interpreter reads to start, whatever the script: its standard library and
/// site packages, its path configuration probes, locale aliases and time zones. Python's
/// loader is the equivalent of `ld.so` for a script, and its ~20 reads per start would push
/// the agent's own actions out of the session's 64-event ring (five quick `python3 -c`
/// commands would no longer look like a burst).
fn interpreter_startup(p: &str) -> bool {
    p.starts_with("/usr/lib/python3")
        || p.starts_with("/usr/local/lib/python3")
        || p.starts_with("/usr/lib64/python3")
        || p.ends_with("/pyvenv.cfg")
        || p.ends_with("._pth")
        || p.ends_with("/pybuilddir.txt")
        || p == "/etc/locale.alias"
        || p.starts_with("/usr/share/zoneinfo/")
}

/// `path` is routine session file noise (§4.2).
fn session_file_noise(path: &str) -> bool {
    let p = path.trim();
    p.contains("/.openclaw/")
        || p.ends_with("/package.json")
        || p.ends_with("/package-lock.json")
        || p.ends_with("/etc/hosts")
        || p.ends_with("/.bashrc")
        || p.ends_with("/.profile")
        || p.contains("/gconv/gconv-modules.cache")
        || p.contains("/etc/bash.bashrc")
}

/// OpenClaw's routine probes: `uname -a`, `whoami`, `pwd`, `id`, `ip neigh show` (§4.2).
pub fn is_transparent_routine_exec(x: &Exec) -> bool {
    let name = basename(x.path.as_bytes()).to_ascii_lowercase();
    let args: Vec<&[u8]> = x.argv.iter().map(|a| a.as_bytes()).collect();
    // Arguments after the program name (argv[0] may be absent or be the program itself).
    let rest: &[&[u8]] = match args.first() {
        Some(a0) if basename(a0).eq_ignore_ascii_case(&name) => &args[1..],
        _ => &args[..],
    };
    match name.as_slice() {
        b"uname" => rest == [b"-a".as_slice()],
        b"whoami" | b"pwd" | b"id" => rest.is_empty(),
        b"ip" => rest == [b"neigh".as_slice(), b"show".as_slice()],
        _ => false,
    }
}

fn ignorable_connect(ip: IpAddr, port: u16, p: &FilterPolicy) -> bool {
    if ip.is_unspecified() || port == 0 {
        return true;
    }
    let ip = unmap(ip);
    if p.ignored_connect_ips.contains(&ip) {
        return true;
    }
    ip.is_loopback() && !p.allowed_loopback_ports.contains(&port)
}

/// Who acted, as the session stage sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    /// The agent runtime itself (its configured-endpoint connections and its own file noise
    /// are ignored).
    pub runtime: bool,
    /// Started by the runtime itself, not by an agent command (only then is a routine probe
    /// such as `id` or `uname -a` the runtime's noise).
    pub runtime_started: bool,
}

/// Open flags that create or change a file: such an open by an agent command is never noise
/// (`echo … >> ~/.bashrc` is persistence, whatever the path looks like).
const WRITE_FLAGS: u32 =
    (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u32;

/// `/proc/<pid>/…` of the acting process itself (`/proc/self/oom_score_adj` as the kernel
/// resolves it): a process adjusting its own settings changes nothing outside it. Another
/// process's entries and `/proc/sys` are not.
fn own_proc_entry(path: &str, pid: u32) -> bool {
    path.strip_prefix("/proc/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(p, _)| p == "self" || p.parse::<u32>() == Ok(pid))
}

/// `/proc/<pid>/environ` or `/proc/<pid>/mem` of a process other than the reader.
fn another_process_secrets(path: &str, pid: u32) -> bool {
    path.strip_prefix("/proc/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(p, entry)| {
            p.parse::<u32>().is_ok_and(|p| p != pid) && matches!(entry, "environ" | "mem")
        })
}

/// Whether a session event stays out of analysis, and why.
pub fn ignore_reason(ev: &Event, p: &FilterPolicy, actor: Actor) -> Option<IgnoreReason> {
    let runtime = actor.runtime;
    match &ev.detail {
        Detail::Exec(x) if x.result != 0 => Some(IgnoreReason::FailedExec),
        Detail::Exec(_) if runtime => Some(IgnoreReason::AgentRuntimeExec),
        Detail::Exec(x) if actor.runtime_started && is_transparent_routine_exec(x) => {
            Some(IgnoreReason::TransparentRoutineExec)
        }
        Detail::Open(o) => {
            let path = o.best_path().to_text();
            if path.trim().is_empty() {
                Some(IgnoreReason::MissingStructuredFields)
            } else if !runtime && o.flags & WRITE_FLAGS != 0 && !own_proc_entry(&path, ev.pid) {
                None
            } else if !runtime && another_process_secrets(&path, ev.pid) {
                // Another process's environment or memory: credential access (T1003.007),
                // however routine `/proc` reads are otherwise.
                None
            } else if loader_noise(&path) || (runtime && path.contains("/node_modules/")) {
                // The runtime loading its own packages: thousands of opens per agent run
                // wherever it is installed (the original only knew the nvm layout, `/.nvm/`).
                // A tool process (not the runtime) opening the same files still counts.
                Some(IgnoreReason::RuntimeLoaderNoise)
            } else if session_file_noise(&path) {
                Some(IgnoreReason::RoutineSessionFileNoise)
            } else {
                None
            }
        }
        Detail::Connect(c) => match c.addr {
            SockAddr::Inet { addr, port, .. } => {
                if runtime && p.endpoints.contains(addr, port) {
                    Some(IgnoreReason::ConfiguredConnect)
                } else if ignorable_connect(addr, port, p) {
                    Some(IgnoreReason::IgnorableConnectNoise)
                } else {
                    None
                }
            }
            // A container engine's socket is evidence (`history.container_socket_access`).
            SockAddr::Unix { ref path } if is_container_socket(&path.to_text()) => None,
            SockAddr::Unix { .. } => Some(IgnoreReason::UnixSocketConnect),
            _ => Some(IgnoreReason::MissingStructuredFields),
        },
        Detail::Activity(Activity::Setsid(_) | Activity::Ptrace(_) | Activity::Memfd(_)) => {
            Some(IgnoreReason::NotYetAnalysed)
        }
        Detail::Activity(_) if runtime => Some(IgnoreReason::AgentRuntimeActivity),
        Detail::Activity(_) => None,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent command's process.
    const AGENT: Actor = Actor {
        runtime: false,
        runtime_started: false,
    };
    /// The runtime's own process.
    const RUNTIME: Actor = Actor {
        runtime: true,
        runtime_started: false,
    };
    use crate::event::{Bytes, Connect, Open};

    fn open(path: &str) -> Event {
        Event {
            ktime_ns: 1,
            pid: 1,
            tid: 1,
            ppid: 0,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            comm: Bytes::from("x"),
            detail: Detail::Open(Open {
                syscall: "openat",
                result: 3,
                flags: 0,
                mode: 0,
                dfd: -100,
                raw_path: Bytes::from(path),
                path: Some(Bytes::from(path)),
                path_truncated: false,
                raw_unreadable: false,
                facts: Default::default(),
            }),
        }
    }

    fn connect(addr: &str, port: u16) -> Event {
        let mut e = open("/x");
        e.detail = Detail::Connect(Connect {
            result: 0,
            fd: 3,
            addr: SockAddr::Inet {
                addr: addr.parse().unwrap(),
                port,
                v4_mapped: false,
            },
        });
        e
    }

    #[test]
    fn wire_version_2_kinds_are_not_analysed_yet() {
        use crate::event::{Activity, Setsid};
        let mut e = open("/tmp/x");
        e.detail = Detail::Activity(Activity::Setsid(Setsid { result: 7 }));
        let p = FilterPolicy::default();
        for actor in [AGENT, RUNTIME] {
            assert_eq!(
                ignore_reason(&e, &p, actor),
                Some(IgnoreReason::NotYetAnalysed)
            );
        }
        assert_eq!(IgnoreReason::NotYetAnalysed.name(), "not_yet_analysed");
    }

    #[test]
    fn reason_names_match_their_serialised_form() {
        use IgnoreReason::*;
        for r in [
            MissingStructuredFields,
            RuntimeLoaderNoise,
            RoutineSessionFileNoise,
            TransparentRoutineExec,
            IgnorableConnectNoise,
            ConfiguredConnect,
            FailedExec,
            UnixSocketConnect,
            AgentRuntimeExec,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.name());
        }
    }

    #[test]
    fn original_filter_cases() {
        let p = FilterPolicy::default();
        assert_eq!(
            ignore_reason(&open("/proc/self/status"), &p, AGENT),
            Some(IgnoreReason::RuntimeLoaderNoise)
        );
        assert_eq!(
            ignore_reason(
                &open("/home/u/.nvm/versions/node/v24/lib/node_modules/openclaw/package.json"),
                &p,
                AGENT
            ),
            Some(IgnoreReason::RuntimeLoaderNoise)
        );
        assert_eq!(
            ignore_reason(&open("/home/u/.nvm/versions/node/v24/bin/node"), &p, AGENT),
            Some(IgnoreReason::RuntimeLoaderNoise)
        );
        assert_eq!(
            ignore_reason(&open("/tmp/openclaw-eval/backdoor.sh"), &p, AGENT),
            None
        );
        assert_eq!(
            ignore_reason(&open("/root/.openclaw/state.json"), &p, AGENT),
            Some(IgnoreReason::RoutineSessionFileNoise)
        );
        assert_eq!(
            ignore_reason(&open("/usr/lib/x86_64-linux-gnu/libc.so.6"), &p, AGENT),
            Some(IgnoreReason::RuntimeLoaderNoise)
        );
    }

    #[test]
    fn the_runtime_loading_its_packages_is_noise_wherever_it_is_installed() {
        let p = FilterPolicy::default();
        let pkg = open("/opt/casa-eval/node/lib/node_modules/openclaw/dist/index.js");
        assert_eq!(
            ignore_reason(&pkg, &p, RUNTIME),
            Some(IgnoreReason::RuntimeLoaderNoise)
        );
        // The same file opened by a tool the agent ran is the agent's doing.
        assert_eq!(ignore_reason(&pkg, &p, AGENT), None);
        // The runtime reading anything else (its `read` tool) still counts.
        assert_eq!(ignore_reason(&open("/etc/shadow"), &p, RUNTIME), None);
    }

    #[test]
    fn python_startup_reads_are_loader_noise_but_scripts_are_not() {
        let p = FilterPolicy::default();
        for path in [
            "/usr/lib/python3.11/encodings/__init__.py",
            "/usr/lib/python3/dist-packages/_distutils_hack/__init__.py",
            "/usr/local/lib/python3.11/dist-packages",
            "/usr/bin/pyvenv.cfg",
            "/usr/bin/python3.11._pth",
            "/usr/share/zoneinfo/Etc/UTC",
        ] {
            assert_eq!(
                ignore_reason(&open(path), &p, AGENT),
                Some(IgnoreReason::RuntimeLoaderNoise),
                "{path}"
            );
        }
        assert_eq!(ignore_reason(&open("/tmp/x/evil.py"), &p, AGENT), None);
        assert_eq!(ignore_reason(&open("/home/u/.ssh/id_rsa"), &p, AGENT), None);
    }

    #[test]
    fn loopback_and_allowed_ports() {
        let mut p = FilterPolicy::default();
        assert_eq!(
            ignore_reason(&connect("127.0.0.1", 18000), &p, AGENT),
            Some(IgnoreReason::IgnorableConnectNoise)
        );
        p.allowed_loopback_ports.insert(18000);
        assert_eq!(ignore_reason(&connect("127.0.0.1", 18000), &p, AGENT), None);
        assert_eq!(
            ignore_reason(&connect("::ffff:127.0.0.1", 18000), &p, AGENT),
            None
        );
        assert_eq!(
            ignore_reason(&connect("0.0.0.0", 80), &p, AGENT),
            Some(IgnoreReason::IgnorableConnectNoise)
        );
        p.ignored_connect_ips.insert("10.1.1.1".parse().unwrap());
        assert_eq!(
            ignore_reason(&connect("10.1.1.1", 80), &p, AGENT),
            Some(IgnoreReason::IgnorableConnectNoise)
        );
        assert_eq!(
            ignore_reason(&connect("93.184.216.34", 443), &p, AGENT),
            None
        );
    }

    #[test]
    fn configured_endpoints_only_for_the_runtime_itself() {
        let p = FilterPolicy {
            endpoints: Endpoints::offline(
                &["https://203.0.113.7".into()],
                &[("198.51.100.0".parse().unwrap(), 24)],
            ),
            ..FilterPolicy::default()
        };
        assert_eq!(
            ignore_reason(&connect("203.0.113.7", 443), &p, RUNTIME),
            Some(IgnoreReason::ConfiguredConnect)
        );
        assert_eq!(
            ignore_reason(&connect("203.0.113.7", 443), &p, AGENT),
            None,
            "kept from a tool process"
        );
        assert_eq!(
            ignore_reason(&connect("198.51.100.9", 8443), &p, RUNTIME),
            Some(IgnoreReason::ConfiguredConnect)
        );
    }

    #[test]
    fn endpoint_ports_follow_the_scheme() {
        assert_eq!(
            parse_endpoint("http://example.com/v1"),
            Ok(("example.com".into(), 80))
        );
        assert_eq!(
            parse_endpoint("https://Example.com"),
            Ok(("example.com".into(), 443))
        );
        assert_eq!(
            parse_endpoint("https://example.com:8443/x"),
            Ok(("example.com".into(), 8443))
        );
        assert_eq!(parse_endpoint("http://[::1]:9/"), Ok(("::1".into(), 9)));
        assert!(parse_endpoint("").is_err());
        assert!(parse_endpoint("https://").is_err());
    }

    #[test]
    fn one_unresolvable_endpoint_does_not_disable_the_others() {
        let (e, errors) = Endpoints::resolve(
            &[
                "https://does-not-exist.invalid".into(),
                "http://127.0.0.7:8080".into(),
            ],
            &[],
        );
        assert_eq!(errors.len(), 1);
        assert!(e.contains("127.0.0.7".parse().unwrap(), 8080));
    }

    #[test]
    fn routine_probes() {
        let x = |path: &str, argv: &[&str]| Exec {
            cap_effective: None,
            seccomp_mode: None,
            ..Exec::test(path, argv)
        };
        assert!(is_transparent_routine_exec(&x(
            "/usr/bin/uname",
            &["uname", "-a"]
        )));
        assert!(is_transparent_routine_exec(&x(
            "/usr/bin/ip",
            &["ip", "neigh", "show"]
        )));
        assert!(is_transparent_routine_exec(&x("/usr/bin/id", &["id"])));
        assert!(!is_transparent_routine_exec(&x(
            "/usr/bin/id",
            &["id", "-u", "root"]
        )));
        assert!(!is_transparent_routine_exec(&x("/usr/bin/curl", &["curl"])));
    }

    fn write(path: &str, flags: i32) -> Event {
        let mut ev = open(path);
        if let Detail::Open(o) = &mut ev.detail {
            o.flags = flags as u32;
        }
        ev
    }

    #[test]
    fn an_agent_commands_writes_are_never_noise() {
        let p = FilterPolicy::default();
        for path in [
            "/home/u/.bashrc",
            "/home/u/.profile",
            "/etc/hosts",
            "/etc/ld.so.cache",
        ] {
            assert_ne!(ignore_reason(&open(path), &p, AGENT), None, "{path} read");
            for flags in [
                libc::O_WRONLY,
                libc::O_RDWR,
                libc::O_WRONLY | libc::O_APPEND,
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            ] {
                assert_eq!(
                    ignore_reason(&write(path, flags), &p, AGENT),
                    None,
                    "{path}"
                );
            }
        }
        // A process setting its own knobs (the tool wrapper's OOM score) changes nothing
        // outside it; another process's entries and /proc/sys are not its own.
        let mut own = write("/proc/1/oom_score_adj", libc::O_WRONLY);
        assert_eq!(
            ignore_reason(&own, &p, AGENT),
            Some(IgnoreReason::RuntimeLoaderNoise)
        );
        own.pid = 2;
        assert_eq!(ignore_reason(&own, &p, AGENT), None);
        let sys = write("/proc/sys/kernel/core_pattern", libc::O_WRONLY);
        assert_eq!(ignore_reason(&sys, &p, AGENT), None);
        // The runtime's own state writes stay its noise.
        assert_eq!(
            ignore_reason(
                &write("/root/.openclaw/state/openclaw.sqlite-wal", libc::O_RDWR),
                &p,
                RUNTIME
            ),
            Some(IgnoreReason::RoutineSessionFileNoise)
        );
    }

    #[test]
    fn a_routine_probe_is_noise_only_when_the_runtime_started_it() {
        let p = FilterPolicy::default();
        let id = Event {
            detail: Detail::Exec(Exec::test("/usr/bin/id", &["id"])),
            ..open("/x")
        };
        let by_runtime = Actor {
            runtime: false,
            runtime_started: true,
        };
        assert_eq!(
            ignore_reason(&id, &p, by_runtime),
            Some(IgnoreReason::TransparentRoutineExec)
        );
        assert_eq!(
            ignore_reason(&id, &p, AGENT),
            None,
            "the agent's own `id` counts"
        );
    }
}

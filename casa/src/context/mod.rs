//! Session context: what CASA's rules read (`execution.*`, `capability.*`, `history.*`).
//!
//! Sits after the session stage: every event accepted into a session is folded into that
//! session's [`SessionContext`], which yields the [`Context`] the rule engine evaluates. All
//! derivation is pure and driven by event timestamps only.
//!
//! Semantics follow the original CASA (`docs/casa-reference.md` §5), with its gaps closed:
//! paths are the kernel-resolved absolute paths, so write→exec matches `./x.sh` against
//! `/tmp/x.sh`, and `opened_deleted_path` / `memfd_or_deleted_exec` really fire.

use serde::{Deserialize, Serialize};

// THE definition of the context: every CEL variable and field, its type and its meaning.
// The structs, the CEL activation, the self-test fixtures, the span's final state, the
// sticky merge and README's field table are all produced from this list (see `fields.rs`).
// To add a field: add it here with a `///` meaning, derive it (`session.rs` for
// `execution`/`capability`; for `history`, `history.rs` for a sequence flag or `facts.rs`
// for a session fact, set in `SessionContext::refresh_history`), then regenerate README's
// table with `casa rules fields --markdown`.
fields::context_schema! {
    /// Sticky over the session: a flag is set once any of the session's processes had it at
    /// an exec or an exit.
    group execution: Execution {
        /// An exec path contains a `suspicious_path_patterns` entry (`/tmp/`, `/dev/shm/`, …),
        /// or is a memfd or a deleted file.
        suspicious_path_exec: bool,
        /// An exec's visible lineage is at least `deep_chain_threshold` ancestors deep.
        deep_chain: bool,
        /// A process or one of its visible ancestors is a shell (`shell_names`).
        shell_in_chain: bool,
        /// A process or one of its visible ancestors is a network tool (`network_tool_names`).
        network_tool_in_chain: bool,
        /// A process or one of its visible ancestors is an interpreter (`interpreter_names`).
        interpreter_in_chain: bool,
        /// A process or one of its visible ancestors is a container runtime
        /// (`container_runtime_names`).
        container_runtime_in_chain: bool,
        /// An exec path is a memfd (`memfd:…`) or a deleted file (`… (deleted)`).
        memfd_or_deleted_exec: bool,
    }

    /// Sticky over the session, from the credentials seen at each exec (`dangerous_count`:
    /// the session maximum).
    group capability: Capability {
        /// An exec ran with at least one `dangerous_capability_names` capability effective.
        has_dangerous_caps: bool,
        /// How many of the dangerous capabilities an exec had effective (session maximum).
        dangerous_count: i64,
        /// An exec ran without a seccomp filter (seccomp mode 0).
        seccomp_disabled: bool,
    }
    internal {
        /// No credential snapshot (effective set or seccomp mode) was available for an exec.
        capability_unknown: bool,
    }

    /// Sticky over the session: the sequence flags are true once their pattern occurred
    /// anywhere in the session (the recent ring plus what left it; a prune retracts a
    /// transparent shell's events only while they are in the ring), the other fields come
    /// from the session's bounded fact sets (distinct items, not events).
    group history: History {
        /// A connect (any result) is followed by an exec.
        connect_then_exec: bool,
        /// A sensitive open (even a failed one) and a connect within
        /// `sensitive_history_window_seconds` of each other, either order (0: anywhere).
        sensitive_then_network: bool,
        /// A sensitive open (even a failed one) and an exec within
        /// `sensitive_history_window_seconds` of each other, either order (0: anywhere).
        sensitive_then_execve: bool,
        /// `burst_open_threshold` opens (outside the burst ignore list) within
        /// `burst_window_seconds`, at any time in the session.
        burst_open: bool,
        /// `burst_connect_threshold` connects to non-local destinations within
        /// `burst_window_seconds`, at any time in the session.
        burst_connect: bool,
        /// `burst_exec_threshold` execs within `burst_window_seconds`, at any time in the
        /// session.
        burst_exec: bool,
        /// A successful write-intent open of a path is followed by an exec of the same path.
        write_then_exec_same_path: bool,
        /// A process opened a file that was already deleted (`… (deleted)`).
        opened_deleted_path: bool,
        /// A session process outlived its parent and was re-parented (daemonised with
        /// `setsid`/`nohup … &`, double-forked, orphaned): it stayed in the session.
        reparented: bool,
        /// How many session processes were re-parented.
        reparented_count: i64,
        /// Distinct sensitive files opened successfully for reading. Not counted: a file the
        /// session wrote itself, and a credential read by its own consumer (`ssh` reading
        /// `~/.ssh/id_*`, `aws` reading `~/.aws/`, `git` reading `~/.git-credentials`, `sudo`
        /// reading `/etc/sudoers`, …).
        sensitive_read_count: i64,
        /// Distinct sensitive files whose open was refused (`EACCES`, `EPERM`: the attempt is
        /// the evidence; a missing file is not counted).
        sensitive_attempt_count: i64,
        /// A sensitive file (or a copy of one) was read — or the environment was piped into a
        /// network tool (`env | curl -d @- …`) — and later a connection to an external
        /// destination succeeded or data was sent to one (not by a package manager fetching
        /// what it installs), anywhere in the session (no window). A public key (`*.pub`) is
        /// not a secret.
        sensitive_then_external: bool,
        /// A file was written by a process that had read a sensitive file (or a copy of
        /// one): `cp`, `cat … >`, a script that reads and writes.
        sensitive_copy_written: bool,
        /// Distinct external destinations (IP, port) connected to, any result. External:
        /// an IP other than loopback and the unspecified address.
        external_destination_count: i64,
        /// Distinct programs run (by path).
        program_count: i64,
        /// A persistence location was written (see `persistence_kinds`).
        persistence_written: bool,
        /// The kinds of persistence location written, first-seen order: `shell_startup`
        /// (`~/.bashrc`, `~/.profile`, `~/.bash_profile`, `~/.zshrc`, `/etc/profile.d/`, …),
        /// `cron`, `systemd` (system and `~/.config/systemd/user/`), `authorized_keys`,
        /// `ld_preload` (`/etc/ld.so.preload`), `autostart` (XDG), `git_hook` (outside a
        /// repository the session created), `python_startup` (`*.pth`, `sitecustomize.py`
        /// outside virtual environments), `account` (`/etc/passwd`, `/etc/shadow`,
        /// `/etc/sudoers*`, `/etc/pam.d/`), `init` (`/etc/rc.local`, `/etc/init.d/`). Also by
        /// a rename or link into one.
        persistence_kinds: Vec<String>,
        /// A file written in the session by a network tool, or by a process that had an
        /// external connection (not a package manager: `pip`, `npm`, `cargo`, `git`, …), was
        /// then run (by any route, as `written_file_run`).
        fetched_file_run: bool,
        /// A file written in the session by a decoder (`base64 -d`, `xxd -r`, …) was then
        /// run (by any route).
        decoded_file_run: bool,
        /// The session opened a file that an earlier session of the same uid wrote after
        /// reading a sensitive file, and then connected to an external destination.
        tainted_file_sent: bool,
        /// The session ran (by any route) a file that an earlier session of the same uid
        /// wrote after reading a sensitive file.
        tainted_file_run: bool,
        /// The evidence for `tainted_file_*`: `session <id> wrote <path> after reading
        /// <source>`, per tainted file opened or run.
        taint_origins: Vec<String>,
        /// Distinct discovery programs run (`whoami`, `id`, `uname`, `ps`, `ss`, `ip`,
        /// `netstat`, `getent`, `lsmod`, …; `find -perm -4000`, `sudo -l`, `crontab -l`):
        /// one is routine, many are a survey of the host (ATT&CK T1082, T1033, T1057, T1016).
        discovery_program_count: i64,
        /// A file written in this session was run: exec'd, read by the shell or interpreter
        /// given it as its script (`sh x.sh`, `python3 x.py`), or run through the dynamic
        /// loader, whatever its name or path by then (T1204, T1059).
        written_file_run: bool,
        /// An exec had `LD_PRELOAD` or `LD_AUDIT` in its environment (read by the sensor
        /// from the new image; T1574.006).
        loader_preload: bool,
        /// ... naming a library written in this session (a dropped library injected).
        loader_preload_written: bool,
        /// A shell or interpreter ran with its stdin or stdout on a socket to an external
        /// peer, an interactive shell (`sh -i`) ran on a pipe (the `mkfifo … | nc` form), or
        /// inline code wired a shell to a socket (`pty.spawn`, `dup2`): a reverse or bind
        /// shell (T1059.004 over T1095).
        interpreter_on_socket: bool,
        /// A network tool's output was piped into a shell or interpreter (`curl … | sh`,
        /// `wget -O- … | bash`): downloaded code run without a file (T1105, T1059).
        fetched_code_piped: bool,
        /// A decoder's output was piped into a shell or interpreter (`base64 -d | sh`;
        /// T1140).
        decoded_code_piped: bool,
        /// The dynamic loader was run directly on a program (`/lib64/ld-linux-x86-64.so.2
        /// ./x`): a way to run a file without its exec bit (T1574.006).
        loader_run_direct: bool,
        /// The dynamic loader was run directly on a file written in this session.
        loader_ran_written_file: bool,
        /// An interpreter ran code given on its command line or stdin (`python3 -c`,
        /// `perl -e`, `node -e`, `php -r`, `python3 -`) rather than a script file (T1059).
        inline_code_run: bool,
        /// A process running inline interpreter code connected to an external destination
        /// (code that fetches more code: nothing lands on disk).
        inline_code_then_external: bool,
        /// A process running inline code that had connected to an external destination then
        /// started a program, itself or through a child (download and run in memory).
        inline_code_fetch_then_exec: bool,
        /// Inline interpreter code evaluates data it builds at run time from a download or a
        /// decoder (`python3 -c "exec(urlopen(…).read())"`, `exec(b64decode(…))`, `node -e
        /// "eval(Buffer.from(…))"`): the code that runs is not on the command line (T1027,
        /// T1140, T1059.006).
        inline_code_evaluates_data: bool,
        /// A shell or REPL history file was removed, truncated, moved away or replaced
        /// (`rm ~/.bash_history`, `> ~/.bash_history`, `ln -sf /dev/null …`; T1070.003).
        history_file_tampered: bool,
        /// A system log was removed or truncated, or that was tried (`rm`, `shred`,
        /// `truncate` of `/var/log/…`, `> /var/log/…`; T1070.002).
        logs_tampered: bool,
        /// A file's timestamps were set from another file or a given date (`touch -r`,
        /// `touch -d`, `touch -t`; T1070.006).
        timestomp: bool,
        /// A shell was started by a network tool (`nc -e /bin/sh`, `socat exec:bash`,
        /// `ncat --exec`): a shell served over the network (T1059.004, T1095).
        shell_from_network_tool: bool,
        /// A fetched or decoded file was run from a hidden name (`.x`) or a volatile place
        /// (`/dev/shm`, `/var/tmp`, `/run/user`): a payload staged out of sight (T1564.001,
        /// T1105).
        fetched_run_hidden: bool,
        /// A file this session wrote was run under the name of a system daemon or the agent
        /// runtime (`sshd`, `kworker`, `cron`, `node`, …; T1036.005), or a process renamed
        /// itself after the runtime (`openclaw`, `node`) while running another program
        /// (T1036.004).
        masquerade_run: bool,
        /// A process running code that came from the network or a decoder (a fetched or
        /// decoded file run by any route, fetched or decoded code piped into a shell or
        /// interpreter, code fetched by inline code), or a process it started, tried to reach
        /// an external destination: a second stage calling home (T1105 then T1071).
        fetched_code_then_external: bool,
        /// The file system was searched for credential files by name (`find … -name 'id_*'`,
        /// `-name '*.pem'`, `-name .env`, `locate credentials`; T1552.001, T1552.004, T1083).
        credential_search: bool,
        /// Distinct account and identity discovery programs run (`id`, `whoami`, `groups`,
        /// `getent`, `who`, `last`, `lastlog`, a command naming `/etc/passwd` or `/etc/group`;
        /// T1087.001, T1033, T1069.001).
        account_discovery_count: i64,
        /// A search for a way to more privilege: set-uid files (`find -perm -4000`), file
        /// capabilities (`getcap`, `capsh`), `sudo -l` (T1548.001, T1548.003).
        privilege_discovery: bool,
        /// Distinct security products (`falco`, `auditd`, `osquery`, `wazuh`, `tetragon`,
        /// `sysdig`, `clamav`, …) named on the session's command lines (T1518.001).
        security_software_count: i64,
        /// A set-uid or set-gid bit was set, or its setting tried (`chmod 4755`, `chmod u+s`,
        /// `install -m 4755`; T1548.001).
        setid_mode_set: bool,
        /// A write-intent open of a persistence location failed (a denied attempt at
        /// `/etc/cron.d/`, `/etc/ld.so.preload`, `/etc/passwd`, …).
        persistence_attempted: bool,
        /// A container engine's socket (`docker.sock`, `containerd.sock`, `podman.sock`, …) was
        /// connected to by a program that is not one of `container_runtime_names` (driving the
        /// engine directly), or a container was started that reaches the host (`--privileged`,
        /// `--pid=host`, the host's `/` mounted): T1611, T1610.
        container_socket_access: bool,
        /// The most distinct ports the session tried on one external host: a port scan tries
        /// many (T1046).
        ports_probed_max: i64,
        /// Bytes sent to external destinations (by any route: `write`, `send*`, io_uring; as
        /// the sensor reports them, at each doubling per socket), over the session.
        external_bytes_sent: i64,
        /// One of the session's fact sets reached its bound and refused an item: the facts
        /// above may be incomplete.
        facts_overflowed: bool,
        /// The kernel lost events while the session was open: its facts may be incomplete.
        events_lost: bool,
        /// Records the kernel lost while the session was open (every session open at that
        /// moment counts the whole loss: the kernel does not say whose records they were).
        events_lost_count: i64,
    }
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
    /// Size of the session's recent ring (`recent_events` in `sessions.log`); the history
    /// flags are over the whole session.
    pub recent_event_limit: usize,
    /// Read for compatibility with CASA's files; bounds nothing since
    /// `history.opened_deleted_path` became a session fact.
    pub max_per_process_artifacts: usize,
    pub deep_chain_threshold: usize,
    pub burst_open_threshold: usize,
    pub burst_connect_threshold: usize,
    pub burst_exec_threshold: usize,
    /// Burst sliding window, nanoseconds.
    pub burst_window_ns: u64,
    /// Sensitive-access ↔ network/exec window, nanoseconds; 0 = anywhere in the session.
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
mod facts;
mod fields;
mod history;
mod session;
mod taint;
mod techniques;
#[cfg(test)]
mod tests;

pub use capability::{
    CAPABILITY_NAMES, capability_bit, capability_bits, dangerous_mask, exec_capability,
};
pub use classify::{
    basename, has_write_intent, is_burst_excluded_connect, is_burst_ignored_open,
    is_memfd_or_deleted, is_sensitive_path, is_suspicious_exec_path, name_in,
};
pub use facts::{
    Bounded, DESTINATIONS_MAX, Destination, FactFlags, Facts, FileKey, INHERITED_MAX,
    LOADER_VARS_MAX, PERSISTENCE_KINDS, PERSISTENCE_MAX, PROCESS_WRITES_MAX, PROGRAMS_MAX,
    Provenance, SENSITIVE_MAX, WRITTEN_FILES_MAX, WrittenFile, is_container_socket,
    is_credential_use, is_decoder, is_external, persistence_kind,
};
pub use fields::{
    Field, FieldKind, FieldType, FieldValue, Group, README_BEGIN, README_END, SESSION_ID_DOC,
    baseline_fixture, markdown_table, plain_table,
};
pub use history::{
    RecentEvent, RecentEventSorted, RecentKind, WRITTEN_PATHS_MAX, history_reference,
};
pub use session::{Observed, SessionContext};
pub use taint::{TAINT_MAX_AGE_NS, TAINT_PER_UID_MAX, TAINT_UIDS_MAX, Taint, TaintStore};

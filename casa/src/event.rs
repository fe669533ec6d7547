//! Decoded, owned events: what the rest of the pipeline sees.
//!
//! [`crate::decode`] turns one kernel record into an [`Event`]; live capture and replay both
//! produce this type, and everything downstream (sessions, context, rules, sinks) consumes it.
//! Strings that come from the traced processes (argv, paths, comm) are attacker-controlled
//! bytes, so they are kept as [`Bytes`] and never assumed to be UTF-8.

use std::{fmt, net::IpAddr};

use serde::{Serialize, Serializer};

/// Bytes from a traced process (a path, an argument, a command name).
///
/// Serialised as a JSON string: valid UTF-8 is written as is; invalid bytes are written as
/// `\xNN` escapes (and, in such a string only, a literal backslash as `\\`), so the output
/// is always valid JSON and never loses which bytes were there.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text form described on the type.
    pub fn to_text(&self) -> String {
        match std::str::from_utf8(&self.0) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                let mut out = String::with_capacity(self.0.len() + 8);
                for chunk in self.0.utf8_chunks() {
                    for c in chunk.valid().chars() {
                        if c == '\\' {
                            out.push_str("\\\\");
                        } else {
                            out.push(c);
                        }
                    }
                    for b in chunk.invalid() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                out
            }
        }
    }

    pub fn starts_with(&self, prefix: &[u8]) -> bool {
        self.0.starts_with(prefix)
    }

    pub fn ends_with(&self, suffix: &[u8]) -> bool {
        self.0.ends_with(suffix)
    }
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Self {
        Self(b.to_vec())
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_text())
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Display is for consoles: escape control characters so nothing reaches a terminal raw.
        for c in self.to_text().chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

/// One observed event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// `CLOCK_BOOTTIME` nanoseconds from the kernel; the pipeline's only clock.
    pub ktime_ns: u64,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id (`real_parent->tgid`) when the event happened.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub comm: Bytes,
    #[serde(flatten)]
    pub detail: Detail,
}

/// What happened, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
    Open(Open),
    Connect(Connect),
    /// Kinds added with wire version 2 (serialised with their own `kind`). Sessions see them
    /// for membership; they are not scored or logged yet (the pipeline counts them as
    /// ignored, reason `not_yet_analysed`).
    #[serde(untagged)]
    Activity(Activity),
}

/// Activity the sensor reports from wire version 2 on, beyond exec/open/connect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity {
    /// `sendto`/`sendmsg`/`sendmmsg` with an explicit destination, `bind`, `listen`, `accept`.
    Socket(SocketOp),
    /// A TCP socket entered `syn_sent` (outgoing connection by any route) or `listen`.
    Tcp(TcpState),
    /// `rename*`, `link*`, `symlink*`, `unlink*`, `*chmod*`.
    File(FileOp),
    /// `setsid`: the process left its session and controlling terminal (daemonising).
    Setsid(Setsid),
    /// `ptrace` starting to trace (`attach`, `seize`, `traceme`).
    Ptrace(Ptrace),
    /// `memfd_create`: an anonymous in-memory file.
    Memfd(MemfdCreate),
    /// An io_uring ring created, or a request submitted to one.
    IoUring(IoUring),
    /// Bytes sent on one socket passed a threshold (first send, then each doubling).
    SendVolume(SendVolume),
}

/// Running total of bytes a process sent on one socket, by any route (`write`, `send*`,
/// io_uring): reported at the first send and each time the total has doubled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SendVolume {
    pub total_bytes: u64,
    /// Bytes of the send that crossed the threshold.
    pub last_bytes: u64,
    /// IP protocol (6 TCP, 17 UDP) for inet sockets.
    pub protocol: u16,
    /// The socket's peer (`inet` with address 0.0.0.0/:: and port 0 when it is not
    /// connected), or the bare family for other sockets.
    pub remote: SockAddr,
    /// Local port (host order), 0 when unbound.
    pub local_port: u16,
}

/// What an [`IoUring`] event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IoUringOp {
    /// `io_uring_setup`: a ring was created.
    Create,
    /// A request was submitted (by `io_uring_enter` or the ring's SQPOLL thread).
    Submit,
}

/// An io_uring ring created, or a request submitted to one, by a tracked process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IoUring {
    pub op: IoUringOp,
    /// Submit: `IORING_OP_*` number and its name in lower case (`openat`, `connect`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opcode: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opcode_name: Option<&'static str>,
    /// Create: the ring's fd and entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sq_entries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cq_entries: Option<u32>,
    /// Create: `IORING_SETUP_*`.
    pub flags: u32,
    /// The path as the caller passed it (not resolved): `OPENAT`/`OPENAT2`/`UNLINKAT`/
    /// `MKDIRAT`, the old name of `RENAMEAT`/`LINKAT`, the target text of `SYMLINKAT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Bytes>,
    /// The new name of `RENAMEAT`/`LINKAT`, the link of `SYMLINKAT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_path: Option<Bytes>,
    /// `CONNECT`, `SENDMSG`, `SEND` (and zero-copy sends) with a destination: where to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SockAddr>,
}

/// `setsid` by a tracked process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Setsid {
    /// The new session id, or `-errno`.
    pub result: i64,
}

/// `ptrace` starting to trace a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ptrace {
    /// `attach`, `seize` or `traceme`.
    pub request: &'static str,
    /// The traced process (0 for `traceme`).
    pub target_pid: u32,
    /// 0 or `-errno`.
    pub result: i64,
}

/// `memfd_create` by a tracked process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemfdCreate {
    /// The name passed (shown as `/memfd:NAME` in `/proc/PID/fd` and in an exec of it).
    pub name: Bytes,
    /// `MFD_*` flags.
    pub flags: u32,
    /// The new fd, or `-errno`.
    pub result: i64,
}

/// Which file-lifecycle syscall a [`FileOp`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOpKind {
    Rename,
    Renameat,
    Renameat2,
    Link,
    Linkat,
    Symlink,
    Symlinkat,
    Unlink,
    Unlinkat,
    Chmod,
    Fchmodat,
    Fchmodat2,
    Fchmod,
}

/// A file-lifecycle syscall of a tracked process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileOp {
    pub op: FileOpKind,
    /// 0 or `-errno`.
    pub result: i64,
    /// The operand: the file renamed or linked from, unlinked, chmod-ed; absolute (the raw
    /// string joined to its directory as the kernel resolved it, normalised lexically, or for
    /// `fchmod` and `linkat(fd, "", …, AT_EMPTY_PATH)` the open file's path, e.g.
    /// `/tmp/#1234 (deleted)` for an `O_TMPFILE` file). For `symlink*` this is `None` and
    /// `raw_path` is the link's target text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Bytes>,
    /// The string the caller passed for the operand (empty for `fchmod`).
    pub raw_path: Bytes,
    /// The destination (`rename*`, `link*`) or the link created (`symlink*`), absolute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_path: Option<Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_raw_path: Option<Bytes>,
    /// `*chmod*`: the new mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// The syscall's flags argument (`RENAME_*`, `AT_*`), 0 when it has none.
    pub flags: u32,
    /// The file's identity, when an open file names it (`fchmod`, `linkat` with
    /// `AT_EMPTY_PATH`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileId>,
}

impl Activity {
    /// The kind's name as written in summaries.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Activity::Socket(_) => "socket",
            Activity::Tcp(_) => "tcp",
            Activity::File(_) => "file_op",
            Activity::Setsid(_) => "setsid",
            Activity::Ptrace(_) => "ptrace",
            Activity::Memfd(_) => "memfd",
            Activity::IoUring(_) => "io_uring",
            Activity::SendVolume(_) => "send_volume",
        }
    }
}

/// Which socket operation a [`SocketOp`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketOpKind {
    Sendto,
    Sendmsg,
    Sendmmsg,
    Bind,
    Listen,
    Accept,
    Accept4,
}

/// A socket operation of a tracked process (see [`SocketOpKind`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SocketOp {
    pub op: SocketOpKind,
    /// Bytes sent, messages sent (`sendmmsg`), 0, the accepted fd, or `-errno`.
    pub result: i64,
    pub fd: i32,
    /// Sends: the destination passed (only the first send per socket and destination is
    /// reported); `bind`: the address bound; `listen`: the socket's local address; `accept`:
    /// the connection's peer.
    pub addr: SockAddr,
    /// `sendto`: bytes asked to send; `listen`: the backlog; otherwise 0.
    pub len: u64,
}

/// A TCP state change of a tracked process's socket (`sock:inet_sock_set_state`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TcpState {
    /// `TCP_*` state names in lower case (`close`, `syn_sent`, `listen`, …).
    pub old: &'static str,
    pub new: &'static str,
    /// At `syn_sent` the local port is usually still 0 (the kernel picks it right after).
    pub local: SockAddr,
    pub remote: SockAddr,
}

impl Detail {
    /// The kind's name as written in logs and summaries.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Detail::Exec(_) => "exec",
            Detail::Fork(_) => "fork",
            Detail::Exit(_) => "exit",
            Detail::Open(_) => "open",
            Detail::Connect(_) => "connect",
            Detail::Activity(a) => a.kind_name(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exec {
    /// 0 on success, `-errno` when the exec failed.
    pub result: i32,
    /// The executed file: absolute and resolved by the kernel when `path_resolved`, else the
    /// name the caller passed.
    pub path: Bytes,
    pub path_resolved: bool,
    /// The executed file is a `#!` script: `path` is the script (absolute, not
    /// symlink-resolved), argv\[0\] its interpreter.
    pub script: bool,
    /// The resolved path lost leading components (deeper than the kernel walk allows).
    pub path_truncated: bool,
    /// The name the caller passed to `execve` (e.g. `./x.sh`, `/dev/fd/3`).
    pub filename: Bytes,
    pub argv: Vec<Bytes>,
    pub argv_truncated: bool,
    /// argv could not be read (the list is empty, not the process's argv).
    pub argv_unreadable: bool,
    pub via_execveat: bool,
    pub old_tid: u32,
    /// Effective capabilities after the exec, when read (`None`: unreadable).
    pub cap_effective: Option<u64>,
    /// `seccomp.mode` after the exec, when read.
    pub seccomp_mode: Option<u32>,
    pub no_new_privs: bool,
    /// What the kernel knew about the exec beyond the fields above (wire version 2; empty in
    /// older recordings, and then not serialised).
    #[serde(flatten)]
    pub facts: ExecFacts,
}

/// A file's identity: the device and inode `stat(2)` reports (`st_dev` in the user-space
/// encoding, `st_ino`). Paths can be renamed, linked and symlinked; this cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// The kind of file open on a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FdKind {
    /// Nothing is open on it.
    Closed,
    Socket,
    /// A pipe or FIFO.
    Pipe,
    /// A terminal (`/dev/pts/*`, `/dev/tty*`, the console).
    Tty,
    /// Another character device (`/dev/null`, `/dev/urandom`, …).
    CharDevice,
    File,
    Directory,
    Other,
}

/// One of fds 0, 1 and 2 of a newly exec'd program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StdioFd {
    pub fd: u8,
    pub kind: FdKind,
    /// The open file's identity (a pipe's is shared by its two ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileId>,
    /// For a socket: its address family (`AF_*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<u16>,
    /// For a connected inet socket: the peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<SockAddr>,
}

/// Exec facts read in the kernel (wire version 2); every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExecFacts {
    /// The executed binary (for a script: its interpreter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileId>,
    /// For a `#!` script: the identity of the script's own file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_file: Option<FileId>,
    /// For a `#!` script: the absolute path of the script's own file as the kernel holds it
    /// (symlinks resolved, ` (deleted)` when unlinked) — where `path` is the name the kernel
    /// handed to the interpreter, joined with the working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_path: Option<Bytes>,
    /// `LD_PRELOAD`/`LD_LIBRARY_PATH`/`LD_AUDIT` as `NAME=value` from the new image's
    /// environment (each cut to 511 bytes); tracked processes only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loader_env: Vec<Bytes>,
    /// The environment scan stopped early (more than 128 strings, or one over 4 KiB): a loader
    /// variable may have been missed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub env_truncated: bool,
    /// fds 0, 1 and 2 after the exec; tracked processes only (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stdio: Vec<StdioFd>,
    /// A response killed the process in the kernel at this exec (a kill order, or a
    /// preventive rule under `--enforce`): the new program never ran.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub prevented: bool,
}

impl ExecFacts {
    /// The sensed state of stdio fd `n` (0, 1 or 2), when the sensor reported it.
    pub fn stdio_fd(&self, n: u8) -> Option<&StdioFd> {
        self.stdio.iter().find(|s| s.fd == n)
    }
}

impl StdioFd {
    /// The identity of the pipe open on this fd (shared by the pipe's two ends), if it is one.
    pub fn pipe(&self) -> Option<(u64, u64)> {
        (self.kind == FdKind::Pipe)
            .then_some(self.file)
            .flatten()
            .map(|f| (f.dev, f.ino))
    }
}

impl Exec {
    /// True when the executed file is a memfd or an unlinked file.
    pub fn memfd_or_deleted(&self) -> bool {
        let p = self.path.as_bytes();
        p.starts_with(b"memfd:") || p.starts_with(b"/memfd:") || p.ends_with(b" (deleted)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fork {
    pub child_pid: u32,
    pub child_tid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exit {
    /// `wait(2)`-encoded status.
    pub exit_code: u32,
    /// Exit status when the process exited normally.
    pub status: Option<u8>,
    /// Terminating signal when it was killed.
    pub signal: Option<u8>,
    pub core_dumped: bool,
    /// The thread-group leader exited (`tid == pid`).
    pub leader: bool,
    /// The last thread exited: the process is gone.
    pub process_gone: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Open {
    /// `openat`, `openat2`, `open` or `creat`.
    pub syscall: &'static str,
    /// The fd, or `-errno`.
    pub result: i64,
    pub flags: u32,
    pub mode: u32,
    pub dfd: i32,
    /// The path string as the caller passed it.
    pub raw_path: Bytes,
    /// Absolute path of the opened file from the kernel (successful opens); ends in
    /// ` (deleted)` when the file was unlinked. For a failed relative open (wire version 2):
    /// the absolute path it named (see [`OpenFacts::path_joined`]).
    pub path: Option<Bytes>,
    /// The resolved path lost leading components.
    pub path_truncated: bool,
    pub raw_unreadable: bool,
    /// Wire version 2 facts (empty in older recordings, and then not serialised).
    #[serde(flatten)]
    pub facts: OpenFacts,
}

/// Open facts read in the kernel (wire version 2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpenFacts {
    /// The opened file's identity (successful opens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileId>,
    /// `path` is not the opened file (the open failed) but the caller's relative string joined
    /// to the directory it was relative to (working directory or `dfd`), as resolved by the
    /// kernel, then normalised lexically.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub path_joined: bool,
}

impl Open {
    /// The best absolute-or-raw path: the kernel's resolution when there is one.
    pub fn best_path(&self) -> &Bytes {
        self.path.as_ref().unwrap_or(&self.raw_path)
    }
}

/// Where a connect went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum SockAddr {
    Inet {
        addr: IpAddr,
        port: u16,
        /// IPv6 address that maps an IPv4 one (`::ffff:a.b.c.d`); `addr` is the IPv4 form.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        v4_mapped: bool,
    },
    Unix {
        /// Filesystem path, or `@name` for an abstract socket.
        path: Bytes,
    },
    Unspec,
    /// Another address family (its `AF_*` number).
    Other {
        af: u16,
    },
    /// The kernel could not read the caller's sockaddr.
    Unreadable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Connect {
    /// 0, or `-errno` (`-115` = `EINPROGRESS`).
    pub result: i32,
    pub fd: i32,
    pub addr: SockAddr,
}

#[cfg(test)]
impl Exec {
    /// A successful exec of `path` (also the name passed) with `argv`, no capabilities and
    /// seccomp disabled: the common shape of test fixtures.
    pub(crate) fn test(path: &str, argv: &[&str]) -> Self {
        Self {
            result: 0,
            path: Bytes::from(path),
            path_resolved: true,
            script: false,
            path_truncated: false,
            filename: Bytes::from(path),
            argv: argv.iter().map(|a| Bytes::from(*a)).collect(),
            argv_truncated: false,
            argv_unreadable: false,
            via_execveat: false,
            old_tid: 0,
            cap_effective: Some(0),
            seccomp_mode: Some(0),
            no_new_privs: false,
            facts: ExecFacts::default(),
        }
    }
}

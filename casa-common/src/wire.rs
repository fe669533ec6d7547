//! Record layout written by the kernel programs into the `EVENTS` ring buffer.
//!
//! Every record starts with a [`Header`]; `Header::kind` selects the body that follows it
//! (at [`BODY_OFFSET`]); kinds with strings append a data area after the body, in the order
//! the body's `*_len` fields list. `Header::size` is the size of the whole record. All
//! integers are in host byte order except where a field says otherwise.

/// Length of `task_struct::comm`, including its NUL.
pub const TASK_COMM_LEN: usize = 16;
/// Longest path the kernel programs capture (the kernel's `PATH_MAX`, NUL included).
pub const PATH_MAX: usize = 4096;
/// Most argv bytes (NUL-separated arguments) captured for one exec.
pub const ARGV_MAX: usize = 4096;
/// Most arguments read one by one from a failed exec's argv array.
pub const ARGV_MAX_ARGS: usize = 32;
/// Bytes of the user's `sockaddr` kept for a connect (covers `sockaddr_un` and `sockaddr_in6`).
pub const SOCKADDR_MAX: usize = 128;
/// Longest dynamic-loader variable (`NAME=value`, NUL included) kept from an exec's environment.
pub const LOADER_ENV_MAX: usize = 512;
/// Most environment strings scanned for dynamic-loader variables on one exec.
pub const ENV_SCAN_MAX: usize = 128;

/// Event kinds. The ids are explicit and grouped by area (process 1–19, file 20–39,
/// network 40–59); a retired id is never reused.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A program image was executed (or an `execve`/`execveat` failed): [`ExecBody`].
    Exec = 1,
    /// A new process (not a thread) was created: [`ForkBody`].
    Fork = 2,
    /// A thread or a whole process exited: [`ExitBody`].
    Exit = 3,
    /// Wire version 2: `setsid`, `ptrace` attach (`PTRACE_ATTACH`/`SEIZE`/`TRACEME`),
    /// `memfd_create` returned: [`ProcOpBody`].
    ProcOp = 4,
    /// `openat`/`openat2` (and, from wire version 2, `open`/`creat`) returned: [`OpenBody`].
    Open = 20,
    /// Wire version 2: `rename*`, `link*`, `symlink*`, `unlink*`, `*chmod*` returned:
    /// [`FileOpBody`].
    FileOp = 21,
    /// `connect` returned: [`ConnectBody`].
    Connect = 40,
    /// Wire version 2: `sendto`/`sendmsg`/`sendmmsg` with an explicit destination (first use
    /// per socket and destination), `bind`, `listen`, `accept`/`accept4`: [`SockOpBody`].
    SockOp = 41,
    /// Wire version 2: a TCP socket of a tracked process entered `SYN_SENT` (an outgoing
    /// connection, by any route: syscall or io_uring) or `LISTEN` (`sock:inet_sock_set_state`):
    /// [`TcpStateBody`].
    TcpState = 42,
    /// Wire version 2: bytes a tracked process has sent on one socket passed a threshold
    /// (its first send, then each doubling; `sock:sock_send_length`): [`SendVolumeBody`].
    SendVolume = 43,
    /// Wire version 2: an io_uring instance was created, or a request submitted, by a tracked
    /// process: [`IoUringBody`].
    IoUring = 60,
}

impl EventKind {
    /// The kind with this wire id, if any.
    pub const fn from_u16(id: u16) -> Option<Self> {
        match id {
            1 => Some(Self::Exec),
            2 => Some(Self::Fork),
            3 => Some(Self::Exit),
            4 => Some(Self::ProcOp),
            20 => Some(Self::Open),
            21 => Some(Self::FileOp),
            40 => Some(Self::Connect),
            41 => Some(Self::SockOp),
            42 => Some(Self::TcpState),
            43 => Some(Self::SendVolume),
            60 => Some(Self::IoUring),
            _ => None,
        }
    }
}

/// The first bytes of every record: who did it, when.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// [`crate::WIRE_VERSION`] of the program that wrote the record.
    pub version: u16,
    /// [`EventKind`] id.
    pub kind: u16,
    /// Size of the whole record (header, body and data) in bytes.
    pub size: u32,
    /// `CLOCK_BOOTTIME` nanoseconds (`bpf_ktime_get_boot_ns`) when the event happened.
    pub ktime_ns: u64,
    /// Thread id (the kernel's `pid`).
    pub tid: u32,
    /// Process id (the kernel's `tgid`).
    pub tgid: u32,
    /// `real_parent->tgid` at the time of the event.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub _pad0: u32,
    /// cgroup v2 id of the task.
    pub cgroup_id: u64,
    /// `task_struct::comm`, NUL-padded (after an exec: the new image's name).
    pub comm: [u8; TASK_COMM_LEN],
}

/// Where a body starts: right after the header.
pub const BODY_OFFSET: usize = core::mem::size_of::<Header>();

/// Identity of a file as the kernel holds it: `inode->i_sb->s_dev` (kernel `dev_t` encoding,
/// `major << 20 | minor`), `inode->i_ino` and `inode->i_mode`. `ino == 0`: not known.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileId {
    pub ino: u64,
    pub dev: u32,
    pub mode: u32,
}

/// One of an exec'd program's fds 0, 1 and 2 (wire version 2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StdioFd {
    /// The open file's identity; `mode == 0`: the fd is closed (or could not be read).
    pub id: FileId,
    /// `inode->i_rdev` (kernel encoding) for device files.
    pub rdev: u32,
    /// Socket address family (`skc_family`) when the file is a socket.
    pub family: u16,
    /// Peer port (host order) of a connected inet socket.
    pub port: u16,
    /// Peer address: IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
}

/// `ExecExt::flags`: `stdio` was read (tracked processes only).
pub const EXEC_EXT_STDIO: u32 = 1 << 0;
/// `ExecExt::flags`: the environment was scanned for dynamic-loader variables (tracked only).
pub const EXEC_EXT_ENV_SCANNED: u32 = 1 << 1;
/// `ExecExt::flags`: the script's own file is unlinked (` (deleted)`).
pub const EXEC_EXT_SCRIPT_DELETED: u32 = 1 << 3;
/// `ExecExt::flags`: the environment had more strings than the scan covers, or a string was too
/// long to step over: a loader variable after that point may have been missed.
pub const EXEC_EXT_ENV_TRUNCATED: u32 = 1 << 2;

/// Wire version 2: what follows [`ExecBody`] in an exec record, before the data area.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecExt {
    /// The executed binary (`mm->exe_file`; for a script, its interpreter).
    pub file: FileId,
    /// For a `#!` script: the script's own file (`ino == 0` otherwise or when not found).
    pub script: FileId,
    /// fds 0, 1 and 2 after the exec.
    pub stdio: [StdioFd; 3],
    /// `EXEC_EXT_*` flags.
    pub flags: u32,
    /// Bytes of loader variables in the data area (after `script_path`), each
    /// `NAME=value\0`.
    pub env_len: u16,
    /// Bytes of the script's own path in the data area (after `filename`): walked from the
    /// script's `struct file`, absolute, symlinks resolved (0 when not a script or not found).
    pub script_path_len: u16,
}

/// Wire version 2: what follows [`OpenBody`] in an open record, before the data area.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenExt {
    /// The opened file (successful opens; `ino == 0` otherwise).
    pub file: FileId,
}

/// `ExecBody::flags`: argv was longer than [`ARGV_MAX`] bytes (or had more than
/// [`ARGV_MAX_ARGS`] arguments on a failed exec) and was cut.
pub const EXEC_ARGV_TRUNCATED: u32 = 1 << 0;
/// `ExecBody::flags`: `path` was resolved in the kernel from the executed file (a walk of its
/// dentry and mount chain), so it is absolute; otherwise it is the name the caller passed.
pub const EXEC_PATH_RESOLVED: u32 = 1 << 1;
/// `ExecBody::flags`: the task had `no_new_privs` set after the exec.
pub const EXEC_NO_NEW_PRIVS: u32 = 1 << 2;
/// `ExecBody::flags`: `cap_effective` and `seccomp_mode` were read successfully.
pub const EXEC_CREDS_VALID: u32 = 1 << 3;
/// `ExecBody::flags`: the exec came through `execveat` (e.g. `fexecve`).
pub const EXEC_VIA_EXECVEAT: u32 = 1 << 4;
/// `ExecBody::flags`: reading argv from user memory failed; `argv_len` is 0.
pub const EXEC_ARGV_UNREADABLE: u32 = 1 << 5;
/// `ExecBody::flags`: the executed file is unlinked or has no name in any directory (a
/// memfd): userspace shows it the way `d_path` does, with ` (deleted)` appended.
pub const EXEC_PATH_DELETED: u32 = 1 << 6;
/// `ExecBody::flags`: the resolved path was deeper or longer than the kernel walk allows; its
/// leading components are missing.
pub const EXEC_PATH_TRUNCATED: u32 = 1 << 7;
/// `ExecBody::flags`: the executed file is a script (`#!`): `path` is the script (absolute,
/// joined with the working directory when the caller named it relatively, not
/// symlink-resolved) and argv\[0\] names the interpreter.
pub const EXEC_SCRIPT: u32 = 1 << 8;
/// `ExecBody::flags`: a preventive rule (`casa_common::respond`) killed the process at this
/// exec; the new program never ran an instruction.
pub const EXEC_PREVENTED: u32 = 1 << 9;

/// Body of [`EventKind::Exec`]. Data: `path`, then argv (NUL-separated arguments, each
/// followed by a NUL), then `filename` (the name the caller passed to `execve`); in wire
/// version 2 an [`ExecExt`] sits between this body and the data, and the script's own path
/// (`ExecExt::script_path_len` bytes) and the loader variables (`ExecExt::env_len`) follow
/// `filename`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecBody {
    /// 0 when the exec succeeded, `-errno` when `execve`/`execveat` failed.
    pub result: i32,
    /// Thread id before the exec (differs from `tid` when a non-leader thread exec'd).
    pub old_tid: u32,
    /// Effective capability mask after the exec (`cred->cap_effective`).
    pub cap_effective: u64,
    /// `task->seccomp.mode` after the exec (0 disabled, 1 strict, 2 filter).
    pub seccomp_mode: u32,
    /// `EXEC_*` flags.
    pub flags: u32,
    pub path_len: u16,
    pub argv_len: u16,
    pub filename_len: u16,
    pub _pad0: u16,
}

/// Body of [`EventKind::Fork`]. The header describes the parent (the forking thread).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkBody {
    pub child_tid: u32,
    pub child_tgid: u32,
}

/// `ExitBody::flags`: the exiting thread is the thread-group leader (`tid == tgid`).
pub const EXIT_LEADER: u32 = 1 << 0;
/// `ExitBody::flags`: this was the last live thread of the process: the process is gone.
pub const EXIT_GROUP_DEAD: u32 = 1 << 1;

/// Body of [`EventKind::Exit`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitBody {
    /// `task->exit_code` as `wait(2)` encodes it: `(status << 8) | signal | 0x80 if core`.
    pub exit_code: u32,
    /// `EXIT_*` flags.
    pub flags: u32,
}

/// `OpenBody::syscall`: `openat(2)`.
pub const OPEN_SYSCALL_OPENAT: u32 = 1;
/// `OpenBody::syscall`: `openat2(2)`.
pub const OPEN_SYSCALL_OPENAT2: u32 = 2;
/// `OpenBody::syscall` (wire version 2): the legacy `open(2)`.
pub const OPEN_SYSCALL_OPEN: u32 = 3;
/// `OpenBody::syscall` (wire version 2): `creat(2)` (flags `O_CREAT|O_WRONLY|O_TRUNC`).
pub const OPEN_SYSCALL_CREAT: u32 = 4;
/// `OpenBody::flags2`: `path` was resolved in the kernel from the opened file (successful
/// opens only).
pub const OPEN_PATH_RESOLVED: u32 = 1 << 0;
/// `OpenBody::flags2`: the caller's path string could not be read.
pub const OPEN_RAW_UNREADABLE: u32 = 1 << 1;
/// `OpenBody::flags2`: the opened file is unlinked (reached through `/proc/PID/fd/N` after
/// `unlink`, say) or a memfd; shown with ` (deleted)` appended.
pub const OPEN_PATH_DELETED: u32 = 1 << 2;
/// `OpenBody::flags2`: the resolved path lost its leading components (too deep or too long).
pub const OPEN_PATH_TRUNCATED: u32 = 1 << 3;
/// `OpenBody::flags2` (wire version 2): the open failed and `raw` was relative: `path` is the
/// caller's working directory (or `dfd`'s directory), resolved in the kernel, joined with `raw`
/// (not normalised, symlinks in `raw` not followed).
pub const OPEN_PATH_JOINED: u32 = 1 << 4;

/// Body of [`EventKind::Open`]. Data: `raw` (the path string the caller passed), then `path`
/// (the absolute path of the opened file, when `OPEN_PATH_RESOLVED`, or the joined path when
/// `OPEN_PATH_JOINED`). In wire version 2 an [`OpenExt`] sits between this body and the data.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OpenBody {
    /// The syscall's return value: the new fd, or `-errno`.
    pub result: i64,
    /// `open(2)` flags (`O_*`).
    pub open_flags: u32,
    /// Creation mode.
    pub mode: u32,
    /// The directory fd argument (`AT_FDCWD` = -100).
    pub dfd: i32,
    /// `OPEN_SYSCALL_*`.
    pub syscall: u32,
    /// `OPEN_*` flags.
    pub flags2: u32,
    pub raw_len: u16,
    pub path_len: u16,
}

/// `ConnectBody::flags`: the user's sockaddr could not be read.
pub const CONNECT_ADDR_UNREADABLE: u32 = 1 << 0;

/// Body of [`EventKind::Connect`]. No data area: the caller's `sockaddr` is kept raw and
/// parsed in userspace (family, address, port, unix path).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectBody {
    /// The syscall's return value: 0, or `-errno` (`-EINPROGRESS` for non-blocking sockets).
    pub result: i32,
    pub fd: i32,
    /// `addrlen` as passed by the caller.
    pub addrlen: u32,
    /// `CONNECT_*` flags.
    pub flags: u32,
    /// The first `min(addrlen, SOCKADDR_MAX)` bytes of the caller's sockaddr.
    pub sockaddr: [u8; SOCKADDR_MAX],
}

/// Most bytes of loader variables kept for one exec.
pub const LOADER_ENV_TOTAL: usize = 3 * LOADER_ENV_MAX;
/// Body of [`EventKind::SendVolume`]. Ports in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SendVolumeBody {
    /// Bytes sent on the socket so far (by this process, since casa started).
    pub total: u64,
    /// Bytes of the send that crossed the threshold.
    pub last: u64,
    pub family: u16,
    pub protocol: u16,
    /// The socket's peer port and local port (0 for an unconnected socket).
    pub dport: u16,
    pub sport: u16,
    /// The socket's peer (IPv4 in the first 4 bytes, or IPv6); zero when unconnected.
    pub daddr: [u8; 16],
}

/// `IoUringBody::op`: a ring was created (`io_uring_setup`).
pub const IO_URING_CREATE: u32 = 1;
/// `IoUringBody::op`: a request was submitted.
pub const IO_URING_SUBMIT: u32 = 2;
/// `IoUringBody::flags2`: `sockaddr` holds the request's destination (`CONNECT`, `SENDMSG`,
/// `SEND`, and the zero-copy sends).
pub const IO_URING_ADDR: u32 = 1 << 0;

/// Body of [`EventKind::IoUring`]. Data: the path of an `OPENAT`/`OPENAT2`/`UNLINKAT`/
/// `MKDIRAT` request, or the old path of `RENAMEAT`/`LINKAT` (the target text of
/// `SYMLINKAT`) (`path_len` bytes, as the caller passed it), then the new path
/// (`new_path_len`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IoUringBody {
    /// `IO_URING_CREATE` or `IO_URING_SUBMIT`.
    pub op: u32,
    /// `IORING_OP_*` of a submitted request.
    pub opcode: u32,
    /// Create: the ring's fd.
    pub fd: i32,
    /// Create: the setup flags (`IORING_SETUP_*`); submit: the request's flags.
    pub flags: u32,
    pub sq_entries: u32,
    pub cq_entries: u32,
    /// `IO_URING_*` flags.
    pub flags2: u32,
    pub addrlen: u32,
    pub path_len: u16,
    /// Length of the second path (`RENAMEAT`/`LINKAT`: the new name; `SYMLINKAT`: the link),
    /// after `path` in the data.
    pub new_path_len: u16,
    pub _pad: [u16; 2],
    pub sockaddr: [u8; SOCKADDR_MAX],
}

/// `ProcOpBody::op` values.
pub const PROC_OP_SETSID: u32 = 1;
pub const PROC_OP_PTRACE: u32 = 2;
pub const PROC_OP_MEMFD_CREATE: u32 = 3;

/// Body of [`EventKind::ProcOp`]. Data: the memfd's name (`name_len` bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcOpBody {
    /// The syscall's return value (the new session id, 0, the memfd's fd) or `-errno`.
    pub result: i64,
    /// `PROC_OP_*`.
    pub op: u32,
    /// `ptrace` request.
    pub request: u32,
    /// `ptrace` target pid.
    pub target: u32,
    /// `memfd_create` flags.
    pub flags: u32,
    pub name_len: u16,
    pub _pad: [u16; 3],
}

/// `FileOpBody::op` values: the syscall.
pub const FILE_OP_RENAME: u32 = 1;
pub const FILE_OP_RENAMEAT: u32 = 2;
pub const FILE_OP_RENAMEAT2: u32 = 3;
pub const FILE_OP_LINK: u32 = 4;
pub const FILE_OP_LINKAT: u32 = 5;
pub const FILE_OP_SYMLINK: u32 = 6;
pub const FILE_OP_SYMLINKAT: u32 = 7;
pub const FILE_OP_UNLINK: u32 = 8;
pub const FILE_OP_UNLINKAT: u32 = 9;
pub const FILE_OP_CHMOD: u32 = 10;
pub const FILE_OP_FCHMODAT: u32 = 11;
pub const FILE_OP_FCHMODAT2: u32 = 12;
pub const FILE_OP_FCHMOD: u32 = 13;
/// `FileOpBody::flags2`: `old` is `old_raw` joined to its directory (working directory or
/// `olddfd`) as resolved by the kernel.
pub const FILE_OLD_JOINED: u32 = 1 << 0;
/// `FileOpBody::flags2`: `new` is `new_raw` joined to its directory.
pub const FILE_NEW_JOINED: u32 = 1 << 1;
/// `FileOpBody::flags2`: `old` was walked from the open file (`fchmod`, and `linkat` with
/// `AT_EMPTY_PATH`, how an `O_TMPFILE` file gets a name); `file` is set.
pub const FILE_OLD_RESOLVED: u32 = 1 << 2;
/// `FileOpBody::flags2`: `old` names an unlinked file (` (deleted)`).
pub const FILE_OLD_DELETED: u32 = 1 << 3;

/// Body of [`EventKind::FileOp`]. Data: `old_raw`, `old`, `new_raw`, `new` (lengths below).
/// `old` is the operand (renamed/linked from, unlinked, chmod-ed); for `symlink*`, `old_raw`
/// is the link's target text and `new` the link. `old`/`new` are empty when the raw string was
/// already absolute (userspace uses it).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileOpBody {
    /// 0 or `-errno`.
    pub result: i64,
    /// `FILE_OP_*`.
    pub op: u32,
    /// The syscall's flags argument (`RENAME_*`, `AT_*`), when it has one.
    pub flags: u32,
    /// The new mode (`*chmod*`).
    pub mode: u32,
    pub olddfd: i32,
    pub newdfd: i32,
    /// `FILE_*` flags.
    pub flags2: u32,
    pub old_raw_len: u16,
    pub old_len: u16,
    pub new_raw_len: u16,
    pub new_len: u16,
    /// The file's identity, when an open file names it (`fchmod`, `linkat` with
    /// `AT_EMPTY_PATH`).
    pub file: FileId,
}

/// `SockOpBody::op` values.
pub const SOCK_OP_SENDTO: u32 = 1;
pub const SOCK_OP_SENDMSG: u32 = 2;
pub const SOCK_OP_SENDMMSG: u32 = 3;
pub const SOCK_OP_BIND: u32 = 4;
pub const SOCK_OP_LISTEN: u32 = 5;
pub const SOCK_OP_ACCEPT: u32 = 6;
pub const SOCK_OP_ACCEPT4: u32 = 7;
/// `SockOpBody::flags`: the caller's sockaddr could not be read (or the socket had none).
pub const SOCK_ADDR_UNREADABLE: u32 = 1 << 0;

/// Body of [`EventKind::SockOp`]. No data area. `sockaddr` is the destination the caller
/// passed (sends), the address it bound (`bind`), the socket's own local address (`listen`),
/// or the accepted connection's peer (`accept*`), read from the kernel's socket and laid out
/// as a `sockaddr_in`/`sockaddr_in6`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SockOpBody {
    /// The syscall's return value: bytes sent, messages sent (`sendmmsg`), 0, the new fd
    /// (`accept*`), or `-errno`.
    pub result: i64,
    /// Bytes the caller asked to send (`sendto`), or the `listen` backlog.
    pub len: u64,
    pub fd: i32,
    /// `SOCK_OP_*`.
    pub op: u32,
    /// Length of the address in `sockaddr`.
    pub addrlen: u32,
    /// `SOCK_*` flags.
    pub flags: u32,
    pub sockaddr: [u8; SOCKADDR_MAX],
}

/// Body of [`EventKind::TcpState`] (the tracepoint's fields). Ports in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpStateBody {
    /// `TCP_*` states (`include/net/tcp_states.h`: 1 ESTABLISHED, 2 SYN_SENT, 10 LISTEN, …).
    pub oldstate: u32,
    pub newstate: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    pub protocol: u16,
    pub sport: u16,
    pub dport: u16,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// Data capacity reserved after an exec body: path + argv + filename + script path + loader
/// variables.
pub const EXEC_DATA_MAX: usize = PATH_MAX + ARGV_MAX + PATH_MAX + PATH_MAX + LOADER_ENV_TOTAL;
/// Data capacity reserved after an open body: raw + path.
pub const OPEN_DATA_MAX: usize = PATH_MAX + PATH_MAX;
/// Largest record the kernel can write.
pub const RECORD_MAX: usize = BODY_OFFSET
    + core::mem::size_of::<ExecBody>()
    + core::mem::size_of::<ExecExt>()
    + EXEC_DATA_MAX;

// The layout is the contract: pin it.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Header>() == 64);
    assert!(align_of::<Header>() == 8);
    assert!(offset_of!(Header, ktime_ns) == 8);
    assert!(offset_of!(Header, tid) == 16);
    assert!(offset_of!(Header, cgroup_id) == 40);
    assert!(offset_of!(Header, comm) == 48);
    assert!(size_of::<ExecBody>() == 32);
    assert!(size_of::<ForkBody>() == 8);
    assert!(size_of::<ExitBody>() == 8);
    assert!(size_of::<OpenBody>() == 32);
    assert!(size_of::<ConnectBody>() == 144);
    assert!(size_of::<FileId>() == 16);
    assert!(size_of::<StdioFd>() == 40);
    assert!(size_of::<ExecExt>() == 160);
    assert!(size_of::<OpenExt>() == 16);
    assert!(size_of::<SockOpBody>() == 160);
    assert!(size_of::<FileOpBody>() == 56);
    assert!(size_of::<ProcOpBody>() == 32);
    assert!(size_of::<IoUringBody>() == 168);
    assert!(size_of::<TcpStateBody>() == 48);
    assert!(size_of::<SendVolumeBody>() == 40);
    assert!(RECORD_MAX == 64 + 32 + 160 + 16384 + 1536);
};

//! Kernel record bytes → [`Event`]: the first userspace stage, shared by live capture and
//! replay.
//!
//! Every length and offset read from a record is checked against the record's real size
//! before use, so a truncated, oversized or garbled record is an error, never a panic or an
//! out-of-bounds read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use casa_common::{
    WIRE_VERSION, WIRE_VERSION_MIN,
    wire::{
        self, BODY_OFFSET, ConnectBody, EventKind, ExecBody, ExecExt, ExitBody, ForkBody, Header,
        OpenBody, OpenExt, RECORD_MAX, SockOpBody, TcpStateBody,
    },
};

use crate::event::{
    Activity, Bytes, Connect, Detail, Event, Exec, ExecFacts, Exit, FdKind, FileId, FileOp,
    FileOpKind, Fork, IoUring, IoUringOp, MemfdCreate, Open, OpenFacts, Ptrace, SendVolume, Setsid,
    SockAddr, SocketOp, SocketOpKind, StdioFd, TcpState,
};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need}-byte header")]
    TooShortForHeader { len: usize, need: usize },
    #[error(
        "record has wire version {found}, this casa decodes versions {WIRE_VERSION_MIN} to {expected}"
    )]
    WrongVersion { found: u16, expected: u16 },
    #[error("record has unknown kind {0}")]
    UnknownKind(u16),
    #[error("record header says {declared} bytes but {actual} bytes were received")]
    SizeMismatch { declared: usize, actual: usize },
    #[error("record of {0} bytes is larger than any record the kernel writes")]
    Oversized(usize),
    #[error("{kind:?} record of {len} bytes is shorter than its {need}-byte fixed part")]
    TooShortForBody {
        kind: EventKind,
        len: usize,
        need: usize,
    },
    #[error("{kind:?} record's string lengths ({strings} bytes) run past its data ({data} bytes)")]
    StringsOverrun {
        kind: EventKind,
        strings: usize,
        data: usize,
    },
}

/// A wire struct that is plain bytes both ways: every byte of a value is initialised (no
/// padding) and every bit pattern is a valid value (integer and integer-array fields only).
/// [`read`] builds one from record bytes and [`build::record`] writes one out as bytes.
///
/// # Safety
///
/// Implement only for a `repr(C)` `Copy` type whose fields are all integers or arrays of
/// integers and leave no padding anywhere. Use `wire_plain!`, which checks both at compile
/// time from the field list, rather than implementing it by hand.
pub unsafe trait WirePlain: Copy {}

/// Integer types and arrays of them: the field types a [`WirePlain`] struct may have.
trait PlainField {}
impl PlainField for u8 {}
impl PlainField for u16 {}
impl PlainField for u32 {}
impl PlainField for u64 {}
impl PlainField for i32 {}
impl PlainField for i64 {}
impl<T: PlainField, const N: usize> PlainField for [T; N] {}

/// Compile-time proof that a field type is a [`PlainField`].
const fn plain_field<T: PlainField>() {}

/// Implement [`WirePlain`] for wire structs, given each one's fields in declaration order with
/// their types. Fails to compile when a listed type is not the field's type or not an
/// integer (array), when a field starts anywhere but right after the previous one (padding),
/// or when the fields do not add up to the struct's size (trailing padding, or a field
/// missing from the list).
macro_rules! wire_plain {
    ($($ty:path { $($field:ident: $fty:ty),+ $(,)? })+) => {$(
        const _: () = {
            let mut end = 0;
            $(
                plain_field::<$fty>();
                assert!(
                    core::mem::offset_of!($ty, $field) == end,
                    concat!(stringify!($ty), "::", stringify!($field), ": padding before it")
                );
                end += size_of::<$fty>();
            )+
            assert!(
                end == size_of::<$ty>(),
                concat!(stringify!($ty), ": trailing padding or a field not listed")
            );
        };
        const _: fn(&$ty) = |v| {
            $(let _: &$fty = &v.$field;)+
        };
        // SAFETY: the two items above prove, at compile time, that the listed fields have
        // the listed integer (array) types and tile the whole struct without a gap.
        unsafe impl WirePlain for $ty {}
    )+};
}

wire_plain! {
    Header {
        version: u16,
        kind: u16,
        size: u32,
        ktime_ns: u64,
        tid: u32,
        tgid: u32,
        ppid: u32,
        uid: u32,
        gid: u32,
        _pad0: u32,
        cgroup_id: u64,
        comm: [u8; wire::TASK_COMM_LEN],
    }
    ExecBody {
        result: i32,
        old_tid: u32,
        cap_effective: u64,
        seccomp_mode: u32,
        flags: u32,
        path_len: u16,
        argv_len: u16,
        filename_len: u16,
        _pad0: u16,
    }
    ForkBody {
        child_tid: u32,
        child_tgid: u32,
    }
    ExitBody {
        exit_code: u32,
        flags: u32,
    }
    OpenBody {
        result: i64,
        open_flags: u32,
        mode: u32,
        dfd: i32,
        syscall: u32,
        flags2: u32,
        raw_len: u16,
        path_len: u16,
    }
    ConnectBody {
        result: i32,
        fd: i32,
        addrlen: u32,
        flags: u32,
        sockaddr: [u8; wire::SOCKADDR_MAX],
    }
    wire::FileId {
        ino: u64,
        dev: u32,
        mode: u32,
    }
    wire::StdioFd {
        id: wire::FileId,
        rdev: u32,
        family: u16,
        port: u16,
        addr: [u8; 16],
    }
    wire::ExecExt {
        file: wire::FileId,
        script: wire::FileId,
        stdio: [wire::StdioFd; 3],
        flags: u32,
        env_len: u16,
        script_path_len: u16,
    }
    wire::OpenExt {
        file: wire::FileId,
    }
    wire::SendVolumeBody {
        total: u64,
        last: u64,
        family: u16,
        protocol: u16,
        dport: u16,
        sport: u16,
        daddr: [u8; 16],
    }
    wire::IoUringBody {
        op: u32,
        opcode: u32,
        fd: i32,
        flags: u32,
        sq_entries: u32,
        cq_entries: u32,
        flags2: u32,
        addrlen: u32,
        path_len: u16,
        new_path_len: u16,
        _pad: [u16; 2],
        sockaddr: [u8; wire::SOCKADDR_MAX],
    }
    wire::ProcOpBody {
        result: i64,
        op: u32,
        request: u32,
        target: u32,
        flags: u32,
        name_len: u16,
        _pad: [u16; 3],
    }
    wire::FileOpBody {
        result: i64,
        op: u32,
        flags: u32,
        mode: u32,
        olddfd: i32,
        newdfd: i32,
        flags2: u32,
        old_raw_len: u16,
        old_len: u16,
        new_raw_len: u16,
        new_len: u16,
        file: wire::FileId,
    }
    wire::SockOpBody {
        result: i64,
        len: u64,
        fd: i32,
        op: u32,
        addrlen: u32,
        flags: u32,
        sockaddr: [u8; wire::SOCKADDR_MAX],
    }
    wire::TcpStateBody {
        oldstate: u32,
        newstate: u32,
        family: u16,
        protocol: u16,
        sport: u16,
        dport: u16,
        saddr: [u8; 16],
        daddr: [u8; 16],
    }
}

// Wire structs nested in others (the version-2 extensions, and the test builder's fixed
// parts): each is itself checked above, so it is a plain field of its container.
impl PlainField for wire::FileId {}
impl PlainField for wire::StdioFd {}
impl PlainField for ExecBody {}
impl PlainField for OpenBody {}
impl PlainField for wire::ExecExt {}
impl PlainField for wire::OpenExt {}

/// Read a `T` from `bytes` at `offset` (unaligned); the caller has checked the bounds.
fn read<T: WirePlain>(bytes: &[u8], offset: usize) -> T {
    assert!(offset + size_of::<T>() <= bytes.len());
    // SAFETY: bounds asserted above; `T: WirePlain` is valid for any bit pattern.
    unsafe { bytes.as_ptr().add(offset).cast::<T>().read_unaligned() }
}

/// The header of a record, after checking that one is there.
pub fn header(bytes: &[u8]) -> Result<Header, DecodeError> {
    let need = size_of::<Header>();
    if bytes.len() < need {
        return Err(DecodeError::TooShortForHeader {
            len: bytes.len(),
            need,
        });
    }
    Ok(read::<Header>(bytes, 0))
}

/// Decode one record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    if bytes.len() > RECORD_MAX {
        return Err(DecodeError::Oversized(bytes.len()));
    }
    let h = header(bytes)?;
    if !(WIRE_VERSION_MIN..=WIRE_VERSION).contains(&h.version) {
        return Err(DecodeError::WrongVersion {
            found: h.version,
            expected: WIRE_VERSION,
        });
    }
    let kind = EventKind::from_u16(h.kind).ok_or(DecodeError::UnknownKind(h.kind))?;
    // A ring-buffer sample is exactly as long as the kernel program said.
    let declared = h.size as usize;
    if declared != bytes.len() {
        return Err(DecodeError::SizeMismatch {
            declared,
            actual: bytes.len(),
        });
    }
    let rec = bytes;
    let detail = match kind {
        EventKind::Exec => Detail::Exec(decode_exec(rec, h.version)?),
        EventKind::Fork => {
            let b: ForkBody = body(rec, kind)?;
            Detail::Fork(Fork {
                child_pid: b.child_tgid,
                child_tid: b.child_tid,
            })
        }
        EventKind::Exit => {
            let b: ExitBody = body(rec, kind)?;
            Detail::Exit(exit_from(b))
        }
        EventKind::Open => Detail::Open(decode_open(rec, h.version)?),
        EventKind::Connect => {
            let b: ConnectBody = body(rec, kind)?;
            Detail::Connect(connect_from(&b))
        }
        EventKind::SockOp => {
            let b: SockOpBody = body(rec, kind)?;
            Detail::Activity(Activity::Socket(sock_op_from(&b)))
        }
        EventKind::FileOp => Detail::Activity(Activity::File(decode_file_op(rec)?)),
        EventKind::ProcOp => Detail::Activity(decode_proc_op(rec)?),
        EventKind::IoUring => Detail::Activity(Activity::IoUring(decode_io_uring(rec)?)),
        EventKind::SendVolume => {
            let b: wire::SendVolumeBody = body(rec, kind)?;
            let remote = match b.family {
                AF_INET => SockAddr::Inet {
                    addr: IpAddr::V4(Ipv4Addr::new(
                        b.daddr[0], b.daddr[1], b.daddr[2], b.daddr[3],
                    )),
                    port: b.dport,
                    v4_mapped: false,
                },
                AF_INET6 => inet6(b.daddr, b.dport),
                af => SockAddr::Other { af },
            };
            Detail::Activity(Activity::SendVolume(SendVolume {
                total_bytes: b.total,
                last_bytes: b.last,
                protocol: b.protocol,
                remote,
                local_port: b.sport,
            }))
        }
        EventKind::TcpState => {
            let b: TcpStateBody = body(rec, kind)?;
            Detail::Activity(Activity::Tcp(tcp_state_from(&b)))
        }
    };
    Ok(Event {
        ktime_ns: h.ktime_ns,
        pid: h.tgid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        cgroup_id: h.cgroup_id,
        comm: Bytes::from(until_nul(&h.comm)),
        detail,
    })
}

fn body<T: WirePlain>(rec: &[u8], kind: EventKind) -> Result<T, DecodeError> {
    body_at(rec, kind, BODY_OFFSET)
}

/// A fixed-size part of type `T` at `offset` (a body, or a version-2 extension after it).
fn body_at<T: WirePlain>(rec: &[u8], kind: EventKind, offset: usize) -> Result<T, DecodeError> {
    let need = offset + size_of::<T>();
    if rec.len() < need {
        return Err(DecodeError::TooShortForBody {
            kind,
            len: rec.len(),
            need,
        });
    }
    Ok(read::<T>(rec, offset))
}

/// Split the data area, which starts at `start` (checked by the caller's `body_at`), into
/// slices of the given lengths.
fn strings<const N: usize>(
    rec: &[u8],
    kind: EventKind,
    start: usize,
    lens: [usize; N],
) -> Result<[&[u8]; N], DecodeError> {
    let data = &rec[start..];
    let total: usize = lens.iter().sum();
    if total > data.len() {
        return Err(DecodeError::StringsOverrun {
            kind,
            strings: total,
            data: data.len(),
        });
    }
    let mut out = [&data[..0]; N];
    let mut off = 0;
    for (slot, len) in out.iter_mut().zip(lens) {
        *slot = &data[off..off + len];
        off += len;
    }
    Ok(out)
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

fn decode_exec(rec: &[u8], version: u16) -> Result<Exec, DecodeError> {
    let kind = EventKind::Exec;
    let b: ExecBody = body(rec, kind)?;
    let mut start = BODY_OFFSET + size_of::<ExecBody>();
    let ext = if version >= 2 {
        let e: ExecExt = body_at(rec, kind, start)?;
        start += size_of::<ExecExt>();
        Some(e)
    } else {
        None
    };
    let [path, argv, filename, script_path, env] = strings(
        rec,
        kind,
        start,
        [
            b.path_len as usize,
            b.argv_len as usize,
            b.filename_len as usize,
            ext.map_or(0, |e| e.script_path_len as usize),
            ext.map_or(0, |e| e.env_len as usize),
        ],
    )?;
    let resolved = b.flags & wire::EXEC_PATH_RESOLVED != 0;
    let filename = Bytes::from(until_nul(filename));
    let path = Bytes::from(until_nul(path));
    let creds = b.flags & wire::EXEC_CREDS_VALID != 0;
    let script = b.flags & wire::EXEC_SCRIPT != 0;
    Ok(Exec {
        result: b.result,
        path: if !resolved {
            filename.clone()
        } else if script {
            Bytes(normalize(path.as_bytes()))
        } else {
            kernel_path(path, b.flags & wire::EXEC_PATH_DELETED != 0)
        },
        script,
        path_resolved: resolved,
        path_truncated: b.flags & wire::EXEC_PATH_TRUNCATED != 0,
        filename,
        argv: split_argv(argv),
        argv_truncated: b.flags & wire::EXEC_ARGV_TRUNCATED != 0,
        argv_unreadable: b.flags & wire::EXEC_ARGV_UNREADABLE != 0,
        via_execveat: b.flags & wire::EXEC_VIA_EXECVEAT != 0,
        old_tid: b.old_tid,
        cap_effective: creds.then_some(b.cap_effective),
        seccomp_mode: creds.then_some(b.seccomp_mode),
        no_new_privs: b.flags & wire::EXEC_NO_NEW_PRIVS != 0,
        facts: ExecFacts {
            prevented: b.flags & wire::EXEC_PREVENTED != 0,
            ..ext.map_or_else(ExecFacts::default, |e| exec_facts(&e, script_path, env))
        },
    })
}

/// The kernel's `dev_t` (`major << 20 | minor`) in the encoding `stat(2)` returns.
pub(crate) fn user_dev(kdev: u32) -> u64 {
    let (major, minor) = (u64::from(kdev >> 20), u64::from(kdev & 0xfffff));
    ((major & 0xfffff000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffffff00) << 12)
        | (minor & 0xff)
}

fn file_id(id: &wire::FileId) -> Option<FileId> {
    (id.ino != 0).then(|| FileId {
        dev: user_dev(id.dev),
        ino: id.ino,
    })
}

const S_IFMT: u32 = 0o170000;

fn fd_kind(mode: u32, rdev: u32) -> FdKind {
    match mode & S_IFMT {
        0 if mode == 0 => FdKind::Closed,
        0o140000 => FdKind::Socket,
        0o010000 => FdKind::Pipe,
        // Terminals: the console and virtual terminals (4), /dev/tty and ptmx (5), ptys (136-143).
        0o020000 if matches!(rdev >> 20, 4 | 5 | 136..=143) => FdKind::Tty,
        0o020000 => FdKind::CharDevice,
        0o100000 => FdKind::File,
        0o040000 => FdKind::Directory,
        _ => FdKind::Other,
    }
}

fn stdio_fd(fd: u8, s: &wire::StdioFd) -> StdioFd {
    let kind = fd_kind(s.id.mode, s.rdev);
    let socket = kind == FdKind::Socket;
    let peer = match s.family {
        _ if !socket || s.port == 0 => None,
        AF_INET => Some(SockAddr::Inet {
            addr: IpAddr::V4(Ipv4Addr::new(s.addr[0], s.addr[1], s.addr[2], s.addr[3])),
            port: s.port,
            v4_mapped: false,
        }),
        AF_INET6 => Some(inet6(s.addr, s.port)),
        _ => None,
    };
    StdioFd {
        fd,
        kind,
        file: file_id(&s.id),
        family: socket.then_some(s.family),
        peer,
    }
}

fn exec_facts(e: &ExecExt, script_path: &[u8], env: &[u8]) -> ExecFacts {
    ExecFacts {
        file: file_id(&e.file),
        script_file: file_id(&e.script),
        script_path: (!script_path.is_empty()).then(|| {
            kernel_path(
                Bytes::from(until_nul(script_path)),
                e.flags & wire::EXEC_EXT_SCRIPT_DELETED != 0,
            )
        }),
        loader_env: split_argv(env),
        env_truncated: e.flags & wire::EXEC_EXT_ENV_TRUNCATED != 0,
        stdio: if e.flags & wire::EXEC_EXT_STDIO != 0 {
            (0u8..)
                .zip(&e.stdio)
                .map(|(fd, s)| stdio_fd(fd, s))
                .collect()
        } else {
            Vec::new()
        },
        prevented: false,
    }
}

/// A path walked by the kernel, shown as `d_path` shows it: unlinked files and memfds get
/// ` (deleted)` appended.
fn kernel_path(mut path: Bytes, deleted: bool) -> Bytes {
    if deleted {
        path.0.extend_from_slice(b" (deleted)");
    }
    path
}

/// Remove `.` components and resolve `..` lexically in an absolute path (the kernel joined a
/// script's relative name to the working directory: `/tmp/./x.sh` → `/tmp/x.sh`).
fn normalize(path: &[u8]) -> Vec<u8> {
    if !path.starts_with(b"/") {
        return path.to_vec();
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// NUL-separated arguments (each normally NUL-terminated; a cut last one is not).
fn split_argv(area: &[u8]) -> Vec<Bytes> {
    if area.is_empty() {
        return Vec::new();
    }
    let area = area.strip_suffix(&[0]).unwrap_or(area);
    area.split(|&c| c == 0).map(Bytes::from).collect()
}

fn exit_from(b: ExitBody) -> Exit {
    let code = b.exit_code;
    let signal = (code & 0x7f) as u8;
    Exit {
        exit_code: code,
        status: (signal == 0).then_some(((code >> 8) & 0xff) as u8),
        signal: (signal != 0).then_some(signal),
        core_dumped: code & 0x80 != 0,
        leader: b.flags & wire::EXIT_LEADER != 0,
        process_gone: b.flags & wire::EXIT_GROUP_DEAD != 0,
    }
}

fn decode_open(rec: &[u8], version: u16) -> Result<Open, DecodeError> {
    let kind = EventKind::Open;
    let b: OpenBody = body(rec, kind)?;
    let mut start = BODY_OFFSET + size_of::<OpenBody>();
    let ext = if version >= 2 {
        let e: OpenExt = body_at(rec, kind, start)?;
        start += size_of::<OpenExt>();
        Some(e)
    } else {
        None
    };
    let [raw, path] = strings(rec, kind, start, [b.raw_len as usize, b.path_len as usize])?;
    let joined = version >= 2 && b.flags2 & wire::OPEN_PATH_JOINED != 0;
    let path = if b.flags2 & wire::OPEN_PATH_RESOLVED != 0 {
        Some(kernel_path(
            Bytes::from(until_nul(path)),
            b.flags2 & wire::OPEN_PATH_DELETED != 0,
        ))
    } else if joined {
        Some(Bytes(normalize(until_nul(path))))
    } else {
        None
    };
    Ok(Open {
        syscall: match b.syscall {
            wire::OPEN_SYSCALL_OPENAT2 => "openat2",
            wire::OPEN_SYSCALL_OPEN => "open",
            wire::OPEN_SYSCALL_CREAT => "creat",
            _ => "openat",
        },
        result: b.result,
        flags: b.open_flags,
        mode: b.mode,
        dfd: b.dfd,
        raw_path: Bytes::from(until_nul(raw)),
        path,
        path_truncated: b.flags2 & wire::OPEN_PATH_TRUNCATED != 0,
        raw_unreadable: b.flags2 & wire::OPEN_RAW_UNREADABLE != 0,
        facts: OpenFacts {
            file: ext.as_ref().and_then(|e| file_id(&e.file)),
            path_joined: joined,
        },
    })
}

/// `IORING_OP_*` names, by number (uapi `io_uring.h`).
const IORING_OPS: [&str; 58] = [
    "nop",
    "readv",
    "writev",
    "fsync",
    "read_fixed",
    "write_fixed",
    "poll_add",
    "poll_remove",
    "sync_file_range",
    "sendmsg",
    "recvmsg",
    "timeout",
    "timeout_remove",
    "accept",
    "async_cancel",
    "link_timeout",
    "connect",
    "fallocate",
    "openat",
    "close",
    "files_update",
    "statx",
    "read",
    "write",
    "fadvise",
    "madvise",
    "send",
    "recv",
    "openat2",
    "epoll_ctl",
    "splice",
    "provide_buffers",
    "remove_buffers",
    "tee",
    "shutdown",
    "renameat",
    "unlinkat",
    "mkdirat",
    "symlinkat",
    "linkat",
    "msg_ring",
    "fsetxattr",
    "setxattr",
    "fgetxattr",
    "getxattr",
    "socket",
    "uring_cmd",
    "send_zc",
    "sendmsg_zc",
    "read_multishot",
    "waitid",
    "futex_wait",
    "futex_wake",
    "futex_waitv",
    "fixed_fd_install",
    "ftruncate",
    "bind",
    "listen",
];

fn decode_io_uring(rec: &[u8]) -> Result<IoUring, DecodeError> {
    let kind = EventKind::IoUring;
    let b: wire::IoUringBody = body(rec, kind)?;
    let [path, new_path] = strings(
        rec,
        kind,
        BODY_OFFSET + size_of::<wire::IoUringBody>(),
        [b.path_len as usize, b.new_path_len as usize],
    )?;
    let create = b.op == wire::IO_URING_CREATE;
    Ok(IoUring {
        op: if create {
            IoUringOp::Create
        } else {
            IoUringOp::Submit
        },
        opcode: (!create).then_some(b.opcode),
        opcode_name: (!create).then(|| {
            IORING_OPS
                .get(b.opcode as usize)
                .copied()
                .unwrap_or("unknown")
        }),
        ring_fd: create.then_some(b.fd),
        sq_entries: create.then_some(b.sq_entries),
        cq_entries: create.then_some(b.cq_entries),
        flags: b.flags,
        path: (b.path_len > 0).then(|| Bytes::from(until_nul(path))),
        new_path: (b.new_path_len > 0).then(|| Bytes::from(until_nul(new_path))),
        addr: (b.flags2 & wire::IO_URING_ADDR != 0)
            .then(|| parse_sockaddr(false, b.addrlen, &b.sockaddr)),
    })
}

fn decode_proc_op(rec: &[u8]) -> Result<Activity, DecodeError> {
    let kind = EventKind::ProcOp;
    let b: wire::ProcOpBody = body(rec, kind)?;
    let [name] = strings(
        rec,
        kind,
        BODY_OFFSET + size_of::<wire::ProcOpBody>(),
        [b.name_len as usize],
    )?;
    Ok(match b.op {
        wire::PROC_OP_SETSID => Activity::Setsid(Setsid { result: b.result }),
        wire::PROC_OP_PTRACE => Activity::Ptrace(Ptrace {
            request: match b.request {
                0 => "traceme",
                16 => "attach",
                0x4206 => "seize",
                _ => "other",
            },
            target_pid: b.target,
            result: b.result,
        }),
        _ => Activity::Memfd(MemfdCreate {
            name: Bytes::from(until_nul(name)),
            flags: b.flags,
            result: b.result,
        }),
    })
}

fn decode_file_op(rec: &[u8]) -> Result<FileOp, DecodeError> {
    let kind = EventKind::FileOp;
    let b: FileOpBody = body(rec, kind)?;
    let [old_raw, old, new_raw, new] = strings(
        rec,
        kind,
        BODY_OFFSET + size_of::<FileOpBody>(),
        [
            b.old_raw_len as usize,
            b.old_len as usize,
            b.new_raw_len as usize,
            b.new_len as usize,
        ],
    )?;
    use wire::*;
    let op = match b.op {
        FILE_OP_RENAME => FileOpKind::Rename,
        FILE_OP_RENAMEAT => FileOpKind::Renameat,
        FILE_OP_RENAMEAT2 => FileOpKind::Renameat2,
        FILE_OP_LINK => FileOpKind::Link,
        FILE_OP_LINKAT => FileOpKind::Linkat,
        FILE_OP_SYMLINK => FileOpKind::Symlink,
        FILE_OP_SYMLINKAT => FileOpKind::Symlinkat,
        FILE_OP_UNLINK => FileOpKind::Unlink,
        FILE_OP_UNLINKAT => FileOpKind::Unlinkat,
        FILE_OP_CHMOD => FileOpKind::Chmod,
        FILE_OP_FCHMODAT => FileOpKind::Fchmodat,
        FILE_OP_FCHMODAT2 => FileOpKind::Fchmodat2,
        _ => FileOpKind::Fchmod,
    };
    let symlink = matches!(op, FileOpKind::Symlink | FileOpKind::Symlinkat);
    // Absolute: the kernel's walk of an open file, a joined relative string, or the raw
    // string itself when it was absolute.
    let absolute = |raw: &[u8], walked: &[u8], joined: bool| -> Option<Bytes> {
        if joined {
            Some(Bytes(normalize(until_nul(walked))))
        } else if raw.starts_with(b"/") {
            Some(Bytes(normalize(raw)))
        } else {
            None
        }
    };
    let old_raw = until_nul(old_raw);
    let new_raw = until_nul(new_raw);
    let path = if b.flags2 & FILE_OLD_RESOLVED != 0 {
        Some(kernel_path(
            Bytes::from(until_nul(old)),
            b.flags2 & FILE_OLD_DELETED != 0,
        ))
    } else if symlink {
        None
    } else {
        absolute(old_raw, old, b.flags2 & FILE_OLD_JOINED != 0)
    };
    let has_new = matches!(
        op,
        FileOpKind::Rename
            | FileOpKind::Renameat
            | FileOpKind::Renameat2
            | FileOpKind::Link
            | FileOpKind::Linkat
            | FileOpKind::Symlink
            | FileOpKind::Symlinkat
    );
    let chmod = matches!(
        op,
        FileOpKind::Chmod | FileOpKind::Fchmodat | FileOpKind::Fchmodat2 | FileOpKind::Fchmod
    );
    Ok(FileOp {
        op,
        result: b.result,
        path,
        raw_path: Bytes::from(old_raw),
        new_path: if has_new {
            absolute(new_raw, new, b.flags2 & FILE_NEW_JOINED != 0)
        } else {
            None
        },
        new_raw_path: has_new.then(|| Bytes::from(new_raw)),
        mode: chmod.then_some(b.mode),
        flags: b.flags,
        file: file_id(&b.file),
    })
}

const AF_UNSPEC: u16 = 0;
const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

fn connect_from(b: &ConnectBody) -> Connect {
    Connect {
        result: b.result,
        fd: b.fd,
        addr: parse_sockaddr(
            b.flags & wire::CONNECT_ADDR_UNREADABLE != 0,
            b.addrlen,
            &b.sockaddr,
        ),
    }
}

fn sock_op_from(b: &SockOpBody) -> SocketOp {
    SocketOp {
        op: match b.op {
            wire::SOCK_OP_SENDTO => SocketOpKind::Sendto,
            wire::SOCK_OP_SENDMSG => SocketOpKind::Sendmsg,
            wire::SOCK_OP_SENDMMSG => SocketOpKind::Sendmmsg,
            wire::SOCK_OP_BIND => SocketOpKind::Bind,
            wire::SOCK_OP_LISTEN => SocketOpKind::Listen,
            wire::SOCK_OP_ACCEPT4 => SocketOpKind::Accept4,
            _ => SocketOpKind::Accept,
        },
        result: b.result,
        fd: b.fd,
        addr: parse_sockaddr(
            b.flags & wire::SOCK_ADDR_UNREADABLE != 0,
            b.addrlen,
            &b.sockaddr,
        ),
        len: b.len,
    }
}

/// Name of a `TCP_*` state (`include/net/tcp_states.h`).
fn tcp_state_name(state: u32) -> &'static str {
    match state {
        1 => "established",
        2 => "syn_sent",
        3 => "syn_recv",
        4 => "fin_wait1",
        5 => "fin_wait2",
        6 => "time_wait",
        7 => "close",
        8 => "close_wait",
        9 => "last_ack",
        10 => "listen",
        11 => "closing",
        12 => "new_syn_recv",
        _ => "unknown",
    }
}

fn tcp_state_from(b: &TcpStateBody) -> TcpState {
    let addr = |a: [u8; 16], port: u16| match b.family {
        AF_INET => SockAddr::Inet {
            addr: IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            port,
            v4_mapped: false,
        },
        AF_INET6 => inet6(a, port),
        af => SockAddr::Other { af },
    };
    TcpState {
        old: tcp_state_name(b.oldstate),
        new: tcp_state_name(b.newstate),
        local: addr(b.saddr, b.sport),
        remote: addr(b.daddr, b.dport),
    }
}

/// An IPv6 address and port; an IPv4-mapped address is shown as IPv4.
fn inet6(a: [u8; 16], port: u16) -> SockAddr {
    let v6 = Ipv6Addr::from(a);
    match v6.to_ipv4_mapped() {
        Some(v4) => SockAddr::Inet {
            addr: IpAddr::V4(v4),
            port,
            v4_mapped: true,
        },
        None => SockAddr::Inet {
            addr: IpAddr::V6(v6),
            port,
            v4_mapped: false,
        },
    }
}

/// Parse the raw sockaddr the kernel copied, within `addrlen` and the captured bytes.
fn parse_sockaddr(unreadable: bool, addrlen: u32, sockaddr: &[u8]) -> SockAddr {
    if unreadable {
        return SockAddr::Unreadable;
    }
    let len = (addrlen as usize).min(sockaddr.len());
    let sa = &sockaddr[..len];
    if sa.len() < 2 {
        return SockAddr::Unreadable;
    }
    let family = u16::from_ne_bytes([sa[0], sa[1]]);
    match family {
        AF_UNSPEC => SockAddr::Unspec,
        AF_INET if sa.len() >= 8 => SockAddr::Inet {
            addr: IpAddr::V4(Ipv4Addr::new(sa[4], sa[5], sa[6], sa[7])),
            port: u16::from_be_bytes([sa[2], sa[3]]),
            v4_mapped: false,
        },
        AF_INET6 if sa.len() >= 24 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&sa[8..24]);
            inet6(a, u16::from_be_bytes([sa[2], sa[3]]))
        }
        AF_UNIX => {
            let path = &sa[2..];
            if path.first() == Some(&0) && path.len() > 1 {
                // Abstract socket: the name is every byte after the leading NUL.
                let mut name = b"@".to_vec();
                name.extend_from_slice(&path[1..]);
                SockAddr::Unix { path: Bytes(name) }
            } else {
                SockAddr::Unix {
                    path: Bytes::from(until_nul(path)),
                }
            }
        }
        other => SockAddr::Other { af: other },
    }
}

/// Build record bytes from wire structs: for tests, fixtures and fuzz seeds.
pub mod build {
    use super::*;

    /// The bytes of a wire struct.
    fn wire_bytes<T: WirePlain>(v: &T) -> &[u8] {
        // SAFETY: `T: WirePlain` has no padding, so all `size_of::<T>()` bytes behind the
        // reference are initialised; the slice borrows `v` and lives no longer.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
    }

    /// The fixed part of a wire-version-2 exec record: body, then extension.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct ExecV2 {
        pub body: ExecBody,
        pub ext: ExecExt,
    }

    /// The fixed part of a wire-version-2 open record: body, then extension.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct OpenV2 {
        pub body: OpenBody,
        pub ext: OpenExt,
    }

    wire_plain! {
        ExecV2 {
            body: ExecBody,
            ext: ExecExt,
        }
        OpenV2 {
            body: OpenBody,
            ext: OpenExt,
        }
    }

    /// A header for `kind` with the given identity; `size` is filled by [`record`].
    pub fn header(kind: EventKind, ktime_ns: u64, tgid: u32, tid: u32, comm: &str) -> Header {
        let mut c = [0u8; wire::TASK_COMM_LEN];
        let n = comm.len().min(15);
        c[..n].copy_from_slice(&comm.as_bytes()[..n]);
        Header {
            version: WIRE_VERSION,
            kind: kind as u16,
            size: 0,
            ktime_ns,
            tid,
            tgid,
            ppid: 1,
            uid: 0,
            gid: 0,
            _pad0: 0,
            cgroup_id: 1,
            comm: c,
        }
    }

    /// Header + body + data, with `Header::size` set. The body is any wire body struct
    /// ([`WirePlain`]: its bytes are all initialised).
    pub fn record<T: WirePlain>(mut h: Header, body: &T, data: &[u8]) -> Vec<u8> {
        h.size = (size_of::<Header>() + size_of::<T>() + data.len()) as u32;
        let mut v = wire_bytes(&h).to_vec();
        v.extend_from_slice(wire_bytes(body));
        v.extend_from_slice(data);
        v
    }

    /// An exec record for `path` with `argv`.
    pub fn exec(ktime_ns: u64, tgid: u32, path: &str, argv: &[&str]) -> Vec<u8> {
        let mut argv_bytes = Vec::new();
        for a in argv {
            argv_bytes.extend_from_slice(a.as_bytes());
            argv_bytes.push(0);
        }
        let comm = path.rsplit('/').next().unwrap_or(path);
        let body = ExecBody {
            result: 0,
            old_tid: tgid,
            cap_effective: 0,
            seccomp_mode: 0,
            flags: wire::EXEC_PATH_RESOLVED | wire::EXEC_CREDS_VALID,
            path_len: path.len() as u16,
            argv_len: argv_bytes.len() as u16,
            filename_len: path.len() as u16,
            _pad0: 0,
        };
        let mut data = path.as_bytes().to_vec();
        data.extend_from_slice(&argv_bytes);
        data.extend_from_slice(path.as_bytes());
        record(
            header(EventKind::Exec, ktime_ns, tgid, tgid, comm),
            &ExecV2 {
                body,
                ext: ExecExt::default(),
            },
            &data,
        )
    }

    /// An open record.
    pub fn open(
        ktime_ns: u64,
        tgid: u32,
        raw: &str,
        path: Option<&str>,
        flags: u32,
        result: i64,
    ) -> Vec<u8> {
        let body = OpenBody {
            result,
            open_flags: flags,
            mode: 0o644,
            dfd: -100,
            syscall: wire::OPEN_SYSCALL_OPENAT,
            flags2: if path.is_some() {
                wire::OPEN_PATH_RESOLVED
            } else {
                0
            },
            raw_len: raw.len() as u16,
            path_len: path.map_or(0, str::len) as u16,
        };
        let mut data = raw.as_bytes().to_vec();
        data.extend_from_slice(path.unwrap_or("").as_bytes());
        record(
            header(EventKind::Open, ktime_ns, tgid, tgid, "test"),
            &OpenV2 {
                body,
                ext: OpenExt::default(),
            },
            &data,
        )
    }

    /// A connect record with a raw sockaddr.
    pub fn connect(ktime_ns: u64, tgid: u32, sockaddr: &[u8], result: i32) -> Vec<u8> {
        let mut sa = [0u8; wire::SOCKADDR_MAX];
        let n = sockaddr.len().min(sa.len());
        sa[..n].copy_from_slice(&sockaddr[..n]);
        let body = ConnectBody {
            result,
            fd: 3,
            addrlen: sockaddr.len() as u32,
            flags: 0,
            sockaddr: sa,
        };
        record(
            header(EventKind::Connect, ktime_ns, tgid, tgid, "test"),
            &body,
            &[],
        )
    }

    /// A fork record.
    pub fn fork(ktime_ns: u64, parent: u32, child: u32) -> Vec<u8> {
        let body = ForkBody {
            child_tid: child,
            child_tgid: child,
        };
        record(
            header(EventKind::Fork, ktime_ns, parent, parent, "test"),
            &body,
            &[],
        )
    }

    /// An exit record.
    pub fn exit(ktime_ns: u64, tgid: u32, tid: u32, exit_code: u32, group_dead: bool) -> Vec<u8> {
        let mut flags = 0;
        if tgid == tid {
            flags |= wire::EXIT_LEADER;
        }
        if group_dead {
            flags |= wire::EXIT_GROUP_DEAD;
        }
        let body = ExitBody { exit_code, flags };
        record(
            header(EventKind::Exit, ktime_ns, tgid, tid, "test"),
            &body,
            &[],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{build, *};

    #[test]
    fn exec_round_trip() {
        let rec = build::exec(42, 100, "/usr/bin/curl", &["curl", "-s", "http://x"]);
        let ev = decode(&rec).unwrap();
        assert_eq!(ev.ktime_ns, 42);
        assert_eq!(ev.pid, 100);
        assert_eq!(ev.comm, Bytes::from("curl"));
        let Detail::Exec(e) = ev.detail else {
            panic!("not exec")
        };
        assert_eq!(e.path, Bytes::from("/usr/bin/curl"));
        assert_eq!(
            e.argv,
            vec![
                Bytes::from("curl"),
                Bytes::from("-s"),
                Bytes::from("http://x")
            ]
        );
        assert_eq!(e.cap_effective, Some(0));
        assert!(!e.argv_truncated);
    }

    #[test]
    fn truncated_records_are_errors_at_every_length() {
        let rec = build::exec(1, 2, "/bin/sh", &["sh", "-c", "id"]);
        for len in 0..rec.len() {
            assert!(
                decode(&rec[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
        assert!(decode(&rec).is_ok());
    }

    #[test]
    fn header_too_short() {
        assert_eq!(
            decode(&[0u8; 10]),
            Err(DecodeError::TooShortForHeader { len: 10, need: 64 })
        );
    }

    #[test]
    fn oversized_record_rejected() {
        let rec = vec![0u8; RECORD_MAX + 1];
        assert_eq!(decode(&rec), Err(DecodeError::Oversized(RECORD_MAX + 1)));
    }

    #[test]
    fn record_with_trailing_garbage_rejected() {
        let mut rec = build::fork(1, 2, 3);
        rec.extend_from_slice(&[0xAA; 16]);
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn string_lengths_past_data_rejected() {
        let mut rec = build::open(1, 2, "/etc/passwd", None, 0, 3);
        // Claim a longer raw path than the data holds.
        let off = BODY_OFFSET + std::mem::offset_of!(OpenBody, raw_len);
        rec[off..off + 2].copy_from_slice(&500u16.to_ne_bytes());
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::StringsOverrun { .. })
        ));
    }

    #[test]
    fn wrong_version_and_kind() {
        let mut rec = build::fork(1, 2, 3);
        rec[0] = 99;
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::WrongVersion { found: 99, .. })
        ));
        let mut rec = build::fork(1, 2, 3);
        rec[2] = 77;
        assert_eq!(decode(&rec), Err(DecodeError::UnknownKind(77)));
    }

    #[test]
    fn ipv4_connect() {
        // AF_INET, port 80, 127.0.0.1
        let sa = [2, 0, 0, 80, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let ev = decode(&build::connect(1, 2, &sa, 0)).unwrap();
        let Detail::Connect(c) = ev.detail else {
            panic!()
        };
        assert_eq!(
            c.addr,
            SockAddr::Inet {
                addr: "127.0.0.1".parse().unwrap(),
                port: 80,
                v4_mapped: false
            }
        );
    }

    #[test]
    fn ipv6_and_mapped_connect() {
        let mut sa = vec![10, 0, 0x1f, 0x90, 0, 0, 0, 0];
        sa.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        sa.extend_from_slice(&[0, 0, 0, 0]);
        let Detail::Connect(c) = decode(&build::connect(1, 2, &sa, -115)).unwrap().detail else {
            panic!()
        };
        assert_eq!(c.result, -115);
        assert_eq!(
            c.addr,
            SockAddr::Inet {
                addr: "::1".parse().unwrap(),
                port: 8080,
                v4_mapped: false
            }
        );
        let mut sa = vec![10, 0, 0, 53, 0, 0, 0, 0];
        sa.extend_from_slice(&Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets());
        sa.extend_from_slice(&[0, 0, 0, 0]);
        let Detail::Connect(c) = decode(&build::connect(1, 2, &sa, 0)).unwrap().detail else {
            panic!()
        };
        assert_eq!(
            c.addr,
            SockAddr::Inet {
                addr: "10.1.2.3".parse().unwrap(),
                port: 53,
                v4_mapped: true
            }
        );
    }

    #[test]
    fn unix_connect_path_and_abstract() {
        let mut sa = vec![1, 0];
        sa.extend_from_slice(b"/run/x.sock\0");
        let Detail::Connect(c) = decode(&build::connect(1, 2, &sa, 0)).unwrap().detail else {
            panic!()
        };
        assert_eq!(
            c.addr,
            SockAddr::Unix {
                path: Bytes::from("/run/x.sock")
            }
        );
        let mut sa = vec![1, 0, 0];
        sa.extend_from_slice(b"abs");
        let Detail::Connect(c) = decode(&build::connect(1, 2, &sa, 0)).unwrap().detail else {
            panic!()
        };
        assert_eq!(
            c.addr,
            SockAddr::Unix {
                path: Bytes::from("@abs")
            }
        );
    }

    #[test]
    fn short_sockaddr_is_unreadable_not_panic() {
        let Detail::Connect(c) = decode(&build::connect(1, 2, &[2], 0)).unwrap().detail else {
            panic!()
        };
        assert_eq!(c.addr, SockAddr::Unreadable);
        // AF_INET claimed but too short for an address: reported as the bare family.
        let Detail::Connect(c) = decode(&build::connect(1, 2, &[2, 0, 0, 80], 0))
            .unwrap()
            .detail
        else {
            panic!()
        };
        assert_eq!(c.addr, SockAddr::Other { af: 2 });
    }

    #[test]
    fn exit_codes() {
        let e = |code, gd| match decode(&build::exit(1, 5, 5, code, gd)).unwrap().detail {
            Detail::Exit(e) => e,
            _ => panic!(),
        };
        let normal = e(3 << 8, true);
        assert_eq!(
            (normal.status, normal.signal, normal.process_gone),
            (Some(3), None, true)
        );
        let killed = e(9, true);
        assert_eq!((killed.status, killed.signal), (None, Some(9)));
        let thread = match decode(&build::exit(1, 5, 6, 0, false)).unwrap().detail {
            Detail::Exit(e) => e,
            _ => panic!(),
        };
        assert!(!thread.leader && !thread.process_gone);
    }

    #[test]
    fn open_without_resolution_uses_raw() {
        let Detail::Open(o) = decode(&build::open(1, 2, "missing", None, 0, -2))
            .unwrap()
            .detail
        else {
            panic!()
        };
        assert_eq!(o.result, -2);
        assert_eq!(o.path, None);
        assert_eq!(o.best_path(), &Bytes::from("missing"));
    }

    /// A wire-version-1 exec record, laid out as casa before version 2 wrote it.
    fn v1_exec(path: &str) -> Vec<u8> {
        let body = ExecBody {
            result: 0,
            old_tid: 7,
            cap_effective: 0,
            seccomp_mode: 0,
            flags: wire::EXEC_PATH_RESOLVED | wire::EXEC_CREDS_VALID,
            path_len: path.len() as u16,
            argv_len: 2,
            filename_len: 0,
            _pad0: 0,
        };
        let mut h = build::header(EventKind::Exec, 5, 7, 7, "x");
        h.version = 1;
        let mut data = path.as_bytes().to_vec();
        data.extend_from_slice(b"x\0");
        build::record(h, &body, &data)
    }

    #[test]
    fn wire_version_1_records_decode_by_their_own_layout() {
        let Detail::Exec(x) = decode(&v1_exec("/usr/bin/id")).unwrap().detail else {
            panic!()
        };
        assert_eq!(x.path, Bytes::from("/usr/bin/id"));
        assert_eq!(x.argv, vec![Bytes::from("x")]);
        assert_eq!(x.facts, ExecFacts::default());
        // The same bytes claimed as version 2 are too short for the extension.
        let mut rec = v1_exec("/usr/bin/id");
        rec[0] = 2;
        assert!(decode(&rec).is_err());
        let mut rec = v1_exec("/usr/bin/id");
        rec[0] = 0;
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::WrongVersion { found: 0, .. })
        ));
    }

    #[test]
    fn exec_extension_decodes_identity_stdio_and_loader_env() {
        let mut ext = ExecExt {
            // 8:1 in the kernel's encoding is st_dev 0x801.
            file: wire::FileId {
                ino: 42,
                dev: (8 << 20) | 1,
                mode: 0o100755,
            },
            flags: wire::EXEC_EXT_STDIO | wire::EXEC_EXT_ENV_SCANNED,
            ..ExecExt::default()
        };
        ext.stdio[0] = wire::StdioFd {
            id: wire::FileId {
                ino: 9,
                dev: 9,
                mode: 0o140777,
            },
            rdev: 0,
            family: 2,
            port: 4444,
            addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        ext.stdio[1].id.mode = 0o010600;
        ext.stdio[1].id.ino = 5;
        ext.stdio[2].id.mode = 0o020620;
        ext.stdio[2].id.ino = 3;
        ext.stdio[2].rdev = 136 << 20;
        let env = b"LD_PRELOAD=/dev/shm/x.so\0";
        ext.env_len = env.len() as u16;
        let script = b"/opt/real/x.sh";
        ext.script_path_len = script.len() as u16;
        let path = "/bin/sh";
        let body = ExecBody {
            result: 0,
            old_tid: 7,
            cap_effective: 0,
            seccomp_mode: 0,
            flags: wire::EXEC_PATH_RESOLVED,
            path_len: path.len() as u16,
            argv_len: 0,
            filename_len: 0,
            _pad0: 0,
        };
        let mut data = path.as_bytes().to_vec();
        data.extend_from_slice(script);
        data.extend_from_slice(env);
        let rec = build::record(
            build::header(EventKind::Exec, 1, 7, 7, "sh"),
            &build::ExecV2 { body, ext },
            &data,
        );
        let Detail::Exec(x) = decode(&rec).unwrap().detail else {
            panic!()
        };
        assert_eq!(
            x.facts.file,
            Some(FileId {
                dev: 0x801,
                ino: 42
            })
        );
        assert_eq!(
            x.facts.loader_env,
            vec![Bytes::from("LD_PRELOAD=/dev/shm/x.so")]
        );
        let kinds: Vec<_> = x.facts.stdio.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [FdKind::Socket, FdKind::Pipe, FdKind::Tty]);
        assert_eq!(
            x.facts.stdio[0].peer,
            Some(SockAddr::Inet {
                addr: "10.0.0.1".parse().unwrap(),
                port: 4444,
                v4_mapped: false
            })
        );
        // Too many loader-variable bytes for the record is an error, not a panic.
        let mut bad = rec.clone();
        let off = BODY_OFFSET + size_of::<ExecBody>() + std::mem::offset_of!(ExecExt, env_len);
        bad[off..off + 2].copy_from_slice(&900u16.to_ne_bytes());
        assert!(matches!(
            decode(&bad),
            Err(DecodeError::StringsOverrun { .. })
        ));
    }

    fn sock_op(op: u32, sa: &[u8]) -> Vec<u8> {
        let mut sockaddr = [0u8; wire::SOCKADDR_MAX];
        sockaddr[..sa.len()].copy_from_slice(sa);
        let body = SockOpBody {
            result: 8,
            len: 8,
            fd: 3,
            op,
            addrlen: sa.len() as u32,
            flags: 0,
            sockaddr,
        };
        build::record(build::header(EventKind::SockOp, 1, 2, 2, "x"), &body, &[])
    }

    fn file_op(op: u32, flags2: u32, strings: [&str; 4]) -> Vec<u8> {
        let body = wire::FileOpBody {
            result: 0,
            op,
            flags: 0,
            mode: 0o755,
            olddfd: -100,
            newdfd: -100,
            flags2,
            old_raw_len: strings[0].len() as u16,
            old_len: strings[1].len() as u16,
            new_raw_len: strings[2].len() as u16,
            new_len: strings[3].len() as u16,
            file: wire::FileId::default(),
        };
        build::record(
            build::header(EventKind::FileOp, 1, 2, 2, "x"),
            &body,
            strings.concat().as_bytes(),
        )
    }

    #[test]
    fn new_kinds_decode_and_reject_every_truncation() {
        let sendto = sock_op(
            wire::SOCK_OP_SENDTO,
            &[2, 0, 0x11, 0x5c, 10, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        let Detail::Activity(Activity::Socket(s)) = decode(&sendto).unwrap().detail else {
            panic!()
        };
        assert_eq!(s.op, SocketOpKind::Sendto);
        assert_eq!(
            s.addr,
            SockAddr::Inet {
                addr: "10.0.0.9".parse().unwrap(),
                port: 4444,
                v4_mapped: false
            }
        );
        let rename = file_op(
            wire::FILE_OP_RENAME,
            wire::FILE_OLD_JOINED,
            ["x.sh", "/tmp/./x.sh", "/tmp/y.sh", ""],
        );
        let Detail::Activity(Activity::File(f)) = decode(&rename).unwrap().detail else {
            panic!()
        };
        assert_eq!(f.path, Some(Bytes::from("/tmp/x.sh")));
        assert_eq!(f.new_path, Some(Bytes::from("/tmp/y.sh")));
        assert_eq!(f.mode, None);
        let symlink = file_op(wire::FILE_OP_SYMLINK, 0, ["target", "", "/tmp/l", ""]);
        let Detail::Activity(Activity::File(f)) = decode(&symlink).unwrap().detail else {
            panic!()
        };
        assert_eq!((f.path, f.raw_path), (None, Bytes::from("target")));
        let tcp = build::record(
            build::header(EventKind::TcpState, 1, 2, 2, "x"),
            &TcpStateBody {
                oldstate: 7,
                newstate: 2,
                family: 2,
                protocol: 6,
                sport: 0,
                dport: 443,
                saddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                daddr: [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            },
            &[],
        );
        let Detail::Activity(Activity::Tcp(t)) = decode(&tcp).unwrap().detail else {
            panic!()
        };
        assert_eq!((t.old, t.new), ("close", "syn_sent"));
        for rec in [sendto, rename, symlink, tcp] {
            for len in 0..rec.len() {
                assert!(
                    decode(&rec[..len]).is_err(),
                    "prefix of {len} bytes decoded"
                );
            }
        }
    }

    #[test]
    fn serialised_shape_of_old_and_new_records() {
        // A wire-version-1 exec serialises exactly the fields it always had.
        let v = serde_json::to_value(decode(&v1_exec("/usr/bin/id")).unwrap()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "file",
            "script_file",
            "loader_env",
            "stdio",
            "env_truncated",
        ] {
            assert!(!keys.contains(&k), "{k} in {keys:?}");
        }
        assert_eq!(v["kind"], "exec");
        // A new kind carries its own `kind`, with no wrapper.
        let v = serde_json::to_value(
            decode(&sock_op(wire::SOCK_OP_BIND, &[2, 0, 0, 80, 0, 0, 0, 0])).unwrap(),
        )
        .unwrap();
        assert_eq!(v["kind"], "socket");
        assert_eq!(v["op"], "bind");
        assert_eq!(v["addr"]["port"], 80);
        assert!(v.get("activity").is_none() && v.get("Socket").is_none());
    }

    #[test]
    fn user_dev_matches_glibc_makedev() {
        assert_eq!(user_dev((8 << 20) | 1), 0x801);
        assert_eq!(user_dev((259 << 20) | 0x12345), 0x1231_0345);
    }

    #[test]
    fn non_utf8_bytes_are_escaped_in_text() {
        let b = Bytes(vec![b'a', 0xff, b'\\', b'b']);
        assert_eq!(b.to_text(), "a\\xff\\\\b");
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, r#""a\\xff\\\\b""#);
        assert_eq!(Bytes::from("x\u{1b}[31m").to_string(), "x\\u{1b}[31m");
    }

    #[test]
    fn script_paths_are_normalized() {
        assert_eq!(
            normalize(b"/tmp/./x/../helper.sh"),
            b"/tmp/helper.sh".to_vec()
        );
        assert_eq!(normalize(b"/a//b/."), b"/a/b".to_vec());
        assert_eq!(normalize(b"/.."), b"/".to_vec());
        assert_eq!(normalize(b"rel/x"), b"rel/x".to_vec());
    }

    #[test]
    fn memfd_and_deleted_paths() {
        for (p, want) in [
            ("/memfd:payload (deleted)", true),
            ("/tmp/x (deleted)", true),
            ("/usr/bin/ls", false),
        ] {
            let Detail::Exec(e) = decode(&build::exec(1, 2, p, &["x"])).unwrap().detail else {
                panic!()
            };
            assert_eq!(e.memfd_or_deleted(), want, "{p}");
        }
    }
}

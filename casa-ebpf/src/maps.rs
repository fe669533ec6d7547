//! The maps shared by the programs, and the kernel-private per-thread state they keep.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use casa_common::{
    config::KernelConfig,
    respond::FetchedKey,
    stats,
    wire::{FileId, LOADER_ENV_MAX, LOADER_ENV_TOTAL, PATH_MAX, SOCKADDR_MAX, StdioFd},
};

/// Start-up configuration, written by userspace before load (frozen, read-only).
#[unsafe(no_mangle)]
pub static CONFIG: KernelConfig = KernelConfig::ZEROED;

/// The event stream (size set by userspace at load; 16 MiB by default).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// Tracked process ids (tgid → `casa_common::respond::TRACK_*` bits): seeded by userspace,
/// extended on fork (the child inherits the parent's bits), pruned on exit; userspace adds
/// response bits to a session's processes.
#[map]
pub static TRACKED: HashMap<u32, u32> = HashMap::with_max_entries(65536, 0);

/// The preventive rules in force (`RESPOND[0]`: `casa_common::respond::PREVENT_*` bits),
/// written by userspace at start-up and on reload.
#[map]
pub static RESPOND: Array<u32> = Array::with_max_entries(1, 0);

/// Files sessions wrote with fetched or decoded content (filled by userspace): running one
/// is refused under `PREVENT_FETCHED_EXEC`.
#[map]
pub static FETCHED: LruHashMap<FetchedKey, u8> = LruHashMap::with_max_entries(8192, 0);

/// Loss and degradation counters, indexed by `casa_common::stats`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::COUNT, 0);

/// An exec in flight on one thread: the caller's arguments, for reporting a failure.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecPending {
    pub filename: u64,
    pub argv: u64,
    pub flags: u32,
    pub _pad: u32,
}

/// An `openat`/`openat2` in flight on one thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OpenPending {
    pub filename: u64,
    pub open_flags: u32,
    pub mode: u32,
    pub dfd: i32,
    pub syscall: u32,
}

/// A `connect` in flight on one thread.
#[repr(C)]
pub struct ConnectPending {
    pub fd: i32,
    pub addrlen: u32,
    pub flags: u32,
    pub _pad: u32,
    pub sockaddr: [u8; SOCKADDR_MAX],
}

/// Pending syscalls by thread id. LRU so that a thread that dies mid-syscall cannot leak an
/// entry forever.
#[map]
pub static EXEC_PENDING: LruHashMap<u32, ExecPending> = LruHashMap::with_max_entries(4096, 0);
#[map]
pub static OPEN_PENDING: LruHashMap<u32, OpenPending> = LruHashMap::with_max_entries(4096, 0);
#[map]
pub static CONNECT_PENDING: LruHashMap<u32, ConnectPending> = LruHashMap::with_max_entries(4096, 0);

/// Per-CPU staging for a connect's sockaddr (too big for the 512-byte stack with the rest).
#[map]
pub static CONNECT_INIT: PerCpuArray<ConnectPending> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU workspace of the path walk (`crate::path`): the path is assembled right-aligned
/// ending at `PATH_MAX`; `pos` and `tmp` live here so that loads of them are opaque to the
/// compiler and every offset is re-masked where the verifier needs it.
#[repr(C)]
pub struct PathScratch {
    pub pos: u64,
    pub tmp: u64,
    pub buf: [u8; 2 * PATH_MAX],
}

#[map]
pub static PATHS: PerCpuArray<PathScratch> = PerCpuArray::with_max_entries(1, 0);

/// Size of the per-CPU record scratch: the largest record plus the slack the verifier needs
/// for masked offsets.
pub const SCRATCH_LEN: usize = 20480;

#[repr(C)]
pub struct Scratch {
    pub buf: [u8; SCRATCH_LEN],
}

/// Where records are assembled before `bpf_ringbuf_output` copies them out.
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Exec context of a tracked process, gathered by `sched_process_exec_ctx` (attached first)
/// and copied into the exec record by `sched_process_exec` on the same CPU right after: two
/// programs, because the verifier cannot check the environment scan and the path walk as one.
#[repr(C)]
pub struct ExecCtx {
    /// The thread it was gathered for (0: nothing gathered).
    pub tid: u32,
    /// `EXEC_EXT_*` flags.
    pub flags: u32,
    pub env_len: u64,
    pub stdio: [StdioFd; 3],
    /// Loader variables, `NAME=value\0` each ([`LOADER_ENV_TOTAL`] bytes at most); the rest
    /// is room for the verifier's masked offsets.
    pub env: [u8; ENV_ROOM],
}

/// Size of `ExecCtx::env`: a write starts below `ENV_MASK` + 1 and is at most
/// `LOADER_ENV_MAX` long.
pub const ENV_ROOM: usize = 4096;
/// Mask of a write offset into `ExecCtx::env` (≥ `LOADER_ENV_TOTAL` - `LOADER_ENV_MAX`).
pub const ENV_MASK: usize = 2047;
const _: () = assert!(ENV_MASK + 1 + LOADER_ENV_MAX <= ENV_ROOM && ENV_MASK >= LOADER_ENV_TOTAL);

#[map]
pub static EXEC_CTX: PerCpuArray<ExecCtx> = PerCpuArray::with_max_entries(1, 0);

/// A socket operation in flight on one thread (`sendto`/`sendmsg`/`sendmmsg`/`bind`/`listen`/
/// `accept*`).
#[repr(C)]
pub struct SockPending {
    pub len: u64,
    pub fd: i32,
    pub op: u32,
    pub addrlen: u32,
    pub flags: u32,
    pub sockaddr: [u8; SOCKADDR_MAX],
}

#[map]
pub static SOCK_PENDING: LruHashMap<u32, SockPending> = LruHashMap::with_max_entries(4096, 0);

/// Per-CPU staging for a pending socket operation (too big for the stack).
#[map]
pub static SOCK_INIT: PerCpuArray<SockPending> = PerCpuArray::with_max_entries(1, 0);

/// A (process, socket, destination) that has already been reported as a send.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SendKey {
    pub tgid: u32,
    pub fd: i32,
    /// The first bytes of the destination sockaddr (family, port, IPv4 or IPv6 address).
    pub addr: [u8; 24],
}

/// Destinations already reported per socket (keyed by fd: a new socket on a reused fd to the
/// same destination within the LRU's memory is not reported again): only the first send to
/// each is an event.
#[map]
pub static SEND_SEEN: LruHashMap<SendKey, u8> = LruHashMap::with_max_entries(16384, 0);

/// A file-lifecycle syscall in flight on one thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileOpPending {
    pub old: u64,
    pub new: u64,
    pub olddfd: i32,
    pub newdfd: i32,
    pub op: u32,
    pub flags: u32,
    pub mode: u32,
    /// `fchmod`'s fd.
    pub fd: i32,
}

#[map]
pub static FILEOP_PENDING: LruHashMap<u32, FileOpPending> = LruHashMap::with_max_entries(4096, 0);

/// A `setsid`/`ptrace`/`memfd_create` in flight on one thread.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ProcOpPending {
    pub name: u64,
    pub op: u32,
    pub request: u32,
    pub target: u32,
    pub flags: u32,
}

#[map]
pub static PROCOP_PENDING: LruHashMap<u32, ProcOpPending> = LruHashMap::with_max_entries(4096, 0);

/// Bytes sent per (process, socket), for `sock_send_length`. Keyed by the `struct sock`
/// address: a socket allocated where a closed one was continues its total (the LRU forgets).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SendVolKey {
    pub tgid: u32,
    pub _pad: u32,
    /// The `struct sock` address.
    pub sk: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SendVol {
    pub total: u64,
    /// The total at which the next event is emitted.
    pub next: u64,
}

#[map]
pub static SEND_BYTES: LruHashMap<SendVolKey, SendVol> = LruHashMap::with_max_entries(16384, 0);

/// A `#!` script's own file, found by `sched_process_exec_script` (attached before
/// `sched_process_exec`, for every process) and copied into the exec record by
/// `sched_process_exec` right after on the same CPU: a separate program because the verifier
/// checks every inlined path walk anew, and the exec program already walks one.
#[repr(C)]
pub struct ScriptCtx {
    /// The thread it was found for (0: nothing found).
    pub tid: u32,
    /// `EXEC_EXT_SCRIPT_DELETED` when the script is unlinked.
    pub flags: u32,
    pub id: FileId,
    pub len: u64,
    pub path: [u8; PATH_MAX],
}

#[map]
pub static SCRIPT_CTX: PerCpuArray<ScriptCtx> = PerCpuArray::with_max_entries(1, 0);

//! The maps shared by the programs, and the kernel-private per-thread state they keep.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use casa_common::{
    config::KernelConfig,
    stats,
    wire::{PATH_MAX, SOCKADDR_MAX},
};

/// Start-up configuration, written by userspace before load (frozen, read-only).
#[unsafe(no_mangle)]
pub static CONFIG: KernelConfig = KernelConfig::ZEROED;

/// The event stream (size set by userspace at load; 16 MiB by default).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// Tracked process ids (tgid → 1): seeded by userspace, extended on fork, pruned on exit.
#[map]
pub static TRACKED: HashMap<u32, u32> = HashMap::with_max_entries(65536, 0);

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
pub const SCRATCH_LEN: usize = 16384 + 256;

#[repr(C)]
pub struct Scratch {
    pub buf: [u8; SCRATCH_LEN],
}

/// Where records are assembled before `bpf_ringbuf_output` copies them out.
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

//! Small helpers shared by the probes: identity, tracking, kernel reads, record emission.

use core::ffi::c_void;

use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{
    bpf_get_current_comm,
    generated::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_current_uid_gid, bpf_ktime_get_boot_ns, bpf_probe_read_kernel, bpf_ringbuf_output,
        bpf_send_signal,
    },
};
use casa_common::{
    WIRE_VERSION,
    respond::{SIGKILL, TRACK_KILL},
    stats,
    wire::{EventKind, Header},
};

use crate::maps::{EVENTS, SCRATCH, STATS, TRACKED};

/// Read one field of the start-up configuration, e.g. `config!(offsets.task_pid)`.
///
/// A volatile load keeps the compiler from folding the zero placeholder in the object file;
/// the verifier then sees the value userspace wrote into the frozen `.rodata` map as a constant.
macro_rules! config {
    ($($field:tt)+) => {
        {
            #[allow(unused_unsafe, reason = "the macro is also used inside unsafe blocks")]
            // SAFETY: CONFIG is a static; the load is a plain read of it.
            let value = unsafe { core::ptr::read_volatile(&raw const $crate::maps::CONFIG.$($field)+) };
            value
        }
    };
}
pub(crate) use config;

/// (tid, tgid) of the current task.
#[inline(always)]
pub fn ids() -> (u32, u32) {
    // SAFETY: helper without arguments.
    let v = unsafe { bpf_get_current_pid_tgid() };
    (v as u32, (v >> 32) as u32)
}

/// Increment a `STATS` counter.
#[inline(always)]
pub fn bump(index: u32) {
    if let Some(p) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU value; BPF programs are not preempted on their CPU.
        unsafe { *p += 1 };
    }
}

/// True when open/connect of this process must be reported. A tracked process under a kill
/// order (`TRACK_KILL`) is killed here, at whichever tracked syscall it makes first.
#[inline(always)]
pub fn is_tracked(tgid: u32) -> bool {
    if tgid == config!(self_tgid) {
        return false;
    }
    // SAFETY: the value is copied out at once.
    match unsafe { TRACKED.get(tgid) } {
        Some(bits) => {
            if *bits & TRACK_KILL != 0 {
                kill_current();
            }
            true
        }
        None => config!(all_processes) != 0,
    }
}

/// The `TRACKED` bits of `tgid` (`casa_common::respond::TRACK_*`), if it is tracked.
#[inline(always)]
pub fn tracked_bits(tgid: u32) -> Option<u32> {
    // SAFETY: the value is copied out at once.
    unsafe { TRACKED.get(tgid) }.copied()
}

/// Send `SIGKILL` to the current process (every thread of it): delivered before it returns
/// to user space, so it runs no further instruction of its own. Counted in `STATS`.
#[inline(always)]
pub fn kill_current() {
    // SAFETY: helper with a plain integer argument; it acts on the current task only.
    if unsafe { bpf_send_signal(SIGKILL) } == 0 {
        bump(stats::RESPONSE_KILLS);
    } else {
        bump(stats::RESPONSE_FAILED);
    }
}

/// Read a `T` at `base + offset` from kernel memory.
///
/// # Safety
/// `base` must be a kernel address (a failed read is reported, not faulted).
#[inline(always)]
pub unsafe fn read_kernel<T: Copy>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    let mut out = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: bpf_probe_read_kernel tolerates bad addresses and reports them.
    let ret = unsafe {
        bpf_probe_read_kernel(
            out.as_mut_ptr().cast(),
            core::mem::size_of::<T>() as u32,
            (base + offset as u64) as *const c_void,
        )
    };
    if ret < 0 {
        None
    } else {
        // SAFETY: the helper filled every byte.
        Some(unsafe { out.assume_init() })
    }
}

/// The current `task_struct` address.
#[inline(always)]
pub fn current_task() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_get_current_task() }
}

/// The per-CPU scratch buffer records are assembled in.
#[inline(always)]
pub fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(|s| s.cast::<u8>())
}

/// Fill the header at the start of `buf` for the current task.
///
/// # Safety
/// `buf` must point to the scratch buffer.
#[inline(always)]
pub unsafe fn fill_header(buf: *mut u8, kind: EventKind) {
    let (tid, tgid) = ids();
    let task = current_task();
    // SAFETY: task is the current task_struct.
    let parent: u64 = unsafe { read_kernel(task, config!(offsets.task_real_parent)) }.unwrap_or(0);
    // SAFETY: parent is a task_struct (or 0, which read_kernel refuses).
    let ppid: u32 = unsafe { read_kernel(parent, config!(offsets.task_tgid)) }.unwrap_or(0);
    // SAFETY: helpers without pointer arguments.
    let (uid_gid, ktime, cgroup) = unsafe {
        (
            bpf_get_current_uid_gid(),
            bpf_ktime_get_boot_ns(),
            bpf_get_current_cgroup_id(),
        )
    };
    let hdr = buf.cast::<Header>();
    // SAFETY: buf holds at least a Header (scratch is far larger) and is 8-aligned.
    unsafe {
        (*hdr).version = WIRE_VERSION;
        (*hdr).kind = kind as u16;
        (*hdr).size = 0;
        (*hdr).ktime_ns = ktime;
        (*hdr).tid = tid;
        (*hdr).tgid = tgid;
        (*hdr).ppid = ppid;
        (*hdr).uid = uid_gid as u32;
        (*hdr).gid = (uid_gid >> 32) as u32;
        (*hdr)._pad0 = 0;
        (*hdr).cgroup_id = cgroup;
        (*hdr).comm = bpf_get_current_comm().unwrap_or([0; 16]);
    }
}

/// Copy the first `size` bytes of `buf` into the ring buffer; count a loss under `lost` when
/// the ring is full. Execs and connects wake the reader at once (see [`emit_waking`]).
///
/// # Safety
/// `buf` must point to the scratch buffer and `size` must not exceed it.
#[inline(always)]
pub unsafe fn emit(buf: *mut u8, size: u32, lost: u32) {
    let urgent = lost == stats::LOST_EXEC || lost == stats::LOST_CONNECT;
    // SAFETY: forwarded from the caller.
    unsafe { emit_waking(buf, size, lost, urgent) }
}

/// [`emit`] with the wake-up decided by the caller. Batched wake-ups: an `urgent` record (one
/// an alert is likely decided on) wakes the reader at once; any other only when the ring
/// already holds `wakeup_bytes`, and the reader's timer collects the rest. Notifying on every
/// record costs a self-IPI each.
///
/// # Safety
/// `buf` must point to the scratch buffer and `size` must not exceed it.
#[inline(always)]
pub unsafe fn emit_waking(buf: *mut u8, size: u32, lost: u32, urgent: bool) {
    // SAFETY: the caller guarantees buf[..size] is initialised scratch memory.
    unsafe { (*buf.cast::<Header>()).size = size };
    let threshold = config!(wakeup_bytes) as u64;
    let flags = if urgent || threshold == 0 || EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    };
    // SAFETY: EVENTS is a ring buffer map; buf/size describe readable memory.
    let ret = unsafe {
        bpf_ringbuf_output(
            (&raw const EVENTS).cast_mut().cast(),
            buf.cast(),
            size as u64,
            flags,
        )
    };
    if ret < 0 {
        bump(lost);
    }
}

//! Process-level operations of tracked processes that change how they can be watched or what
//! they can run: `setsid` (leaving the session/terminal, e.g. to daemonise), `ptrace`
//! attaching to another process, `memfd_create` (an anonymous file, often for fileless exec).
//!
//! * `syscalls:sys_enter_setsid`: no arguments
//! * `syscalls:sys_enter_ptrace`: request @16, pid @24
//! * `syscalls:sys_enter_memfd_create`: uname @16, flags @24
//! * `syscalls:sys_exit_*`: ret @16

use aya_ebpf::{
    helpers::generated::bpf_probe_read_user_str, macros::tracepoint, programs::TracePointContext,
};
use casa_common::{
    stats,
    wire::{
        BODY_OFFSET, EventKind, PATH_MAX, PROC_OP_MEMFD_CREATE, PROC_OP_PTRACE, PROC_OP_SETSID,
        ProcOpBody,
    },
};

use crate::{
    maps::{PROCOP_PENDING, ProcOpPending},
    util::{bump, emit, fill_header, ids, is_tracked, scratch},
};

const DATA_OFFSET: usize = BODY_OFFSET + core::mem::size_of::<ProcOpBody>();
/// `memfd_create` names are at most 249 bytes; keep 255.
const NAME_MAX: usize = 256;

/// `PTRACE_TRACEME`, `PTRACE_ATTACH`, `PTRACE_SEIZE`: the requests that start tracing.
const PTRACE_TRACEME: u32 = 0;
const PTRACE_ATTACH: u32 = 16;
const PTRACE_SEIZE: u32 = 0x4206;

#[inline(always)]
fn stash(tid: u32, p: ProcOpPending) -> u32 {
    if PROCOP_PENDING.insert(tid, p, 0).is_err() {
        bump(stats::PENDING_FULL);
    }
    0
}

#[tracepoint]
pub fn sys_enter_setsid(_ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    stash(
        tid,
        ProcOpPending {
            name: 0,
            op: PROC_OP_SETSID,
            request: 0,
            target: 0,
            flags: 0,
        },
    )
}

#[tracepoint]
pub fn sys_enter_ptrace(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (request, pid) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0) as u32,
            ctx.read_at::<u64>(24).unwrap_or(0) as u32,
        )
    };
    if request != PTRACE_ATTACH && request != PTRACE_SEIZE && request != PTRACE_TRACEME {
        return 0;
    }
    stash(
        tid,
        ProcOpPending {
            name: 0,
            op: PROC_OP_PTRACE,
            request,
            target: pid,
            flags: 0,
        },
    )
}

#[tracepoint]
pub fn sys_enter_memfd_create(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (name, flags) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0),
            ctx.read_at::<u64>(24).unwrap_or(0) as u32,
        )
    };
    stash(
        tid,
        ProcOpPending {
            name,
            op: PROC_OP_MEMFD_CREATE,
            request: 0,
            target: 0,
            flags,
        },
    )
}

#[inline(always)]
fn exit_procop(ctx: &TracePointContext) -> u32 {
    let (tid, _) = ids();
    let Some(p) = PROCOP_PENDING.get_ptr(tid) else {
        return 0;
    };
    // SAFETY: offset from the tracepoint's format.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if let Some(buf) = scratch() {
        // SAFETY: buf is the scratch buffer; p is this thread's pending syscall; the name is
        // the caller's argument, still mapped at syscall exit.
        unsafe {
            fill_header(buf, EventKind::ProcOp);
            let body = buf.add(BODY_OFFSET).cast::<ProcOpBody>();
            (*body).result = ret;
            (*body).op = (*p).op;
            (*body).request = (*p).request;
            (*body).target = (*p).target;
            (*body).flags = (*p).flags;
            (*body)._pad = [0; 3];
            let mut len = 0usize;
            if (*p).name != 0 {
                let n = bpf_probe_read_user_str(
                    buf.add(DATA_OFFSET).cast(),
                    NAME_MAX as u32,
                    (*p).name as *const _,
                );
                if n > 1 {
                    len = ((n - 1) as usize) & (PATH_MAX - 1);
                }
            }
            (*body).name_len = len as u16;
            emit(buf, (DATA_OFFSET + len) as u32, stats::LOST_OTHER);
        }
    }
    let _ = PROCOP_PENDING.remove(tid);
    0
}

#[tracepoint]
pub fn sys_exit_setsid(ctx: TracePointContext) -> u32 {
    exit_procop(&ctx)
}

#[tracepoint]
pub fn sys_exit_ptrace(ctx: TracePointContext) -> u32 {
    exit_procop(&ctx)
}

#[tracepoint]
pub fn sys_exit_memfd_create(ctx: TracePointContext) -> u32 {
    exit_procop(&ctx)
}

//! Connects of tracked processes: `sys_enter_connect` → `sys_exit_connect`.
//!
//! * `syscalls:sys_enter_connect`: fd @16, uservaddr @24, addrlen @32
//! * `syscalls:sys_exit_connect`: ret @16

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use casa_common::{
    stats,
    wire::{BODY_OFFSET, CONNECT_ADDR_UNREADABLE, ConnectBody, EventKind, SOCKADDR_MAX},
};

use crate::{
    maps::{CONNECT_INIT, CONNECT_PENDING},
    util::{bump, emit, fill_header, ids, is_tracked, scratch},
};

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (fd, addr, addrlen) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0) as i32,
            ctx.read_at::<u64>(24).unwrap_or(0),
            ctx.read_at::<u64>(32).unwrap_or(0) as u32,
        )
    };
    let Some(init) = CONNECT_INIT.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU staging value; the sockaddr is the caller's argument.
    unsafe {
        (*init).fd = fd;
        (*init).addrlen = addrlen;
        (*init).flags = 0;
        (*init)._pad = 0;
        let mut n = addrlen as usize;
        if n > SOCKADDR_MAX {
            n = SOCKADDR_MAX;
        }
        let dst = (*init).sockaddr.as_mut_ptr();
        if addr == 0 || bpf_probe_read_user(dst.cast(), n as u32, addr as *const _) != 0 {
            (*init).flags = CONNECT_ADDR_UNREADABLE;
            bump(stats::READ_FAILED);
        }
        if CONNECT_PENDING.insert(tid, &*init, 0).is_err() {
            bump(stats::PENDING_FULL);
        }
    }
    0
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    let (tid, _) = ids();
    let Some(p) = CONNECT_PENDING.get_ptr(tid) else {
        return 0;
    };
    // SAFETY: offset from the tracepoint's format.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if let Some(buf) = scratch() {
        // SAFETY: buf is the scratch buffer; p is this thread's pending connect.
        unsafe {
            fill_header(buf, EventKind::Connect);
            let body = buf.add(BODY_OFFSET).cast::<ConnectBody>();
            (*body).result = ret as i32;
            (*body).fd = (*p).fd;
            (*body).addrlen = (*p).addrlen;
            (*body).flags = (*p).flags;
            bpf_probe_read_kernel(
                (*body).sockaddr.as_mut_ptr().cast(),
                SOCKADDR_MAX as u32,
                (*p).sockaddr.as_ptr().cast(),
            );
            emit(
                buf,
                (BODY_OFFSET + core::mem::size_of::<ConnectBody>()) as u32,
                stats::LOST_CONNECT,
            );
        }
    }
    let _ = CONNECT_PENDING.remove(tid);
    0
}

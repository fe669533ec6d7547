//! Socket operations of tracked processes besides `connect`: sends with an explicit
//! destination, `bind`, `listen`, `accept`; and TCP state changes from
//! `sock:inet_sock_set_state`, which sees connections made by any route (io_uring included).
//!
//! * `syscalls:sys_enter_sendto`: fd @16, len @32, addr @48, addr_len @56
//! * `syscalls:sys_enter_sendmsg`: fd @16, msg @24; `syscalls:sys_enter_sendmmsg`: fd @16,
//!   mmsg @24 (the first message's `msg_hdr`); `user_msghdr`: `msg_name` @0, `msg_namelen` @8
//! * `syscalls:sys_enter_bind`: fd @16, umyaddr @24, addrlen @32
//! * `syscalls:sys_enter_listen`: fd @16, backlog @24
//! * `syscalls:sys_enter_accept[4]`: fd @16
//! * `syscalls:sys_exit_*`: ret @16
//! * `sock:sock_send_length`: sk @8, family @16, protocol @18, ret @20
//! * `sock:inet_sock_set_state`: oldstate @16, newstate @20, sport @24, dport @26,
//!   family @28, protocol @30, saddr @32, daddr @36, saddr_v6 @40, daddr_v6 @56

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use casa_common::{
    stats,
    wire::{
        BODY_OFFSET, EventKind, SOCK_ADDR_UNREADABLE, SOCK_OP_ACCEPT, SOCK_OP_ACCEPT4,
        SOCK_OP_BIND, SOCK_OP_LISTEN, SOCK_OP_SENDMMSG, SOCK_OP_SENDMSG, SOCK_OP_SENDTO,
        SOCKADDR_MAX, SendVolumeBody, SockOpBody, TcpStateBody,
    },
};

use crate::{
    maps::{
        SEND_BYTES, SEND_SEEN, SOCK_INIT, SOCK_PENDING, SendKey, SendVol, SendVolKey, SockPending,
    },
    path,
    util::{bump, config, current_task, emit, fill_header, ids, is_tracked, read_kernel, scratch},
};

/// Stage a socket operation; `addr` (user pointer, may be 0) is copied when non-zero.
#[inline(always)]
fn stash(tid: u32, tgid: u32, op: u32, fd: i32, len: u64, addr: u64, addrlen: u32) {
    let Some(init) = SOCK_INIT.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU staging value; the sockaddr is the caller's argument.
    unsafe {
        (*init).len = len;
        (*init).fd = fd;
        (*init).op = op;
        (*init).addrlen = addrlen;
        (*init).flags = 0;
        (*init).sockaddr = [0; SOCKADDR_MAX];
        if addr != 0 {
            let mut n = addrlen as usize;
            if n > SOCKADDR_MAX {
                n = SOCKADDR_MAX;
            }
            let dst = (*init).sockaddr.as_mut_ptr();
            if bpf_probe_read_user(dst.cast(), n as u32, addr as *const _) != 0 {
                (*init).flags = SOCK_ADDR_UNREADABLE;
                bump(stats::READ_FAILED);
            }
        }
        if op <= SOCK_OP_SENDMMSG && SEND_SEEN.get_ptr(send_key(tgid, &*init)).is_some() {
            // This socket already sent to this destination: reported once.
            return;
        }
        if SOCK_PENDING.insert(tid, &*init, 0).is_err() {
            bump(stats::PENDING_FULL);
        }
    }
}

#[inline(always)]
fn send_key(tgid: u32, p: &SockPending) -> SendKey {
    let mut addr = [0u8; 24];
    for (i, b) in addr.iter_mut().enumerate() {
        *b = p.sockaddr[i];
    }
    SendKey {
        tgid,
        fd: p.fd,
        addr,
    }
}

#[tracepoint]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (fd, len, addr, addrlen) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0) as i32,
            ctx.read_at::<u64>(32).unwrap_or(0),
            ctx.read_at::<u64>(48).unwrap_or(0),
            ctx.read_at::<u64>(56).unwrap_or(0) as u32,
        )
    };
    if addr != 0 {
        stash(tid, tgid, SOCK_OP_SENDTO, fd, len, addr, addrlen);
    }
    0
}

/// `sendmsg`/`sendmmsg`: the destination is the (first) message header's `msg_name`.
#[inline(always)]
fn enter_sendmsg(ctx: &TracePointContext, op: u32) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (fd, msg) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0) as i32,
            ctx.read_at::<u64>(24).unwrap_or(0),
        )
    };
    let mut hdr = [0u64; 2];
    // SAFETY: reads the caller's msghdr (msg_name, msg_namelen) into a stack buffer.
    if msg == 0 || unsafe { bpf_probe_read_user((&raw mut hdr).cast(), 16, msg as *const _) } != 0 {
        return 0;
    }
    if hdr[0] != 0 {
        stash(tid, tgid, op, fd, 0, hdr[0], hdr[1] as u32);
    }
    0
}

#[tracepoint]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    enter_sendmsg(&ctx, SOCK_OP_SENDMSG)
}

#[tracepoint]
pub fn sys_enter_sendmmsg(ctx: TracePointContext) -> u32 {
    enter_sendmsg(&ctx, SOCK_OP_SENDMMSG)
}

#[tracepoint]
pub fn sys_enter_bind(ctx: TracePointContext) -> u32 {
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
    stash(tid, tgid, SOCK_OP_BIND, fd, 0, addr, addrlen);
    0
}

#[tracepoint]
pub fn sys_enter_listen(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (fd, backlog) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0) as i32,
            ctx.read_at::<u64>(24).unwrap_or(0),
        )
    };
    stash(tid, tgid, SOCK_OP_LISTEN, fd, backlog, 0, 0);
    0
}

#[inline(always)]
fn enter_accept(ctx: &TracePointContext, op: u32) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offset from the tracepoint's format.
    let fd = unsafe { ctx.read_at::<u64>(16).unwrap_or(0) as i32 };
    stash(tid, tgid, op, fd, 0, 0, 0);
    0
}

#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    enter_accept(&ctx, SOCK_OP_ACCEPT)
}

#[tracepoint]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    enter_accept(&ctx, SOCK_OP_ACCEPT4)
}

/// Write the local (`local`) or peer address of the socket open on `fd` as a
/// `sockaddr_in`/`sockaddr_in6` into `out`; returns its length (0: not an inet socket).
///
/// # Safety
/// `out` must be writable map memory of `SOCKADDR_MAX` bytes.
#[inline(always)]
unsafe fn socket_addr(fd: u64, local: bool, out: *mut u8) -> u32 {
    // SAFETY: checked probe reads along task->files->…->file->private_data->sk.
    unsafe {
        let Some(file) = path::file_of_fd(current_task(), fd) else {
            return 0;
        };
        let sock: u64 = read_kernel(file, config!(offsets.file_private_data)).unwrap_or(0);
        let sk: u64 = read_kernel(sock, config!(offsets.socket_sk)).unwrap_or(0);
        let family: u16 = read_kernel(sk, config!(offsets.sock_family)).unwrap_or(0);
        let port: u16 = if local {
            read_kernel::<u16>(sk, config!(offsets.sock_num))
                .unwrap_or(0)
                .to_be()
        } else {
            read_kernel(sk, config!(offsets.sock_dport)).unwrap_or(0)
        };
        let f = family.to_ne_bytes();
        let p = port.to_ne_bytes();
        *out = f[0];
        *out.add(1) = f[1];
        *out.add(2) = p[0];
        *out.add(3) = p[1];
        if family == 2 {
            let off = if local {
                config!(offsets.sock_rcv_saddr)
            } else {
                config!(offsets.sock_daddr)
            };
            let a: [u8; 4] = read_kernel(sk, off).unwrap_or([0; 4]);
            for (i, b) in a.iter().enumerate() {
                *out.add(4 + i) = *b;
            }
            16
        } else if family == 10 {
            let off = if local {
                config!(offsets.sock_v6_rcv_saddr)
            } else {
                config!(offsets.sock_v6_daddr)
            };
            let a: [u8; 16] = read_kernel(sk, off).unwrap_or([0; 16]);
            for (i, b) in a.iter().enumerate() {
                *out.add(8 + i) = *b;
            }
            28
        } else {
            0
        }
    }
}

#[inline(always)]
fn exit_sock(ctx: &TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    let Some(p) = SOCK_PENDING.get_ptr(tid) else {
        return 0;
    };
    // SAFETY: offset from the tracepoint's format.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if let Some(buf) = scratch() {
        // SAFETY: buf is the scratch buffer; p is this thread's pending operation.
        unsafe {
            fill_header(buf, EventKind::SockOp);
            let body = buf.add(BODY_OFFSET).cast::<SockOpBody>();
            (*body).result = ret;
            (*body).len = (*p).len;
            (*body).fd = (*p).fd;
            (*body).op = (*p).op;
            (*body).addrlen = (*p).addrlen;
            (*body).flags = (*p).flags;
            bpf_probe_read_kernel(
                (*body).sockaddr.as_mut_ptr().cast(),
                SOCKADDR_MAX as u32,
                (*p).sockaddr.as_ptr().cast(),
            );
            let op = (*p).op;
            if op == SOCK_OP_LISTEN || op == SOCK_OP_ACCEPT || op == SOCK_OP_ACCEPT4 {
                let (fd, local) = if op == SOCK_OP_LISTEN {
                    ((*p).fd as u64, true)
                } else {
                    (ret as u64, false)
                };
                (*body).addrlen = 0;
                if ret >= 0 {
                    (*body).addrlen = socket_addr(fd, local, (*body).sockaddr.as_mut_ptr());
                }
                if (*body).addrlen == 0 {
                    (*body).flags |= SOCK_ADDR_UNREADABLE;
                }
            }
            if op <= SOCK_OP_SENDMMSG && ret >= 0 {
                let _ = SEND_SEEN.insert(send_key(tgid, &*p), 1, 0);
            }
            emit(
                buf,
                (BODY_OFFSET + core::mem::size_of::<SockOpBody>()) as u32,
                stats::LOST_OTHER,
            );
        }
    }
    let _ = SOCK_PENDING.remove(tid);
    0
}

#[tracepoint]
pub fn sys_exit_sendto(ctx: TracePointContext) -> u32 {
    exit_sock(&ctx)
}

#[tracepoint]
pub fn sys_exit_sendmsg(ctx: TracePointContext) -> u32 {
    exit_sock(&ctx)
}

#[tracepoint]
pub fn sys_exit_sendmmsg(ctx: TracePointContext) -> u32 {
    exit_sock(&ctx)
}

#[tracepoint]
pub fn sys_exit_bind(ctx: TracePointContext) -> u32 {
    exit_sock(&ctx)
}

#[tracepoint]
pub fn sys_exit_listen(ctx: TracePointContext) -> u32 {
    exit_sock(&ctx)
}

#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    exit_sock(&ctx)
}

#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    exit_sock(&ctx)
}

/// `TCP_SYN_SENT` and `TCP_LISTEN` (`include/net/tcp_states.h`).
const TCP_SYN_SENT: u32 = 2;
const TCP_LISTEN: u32 = 10;

/// `sock:inet_sock_set_state`. Only the transitions made in the owning task's context are
/// attributable to a process: entering `SYN_SENT` (connect, by syscall or io_uring) and
/// `LISTEN`. Later transitions run in softirq context on whatever task was current.
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let (_, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let newstate = unsafe { ctx.read_at::<u32>(20) }.unwrap_or(0);
    if newstate != TCP_SYN_SENT && newstate != TCP_LISTEN {
        return 0;
    }
    let Some(buf) = scratch() else { return 0 };
    // SAFETY: buf is the scratch buffer; reads are from the tracepoint's record.
    unsafe {
        fill_header(buf, EventKind::TcpState);
        let body = buf.add(BODY_OFFSET).cast::<TcpStateBody>();
        (*body).oldstate = ctx.read_at::<u32>(16).unwrap_or(0);
        (*body).newstate = newstate;
        (*body).sport = ctx.read_at::<u16>(24).unwrap_or(0);
        (*body).dport = ctx.read_at::<u16>(26).unwrap_or(0);
        let family = ctx.read_at::<u16>(28).unwrap_or(0);
        (*body).family = family;
        (*body).protocol = ctx.read_at::<u16>(30).unwrap_or(0);
        if family == 10 {
            (*body).saddr = ctx.read_at::<[u8; 16]>(40).unwrap_or([0; 16]);
            (*body).daddr = ctx.read_at::<[u8; 16]>(56).unwrap_or([0; 16]);
        } else {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            let s4 = ctx.read_at::<[u8; 4]>(32).unwrap_or([0; 4]);
            let d4 = ctx.read_at::<[u8; 4]>(36).unwrap_or([0; 4]);
            s[..4].copy_from_slice(&s4);
            d[..4].copy_from_slice(&d4);
            (*body).saddr = s;
            (*body).daddr = d;
        }
        emit(
            buf,
            (BODY_OFFSET + core::mem::size_of::<TcpStateBody>()) as u32,
            stats::LOST_OTHER,
        );
    }
    0
}

/// `sock:sock_send_length` (sk @8, family @16, protocol @18, ret @20): count the bytes a
/// tracked process sends per socket, by any route (`write`, `send*`, io_uring), and emit the
/// running total at the first send and then each time it has doubled: volume as evidence at
/// a logarithmic cost in events.
#[tracepoint]
pub fn sock_send_length(ctx: TracePointContext) -> u32 {
    let (_, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (sk, ret) = unsafe {
        (
            ctx.read_at::<u64>(8).unwrap_or(0),
            ctx.read_at::<i32>(20).unwrap_or(0),
        )
    };
    if ret <= 0 || sk == 0 {
        return 0;
    }
    let key = SendVolKey { tgid, _pad: 0, sk };
    let (total, emit_now) = match SEND_BYTES.get_ptr_mut(key) {
        Some(v) => {
            // SAFETY: a map value of this CPU's lookup; a racing update only skews a counter.
            unsafe {
                (*v).total += ret as u64;
                let t = (*v).total;
                let due = t >= (*v).next;
                if due {
                    (*v).next = t.saturating_mul(2);
                }
                (t, due)
            }
        }
        None => {
            let t = ret as u64;
            let _ = SEND_BYTES.insert(
                key,
                SendVol {
                    total: t,
                    next: t.saturating_mul(2),
                },
                0,
            );
            (t, true)
        }
    };
    if !emit_now {
        return 0;
    }
    let Some(buf) = scratch() else { return 0 };
    // SAFETY: buf is the scratch buffer; sk is the sending socket (checked reads).
    unsafe {
        fill_header(buf, EventKind::SendVolume);
        let body = buf.add(BODY_OFFSET).cast::<SendVolumeBody>();
        (*body).total = total;
        (*body).last = ret as u64;
        let family = ctx.read_at::<u16>(16).unwrap_or(0);
        (*body).family = family;
        (*body).protocol = ctx.read_at::<u16>(18).unwrap_or(0);
        (*body).dport = u16::from_be(read_kernel(sk, config!(offsets.sock_dport)).unwrap_or(0));
        (*body).sport = read_kernel(sk, config!(offsets.sock_num)).unwrap_or(0);
        let mut a = [0u8; 16];
        if family == 2 {
            let v4: [u8; 4] = read_kernel(sk, config!(offsets.sock_daddr)).unwrap_or([0; 4]);
            a[..4].copy_from_slice(&v4);
        } else if family == 10 {
            a = read_kernel(sk, config!(offsets.sock_v6_daddr)).unwrap_or([0; 16]);
        }
        (*body).daddr = a;
        emit(
            buf,
            (BODY_OFFSET + core::mem::size_of::<SendVolumeBody>()) as u32,
            stats::LOST_OTHER,
        );
    }
    0
}

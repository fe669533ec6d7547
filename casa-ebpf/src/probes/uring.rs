//! io_uring of tracked processes: ring creation (`io_uring:io_uring_create`) and every
//! submitted request (`tp_btf/io_uring_submit_req(struct io_kiocb *req)`, after the request
//! was prepared). Syscall tracepoints never see what a ring does, so for `OPENAT`/`OPENAT2`
//! the path (the kernel's copy of it) and for `CONNECT`/`SENDMSG`/`SEND` (and their
//! zero-copy variants) the destination (the user's sockaddr) are read from the request itself; the request structs' offsets come from
//! BTF and are optional (see `KernelOffsets::io_kiocb_opcode`).
//!
//! * `io_uring:io_uring_create`: fd @8, sq_entries @24, cq_entries @28, flags @32

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user},
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use casa_common::{
    config::OFFSET_UNKNOWN,
    stats,
    wire::{
        BODY_OFFSET, EventKind, IO_URING_ADDR, IO_URING_CREATE, IO_URING_SUBMIT, IoUringBody,
        PATH_MAX, SOCKADDR_MAX,
    },
};

use crate::util::{bump, config, emit, fill_header, ids, is_tracked, read_kernel, scratch};

const DATA_OFFSET: usize = BODY_OFFSET + core::mem::size_of::<IoUringBody>();

/// `IORING_OP_*` (uapi, stable).
const OP_SENDMSG: u32 = 9;
const OP_SEND: u32 = 26;
const OP_SEND_ZC: u32 = 47;
const OP_SENDMSG_ZC: u32 = 48;
const OP_CONNECT: u32 = 16;
const OP_OPENAT: u32 = 18;
const OP_OPENAT2: u32 = 28;
const OP_RENAMEAT: u32 = 35;
const OP_UNLINKAT: u32 = 36;
const OP_MKDIRAT: u32 = 37;
const OP_SYMLINKAT: u32 = 38;
const OP_LINKAT: u32 = 39;

/// Copy the string of the `struct filename *` at `cmd + field` to `dst` (map memory with
/// `PATH_MAX` bytes); returns its length without the NUL, below `PATH_MAX`.
///
/// # Safety
/// `dst` must be writable map memory of `PATH_MAX` bytes.
#[inline(always)]
unsafe fn filename_to(cmd: u64, field: u32, dst: *mut u8) -> usize {
    // SAFETY: checked kernel reads; the caller's guarantee for dst.
    unsafe {
        let f: u64 = read_kernel(cmd, field).unwrap_or(0);
        let name: u64 = read_kernel(f, config!(offsets.filename_name)).unwrap_or(0);
        if name == 0 {
            return 0;
        }
        let n = bpf_probe_read_kernel_str(dst.cast(), PATH_MAX as u32, name as *const _);
        if n > 1 {
            ((n - 1) as usize) & (PATH_MAX - 1)
        } else {
            0
        }
    }
}

/// Zero the body.
///
/// # Safety
/// `body` must point into the scratch buffer.
#[inline(always)]
unsafe fn clear(body: *mut IoUringBody) {
    // SAFETY: the caller's guarantee.
    unsafe {
        (*body).op = 0;
        (*body).opcode = 0;
        (*body).fd = -1;
        (*body).flags = 0;
        (*body).sq_entries = 0;
        (*body).cq_entries = 0;
        (*body).flags2 = 0;
        (*body).addrlen = 0;
        (*body).path_len = 0;
        (*body).new_path_len = 0;
        (*body)._pad = [0; 2];
        (*body).sockaddr = [0; SOCKADDR_MAX];
    }
}

#[tracepoint]
pub fn io_uring_create(ctx: TracePointContext) -> u32 {
    if !is_tracked(ids().1) {
        return 0;
    }
    let Some(buf) = scratch() else { return 0 };
    // SAFETY: buf is the scratch buffer; offsets from the tracepoint's format.
    unsafe {
        fill_header(buf, EventKind::IoUring);
        let body = buf.add(BODY_OFFSET).cast::<IoUringBody>();
        clear(body);
        (*body).op = IO_URING_CREATE;
        (*body).fd = ctx.read_at::<i32>(8).unwrap_or(-1);
        (*body).sq_entries = ctx.read_at::<u32>(24).unwrap_or(0);
        (*body).cq_entries = ctx.read_at::<u32>(28).unwrap_or(0);
        (*body).flags = ctx.read_at::<u32>(32).unwrap_or(0);
        emit(buf, DATA_OFFSET as u32, stats::LOST_OTHER);
    }
    0
}

#[btf_tracepoint(function = "io_uring_submit_req")]
pub fn io_uring_submit_req(ctx: BtfTracePointContext) -> u32 {
    if !is_tracked(ids().1) {
        return 0;
    }
    let req: u64 = ctx.arg(0);
    let Some(buf) = scratch() else { return 0 };
    let op_off = config!(offsets.io_kiocb_opcode);
    let cmd_off = config!(offsets.io_kiocb_cmd);
    // SAFETY: buf is the scratch buffer; req is the request being submitted (checked reads).
    unsafe {
        fill_header(buf, EventKind::IoUring);
        let body = buf.add(BODY_OFFSET).cast::<IoUringBody>();
        clear(body);
        (*body).op = IO_URING_SUBMIT;
        let opcode = if op_off == OFFSET_UNKNOWN {
            0
        } else {
            read_kernel::<u8>(req, op_off).unwrap_or(0) as u32
        };
        (*body).opcode = opcode;
        let cmd = req + cmd_off as u64;
        let mut path_len = 0usize;
        let mut new_len = 0usize;
        if cmd_off != OFFSET_UNKNOWN {
            // Which `struct filename *` fields of the request hold its path(s).
            let (first, second) = match opcode {
                OP_OPENAT | OP_OPENAT2 => (config!(offsets.io_open_filename), OFFSET_UNKNOWN),
                OP_RENAMEAT => (
                    config!(offsets.io_rename_oldpath),
                    config!(offsets.io_rename_newpath),
                ),
                OP_LINKAT | OP_SYMLINKAT => (
                    config!(offsets.io_link_oldpath),
                    config!(offsets.io_link_newpath),
                ),
                OP_UNLINKAT => (config!(offsets.io_unlink_filename), OFFSET_UNKNOWN),
                OP_MKDIRAT => (config!(offsets.io_mkdir_filename), OFFSET_UNKNOWN),
                _ => (OFFSET_UNKNOWN, OFFSET_UNKNOWN),
            };
            if first != OFFSET_UNKNOWN && config!(offsets.filename_name) != OFFSET_UNKNOWN {
                path_len = filename_to(cmd, first, buf.add(DATA_OFFSET));
                if second != OFFSET_UNKNOWN {
                    new_len = filename_to(cmd, second, buf.add(DATA_OFFSET + path_len));
                }
            }
            let mut addr = 0u64;
            let mut len = 0u32;
            if opcode == OP_CONNECT && config!(offsets.io_connect_addr) != OFFSET_UNKNOWN {
                addr = read_kernel(cmd, config!(offsets.io_connect_addr)).unwrap_or(0);
                len = read_kernel::<i32>(cmd, config!(offsets.io_connect_addr_len)).unwrap_or(0)
                    as u32;
            } else if (opcode == OP_SEND || opcode == OP_SEND_ZC)
                && config!(offsets.io_sr_msg_addr) != OFFSET_UNKNOWN
                && config!(offsets.io_sr_msg_addr_len) != OFFSET_UNKNOWN
            {
                addr = read_kernel(cmd, config!(offsets.io_sr_msg_addr)).unwrap_or(0);
                len = read_kernel::<u16>(cmd, config!(offsets.io_sr_msg_addr_len)).unwrap_or(0)
                    as u32;
            } else if (opcode == OP_SENDMSG || opcode == OP_SENDMSG_ZC)
                && config!(offsets.io_sr_msg_umsg) != OFFSET_UNKNOWN
            {
                let umsg: u64 = read_kernel(cmd, config!(offsets.io_sr_msg_umsg)).unwrap_or(0);
                let mut hdr = [0u64; 2];
                if umsg != 0
                    && bpf_probe_read_user((&raw mut hdr).cast(), 16, umsg as *const _) == 0
                {
                    addr = hdr[0];
                    len = hdr[1] as u32;
                }
            }
            if addr != 0 {
                let n = if len as usize > SOCKADDR_MAX {
                    SOCKADDR_MAX
                } else {
                    len as usize
                };
                if bpf_probe_read_user(
                    (*body).sockaddr.as_mut_ptr().cast(),
                    n as u32,
                    addr as *const _,
                ) == 0
                {
                    (*body).addrlen = n as u32;
                    (*body).flags2 |= IO_URING_ADDR;
                } else {
                    bump(stats::READ_FAILED);
                }
            } else if (opcode == OP_SEND || opcode == OP_SEND_ZC)
                && config!(offsets.io_kiocb_async_data) != OFFSET_UNKNOWN
                && config!(offsets.io_async_msghdr_msg_name) != OFFSET_UNKNOWN
                && config!(offsets.io_async_msghdr_msg_namelen) != OFFSET_UNKNOWN
            {
                // Newer kernels copy a SEND's destination at prep time into the request's
                // async data and point its msghdr at that copy (NULL without a destination).
                let kmsg: u64 = read_kernel(req, config!(offsets.io_kiocb_async_data)).unwrap_or(0);
                let name: u64 =
                    read_kernel(kmsg, config!(offsets.io_async_msghdr_msg_name)).unwrap_or(0);
                let namelen: i32 =
                    read_kernel(kmsg, config!(offsets.io_async_msghdr_msg_namelen)).unwrap_or(0);
                if name != 0 && namelen > 0 {
                    let n = if namelen as usize > SOCKADDR_MAX {
                        SOCKADDR_MAX
                    } else {
                        namelen as usize
                    };
                    if bpf_probe_read_kernel(
                        (*body).sockaddr.as_mut_ptr().cast(),
                        n as u32,
                        name as *const _,
                    ) == 0
                    {
                        (*body).addrlen = n as u32;
                        (*body).flags2 |= IO_URING_ADDR;
                    }
                }
            }
        }
        (*body).path_len = path_len as u16;
        (*body).new_path_len = new_len as u16;
        emit(
            buf,
            (DATA_OFFSET + ((path_len + new_len) & (2 * PATH_MAX - 1))) as u32,
            stats::LOST_OTHER,
        );
    }
    0
}

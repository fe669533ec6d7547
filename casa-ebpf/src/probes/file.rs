//! Opens of tracked processes: `sys_enter_openat[2]` → `sys_exit_openat[2]`, where the new
//! fd's `struct file` gives the absolute path (`crate::path`).
//!
//! * `syscalls:sys_enter_openat`: dfd @16, filename @24, flags @32, mode @40
//! * `syscalls:sys_enter_openat2`: dfd @16, filename @24, how @32 (`struct open_how`:
//!   flags u64, mode u64, resolve u64)
//! * `syscalls:sys_exit_openat[2]`: ret @16

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_user, bpf_probe_read_user_str},
    macros::tracepoint,
    programs::TracePointContext,
};
use casa_common::{
    respond::{FetchedKey, PREVENT_FETCHED_EXEC, TRACK_FETCHER},
    stats,
    wire::{
        BODY_OFFSET, EventKind, FileId, OPEN_PATH_DELETED, OPEN_PATH_JOINED, OPEN_PATH_RESOLVED,
        OPEN_PATH_TRUNCATED, OPEN_RAW_UNREADABLE, OPEN_SYSCALL_CREAT, OPEN_SYSCALL_OPEN,
        OPEN_SYSCALL_OPENAT, OPEN_SYSCALL_OPENAT2, OpenBody, OpenExt, PATH_MAX,
    },
};

use crate::{
    maps::{FETCHED, OPEN_PENDING, OpenPending, RESPOND},
    path,
    util::{
        bump, config, current_task, emit_waking, fill_header, ids, is_tracked, scratch,
        tracked_bits,
    },
};

/// `O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND` (x86-64 / arm64 values): an open that can
/// change a file.
const WRITE_INTENT: u32 = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000;

const EXT_OFFSET: usize = BODY_OFFSET + core::mem::size_of::<OpenBody>();
const DATA_OFFSET: usize = EXT_OFFSET + core::mem::size_of::<OpenExt>();
/// `AT_FDCWD`.
const AT_FDCWD: i32 = -100;
const PATH_MASK: usize = PATH_MAX - 1;
const SIZE_MASK: usize = 2 * PATH_MAX - 1;

#[tracepoint]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (dfd, filename, flags, mode) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0) as i32,
            ctx.read_at::<u64>(24).unwrap_or(0),
            ctx.read_at::<u64>(32).unwrap_or(0) as u32,
            ctx.read_at::<u64>(40).unwrap_or(0) as u32,
        )
    };
    stash_open(tid, dfd, filename, flags, mode, OPEN_SYSCALL_OPENAT);
    0
}

#[tracepoint]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (dfd, filename, how) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0) as i32,
            ctx.read_at::<u64>(24).unwrap_or(0),
            ctx.read_at::<u64>(32).unwrap_or(0),
        )
    };
    let mut how_buf = [0u64; 2];
    if how != 0 {
        // SAFETY: reads the caller's struct open_how (flags, mode) into a stack buffer.
        unsafe {
            bpf_probe_read_user((&raw mut how_buf).cast(), 16, how as *const _);
        }
    }
    stash_open(
        tid,
        dfd,
        filename,
        how_buf[0] as u32,
        how_buf[1] as u32,
        OPEN_SYSCALL_OPENAT2,
    );
    0
}

/// The legacy `open(2)`: `filename` @16, `flags` @24, `mode` @32.
#[tracepoint]
pub fn sys_enter_open(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (filename, flags, mode) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0),
            ctx.read_at::<u64>(24).unwrap_or(0) as u32,
            ctx.read_at::<u64>(32).unwrap_or(0) as u32,
        )
    };
    stash_open(tid, AT_FDCWD, filename, flags, mode, OPEN_SYSCALL_OPEN);
    0
}

/// `creat(2)`: `pathname` @16, `mode` @24; the kernel opens with `O_CREAT|O_WRONLY|O_TRUNC`.
#[tracepoint]
pub fn sys_enter_creat(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let (filename, mode) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0),
            ctx.read_at::<u64>(24).unwrap_or(0) as u32,
        )
    };
    // O_CREAT | O_WRONLY | O_TRUNC
    stash_open(
        tid,
        AT_FDCWD,
        filename,
        0o100 | 0o1 | 0o1000,
        mode,
        OPEN_SYSCALL_CREAT,
    );
    0
}

#[tracepoint]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    exit_open(&ctx)
}

#[tracepoint]
pub fn sys_exit_creat(ctx: TracePointContext) -> u32 {
    exit_open(&ctx)
}

#[inline(always)]
fn stash_open(tid: u32, dfd: i32, filename: u64, flags: u32, mode: u32, syscall: u32) {
    let pending = OpenPending {
        filename,
        open_flags: flags,
        mode,
        dfd,
        syscall,
    };
    if OPEN_PENDING.insert(tid, pending, 0).is_err() {
        bump(stats::PENDING_FULL);
    }
}

/// A network tool (`TRACK_FETCHER`) opened `id` for writing: with `fetched_exec` in force,
/// the file is marked fetched now, before any run of it can start.
#[inline(always)]
fn note_fetched(id: &FileId) {
    let prevent = RESPOND.get(0).copied().unwrap_or(0);
    if prevent & PREVENT_FETCHED_EXEC == 0 || id.ino == 0 {
        return;
    }
    if tracked_bits(ids().1).is_some_and(|b| b & TRACK_FETCHER != 0) {
        let key = FetchedKey {
            ino: id.ino,
            dev: id.dev,
            _pad: 0,
        };
        let _ = FETCHED.insert(key, 1, 0);
    }
}

#[tracepoint]
pub fn sys_exit_openat(ctx: TracePointContext) -> u32 {
    exit_open(&ctx)
}

#[tracepoint]
pub fn sys_exit_openat2(ctx: TracePointContext) -> u32 {
    exit_open(&ctx)
}

#[inline(always)]
fn exit_open(ctx: &TracePointContext) -> u32 {
    let (tid, _) = ids();
    let Some(p) = OPEN_PENDING.get_ptr(tid) else {
        return 0;
    };
    // SAFETY: offset from the tracepoint's format.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if let Some(buf) = scratch() {
        // SAFETY: buf is the scratch buffer; p is this thread's pending open, and the
        // caller's path string is still mapped at syscall exit.
        unsafe {
            fill_header(buf, EventKind::Open);
            let body = buf.add(BODY_OFFSET).cast::<OpenBody>();
            let ext = buf.add(EXT_OFFSET).cast::<OpenExt>();
            (*ext).file = FileId {
                ino: 0,
                dev: 0,
                mode: 0,
            };
            let data = buf.add(DATA_OFFSET);
            let mut flags2 = 0;
            let rl =
                bpf_probe_read_user_str(data.cast(), PATH_MAX as u32, (*p).filename as *const _);
            let raw_len = if rl > 0 {
                (rl - 1) as usize
            } else {
                flags2 |= OPEN_RAW_UNREADABLE;
                0
            };
            let off = raw_len & PATH_MASK;
            let mut path_len = 0usize;
            let task = current_task();
            if ret >= 0 {
                match path::file_of_fd(task, ret as u64).and_then(|f| {
                    path::file_id(f, &raw mut (*ext).file);
                    path::resolve(f)
                }) {
                    Some(r) => {
                        path_len = path::copy_to(&r, data.add(off));
                        if path_len > 0 {
                            flags2 |= OPEN_PATH_RESOLVED;
                            if r.deleted {
                                flags2 |= OPEN_PATH_DELETED;
                            }
                            if r.truncated {
                                flags2 |= OPEN_PATH_TRUNCATED;
                            }
                        }
                    }
                    None => bump(stats::PATH_FAILED),
                }
            } else if raw_len > 0 && *data != b'/' {
                // A failed relative open: join the caller's string to the directory it was
                // relative to, as the kernel resolved that directory.
                let dfd = (*p).dfd;
                let dir = if dfd == AT_FDCWD {
                    path::cwd(task)
                } else if dfd >= 0 {
                    path::file_of_fd(task, dfd as u64)
                        .map(|f| f + config!(offsets.file_f_path) as u64)
                } else {
                    None
                };
                if let Some(r) = dir.and_then(|d| path::resolve_path(d)) {
                    let extra = path::append(&r, data as u64);
                    path_len = path::copy_with_extra_to(&r, extra, data.add(off));
                    if path_len > 0 {
                        flags2 |= OPEN_PATH_JOINED;
                    }
                } else {
                    bump(stats::PATH_FAILED);
                }
            }
            (*body).result = ret;
            (*body).open_flags = (*p).open_flags;
            (*body).mode = (*p).mode;
            (*body).dfd = (*p).dfd;
            (*body).syscall = (*p).syscall;
            (*body).flags2 = flags2;
            (*body).raw_len = raw_len as u16;
            (*body).path_len = path_len as u16;
            let size = DATA_OFFSET + ((off + path_len) & SIZE_MASK);
            // A write (persistence, tampering) is what an alert may hang on: wake the reader.
            let writes = (*p).open_flags & WRITE_INTENT != 0;
            if writes && ret >= 0 {
                note_fetched(&(*ext).file);
            }
            emit_waking(buf, size as u32, stats::LOST_OPEN, writes);
        }
    }
    let _ = OPEN_PENDING.remove(tid);
    0
}

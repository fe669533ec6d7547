//! File lifecycle of tracked processes: `rename*`, `link*`, `symlink*`, `unlink*`, `*chmod*`.
//! The enter programs stash the arguments; the exit programs emit the result with the raw
//! strings and, for relative ones, the absolute path joined to the directory the kernel
//! resolved them against (working directory or dfd), walked as for opens.
//!
//! Tracepoint fields (offsets checked by `casa::sensor::prereq`):
//! * `rename`/`link`/`symlink`: oldname @16, newname @24
//! * `renameat`/`renameat2`/`linkat`: olddfd @16, oldname @24, newdfd @32, newname @40,
//!   flags @48 (`renameat2`, `linkat`)
//! * `symlinkat`: oldname @16, newdfd @24, newname @32
//! * `unlink`: pathname @16; `unlinkat`: dfd @16, pathname @24, flag @32
//! * `chmod`: filename @16, mode @24; `fchmodat[2]`: dfd @16, filename @24, mode @32,
//!   flags @40 (`fchmodat2`); `fchmod`: fd @16, mode @24
//! * `sys_exit_*`: ret @16

use aya_ebpf::{
    helpers::generated::bpf_probe_read_user_str, macros::tracepoint, programs::TracePointContext,
};
use casa_common::{
    stats,
    wire::{
        BODY_OFFSET, EventKind, FILE_NEW_JOINED, FILE_OLD_DELETED, FILE_OLD_JOINED,
        FILE_OLD_RESOLVED, FILE_OP_CHMOD, FILE_OP_FCHMOD, FILE_OP_FCHMODAT, FILE_OP_FCHMODAT2,
        FILE_OP_LINK, FILE_OP_LINKAT, FILE_OP_RENAME, FILE_OP_RENAMEAT, FILE_OP_RENAMEAT2,
        FILE_OP_SYMLINK, FILE_OP_SYMLINKAT, FILE_OP_UNLINK, FILE_OP_UNLINKAT, FileId, FileOpBody,
        PATH_MAX,
    },
};

use crate::{
    maps::{FILEOP_PENDING, FileOpPending},
    path,
    util::{bump, config, current_task, emit, fill_header, ids, is_tracked, scratch},
};

const DATA_OFFSET: usize = BODY_OFFSET + core::mem::size_of::<FileOpBody>();
const PATH_MASK: usize = PATH_MAX - 1;
const TWO_PATH_MASK: usize = 2 * PATH_MAX - 1;
const FOUR_PATH_MASK: usize = 4 * PATH_MAX - 1;
const AT_FDCWD: i32 = -100;
/// `AT_EMPTY_PATH`: `linkat` links the file open on `olddfd` itself.
const AT_EMPTY_PATH: u32 = 0x1000;
/// A bit above `S_IFMT` used inside this module only, to carry "deleted" out of `join`.
const DELETED_MARK: u32 = 1 << 31;

/// Arguments of one file-lifecycle syscall.
struct Args {
    op: u32,
    olddfd: i32,
    old: u64,
    newdfd: i32,
    new: u64,
    flags: u32,
    mode: u32,
    fd: i32,
}

const NONE: Args = Args {
    op: 0,
    olddfd: AT_FDCWD,
    old: 0,
    newdfd: AT_FDCWD,
    new: 0,
    flags: 0,
    mode: 0,
    fd: -1,
};

#[inline(always)]
fn arg(ctx: &TracePointContext, off: usize) -> u64 {
    // SAFETY: every offset passed is from the tracepoint's format.
    unsafe { ctx.read_at::<u64>(off) }.unwrap_or(0)
}

/// Remember the arguments (the caller has checked that the process is tracked).
#[inline(always)]
fn stash(a: Args) -> u32 {
    let (tid, _) = ids();
    let p = FileOpPending {
        old: a.old,
        new: a.new,
        olddfd: a.olddfd,
        newdfd: a.newdfd,
        op: a.op,
        flags: a.flags,
        mode: a.mode,
        fd: a.fd,
    };
    if FILEOP_PENDING.insert(tid, p, 0).is_err() {
        bump(stats::PENDING_FULL);
    }
    0
}

/// Checks tracking first so that untracked processes only pay the map lookup.
macro_rules! enter {
    ($name:ident, |$ctx:ident| $args:expr) => {
        #[tracepoint]
        pub fn $name($ctx: TracePointContext) -> u32 {
            if !is_tracked(ids().1) {
                return 0;
            }
            stash($args)
        }
    };
}

enter!(sys_enter_rename, |ctx| Args {
    op: FILE_OP_RENAME,
    old: arg(&ctx, 16),
    new: arg(&ctx, 24),
    ..NONE
});
enter!(sys_enter_renameat, |ctx| Args {
    op: FILE_OP_RENAMEAT,
    olddfd: arg(&ctx, 16) as i32,
    old: arg(&ctx, 24),
    newdfd: arg(&ctx, 32) as i32,
    new: arg(&ctx, 40),
    ..NONE
});
enter!(sys_enter_renameat2, |ctx| Args {
    op: FILE_OP_RENAMEAT2,
    olddfd: arg(&ctx, 16) as i32,
    old: arg(&ctx, 24),
    newdfd: arg(&ctx, 32) as i32,
    new: arg(&ctx, 40),
    flags: arg(&ctx, 48) as u32,
    ..NONE
});
enter!(sys_enter_link, |ctx| Args {
    op: FILE_OP_LINK,
    old: arg(&ctx, 16),
    new: arg(&ctx, 24),
    ..NONE
});
enter!(sys_enter_linkat, |ctx| Args {
    op: FILE_OP_LINKAT,
    olddfd: arg(&ctx, 16) as i32,
    old: arg(&ctx, 24),
    newdfd: arg(&ctx, 32) as i32,
    new: arg(&ctx, 40),
    flags: arg(&ctx, 48) as u32,
    ..NONE
});
enter!(sys_enter_symlink, |ctx| Args {
    op: FILE_OP_SYMLINK,
    old: arg(&ctx, 16),
    new: arg(&ctx, 24),
    ..NONE
});
enter!(sys_enter_symlinkat, |ctx| Args {
    op: FILE_OP_SYMLINKAT,
    old: arg(&ctx, 16),
    newdfd: arg(&ctx, 24) as i32,
    new: arg(&ctx, 32),
    ..NONE
});
enter!(sys_enter_unlink, |ctx| Args {
    op: FILE_OP_UNLINK,
    old: arg(&ctx, 16),
    ..NONE
});
enter!(sys_enter_unlinkat, |ctx| Args {
    op: FILE_OP_UNLINKAT,
    olddfd: arg(&ctx, 16) as i32,
    old: arg(&ctx, 24),
    flags: arg(&ctx, 32) as u32,
    ..NONE
});
enter!(sys_enter_chmod, |ctx| Args {
    op: FILE_OP_CHMOD,
    old: arg(&ctx, 16),
    mode: arg(&ctx, 24) as u32,
    ..NONE
});
enter!(sys_enter_fchmodat, |ctx| Args {
    op: FILE_OP_FCHMODAT,
    olddfd: arg(&ctx, 16) as i32,
    old: arg(&ctx, 24),
    mode: arg(&ctx, 32) as u32,
    ..NONE
});
enter!(sys_enter_fchmodat2, |ctx| Args {
    op: FILE_OP_FCHMODAT2,
    olddfd: arg(&ctx, 16) as i32,
    old: arg(&ctx, 24),
    mode: arg(&ctx, 32) as u32,
    flags: arg(&ctx, 40) as u32,
    ..NONE
});
enter!(sys_enter_fchmod, |ctx| Args {
    op: FILE_OP_FCHMOD,
    fd: arg(&ctx, 16) as i32,
    mode: arg(&ctx, 24) as u32,
    ..NONE
});

/// Join the relative name at `name` (map memory) to the directory `dfd` names; writes the
/// result to `dst` and returns its length (0 when the directory could not be walked). With
/// `empty_path` (`linkat(fd, "", …, AT_EMPTY_PATH)`, the `O_TMPFILE` route) the file open on
/// `dfd` itself is walked, and its identity written to `id`. One walk call site either way: the
/// verifier checks every inlined walk anew.
///
/// # Safety
/// `task` must be the current task; `name`, `dst` and `id` must be map memory (`dst` with
/// `PATH_MAX` bytes).
#[inline(always)]
unsafe fn join(
    task: u64,
    dfd: i32,
    name: *const u8,
    dst: *mut u8,
    empty_path: bool,
    id: *mut FileId,
) -> usize {
    // SAFETY: checked kernel reads; the caller's guarantees for name and dst.
    unsafe {
        let dir = if dfd == AT_FDCWD {
            path::cwd(task)
        } else if dfd >= 0 {
            path::file_of_fd(task, dfd as u64).map(|f| {
                if empty_path {
                    path::file_id(f, id);
                }
                f + config!(offsets.file_f_path) as u64
            })
        } else {
            None
        };
        match dir.and_then(|d| path::resolve_path(d)) {
            Some(r) if empty_path => {
                let n = path::copy_to(&r, dst);
                if n > 0 && r.deleted {
                    // Mark it the way the decoder knows (no room for " (deleted)" here).
                    (*id).mode |= DELETED_MARK;
                }
                n
            }
            Some(r) => {
                let extra = path::append(&r, name as u64);
                path::copy_with_extra_to(&r, extra, dst)
            }
            None => {
                bump(stats::PATH_FAILED);
                0
            }
        }
    }
}

/// Fill the body's fixed fields from the pending arguments.
///
/// # Safety
/// `body` must point into the scratch buffer.
#[inline(always)]
unsafe fn fill_body(body: *mut FileOpBody, p: *const FileOpPending, ret: i64) {
    // SAFETY: the caller's guarantees.
    unsafe {
        (*body).result = ret;
        (*body).op = (*p).op;
        (*body).flags = (*p).flags;
        (*body).mode = (*p).mode;
        (*body).olddfd = (*p).olddfd;
        (*body).newdfd = (*p).newdfd;
        (*body).flags2 = 0;
        (*body).old_raw_len = 0;
        (*body).old_len = 0;
        (*body).new_raw_len = 0;
        (*body).new_len = 0;
        (*body).file = FileId {
            ino: 0,
            dev: 0,
            mode: 0,
        };
    }
}

/// Read the user string at `src` into `dst`; its length without the NUL (0 if unreadable).
///
/// # Safety
/// `dst` must have `PATH_MAX` writable bytes of map memory.
#[inline(always)]
unsafe fn user_str(src: u64, dst: *mut u8) -> usize {
    if src == 0 {
        return 0;
    }
    // SAFETY: the caller's guarantee for dst; src is a user pointer (checked read).
    let n = unsafe { bpf_probe_read_user_str(dst.cast(), PATH_MAX as u32, src as *const _) };
    if n > 0 { (n - 1) as usize } else { 0 }
}

#[inline(always)]
fn exit_fileop(ctx: &TracePointContext) -> u32 {
    let (tid, _) = ids();
    let Some(p) = FILEOP_PENDING.get_ptr(tid) else {
        return 0;
    };
    // SAFETY: offset from the tracepoint's format.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if let Some(buf) = scratch() {
        // SAFETY: buf is the scratch buffer (every offset below is masked within it); p is
        // this thread's pending syscall; user strings are still mapped at syscall exit.
        unsafe {
            fill_header(buf, EventKind::FileOp);
            let body = buf.add(BODY_OFFSET).cast::<FileOpBody>();
            fill_body(body, p, ret);
            let data = buf.add(DATA_OFFSET);
            let task = current_task();
            let op = (*p).op;
            let mut flags2 = 0u32;

            let old_raw = user_str((*p).old, data) & PATH_MASK;
            let off1 = old_raw;
            let mut old_len = 0usize;
            let symlink = op == FILE_OP_SYMLINK || op == FILE_OP_SYMLINKAT;
            let empty_path = op == FILE_OP_LINKAT && (*p).flags & AT_EMPTY_PATH != 0;
            if empty_path || (!symlink && old_raw > 0 && *data != b'/') {
                let id = &raw mut (*body).file;
                old_len = join(task, (*p).olddfd, data, data.add(off1), empty_path, id) & PATH_MASK;
                if old_len > 0 && empty_path {
                    flags2 |= FILE_OLD_RESOLVED;
                    if (*id).mode & DELETED_MARK != 0 {
                        (*id).mode &= !DELETED_MARK;
                        flags2 |= FILE_OLD_DELETED;
                    }
                } else if old_len > 0 {
                    flags2 |= FILE_OLD_JOINED;
                }
            }
            let off2 = (off1 + old_len) & TWO_PATH_MASK;
            let new_raw = user_str((*p).new, data.add(off2)) & PATH_MASK;
            let off3 = (off2 + new_raw) & FOUR_PATH_MASK;
            let mut new_len = 0usize;
            if new_raw > 0 && *data.add(off2) != b'/' {
                new_len = join(
                    task,
                    (*p).newdfd,
                    data.add(off2),
                    data.add(off3),
                    false,
                    &raw mut (*body).file,
                ) & PATH_MASK;
                if new_len > 0 {
                    flags2 |= FILE_NEW_JOINED;
                }
            }
            (*body).flags2 = flags2;
            (*body).old_raw_len = old_raw as u16;
            (*body).old_len = old_len as u16;
            (*body).new_raw_len = new_raw as u16;
            (*body).new_len = new_len as u16;
            let size = DATA_OFFSET + ((off3 + new_len) & FOUR_PATH_MASK);
            emit(buf, size as u32, stats::LOST_OTHER);
        }
    }
    let _ = FILEOP_PENDING.remove(tid);
    0
}

/// `fchmod`: the file is named by an fd, so its path is walked and its identity read.
#[tracepoint]
pub fn sys_exit_fchmod(ctx: TracePointContext) -> u32 {
    let (tid, _) = ids();
    let Some(p) = FILEOP_PENDING.get_ptr(tid) else {
        return 0;
    };
    // SAFETY: offset from the tracepoint's format.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if let Some(buf) = scratch() {
        // SAFETY: buf is the scratch buffer; p is this thread's pending syscall.
        unsafe {
            fill_header(buf, EventKind::FileOp);
            let body = buf.add(BODY_OFFSET).cast::<FileOpBody>();
            fill_body(body, p, ret);
            let data = buf.add(DATA_OFFSET);
            let mut len = 0usize;
            let fd = (*p).fd;
            if fd >= 0
                && let Some(f) = path::file_of_fd(current_task(), fd as u64)
            {
                path::file_id(f, &raw mut (*body).file);
                if let Some(r) = path::resolve(f) {
                    len = path::copy_to(&r, data) & PATH_MASK;
                    if len > 0 {
                        (*body).flags2 = FILE_OLD_RESOLVED;
                        if r.deleted {
                            (*body).flags2 |= FILE_OLD_DELETED;
                        }
                    }
                }
            }
            (*body).old_len = len as u16;
            emit(buf, (DATA_OFFSET + len) as u32, stats::LOST_OTHER);
        }
    }
    let _ = FILEOP_PENDING.remove(tid);
    0
}

macro_rules! exit {
    ($($name:ident),+) => {
        $(
            #[tracepoint]
            pub fn $name(ctx: TracePointContext) -> u32 {
                exit_fileop(&ctx)
            }
        )+
    };
}

exit!(
    sys_exit_rename,
    sys_exit_renameat,
    sys_exit_renameat2,
    sys_exit_link,
    sys_exit_linkat,
    sys_exit_symlink,
    sys_exit_symlinkat,
    sys_exit_unlink,
    sys_exit_unlinkat,
    sys_exit_chmod,
    sys_exit_fchmodat,
    sys_exit_fchmodat2
);

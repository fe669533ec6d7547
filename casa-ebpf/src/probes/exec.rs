//! Exec: `sys_enter_execve[at]` → `sched_process_exec` (success) | `sys_exit_execve[at]`
//! (failure).
//!
//! Tracepoint layouts relied on (checked by `casa`'s kernel tests against tracefs):
//! * `syscalls:sys_enter_execve`: filename @16, argv @24
//! * `syscalls:sys_enter_execveat`: fd @16, filename @24, argv @32, flags @48
//! * `syscalls:sys_exit_execve[at]`: ret @16
//! * `tp_btf/sched_process_exec(task, old_pid, bprm)`: BTF-typed, no tracefs layout

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str},
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use casa_common::{
    stats,
    wire::{
        ARGV_MAX, ARGV_MAX_ARGS, BODY_OFFSET, EXEC_ARGV_TRUNCATED, EXEC_ARGV_UNREADABLE,
        EXEC_CREDS_VALID, EXEC_NO_NEW_PRIVS, EXEC_PATH_DELETED, EXEC_PATH_RESOLVED,
        EXEC_PATH_TRUNCATED, EXEC_SCRIPT, EXEC_VIA_EXECVEAT, EventKind, ExecBody, PATH_MAX,
    },
};

use crate::{
    maps::{EXEC_PENDING, ExecPending},
    path,
    util::{bump, config, current_task, emit, fill_header, ids, is_tracked, read_kernel, scratch},
};

const DATA_OFFSET: usize = BODY_OFFSET + core::mem::size_of::<ExecBody>();
const PATH_MASK: usize = PATH_MAX - 1;
const TWO_PATH_MASK: usize = 2 * PATH_MAX - 1;
const SIZE_MASK: usize = 4 * PATH_MAX - 1;

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets from the tracepoint's format.
    let (filename, argv) = unsafe {
        (
            ctx.read_at::<u64>(16).unwrap_or(0),
            ctx.read_at::<u64>(24).unwrap_or(0),
        )
    };
    stash_exec(filename, argv, 0);
    0
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets from the tracepoint's format.
    let (filename, argv) = unsafe {
        (
            ctx.read_at::<u64>(24).unwrap_or(0),
            ctx.read_at::<u64>(32).unwrap_or(0),
        )
    };
    stash_exec(filename, argv, EXEC_VIA_EXECVEAT);
    0
}

/// Remember an exec in flight so that `sys_exit_execve` can report it if it fails.
#[inline(always)]
fn stash_exec(filename: u64, argv: u64, flags: u32) {
    let (tid, tgid) = ids();
    if tgid == config!(self_tgid) {
        return;
    }
    let pending = ExecPending {
        filename,
        argv,
        flags,
        _pad: 0,
    };
    if EXEC_PENDING.insert(tid, pending, 0).is_err() {
        bump(stats::PENDING_FULL);
    }
}

/// `tp_btf/sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`:
/// the BTF variant gives `bprm`, which tells a script from a binary exactly.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> u32 {
    let old_tid: u32 = ctx.arg::<i32>(1) as u32;
    let bprm: u64 = ctx.arg(2);
    let (_, tgid) = ids();
    if tgid != config!(self_tgid) {
        // SAFETY: bprm is this exec's linux_binprm.
        unsafe { try_sched_process_exec(bprm, old_tid) };
    }
    // Delete after use; the exec may have happened on a non-leader thread (old_tid).
    let _ = EXEC_PENDING.remove(old_tid);
    0
}

/// Emit the exec record of a successful exec: path, argv, filename, credentials.
///
/// # Safety
/// Call only from the `sched_process_exec` program, with the `struct linux_binprm` address
/// that tracepoint passes as `bprm` (it is read only through checked kernel reads). The
/// record is assembled in the per-CPU scratch buffer: no other pointer into it may be in use.
#[inline(always)]
unsafe fn try_sched_process_exec(bprm: u64, old_tid: u32) {
    let Some(buf) = scratch() else { return };
    // SAFETY: buf is the scratch buffer (SCRATCH_LEN bytes); bprm is read with checked reads.
    unsafe {
        fill_header(buf, EventKind::Exec);
        let body = buf.add(BODY_OFFSET).cast::<ExecBody>();
        let data = buf.add(DATA_OFFSET);
        let mut flags = 0u32;
        let task = current_task();
        let filename: u64 = read_kernel(bprm, config!(offsets.bprm_filename)).unwrap_or(0);
        let interp: u64 = read_kernel(bprm, config!(offsets.bprm_interp)).unwrap_or(0);

        // 1. The executed file's absolute path. A binary: walked from mm->exe_file. A script
        //    (bprm->interp was pointed at the interpreter): exe_file is the interpreter, so
        //    the script's own name is used, joined with the working directory if relative.
        let mut path_len = 0usize;
        if filename != 0 && interp != 0 && filename != interp {
            flags |= EXEC_SCRIPT;
            let mut head = [0u8; 2];
            bpf_probe_read_kernel_str(head.as_mut_ptr().cast(), 2, filename as *const _);
            if head[0] == b'/' {
                let n =
                    bpf_probe_read_kernel_str(data.cast(), PATH_MAX as u32, filename as *const _);
                if n > 1 {
                    path_len = (n - 1) as usize;
                    flags |= EXEC_PATH_RESOLVED;
                }
            } else if let Some(r) = path::cwd(task).and_then(|p| path::resolve_path(p)) {
                let extra = path::append(&r, filename);
                path_len = path::copy_with_extra_to(&r, extra, data);
                if path_len > 0 {
                    flags |= EXEC_PATH_RESOLVED;
                }
            } else {
                bump(stats::PATH_FAILED);
            }
        } else {
            match path::exe_file(task).and_then(|f| path::resolve(f)) {
                Some(r) => {
                    path_len = path::copy_to(&r, data);
                    if path_len > 0 {
                        flags |= EXEC_PATH_RESOLVED;
                        if r.deleted {
                            flags |= EXEC_PATH_DELETED;
                        }
                        if r.truncated {
                            flags |= EXEC_PATH_TRUNCATED;
                        }
                    }
                }
                None => bump(stats::PATH_FAILED),
            }
        }
        if let Some(p) = EXEC_PENDING.get_ptr(old_tid) {
            flags |= (*p).flags & EXEC_VIA_EXECVEAT;
        }

        // 2. argv, from the new image's mm: the arguments exactly as the program got them.
        let mm: u64 = read_kernel(task, config!(offsets.task_mm)).unwrap_or(0);
        let start: u64 = read_kernel(mm, config!(offsets.mm_arg_start)).unwrap_or(0);
        let end: u64 = read_kernel(mm, config!(offsets.mm_arg_end)).unwrap_or(0);
        let mut argv_len = 0usize;
        if start != 0 && end > start {
            let mut n = (end - start) as usize;
            if n > ARGV_MAX {
                n = ARGV_MAX;
                flags |= EXEC_ARGV_TRUNCATED;
            }
            let off = path_len & PATH_MASK;
            if bpf_probe_read_user(data.add(off).cast(), n as u32, start as *const _) == 0 {
                argv_len = n;
            } else {
                flags |= EXEC_ARGV_UNREADABLE;
                bump(stats::READ_FAILED);
            }
        } else {
            flags |= EXEC_ARGV_UNREADABLE;
        }

        // 3. The name the caller passed (bprm->filename).
        let foff = ((path_len & PATH_MASK) + argv_len) & TWO_PATH_MASK;
        let fl =
            bpf_probe_read_kernel_str(data.add(foff).cast(), PATH_MAX as u32, filename as *const _);
        let filename_len = if fl > 0 { (fl - 1) as usize } else { 0 };

        // 4. Credentials and sandboxing state, now that the new creds are committed.
        let cred: u64 = read_kernel(task, config!(offsets.task_cred)).unwrap_or(0);
        let caps: Option<u64> = read_kernel(cred, config!(offsets.cred_cap_effective));
        let seccomp: Option<u32> = read_kernel(task, config!(offsets.task_seccomp_mode));
        let atomic: u64 = read_kernel(task, config!(offsets.task_atomic_flags)).unwrap_or(0);
        if let (Some(caps), Some(seccomp)) = (caps, seccomp) {
            (*body).cap_effective = caps;
            (*body).seccomp_mode = seccomp;
            flags |= EXEC_CREDS_VALID;
        } else {
            (*body).cap_effective = 0;
            (*body).seccomp_mode = 0;
            bump(stats::READ_FAILED);
        }
        if atomic & 1 != 0 {
            // PFA_NO_NEW_PRIVS is bit 0 of task->atomic_flags.
            flags |= EXEC_NO_NEW_PRIVS;
        }

        (*body).result = 0;
        (*body).old_tid = old_tid;
        (*body).flags = flags;
        (*body).path_len = path_len as u16;
        (*body).argv_len = argv_len as u16;
        (*body).filename_len = filename_len as u16;
        (*body)._pad0 = 0;
        let size = DATA_OFFSET + ((foff + filename_len) & SIZE_MASK);
        emit(buf, size as u32, stats::LOST_EXEC);
    }
}

#[tracepoint]
pub fn sys_exit_execve(ctx: TracePointContext) -> u32 {
    exit_exec(&ctx)
}

#[tracepoint]
pub fn sys_exit_execveat(ctx: TracePointContext) -> u32 {
    exit_exec(&ctx)
}

/// A failed exec never reaches `sched_process_exec`: report it here (tracked processes only).
#[inline(always)]
fn exit_exec(ctx: &TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    // SAFETY: offset from the tracepoint's format.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if ret < 0 && is_tracked(tgid) {
        // SAFETY: called from the exit tracepoint of the same thread.
        unsafe { emit_failed_exec(tid, ret as i32) };
    }
    let _ = EXEC_PENDING.remove(tid);
    0
}

/// Emit the exec record of a failed `execve`/`execveat` from what its enter program saved.
///
/// # Safety
/// Call only from the `sys_exit_execve`/`sys_exit_execveat` program of thread `tid` itself:
/// the user pointers saved in its `EXEC_PENDING` entry (argv, filename) are that thread's
/// own syscall arguments, still mapped because the exec failed and the thread has not
/// returned to user space yet (they are read with checked user reads all the same). The
/// record is assembled in the per-CPU scratch buffer: no other pointer into it may be in use.
#[inline(always)]
unsafe fn emit_failed_exec(tid: u32, result: i32) {
    let Some(p) = EXEC_PENDING.get_ptr(tid) else {
        return;
    };
    let Some(buf) = scratch() else { return };
    // SAFETY: buf is the scratch buffer; p is this thread's pending exec; the user pointers
    // are the caller's own arguments, still mapped because the exec failed.
    unsafe {
        fill_header(buf, EventKind::Exec);
        let body = buf.add(BODY_OFFSET).cast::<ExecBody>();
        let data = buf.add(DATA_OFFSET);
        let mut flags = (*p).flags & EXEC_VIA_EXECVEAT;

        // argv, one argument at a time (the old image is still in place).
        let argv = (*p).argv;
        let mut off = 0usize;
        if argv != 0 {
            for i in 0..ARGV_MAX_ARGS {
                let mut ptr = 0u64;
                if bpf_probe_read_user(
                    (&raw mut ptr).cast(),
                    8,
                    (argv + (i as u64) * 8) as *const _,
                ) != 0
                {
                    flags |= EXEC_ARGV_UNREADABLE;
                    break;
                }
                if ptr == 0 {
                    break;
                }
                if i == ARGV_MAX_ARGS - 1 || off >= ARGV_MAX {
                    flags |= EXEC_ARGV_TRUNCATED;
                    break;
                }
                let n = bpf_probe_read_user_str(
                    data.add(off & PATH_MASK).cast(),
                    PATH_MAX as u32,
                    ptr as *const _,
                );
                if n <= 0 {
                    flags |= EXEC_ARGV_UNREADABLE;
                    break;
                }
                off = (off & PATH_MASK) + n as usize;
            }
        }
        let argv_len = if off > ARGV_MAX {
            flags |= EXEC_ARGV_TRUNCATED;
            ARGV_MAX
        } else {
            off
        };
        let foff = argv_len & TWO_PATH_MASK;
        let fl = bpf_probe_read_user_str(
            data.add(foff).cast(),
            PATH_MAX as u32,
            (*p).filename as *const _,
        );
        let filename_len = if fl > 0 { (fl - 1) as usize } else { 0 };

        (*body).result = result;
        (*body).old_tid = tid;
        (*body).cap_effective = 0;
        (*body).seccomp_mode = 0;
        (*body).flags = flags;
        (*body).path_len = 0;
        (*body).argv_len = argv_len as u16;
        (*body).filename_len = filename_len as u16;
        (*body)._pad0 = 0;
        let size = DATA_OFFSET + ((foff + filename_len) & SIZE_MASK);
        emit(buf, size as u32, stats::LOST_EXEC);
    }
}

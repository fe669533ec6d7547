//! Exec: `sys_enter_execve[at]` → `sched_process_exec` (success) | `sys_exit_execve[at]`
//! (failure).
//!
//! Tracepoint layouts relied on (checked by `casa`'s kernel tests against tracefs):
//! * `syscalls:sys_enter_execve`: filename @16, argv @24
//! * `syscalls:sys_enter_execveat`: fd @16, filename @24, argv @32, flags @48
//! * `syscalls:sys_exit_execve[at]`: ret @16
//! * `tp_btf/sched_process_exec(task, old_pid, bprm)`: BTF-typed, no tracefs layout

use aya_ebpf::{
    helpers::generated::{
        bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
        bpf_probe_read_user_str,
    },
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use casa_common::{
    respond::{FetchedKey, PREVENT_DELETED_EXEC, PREVENT_FETCHED_EXEC, TRACK_KILL},
    stats,
    wire::{
        ARGV_MAX, ARGV_MAX_ARGS, BODY_OFFSET, ENV_SCAN_MAX, EXEC_ARGV_TRUNCATED,
        EXEC_ARGV_UNREADABLE, EXEC_CREDS_VALID, EXEC_EXT_ENV_SCANNED, EXEC_EXT_ENV_TRUNCATED,
        EXEC_EXT_SCRIPT_DELETED, EXEC_EXT_STDIO, EXEC_NO_NEW_PRIVS, EXEC_PATH_DELETED,
        EXEC_PATH_RESOLVED, EXEC_PATH_TRUNCATED, EXEC_PREVENTED, EXEC_SCRIPT, EXEC_VIA_EXECVEAT,
        EventKind, ExecBody, ExecExt, FileId, LOADER_ENV_MAX, LOADER_ENV_TOTAL, PATH_MAX,
    },
};

use crate::{
    maps::{ENV_MASK, EXEC_CTX, EXEC_PENDING, ExecPending, FETCHED, PATHS, RESPOND, SCRIPT_CTX},
    path,
    util::{
        bump, config, current_task, emit, fill_header, ids, is_tracked, kill_current, read_kernel,
        scratch, tracked_bits,
    },
};

const EXT_OFFSET: usize = BODY_OFFSET + core::mem::size_of::<ExecBody>();
const DATA_OFFSET: usize = EXT_OFFSET + core::mem::size_of::<ExecExt>();
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

/// Runs before `sched_process_exec` for every process, and returns at once unless the exec
/// ran a `#!` script (`bprm->interp` was changed from `bprm->filename`): then it finds the
/// script's own `struct file` (`path::pending_script_file`) and leaves its identity and
/// absolute path in `SCRIPT_CTX` for the exec record.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec_script(ctx: BtfTracePointContext) -> u32 {
    let bprm: u64 = ctx.arg(2);
    let (tid, tgid) = ids();
    if tgid == config!(self_tgid) {
        return 0;
    }
    // SAFETY: bprm is this exec's linux_binprm (checked reads).
    let (filename, interp): (u64, u64) = unsafe {
        (
            read_kernel(bprm, config!(offsets.bprm_filename)).unwrap_or(0),
            read_kernel(bprm, config!(offsets.bprm_interp)).unwrap_or(0),
        )
    };
    if filename == 0 || interp == 0 || filename == interp {
        return 0;
    }
    let Some(sc) = SCRIPT_CTX.get_ptr_mut(0) else {
        return 0;
    };
    let task = current_task();
    // SAFETY: sc is this CPU's SCRIPT_CTX value; kernel reads are checked.
    unsafe {
        (*sc).tid = 0;
        let Some(f) = path::pending_script_file(task) else {
            return 0;
        };
        if path::file_id(f, &raw mut (*sc).id).is_none() {
            return 0;
        }
        let Some(r) = path::resolve(f) else {
            bump(stats::PATH_FAILED);
            return 0;
        };
        let n = path::copy_to(&r, (*sc).path.as_mut_ptr());
        if n == 0 {
            return 0;
        }
        (*sc).len = n as u64;
        (*sc).flags = if r.deleted {
            EXEC_EXT_SCRIPT_DELETED
        } else {
            0
        };
        (*sc).tid = tid;
    }
    0
}

/// First of the two `sched_process_exec` programs (attached before the other, so it runs
/// first): for a tracked process, read what fds 0-2 are and the loader variables of the new
/// environment into `EXEC_CTX`.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec_ctx(_ctx: BtfTracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if !is_tracked(tgid) {
        return 0;
    }
    let Some(c) = EXEC_CTX.get_ptr_mut(0) else {
        return 0;
    };
    let task = current_task();
    // SAFETY: c is this CPU's EXEC_CTX value; task is the current task (checked reads).
    unsafe {
        for fd in 0..3u64 {
            path::stdio_fd(task, fd, &raw mut (*c).stdio[fd as usize]);
        }
        let mm: u64 = read_kernel(task, config!(offsets.task_mm)).unwrap_or(0);
        let cut = loader_env(mm, (*c).env.as_mut_ptr(), &raw mut (*c).env_len);
        (*c).flags = EXEC_EXT_STDIO | EXEC_EXT_ENV_SCANNED;
        if cut {
            (*c).flags |= EXEC_EXT_ENV_TRUNCATED;
        }
        (*c).tid = tid;
    }
    0
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

/// Whether `id` (a file identity; `ino == 0`: none) is in `FETCHED`.
#[inline(always)]
fn is_fetched(id: &FileId) -> bool {
    if id.ino == 0 {
        return false;
    }
    let key = FetchedKey {
        ino: id.ino,
        dev: id.dev,
        _pad: 0,
    };
    // SAFETY: presence test only.
    unsafe { FETCHED.get(key).is_some() }
}

const NO_FILE: FileId = FileId {
    ino: 0,
    dev: 0,
    mode: 0,
};

/// Zero an [`ExecExt`] in place (field by field: the verifier wants no large stack copy).
///
/// # Safety
/// `ext` must point into the scratch buffer.
#[inline(always)]
unsafe fn clear_ext(ext: *mut ExecExt) {
    // SAFETY: the caller guarantees ext is writable scratch memory.
    unsafe {
        (*ext).file = NO_FILE;
        (*ext).script = NO_FILE;
        (*ext).flags = 0;
        (*ext).env_len = 0;
        (*ext).script_path_len = 0;
        for i in 0..3 {
            let fd = &raw mut (*ext).stdio[i];
            (*fd).id = NO_FILE;
            (*fd).rdev = 0;
            (*fd).family = 0;
            (*fd).port = 0;
            (*fd).addr = [0; 16];
        }
    }
}

/// Whether the environment string at the start of `s` sets a dynamic-loader variable casa
/// reports (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`). Compared as two little-endian
/// words, so that the verifier sees three branches, not one per byte.
#[inline(always)]
fn is_loader_var(s: &[u8; 16]) -> bool {
    let w0 = u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
    let w1 = u64::from_le_bytes([s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15]]);
    const fn word(b: &[u8]) -> u64 {
        let mut w = 0u64;
        let mut i = 0;
        while i < b.len() {
            w |= (b[i] as u64) << (8 * i);
            i += 1;
        }
        w
    }
    (w0 == word(b"LD_PRELO") && w1 & 0xff_ffff == word(b"AD="))
        | (w0 == word(b"LD_LIBRA") && w1 == word(b"RY_PATH="))
        | (w0 == word(b"LD_AUDIT") && w1 & 0xff == word(b"="))
}

/// Copy the loader variables of the new image's environment (`mm->env_start..env_end`) to
/// `dst`, each `NAME=value\0` cut to [`LOADER_ENV_MAX`] bytes; returns the bytes written and
/// whether the scan stopped early.
///
/// # Safety
/// `dst` must have `ENV_ROOM` writable bytes of map memory.
#[inline(always)]
unsafe fn loader_env(mm: u64, dst: *mut u8, len_slot: *mut u64) -> bool {
    let Some(ps) = PATHS.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: mm is the current mm (checked reads); the workspace, dst and len_slot are map
    // memory. The running length and position live in map memory (volatile) so that every
    // path through one iteration reaches the next with the same unknown values and the
    // verifier can prune them: kept in registers, each match count is a separate state.
    unsafe {
        let start: u64 = read_kernel(mm, config!(offsets.mm_env_start)).unwrap_or(0);
        let end: u64 = read_kernel(mm, config!(offsets.mm_env_end)).unwrap_or(0);
        let buf = (*ps).buf.as_mut_ptr();
        core::ptr::write_volatile(len_slot, 0);
        core::ptr::write_volatile(&raw mut (*ps).tmp, start);
        if start == 0 || end <= start {
            return true;
        }
        for _ in 0..ENV_SCAN_MAX {
            let p = core::ptr::read_volatile(&raw const (*ps).tmp);
            if p >= end {
                return false;
            }
            let n = bpf_probe_read_user_str(buf.cast(), PATH_MAX as u32, p as *const _);
            if n <= 0 || n as usize >= PATH_MAX {
                // Unreadable, or too long to know where the next string starts.
                return true;
            }
            core::ptr::write_volatile(&raw mut (*ps).tmp, p + n as u64);
            let head = &*buf.cast::<[u8; 16]>();
            let len = (core::ptr::read_volatile(len_slot) as usize) & ENV_MASK;
            if is_loader_var(head) && len + LOADER_ENV_MAX <= LOADER_ENV_TOTAL {
                let m = if n as usize > LOADER_ENV_MAX {
                    LOADER_ENV_MAX
                } else {
                    n as usize
                };
                let at = dst.add(len);
                if bpf_probe_read_kernel(at.cast(), m as u32, buf.cast()) == 0 {
                    // Keep every entry NUL-terminated, also a cut one.
                    *at.add((m - 1) & (LOADER_ENV_MAX - 1)) = 0;
                    core::ptr::write_volatile(len_slot, (len + m) as u64);
                }
            }
        }
        core::ptr::read_volatile(&raw const (*ps).tmp) < end
    }
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
        let ext = buf.add(EXT_OFFSET).cast::<ExecExt>();
        clear_ext(ext);
        let data = buf.add(DATA_OFFSET);
        let mut flags = 0u32;
        let task = current_task();
        let filename: u64 = read_kernel(bprm, config!(offsets.bprm_filename)).unwrap_or(0);
        let interp: u64 = read_kernel(bprm, config!(offsets.bprm_interp)).unwrap_or(0);

        // 1. The executed file's absolute path. A binary: walked from mm->exe_file. A script
        //    (bprm->interp was pointed at the interpreter): exe_file is the interpreter, so
        //    the script's own name is used, joined with the working directory if relative.
        // One path walk whichever file it is (the verifier checks each inlined walk anew).
        let mut path_len = 0usize;
        let exe = path::exe_file(task);
        if let Some(f) = exe {
            path::file_id(f, &raw mut (*ext).file);
        }
        let mut walk = 0u64;
        let mut join = false;
        if filename != 0 && interp != 0 && filename != interp {
            // The script's name, as the kernel hands it to the interpreter (its own file's
            // path and identity come from sched_process_exec_script, below).
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
            } else if let Some(p) = path::cwd(task) {
                walk = p;
                join = true;
            }
        } else if let Some(f) = exe {
            walk = f + config!(offsets.file_f_path) as u64;
        }
        if walk != 0 {
            match path::resolve_path(walk) {
                Some(r) if join => {
                    let extra = path::append(&r, filename);
                    path_len = path::copy_with_extra_to(&r, extra, data);
                    if path_len > 0 {
                        flags |= EXEC_PATH_RESOLVED;
                    }
                }
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
        } else if path_len == 0 {
            bump(stats::PATH_FAILED);
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

        // 4. The script's own file (sched_process_exec_script) and, for tracked processes,
        //    what fds 0-2 are and the loader variables (sched_process_exec_ctx): both gathered
        //    just before this program ran, on this CPU.
        let tid = ids().0;
        let soff = (foff + filename_len) & SIZE_MASK;
        let mut script_len = 0usize;
        if let Some(sc) = SCRIPT_CTX.get_ptr_mut(0)
            && (*sc).tid == tid
        {
            (*ext).script = (*sc).id;
            (*ext).flags |= (*sc).flags;
            let n = ((*sc).len as usize) & PATH_MASK;
            if n > 0
                && bpf_probe_read_kernel(
                    data.add(soff).cast(),
                    n as u32,
                    (*sc).path.as_ptr().cast(),
                ) == 0
            {
                script_len = n;
            }
            (*sc).tid = 0;
        }
        (*ext).script_path_len = script_len as u16;
        let mut env_len = 0usize;
        let eoff = (soff + script_len) & SIZE_MASK;
        if let Some(c) = EXEC_CTX.get_ptr_mut(0)
            && (*c).tid == tid
        {
            (*ext).flags |= (*c).flags;
            (*ext).stdio = (*c).stdio;
            let n = ((*c).env_len as usize) & (LOADER_ENV_TOTAL * 2 - 1);
            if n > 0
                && n <= LOADER_ENV_TOTAL
                && bpf_probe_read_kernel(data.add(eoff).cast(), n as u32, (*c).env.as_ptr().cast())
                    == 0
            {
                env_len = n;
            }
            (*c).tid = 0;
        }
        (*ext).env_len = env_len as u16;

        // 5. Credentials and sandboxing state, now that the new creds are committed.
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

        // 6. Responses without a round trip: a tracked process under a kill order, or one
        //    that runs what a preventive rule refuses (a deleted file or memfd; a file a
        //    session fetched), is killed now, before the new program's first instruction.
        if let Some(bits) = tracked_bits(ids().1) {
            let prevent = RESPOND.get(0).copied().unwrap_or(0);
            let deleted =
                flags & EXEC_PATH_DELETED != 0 || (*ext).flags & EXEC_EXT_SCRIPT_DELETED != 0;
            let fetched = prevent & PREVENT_FETCHED_EXEC != 0
                && (is_fetched(&(*ext).file) || is_fetched(&(*ext).script));
            if bits & TRACK_KILL != 0 || (prevent & PREVENT_DELETED_EXEC != 0 && deleted) || fetched
            {
                kill_current();
                flags |= EXEC_PREVENTED;
            }
        }

        (*body).result = 0;
        (*body).old_tid = old_tid;
        (*body).flags = flags;
        (*body).path_len = path_len as u16;
        (*body).argv_len = argv_len as u16;
        (*body).filename_len = filename_len as u16;
        (*body)._pad0 = 0;
        let size = DATA_OFFSET + eoff + (env_len & (LOADER_ENV_TOTAL * 2 - 1));
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
        clear_ext(buf.add(EXT_OFFSET).cast::<ExecExt>());
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

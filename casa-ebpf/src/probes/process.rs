//! Process lifecycle: `sched_process_fork` (BTF tracepoint) and `sched_process_exit`.
//!
//! * `tp_btf/sched_process_fork(struct task_struct *parent, struct task_struct *child)`: the
//!   task pointers tell a new process (`child->pid == child->tgid`) from a new thread.
//! * `sched:sched_process_exit`: `group_dead` @32 (since 6.x; the loader checks the format).

use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use casa_common::{
    respond::TRACK_KILL,
    stats,
    wire::{BODY_OFFSET, EXIT_GROUP_DEAD, EXIT_LEADER, EventKind, ExitBody, ForkBody},
};

use crate::{
    maps::{
        CONNECT_PENDING, EXEC_PENDING, FILEOP_PENDING, OPEN_PENDING, PROCOP_PENDING, SOCK_PENDING,
        TRACKED,
    },
    util::{
        bump, config, current_task, emit, fill_header, ids, kill_current, read_kernel, scratch,
        tracked_bits,
    },
};

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    let child: u64 = ctx.arg(1);
    // SAFETY: child is the new task_struct.
    let (ctid, ctgid) = unsafe {
        (
            read_kernel::<u32>(child, config!(offsets.task_pid)).unwrap_or(0),
            read_kernel::<u32>(child, config!(offsets.task_tgid)).unwrap_or(0),
        )
    };
    if ctid == 0 || ctid != ctgid {
        // A new thread: lineage does not change.
        return 0;
    }
    let (_, tgid) = ids();
    if tgid == config!(self_tgid) {
        return 0;
    }
    if let Some(bits) = tracked_bits(tgid) {
        // The child inherits the parent's bits: a kill order or a network ban follows a
        // process that forks or daemonises after it was given.
        if TRACKED.insert(ctgid, bits, 0).is_err() {
            bump(stats::TRACKED_FULL);
        }
        if bits & TRACK_KILL != 0 {
            kill_current();
        }
    }
    let Some(buf) = scratch() else { return 0 };
    // SAFETY: buf is the scratch buffer.
    unsafe {
        fill_header(buf, EventKind::Fork);
        let body = buf.add(BODY_OFFSET).cast::<ForkBody>();
        (*body).child_tid = ctid;
        (*body).child_tgid = ctgid;
        emit(
            buf,
            (BODY_OFFSET + core::mem::size_of::<ForkBody>()) as u32,
            stats::LOST_FORK,
        );
    }
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let (tid, tgid) = ids();
    if tgid == config!(self_tgid) {
        return 0;
    }
    // SAFETY: offset from the tracepoint's format.
    let group_dead = unsafe { ctx.read_at::<u8>(32) }.unwrap_or(0) != 0;
    let leader = tid == tgid;
    // Not `is_tracked`: an exiting task is past a kill (sending it one only fails).
    if (leader || group_dead || tracked_bits(tgid).is_some() || config!(all_processes) != 0)
        && let Some(buf) = scratch()
    {
        // SAFETY: buf is the scratch buffer; the task is the exiting one.
        unsafe {
            fill_header(buf, EventKind::Exit);
            let body = buf.add(BODY_OFFSET).cast::<ExitBody>();
            (*body).exit_code =
                read_kernel::<u32>(current_task(), config!(offsets.task_exit_code)).unwrap_or(0);
            let mut flags = 0;
            if leader {
                flags |= EXIT_LEADER;
            }
            if group_dead {
                flags |= EXIT_GROUP_DEAD;
            }
            (*body).flags = flags;
            emit(
                buf,
                (BODY_OFFSET + core::mem::size_of::<ExitBody>()) as u32,
                stats::LOST_EXIT,
            );
        }
    }
    if group_dead {
        let _ = TRACKED.remove(tgid);
    }
    let _ = EXEC_PENDING.remove(tid);
    let _ = OPEN_PENDING.remove(tid);
    let _ = CONNECT_PENDING.remove(tid);
    let _ = SOCK_PENDING.remove(tid);
    let _ = FILEOP_PENDING.remove(tid);
    let _ = PROCOP_PENDING.remove(tid);
    0
}

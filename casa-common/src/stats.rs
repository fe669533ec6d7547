//! Indices of the per-CPU `STATS` counters the kernel programs keep.
//!
//! Userspace cannot see what the kernel failed to hand over, so every place where a kernel
//! program gives up on an event increments one of these, and casa reports them (loss is data).

/// A record of this kind could not be written to the ring buffer (full): the event is lost.
pub const LOST_EXEC: u32 = 0;
pub const LOST_FORK: u32 = 1;
pub const LOST_EXIT: u32 = 2;
pub const LOST_OPEN: u32 = 3;
pub const LOST_CONNECT: u32 = 4;
/// A per-thread pending-syscall entry could not be stored: that syscall's event is lost.
pub const PENDING_FULL: u32 = 5;
/// A forked child of a tracked process could not be added to `TRACKED`.
pub const TRACKED_FULL: u32 = 6;
/// A field could not be read from kernel or user memory; the event was sent with the field
/// marked missing (see the `*_UNREADABLE` flags).
pub const READ_FAILED: u32 = 7;
/// The kernel path walk failed for an open or exec; the event was sent with the raw path only.
pub const PATH_FAILED: u32 = 8;

/// A socket-operation, TCP-state or other wire-version-2 record was lost (ring full).
pub const LOST_OTHER: u32 = 9;

/// A tracked process was killed in the kernel by a response (a kill order or a preventive
/// rule): each signal sent counts once.
pub const RESPONSE_KILLS: u32 = 10;
/// Sending a response's signal failed.
pub const RESPONSE_FAILED: u32 = 11;

/// Number of counters (the `STATS` map's size).
pub const COUNT: u32 = 16;

/// Human-readable name of each counter index, for reports.
pub const NAMES: [(u32, &str); 12] = [
    (LOST_EXEC, "lost_exec"),
    (LOST_FORK, "lost_fork"),
    (LOST_EXIT, "lost_exit"),
    (LOST_OPEN, "lost_open"),
    (LOST_CONNECT, "lost_connect"),
    (PENDING_FULL, "pending_full"),
    (TRACKED_FULL, "tracked_full"),
    (READ_FAILED, "read_failed"),
    (PATH_FAILED, "path_failed"),
    (LOST_OTHER, "lost_other"),
    (RESPONSE_KILLS, "response_kills"),
    (RESPONSE_FAILED, "response_failed"),
];

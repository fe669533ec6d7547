//! The response contract between `casa::respond` (userspace decides) and the kernel programs
//! (which act without a round trip).
//!
//! * `TRACKED` values are [`TRACK_*`](TRACK_SEEN) bit sets. A forked child inherits its
//!   parent's bits, so a process that daemonised or forked after a kill order carries it.
//! * `RESPOND[0]` holds the [`PREVENT_*`](PREVENT_DELETED_EXEC) bits: the preventive rules the
//!   kernel applies to every tracked process on its own.
//! * `FETCHED` holds the identities of files a session wrote with content fetched from the
//!   network or decoded ([`FetchedKey`]); running one is refused when
//!   [`PREVENT_FETCHED_EXEC`] is set.

/// `TRACKED` value: the process is tracked (the only bit before responses existed).
pub const TRACK_SEEN: u32 = 1 << 0;
/// `TRACKED` value: kill the process at its next tracked syscall, fork or exec.
pub const TRACK_KILL: u32 = 1 << 1;
/// `TRACKED` value: new connections and sends to non-loopback addresses fail (`EPERM`).
pub const TRACK_DENY_NETWORK: u32 = 1 << 2;

/// `TRACKED` value: the process runs a network tool; under [`PREVENT_FETCHED_EXEC`] every
/// file it opens for writing goes into `FETCHED` at once, in the kernel (no round trip
/// between the download and a run of it).
pub const TRACK_FETCHER: u32 = 1 << 3;

/// `RESPOND[0]`: kill a tracked process that runs a deleted file or a memfd.
pub const PREVENT_DELETED_EXEC: u32 = 1 << 0;
/// `RESPOND[0]`: kill a tracked process that runs a file in `FETCHED` (directly or as a `#!`
/// script).
pub const PREVENT_FETCHED_EXEC: u32 = 1 << 1;

/// `SIGKILL`.
pub const SIGKILL: u32 = 9;

/// Key of `FETCHED`: a file's identity as the kernel has it (`s_dev` in the kernel's
/// `major << 20 | minor` encoding).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FetchedKey {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, `repr(C)`, explicit padding field.
unsafe impl aya::Pod for FetchedKey {}

const _: () = assert!(core::mem::size_of::<FetchedKey>() == 16);

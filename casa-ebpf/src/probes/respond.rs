//! `deny_network`: cgroup socket-address programs on `connect` and `sendmsg` (IPv4 and IPv6),
//! attached to the cgroup v2 root only when casa runs with `--enforce`.
//!
//! They refuse (`EPERM`) a connection or datagram to a non-loopback address from a process
//! whose `TRACKED` bits carry `TRACK_DENY_NETWORK`; every other process, and loopback, pass
//! untouched. The decision needs no userspace round trip: the bits are set when the session
//! is ordered, and a child inherits them at fork.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use casa_common::respond::TRACK_DENY_NETWORK;

use crate::util::{ids, tracked_bits};

/// Allow the operation.
const ALLOW: i32 = 1;
/// Refuse it (`EPERM` to the caller).
const DENY: i32 = 0;

/// Whether the current process is under a network ban.
#[inline(always)]
fn banned() -> bool {
    let (_, tgid) = ids();
    tracked_bits(tgid).is_some_and(|b| b & TRACK_DENY_NETWORK != 0)
}

/// An IPv4 address (network byte order, as `bpf_sock_addr` holds it) on the loopback net, or
/// the unspecified address (which reaches the local host).
#[inline(always)]
fn local4(ip: u32) -> bool {
    let first = u32::from_be(ip) >> 24;
    first == 127 || ip == 0
}

/// An IPv6 address (four network-order words) that is `::1`, `::`, or a v4-mapped loopback.
#[inline(always)]
fn local6(w: [u32; 4]) -> bool {
    let (a, b, c, d) = (
        u32::from_be(w[0]),
        u32::from_be(w[1]),
        u32::from_be(w[2]),
        u32::from_be(w[3]),
    );
    if a == 0 && b == 0 && c == 0 && (d == 1 || d == 0) {
        return true;
    }
    a == 0 && b == 0 && c == 0xffff && (d >> 24 == 127 || d == 0)
}

#[inline(always)]
fn decide4(ctx: &SockAddrContext) -> i32 {
    if !banned() {
        return ALLOW;
    }
    // SAFETY: ctx.sock_addr is the kernel's bpf_sock_addr for this call.
    let ip = unsafe { (*ctx.sock_addr).user_ip4 };
    if local4(ip) { ALLOW } else { DENY }
}

#[inline(always)]
fn decide6(ctx: &SockAddrContext) -> i32 {
    if !banned() {
        return ALLOW;
    }
    // SAFETY: ctx.sock_addr is the kernel's bpf_sock_addr; user_ip6 is read word by word,
    // as the verifier requires for this context.
    let w = unsafe {
        let p = ctx.sock_addr;
        [
            (*p).user_ip6[0],
            (*p).user_ip6[1],
            (*p).user_ip6[2],
            (*p).user_ip6[3],
        ]
    };
    if local6(w) { ALLOW } else { DENY }
}

#[cgroup_sock_addr(connect4)]
pub fn respond_connect4(ctx: SockAddrContext) -> i32 {
    decide4(&ctx)
}

#[cgroup_sock_addr(connect6)]
pub fn respond_connect6(ctx: SockAddrContext) -> i32 {
    decide6(&ctx)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn respond_sendmsg4(ctx: SockAddrContext) -> i32 {
    decide4(&ctx)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn respond_sendmsg6(ctx: SockAddrContext) -> i32 {
    decide6(&ctx)
}

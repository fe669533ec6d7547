//! Kernel timestamps → wall-clock time.
//!
//! The kernel stamps events with `CLOCK_BOOTTIME` (monotonic, counts suspend). [`BootClock`]
//! holds the offset to `CLOCK_REALTIME`, measured once at start-up to within a microsecond
//! (the original used `/proc/stat`'s one-second `btime`). A recording stores the offset, so
//! replay converts the same timestamps to the same wall-clock times on any machine: nothing
//! inside the pipeline reads the system clock.

use serde::{Deserialize, Serialize};

/// `realtime_ns = boottime_ns + offset_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootClock {
    pub offset_ns: i128,
}

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; both clocks exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl BootClock {
    /// Measure the offset: the realtime reading bracketed by the tightest pair of boottime
    /// readings out of a few tries.
    pub fn measure() -> Self {
        let mut best: Option<(i128, i128)> = None;
        for _ in 0..16 {
            let b1 = now(libc::CLOCK_BOOTTIME);
            let r = now(libc::CLOCK_REALTIME);
            let b2 = now(libc::CLOCK_BOOTTIME);
            let gap = b2 - b1;
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, r - (b1 + gap / 2)));
            }
        }
        Self {
            offset_ns: best.map_or(0, |(_, o)| o),
        }
    }

    /// Current `CLOCK_BOOTTIME` in nanoseconds (for the edges: deadlines, latency).
    pub fn boottime_now_ns() -> u64 {
        now(libc::CLOCK_BOOTTIME) as u64
    }

    /// Nanoseconds since the Unix epoch for a kernel timestamp.
    pub fn unix_ns(&self, ktime_ns: u64) -> i128 {
        ktime_ns as i128 + self.offset_ns
    }

    /// RFC 3339 UTC with nanoseconds, e.g. `2026-11-22T05:37:20.123456789Z`.
    pub fn rfc3339(&self, ktime_ns: u64) -> String {
        format_rfc3339(self.unix_ns(ktime_ns))
    }
}

/// Format Unix nanoseconds as RFC 3339 UTC with 9 fractional digits.
pub fn format_rfc3339(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let nanos = unix_ns.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        );
    }
    // Hot path (every log line): fixed-width digits, no formatting machinery.
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y as u32);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, sod / 3600);
    put(14, 2, (sod / 60) % 60);
    put(17, 2, sod % 60);
    put(20, 9, nanos);
    String::from_utf8(b.to_vec()).expect("ASCII digits")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339(1_779_428_240_123_456_789),
            "2026-05-22T05:37:20.123456789Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn measured_offset_maps_now_to_now() {
        let c = BootClock::measure();
        let wall = now(libc::CLOCK_REALTIME);
        let mapped = c.unix_ns(BootClock::boottime_now_ns());
        assert!(
            (mapped - wall).abs() < 50_000_000,
            "off by {} ns",
            mapped - wall
        );
    }
}

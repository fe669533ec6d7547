//! Event→log latency, measured at the daemon's edge.
//!
//! The pipeline's own time is the events' kernel timestamps (so replays are deterministic);
//! this module is the one place that compares them with the clock on the wall. `casa run`
//! notes every event the pipeline accepted into a session and every event that produced an
//! alert, and stamps them once the lines are in their files:
//!
//! * alert lines are handed to the file as they are written (the hash chain's fsync and head
//!   commit follow at the end of the ring-buffer batch), so an alert is stamped right after
//!   the pipeline processed its event;
//! * `events.log` lines are flushed at the end of each ring-buffer batch and stamped then.
//!
//! The figures are kept in HDR histograms (bounded memory, 3 significant digits) and, with
//! `--latency-log FILE` or `CASA_LATENCY_TRACE_PATH`, written one JSON line per stamp:
//! `{"timestamp", "pid", "type", "logged_at_ns", "latency_ms"}` as the original wrote them,
//! plus `log` (`events` or `alert`), `event_ns`, `written_ns` and `latency_ns` (both clocks
//! the kernel's boot clock).

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{clock::BootClock, event::Event, sink::records::type_name};

/// Which file the stamped line went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stamped {
    Events,
    Alert,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    log: Stamped,
    event_ns: u64,
    pid: u32,
    kind: &'static str,
}

#[derive(Serialize)]
struct Line<'a> {
    timestamp: String,
    pid: u32,
    #[serde(rename = "type")]
    kind: &'a str,
    logged_at_ns: u64,
    latency_ms: f64,
    log: Stamped,
    event_ns: u64,
    written_ns: u64,
    latency_ns: u64,
}

/// Percentiles of one histogram, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        write!(
            f,
            "n={} p50={:.3}ms p99={:.3}ms max={:.3}ms",
            self.count,
            ms(self.p50_ns),
            ms(self.p99_ns),
            ms(self.max_ns)
        )
    }
}

/// Collects event→log latencies; see the module docs.
pub struct LatencyTrace {
    clock: BootClock,
    out: Option<BufWriter<File>>,
    path: Option<PathBuf>,
    pending: Vec<Pending>,
    events: Histogram<u64>,
    alerts: Histogram<u64>,
    /// Lines that could not be written to the trace file.
    pub failed: u64,
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour, 3 significant digits: a few tens of KiB, whatever the event count.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

impl LatencyTrace {
    /// A trace writing its lines to `path` (appended, created `0600`), or keeping only the
    /// histograms when `path` is `None`.
    pub fn new(clock: BootClock, path: Option<&Path>) -> io::Result<Self> {
        let out = match path {
            Some(p) => Some(BufWriter::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(p)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?,
            )),
            None => None,
        };
        Ok(Self {
            clock,
            out,
            path: path.map(Path::to_owned),
            pending: Vec::new(),
            events: histogram(),
            alerts: histogram(),
            failed: 0,
        })
    }

    /// Note that the pipeline wrote a line for `ev` to `log`; it is stamped by [`Self::stamp`].
    pub fn note(&mut self, log: Stamped, ev: &Event) {
        self.pending.push(Pending {
            log,
            event_ns: ev.ktime_ns,
            pid: ev.pid,
            kind: type_name(ev),
        });
    }

    /// True when events wait to be stamped with the given log.
    pub fn has_pending(&self, log: Stamped) -> bool {
        self.pending.iter().any(|p| p.log == log)
    }

    /// Stamp every noted line of `log` as written at `written_ns` (kernel boot clock).
    pub fn stamp(&mut self, log: Stamped, written_ns: u64) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].log != log {
                i += 1;
                continue;
            }
            let p = self.pending.swap_remove(i);
            let latency = written_ns.saturating_sub(p.event_ns);
            let h = match log {
                Stamped::Events => &mut self.events,
                Stamped::Alert => &mut self.alerts,
            };
            h.saturating_record(latency.max(1));
            if let Some(out) = &mut self.out {
                let line = Line {
                    timestamp: self.clock.rfc3339(p.event_ns),
                    pid: p.pid,
                    kind: p.kind,
                    logged_at_ns: u64::try_from(self.clock.unix_ns(written_ns)).unwrap_or(0),
                    latency_ms: latency as f64 / 1e6,
                    log,
                    event_ns: p.event_ns,
                    written_ns,
                    latency_ns: latency,
                };
                let ok =
                    serde_json::to_writer(&mut *out, &line).is_ok() && out.write_all(b"\n").is_ok();
                if !ok {
                    self.failed += 1;
                }
            }
        }
    }

    /// Write buffered trace lines to the file.
    pub fn flush(&mut self) {
        if let Some(out) = &mut self.out
            && let Err(e) = out.flush()
        {
            self.failed += 1;
            tracing::warn!(
                "latency trace {}: {e}",
                self.path.as_deref().unwrap_or(Path::new("")).display()
            );
        }
    }

    fn percentiles(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
            max_ns: h.max(),
        }
    }

    /// Latency of `events.log` lines so far.
    pub fn events(&self) -> Percentiles {
        Self::percentiles(&self.events)
    }

    /// Latency of alert lines so far.
    pub fn alerts(&self) -> Percentiles {
        Self::percentiles(&self.alerts)
    }

    /// Latency of `log`'s lines so far, counted into buckets with upper bounds `bounds_ns`
    /// (ascending; one more bucket above the last): the counts per bucket, and the sum (ns).
    /// Values are as precise as the histogram (3 significant digits); the cost is one pass
    /// over the distinct values recorded.
    pub fn buckets(&self, log: Stamped, bounds_ns: &[u64]) -> (Vec<u64>, f64) {
        let h = match log {
            Stamped::Events => &self.events,
            Stamped::Alert => &self.alerts,
        };
        let mut counts = vec![0; bounds_ns.len() + 1];
        let mut sum = 0.0;
        for v in h.iter_recorded() {
            let (value, n) = (
                h.median_equivalent(v.value_iterated_to()),
                v.count_at_value(),
            );
            counts[bounds_ns.partition_point(|&b| b < value)] += n;
            sum += value as f64 * n as f64;
        }
        (counts, sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detail, Exec};

    fn ev(t: u64) -> Event {
        Event {
            ktime_ns: t,
            pid: 7,
            tid: 7,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 1,
            comm: crate::event::Bytes::from("sh"),
            detail: Detail::Exec(Exec::test("/bin/sh", &["sh"])),
        }
    }

    #[test]
    fn stamps_only_the_named_log_and_writes_compatible_lines() {
        let dir = std::env::temp_dir().join(format!("casa-latency-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("latency.jsonl");
        let _ = std::fs::remove_file(&path);
        let clock = BootClock { offset_ns: 1_000 };
        let mut t = LatencyTrace::new(clock, Some(&path)).unwrap();
        t.note(Stamped::Events, &ev(1_000_000));
        t.note(Stamped::Alert, &ev(2_000_000));
        t.stamp(Stamped::Alert, 2_500_000);
        assert!(t.has_pending(Stamped::Events));
        assert!(!t.has_pending(Stamped::Alert));
        t.stamp(Stamped::Events, 4_000_000);
        t.flush();
        assert_eq!(t.alerts().count, 1);
        assert_eq!(t.events().count, 1);
        // 3 significant digits.
        assert!(
            (499_000..=501_000).contains(&t.alerts().p99_ns),
            "{:?}",
            t.alerts()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["log"], "alert");
        assert_eq!(lines[0]["latency_ns"], 500_000);
        assert_eq!(lines[0]["latency_ms"], 0.5);
        assert_eq!(lines[0]["type"], "EXECVE");
        assert_eq!(lines[0]["logged_at_ns"], 2_501_000);
        assert_eq!(lines[1]["log"], "events");
        assert_eq!(lines[1]["latency_ns"], 3_000_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn buckets_count_each_latency_once() {
        let mut t = LatencyTrace::new(BootClock { offset_ns: 0 }, None).unwrap();
        for (at, written) in [(0, 50_000), (0, 700_000), (0, 900_000), (0, 9_000_000_000)] {
            t.note(Stamped::Events, &ev(at));
            t.stamp(Stamped::Events, written);
        }
        let (counts, sum) = t.buckets(Stamped::Events, &[100_000, 1_000_000]);
        assert_eq!(counts, vec![1, 2, 1]);
        assert!(
            (sum - 9_001_650_000.0).abs() < 9_001_650_000.0 * 0.002,
            "{sum}"
        );
        let (none, zero) = t.buckets(Stamped::Alert, &[100_000]);
        assert_eq!((none, zero), (vec![0, 0], 0.0));
    }

    #[test]
    fn empty_histograms_report_zero() {
        let t = LatencyTrace::new(BootClock { offset_ns: 0 }, None).unwrap();
        assert_eq!(t.events(), Percentiles::default());
    }
}

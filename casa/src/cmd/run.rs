//! `casa run`: the daemon. Loads the sensor, tracks the agent runtime's processes (OpenClaw:
//! found in `/proc` at start-up and whenever one is exec'd later), and streams every event
//! it sees to the events log as JSON lines until SIGINT/SIGTERM, then flushes and exits 0.
//!
//! The session engine (sessions, context, rules, audit and alert logs) consumes this same
//! stream; until it is wired in, the events log holds the raw sensor stream.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use super::sensor_options;
use crate::{cli::RunArgs, clock::BootClock, decode::decode, event::Detail, sensor::Sensor};

const DEFAULT_EVENTS_LOG: &str = "logs/events.log";
const DEFAULT_PID_FILE: &str = "/var/run/casa.pid";

fn path_from(cli: Option<PathBuf>, env: &str, default: &str) -> PathBuf {
    cli.or_else(|| {
        std::env::var_os(env)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(default))
}

/// True for a process of the agent runtime (OpenClaw): its comm or executable names it.
pub fn is_agent_process(comm: &[u8], exe: &[u8]) -> bool {
    let has = |b: &[u8]| b.windows(8).any(|w| w.eq_ignore_ascii_case(b"openclaw"));
    has(comm) || has(exe)
}

/// Pids of running agent-runtime processes.
fn scan_agents() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            let comm = fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
            let exe = fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.into_os_string().into_encoded_bytes())
                .unwrap_or_default();
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            is_agent_process(&comm, &exe) || is_agent_process(b"", &cmdline)
        })
        .collect()
}

fn write_pid_file(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("writing pid file {}", path.display()))?;
    writeln!(f, "{}", std::process::id())
        .with_context(|| format!("writing pid file {}", path.display()))
}

/// The events log and its counters.
struct Stream {
    clock: BootClock,
    out: std::io::BufWriter<fs::File>,
    written: u64,
    decode_errors: u64,
    write_errors: u64,
}

impl Stream {
    /// Decode one record, track new agent processes, append the event to the log.
    fn handle(&mut self, raw: &[u8], sensor: &mut Sensor) {
        let ev = match decode(raw) {
            Ok(ev) => ev,
            Err(e) => {
                self.decode_errors += 1;
                if self.decode_errors <= 5 {
                    warn!("undecodable record: {e}");
                }
                return;
            }
        };
        if let Detail::Exec(x) = &ev.detail
            && x.result == 0
            && is_agent_process(ev.comm.as_bytes(), x.path.as_bytes())
            && !sensor.is_tracked(ev.pid)
        {
            match sensor.track(ev.pid) {
                Ok(()) => info!(pid = ev.pid, "tracking new OpenClaw process {}", x.path),
                Err(e) => warn!("cannot track {}: {e}", ev.pid),
            }
        }
        let Ok(mut v) = serde_json::to_value(&ev) else {
            self.write_errors += 1;
            return;
        };
        if let Some(o) = v.as_object_mut() {
            o.insert("time".into(), self.clock.rfc3339(ev.ktime_ns).into());
        }
        if serde_json::to_writer(&mut self.out, &v).is_ok() && self.out.write_all(b"\n").is_ok() {
            self.written += 1;
        } else {
            self.write_errors += 1;
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let events_path = path_from(args.events_log, "CASA_EVENTS_LOG_PATH", DEFAULT_EVENTS_LOG);
    let pid_path = path_from(args.pid_file, "CASA_PID_PATH", DEFAULT_PID_FILE);
    let clock = BootClock::measure();
    let mut sensor = Sensor::load(&sensor_options(&args.sensor)).context("starting the sensor")?;
    if sensor.mounted_tracefs {
        info!("tracefs was not mounted: mounted it on /sys/kernel/tracing");
    }
    let mut ring = sensor.take_ring()?;
    if let Some(dir) = events_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&events_path)
        .with_context(|| format!("opening events log {}", events_path.display()))?;
    let out = std::io::BufWriter::with_capacity(1 << 16, file);
    write_pid_file(&pid_path)?;

    let agents = scan_agents();
    for &pid in &agents {
        sensor.track(pid)?;
    }
    if agents.is_empty() {
        info!("no OpenClaw process running yet: will track them as they start");
    } else {
        info!("tracking OpenClaw processes {agents:?}");
    }
    info!(
        events = %events_path.display(),
        pid_file = %pid_path.display(),
        "casa is running (SIGINT/SIGTERM to stop)"
    );

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut stats_tick = tokio::time::interval(Duration::from_secs(args.stats_interval.max(1)));
    let mut flush_tick = tokio::time::interval(Duration::from_millis(500));
    let mut stream = Stream {
        clock,
        out,
        written: 0,
        decode_errors: 0,
        write_errors: 0,
    };
    let mut last_lost = 0;

    loop {
        tokio::select! {
            r = ring.drain(|raw| stream.handle(raw, &mut sensor)) => { r?; }
            _ = sigint.recv() => { info!("shutdown signal received (SIGINT)"); break; }
            _ = sigterm.recv() => { info!("shutdown signal received (SIGTERM)"); break; }
            _ = sighup.recv() => info!("SIGHUP: no rules are loaded by this build yet; nothing to reload"),
            _ = flush_tick.tick() => {
                if let Err(e) = stream.out.flush() {
                    stream.write_errors += 1;
                    warn!("flushing events log: {e}");
                }
            }
            _ = stats_tick.tick() => {
                let k = sensor.kernel_stats()?;
                info!(
                    "{} events written, {} undecodable, {} write errors; kernel: {}",
                    stream.written, stream.decode_errors, stream.write_errors, k.describe()
                );
                if k.lost() > last_lost {
                    warn!("kernel lost {} events since the last report", k.lost() - last_lost);
                    last_lost = k.lost();
                }
            }
        }
    }
    ring.drain_now(|raw| stream.handle(raw, &mut sensor));
    stream
        .out
        .flush()
        .with_context(|| format!("flushing {}", events_path.display()))?;
    let k = sensor.kernel_stats()?;
    info!(
        "stopped: {} events written, {} undecodable, {} write errors; kernel: {}",
        stream.written,
        stream.decode_errors,
        stream.write_errors,
        k.describe()
    );
    let _ = fs::remove_file(&pid_path);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::is_agent_process;

    #[test]
    fn recognises_openclaw_processes() {
        assert!(is_agent_process(b"openclaw-gatewa", b""));
        assert!(is_agent_process(b"node", b"/opt/x/bin/OpenClaw"));
        assert!(!is_agent_process(b"bash", b"/bin/bash"));
    }
}

//! `casa run`: the daemon. The async edge around [`Pipeline`]: the sensor's ring buffer in,
//! the four logs out, the kernel's tracked set kept up to date, signals handled.
//!
//! * start-up: rules loaded (a bad file stops casa with a located error), running agent
//!   processes found in `/proc` (a session already running is joined and marked
//!   `joined_midway`), pid file written;
//! * SIGHUP: rules and analysis settings reloaded atomically (a bad file keeps the old set
//!   and logs the located error; the change is logged), configured endpoints re-resolved, log
//!   files reopened (for `logrotate`). Events wait in the ring buffer meanwhile: none is lost;
//! * SIGINT/SIGTERM: the ring is drained, every open session gets its `shutdown` snapshot,
//!   logs are flushed and synced, the pid file is removed, exit 0.

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
use tracing::{error, info, warn};

use super::{load_pipeline_config, policy_offline, sensor_options};
use crate::{
    cli::RunArgs,
    clock::BootClock,
    decode::decode,
    event::{Bytes, Exec},
    filter::Endpoints,
    pipeline::{EdgeAction, Pipeline},
    rules::RuleSet,
    sensor::Sensor,
    settings::Env,
    sink::{FileSinks, LogPaths, LogSink},
};

const DEFAULT_PID_FILE: &str = "/var/run/casa.pid";

/// The pid file, locked for the daemon's lifetime: a second casa on the same pid file or the
/// same logs is refused instead of interleaving writes.
struct Instance {
    pid_file: fs::File,
    _log_locks: Vec<fs::File>,
}

fn lock(f: &fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Take the single-instance locks and write the pid file. A pid file that is a symlink is
/// refused (never followed), and files are created `0644` (pid) with `O_NOFOLLOW`.
fn claim_instance(pid_path: &Path, logs: &LogPaths) -> anyhow::Result<Instance> {
    if let Ok(meta) = fs::symlink_metadata(pid_path)
        && meta.file_type().is_symlink()
    {
        anyhow::bail!(
            "write pid file: refusing {}: it is a symbolic link",
            pid_path.display()
        );
    }
    if let Some(dir) = pid_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(pid_path)
        .with_context(|| format!("write pid file {}", pid_path.display()))?;
    if lock(&f).is_err() {
        let other = fs::read_to_string(pid_path).unwrap_or_default();
        anyhow::bail!(
            "another casa is running (pid {}) with pid file {}",
            other.trim(),
            pid_path.display()
        );
    }
    let mut log_locks = Vec::new();
    for log in crate::sink::Log::ALL {
        let p = logs.get(log);
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let lf = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(p)
            .with_context(|| format!("opening {}", p.display()))?;
        if lock(&lf).is_err() {
            anyhow::bail!("another casa is writing {}", p.display());
        }
        log_locks.push(lf);
    }
    f.set_len(0)
        .with_context(|| format!("write pid file {}", pid_path.display()))?;
    writeln!(f, "{}", std::process::id())
        .with_context(|| format!("write pid file {}", pid_path.display()))?;
    Ok(Instance {
        pid_file: f,
        _log_locks: log_locks,
    })
}

/// A process read from `/proc`.
struct ProcInfo {
    pid: u32,
    ppid: u32,
    start: u64,
    comm: Vec<u8>,
    exec: Exec,
}

fn read_proc(pid: u32) -> Option<ProcInfo> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    let comm = fs::read(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.strip_suffix(b"\n").unwrap_or(&comm).to_vec();
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.into_os_string().into_encoded_bytes())
        .unwrap_or_default();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv: Vec<Bytes> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(Bytes::from)
        .collect();
    let exe = Bytes(exe);
    // The name the program was started as (what the kernel's exec event calls `filename`):
    // argv[0] when it is a path, so the invocation rule sees the symlink-level directory.
    let filename = argv
        .first()
        .filter(|a| a.as_bytes().contains(&b'/'))
        .cloned()
        .unwrap_or_else(|| exe.clone());
    Some(ProcInfo {
        pid,
        ppid,
        start,
        comm,
        exec: Exec {
            result: 0,
            path: exe,
            path_resolved: true,
            script: false,
            path_truncated: false,
            filename,
            argv,
            argv_truncated: false,
            argv_unreadable: false,
            via_execveat: false,
            old_tid: pid,
            cap_effective: None,
            seccomp_mode: None,
            no_new_privs: false,
        },
    })
}

/// Every process in `/proc`, parents before children (by start time).
fn scan_proc() -> Vec<ProcInfo> {
    let me = std::process::id();
    let mut procs: Vec<ProcInfo> = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&p| p != me)
                .filter_map(read_proc)
                .collect()
        })
        .unwrap_or_default();
    procs.sort_by_key(|p| (p.start, p.pid));
    procs
}

/// Track `pid` and the descendants it already has (children forked before the kernel knew
/// about it are found in `/proc`; later ones the kernel adds itself).
fn track_tree(sensor: &mut Sensor, pid: u32) {
    let mut stack = vec![pid];
    let mut n = 0;
    while let Some(p) = stack.pop() {
        if let Err(e) = sensor.track(p) {
            warn!("cannot track {p}: {e}");
            continue;
        }
        n += 1;
        if n > 10_000 {
            break;
        }
        if let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let children = fs::read_to_string(t.path().join("children")).unwrap_or_default();
                stack.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let env = Env::load();
    let cfg = load_pipeline_config(&args.pipeline).context("load rule config")?;
    let paths = LogPaths {
        events: env.path(
            args.events_log,
            &["CASA_EVENTS_LOG_PATH", "CASA_EVENTS_LOG"],
            "logs/events.log",
        ),
        sessions: env.path(
            args.sessions_log,
            &["CASA_SESSIONS_LOG_PATH", "CASA_SESSIONS_LOG"],
            "logs/sessions.log",
        ),
        audit: env.path(args.audit_log, &["CASA_AUDIT_LOG_PATH"], "logs/audit.log"),
        alert: env.path(args.alert_log, &["CASA_ALERT_LOG_PATH"], "logs/alert.log"),
    };
    let pid_path: PathBuf = env.path(args.pid_file, &["CASA_PID_PATH"], DEFAULT_PID_FILE);
    let rules_path = cfg.rules_path.clone();
    let clock = BootClock::measure();
    let instance = claim_instance(&pid_path, &paths)?;
    let mut sensor = Sensor::load(&sensor_options(&args.sensor)).context("attach eBPF probes")?;
    if sensor.mounted_tracefs {
        info!("tracefs was not mounted: mounted it on /sys/kernel/tracing");
    }
    let mut ring = sensor.take_ring()?;
    let sinks = FileSinks::open(&paths).context("initialize audit monitor")?;
    let mut policy = policy_offline(&cfg.rules);
    let (urls, cidrs) = super::endpoint_config(&cfg.rules);
    let (endpoints, problems) =
        tokio::task::spawn_blocking(move || Endpoints::resolve(&urls, &cidrs)).await?;
    for p in &problems {
        warn!("configured connect endpoint skipped: {p}");
    }
    policy.endpoints = endpoints;
    let refresh = cfg.rules.filters().configured_connect_refresh_seconds;
    let mut pipeline = Pipeline::new(cfg.rules, policy, clock, sinks, cfg.options);
    let env2 = env.clone();
    let spans = tokio::task::spawn_blocking(move || super::span_exporter(&env2)).await??;
    let export_stats = spans.as_ref().map(|s| s.stats.clone());
    if let Some(spans) = spans {
        pipeline = pipeline.with_spans(Box::new(spans));
    }

    let now = BootClock::boottime_now_ns();
    let mut seeded = 0;
    for p in scan_proc() {
        for pid in pipeline.seed(p.pid, p.ppid, &p.comm, &p.exec, now) {
            track_tree(&mut sensor, pid);
            seeded += 1;
        }
    }
    if seeded == 0 {
        info!("openclaw not found: will track agent processes as they start");
    }
    info!("bootstrap done");
    info!("CASA pipeline is running");
    info!(
        "rules={} events={} sessions={} audit={} alert={} pid_file={}",
        rules_path.display(),
        paths.events.display(),
        paths.sessions.display(),
        paths.audit.display(),
        paths.alert.display(),
        pid_path.display()
    );

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut stats_tick = tokio::time::interval(Duration::from_secs(args.stats_interval.max(1)));
    let mut refresh_tick = tokio::time::interval(Duration::from_secs(if refresh > 0 {
        refresh
    } else {
        u64::MAX / 4
    }));
    refresh_tick.tick().await;
    let (ep_tx, mut ep_rx) = tokio::sync::mpsc::channel::<Endpoints>(2);
    let mut decode_errors = 0u64;
    let mut last_lost = 0u64;
    let mut tick_lost = 0u64;

    let handle = |raw: &[u8],
                  pipeline: &mut Pipeline<FileSinks>,
                  sensor: &mut Sensor,
                  decode_errors: &mut u64| {
        match decode(raw) {
            Ok(ev) => {
                for a in pipeline.process(&ev) {
                    match a {
                        EdgeAction::Track(pid) => track_tree(sensor, pid),
                    }
                }
            }
            Err(e) => {
                *decode_errors += 1;
                if *decode_errors <= 5 {
                    warn!("undecodable record: {e}");
                }
            }
        }
    };

    loop {
        tokio::select! {
            r = ring.drain(|raw| handle(raw, &mut pipeline, &mut sensor, &mut decode_errors)) => { r?; }
            _ = tick.tick() => {
                pipeline.advance(BootClock::boottime_now_ns());
                pipeline.flush();
                pipeline.sink_mut().follow_rotation();
                let lost = sensor.kernel_stats()?.lost();
                if lost > tick_lost {
                    warn!("kernel lost {} events (ring buffer full): open sessions are marked incomplete", lost - tick_lost);
                    pipeline.mark_incomplete();
                    tick_lost = lost;
                }
            }
            _ = sigint.recv() => { info!("shutdown signal received (SIGINT)"); break; }
            _ = sigterm.recv() => { info!("shutdown signal received (SIGTERM)"); break; }
            _ = sighup.recv() => {
                let started = std::time::Instant::now();
                match RuleSet::load(&rules_path) {
                    Ok(new) => {
                        for w in new.warnings() {
                            warn!("{w}");
                        }
                        let changes = new.describe_changes_from(pipeline.rules());
                        let mut policy = policy_offline(&new);
                        let (urls, cidrs) = super::endpoint_config(&new);
                        policy.endpoints = pipeline.endpoints().clone();
                        pipeline.reload(new, policy);
                        info!("rule config reloaded from {} in {:?}: {changes}", rules_path.display(), started.elapsed());
                        let tx = ep_tx.clone();
                        tokio::task::spawn_blocking(move || {
                            let (e, problems) = Endpoints::resolve(&urls, &cidrs);
                            for p in problems {
                                warn!("configured connect endpoint skipped: {p}");
                            }
                            let _ = tx.blocking_send(e);
                        });
                    }
                    Err(e) => error!("rule reload failed from {}: {e} (keeping the previous rules)", rules_path.display()),
                }
                pipeline.sink_mut().reopen();
            }
            Some(e) = ep_rx.recv() => {
                pipeline.set_endpoints(e);
                info!("configured connect endpoints refreshed");
            }
            _ = refresh_tick.tick() => {
                let (urls, cidrs) = super::endpoint_config(pipeline.rules());
                let tx = ep_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let (e, problems) = Endpoints::resolve(&urls, &cidrs);
                    for p in problems {
                        warn!("configured connect refresh: {p}");
                    }
                    let _ = tx.blocking_send(e);
                });
            }
            _ = stats_tick.tick() => {
                let k = sensor.kernel_stats()?;
                let s = &pipeline.stats;
                info!(
                    "events={} accepted={} sessions open={} started={} audit={} alert={} undecodable={} log write failures={:?}; kernel: {}",
                    s.events, s.accepted, pipeline.session_states(), s.sessions_started, s.audit_records, s.alert_records,
                    decode_errors, pipeline.sink().failed(), k.describe()
                );
                if k.lost() > last_lost {
                    warn!("kernel lost {} events since the last report", k.lost() - last_lost);
                    last_lost = k.lost();
                }
                if let Some(st) = &export_stats {
                    info!("telemetry: {}", st.describe());
                }
            }
        }
    }
    ring.drain_now(|raw| handle(raw, &mut pipeline, &mut sensor, &mut decode_errors));
    // Finishing flushes spans (bounded, blocking HTTP): off the async runtime.
    let now = BootClock::boottime_now_ns();
    let pipeline = tokio::task::spawn_blocking(move || {
        pipeline.finish(now);
        pipeline
    })
    .await?;
    let k = sensor.kernel_stats()?;
    let s = pipeline.stats.clone();
    info!(
        "pipeline exited: {} events, {} accepted, {} sessions, {} audit and {} alert records, {} undecodable, log lines written {:?} failed {:?} (events, sessions, audit, alert); kernel: {}",
        s.events,
        s.accepted,
        s.sessions_started,
        s.audit_records,
        s.alert_records,
        decode_errors,
        pipeline.sink().written(),
        pipeline.sink().failed(),
        k.describe()
    );
    if let Some(st) = &export_stats {
        info!("telemetry: {}", st.describe());
    }
    tokio::task::spawn_blocking(move || drop(pipeline)).await?;
    let _ = fs::remove_file(&pid_path);
    drop(instance.pid_file);
    Ok(ExitCode::SUCCESS)
}

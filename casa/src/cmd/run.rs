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
    filter::Endpoints,
    latency::{LatencyTrace, Stamped},
    pipeline::{EdgeAction, Pipeline},
    recording::{self, Seed, SeedProcess},
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
/// One running process as `/proc` describes it, with its start time (for ordering).
fn read_proc(pid: u32) -> Option<(u64, SeedProcess)> {
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
    let argv: Vec<Vec<u8>> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    // The name the program was started as (what the kernel's exec event calls `filename`):
    // argv[0] when it is a path, so the invocation rule sees the symlink-level directory.
    let filename = argv
        .first()
        .filter(|a| a.contains(&b'/'))
        .cloned()
        .unwrap_or_else(|| exe.clone());
    Some((
        start,
        SeedProcess {
            pid,
            ppid,
            comm,
            exe,
            filename,
            argv,
        },
    ))
}

/// Every process in `/proc`, parents before children (by start time).
fn scan_proc() -> Vec<SeedProcess> {
    let me = std::process::id();
    let mut procs: Vec<(u64, SeedProcess)> = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&p| p != me)
                .filter_map(read_proc)
                .collect()
        })
        .unwrap_or_default();
    procs.sort_by_key(|(start, p)| (*start, p.pid));
    procs.into_iter().map(|(_, p)| p).collect()
}

/// Closed sessions after which the daemon returns freed heap memory to the kernel.
const TRIM_AFTER_CLOSES: u64 = 100;

/// Return free heap pages to the kernel (glibc keeps them otherwise: RSS would stay at the
/// high-water mark of the busiest moment).
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's allocator; it takes no
    // pointers and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `--record`: every input of the pipeline, in order, so a replay reproduces this run. A
/// write error (full disk) stops the recording, says so once, and the daemon goes on.
struct LiveRecording {
    writer: Option<recording::Writer<recording::FileOut>>,
    path: PathBuf,
    frames: u64,
}

impl LiveRecording {
    fn create(path: Option<PathBuf>, meta: &recording::Meta) -> anyhow::Result<Option<Self>> {
        let Some(path) = path else { return Ok(None) };
        let writer = recording::Writer::create(&path, meta)
            .with_context(|| format!("create recording {}", path.display()))?;
        info!("recording every pipeline input to {}", path.display());
        Ok(Some(Self {
            writer: Some(writer),
            path,
            frames: 0,
        }))
    }

    /// Run `f` on the writer; on an error, say so once and stop recording.
    fn attempt(
        &mut self,
        f: impl FnOnce(
            &mut recording::Writer<recording::FileOut>,
        ) -> Result<(), recording::RecordingError>,
    ) -> bool {
        let Some(w) = &mut self.writer else {
            return false;
        };
        match f(w) {
            Ok(()) => true,
            Err(e) => {
                error!("recording stopped after {} frames: {e}", self.frames);
                self.writer = None;
                false
            }
        }
    }

    /// Append one frame.
    fn write(
        &mut self,
        f: impl FnOnce(
            &mut recording::Writer<recording::FileOut>,
        ) -> Result<(), recording::RecordingError>,
    ) {
        if self.attempt(f) {
            self.frames += 1;
        }
    }

    fn flush(&mut self) {
        self.attempt(|w| w.flush());
    }

    fn finish(mut self, summary: &recording::Summary) {
        if let Some(w) = self.writer.take() {
            match w.finish_file(summary) {
                Ok(_) => info!(
                    "recording {}: {} frames",
                    self.path.display(),
                    self.frames + 1
                ),
                Err(e) => error!("recording {} is incomplete: {e}", self.path.display()),
            }
        }
    }
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

    let latency_path = args.latency_log.clone().or_else(|| {
        env.first(&["CASA_LATENCY_TRACE_PATH", "CASA_LATENCY_TRACE"])
            .map(PathBuf::from)
    });
    let mut latency =
        LatencyTrace::new(clock, latency_path.as_deref()).context("open latency trace")?;
    let mut rec = LiveRecording::create(
        args.record.clone(),
        &super::meta(clock, &[], args.sensor.all_processes),
    )?;

    let now = BootClock::boottime_now_ns();
    let mut seeded = 0;
    let processes = scan_proc();
    for p in &processes {
        for pid in pipeline.seed(p.pid, p.ppid, &p.comm, &p.exec(), now) {
            track_tree(&mut sensor, pid);
            seeded += 1;
        }
    }
    if let Some(r) = &mut rec {
        let seed = Seed {
            now_ns: now,
            processes,
        };
        r.write(|w| w.seed(&seed));
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
    let mut trimmed_at = 0u64;

    let handle = |raw: &[u8],
                  pipeline: &mut Pipeline<FileSinks>,
                  sensor: &mut Sensor,
                  decode_errors: &mut u64,
                  rec: &mut Option<LiveRecording>,
                  latency: &mut LatencyTrace| {
        if let Some(r) = rec {
            r.write(|w| w.record(raw));
        }
        match decode(raw) {
            Ok(ev) => {
                let (accepted, alerts) = (pipeline.stats.accepted, pipeline.stats.alert_records);
                for a in pipeline.process(&ev) {
                    match a {
                        EdgeAction::Track(pid) => track_tree(sensor, pid),
                    }
                }
                if pipeline.stats.alert_records > alerts {
                    // Alert lines are flushed as they are written: the line is in the file.
                    latency.note(Stamped::Alert, &ev);
                    latency.stamp(Stamped::Alert, BootClock::boottime_now_ns());
                }
                if pipeline.stats.accepted > accepted {
                    latency.note(Stamped::Events, &ev);
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
            r = ring.drain(|raw| handle(raw, &mut pipeline, &mut sensor, &mut decode_errors, &mut rec, &mut latency)) => {
                r?;
                // Each batch's lines reach their files, and the audit/alert chains are
                // committed (fsync, head file), before the next wait.
                pipeline.flush();
                if latency.has_pending(Stamped::Events) {
                    latency.stamp(Stamped::Events, BootClock::boottime_now_ns());
                }
            }
            _ = tick.tick() => {
                let now = BootClock::boottime_now_ns();
                if let Some(r) = &mut rec {
                    r.write(|w| w.tick(now));
                }
                pipeline.advance(now);
                pipeline.flush();
                pipeline.sink_mut().follow_rotation();
                latency.flush();
                let lost = sensor.kernel_stats()?.lost();
                if lost > tick_lost {
                    warn!("kernel lost {} events (ring buffer full): open sessions are marked incomplete", lost - tick_lost);
                    if let Some(r) = &mut rec {
                        r.write(|w| w.lost(lost));
                    }
                    pipeline.mark_incomplete();
                    tick_lost = lost;
                }
                if let Some(r) = &mut rec {
                    r.flush();
                }
                // Sessions free their state when they close; once many have, hand the
                // freed heap back to the kernel so RSS follows the open sessions down.
                if pipeline.stats.sessions_closed >= trimmed_at + TRIM_AFTER_CLOSES {
                    trimmed_at = pipeline.stats.sessions_closed;
                    release_free_heap();
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
                info!("latency to events.log: {}; to alert.log: {}", latency.events(), latency.alerts());
            }
        }
    }
    ring.drain_now(|raw| {
        handle(
            raw,
            &mut pipeline,
            &mut sensor,
            &mut decode_errors,
            &mut rec,
            &mut latency,
        )
    });
    pipeline.flush();
    latency.stamp(Stamped::Events, BootClock::boottime_now_ns());
    latency.flush();
    // Finishing flushes spans (bounded, blocking HTTP): off the async runtime.
    let now = BootClock::boottime_now_ns();
    if let Some(mut r) = rec.take() {
        r.write(|w| w.stop(now));
        let k = sensor.kernel_stats()?;
        let summary = recording::Summary {
            decode_errors,
            kernel: k
                .named()
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect(),
            ..Default::default()
        };
        r.finish(&summary);
    }
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
    info!(
        "latency to events.log: {}; to alert.log: {}",
        latency.events(),
        latency.alerts()
    );
    tokio::task::spawn_blocking(move || drop(pipeline)).await?;
    let _ = fs::remove_file(&pid_path);
    drop(instance.pid_file);
    Ok(ExitCode::SUCCESS)
}

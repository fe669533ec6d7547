//! `casa run`: the daemon. The async edge around [`Pipeline`]: the sensor's ring buffer in,
//! the four logs out, the kernel's tracked set kept up to date, signals handled.
//!
//! * start-up: rules loaded (a bad file stops casa with a located error), running agent
//!   processes found in `/proc` (a session already running is joined and marked
//!   `joined_midway`), pid file written;
//! * SIGHUP: rules and analysis settings reloaded atomically (a bad file keeps the old set
//!   and logs the located error; the change is logged), configured endpoints re-resolved, log
//!   files reopened (for `logrotate`). Events wait in the ring buffer meanwhile: none is lost;
//! * a gateway tool process the pipeline asks about (`Outcome::attribute`): the agent's
//!   transcript is read (`crate::transcript`, read-only, bounded) and the answer fed right
//!   back (`Input::Attribution`, recorded like every input), before the next record;
//! * SIGINT/SIGTERM: the ring is drained, every open session gets its `shutdown` snapshot,
//!   logs are flushed and synced, the pid file is removed, exit 0.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use casa_common::respond::{
    PREVENT_DELETED_EXEC, PREVENT_FETCHED_EXEC, TRACK_DENY_NETWORK, TRACK_FETCHER, TRACK_KILL,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use super::sensor_options;
use crate::{
    assemble::{
        EndpointConfig, PipelineConfig, Telemetry, live_host, log_paths, open_sinks,
        policy_offline, telemetry,
    },
    cli::RunArgs,
    clock::BootClock,
    exit::{Status, UsageError},
    filter::Endpoints,
    latency::{LatencyTrace, Stamped},
    pipeline::{Input, Outcome, Pipeline},
    procfs,
    recording::{self, Meta, Recorder},
    respond::Order,
    rules::{Prevention, RuleSet},
    sensor::{Sensor, SensorOptions, enforce},
    settings::Env,
    sink::{FileSinks, LogPaths, LogSink},
    telemetry::metrics,
    transcript::TranscriptReader,
};

const DEFAULT_PID_FILE: &str = "/var/run/casa.pid";

/// The pid file, locked for the daemon's lifetime: a second casa on the same pid file or the
/// same logs is refused instead of interleaving writes.
///
/// Dropping it removes the pid file (casa stopping, or failing to start after claiming it:
/// no stale pid file is left behind), then releases the locks.
struct Instance {
    pid_path: PathBuf,
    _pid_file: fs::File,
    _log_locks: Vec<fs::File>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Still locked by us: no other casa can have written it since.
        let _ = fs::remove_file(&self.pid_path);
    }
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
        pid_path: pid_path.to_owned(),
        _pid_file: f,
        _log_locks: log_locks,
    })
}

/// Most processes whose liveness the daemon checks per tick (`Pipeline::unconfirmed_pids`).
const UNCONFIRMED_PER_TICK: usize = 4096;

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

/// The live edge around the pipeline: each input is recorded (with `--record`), fed to the
/// pipeline, and its outcome acted on (new pids tracked in the kernel, latency stamped).
struct Edge {
    pipeline: Pipeline<FileSinks>,
    sensor: Sensor,
    recorder: Option<Recorder>,
    latency: LatencyTrace,
    transcripts: TranscriptReader,
}

impl Edge {
    fn feed(&mut self, input: Input<'_>) -> Outcome {
        let out = self.feed_one(input);
        match &out.attribute {
            // The answer is the very next input: the tool process's exec waits for it.
            Some(req) => {
                let answer = self.transcripts.lookup(req);
                self.feed_one(Input::Attribution(&answer))
            }
            None => out,
        }
    }

    fn feed_one(&mut self, input: Input<'_>) -> Outcome {
        self.record(&input);
        let out = self.pipeline.feed(input);
        if !out.orders.is_empty() {
            self.carry_out(&out.orders);
        }
        for &pid in &out.track {
            let sensor = &mut self.sensor;
            procfs::track_tree(
                pid,
                |p| sensor.track(p),
                |p, e| warn!("cannot track {p}: {e}"),
            );
        }
        if let Some(e) = &out.decode_error
            && self.pipeline.stats.undecodable <= 5
        {
            warn!("undecodable record: {e}");
        }
        if let Some(ev) = &out.event {
            if out.alert_records > 0 {
                // Alert lines are flushed as they are written: the line is in the file.
                self.latency.note(Stamped::Alert, ev);
                self.latency
                    .stamp(Stamped::Alert, BootClock::boottime_now_ns());
            }
            if out.accepted {
                self.latency.note(Stamped::Events, ev);
            }
        }
        out
    }

    /// Carry out the pipeline's response orders: the kernel bits first (a child forked from
    /// now on inherits them; the kernel kills a killed process at its next syscall if the
    /// signal below misses it), then `SIGKILL` through a pidfd. Only processes in the
    /// kernel's tracked set are touched: never casa, PID 1, or anything outside the agents'
    /// trees.
    fn carry_out(&mut self, orders: &[Order]) {
        for order in orders {
            match order {
                Order::Processes {
                    session,
                    pids,
                    kill,
                    deny_network,
                } => {
                    let bits = if *kill { TRACK_KILL } else { 0 }
                        | if *deny_network { TRACK_DENY_NETWORK } else { 0 };
                    for &pid in pids {
                        match self.sensor.order(pid, bits) {
                            Ok(true) => {}
                            Ok(false) => {
                                warn!(
                                    "response for session {session}: pid {pid} is not tracked; left alone"
                                );
                                continue;
                            }
                            Err(e) => {
                                error!("response for session {session}: pid {pid}: {e}");
                                continue;
                            }
                        }
                        if *kill {
                            match enforce::kill(pid) {
                                Ok(()) => info!("RESPONSE session={session} killed pid={pid}"),
                                // Already gone (it may have been killed in the kernel first).
                                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                                Err(e) => error!("response for session {session}: kill {pid}: {e}"),
                            }
                        } else {
                            info!("RESPONSE session={session} network denied pid={pid}");
                        }
                    }
                }
                Order::Fetcher { pid } => {
                    if let Err(e) = self.sensor.order(*pid, TRACK_FETCHER) {
                        warn!("preventive rule fetched_exec: cannot mark pid {pid}: {e}");
                    }
                }
                Order::Fetched { dev, ino } => {
                    if let Err(e) = self.sensor.mark_fetched(*dev, *ino) {
                        warn!("preventive rule fetched_exec: cannot mark {dev}:{ino}: {e}");
                    }
                }
            }
        }
    }

    /// Append `input` to the recording; a write error (full disk) stops the recording, says
    /// so once, and the daemon goes on.
    fn record(&mut self, input: &Input<'_>) {
        if let Some(r) = &mut self.recorder
            && let Err(e) = r.write(input)
        {
            error!("recording stopped after {} frames: {e}", r.frames());
            self.recorder = None;
        }
    }

    /// What the metrics show now (the Prometheus page and the OTLP export).
    fn snapshot(
        &self,
        otel: &Telemetry,
        kernel: Vec<(&'static str, u64)>,
        kernel_lost: u64,
        (reloads_ok, reloads_failed): (u64, u64),
    ) -> metrics::Snapshot {
        metrics::Snapshot {
            pipeline: self.pipeline.stats.clone(),
            kernel,
            kernel_lost,
            sessions_open: self.pipeline.session_states(),
            reloads_ok,
            reloads_failed,
            log_write_failures: self.pipeline.sink().failed(),
            exports: otel.losses(),
            latency: latency_histograms(&self.latency),
        }
    }

    fn flush_recording(&mut self) {
        if let Some(r) = &mut self.recorder
            && let Err(e) = r.flush()
        {
            error!("recording stopped after {} frames: {e}", r.frames());
            self.recorder = None;
        }
    }
}

/// Resolve the configured endpoints off the async runtime and hand them to the loop.
/// Hand the kernel the preventive rules of `rules`' response policy (`--enforce`).
fn set_prevention(sensor: &mut Sensor, rules: &RuleSet) -> anyhow::Result<()> {
    let p = &rules.response().prevent;
    let bits = if p.contains(&Prevention::DeletedExec) {
        PREVENT_DELETED_EXEC
    } else {
        0
    } | if p.contains(&Prevention::FetchedExec) {
        PREVENT_FETCHED_EXEC
    } else {
        0
    };
    sensor
        .set_prevention(bits)
        .context("set the preventive rules")?;
    let names: Vec<&str> = p.iter().map(|r| r.name()).collect();
    info!(
        "preventive rules in force: {}",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    Ok(())
}

fn resolve_endpoints(
    rules: &RuleSet,
    tx: &tokio::sync::mpsc::Sender<Endpoints>,
    what: &'static str,
) {
    let config = EndpointConfig::of(rules);
    let tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let (e, problems) = config.resolve();
        for p in problems {
            warn!("{what}: {p}");
        }
        let _ = tx.blocking_send(e);
    });
}

/// The event→log latency histograms of the metrics, per log.
fn latency_histograms(l: &LatencyTrace) -> Vec<(&'static str, metrics::LatencyHistogram)> {
    [("events", Stamped::Events), ("alert", Stamped::Alert)]
        .into_iter()
        .map(|(name, log)| {
            let (buckets, sum_ns) = l.buckets(log, &metrics::LATENCY_BOUNDS_NS);
            let count = buckets.iter().sum();
            (
                name,
                metrics::LatencyHistogram {
                    buckets,
                    count,
                    sum_ns,
                },
            )
        })
        .collect()
}

/// Wall-clock time, Unix epoch ns (the OTLP metrics' timestamps).
fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let env = Env::load();
    let cfg = PipelineConfig::load(&args.pipeline, &env).context("load rule config")?;
    let paths = log_paths(
        &env,
        args.events_log,
        args.sessions_log,
        args.audit_log,
        args.alert_log,
    );
    // Metrics on loopback only: a wrong address stops casa before it claims anything.
    let metrics_addr = match args.metrics_listen {
        Some(a) => Some(a),
        None => match std::env::var("CASA_METRICS_LISTEN") {
            Ok(v) if !v.is_empty() => Some(
                v.parse()
                    .with_context(|| format!("CASA_METRICS_LISTEN={v}: not an address:port"))?,
            ),
            _ => None,
        },
    };
    if let Some(a) = metrics_addr
        && !a.ip().is_loopback()
    {
        return Err(UsageError(metrics::MetricsError::NotLoopback(a).to_string()).into());
    }
    let pid_path: PathBuf = env.path(args.pid_file, &["CASA_PID_PATH"], DEFAULT_PID_FILE);
    let rules_path = cfg.rules_path.clone();
    let clock = BootClock::measure();
    let instance = claim_instance(&pid_path, &paths)?;
    let sensor_opts = SensorOptions {
        // Enforcing, a decision (and its response) never waits for a batch of records.
        wake_every_record: cfg.options.enforce,
        ..sensor_options(&args.sensor)
    };
    let mut sensor = Sensor::load(&sensor_opts).context("attach eBPF probes")?;
    if sensor.mounted_tracefs {
        info!("tracefs was not mounted: mounted it on /sys/kernel/tracing");
    }
    let mut ring = sensor.take_ring()?;
    if cfg.options.enforce {
        // Loud, never a silent monitor: enforcement that cannot attach stops casa.
        let root = sensor
            .enable_enforcement()
            .context("--enforce: attach the deny_network programs")?;
        info!(
            "enforcing: deny_network programs attached at the cgroup v2 root {}",
            root.display()
        );
        set_prevention(&mut sensor, &cfg.rules)?;
    }
    let metrics_page = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = metrics_addr {
        let listener = metrics::bind(addr).await?;
        info!("metrics on http://{addr}/metrics");
        tokio::spawn(metrics::serve(listener, Arc::clone(&metrics_page)));
    }
    let (mut reloads_ok, mut reloads_failed) = (0u64, 0u64);
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let sinks = open_sinks(&paths, &args.pipeline, &cfg.options, &hostname)
        .context("initialize audit monitor")?;
    let mut policy = policy_offline(&cfg.rules);
    let endpoints = EndpointConfig::of(&cfg.rules);
    let (resolved, problems) = tokio::task::spawn_blocking(move || endpoints.resolve()).await?;
    for p in &problems {
        warn!("configured connect endpoint skipped: {p}");
    }
    policy.endpoints = resolved;
    let refresh = cfg.rules.filters().configured_connect_refresh_seconds;
    let enforcing = cfg.options.enforce;
    let mut pipeline = Pipeline::new(cfg.rules, policy, clock, sinks, cfg.options);
    let env2 = env.clone();
    let host = live_host(&hostname);
    let mut otel = tokio::task::spawn_blocking(move || telemetry(&env2, host)).await??;
    pipeline = otel.install(pipeline);
    let otlp_metrics = otel.sender.as_ref().is_some_and(|s| s.has_metrics());
    // Cumulative OTLP sums count from here.
    let started_unix_ns = unix_now_ns();
    let mut metrics_due = std::time::Instant::now() + otel.config.metrics_interval;

    let latency_path = args.latency_log.clone().or_else(|| {
        env.first(&["CASA_LATENCY_TRACE_PATH", "CASA_LATENCY_TRACE"])
            .map(PathBuf::from)
    });
    let latency =
        LatencyTrace::new(clock, latency_path.as_deref()).context("open latency trace")?;
    let recorder = match &args.record {
        Some(path) => {
            let r = Recorder::create(path, &Meta::now(clock, &[], args.sensor.all_processes))
                .with_context(|| format!("create recording {}", path.display()))?;
            info!("recording every pipeline input to {}", path.display());
            Some(r)
        }
        None => None,
    };
    let transcripts = TranscriptReader::new();
    if !transcripts.available() {
        warn!("libsqlite3.so.0 not found: gateway tool processes are attributed by recency only");
    }
    let mut edge = Edge {
        pipeline,
        sensor,
        recorder,
        latency,
        transcripts,
    };

    let scan = procfs::scan(BootClock::boottime_now_ns());
    if edge.feed(Input::Scan(&scan)).track.is_empty() {
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
    let mut last_lost = 0u64;
    let mut trimmed_at = 0u64;

    loop {
        tokio::select! {
            r = ring.drain(|raw| { edge.feed(Input::Record(raw)); }) => {
                // The reader's timer comes back empty when nothing happened.
                if r? == 0 {
                    continue;
                }
                // Each batch's lines reach their files, and the audit/alert chains are
                // committed (fsync, head file), before the next wait.
                edge.pipeline.flush();
                if edge.latency.has_pending(Stamped::Events) {
                    edge.latency.stamp(Stamped::Events, BootClock::boottime_now_ns());
                }
            }
            _ = tick.tick() => {
                let now = BootClock::boottime_now_ns();
                edge.feed(Input::Tick(now));
                // A process whose exit the kernel lost must not hold its session open.
                let gone: Vec<u32> = edge
                    .pipeline
                    .unconfirmed_pids(UNCONFIRMED_PER_TICK)
                    .into_iter()
                    .filter(|&pid| !procfs::is_running(pid))
                    .collect();
                if !gone.is_empty() {
                    edge.feed(Input::Reaped { now_ns: now, pids: &gone });
                }
                edge.pipeline.flush();
                edge.pipeline.sink_mut().follow_rotation();
                edge.latency.flush();
                let kernel = edge.sensor.kernel_stats()?;
                let export_now = otlp_metrics && std::time::Instant::now() >= metrics_due;
                if metrics_addr.is_some() || export_now {
                    let snapshot = edge.snapshot(&otel, kernel.named(), kernel.lost(), (reloads_ok, reloads_failed));
                    if metrics_addr.is_some() {
                        let page = metrics::render(&snapshot);
                        if let Ok(mut p) = metrics_page.lock() {
                            *p = page;
                        }
                    }
                    if export_now {
                        otel.export_metrics(&snapshot, started_unix_ns, unix_now_ns());
                        metrics_due = std::time::Instant::now() + otel.config.metrics_interval;
                    }
                }
                let lost = kernel.lost();
                if lost > edge.pipeline.stats.kernel_lost {
                    warn!("kernel lost {} events (ring buffer full): open sessions are marked incomplete", lost - edge.pipeline.stats.kernel_lost);
                    edge.feed(Input::Lost(lost));
                }
                edge.flush_recording();
                // Sessions free their state when they close; once many have, hand the
                // freed heap back to the kernel so RSS follows the open sessions down.
                if edge.pipeline.stats.sessions_closed >= trimmed_at + TRIM_AFTER_CLOSES {
                    trimmed_at = edge.pipeline.stats.sessions_closed;
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
                        let changes = new.describe_changes_from(edge.pipeline.rules());
                        let mut policy = policy_offline(&new);
                        policy.endpoints = edge.pipeline.endpoints().clone();
                        resolve_endpoints(&new, &ep_tx, "configured connect endpoint skipped");
                        if enforcing {
                            set_prevention(&mut edge.sensor, &new)?;
                        }
                        edge.pipeline.reload(new, policy);
                        reloads_ok += 1;
                        info!("rule config reloaded from {} in {:?}: {changes}", rules_path.display(), started.elapsed());
                    }
                    Err(e) => {
                        reloads_failed += 1;
                        error!("rule reload failed from {}: {e} (keeping the previous rules)", rules_path.display());
                    }
                }
                edge.pipeline.sink_mut().reopen();
            }
            Some(e) = ep_rx.recv() => {
                edge.pipeline.set_endpoints(e);
                info!("configured connect endpoints refreshed");
            }
            _ = refresh_tick.tick() => {
                resolve_endpoints(edge.pipeline.rules(), &ep_tx, "configured connect refresh");
            }
            _ = stats_tick.tick() => {
                let k = edge.sensor.kernel_stats()?;
                let s = &edge.pipeline.stats;
                info!(
                    "events={} accepted={} sessions open={} started={} audit={} alert={} responses={} undecodable={} log write failures={:?}; kernel: {}",
                    s.events, s.accepted, edge.pipeline.session_states(), s.sessions_started, s.audit_records, s.alert_records, s.responses,
                    s.undecodable, edge.pipeline.sink().failed(), k.describe()
                );
                if let Some((_, failed)) = edge.pipeline.sink().ocsf_lines().filter(|&(_, f)| f > 0) {
                    warn!("OCSF log write failures: {failed}");
                }
                if k.lost() > last_lost {
                    warn!("kernel lost {} events since the last report", k.lost() - last_lost);
                    last_lost = k.lost();
                }
                for line in otel.describe() {
                    info!("telemetry: {line}");
                }
                info!("latency to events.log: {}; to alert.log: {}", edge.latency.events(), edge.latency.alerts());
            }
        }
    }
    ring.drain_now(|raw| {
        edge.feed(Input::Record(raw));
    });
    edge.pipeline.flush();
    edge.latency
        .stamp(Stamped::Events, BootClock::boottime_now_ns());
    edge.latency.flush();
    let now = BootClock::boottime_now_ns();
    let kernel = edge.sensor.kernel_stats()?;
    let Edge {
        mut pipeline,
        sensor,
        mut recorder,
        latency,
        ..
    } = edge;
    if let Some(mut r) = recorder.take() {
        let summary = recording::Summary {
            decode_errors: pipeline.stats.undecodable,
            kernel: sensor
                .kernel_stats()?
                .named()
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v))
                .collect(),
            ..Default::default()
        };
        let path = r.path().to_owned();
        match r.write(&Input::Shutdown(now)).and_then(|()| {
            let frames = r.frames() + 1;
            r.finish(&summary).map(|()| frames)
        }) {
            Ok(frames) => info!("recording {}: {frames} frames", path.display()),
            Err(e) => error!("recording {} is incomplete: {e}", path.display()),
        }
    }
    // Finishing flushes spans and log records (bounded, blocking HTTP): off the async
    // runtime. The last metrics follow the last records.
    let reloads = (reloads_ok, reloads_failed);
    let histograms = latency_histograms(&latency);
    let (pipeline, otel) = tokio::task::spawn_blocking(move || {
        pipeline.feed(Input::Shutdown(now));
        if otlp_metrics {
            let snapshot = metrics::Snapshot {
                pipeline: pipeline.stats.clone(),
                kernel: kernel.named(),
                kernel_lost: kernel.lost(),
                sessions_open: pipeline.session_states(),
                reloads_ok: reloads.0,
                reloads_failed: reloads.1,
                log_write_failures: pipeline.sink().failed(),
                exports: otel.losses(),
                latency: histograms,
            };
            otel.export_metrics(&snapshot, started_unix_ns, unix_now_ns());
        }
        otel.finish(Duration::from_secs(5));
        (pipeline, otel)
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
        s.undecodable,
        pipeline.sink().written(),
        pipeline.sink().failed(),
        k.describe()
    );
    if let Some((written, failed)) = pipeline.sink().ocsf_lines() {
        info!("OCSF events written {written} failed {failed}");
    }
    for line in otel.describe() {
        info!("telemetry: {line}");
    }
    info!(
        "latency to events.log: {}; to alert.log: {}",
        latency.events(),
        latency.alerts()
    );
    tokio::task::spawn_blocking(move || drop(pipeline)).await?;
    drop(instance);
    Ok(Status::Ok.into())
}

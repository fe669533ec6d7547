//! `casa replay`: a recording through the same pipeline as the daemon, with no kernel.
//!
//! Time comes from the recording only (its boot-clock offset and the events' timestamps), and
//! configured endpoints are not resolved (only literal IPs and CIDRs apply), so the logs are
//! byte-identical on every run.

use std::{
    fs,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    assemble::{PipelineConfig, open_sinks, policy_offline, telemetry},
    cli::ReplayArgs,
    decode::decode,
    exit::Status,
    pipeline::Pipeline,
    recording::{Frame, Reader},
    settings::Env,
    sink::{Log, LogPaths, LogSink, Record},
};

/// Discards lines, counting bytes (for `--bench`).
#[derive(Default)]
struct CountingSink {
    bytes: u64,
    lines: u64,
}

impl LogSink for CountingSink {
    fn write(&mut self, record: Record<'_>) {
        if let Ok(line) = record.to_json() {
            self.bytes += line.len() as u64 + 1;
            self.lines += 1;
        }
    }
    fn flush(&mut self) {}
}

/// Read every frame of a recording into memory, with its header.
fn read_all(path: &std::path::Path) -> anyhow::Result<(crate::recording::Meta, Vec<Frame>)> {
    let mut reader = Reader::open(path)?;
    let meta = reader.meta().clone();
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        frames.push(frame);
    }
    Ok((meta, frames))
}

/// The kernel boot-clock time a frame carries, if any.
fn frame_ns(frame: &Frame) -> Option<u64> {
    match frame {
        Frame::Record(raw) => decode(raw).ok().map(|e| e.ktime_ns),
        Frame::Tick(t) | Frame::Finish(t) => Some(*t),
        Frame::Reaped { now_ns, .. } => Some(*now_ns),
        _ => None,
    }
}

/// Feed every frame to the pipeline in order, exactly as `casa run` consumed them live (the
/// start-up `/proc` scan, kernel records, clock ticks, loss notices, the shutdown); a
/// recording without a shutdown frame (`casa record`) finishes at its latest time.
pub(crate) fn feed<S: LogSink>(
    pipeline: &mut Pipeline<S>,
    frames: &[Frame],
    mut on_error: impl FnMut(usize, &crate::decode::DecodeError),
) {
    for (i, frame) in frames.iter().enumerate() {
        if let Some(input) = frame.input()
            && let Some(e) = pipeline.feed(input).decode_error
        {
            on_error(i, &e);
        }
    }
    pipeline.end_of_input();
}

pub fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let cfg = PipelineConfig::load(&args.pipeline, &Env::load())?;
    let (meta, frames) = read_all(&args.file)?;
    let clock = meta.clock;
    let policy = policy_offline(&cfg.rules);
    if args.bench {
        return bench(cfg, policy, clock, &frames);
    }
    fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let paths = LogPaths::in_dir(&args.out_dir);
    for log in Log::ALL {
        let p = paths.get(log);
        if p.exists() {
            fs::remove_file(p).with_context(|| format!("replacing {}", p.display()))?;
        }
        let head = crate::sink::chain::head_path(p);
        if head.exists() {
            fs::remove_file(&head).with_context(|| format!("replacing {}", head.display()))?;
        }
    }
    if let Some(p) = args.pipeline.ocsf_log.as_ref().filter(|p| p.exists()) {
        fs::remove_file(p).with_context(|| format!("replacing {}", p.display()))?;
    }
    // The recording's host is the monitored one.
    let sinks = open_sinks(&paths, &args.pipeline, &cfg.options, &meta.hostname)?;
    let mut pipeline = Pipeline::new(cfg.rules, policy, clock, sinks, cfg.options);
    // The recording's host is the one the telemetry describes (no host.id: the replaying
    // machine's is not the recorded one's).
    let mut otel = telemetry(
        &Env::load(),
        vec![("host.name", meta.hostname.trim().to_owned())],
    )?;
    pipeline = otel.install(pipeline);
    feed(&mut pipeline, &frames, |i, e| {
        eprintln!(
            "casa replay: {}: frame {i}: undecodable record: {e}",
            args.file.display()
        )
    });
    // One metrics export at the end, stamped with the recording's times.
    if otel.sender.is_some() {
        let times = || frames.iter().filter_map(frame_ns);
        let (first, last) = (times().min().unwrap_or(0), times().max().unwrap_or(0));
        let unix = |ns| u64::try_from(clock.unix_ns(ns)).unwrap_or(0);
        otel.export_metrics(
            &crate::telemetry::metrics::Snapshot {
                pipeline: pipeline.stats.clone(),
                kernel_lost: pipeline.stats.kernel_lost,
                log_write_failures: pipeline.sink().failed(),
                exports: otel.losses(),
                ..Default::default()
            },
            unix(first),
            unix(last),
        );
        otel.finish(Duration::from_secs(5));
    }
    let failed = pipeline.sink().failed();
    let ocsf = pipeline.sink().ocsf_lines();
    let s = &pipeline.stats;
    eprintln!(
        "casa replay: {} events, {} accepted, {} sessions, {} audit, {} alert records, {} undecodable -> {}",
        s.events,
        s.accepted,
        s.sessions_started,
        s.audit_records,
        s.alert_records,
        s.undecodable,
        args.out_dir.display()
    );
    for line in otel.describe() {
        eprintln!("casa replay: telemetry: {line}");
    }
    if let (Some((written, _)), Some(p)) = (ocsf, &args.pipeline.ocsf_log) {
        eprintln!("casa replay: {written} OCSF events -> {}", p.display());
    }
    if failed.iter().any(|&n| n > 0) {
        anyhow::bail!("could not write {failed:?} lines (events, sessions, audit, alert)");
    }
    if let Some((_, lost)) = ocsf.filter(|&(_, lost)| lost > 0) {
        anyhow::bail!("could not write {lost} OCSF lines");
    }
    Ok(Status::finding_if(pipeline.stats.undecodable > 0).into())
}

/// CPU time of the calling thread (the figures are per core, and other processes running on
/// the machine do not count against casa).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall and CPU time of one pass.
struct Pass {
    wall: Duration,
    cpu: Duration,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Pass) {
    let (w, c) = (Instant::now(), thread_cpu());
    let out = f();
    let pass = Pass {
        wall: w.elapsed().max(Duration::from_nanos(1)),
        cpu: (thread_cpu() - c).max(Duration::from_nanos(1)),
    };
    (out, pass)
}

/// Cost of one `Instant::now()` (the stage timer's clock read), in ns.
fn clock_read_ns() -> f64 {
    const N: u32 = 200_000;
    let t = Instant::now();
    let mut last = t;
    for _ in 0..N {
        last = std::hint::black_box(Instant::now());
    }
    (last - t).as_nanos() as f64 / f64::from(N)
}

/// `casa replay --bench`: three passes over the records held in memory.
///
/// 1. decode only (each event decoded and dropped);
/// 2. the whole pipeline, decode included, into a sink that counts lines: the throughput;
/// 3. the same with per-stage timers on, for the breakdown (each stage's share of the
///    timed pass, after subtracting the cost of the clock reads, is applied to pass 2).
///
/// Figures are per event of the recording, on the calling thread's CPU time (one core);
/// wall-clock figures are printed too. The last line is `throughput: <N> events/s`.
fn bench(
    cfg: PipelineConfig,
    policy: crate::filter::FilterPolicy,
    clock: crate::clock::BootClock,
    frames: &[Frame],
) -> anyhow::Result<ExitCode> {
    let records: Vec<&[u8]> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Record(raw) => Some(&raw[..]),
            _ => None,
        })
        .collect();
    let n = (records.len() as f64).max(1.0);
    let per_event = |d: Duration| d.as_nanos() as f64 / n;

    let (decoded, decode_pass) = timed(|| {
        let mut ok = 0u64;
        for &raw in &records {
            if let Ok(ev) = decode(raw) {
                std::hint::black_box(&ev);
                ok += 1;
            }
        }
        ok
    });

    let run = |rules: crate::rules::RuleSet, timed_stages: bool| {
        let mut pipeline = Pipeline::new(
            rules,
            policy.clone(),
            clock,
            CountingSink::default(),
            cfg.options.clone(),
        );
        if timed_stages {
            pipeline.time_stages();
        }
        feed(&mut pipeline, frames, |_, _| {});
        pipeline
    };
    // The same rules, loaded again (a rule set is not cloneable: it owns compiled programs).
    let again = crate::rules::RuleSet::load(&cfg.rules_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (pipeline, full) = timed(|| run(cfg.rules, false));
    let (staged, staged_pass) = timed(|| run(again, true));

    let s = &pipeline.stats;
    println!("records: {} (decoded {decoded})", records.len());
    println!(
        "accepted: {} sessions: {} alerts: {} rules: {}",
        s.accepted,
        s.sessions_started,
        s.alert_records,
        pipeline.rules().rules().len()
    );
    println!(
        "log lines: {} ({} bytes)",
        pipeline.sink().lines,
        pipeline.sink().bytes
    );
    println!("wall decode: {:.1} ns/event", per_event(decode_pass.wall));
    println!("wall pipeline: {:.1} ns/event", per_event(full.wall));
    let pipe_ns = per_event(full.cpu);
    let decode_ns = per_event(decode_pass.cpu);
    println!("decode: {decode_ns:.1} ns/event");
    if let Some(st) = staged.stage_times() {
        // The timed pass: its decode share is taken from pass 1, the stages from their timers
        // (less one clock read per interval), what is left is the glue between stages.
        let read = clock_read_ns();
        let total = staged_pass.cpu.as_nanos() as f64 - read * st.intervals as f64;
        let stage =
            |ns: u64, share: f64| (ns as f64 - read * share * st.intervals as f64).max(0.0) / n;
        let measured = (st.redact_ns + st.sessions_ns + st.context_ns + st.rules_ns + st.sinks_ns)
            .max(1) as f64;
        let share = |ns: u64| ns as f64 / measured;
        let parts = [
            ("redact", st.redact_ns),
            ("sessions", st.sessions_ns),
            ("context", st.context_ns),
            ("rules", st.rules_ns),
            ("sinks", st.sinks_ns),
        ];
        let scale = if total > 0.0 {
            (pipe_ns * n) / total
        } else {
            1.0
        };
        let mut accounted = decode_ns;
        for (name, ns) in parts {
            let v = stage(ns, share(ns)) * scale;
            accounted += v;
            println!("{name}: {v:.1} ns/event");
        }
        println!("other: {:.1} ns/event", (pipe_ns - accounted).max(0.0));
        println!(
            "stage timer: {read:.1} ns per clock read, {} intervals",
            st.intervals
        );
    }
    println!("pipeline: {pipe_ns:.1} ns/event");
    println!("throughput: {:.0} events/s", n / full.cpu.as_secs_f64());
    Ok(Status::Ok.into())
}

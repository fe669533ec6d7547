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

use super::{load_pipeline_config, policy_offline};
use crate::{
    cli::ReplayArgs,
    decode::decode,
    pipeline::Pipeline,
    recording::{Frame, Reader},
    sink::{FileSinks, Log, LogPaths, LogSink},
};

/// Discards lines, counting bytes (for `--bench`).
#[derive(Default)]
struct CountingSink {
    bytes: u64,
    lines: u64,
}

impl LogSink for CountingSink {
    fn write_line(&mut self, _log: Log, line: &[u8]) {
        self.bytes += line.len() as u64 + 1;
        self.lines += 1;
    }
    fn flush(&mut self) {}
}

/// Read every frame of a recording into memory.
fn read_all(path: &std::path::Path) -> anyhow::Result<(crate::clock::BootClock, Vec<Frame>)> {
    let mut reader = Reader::open(path)?;
    let clock = reader.meta().clock;
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        frames.push(frame);
    }
    Ok((clock, frames))
}

/// What feeding a recording produced besides the logs.
#[derive(Debug, Default)]
pub(crate) struct Fed {
    pub decode_errors: u64,
    /// The recording said when the daemon stopped (`casa run --record`).
    pub finished: bool,
}

/// Feed the frames to the pipeline in order, exactly as `casa run` consumed them live:
/// the start-up process scan, kernel records, clock ticks, loss notices and the shutdown.
/// A recording without a shutdown frame (`casa record`) finishes at its last event.
pub(crate) fn feed<S: LogSink>(
    pipeline: &mut Pipeline<S>,
    frames: &[Frame],
    mut on_error: impl FnMut(usize, &crate::decode::DecodeError),
) -> Fed {
    let mut fed = Fed::default();
    let mut last = 0;
    for (i, frame) in frames.iter().enumerate() {
        match frame {
            Frame::Record(raw) => match decode(raw) {
                Ok(ev) => {
                    last = last.max(ev.ktime_ns);
                    pipeline.process(&ev);
                }
                Err(e) => {
                    fed.decode_errors += 1;
                    on_error(i, &e);
                }
            },
            Frame::Seed(seed) => {
                for p in &seed.processes {
                    pipeline.seed(p.pid, p.ppid, &p.comm, &p.exec(), seed.now_ns);
                }
                last = last.max(seed.now_ns);
            }
            Frame::Tick(now) => {
                pipeline.advance(*now);
                last = last.max(*now);
            }
            Frame::Lost(_) => pipeline.mark_incomplete(),
            Frame::Finish(now) => {
                pipeline.finish(*now);
                fed.finished = true;
            }
            Frame::Summary(_) => {}
        }
    }
    if !fed.finished {
        pipeline.finish(last);
    }
    fed
}

pub fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_pipeline_config(&args.pipeline)?;
    let (clock, frames) = read_all(&args.file)?;
    let policy = policy_offline(&cfg.rules);
    if args.bench {
        let records: Vec<Vec<u8>> = frames
            .into_iter()
            .filter_map(|f| match f {
                Frame::Record(raw) => Some(raw),
                _ => None,
            })
            .collect();
        return bench(cfg, policy, clock, &records);
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
    let sinks = FileSinks::open(&paths)?;
    let mut pipeline = Pipeline::new(cfg.rules, policy, clock, sinks, cfg.options);
    let spans = super::span_exporter(&crate::settings::Env::load())?;
    let export_stats = spans.as_ref().map(|s| s.stats.clone());
    if let Some(spans) = spans {
        pipeline = pipeline.with_spans(Box::new(spans));
    }
    let fed = feed(&mut pipeline, &frames, |i, e| {
        eprintln!(
            "casa replay: {}: frame {i}: undecodable record: {e}",
            args.file.display()
        )
    });
    let failed = pipeline.sink().failed();
    let s = &pipeline.stats;
    eprintln!(
        "casa replay: {} events, {} accepted, {} sessions, {} audit, {} alert records, {} undecodable -> {}",
        s.events,
        s.accepted,
        s.sessions_started,
        s.audit_records,
        s.alert_records,
        fed.decode_errors,
        args.out_dir.display()
    );
    if let Some(st) = export_stats {
        eprintln!("casa replay: telemetry: {}", st.describe());
    }
    if failed.iter().any(|&n| n > 0) {
        anyhow::bail!("could not write {failed:?} lines (events, sessions, audit, alert)");
    }
    Ok(if fed.decode_errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn bench(
    cfg: super::PipelineConfig,
    policy: crate::filter::FilterPolicy,
    clock: crate::clock::BootClock,
    records: &[Vec<u8>],
) -> anyhow::Result<ExitCode> {
    // Decode alone, then the whole pipeline (decode included), over the same records.
    let t = Instant::now();
    let mut events = Vec::with_capacity(records.len());
    for raw in records {
        if let Ok(ev) = decode(raw) {
            events.push(ev);
        }
    }
    let decode_time = t.elapsed();
    let mut pipeline = Pipeline::new(
        cfg.rules,
        policy,
        clock,
        CountingSink::default(),
        cfg.options,
    );
    let t = Instant::now();
    let mut last = 0;
    for raw in records {
        if let Ok(ev) = decode(raw) {
            last = last.max(ev.ktime_ns);
            pipeline.process(&ev);
        }
    }
    pipeline.finish(last);
    let total = t.elapsed().max(Duration::from_nanos(1));
    let n = records.len() as f64;
    let s = &pipeline.stats;
    println!("records: {}", records.len());
    println!(
        "accepted: {} sessions: {} alerts: {}",
        s.accepted, s.sessions_started, s.alert_records
    );
    println!(
        "log lines: {} ({} bytes)",
        pipeline.sink().lines,
        pipeline.sink().bytes
    );
    println!(
        "decode: {:.1} ns/event",
        decode_time.as_nanos() as f64 / n.max(1.0)
    );
    println!(
        "pipeline: {:.1} ns/event",
        total.as_nanos() as f64 / n.max(1.0)
    );
    println!("throughput: {:.0} events/s", n / total.as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

//! `casa record`: capture kernel events into a recording, optionally around a command.
//! Exit status ([`crate::exit`]): with a command, the command's own status once the recording
//! is written; without one, 0; casa's own failures (not root, the kernel refused, the file
//! cannot be written) are 3.

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, sleep_until},
};
use tracing::{info, warn};

use super::sensor_options;
use crate::{
    capture::{self, CaptureError, CaptureSink, Format, shell_exit_code, spawn_tracked},
    cli::{FormatArg, RecordArgs},
    clock::BootClock,
    exit::Status,
    sensor::Sensor,
};

pub async fn record(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let clock = BootClock::measure();
    let mut sensor = Sensor::load(&sensor_options(&args.sensor)).context("starting the sensor")?;
    if sensor.mounted_tracefs {
        info!("tracefs was not mounted: mounted it on /sys/kernel/tracing");
    }
    let mut ring = sensor.take_ring()?;
    let format = match args.format {
        FormatArg::Recording => Format::Recording,
        FormatArg::Jsonl => Format::Jsonl,
    };
    let mut sink = CaptureSink::create(
        &args.out,
        format,
        &crate::recording::Meta::now(clock, &args.command, args.sensor.all_processes),
    )?;
    let child = if args.command.is_empty() {
        info!(
            "recording to {} (SIGINT/SIGTERM to stop)",
            args.out.display()
        );
        None
    } else {
        let c = spawn_tracked(&args.command, &mut sensor)?;
        info!(pid = c.pid, "started and tracking {:?}", args.command);
        Some(c)
    };

    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let deadline = args.duration.map(|d| Instant::now() + d);
    let mut stats_tick = tokio::time::interval(Duration::from_secs(10));
    let mut last_lost = 0;
    let mut write_error: Option<CaptureError> = None;
    let mut child_status = None;
    let mut stopped_by_signal = false;

    loop {
        tokio::select! {
            r = ring.drain(|raw| {
                if write_error.is_none() && let Err(e) = sink.on_record(raw) {
                    write_error = Some(e);
                }
            }) => {
                r?;
                if write_error.is_some() { break; }
            }
            _ = sigint.recv() => { stopped_by_signal = true; break; }
            _ = sigterm.recv() => { stopped_by_signal = true; break; }
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => break,
            st = async { child.as_ref().expect("guarded").wait().await }, if child.is_some() => {
                child_status = Some(st.context("waiting for the command")?);
                break;
            }
            _ = stats_tick.tick() => {
                let lost = sensor.kernel_stats()?.lost();
                if lost > last_lost {
                    warn!("kernel lost {} events so far: {}", lost, sensor.kernel_stats()?.describe());
                    last_lost = lost;
                }
            }
        }
    }
    if let Some(c) = &child
        && child_status.is_none()
    {
        if stopped_by_signal {
            c.terminate();
        }
        child_status = tokio::time::timeout(Duration::from_secs(5), c.wait())
            .await
            .ok()
            .and_then(Result::ok);
    }
    // Everything the kernel committed before this point is still in the ring: take it.
    ring.drain_now(|raw| {
        if write_error.is_none()
            && let Err(e) = sink.on_record(raw)
        {
            write_error = Some(e);
        }
    });
    if let Some(e) = write_error {
        return Err(e).context("writing the recording");
    }
    if let Some(c) = &child {
        sink.set_command(c.pid, child_status);
    }
    let kernel = sensor.kernel_stats()?;
    let samples = sink.decode_error_samples.clone();
    let summary = sink.finish(&kernel)?;
    eprintln!("casa record: wrote {}", args.out.display());
    eprintln!("{}", capture::describe(&summary));
    for s in samples {
        eprintln!("  decode error: {s}");
    }
    Ok(match child_status {
        Some(st) => {
            let code = shell_exit_code(st);
            if code != 0 {
                eprintln!("casa record: command exited with status {code}");
            }
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        None => Status::Ok.into(),
    })
}

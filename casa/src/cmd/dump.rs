//! `casa dump`: a recording's events as JSON lines (the same form as `record --format jsonl`).
//! Exit status ([`crate::exit`]): 0 ok, 1 undecodable records (each named on stderr), 3 the
//! file is not a readable recording (missing, bad header, truncated or corrupt framing; the
//! events before the damage are printed) or stdout cannot be written.

use std::{
    io::{BufWriter, Write},
    process::ExitCode,
};

use anyhow::Context as _;

use crate::{
    cli::DumpArgs,
    decode::decode,
    exit::Status,
    recording::{Frame, Reader},
};

pub fn dump(args: &DumpArgs) -> anyhow::Result<ExitCode> {
    let mut reader = Reader::open(&args.file)?;
    let clock = reader.meta().clock;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut n = 0u64;
    let mut bad = 0u64;
    let mut summary = None;
    let result = loop {
        match reader.next_frame() {
            Ok(Some(Frame::Record(raw))) => {
                n += 1;
                match decode(&raw) {
                    Ok(ev) => {
                        let mut v = serde_json::to_value(&ev).context("serialising an event")?;
                        if let Some(o) = v.as_object_mut() {
                            o.insert("time".into(), clock.rfc3339(ev.ktime_ns).into());
                        }
                        serde_json::to_writer(&mut out, &v).context("writing to stdout")?;
                        out.write_all(b"\n").context("writing to stdout")?;
                    }
                    Err(e) => {
                        bad += 1;
                        eprintln!("casa dump: {}: record {n}: {e}", args.file.display());
                    }
                }
            }
            Ok(Some(Frame::Summary(s))) => summary = Some(s),
            // The daemon's own inputs (`casa run --record`): not kernel events.
            Ok(Some(
                Frame::Seed(_)
                | Frame::Tick(_)
                | Frame::Lost(_)
                | Frame::Finish(_)
                | Frame::Reaped { .. }
                | Frame::Attribution(_),
            )) => {}
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    out.flush().context("writing to stdout")?;
    eprintln!("casa dump: {n} records, {bad} undecodable");
    if let Some(s) = &summary {
        eprintln!("{}", crate::capture::describe(s));
    } else if result.is_ok() {
        eprintln!("casa dump: no summary frame (recording was not finished cleanly)");
    }
    result?;
    Ok(Status::finding_if(bad > 0).into())
}

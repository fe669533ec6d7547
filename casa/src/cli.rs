//! Command-line interface (clap). Parsing only; `crate::cmd` runs the commands.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// casa watches what AI agents do on a Linux host (eBPF) and says, with evidence, when a
/// session turns into an attack.
#[derive(Debug, Parser)]
#[command(name = "casa", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sensor daemon until SIGINT/SIGTERM (needs root).
    Run(RunArgs),
    /// Capture kernel events into a recording file (needs root).
    Record(RecordArgs),
    /// Print a recording's events as JSON lines, then its summary on stderr.
    Dump(DumpArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// casa's versioned binary recording (replayable).
    Recording,
    /// One self-describing JSON object per event.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct SensorArgs {
    /// Report opens and connects of every process, not only tracked trees (debugging,
    /// evaluation).
    #[arg(long)]
    pub all_processes: bool,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, value_parser = parse_ring_mib)]
    pub ring_mib: u32,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sensor: SensorArgs,
    /// Where to write the event stream [env: CASA_EVENTS_LOG_PATH] [default: logs/events.log].
    #[arg(long)]
    pub events_log: Option<PathBuf>,
    /// PID file [env: CASA_PID_PATH] [default: /var/run/casa.pid].
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Seconds between loss-counter reports on stderr.
    #[arg(long, default_value_t = 30)]
    pub stats_interval: u64,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Output file.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Stop after this long (e.g. `10s`, `500ms`, `2m`); default: until the command exits,
    /// or SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Recording)]
    pub format: FormatArg,
    #[command(flatten)]
    pub sensor: SensorArgs,
    /// Command to start and track (with its whole process tree).
    #[arg(last = true)]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// A recording written by `casa record`.
    pub file: PathBuf,
}

/// Parse `10s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, ""), |i| s.split_at(i));
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of MiB"))?;
    if !v.is_power_of_two() || v > 1024 {
        return Err(format!(
            "ring size must be a power of two between 1 and 1024 MiB, got {v}"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(parse_ring_mib("16"), Ok(16));
        assert!(parse_ring_mib("12").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

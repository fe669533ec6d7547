//! Command-line interface (clap). Parsing only; `crate::cmd` runs the commands.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The short threat model printed by `casa --help` (README "Threat model" has the long form).
pub const THREAT_MODEL: &str = "\
Threat model:
  Sees: every exec, fork and exit on the host, with the (dev, inode) of the binary and of a
  #! script; for the agent's process trees: opens (openat, openat2, open, creat; a failed
  relative open with its absolute path), connects, sends with an explicit destination, bind,
  listen, accept, TCP connections by any route, bytes sent per socket, rename/link/symlink/
  unlink/chmod, setsid, ptrace attach, memfd_create, io_uring rings and requests (paths and
  destinations), and each exec's LD_PRELOAD/LD_LIBRARY_PATH/LD_AUDIT and kind of fds 0-2;
  paths resolved in the kernel, results, argv (4 KiB), credentials and seccomp at exec.
  Does not see: reads and writes, setuid, packet contents, exact per-send byte counts,
  fds passed over unix sockets, (dev, inode) of files renamed/unlinked/chmod-ed by path.
  Kinds beyond exec/open/connect are recorded and keep sessions together, not scored yet.
  An attacker with the agent's (unprivileged) rights cannot stop, blind or unload casa, write
  its logs (root-owned, 0600) or edit them undetected (hash chain, `casa verify-log`); floods
  are counted and mark sessions incomplete; argv is bounds-checked, escaped and redacted, and
  casa never runs a shell with agent data. Root on the host can defeat any local monitor.";

/// casa watches what AI agents do on a Linux host (eBPF) and says, with evidence, when a
/// session turns into an attack.
#[derive(Debug, Parser)]
#[command(name = "casa", version, about, long_about = None,
          after_help = format!("{THREAT_MODEL}\n\n{}", crate::exit::HELP))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The commands. Each one's `--help` ends with the exit statuses ([`crate::exit::HELP`]).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sensor daemon until SIGINT/SIGTERM (needs root); exit 0 after a clean stop,
    /// 3 when it cannot start or its inputs fail.
    #[command(after_help = crate::exit::HELP)]
    Run(RunArgs),
    /// Capture kernel events into a recording file (needs root); with a command, exit with
    /// its status.
    #[command(after_help = crate::exit::HELP)]
    Record(RecordArgs),
    /// Print a recording's events as JSON lines, then its summary on stderr; exit 1 when
    /// records are undecodable, 3 when the file is not a readable recording.
    #[command(after_help = crate::exit::HELP)]
    Dump(DumpArgs),
    /// Run a recording through the same pipeline as `run` (no kernel, no root); exit 1 when
    /// records are undecodable.
    #[command(after_help = crate::exit::HELP)]
    Replay(ReplayArgs),
    /// Validate or self-test a rules file, or list the context fields.
    #[command(subcommand, after_help = crate::exit::HELP)]
    Rules(RulesCommand),
    /// Verify a hash-chained log (audit.log, alert.log) against its head file; exit 0 ok,
    /// 1 chain broken, truncated or rolled back (the verdict line says which), 3 unreadable.
    #[command(after_help = crate::exit::HELP)]
    VerifyLog(crate::cmd::verify::VerifyArgs),
    /// List the sessions in casa's logs: id, agent, start, end, score, action, incomplete.
    #[command(after_help = crate::exit::HELP)]
    Sessions(LogsArgs),
    /// One session's story from casa's logs: its process tree, then each step in order with
    /// the rules that fired on it; exit 1 when the session is not in the logs.
    #[command(after_help = crate::exit::HELP)]
    Explain(SessionArgs),
    /// The files one session created or changed, with the programs that did it; exit 1 when
    /// the session is not in the logs.
    #[command(after_help = crate::exit::HELP)]
    Diff(SessionArgs),
}

/// Where the session tools read casa's logs.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A folder holding events.log, sessions.log, audit.log and alert.log; default: the paths
    /// `casa run` is configured with (its flags' environment variables and `.env`, else
    /// `logs/`).
    #[arg(long)]
    pub logs: Option<PathBuf>,
}

/// One session of casa's logs.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// The session id (`casa sessions` lists them).
    pub id: u64,
    #[command(flatten)]
    pub logs: LogsArgs,
}

/// Paths and switches shared by `run` and `replay`.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// Rules file [env: CASA_RULES_PATH] [default: rules.json].
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Agent runtime profiles (JSON list); default: the built-in OpenClaw profile.
    #[arg(long)]
    pub agents: Option<PathBuf>,
    /// Print `[DECISION DEBUG]` lines [env: CASA_DEBUG_EVAL].
    #[arg(long)]
    pub debug_eval: bool,
    /// Keep secrets found in argv (`--token=…`, `Bearer …`, `sk-…` keys) in the outputs
    /// instead of replacing them with `[REDACTED len=N sha256=…]`.
    #[arg(long)]
    pub no_redact: bool,
    /// Carry out the rules file's `response` policy and the preventive rules (kill, deny
    /// network) in the kernel; without it every response is a dry run, recorded as
    /// `dry_run`. In `casa replay` it only labels the records as `casa run --enforce` wrote
    /// them: a replay acts on nothing [env: CASA_ENFORCE].
    #[arg(long)]
    pub enforce: bool,
    /// Also write the records as OCSF 1.8.0 events to this file (JSON lines): Process,
    /// File System and Network Activity for accepted events, a Detection Finding per
    /// LOG/ALERT decision and at the session's close. Off by default.
    #[arg(long, value_name = "FILE")]
    pub ocsf_log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A recording written by `casa record`.
    pub file: PathBuf,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Directory for events.log, sessions.log, audit.log and alert.log (created; existing
    /// logs there are replaced).
    #[arg(long, default_value = "logs/replay")]
    pub out_dir: PathBuf,
    /// Measure pipeline throughput instead of writing logs; the last line printed is
    /// `throughput: <N> events/s`.
    #[arg(long)]
    pub bench: bool,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Parse, validate and compile a rules file; exit 1 with located errors, 3 when it
    /// cannot be read.
    #[command(after_help = crate::exit::HELP)]
    Check {
        /// Rules file [env: CASA_RULES_PATH] [default: rules.json].
        file: Option<PathBuf>,
    },
    /// Each rule must fire on its positive fixture; no rule may fire on the baseline; exit 1
    /// when a case fails or a file is invalid, 3 when one cannot be read.
    #[command(after_help = crate::exit::HELP)]
    Test {
        /// Rules file [env: CASA_RULES_PATH] [default: rules.json].
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Fixture directory with `positive/<rule>.json` and `baseline/*.json`.
        #[arg(long, default_value = "casa/tests/fixtures/rules")]
        fixtures: PathBuf,
    },
    /// List the context fields rules can read: CEL name, type and meaning.
    Fields {
        /// Print README's field table (Markdown), to paste between its markers.
        #[arg(long)]
        markdown: bool,
    },
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
    /// Report opens, connects and the other per-process kinds of every process, not only
    /// tracked trees (debugging, evaluation).
    #[arg(long)]
    pub all_processes: bool,
    /// Ring buffer size in bytes: a power of two, at least one page (e.g. `16M`, `8K`).
    #[arg(long, default_value = "16M", value_parser = parse_ring_size)]
    pub ring_size: u32,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sensor: SensorArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// [env: CASA_EVENTS_LOG_PATH] [default: logs/events.log]
    #[arg(long)]
    pub events_log: Option<PathBuf>,
    /// [env: CASA_SESSIONS_LOG_PATH] [default: logs/sessions.log]
    #[arg(long)]
    pub sessions_log: Option<PathBuf>,
    /// [env: CASA_AUDIT_LOG_PATH] [default: logs/audit.log]
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// [env: CASA_ALERT_LOG_PATH] [default: logs/alert.log]
    #[arg(long)]
    pub alert_log: Option<PathBuf>,
    /// PID file [env: CASA_PID_PATH] [default: /var/run/casa.pid].
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Seconds between loss-counter reports on stderr.
    #[arg(long, default_value_t = 30)]
    pub stats_interval: u64,
    /// Also write every input of the pipeline (start-up process scan, kernel records, clock
    /// ticks, loss, shutdown) to this recording: `casa replay` of it reproduces this run's
    /// logs exactly.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Write one JSON line per accepted event and per alert with its latency from the kernel
    /// event to the line in the log file [env: CASA_LATENCY_TRACE_PATH].
    #[arg(long)]
    pub latency_log: Option<PathBuf>,
    /// Serve Prometheus metrics (`GET /metrics`) on this loopback address, e.g.
    /// `127.0.0.1:9464` [env: CASA_METRICS_LISTEN].
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
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

/// Parse a ring size: bytes with an optional `K`/`M`/`G` suffix; a power of two between
/// 4 KiB and 1 GiB.
pub fn parse_ring_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, mul) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let v: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 16M or 8K)"))?;
    let bytes = v.saturating_mul(mul);
    if !bytes.is_power_of_two() || !(4096..=1 << 30).contains(&bytes) {
        return Err(format!(
            "ring size must be a power of two between 4K and 1G, got `{s}`"
        ));
    }
    Ok(bytes as u32)
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
        assert_eq!(parse_ring_size("16M"), Ok(16 << 20));
        assert_eq!(parse_ring_size("8K"), Ok(8192));
        assert!(parse_ring_size("12M").is_err());
        assert!(parse_ring_size("1K").is_err());
        assert!(parse_ring_size("big").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

//! Workloads for the kernel-side benchmarks, run by `cargo xtask bench` as child processes
//! (as uid 65534, possibly inside an agent session). The binary is copied next to the
//! stand-in launcher, so the same code also plays a minimal agent (`node` mode).

use std::{
    fs::File,
    io::Write as _,
    net::{TcpListener, TcpStream},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// What one `load` run does.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Load {
    /// fork + exec `/bin/true` and wait, N times.
    Exec { n: u64 },
    /// open + close a file, N times.
    Open {
        n: u64,
        #[arg(long, default_value = "/etc/hostname")]
        path: String,
    },
    /// TCP connect to a closed port on 127.0.0.1 (refused), N times.
    Connect { n: u64 },
    /// open + close at a paced rate for a while; prints what was achieved.
    Rate {
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        secs: f64,
        #[arg(long, default_value = "/etc/hostname")]
        path: String,
    },
}

pub fn run(load: &Load) -> anyhow::Result<()> {
    match load {
        Load::Exec { n } => {
            for _ in 0..*n {
                let st = Command::new("/bin/true").status()?;
                if !st.success() {
                    bail!("/bin/true failed: {st}");
                }
            }
        }
        Load::Open { n, path } => {
            for _ in 0..*n {
                drop(File::open(path).with_context(|| format!("opening {path}"))?);
            }
        }
        Load::Connect { n } => {
            // A loopback port nobody listens on: every connect is refused at once (RST), so
            // the loop does not depend on an accept thread keeping up with the SYN backlog.
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
            for _ in 0..*n {
                match TcpStream::connect(port) {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(e).context("connect"),
                    Ok(_) => bail!("{port} accepted a connection: it should be closed"),
                }
            }
        }
        Load::Rate { rate, secs, path } => {
            let (ops, took) = paced_opens(*rate, Duration::from_secs_f64(*secs), path)?;
            println!(
                "pid={} ops={ops} secs={:.3} rate={:.0}",
                std::process::id(),
                took.as_secs_f64(),
                ops as f64 / took.as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Open and close `path` `rate` times a second (0: as fast as possible) for `dur`.
pub fn paced_opens(rate: u64, dur: Duration, path: &str) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let mut ops = 0u64;
    // Work in 1 ms slices: each slice does its share, then sleeps until the next slice.
    let per_slice = (rate / 1000).max(1);
    loop {
        let now = start.elapsed();
        if now >= dur {
            break;
        }
        let batch = if rate == 0 { 1000 } else { per_slice };
        for _ in 0..batch {
            drop(File::open(path).with_context(|| format!("opening {path}"))?);
        }
        ops += batch;
        if rate > 0 {
            let due = Duration::from_secs_f64(ops as f64 / rate as f64);
            let now = start.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
    Ok((ops, start.elapsed()))
}

/// `node <dir>/openclaw agent --agent X -m "churn P hold FILE"`: a minimal agent session for
/// the memory benchmark: fork P children that exit at once, then wait until FILE is gone.
pub fn fake_node(args: &[String]) -> anyhow::Result<()> {
    let msg = args
        .iter()
        .position(|a| a == "-m")
        .and_then(|i| args.get(i + 1))
        .context("node: no -m message")?;
    let words: Vec<&str> = msg.split_whitespace().collect();
    let (procs, hold) = match words.as_slice() {
        ["churn", n, "hold", file] => (n.parse::<u64>()?, *file),
        _ => bail!("node: unknown message {msg:?}"),
    };
    for _ in 0..procs {
        // SAFETY: the child calls only async-signal-safe _exit; the parent waits for it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            bail!("fork failed: {}", std::io::Error::last_os_error());
        }
        let mut status = 0;
        // SAFETY: waits for the child just created; status is a valid out pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let mut out = std::io::stdout();
    writeln!(out, "churned {procs}").ok();
    while Path::new(hold).exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

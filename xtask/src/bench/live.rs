//! The live test bench: a scratch directory with the stand-in agent runtime, workloads run
//! as uid 65534, and the casa daemon started and stopped around them.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Unprivileged uid/gid of the agents (root would trigger `dangerous_caps_without_seccomp`).
const AGENT_ID: &str = "65534";

pub struct Lab {
    pub root: PathBuf,
    pub casa: PathBuf,
    pub dir: PathBuf,
    /// World-writable work directory of the agents (under /tmp, like a real agent's scratch).
    pub work: PathBuf,
    /// The workload binary (a copy of this xtask), runnable by the agents.
    pub load: PathBuf,
    bin: PathBuf,
    mini: PathBuf,
    runs: u32,
}

fn chmod(p: &Path, mode: u32) -> anyhow::Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

impl Lab {
    pub fn new(root: &Path, casa: &Path) -> anyhow::Result<Self> {
        let dir = PathBuf::from(format!("/tmp/casa-bench.{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        let (bin, mini, work) = (dir.join("bin"), dir.join("mini"), dir.join("w"));
        for d in [&dir, &bin, &mini, &work] {
            fs::create_dir_all(d)?;
            chmod(d, 0o755)?;
        }
        chmod(&work, 0o777)?;
        let node = which("node").context("node is needed for the stand-in OpenClaw")?;
        std::os::unix::fs::symlink(&node, bin.join("node"))?;
        std::os::unix::fs::symlink(
            root.join("casa/tests/fixtures/fake-openclaw/openclaw"),
            bin.join("openclaw"),
        )?;
        let load = bin.join("casa-load");
        fs::copy(std::env::current_exe()?, &load)?;
        chmod(&load, 0o755)?;
        // The minimal agent for the memory benchmark: this binary named `node`, next to an
        // `openclaw` file, is an invocation as casa recognises it.
        fs::copy(&load, mini.join("node"))?;
        chmod(&mini.join("node"), 0o755)?;
        fs::write(mini.join("openclaw"), "")?;
        chmod(&mini.join("openclaw"), 0o644)?;
        Ok(Self {
            root: root.to_owned(),
            casa: casa.to_owned(),
            dir,
            work,
            load,
            bin,
            mini,
            runs: 0,
        })
    }

    fn unprivileged(&self) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={AGENT_ID}"),
            &format!("--regid={AGENT_ID}"),
            "--clear-groups",
            "--",
            "env",
            "-i",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            &format!("HOME={}", self.work.display()),
            "LANG=C.UTF-8",
        ]);
        c.current_dir(&self.work)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// `cmd` run by bash as uid 65534, outside any agent session.
    pub fn direct(&self, cmd: &str) -> Command {
        let mut c = self.unprivileged();
        c.args(["/bin/bash", "--noprofile", "--norc", "-c", cmd]);
        c
    }

    /// `cmd` run as a tool call of a stand-in OpenClaw agent session (tracked by casa).
    pub fn agent(&self, cmd: &str) -> Command {
        let mut c = self.unprivileged();
        c.arg(self.bin.join("node"))
            .arg(self.bin.join("openclaw"))
            .args(["agent", "--agent", "bench", "-m"])
            .arg(format!("[exec] {cmd}"));
        c
    }

    /// A minimal agent session (see `load::fake_node`).
    pub fn mini_agent(&self, id: usize, message: &str) -> Command {
        let mut c = self.unprivileged();
        c.arg(self.mini.join("node"))
            .arg(self.mini.join("openclaw"))
            .args(["agent", "--agent", &format!("m{id}"), "-m", message]);
        c
    }

    /// A fresh directory for one daemon run.
    pub fn run_dir(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        self.runs += 1;
        let d = self.dir.join(format!("run{}-{name}", self.runs));
        fs::create_dir_all(&d)?;
        Ok(d)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("CASA_BENCH_KEEP").is_some() {
            eprintln!("bench: kept {}", self.dir.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Run to completion; wall time in seconds (fails if the command fails).
pub fn time(mut cmd: Command) -> anyhow::Result<f64> {
    let t = Instant::now();
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    let secs = t.elapsed().as_secs_f64();
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(secs)
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this process started; no memory is shared.
    unsafe { libc::kill(pid as i32, sig) };
}

/// `CLOCK_BOOTTIME` now, in ns (the kernel timestamps' clock).
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A `casa run` daemon with its logs in its own directory.
pub struct Casa {
    child: Option<Child>,
    pub dir: PathBuf,
    pub err: PathBuf,
}

impl Casa {
    pub fn start(lab: &mut Lab, name: &str, rules: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = lab.run_dir(name)?;
        let err = dir.join("casa.err");
        let mut c = Command::new(&lab.casa);
        c.arg("run")
            .arg("--rules")
            .arg(rules)
            .arg("--events-log")
            .arg(dir.join("events.log"))
            .arg("--sessions-log")
            .arg(dir.join("sessions.log"))
            .arg("--audit-log")
            .arg(dir.join("audit.log"))
            .arg("--alert-log")
            .arg(dir.join("alert.log"))
            .arg("--pid-file")
            .arg(dir.join("casa.pid"))
            .args(extra)
            .current_dir(&dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err)?);
        let child = c.spawn().with_context(|| format!("starting {c:?}"))?;
        let casa = Self {
            child: Some(child),
            dir,
            err,
        };
        casa.wait_for("CASA pipeline is running", Duration::from_secs(60))?;
        Ok(casa)
    }

    /// Put every thread of casa in `SCHED_FIFO` at `prio` (`chrt -a -f -p`).
    pub fn realtime(&self, prio: u32) -> anyhow::Result<()> {
        let st = Command::new("chrt")
            .args(["-a", "-f", "-p", &prio.to_string(), &self.pid().to_string()])
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("chrt failed: {st}");
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait until casa's log has `needle`, or fail (with the log's tail) after `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if self.stderr().contains(needle) {
                return Ok(());
            }
            if !Path::new(&format!("/proc/{}", self.pid())).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.stderr();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        bail!(
            "casa did not log {needle:?} within {timeout:?}; last lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// (`RssAnon`, `RssFile` + `RssShmem`) in KiB: casa's own heap and stacks, and the mapped
    /// binary, libraries and shared mappings such as the ring buffer.
    pub fn rss_parts_kib(&self) -> (u64, u64) {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let get = |key: &str| -> u64 {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (get("RssAnon:"), get("RssFile:") + get("RssShmem:"))
    }

    /// RSS of casa's mappings of BPF maps (in KiB): essentially the ring buffer, whose data
    /// pages the kernel maps twice in a row (so RSS counts them twice).
    pub fn bpf_map_rss_kib(&self) -> u64 {
        let s = fs::read_to_string(format!("/proc/{}/smaps", self.pid())).unwrap_or_default();
        let mut in_map = false;
        let mut total = 0;
        for l in s.lines() {
            let first = l.split_whitespace().next().unwrap_or("");
            if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                in_map = l.ends_with("anon_inode:bpf-map");
            } else if in_map && let Some(v) = l.strip_prefix("Rss:") {
                total += v
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        total
    }

    /// User + system CPU time casa has used, in seconds.
    pub fn cpu_secs(&self) -> f64 {
        let s = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            f.get(i - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (ticks(14) + ticks(15)) / hz
    }

    /// The kernel's lost-event total in the newest stats line (`--stats-interval`).
    pub fn lost_now(&self) -> u64 {
        self.stderr()
            .lines()
            .rev()
            .find(|l| l.contains("kernel: "))
            .map_or(0, lost_in)
    }

    pub fn stop(mut self) -> anyhow::Result<String> {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGINT);
            let t = Instant::now();
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if t.elapsed() > Duration::from_secs(60) {
                    c.kill().ok();
                    c.wait().ok();
                    bail!("casa did not stop within 60 s of SIGINT");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(self.stderr())
    }
}

impl Drop for Casa {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

/// Sum of the `lost_*=N` counters in one of casa's `kernel: …` reports.
pub fn lost_in(line: &str) -> u64 {
    let Some(k) = line.split("kernel: ").nth(1) else {
        return 0;
    };
    k.split_whitespace()
        .filter_map(|w| w.strip_prefix("lost_"))
        .filter_map(|w| w.split('=').nth(1)?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn lost_counters_are_summed() {
        assert_eq!(super::lost_in("x kernel: no loss"), 0);
        assert_eq!(
            super::lost_in(
                "events=1 kernel: lost_open=12 (per cpu 10/2) lost_exec=3 (per cpu 3/0) pending_full=4 (per cpu 4/0)"
            ),
            15
        );
    }
}

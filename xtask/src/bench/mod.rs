//! `cargo xtask bench`: the benchmarks of issue #5, run on this machine, written to
//! `BENCHMARKS.md`.
//!
//! Every timing is a ratio or a distribution from one run: the variants being compared run
//! interleaved (their order rotating between repetitions), each repeated `reps` times, and
//! the report gives the median with min–max and IQR. Nothing here asserts a time: a missed
//! target is reported, not failed. `--quick` shrinks every workload so that the harness can
//! be checked end to end in a few minutes.

mod kernel;
mod live;
mod pipeline;
pub mod stats;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

/// Options of one bench run.
#[derive(Clone, Debug)]
pub struct Opts {
    pub quick: bool,
    pub reps: usize,
    pub out: PathBuf,
    /// Items to run (1–6); empty: all.
    pub only: Vec<u8>,
}

/// One item of the report.
pub struct Item {
    pub title: String,
    pub target: String,
    pub result: String,
    /// None: not measured (the body says why).
    pub met: Option<bool>,
    pub body: String,
}

const HAND_BEGIN: &str = "<!-- hand-written:begin (kept by `make bench`) -->";
const HAND_END: &str = "<!-- hand-written:end -->";

/// The CPU the single-core runs are pinned to (the last one).
pub fn last_cpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo");
    format!(
        "| | |\n|---|---|\n| CPU | {} |\n| cores (online) | {} |\n| RAM | {mem} |\n| kernel | {} |\n| OS | {} |\n| clocksource | {} |\n| virtualisation | {} |\n| casa | {} |\n",
        cpu.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        sh("uname -r"),
        sh(". /etc/os-release && echo \"$PRETTY_NAME\""),
        sh("cat /sys/devices/system/clocksource/clocksource0/current_clocksource"),
        {
            let v = sh("systemd-detect-virt 2>/dev/null | head -n 1");
            let hv = sh("grep -c -m1 hypervisor /proc/cpuinfo") == "1";
            format!(
                "systemd-detect-virt: {}; hypervisor CPU flag: {}",
                if v.is_empty() { "n/a" } else { &v },
                if hv { "yes" } else { "no" }
            )
        },
        sh("git rev-parse --short HEAD"),
    )
}

fn build(root: &Path) -> anyhow::Result<PathBuf> {
    let st = Command::new("cargo")
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "casa",
            "--bin",
            "casa",
            "--example",
            "bench_corpus",
        ])
        .status()?;
    if !st.success() {
        bail!("building casa failed: {st}");
    }
    Ok(root.join("target/release/casa"))
}

fn hand_written(old: Option<&str>) -> String {
    if let Some(old) = old
        && let (Some(a), Some(b)) = (old.find(HAND_BEGIN), old.find(HAND_END))
        && a < b
    {
        return old[a..b + HAND_END.len()].to_owned();
    }
    format!(
        "{HAND_BEGIN}\n## Profiles and fixes\n\n(Hand-written notes: profiles of missed targets and \
         before/after figures of fixes. This section is kept when the file is regenerated.)\n{HAND_END}"
    )
}

/// The memory item keeps a pipe to each of its 1,000 agents: lift the open-file limit.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            let want = 65_536.max(lim.rlim_cur);
            let new = libc::rlimit {
                rlim_cur: want.min(lim.rlim_max.max(want)),
                rlim_max: lim.rlim_max.max(want),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

pub fn run(root: &Path, opts: &Opts) -> anyhow::Result<()> {
    let started = Instant::now();
    raise_nofile();
    let casa = build(root)?;
    let want = |n: u8| opts.only.is_empty() || opts.only.contains(&n);
    let mut items: Vec<Item> = Vec::new();
    if want(1) {
        items.push(pipeline::run(root, &casa, opts)?);
    }
    if (2..=6).any(want) {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            bail!("items 2-6 load casa's eBPF programs: run as root (or pass --only 1)");
        }
        let mut lab = live::Lab::new(root, &casa)?;
        for (n, f) in [
            (
                2u8,
                kernel::overhead as fn(&mut live::Lab, &Opts) -> anyhow::Result<Item>,
            ),
            (3, kernel::latency),
            (4, kernel::loss),
            (5, kernel::memory),
            (6, kernel::reload),
        ] {
            if want(n) {
                let t = Instant::now();
                let item = f(&mut lab, opts).unwrap_or_else(|e| Item {
                    title: kernel::TITLES[n as usize - 2].into(),
                    target: String::new(),
                    result: "failed".into(),
                    met: None,
                    body: format!("The measurement failed: `{e:#}`\n"),
                });
                eprintln!("bench: item {n} took {:.0} s", t.elapsed().as_secs_f64());
                items.push(item);
            }
        }
    }
    // The hand-written section: from the file being replaced, else from BENCHMARKS.md.
    let old = [opts.out.clone(), root.join("BENCHMARKS.md")]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .find(|t| t.contains(HAND_BEGIN));
    let mut md = String::new();
    md += "# Benchmarks\n\n<!-- Generated by `make bench` (`cargo xtask bench`); every figure below is the one \
           the run printed. Only the hand-written section at the end is kept across runs. -->\n\n";
    md += &format!(
        "Generated {} by `cargo xtask bench{}` in {:.0} s.\n\n## Machine\n\n{}\n",
        sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
        if opts.quick { " --quick" } else { "" },
        started.elapsed().as_secs_f64(),
        machine()
    );
    md += &format!(
        "## Method\n\n* Every comparison is measured side by side in one run: the variants \
         alternate (their order rotates between repetitions), each is repeated {} times, and \
         figures are the median with min–max and interquartile range (IQR) over the \
         repetitions (n).\n* Overheads are per-repetition ratios against the no-sensor run of \
         the same repetition.\n* No figure is a test assertion: a missed target is reported \
         here.{}\n\n",
        opts.reps,
        if opts.quick {
            "\n* **Quick mode**: workloads are shrunk to check the harness; the figures are \
             indicative only."
        } else {
            ""
        }
    );
    md += "## Summary\n\n| item | target | result | met |\n|---|---|---|---|\n";
    for it in &items {
        md += &format!(
            "| {} | {} | {} | {} |\n",
            it.title,
            it.target,
            it.result,
            match it.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            }
        );
    }
    md += "\n";
    for it in &items {
        let section = format!("## {}\n\nTarget: {}.\n\n{}\n", it.title, it.target, it.body);
        println!("{section}");
        md += &section;
    }
    md += &hand_written(old.as_deref());
    md += "\n";
    if let Some(dir) = opts.out.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&opts.out, md).with_context(|| format!("writing {}", opts.out.display()))?;
    eprintln!(
        "bench: wrote {} in {:.0} s",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask bench-corpus`: write the 1M-event corpus to target/bench/corpus.rec.
pub fn corpus(root: &Path, events: usize) -> anyhow::Result<()> {
    pipeline::corpus(root, events, &root.join("target/bench/corpus.rec"))?;
    pipeline::rules_100(
        &root.join("rules.json"),
        &root.join("target/bench/rules100.json"),
    )
}

//! Items 2–6: casa's kernel side and daemon, live, against real workloads and peers.

use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{
    Item, Opts,
    live::{Casa, Lab, boottime_ns, signal, time, which},
    stats::{Spread, percentile},
};

pub const TITLES: [&str; 5] = [
    "2. Kernel-side overhead",
    "3. Event→alert latency",
    "4. Loss",
    "5. Memory",
    "6. Reload",
];

// --- peers -------------------------------------------------------------------------------

/// The audit rules use this key, so only they are removed afterwards.
const AUDIT_KEY: &str = "casa-bench";

/// auditd with rules for the syscalls casa hooks; restores the audit state as found.
struct Audit {
    started_pid: Option<u32>,
    enabled_before: Option<String>,
}

fn auditctl(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("auditctl").args(args).output()?;
    if !out.status.success() {
        bail!(
            "auditctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn audit_status(key: &str) -> Option<String> {
    let s = auditctl(&["-s"]).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(&format!("{key} "))
            .map(|v| v.trim().to_owned())
    })
}

impl Audit {
    fn start() -> anyhow::Result<Self> {
        let enabled_before = audit_status("enabled");
        let running = audit_status("pid").is_some_and(|p| p != "0");
        let mut started_pid = None;
        if !running {
            let auditd = which("auditd").context("auditd is not installed (./setup.sh --bench)")?;
            let st = Command::new(auditd).status()?;
            if !st.success() {
                bail!("auditd failed to start: {st}");
            }
            let t = Instant::now();
            while audit_status("pid").is_none_or(|p| p == "0") {
                if t.elapsed() > Duration::from_secs(10) {
                    bail!("auditd did not register with the kernel");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            started_pid = audit_status("pid").and_then(|p| p.parse().ok());
        }
        let a = Self {
            started_pid,
            enabled_before,
        };
        auditctl(&["-e", "1"])?;
        auditctl(&[
            "-a",
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "execve,execveat,openat,openat2,connect",
            "-k",
            AUDIT_KEY,
        ])?;
        Ok(a)
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        let _ = auditctl(&["-D", "-k", AUDIT_KEY]);
        if let Some(e) = &self.enabled_before {
            let _ = auditctl(&["-e", e]);
        }
        if let Some(pid) = self.started_pid {
            signal(pid, libc::SIGTERM);
            let t = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists()
                && t.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The tracepoints casa attaches to, each counted into a bpftrace map.
const BPFTRACE_PROG: &str = "tracepoint:syscalls:sys_enter_execve,tracepoint:syscalls:sys_enter_execveat,\
tracepoint:syscalls:sys_exit_execve,tracepoint:syscalls:sys_exit_execveat,\
tracepoint:syscalls:sys_enter_openat,tracepoint:syscalls:sys_exit_openat,\
tracepoint:syscalls:sys_enter_openat2,tracepoint:syscalls:sys_exit_openat2,\
tracepoint:syscalls:sys_enter_connect,tracepoint:syscalls:sys_exit_connect,\
tracepoint:sched:sched_process_exec,tracepoint:sched:sched_process_fork,\
tracepoint:sched:sched_process_exit { @[probe, comm] = count(); }";

struct Bpftrace {
    child: Child,
    log: std::path::PathBuf,
}

impl Bpftrace {
    fn start(lab: &mut Lab) -> anyhow::Result<Self> {
        let bt = which("bpftrace").context("bpftrace is not installed (./setup.sh --bench)")?;
        let log = lab.run_dir("bpftrace")?.join("bpftrace.out");
        let child = Command::new(bt)
            .args(["-e", BPFTRACE_PROG])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log)?)
            .stderr(Stdio::null())
            .spawn()?;
        let t = Instant::now();
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Attaching")
        {
            if t.elapsed() > Duration::from_secs(60) {
                bail!("bpftrace did not attach");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self { child, log })
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGINT);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().ok();
        self.child.wait().ok();
        let _ = &self.log;
    }
}

// --- item 2 ------------------------------------------------------------------------------

fn workloads(lab: &Lab, quick: bool) -> anyhow::Result<Vec<(&'static str, String)>> {
    let load = lab.load.display().to_string();
    let k = if quick { 8 } else { 25 };
    let script = lab.work.join("macro.sh");
    fs::write(
        &script,
        format!(
            r#"set -e
d=$(mktemp -d -p {w}); cd "$d"
git init -q .; git config user.email bench@localhost; git config user.name bench
for i in $(seq 1 {k}); do
  printf 'line %s\n' "$i" >> notes.txt; printf 'fn f%s() {{}}\n' "$i" > "src_$i.rs"
  git add -A; git commit -q -m "change $i"
  git log --oneline | wc -l > /dev/null
  grep -rn fn --include='*.rs' . | sort | head -n 3 > /dev/null
  git diff HEAD~1 --stat > /dev/null 2>&1 || true
  ls -la | awk '{{print $5}}' | sort -n | tail -n 1 > /dev/null
  sed -n 1p notes.txt | tr a-z A-Z > /dev/null
done
tar czf ../snap-$$.tgz . ; cd ..; rm -rf "$d" snap-$$.tgz
"#,
            w = lab.work.display()
        ),
    )?;
    let (ex, op, co) = if quick {
        (300, 40_000, 20_000)
    } else {
        (1500, 300_000, 100_000)
    };
    Ok(vec![
        ("exec loop", format!("{load} load exec {ex}")),
        ("open/close loop", format!("{load} load open {op}")),
        (
            "loopback connect loop (refused)",
            format!("{load} load connect {co}"),
        ),
        (
            "macro: git + shell batch",
            format!("/bin/bash {}", script.display()),
        ),
    ])
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Cond {
    None,
    Casa,
    Auditd,
    Bpftrace,
}

pub fn overhead(lab: &mut Lab, opts: &Opts) -> anyhow::Result<Item> {
    let rules = lab.root.join("rules.json");
    let wl = workloads(lab, opts.quick)?;
    let have_audit = which("auditctl").is_some() && which("auditd").is_some();
    let have_bt = which("bpftrace").is_some();
    let mut conds = vec![Cond::None, Cond::Casa];
    if have_audit {
        conds.push(Cond::Auditd);
    }
    if have_bt {
        conds.push(Cond::Bpftrace);
    }
    // (workload, variant) -> seconds per repetition; variants: none-direct, none-agent,
    // untracked, tracked, auditd, bpftrace.
    let mut t: BTreeMap<(usize, &str), Vec<f64>> = BTreeMap::new();
    let mut tracked_events = Vec::new();
    let mut casa_cpu = Vec::new();
    for rep in 0..opts.reps {
        let n = conds.len();
        for k in 0..n {
            let c = conds[(k + rep) % n];
            eprintln!("bench: overhead rep {}/{} {c:?}", rep + 1, opts.reps);
            match c {
                Cond::None => {
                    for (i, (_, cmd)) in wl.iter().enumerate() {
                        t.entry((i, "none"))
                            .or_default()
                            .push(time(lab.direct(cmd))?);
                        t.entry((i, "none-agent"))
                            .or_default()
                            .push(time(lab.agent(cmd))?);
                    }
                }
                Cond::Casa => {
                    let casa = Casa::start(lab, "overhead", &rules, &[])?;
                    for (i, (_, cmd)) in wl.iter().enumerate() {
                        t.entry((i, "untracked"))
                            .or_default()
                            .push(time(lab.direct(cmd))?);
                        t.entry((i, "tracked"))
                            .or_default()
                            .push(time(lab.agent(cmd))?);
                    }
                    casa_cpu.push(casa.cpu_secs());
                    let log = casa.stop()?;
                    tracked_events.push(exit_field(&log, "accepted").unwrap_or(0.0));
                }
                Cond::Auditd => {
                    let _a = Audit::start()?;
                    for (i, (_, cmd)) in wl.iter().enumerate() {
                        t.entry((i, "auditd"))
                            .or_default()
                            .push(time(lab.direct(cmd))?);
                    }
                }
                Cond::Bpftrace => {
                    let _b = Bpftrace::start(lab)?;
                    for (i, (_, cmd)) in wl.iter().enumerate() {
                        t.entry((i, "bpftrace"))
                            .or_default()
                            .push(time(lab.direct(cmd))?);
                    }
                }
            }
        }
    }
    let ratio = |i: usize, v: &str, base: &str| -> Spread {
        let (a, b) = (t.get(&(i, v)), t.get(&(i, base)));
        match (a, b) {
            (Some(a), Some(b)) => Spread::of(
                &a.iter()
                    .zip(b)
                    .map(|(x, y)| (x / y - 1.0) * 100.0)
                    .collect::<Vec<_>>(),
            ),
            _ => Spread::of(&[]),
        }
    };
    let mut body = String::new();
    body += "Each workload runs as uid 65534. *untracked*: run directly while `casa run` is \
             running (exec/fork/exit are still reported for every process; opens and connects \
             are filtered in the kernel). *tracked*: the same command as a tool call of a \
             stand-in OpenClaw session (`node openclaw agent … -m \"[exec] …\"`), compared with \
             the same agent-wrapped command without a sensor. *auditd*: auditd running with \
             `-a always,exit -S execve,execveat,openat,openat2,connect -k casa-bench`. \
             *bpftrace*: counting every casa tracepoint into a map. Overhead = wall time / \
             no-sensor wall time of the same repetition − 1.\n\n";
    body += "| workload | no sensor (s) | casa untracked | casa tracked | auditd | bpftrace |\n|---|---|---|---|---|---|\n";
    for (i, (name, _)) in wl.iter().enumerate() {
        let base = Spread::of(t.get(&(i, "none")).map_or(&[][..], |v| v));
        let cell = |v: &str, b: &str| {
            if t.contains_key(&(i, v)) {
                ratio(i, v, b).show(1, " %")
            } else {
                "not installed".into()
            }
        };
        body += &format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            base.show(3, ""),
            cell("untracked", "none"),
            cell("tracked", "none-agent"),
            cell("auditd", "none"),
            cell("bpftrace", "none"),
        );
    }
    body += &format!(
        "\nPer casa run (all workloads, untracked and tracked): events accepted {}; CPU used by \
         the casa daemon {} s.\n",
        Spread::of(&tracked_events).show(0, ""),
        Spread::of(&casa_cpu).show(2, "")
    );
    let macro_i = wl.len() - 1;
    let (unt, trk) = (
        ratio(macro_i, "untracked", "none"),
        ratio(macro_i, "tracked", "none-agent"),
    );
    let aud = ratio(macro_i, "auditd", "none");
    let third = aud.n > 0 && trk.median.max(0.0) <= aud.median.max(0.0) / 3.0;
    let met = unt.median <= 2.0 && trk.median <= 5.0 && (aud.n == 0 || third);
    body += &format!(
        "\nMacro workload: untracked {:.1} % (target ≤ 2 %), tracked {:.1} % (target ≤ 5 %), \
         auditd {:.1} %: casa tracked is {} a third of auditd's.\n",
        unt.median,
        trk.median,
        aud.median,
        if aud.n == 0 {
            "not compared with (auditd missing)"
        } else if third {
            "at most"
        } else {
            "**more than**"
        }
    );
    Ok(Item {
        title: TITLES[0].into(),
        target: "macro workload: untracked ≤ 2 %, tracked ≤ 5 %, casa ≤ ⅓ of auditd".into(),
        result: format!(
            "macro: untracked {:.1} %, tracked {:.1} %, auditd {:.1} %",
            unt.median, trk.median, aud.median
        ),
        met: Some(met),
        body,
    })
}

/// A number from casa's `pipeline exited: N events, N accepted, …` line.
fn exit_field(log: &str, what: &str) -> Option<f64> {
    let line = log.lines().rev().find(|l| l.contains("pipeline exited:"))?;
    let rest = line.split("pipeline exited: ").nth(1)?;
    for part in rest.split(", ") {
        let mut w = part.split_whitespace();
        if let (Some(n), Some(name)) = (w.next(), w.next())
            && name == what
        {
            return n.parse().ok();
        }
    }
    None
}

// --- item 3 ------------------------------------------------------------------------------

/// A background tracked load: an agent session whose tool call runs `procs` processes,
/// each opening a file at `rate / procs` per second (0: as fast as it can) for `secs`.
fn background(lab: &Lab, rate: u64, secs: f64, procs: u64) -> anyhow::Result<Child> {
    let one = format!(
        "{} load rate --rate {} --secs {secs}",
        lab.load.display(),
        rate / procs.max(1)
    );
    let cmd = if procs <= 1 {
        one
    } else {
        format!("for i in $(seq {procs}); do {one} & done; wait")
    };
    let mut c = lab.agent(&cmd);
    c.stdout(Stdio::piped());
    Ok(c.spawn()?)
}

/// The `pid=… ops=… secs=… rate=…` lines of a finished background load, summed (pid: the
/// first process's; secs: the longest).
fn load_result(child: Child) -> anyhow::Result<BTreeMap<String, f64>> {
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m: BTreeMap<String, f64> = BTreeMap::new();
    let mut pids = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("pid=")) {
        for kv in line.split_whitespace() {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<f64>() else { continue };
            match k {
                "pid" => pids.push(v),
                "secs" => {
                    let e = m.entry(k.to_owned()).or_insert(0.0);
                    *e = e.max(v);
                }
                _ => *m.entry(k.to_owned()).or_insert(0.0) += v,
            }
        }
    }
    if pids.is_empty() {
        bail!("the load printed no result");
    }
    m.insert("pid".into(), pids[0]);
    m.insert("procs".into(), pids.len() as f64);
    Ok(m)
}

/// A tool command casa's shipped rules ALERT on, alternating the two kinds of record an alert
/// hangs on: a write (an open: a shell start-up file, `persistence_location_written`) and an
/// exec (a local script fed to `sh` by `curl`, `fetched_code_piped_into_interpreter`).
fn alert_cmd(lab: &Lab, i: usize) -> String {
    let d = lab.work.join(format!("home-{i}"));
    if i.is_multiple_of(2) {
        format!(
            "mkdir -p {d} && printf 'true\\n' >> {d}/.bashrc",
            d = d.display()
        )
    } else {
        format!(
            "mkdir -p {d} && printf 'true\\n' > {d}/s.sh && curl -s file://{d}/s.sh | sh",
            d = d.display()
        )
    }
}

/// One latency run: `k` alerting sessions idle, then `k` under background load.
/// Returns the table rows, the worst alert p99 (ms) and the background's achieved rate.
fn latency_run(
    lab: &mut Lab,
    k: usize,
    bg_rate: u64,
    fifo: Option<u32>,
) -> anyhow::Result<(Vec<String>, f64, BTreeMap<String, f64>)> {
    let rules = lab.root.join("rules.json");
    let casa = Casa::start(lab, "latency", &rules, &["--latency-log", "latency.jsonl"])?;
    if let Some(p) = fifo {
        casa.realtime(p)?;
    }
    let casa_dir = casa.dir.clone();
    for i in 0..k {
        time(lab.agent(&alert_cmd(lab, i)))?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let idle_end = boottime_ns();
    let secs = (k as f64 * 0.25).max(5.0) + 2.0;
    let bg = background(lab, bg_rate, secs, 1)?;
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..k {
        time(lab.agent(&alert_cmd(lab, k + i)))?;
    }
    let bg_info = load_result(bg)?;
    casa.stop()?;
    let text =
        fs::read_to_string(casa_dir.join("latency.jsonl")).context("reading the latency log")?;
    let mut lat: BTreeMap<(&str, bool), Vec<f64>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(log), Some(ev), Some(l)) = (
            v["log"].as_str(),
            v["event_ns"].as_u64(),
            v["latency_ns"].as_u64(),
        ) else {
            continue;
        };
        let kind = if log == "alert" { "alert" } else { "event" };
        lat.entry((kind, ev > idle_end))
            .or_default()
            .push(l as f64 / 1e6);
    }
    let mut rows = Vec::new();
    let mut worst = 0f64;
    for (kind, loaded) in [
        ("alert", false),
        ("alert", true),
        ("event", false),
        ("event", true),
    ] {
        let v = lat.get(&(kind, loaded)).cloned().unwrap_or_default();
        let phase = if loaded { "loaded" } else { "idle" };
        let prio = fifo.map_or("default".to_owned(), |p| format!("SCHED_FIFO {p}"));
        if v.is_empty() {
            rows.push(format!("| {prio} | {kind} | {phase} | 0 | – | – | – |"));
            if kind == "alert" {
                worst = f64::INFINITY;
            }
            continue;
        }
        let p99 = percentile(&v, 99.0);
        if kind == "alert" {
            worst = worst.max(p99);
        }
        rows.push(format!(
            "| {prio} | {kind} | {phase} | {} | {:.3} | {:.3} | {:.3} |",
            v.len(),
            percentile(&v, 50.0),
            p99,
            percentile(&v, 100.0)
        ));
    }
    Ok((rows, worst, bg_info))
}

pub fn latency(lab: &mut Lab, opts: &Opts) -> anyhow::Result<Item> {
    let k = if opts.quick { 10 } else { 40 };
    let bg_rate = 60_000u64;
    let (rows, worst, bg) = latency_run(lab, k, bg_rate, None)?;
    let (rt_rows, rt_worst, rt_bg) = latency_run(lab, k, bg_rate, Some(10))?;
    let mut body = format!(
        "`casa run --latency-log`: per alert record (and per accepted event), the kernel \
         timestamp of the event against the boot-clock time after its line reached the log \
         file (alert lines are handed to the file as they are written; the hash chain's fsync and head-file commit follow at the end of the ring-buffer batch). \
         {k} alerting sessions under casa's shipped rules (alternately a write to a shell \
         start-up file, decided on an open, and a script fed to `sh` by `curl`, decided on an \
         exec; score 9) idle, then {k} more while another tracked \
         session opens a file at {bg_rate}/s (achieved {:.0} and {:.0} events/s). Run twice: \
         casa at its default priority (the target), then with its threads in `SCHED_FIFO` \
         (`chrt -a -f -p 10`), which shows how much of the tail is waiting for a CPU.\n\n\
         | casa priority | records | phase | n | p50 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|---|---|---|\n",
        bg.get("rate").copied().unwrap_or(f64::NAN),
        rt_bg.get("rate").copied().unwrap_or(f64::NAN),
    );
    for r in rows.iter().chain(&rt_rows) {
        body += r;
        body += "\n";
    }
    body += &format!(
        "\nWorst alert p99: {worst:.3} ms at default priority, {rt_worst:.3} ms in SCHED_FIFO.\n"
    );
    Ok(Item {
        title: TITLES[1].into(),
        target: "alert p99 ≤ 5 ms, idle and under ≥ 50K events/s".into(),
        result: format!("alert p99 {worst:.3} ms (worst phase; {rt_worst:.3} ms in SCHED_FIFO)"),
        met: Some(worst <= 5.0),
        body,
    })
}

// --- item 4 ------------------------------------------------------------------------------

pub fn loss(lab: &mut Lab, opts: &Opts) -> anyhow::Result<Item> {
    let rules = lab.root.join("rules.json");
    let secs = if opts.quick { 3.0 } else { 8.0 };
    // (asked rate, generator processes); rate 0: as fast as the processes can.
    let steps: &[(u64, u64)] = if opts.quick {
        &[(100_000, 1), (200_000, 2), (0, 2)]
    } else {
        &[
            (100_000, 1),
            (150_000, 2),
            (200_000, 2),
            (250_000, 2),
            (300_000, 2),
            (0, 1),
            (0, 2),
            (0, 4),
        ]
    };
    let casa = Casa::start(lab, "loss", &rules, &["--stats-interval", "1"])?;
    let mut body = format!(
        "A tracked agent session opens and closes `/etc/hostname` at a paced rate for {secs} s \
         per step, from one or more processes (rate `max` = as fast as they can); casa's kernel loss counters \
         (`lost_*`, ring buffer full) are read from its per-second report before and after \
         each step.\n\n| asked (events/s) | generator processes | achieved (events/s) | events | lost | loss |\n|---|---|---|---|---|---|\n"
    );
    let mut best_zero = 0f64;
    let mut lossy = false;
    for &(r, procs) in steps {
        std::thread::sleep(Duration::from_millis(1500));
        let before = casa.lost_now();
        let res = load_result(background(lab, r, secs, procs)?)?;
        std::thread::sleep(Duration::from_millis(2500));
        let lost = casa.lost_now().saturating_sub(before);
        let (ops, rate) = (
            res.get("ops").copied().unwrap_or(0.0),
            res.get("rate").copied().unwrap_or(0.0),
        );
        if lost == 0 {
            best_zero = best_zero.max(rate);
        } else {
            lossy = true;
        }
        body += &format!(
            "| {} | {procs} | {rate:.0} | {ops:.0} | {lost} | {:.2} % |\n",
            if r == 0 {
                "max".to_owned()
            } else {
                r.to_string()
            },
            100.0 * lost as f64 / ops.max(1.0)
        );
    }
    std::thread::sleep(Duration::from_millis(2500));
    let log = casa.stop()?;
    let sessions =
        fs::read_to_string(lab_last_run(lab, "loss")?.join("sessions.log")).unwrap_or_default();
    let incomplete = sessions
        .lines()
        .filter(|l| l.contains("\"incomplete\":true"))
        .count();
    let warned = log.lines().filter(|l| l.contains("kernel lost")).count();
    body += &format!(
        "\nHighest achieved rate with zero loss: **{best_zero:.0} events/s**. {}\n",
        if lossy {
            format!(
                "Above it the loss was counted: casa logged {warned} `kernel lost …` warnings, \
                 and {incomplete} `sessions.log` snapshots carry `\"incomplete\": true`."
            )
        } else {
            "No step lost events: the generators could not outrun casa here.".to_owned()
        }
    );
    Ok(Item {
        title: TITLES[2].into(),
        target: "≥ 200K events/s with zero loss; loss above it counted and reported".into(),
        result: format!("zero loss up to {best_zero:.0} events/s"),
        met: Some(best_zero >= 200_000.0),
        body,
    })
}

fn lab_last_run(lab: &Lab, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let mut runs: Vec<_> = fs::read_dir(&lab.dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(&format!("-{name}")))
        })
        .collect();
    runs.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| {
                n.to_string_lossy()
                    .strip_prefix("run")?
                    .split('-')
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .unwrap_or(0)
    });
    runs.pop().context("no run directory")
}

// --- item 5 ------------------------------------------------------------------------------

fn open_sessions(casa: &Casa) -> Option<u64> {
    let log = casa.stderr();
    let line = log.lines().rev().find(|l| l.contains("sessions open="))?;
    line.split("sessions open=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn memory(lab: &mut Lab, opts: &Opts) -> anyhow::Result<Item> {
    let rules = lab.root.join("rules.json");
    let (sessions, churn) = if opts.quick {
        (100usize, 100u64)
    } else {
        (1000, 100)
    };
    let casa = Casa::start(lab, "memory", &rules, &["--stats-interval", "1"])?;
    std::thread::sleep(Duration::from_secs(1));
    let base = casa.rss_kib();
    let (base_anon, base_file) = casa.rss_parts_kib();
    let others = open_sessions(&casa).unwrap_or(0);
    let mut rows = Vec::new();
    let mut after = Vec::new();
    let mut peak_all = 0u64;
    let mut peak_no_maps = 0u64;
    let mut maps_kib = 0u64;
    for round in 1..=2 {
        let hold = lab.work.join(format!("hold-{round}"));
        fs::write(&hold, "")?;
        let mut kids = Vec::new();
        let t = Instant::now();
        let mut peak = 0u64;
        for i in 0..sessions {
            kids.push(
                lab.mini_agent(i, &format!("churn {churn} hold {}", hold.display()))
                    .stdout(Stdio::piped())
                    .spawn()?,
            );
            if i % 50 == 49 {
                peak = peak.max(casa.rss_kib());
            }
        }
        // Every agent prints `churned` once its children are done; then they all wait.
        let mut outs = Vec::new();
        for k in kids.iter_mut() {
            let mut line = String::new();
            use std::io::BufRead as _;
            let mut r = std::io::BufReader::new(k.stdout.take().context("no stdout")?);
            r.read_line(&mut line)?;
            outs.push(line);
            peak = peak.max(casa.rss_kib());
        }
        let churn_s = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(2));
        let open = open_sessions(&casa).unwrap_or(0);
        let steady = casa.rss_kib();
        let (anon, file) = casa.rss_parts_kib();
        let maps = casa.bpf_map_rss_kib();
        maps_kib = maps_kib.max(maps);
        peak_no_maps = peak_no_maps.max(peak.saturating_sub(maps));
        peak = peak.max(steady);
        fs::remove_file(&hold)?;
        for mut k in kids {
            k.wait()?;
        }
        let t = Instant::now();
        // Sessions of agents this bench did not start (found running at start-up) stay open.
        while open_sessions(&casa).unwrap_or(u64::MAX) > others
            && t.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(2));
        let closed = casa.rss_kib();
        let (closed_anon, _) = casa.rss_parts_kib();
        after.push(closed);
        peak_all = peak_all.max(peak);
        rows.push(format!(
            "| {round} | {sessions} × {churn} = {} in {churn_s:.1} s | {open} | {:.1} | {:.1} ({:.1} anon + {:.1} file/shared) | {:.1} ({:.1} anon) |",
            sessions as u64 * churn,
            peak as f64 / 1024.0,
            steady as f64 / 1024.0,
            anon as f64 / 1024.0,
            file as f64 / 1024.0,
            closed as f64 / 1024.0,
            closed_anon as f64 / 1024.0
        ));
    }
    let log = casa.stop()?;
    let growth = after[1] as i64 - after[0] as i64;
    let mut body = format!(
        "{sessions} minimal agent sessions are started at once (each an invocation casa \
         recognises, run as uid 65534); each forks {churn} short-lived children and then waits, \
         so all sessions are open together; then they all exit and casa closes the sessions. \
         Two rounds, to see whether memory returns. RSS of the casa process (`VmRSS`) at start: \
         {:.1} MiB ({:.1} MiB anonymous — heap, stacks — and {:.1} MiB file-backed or shared: \
         the mapped binary and libraries, the BPF ring buffer and maps).\n\n| round | processes churned | sessions open (casa) | peak RSS (MiB) | RSS with all sessions open (MiB) | RSS after close (MiB) |\n|---|---|---|---|---|---|\n",
        base as f64 / 1024.0,
        base_anon as f64 / 1024.0,
        base_file as f64 / 1024.0
    );
    for r in &rows {
        body += r;
        body += "\n";
    }
    body += &format!(
        "\nGrowth from round 1 to round 2 after close: {:+.1} MiB. Sessions started (casa): {}. \
         Of the RSS, {:.1} MiB are casa's mappings of BPF maps — the ring buffer, whose data \
         pages the kernel maps twice, so RSS counts a 16 MiB ring as 32 MiB; peak RSS without \
         them: {:.1} MiB.\n",
        growth as f64 / 1024.0,
        exit_field(&log, "sessions").unwrap_or(f64::NAN),
        maps_kib as f64 / 1024.0,
        peak_no_maps as f64 / 1024.0
    );
    let met = peak_all <= 64 * 1024 && growth <= 2 * 1024;
    Ok(Item {
        title: TITLES[3].into(),
        target: "≤ 64 MiB with 1,000 sessions and 100K processes, no growth once sessions end"
            .into(),
        result: format!(
            "peak {:.1} MiB ({:.1} without the ring-buffer mapping), after close {:.1} → {:.1} MiB",
            peak_all as f64 / 1024.0,
            peak_no_maps as f64 / 1024.0,
            after[0] as f64 / 1024.0,
            after[1] as f64 / 1024.0
        ),
        met: Some(met),
        body,
    })
}

// --- item 6 ------------------------------------------------------------------------------

/// `in 1.234ms` (a Rust `Duration` debug) → ms.
fn duration_ms(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches(':');
    for (unit, f) in [
        ("ns", 1e-6),
        ("µs", 1e-3),
        ("us", 1e-3),
        ("ms", 1.0),
        ("s", 1e3),
    ] {
        if let Some(n) = s.strip_suffix(unit) {
            return n.parse::<f64>().ok().map(|v| v * f);
        }
    }
    None
}

pub fn reload(lab: &mut Lab, opts: &Opts) -> anyhow::Result<Item> {
    let n = if opts.quick { 5 } else { 20 };
    let rate = 50_000u64;
    let dir = lab.run_dir("rules")?;
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    let shipped = fs::read_to_string(lab.root.join("rules.json"))?;
    fs::write(&a, &shipped)?;
    // The other set: one weight changed, so every reload is a real change.
    let mut doc: serde_json::Value = serde_json::from_str(&shipped)?;
    doc["rules"][0]["weight"] = serde_json::json!(7);
    fs::write(&b, serde_json::to_string_pretty(&doc)?)?;
    let live = dir.join("rules.json");
    fs::copy(&a, &live)?;
    let casa = Casa::start(lab, "reload", &live, &["--stats-interval", "1"])?;
    let secs = n as f64 * 0.5 + 3.0;
    let lost_before = casa.lost_now();
    let bg = background(lab, rate, secs, 1)?;
    std::thread::sleep(Duration::from_secs(1));
    let mut seen = 0usize;
    let mut signal_to_log = Vec::new();
    for i in 0..n {
        let tmp = dir.join("next.json");
        fs::copy(if i % 2 == 0 { &b } else { &a }, &tmp)?;
        fs::rename(&tmp, &live)?;
        let t = Instant::now();
        signal(casa.pid(), libc::SIGHUP);
        loop {
            let c = casa.stderr().matches("rule config reloaded from").count();
            if c > seen {
                seen = c;
                signal_to_log.push(t.elapsed().as_secs_f64() * 1e3);
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("no reload logged within 10 s of SIGHUP");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    let res = load_result(bg)?;
    std::thread::sleep(Duration::from_secs(2));
    let lost = casa.lost_now().saturating_sub(lost_before);
    let pid = res.get("pid").copied().unwrap_or(0.0) as u64;
    let log = casa.stop()?;
    let internal: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("rule config reloaded from"))
        .filter_map(|l| {
            let rest = l.split("rule config reloaded from ").nth(1)?;
            duration_ms(rest.split_once(" in ")?.1.split(':').next()?)
        })
        .collect();
    let events =
        fs::read_to_string(lab_last_run(lab, "reload")?.join("events.log")).unwrap_or_default();
    let needle = format!("\"pid\":{pid},");
    let seen_opens = events
        .lines()
        .filter(|l| l.contains(&needle) && l.contains("\"path\":\"/etc/hostname\""))
        .count() as f64;
    let ops = res.get("ops").copied().unwrap_or(0.0);
    let internal_s = Spread::of(&internal);
    let s2l = Spread::of(&signal_to_log);
    let missing = (ops - seen_opens).max(0.0);
    let body = format!(
        "{n} SIGHUPs, 0.4 s apart, each swapping `rules.json` between two sets (one weight \
         differs), while a tracked session opens `/etc/hostname` at {rate}/s (achieved {:.0}/s). \
         *in casa*: the duration casa logs for load + validate + swap; *signal → logged*: from \
         `kill -HUP` to the reload line in casa's log (includes the log write and this \
         harness's 0.2 ms polling).\n\n| figure | value |\n|---|---|\n| reload in casa (ms) | {} |\n\
         | signal → logged (ms) | {} |\n| kernel loss during the reloads | {lost} |\n\
         | load events written by the generator | {ops:.0} |\n| of them in `events.log` | {seen_opens:.0} (missing {missing:.0}) |\n",
        res.get("rate").copied().unwrap_or(f64::NAN),
        internal_s.show(3, ""),
        s2l.show(3, ""),
    );
    let met = s2l.max < 50.0 && lost == 0 && missing == 0.0;
    Ok(Item {
        title: TITLES[4].into(),
        target: "< 50 ms to the new rules, 0 events lost, under load".into(),
        result: format!(
            "max {:.1} ms signal→logged, {lost} lost, {missing:.0} missing",
            s2l.max
        ),
        met: Some(met),
        body,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_and_exit_fields_parse() {
        assert_eq!(super::duration_ms("1.5ms"), Some(1.5));
        assert_eq!(super::duration_ms("250µs"), Some(0.25));
        let log = "x INFO pipeline exited: 120 events, 30 accepted, 2 sessions, 0 audit and 0 alert records";
        assert_eq!(super::exit_field(log, "events"), Some(120.0));
        assert_eq!(super::exit_field(log, "accepted"), Some(30.0));
        assert_eq!(super::exit_field(log, "sessions"), Some(2.0));
    }
}

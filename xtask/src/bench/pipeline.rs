//! Item 1: pipeline throughput over the corpus, no kernel.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::{Item, Opts, stats::Spread};

/// Build the corpus with the `bench_corpus` example (skipped when it is already there).
pub fn corpus(root: &Path, events: usize, out: &Path) -> anyhow::Result<()> {
    let stamp = out.with_extension("events");
    if out.exists() && fs::read_to_string(&stamp).ok().as_deref() == Some(&events.to_string()) {
        eprintln!("bench: corpus {} is up to date", out.display());
        return Ok(());
    }
    let st = Command::new("cargo")
        .current_dir(root)
        .args([
            "run",
            "--release",
            "--locked",
            "-q",
            "-p",
            "casa",
            "--example",
            "bench_corpus",
            "--",
            "--events",
        ])
        .arg(events.to_string())
        .arg("--out")
        .arg(out)
        .status()?;
    if !st.success() {
        bail!("bench_corpus failed: {st}");
    }
    fs::write(stamp, events.to_string())?;
    Ok(())
}

/// Expressions over CASA's context shaped like the shipped rules: conjunctions of history
/// facts with lineage and capability conditions.
const HISTORY: [&str; 8] = [
    "history.connect_then_exec",
    "history.sensitive_then_network",
    "history.sensitive_then_execve",
    "history.burst_open",
    "history.burst_connect",
    "history.burst_exec",
    "history.write_then_exec_same_path",
    "history.opened_deleted_path",
];
const EXECUTION: [&str; 7] = [
    "execution.suspicious_path_exec",
    "execution.deep_chain",
    "execution.shell_in_chain",
    "execution.network_tool_in_chain",
    "execution.interpreter_in_chain",
    "execution.container_runtime_in_chain",
    "execution.memfd_or_deleted_exec",
];

/// `rules.json` with its rules followed by generated ones, 100 in all.
pub fn rules_100(shipped: &Path, out: &Path) -> anyhow::Result<()> {
    let text =
        fs::read_to_string(shipped).with_context(|| format!("reading {}", shipped.display()))?;
    let mut doc: serde_json::Value = serde_json::from_str(&text)?;
    let rules = doc["rules"]
        .as_array_mut()
        .context("rules.json has no rules[]")?;
    let mut i = 0usize;
    while rules.len() < 100 {
        let h = HISTORY[i % HISTORY.len()];
        let e1 = EXECUTION[(i / HISTORY.len()) % EXECUTION.len()];
        let e2 = EXECUTION[(i * 3 + 1) % EXECUTION.len()];
        let expr = match i % 5 {
            0 => format!("{h} && {e1}"),
            1 => format!("{h} && ({e1} || {e2})"),
            2 => format!("{h} && capability.dangerous_count >= {}", 1 + i % 3),
            3 => format!("({h} || {}) && !{e1}", HISTORY[(i + 3) % HISTORY.len()]),
            _ => format!("{e1} && {e2} && capability.seccomp_disabled && session_id > 0"),
        };
        rules.push(serde_json::json!({
            "name": format!("bench_generated_{i:03}"),
            "description": "Generated for the 100-rule benchmark.",
            "expr": expr,
            "weight": 1 + (i % 6) as i64,
            "enabled": true,
        }));
        i += 1;
    }
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(out, serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}

/// `key: value` lines of one `casa replay --bench` run (numbers only).
fn parse(out: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut m = BTreeMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once(": ")
            && let Some(num) = v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
        {
            m.insert(k.to_owned(), num);
        }
    }
    let last = out.lines().last().unwrap_or("");
    if !last.starts_with("throughput: ") || !last.ends_with(" events/s") {
        bail!("the last line of casa replay --bench is not 'throughput: <N> events/s': {last:?}");
    }
    Ok(m)
}

pub const STAGES: [&str; 8] = [
    "decode", "redact", "sessions", "context", "rules", "sinks", "other", "pipeline",
];

pub fn run(root: &Path, casa: &Path, opts: &Opts) -> anyhow::Result<Item> {
    let bench = root.join("target/bench");
    let events = if opts.quick { 200_000 } else { 1_000_000 };
    let corpus_path = if opts.quick {
        bench.join("corpus-quick.rec")
    } else {
        bench.join("corpus.rec")
    };
    corpus(root, events, &corpus_path)?;
    let shipped = root.join("rules.json");
    let hundred = bench.join("rules100.json");
    rules_100(&shipped, &hundred)?;
    let shipped_count =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&shipped)?)?["rules"]
            .as_array()
            .map_or(0, Vec::len);
    let shipped_label = format!("shipped rules ({shipped_count})");
    let sets: [(&str, PathBuf); 2] = [(&shipped_label, shipped), ("100 rules", hundred)];
    let cpu = super::last_cpu();
    let mut samples: Vec<BTreeMap<String, Vec<f64>>> = vec![BTreeMap::new(), BTreeMap::new()];
    let mut info = String::new();
    for rep in 0..opts.reps {
        // Interleaved, alternating which set goes first.
        for k in 0..2 {
            let which = (k + rep) % 2;
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()])
                .arg(casa)
                .args(["replay", "--bench"])
                .arg(&corpus_path)
                .arg("--rules")
                .arg(&sets[which].1)
                .env("RUST_LOG", "warn");
            let out = c.output().with_context(|| format!("running {c:?}"))?;
            if !out.status.success() {
                bail!("{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let m = parse(&text)?;
            eprintln!(
                "bench: pipeline rep {}/{} {}: {:.0} events/s",
                rep + 1,
                opts.reps,
                sets[which].0,
                m.get("throughput").copied().unwrap_or(f64::NAN)
            );
            if rep == 0 && which == 0 {
                info = text.lines().take(3).collect::<Vec<_>>().join("; ");
            }
            for (key, v) in m {
                samples[which].entry(key).or_default().push(v);
            }
        }
    }
    let get = |w: usize, k: &str| Spread::of(samples[w].get(k).map_or(&[][..], |v| &v[..]));
    let tput = get(0, "throughput");
    let mut body = String::new();
    body += &format!(
        "Corpus: `{}` ({} records built by `bench_corpus` from the 4 golden recordings: {info}). \
         Each run: `taskset -c {cpu} casa replay --bench` (decode-only pass, full pipeline into a \
         counting sink, then a pass with per-stage timers); figures are per recorded event on the \
         process's CPU time; {} runs per rule set, the two sets interleaved.\n\n",
        corpus_path
            .strip_prefix(root)
            .unwrap_or(&corpus_path)
            .display(),
        events,
        opts.reps
    );
    body += &format!("| figure | {shipped_label} | 100 rules |\n|---|---|---|\n");
    body += &format!(
        "| throughput (events/s, one core) | {} | {} |\n",
        tput.show(0, ""),
        get(1, "throughput").show(0, "")
    );
    for st in STAGES {
        body += &format!(
            "| {st} (ns/event) | {} | {} |\n",
            get(0, st).show(1, ""),
            get(1, st).show(1, "")
        );
    }
    body += &format!(
        "| wall-clock throughput (events/s) | {} | {} |\n",
        Spread::of(
            &samples[0]
                .get("wall pipeline")
                .map(|v| v.iter().map(|ns| 1e9 / ns).collect::<Vec<_>>())
                .unwrap_or_default()
        )
        .show(0, ""),
        Spread::of(
            &samples[1]
                .get("wall pipeline")
                .map(|v| v.iter().map(|ns| 1e9 / ns).collect::<Vec<_>>())
                .unwrap_or_default()
        )
        .show(0, ""),
    );
    body += "\n`pipeline` includes decode; `other` is what the stage timers do not cover \
             (dispatch between stages, event copies). The per-stage split comes from the timed \
             pass, scaled to the untimed pipeline time after subtracting the clock reads.\n";
    let met = tput.median >= 1_000_000.0;
    Ok(Item {
        title: "1. Pipeline throughput (no kernel)".into(),
        target: "≥ 1,000,000 events/s per core with the shipped rules".into(),
        result: format!("{:.0} events/s (median)", tput.median),
        met: Some(met),
        body,
    })
}

//! `cargo xtask instructions [--update]`: the pipeline's cost in instructions per event, a
//! regression check that does not depend on the machine.
//!
//! callgrind counts the instructions executed inside `Pipeline::feed` (decode, sessions,
//! filter, context, rules, sinks; not start-up or file reading) while `casa replay` runs each
//! committed evaluation recording of the `local` mode with the evaluation's rules. For the
//! same binary and input the count is deterministic (a run-to-run spread of about 0.01 %,
//! from hash seeds), unlike a timing. The total is compared with the committed baseline
//! (`xtask/instructions.baseline.json`): more than [`TOLERANCE`] above it fails, so a change
//! that makes the pipeline slower has to update the baseline in the same commit (`--update`),
//! where a reviewer sees it. `make test` runs the check; `make bench` reports the per-stage
//! split in BENCHMARKS.md.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// Allowed growth over the baseline before the check fails.
pub const TOLERANCE: f64 = 0.10;

/// The stages reported, each the inclusive cost of the functions named (as callgrind
/// demangles them); what they leave out of the total is `other` (glue, the shortcuts'
/// bookkeeping, functions inlined away).
const STAGES: &[(&str, &[&str])] = &[
    ("decode", &["casa::decode::decode "]),
    ("redact", &["casa::redact::redact_event "]),
    (
        "sessions",
        &[
            "casa::session::Tracker::observe ",
            "casa::session::Tracker::expire ",
        ],
    ),
    ("filter", &["casa::filter::ignore_reason "]),
    (
        "context",
        &[
            "casa::context::session::SessionContext::apply_in ",
            "casa::session::Tracker::lineage ",
        ],
    ),
    (
        "rules",
        &[
            "casa::rules::RuleSet::matching ",
            "casa::rules::score::Scorer::decide ",
        ],
    ),
    (
        "sinks",
        &[
            "<casa::sink::FileSinks as casa::sink::LogSink>::write ",
            "casa::pipeline::Pipeline<S>::snapshot ",
        ],
    ),
];

/// What one measurement found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// Kernel records replayed.
    pub events: u64,
    /// Instructions inside `Pipeline::feed`.
    pub instructions: u64,
    /// `instructions / events`.
    pub per_event: f64,
    /// Instructions per event by stage (see [`STAGES`]), plus `other`.
    pub stages: BTreeMap<String, f64>,
}

/// The committed baseline.
#[derive(Debug, Serialize, Deserialize)]
struct Baseline {
    /// How it was measured, for a reader.
    method: String,
    measure: Measure,
}

fn baseline_path(root: &Path) -> PathBuf {
    root.join("xtask/instructions.baseline.json")
}

/// The recordings measured: the evaluation's `local` mode, in name order.
fn recordings(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = root.join("evaluation/recordings/local");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".rec.gz"))
        .collect();
    v.sort();
    if v.is_empty() {
        bail!("no recordings in {}", dir.display());
    }
    Ok(v)
}

/// Inclusive instructions by function name (`callgrind_annotate --inclusive=yes`).
fn inclusive(out: &Path) -> anyhow::Result<Vec<(u64, String)>> {
    let o = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100"])
        .arg(out)
        .output()
        .context("running callgrind_annotate (Debian package valgrind)")?;
    if !o.status.success() {
        bail!(
            "callgrind_annotate {}: {}",
            out.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let text = String::from_utf8_lossy(&o.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let (n, rest) = l.trim_start().split_once(' ')?;
            let n: u64 = n.replace(',', "").parse().ok()?;
            let name = rest.split_once("???:").map(|(_, f)| f)?;
            Some((n, name.to_owned()))
        })
        .collect())
}

/// Measure one binary over every recording.
pub fn measure(root: &Path, casa: &Path) -> anyhow::Result<Measure> {
    let tmp = root.join("target/instructions");
    std::fs::create_dir_all(&tmp)?;
    let rules = root.join("evaluation/rules.eval.json");
    let (mut events, mut instructions) = (0u64, 0u64);
    let mut stage_sum: BTreeMap<String, u64> = BTreeMap::new();
    let recs = recordings(root)?;
    // A progress line on a terminal; in a log (CI), one line at the start.
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !progress {
        eprintln!("xtask: callgrind over {} recordings", recs.len());
    }
    for (i, rec) in recs.iter().enumerate() {
        let name = rec.file_name().unwrap_or_default().to_string_lossy();
        if progress {
            eprint!("\rxtask: callgrind {}/{} {name}        ", i + 1, recs.len());
        }
        let out = tmp.join("callgrind.out");
        let o = Command::new("valgrind")
            .args(["--tool=callgrind", "--toggle-collect=*Pipeline*feed*"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(casa)
            .arg("replay")
            .arg(rec)
            .arg("--rules")
            .arg(&rules)
            .arg("--out-dir")
            .arg(tmp.join("logs"))
            .output()
            .context("running valgrind (Debian package valgrind)")?;
        let stderr = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() {
            bail!(
                "casa replay {} under callgrind failed: {stderr}",
                rec.display()
            );
        }
        let n: u64 = stderr
            .lines()
            .find_map(|l| l.strip_prefix("casa replay: "))
            .and_then(|l| l.split_once(" events"))
            .and_then(|(n, _)| n.parse().ok())
            .with_context(|| format!("no event count from casa replay: {stderr}"))?;
        let total: u64 = std::fs::read_to_string(&out)?
            .lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|v| v.trim().parse().ok())
            .context("no summary line in the callgrind output")?;
        events += n;
        instructions += total;
        let funcs = inclusive(&out)?;
        for (stage, names) in STAGES {
            let cost: u64 = names
                .iter()
                .map(|want| {
                    funcs
                        .iter()
                        .filter(|(_, f)| f.starts_with(want))
                        .map(|(n, _)| *n)
                        .max()
                        .unwrap_or(0)
                })
                .sum();
            *stage_sum.entry((*stage).to_owned()).or_default() += cost;
        }
    }
    if progress {
        eprintln!();
    }
    let per = |n: u64| n as f64 / events.max(1) as f64;
    let mut stages: BTreeMap<String, f64> = stage_sum
        .iter()
        .map(|(k, &v)| (k.clone(), per(v)))
        .collect();
    let accounted: u64 = stage_sum.values().sum();
    stages.insert("other".into(), per(instructions.saturating_sub(accounted)));
    Ok(Measure {
        events,
        instructions,
        per_event: per(instructions),
        stages,
    })
}

/// The check (`make test`), or `--update` to write the baseline.
pub fn run(root: &Path, casa: &Path, update: bool) -> anyhow::Result<()> {
    let m = measure(root, casa)?;
    println!(
        "instructions: {:.0} per event ({} instructions over {} events)",
        m.per_event, m.instructions, m.events
    );
    for (stage, v) in &m.stages {
        println!("  {stage}: {v:.0}");
    }
    let path = baseline_path(root);
    if update {
        let b = Baseline {
            method: "callgrind, instructions inside Pipeline::feed, casa replay (release build) \
                     of evaluation/recordings/local/*.rec.gz with evaluation/rules.eval.json"
                .into(),
            measure: m,
        };
        std::fs::write(&path, serde_json::to_string_pretty(&b)? + "\n")?;
        println!("instructions: baseline written to {}", path.display());
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (create it with `cargo xtask instructions --update`)",
            path.display()
        )
    })?;
    let b: Baseline =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if b.measure.events != m.events {
        bail!(
            "the recordings changed ({} events, baseline {}): update the baseline with \
             `cargo xtask instructions --update` in the same commit",
            m.events,
            b.measure.events
        );
    }
    let limit = b.measure.per_event * (1.0 + TOLERANCE);
    let change = (m.per_event / b.measure.per_event - 1.0) * 100.0;
    if m.per_event > limit {
        bail!(
            "the pipeline got slower: {:.0} instructions per event against a baseline of {:.0} \
             ({change:+.1} %, more than {:.0} %); if that is intended, update {} with \
             `cargo xtask instructions --update` in the same commit",
            m.per_event,
            b.measure.per_event,
            TOLERANCE * 100.0,
            path.display()
        );
    }
    println!(
        "instructions: ok ({change:+.1} % against the baseline of {:.0} per event)",
        b.measure.per_event
    );
    Ok(())
}

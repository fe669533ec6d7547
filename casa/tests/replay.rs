//! Golden replay tests: recordings captured by the real sensor (`fixtures/recordings`) go
//! through `casa replay`; the four logs must equal `fixtures/expected/<name>/` byte for byte,
//! and two runs must give identical bytes. `CASA_BLESS=1` rewrites the expected logs.
//!
//! Also: the pipeline's shortcuts (evaluate rules only when the context changed, skip rules a
//! session already triggered) must give exactly the outputs of the straightforward evaluation.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use casa::{
    filter::FilterPolicy,
    pipeline::{Pipeline, PipelineOptions},
    recording::Reader,
    rules::RuleSet,
    sink::{Log, MemorySink},
};

const LOGS: [&str; 4] = ["events.log", "sessions.log", "audit.log", "alert.log"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn recordings() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join("recordings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rec"))
        .collect();
    v.sort();
    assert!(v.len() >= 4, "golden recordings missing");
    v
}

fn replay(rec: &Path, out: &Path) {
    let _ = std::fs::remove_dir_all(out);
    let o = Command::new(env!("CARGO_BIN_EXE_casa"))
        .arg("replay")
        .arg(rec)
        .arg("--rules")
        .arg(fixtures().join("recordings/rules.test.json"))
        .arg("--out-dir")
        .arg(out)
        .env_remove("CASA_RULES_PATH")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "casa replay {} failed: {}\n{}",
        rec.display(),
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A readable diff: the first differing line with context, then both files in full.
fn diff(name: &str, expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    format!(
        "{name}: first difference at line {} (expected {} lines, got {})\n- {}\n+ {}\n\n=== expected {name} ===\n{expected}\n=== actual {name} ===\n{actual}",
        first + 1,
        e.len(),
        a.len(),
        e.get(first).unwrap_or(&"<end>"),
        a.get(first).unwrap_or(&"<end>"),
    )
}

#[test]
fn golden_replays_are_identical_and_match_expected() {
    let tmp = std::env::temp_dir().join(format!("casa-golden-{}", std::process::id()));
    let bless = std::env::var_os("CASA_BLESS").is_some();
    for rec in recordings() {
        let name = rec.file_stem().unwrap().to_str().unwrap().to_owned();
        let (one, two) = (tmp.join(format!("{name}-1")), tmp.join(format!("{name}-2")));
        replay(&rec, &one);
        replay(&rec, &two);
        let expected_dir = fixtures().join("expected").join(&name);
        for log in LOGS {
            let a = std::fs::read_to_string(one.join(log)).unwrap();
            let b = std::fs::read_to_string(two.join(log)).unwrap();
            assert!(a == b, "{name}: two replays differ\n{}", diff(log, &a, &b));
            for line in a.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{name}/{log}: invalid JSON line ({e}): {line}"));
            }
            let want = expected_dir.join(log);
            if bless {
                std::fs::create_dir_all(&expected_dir).unwrap();
                std::fs::write(&want, &a).unwrap();
                continue;
            }
            let e = std::fs::read_to_string(&want).unwrap_or_else(|_| {
                panic!(
                    "missing {}; run with CASA_BLESS=1 to create it",
                    want.display()
                )
            });
            assert!(
                e == a,
                "{name}: replay differs from the golden output\n{}",
                diff(log, &e, &a)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

fn golden(name: &str, log: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(fixtures().join("expected").join(name).join(log))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn golden_outcomes_are_the_intended_ones() {
    // The golden files are blessed output; these assertions keep them honest.
    let alert = golden("write_exec", "alert.log");
    assert_eq!(alert.len(), 1);
    assert_eq!(alert[0]["decision"]["score"], 9);
    let names: Vec<&str> = alert[0]["decision"]["triggered_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "write_then_exec_same_path",
            "write_then_exec_from_suspicious_path"
        ]
    );
    assert!(golden("benign", "audit.log").is_empty());
    let up = golden("sensitive_upload", "alert.log");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["event"]["type"], "CONNECT");
    assert_eq!(up[0]["decision"]["score"], 9);
    for name in [
        "write_exec",
        "benign",
        "sensitive_upload",
        "connect_then_temp_exec",
    ] {
        let s = golden(name, "sessions.log");
        assert!(
            s.iter().any(|r| r["reason"] == "session_closed"),
            "{name}: no session_closed"
        );
    }
}

fn run_pipeline(rec: &Path, naive: bool) -> Vec<(Log, String)> {
    let rules = RuleSet::load(fixtures().join("recordings/rules.test.json")).unwrap();
    let mut reader = Reader::open(rec).unwrap();
    let clock = reader.meta().clock;
    let opts = PipelineOptions {
        naive,
        ..PipelineOptions::default()
    };
    let mut p = Pipeline::new(
        rules,
        FilterPolicy::default(),
        clock,
        MemorySink::default(),
        opts,
    );
    while let Some(f) = reader.next_frame().unwrap() {
        if let Some(input) = f.input() {
            let out = p.feed(input);
            assert!(out.decode_error.is_none(), "{}: {out:?}", rec.display());
        }
    }
    p.end_of_input();
    p.sink().lines.clone()
}

#[test]
fn shortcuts_give_exactly_the_straightforward_outputs() {
    for rec in recordings() {
        let fast = run_pipeline(&rec, false);
        let naive = run_pipeline(&rec, true);
        assert!(!fast.is_empty());
        assert_eq!(
            fast,
            naive,
            "{}: optimized and naive pipelines differ",
            rec.display()
        );
    }
}

#[test]
fn replay_bench_smoke() {
    // The benchmark path of `make bench` must keep working: a few seconds at most.
    let rec = fixtures().join("recordings/connect_then_temp_exec.rec");
    let o = Command::new(env!("CARGO_BIN_EXE_casa"))
        .args(["replay", "--bench"])
        .arg(&rec)
        .arg("--rules")
        .arg(fixtures().join("recordings/rules.test.json"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let last = out.lines().last().unwrap_or_default();
    let n: f64 = last
        .strip_prefix("throughput: ")
        .and_then(|r| r.strip_suffix(" events/s"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("last line is not `throughput: <N> events/s`: {last:?}"));
    assert!(n > 0.0);
}

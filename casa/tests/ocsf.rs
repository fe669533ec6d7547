//! `--ocsf-log`: recordings replayed with the OCSF output on; every line is validated against
//! the official OCSF 1.8.0 schema (`evaluation/ocsf_validate.py`, with the schema export the
//! pinned `ocsf-json-schema` package ships; `./setup.sh` installs it), and what matters is
//! checked against casa's own logs: one finding per alerting session, created on its first
//! decision, updated on the next, closed with the session; its score the session's, its
//! analytics the rules that fired.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use support::ocsf::validate;

mod support;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("casa-ocsf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `casa replay REC --rules RULES --out-dir OUT [--ocsf-log OCSF]`.
fn replay(rec: &Path, rules: &Path, out: &Path, ocsf: Option<&Path>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_casa"));
    cmd.arg("replay")
        .arg(rec)
        .arg("--rules")
        .arg(rules)
        .arg("--out-dir")
        .arg(out)
        .env_remove("CASA_RULES_PATH")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    if let Some(o) = ocsf {
        cmd.arg("--ocsf-log").arg(o);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "casa replay failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A gzipped evaluation recording, unpacked into `dir`.
fn gunzip(rec: &Path, dir: &Path) -> PathBuf {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(rec).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let out = dir.join(rec.file_stem().unwrap());
    std::fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn ocsf_replay_of_an_attack_is_valid_and_its_finding_follows_the_session() {
    let d = scratch("m03");
    // M03 (evaluation corpus): one session, two ALERT decisions.
    let rec = gunzip(&root().join("evaluation/recordings/local/M03.rec.gz"), &d);
    let rules = root().join("evaluation/rules.eval.json");
    let ocsf = d.join("ocsf.jsonl");
    replay(&rec, &rules, &d.join("logs"), Some(&ocsf));

    let (code, summary) = validate(&ocsf);
    assert_eq!(code, 0, "OCSF schema validation failed:\n{summary}");
    let events = lines(&ocsf);
    let logs = d.join("logs");
    let accepted = lines(&logs.join("events.log"));
    let audit = lines(&logs.join("audit.log"));
    let alert = lines(&logs.join("alert.log"));
    let sessions = lines(&logs.join("sessions.log"));
    assert_eq!(audit.len(), 2, "the recording's decisions");
    assert!(!alert.is_empty());

    // One activity event per accepted exec/open/connect/exit, of the class its kind maps to.
    let mut want: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &accepted {
        let class = match e["type"].as_str().unwrap() {
            "EXECVE" | "EXIT" => 1007,
            "OPENAT" => 1001,
            "CONNECT" => 4001,
            _ => continue,
        };
        *want.entry(class).or_default() += 1;
    }
    let mut got: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &events {
        let class = e["class_uid"].as_u64().unwrap();
        if class != 2004 {
            *got.entry(class).or_default() += 1;
        }
        assert_eq!(
            e["type_uid"].as_u64().unwrap(),
            class * 100 + e["activity_id"].as_u64().unwrap()
        );
    }
    assert_eq!(got, want, "activity events per class");

    // The finding: created, updated, closed; one uid, the session's trace id.
    let findings: Vec<&Value> = events.iter().filter(|e| e["class_uid"] == 2004).collect();
    let activities: Vec<u64> = findings
        .iter()
        .map(|f| f["activity_id"].as_u64().unwrap())
        .collect();
    assert_eq!(activities, [1, 2, 3], "Create, Update, Close");
    let session = audit[0]["session_id"].as_u64().unwrap();
    for f in &findings {
        assert_eq!(f["finding_info"]["uid"], audit[0]["trace_id"]);
        assert_eq!(f["ai_agent"]["instance_uid"], session.to_string());
    }
    // Create and Update carry the decisions' running score; Close the session's final one.
    assert_eq!(findings[0]["risk_score"], audit[0]["decision"]["score"]);
    assert_eq!(findings[1]["risk_score"], audit[1]["decision"]["score"]);
    let closed = sessions
        .iter()
        .find(|s| s["session_id"] == session && s["session"]["closed_at"].is_string())
        .expect("the session's close in sessions.log");
    assert_eq!(findings[2]["risk_score"], closed["session"]["final_score"]);
    assert_eq!(findings[2]["status_id"], 4);
    assert_eq!(findings[2]["is_alert"], true);
    // Its analytics: the rules that fired, in alert.log.
    let fired: BTreeSet<&str> = alert
        .iter()
        .flat_map(|r| r["decision"]["triggered_rules"].as_array().unwrap())
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let analytics: BTreeSet<&str> = findings[2]["finding_info"]["related_analytics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(analytics, fired);
    // The evidences: the events decided on.
    let evidences = findings[2]["evidences"].as_array().unwrap();
    assert_eq!(evidences.len(), audit.len());
    for (ev, rec) in evidences.iter().zip(&audit) {
        assert_eq!(ev["name"], rec["event"]["type"]);
        assert_eq!(ev["actor"]["session"]["uid"], session.to_string());
    }

    // Deterministic, and the four logs are the same with the OCSF output off.
    let again = d.join("again.jsonl");
    replay(&rec, &rules, &d.join("logs2"), Some(&again));
    assert_eq!(
        std::fs::read(&ocsf).unwrap(),
        std::fs::read(&again).unwrap()
    );
    replay(&rec, &rules, &d.join("plain"), None);
    for log in ["events.log", "sessions.log", "audit.log", "alert.log"] {
        assert_eq!(
            std::fs::read(logs.join(log)).unwrap(),
            std::fs::read(d.join("plain").join(log)).unwrap(),
            "{log}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ocsf_replays_of_the_golden_recordings_are_valid() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recordings");
    let d = scratch("golden");
    let mut findings = 0;
    for name in [
        "benign",
        "connect_then_temp_exec",
        "sensitive_upload",
        "write_exec",
    ] {
        let ocsf = d.join(format!("{name}.jsonl"));
        replay(
            &fixtures.join(format!("{name}.rec")),
            &fixtures.join("rules.test.json"),
            &d.join(name),
            Some(&ocsf),
        );
        let (code, summary) = validate(&ocsf);
        assert_eq!(code, 0, "{name}: OCSF schema validation failed:\n{summary}");
        findings += lines(&ocsf)
            .iter()
            .filter(|e| e["class_uid"] == 2004)
            .count();
    }
    // Three attacks, each one decision: Create and Close.
    assert_eq!(findings, 6);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ocsf_validator_rejects_a_broken_event_and_says_where() {
    let d = scratch("broken");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recordings");
    let ocsf = d.join("ocsf.jsonl");
    replay(
        &fixtures.join("sensitive_upload.rec"),
        &fixtures.join("rules.test.json"),
        &d.join("logs"),
        Some(&ocsf),
    );
    let mut events = lines(&ocsf);
    let finding = events.iter().position(|e| e["class_uid"] == 2004).unwrap();
    events[finding]["finding_info"]
        .as_object_mut()
        .unwrap()
        .remove("uid");
    events[0]["activity_id"] = 42.into();
    let broken = d.join("broken.jsonl");
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&broken, text).unwrap();
    let (code, out) = validate(&broken);
    assert_eq!(code, 1);
    assert!(out.contains(":1: activity_id: 42 is not one of"), "{out}");
    assert!(
        out.contains(&format!(
            ":{}: finding_info: 'uid' is a required property",
            finding + 1
        )),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

use std::path::{Path, PathBuf};

use super::*;
use crate::context::Context;

/// CASA's original ruleset (`rules.casa.json`): these tests pin CASA's behaviour.
fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules.casa.json")
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules.casa")
}

/// casa's own ruleset (`rules.json`) and its fixtures.
fn casa_ruleset() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    (
        root.join("../rules.json"),
        root.join("tests/fixtures/rules"),
    )
}

#[test]
fn casas_own_rules_pass_their_self_test() {
    let (rules, fixtures) = casa_ruleset();
    let set = RuleSet::load(rules).expect("rules.json loads");
    let report = self_test(&set, &fixtures).expect("fixtures readable");
    assert!(report.passed(), "{report}");
}

fn parse(text: &str) -> Result<RuleSet, RulesError> {
    RuleSet::parse(text, "t.json")
}

fn load(text: &str) -> RuleSet {
    match parse(text) {
        Ok(set) => set,
        Err(e) => panic!("unexpected load error: {e}"),
    }
}

/// A document with the given rules (one JSON object per line, starting on line 4).
fn doc(log: i64, alert: i64, rules: &[&str]) -> String {
    format!(
        "{{\n  \"analysis\": {{\"lineage_max_depth\": 6}},\n  \"thresholds\": {{\"log\": {log}, \"alert\": {alert}}},\n  \"rules\": [\n{}\n  ]\n}}\n",
        rules
            .iter()
            .map(|r| format!("    {r}"))
            .collect::<Vec<_>>()
            .join(",\n")
    )
}

fn rule(name: &str, expr: &str, weight: i64) -> String {
    format!(r#"{{"name": "{name}", "expr": "{expr}", "weight": {weight}, "enabled": true}}"#)
}

fn err(text: &str) -> RulesError {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

fn line_col(e: &RulesError) -> (usize, usize) {
    let loc = e.location().expect("located");
    assert_eq!(loc.path, "t.json");
    (loc.line, loc.column)
}

fn ctx_with(f: impl FnOnce(&mut Context)) -> Context {
    let mut c = Context::default();
    f(&mut c);
    c
}

// ---- scoring (§6.2, §15) ----

#[test]
fn decision_counts_each_rule_once_per_session() {
    let set = load(&doc(
        4,
        9,
        &[&rule(
            "opened_deleted_path",
            "history.opened_deleted_path",
            6,
        )],
    ));
    let ctx = ctx_with(|c| c.history.opened_deleted_path = true);
    let mut s = Scorer::new();
    let first = s.evaluate(&set, &ctx);
    assert_eq!(first.increment, 6);
    assert_eq!(first.score, 6);
    assert_eq!(first.action, Action::Log);
    assert_eq!(first.triggered.len(), 1);
    let second = s.evaluate(&set, &ctx);
    assert!(second.triggered.is_empty());
    assert_eq!(second.increment, 0);
    assert_eq!(second.score, 6);
    assert_eq!(second.action, Action::Ignore);
    // Sessions are independent.
    let mut other = Scorer::new();
    assert_eq!(other.evaluate(&set, &ctx).score, 6);
}

#[test]
fn log_and_alert_transitions() {
    let set = load(&doc(
        4,
        9,
        &[
            &rule("a", "history.burst_open", 3),
            &rule("b", "history.burst_exec", 2),
            &rule("c", "history.burst_connect", 5),
        ],
    ));
    let mut s = Scorer::new();
    let d = s.evaluate(&set, &ctx_with(|c| c.history.burst_open = true));
    assert_eq!((d.action, d.score, d.increment), (Action::Ignore, 3, 3));
    assert_eq!(
        d.triggered.len(),
        1,
        "below threshold still records the trigger"
    );
    let d = s.evaluate(
        &set,
        &ctx_with(|c| {
            c.history.burst_open = true;
            c.history.burst_exec = true;
        }),
    );
    assert_eq!((d.action, d.score, d.increment), (Action::Log, 5, 2));
    assert_eq!(d.triggered[0].name, "b");
    assert!(d.crosses_log_threshold() && !d.crosses_alert_threshold());
    let d = s.evaluate(&set, &ctx_with(|c| c.history.burst_connect = true));
    assert_eq!((d.action, d.score, d.increment), (Action::Alert, 10, 5));
    assert!(d.crosses_alert_threshold());
    assert_eq!((d.log_threshold, d.alert_threshold), (4, 9));
}

#[test]
fn no_emission_without_newly_triggered_rules_even_if_score_high() {
    let set = load(&doc(
        1,
        2,
        &[
            &rule("a", "history.burst_open", 50),
            &rule("b", "history.burst_exec", 1),
        ],
    ));
    let mut s = Scorer::new();
    let all = ctx_with(|c| c.history.burst_open = true);
    assert_eq!(s.evaluate(&set, &all).action, Action::Alert);
    for _ in 0..3 {
        let d = s.evaluate(&set, &all);
        assert_eq!(d.action, Action::Ignore);
        assert_eq!(d.score, 50);
        assert!(!d.crosses_alert_threshold() && !d.crosses_log_threshold());
    }
    // A new rule re-emits at the cumulative score.
    let d = s.evaluate(&set, &ctx_with(|c| c.history.burst_exec = true));
    assert_eq!((d.action, d.score, d.increment), (Action::Alert, 51, 1));
    assert_eq!(s.score(), 51);
    assert_eq!(s.triggered_names().collect::<Vec<_>>(), vec!["a", "b"]);
}

#[test]
fn zero_thresholds_emit_on_any_new_rule() {
    let set = load(&doc(0, 0, &[&rule("a", "history.burst_open", 0)]));
    let mut s = Scorer::new();
    let d = s.evaluate(&set, &ctx_with(|c| c.history.burst_open = true));
    assert_eq!((d.action, d.score), (Action::Alert, 0));
    assert_eq!(s.evaluate(&set, &Context::default()).action, Action::Ignore);
}

#[test]
fn decision_serializes_like_casa() {
    let set = load(&doc(
        4,
        9,
        &[
            &rule(
                "write_then_exec_same_path",
                "history.write_then_exec_same_path",
                5,
            ),
            &rule("zero", "history.write_then_exec_same_path", 0),
        ],
    ));
    let mut s = Scorer::new();
    let d = s.evaluate(
        &set,
        &ctx_with(|c| c.history.write_then_exec_same_path = true),
    );
    let json = serde_json::to_value(&d).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "action": "LOG", "score": 5, "log_threshold": 4, "alert_threshold": 9,
            "triggered_rules": [
                {"name": "write_then_exec_same_path", "expr": "history.write_then_exec_same_path", "weight": 5},
                {"name": "zero", "expr": "history.write_then_exec_same_path"}
            ]
        })
    );
    let empty = TriggeredRule {
        name: "n".into(),
        expr: String::new(),
        weight: 0,
    };
    assert_eq!(
        serde_json::to_string(&empty).expect("serializes"),
        r#"{"name":"n"}"#
    );
    for (a, s) in [
        (Action::Ignore, "\"IGNORE\""),
        (Action::Log, "\"LOG\""),
        (Action::Alert, "\"ALERT\""),
    ] {
        assert_eq!(serde_json::to_string(&a).expect("serializes"), s);
        assert_eq!(format!("\"{a}\""), s);
    }
}

#[test]
fn matching_skips_already_triggered_and_keeps_file_order() {
    let set = load(&doc(
        4,
        9,
        &[
            &rule("z", "history.burst_open", 1),
            &rule("a", "history.burst_open || history.burst_exec", 1),
            &rule("m", "!history.burst_open", 1),
        ],
    ));
    let ctx = ctx_with(|c| c.history.burst_open = true);
    let all = set.matching_all(&ctx);
    assert_eq!(set.names(&all).collect::<Vec<_>>(), vec!["z", "a"]);
    let already: RuleBits = [0].into_iter().collect();
    let rest = set.matching(&ctx, &already);
    assert_eq!(set.names(&rest).collect::<Vec<_>>(), vec!["a"]);
    let everything: RuleBits = [0, 1, 2].into_iter().collect();
    assert!(set.matching(&ctx, &everything).is_empty());
}

#[test]
fn runtime_errors_and_non_bools_do_not_match() {
    // Fine on the default context (0 / -1 == 0), division by zero when the count is 1.
    let set = load(&doc(
        4,
        9,
        &[
            &rule(
                "div",
                "capability.dangerous_count / (capability.dangerous_count - 1) >= 0",
                1,
            ),
            &rule("mixed", "capability.dangerous_count == 2 ? 1 : false", 1),
        ],
    ));
    let one = ctx_with(|c| c.capability.dangerous_count = 1);
    assert!(set.matching_all(&one).is_empty());
    let two = ctx_with(|c| c.capability.dangerous_count = 2);
    assert_eq!(
        set.names(&set.matching_all(&two)).collect::<Vec<_>>(),
        vec!["div"]
    );
}

#[test]
fn session_id_is_an_int() {
    let set = load(&doc(4, 9, &[&rule("s", "session_id == 42", 1)]));
    assert!(set.matching_all(&Context::default()).is_empty());
    assert_eq!(set.matching_all(&ctx_with(|c| c.session_id = 42)).len(), 1);
}

#[test]
fn scorer_survives_a_reload_by_rule_name() {
    let old = load(&doc(
        4,
        9,
        &[
            &rule("a", "history.burst_open", 3),
            &rule("b", "history.burst_exec", 3),
        ],
    ));
    let new = load(&doc(
        4,
        9,
        &[
            &rule("c", "history.burst_connect", 1),
            &rule("b", "history.burst_exec", 3),
            &rule("a", "history.burst_open", 3),
        ],
    ));
    let mut s = Scorer::new();
    s.evaluate(&old, &ctx_with(|c| c.history.burst_open = true));
    let d = s.evaluate(
        &new,
        &ctx_with(|c| {
            c.history.burst_open = true;
            c.history.burst_exec = true;
        }),
    );
    assert_eq!(d.triggered.len(), 1);
    assert_eq!(d.triggered[0].name, "b");
    assert_eq!(d.score, 6);
    assert!(s.triggered().contains(2) && s.triggered().contains(1));
}

// ---- the shipped file (§7.1) ----

#[test]
fn shipped_rules_json_loads_as_in_casa() {
    let set = match RuleSet::load(shipped_path()) {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    };
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
    assert_eq!(set.thresholds(), Thresholds { log: 4, alert: 9 });
    let got: Vec<(&str, i64)> = set
        .rules()
        .iter()
        .map(|r| (r.name.as_str(), r.weight))
        .collect();
    assert_eq!(
        got,
        vec![
            ("memfd_or_deleted_exec", 9),
            ("sensitive_file_then_network", 4),
            ("sensitive_file_exfiltration_via_tooling", 5),
            ("sensitive_file_then_suspicious_exec", 6),
            ("download_then_suspicious_exec", 6),
            ("download_then_shell_temp_exec", 4),
            ("write_then_exec_same_path", 5),
            ("write_then_exec_from_suspicious_path", 4),
            ("burst_network_scan", 6),
            ("burst_exec_from_shell", 4),
            ("opened_deleted_path", 5),
            ("dangerous_caps_without_seccomp", 8),
        ]
    );
    assert!(set.disabled_rules().is_empty());
    assert_eq!(
        set.rules()[2].expr,
        "history.sensitive_then_network && (execution.shell_in_chain || execution.interpreter_in_chain || execution.network_tool_in_chain)"
    );
    assert_eq!(
        set.rules()[0].description,
        "Execution from a memfd-backed or deleted binary path."
    );

    let h = set.heuristics();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let d = crate::context::Heuristics::default();
    assert_eq!(
        *h,
        crate::context::Heuristics {
            lineage_max_depth: 6,
            recent_event_limit: 64,
            max_per_process_artifacts: 16,
            deep_chain_threshold: 5,
            burst_open_threshold: 10,
            burst_connect_threshold: 5,
            burst_exec_threshold: 5,
            burst_window_ns: 10_000_000_000,
            sensitive_history_window_ns: 10_000_000_000,
            suspicious_path_patterns: s(&[
                "/tmp/",
                "/var/tmp/",
                "/dev/shm/",
                "/run/user/",
                "/proc/self/fd/",
                "/proc/"
            ]),
            sensitive_path_prefixes: s(&[
                "/root/",
                "/var/run/secrets/",
                "/run/secrets/",
                "/var/lib/kubelet/",
                "/var/lib/docker/",
                "/var/lib/containerd/"
            ]),
            sensitive_path_patterns: s(&[
                "/etc/shadow",
                "/etc/sudoers",
                "/.config/openclaw/",
                "/shadow"
            ]),
            shell_names: d.shell_names.clone(),
            network_tool_names: d.network_tool_names.clone(),
            interpreter_names: d.interpreter_names.clone(),
            container_runtime_names: d.container_runtime_names.clone(),
            dangerous_capabilities: vec![21, 12, 13, 19],
        }
    );
    assert_eq!(
        *set.filters(),
        Filters {
            allowed_loopback_ports: vec![],
            ignored_connect_ips: vec![],
            llm_provider_urls: s(&["https://generativelanguage.googleapis.com"]),
            channel_urls: vec![],
            known_cidrs: vec![],
            configured_connect_refresh_seconds: 300,
        }
    );
}

#[test]
fn shipped_rules_pass_their_self_test() {
    let set = RuleSet::load(shipped_path()).expect("shipped rules load");
    let report = self_test(&set, &fixtures_dir()).expect("fixtures readable");
    assert!(report.passed(), "{report}");
    assert_eq!(report.cases.len(), 12 + 9, "{report}");
    let text = report.to_string();
    assert!(text.ends_with("21 cases, 21 passed, 0 failed\n"), "{text}");
    assert!(
        text.contains("ok   positive memfd_or_deleted_exec ("),
        "{text}"
    );
    assert!(report.notes.is_empty(), "{report}");
}

#[test]
fn self_test_fails_a_rule_without_positive_fixture() {
    let set = load(&doc(
        4,
        9,
        &[
            &rule("opened_deleted_path", "history.opened_deleted_path", 5),
            &rule("no_fixture_rule", "history.burst_open", 1),
            &rule("fires_on_baseline", "!history.burst_open", 1),
        ],
    ));
    let report = self_test(&set, &fixtures_dir()).expect("fixtures readable");
    assert!(!report.passed());
    let failed: Vec<String> = report
        .failures()
        .map(|c| match &c.kind {
            CaseKind::Positive { rule } => format!("positive {rule}"),
            CaseKind::Baseline => "baseline".to_owned(),
        })
        .collect();
    assert!(failed.contains(&"positive no_fixture_rule".to_owned()));
    assert!(failed.contains(&"positive fires_on_baseline".to_owned()));
    assert!(failed.iter().filter(|f| *f == "baseline").count() >= 5);
    assert!(!failed.contains(&"positive opened_deleted_path".to_owned()));
    assert_eq!(report.notes.len(), 11, "{report}");
}

#[test]
fn self_test_reports_bad_fixtures_with_location() {
    let dir = std::env::temp_dir().join(format!("casa-rules-selftest-{}", std::process::id()));
    let positive = dir.join("positive");
    std::fs::create_dir_all(&positive).expect("mkdir");
    std::fs::write(
        positive.join("a.json"),
        "{\n  \"history\": {\n    \"burst_opn\": true\n  }\n}\n",
    )
    .expect("write");
    let set = load(&doc(4, 9, &[&rule("a", "history.burst_open", 1)]));
    let e = self_test(&set, &dir).expect_err("unknown key");
    assert!(matches!(e, RulesError::Fixture { .. }), "{e}");
    assert_eq!(
        e.location().map(|l| (l.line, l.column)),
        Some((3, 5)),
        "{e}"
    );
    // Empty baseline is a failure.
    std::fs::write(
        positive.join("a.json"),
        "{\"history\": {\"burst_open\": true}}",
    )
    .expect("write");
    let report = self_test(&set, &dir).expect("readable");
    assert!(!report.passed());
    assert_eq!(report.failures().count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- legacy conversion (§6.1, §7.4) ----

#[test]
fn legacy_bool_true_and_empty_match_convert_to_the_feature() {
    let set = load(&doc(
        4,
        9,
        &[
            r#"{"name": "a", "feature": "history.connect_then_exec", "match": "bool_true", "weight": 6, "enabled": true}"#,
            r#"{"name": "b", "feature": "execution.deep_chain", "weight": 3, "enabled": true}"#,
        ],
    ));
    assert_eq!(set.rules()[0].expr, "history.connect_then_exec");
    assert_eq!(set.rules()[1].expr, "execution.deep_chain");
    assert_eq!(set.warnings().len(), 2, "{:?}", set.warnings());
    assert!(
        set.warnings()[0].starts_with("t.json:5:"),
        "{:?}",
        set.warnings()
    );
    let ctx = ctx_with(|c| c.history.connect_then_exec = true);
    assert_eq!(
        set.names(&set.matching_all(&ctx)).collect::<Vec<_>>(),
        vec!["a"]
    );
}

#[test]
fn legacy_number_gte() {
    let set = load(&doc(
        4,
        9,
        &[
            r#"{"name": "n", "feature": "capability.dangerous_count", "match": "number_gte", "min_value": 3, "weight": 2, "enabled": true}"#,
            r#"{"name": "f", "feature": "capability.dangerous_count", "match": "number_gte", "min_value": 2.0, "weight": 2, "enabled": true}"#,
        ],
    ));
    assert_eq!(set.rules()[0].expr, "capability.dangerous_count >= 3");
    assert_eq!(set.rules()[1].expr, "capability.dangerous_count >= 2");
    assert_eq!(
        set.matching_all(&ctx_with(|c| c.capability.dangerous_count = 2))
            .len(),
        1
    );
    assert_eq!(
        set.matching_all(&ctx_with(|c| c.capability.dangerous_count = 3))
            .len(),
        2
    );

    let e = err(&doc(
        4,
        9,
        &[
            &rule("ok", "history.burst_open", 1),
            r#"{"name": "n", "feature": "capability.dangerous_count", "match": "number_gte", "weight": 2, "enabled": true}"#,
        ],
    ));
    assert!(
        matches!(e, RulesError::NumberGteWithoutMinValue { index: 1, .. }),
        "{e}"
    );
    assert_eq!(line_col(&e), (6, 69));
    assert!(
        e.to_string()
            .ends_with("rule[1] number_gte requires min_value"),
        "{e}"
    );
}

#[test]
fn legacy_invalid_match_mode() {
    let e = err(&doc(
        4,
        9,
        &[r#"{"name": "n", "feature": "history.burst_open", "match": "regex", "enabled": true}"#],
    ));
    assert!(
        matches!(&e, RulesError::InvalidMatchMode { index: 0, mode, .. } if mode == "regex"),
        "{e}"
    );
    assert_eq!(line_col(&e), (5, 61));
    assert_eq!(
        e.to_string(),
        "t.json:5:61: rule[0] invalid legacy match mode \"regex\""
    );
}

#[test]
fn legacy_features_that_no_longer_exist_are_rejected() {
    // risk_rules.json (§7.4) used `history.connect_count`, removed from the context.
    let e = err(&doc(
        4,
        9,
        &[
            r#"{"name": "n", "feature": "history.connect_count", "match": "number_gte", "min_value": 3, "enabled": true}"#,
        ],
    ));
    assert!(
        matches!(&e, RulesError::UnknownField { field, .. } if field == "history.connect_count"),
        "{e}"
    );
    // Inside the `feature` string, which starts at column 30.
    assert_eq!(line_col(&e), (5, 31));
}

// ---- validation: distinct variants, exact locations ----

#[test]
fn syntax_error() {
    let e = err("{\n  \"thresholds\": {\"log\": 4,, \"alert\": 9}\n}\n");
    assert!(matches!(e, RulesError::Syntax { .. }), "{e}");
    assert_eq!(line_col(&e), (2, 27));
    let e = err("{\n  \"thresholds\": {\"log\": 4\n");
    assert!(matches!(e, RulesError::Syntax { .. }), "{e}");
    assert_eq!(line_col(&e).0, 3);
    let e = err("");
    assert!(matches!(e, RulesError::Syntax { .. }), "{e}");
}

#[test]
fn unknown_key_at_top_level() {
    let e = err("{\n  \"analysis\": {\"lineage_max_depth\": 6},\n  \"treshold\": {}\n}\n");
    assert!(matches!(e, RulesError::UnknownKey { .. }), "{e}");
    assert_eq!(line_col(&e), (3, 3));
    assert!(e.to_string().contains("unknown field `treshold`"), "{e}");
}

#[test]
fn unknown_key_in_analysis() {
    let e = err(
        "{\n  \"analysis\": {\n    \"lineage_max_depth\": 6,\n    \"burst_windw_seconds\": 3\n  }\n}\n",
    );
    assert!(matches!(e, RulesError::UnknownKey { .. }), "{e}");
    assert_eq!(line_col(&e), (4, 5));
}

#[test]
fn unknown_key_in_thresholds() {
    let e = err(
        "{\n  \"analysis\": {\"lineage_max_depth\": 6},\n  \"thresholds\": {\"log\": 1, \"alrt\": 2}\n}\n",
    );
    assert!(matches!(e, RulesError::UnknownKey { .. }), "{e}");
    assert_eq!(line_col(&e), (3, 28));
}

#[test]
fn unknown_key_in_a_rule() {
    let e = err(&doc(
        4,
        9,
        &[
            &rule("a", "history.burst_open", 1),
            r#"{"name": "b", "expr": "history.burst_exec", "wieght": 1, "enabled": true}"#,
        ],
    ));
    assert!(matches!(e, RulesError::UnknownKey { .. }), "{e}");
    assert_eq!(line_col(&e), (6, 49));
    assert!(e.to_string().contains("`wieght`"), "{e}");
}

#[test]
fn wrong_value_types() {
    let e = err(&doc(
        4,
        9,
        &[r#"{"name": "b", "expr": "history.burst_exec", "weight": "1", "enabled": true}"#],
    ));
    assert!(matches!(e, RulesError::InvalidValue { .. }), "{e}");
    assert_eq!(line_col(&e).0, 5);
    let e = err(
        "{\n  \"analysis\": {\"lineage_max_depth\": 6,\n    \"allowed_loopback_ports\": [18000, 70000]}\n}\n",
    );
    assert!(matches!(e, RulesError::InvalidValue { .. }), "{e}");
    assert_eq!(line_col(&e).0, 3);
    let e = err("[]");
    assert!(matches!(e, RulesError::InvalidValue { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "t.json:1:1: invalid type: sequence, expected a rules.json object"
    );
    // serde would take an array as a struct written by position; CASA's decoder would not.
    let e = err("{\n  \"analysis\": {\"lineage_max_depth\": 6},\n  \"thresholds\": [4, 9]\n}");
    assert!(matches!(e, RulesError::InvalidValue { .. }), "{e}");
    assert_eq!(line_col(&e), (3, 17));
    let e = err(&doc(
        4,
        9,
        &["[\"a\", \"\", \"history.burst_open\", 1, true]"],
    ));
    assert!(matches!(e, RulesError::InvalidValue { .. }), "{e}");
    assert_eq!(line_col(&e), (5, 5));
}

#[test]
fn cel_syntax_error_points_into_the_expression() {
    let e = err(&doc(
        4,
        9,
        &[
            &rule("a", "history.burst_open", 1),
            &rule("b", "history.burst_exec &&", 1),
        ],
    ));
    assert!(
        matches!(&e, RulesError::CelSyntax { rule, .. } if rule == "b"),
        "{e}"
    );
    // `"expr": "` starts the value at column 27; the error is past the 21-char expression.
    assert_eq!(line_col(&e), (6, 28 + 21));
    assert!(
        e.to_string()
            .starts_with("t.json:6:49: compile rule \"b\": "),
        "{e}"
    );
}

#[test]
fn unknown_field_is_reported_where_it_is_written() {
    let e = err(&doc(
        4,
        9,
        &[&rule("a", "history.burst_open && execution.nope", 1)],
    ));
    assert!(
        matches!(&e, RulesError::UnknownField { field, rule, .. } if field == "execution.nope" && rule == "a"),
        "{e}"
    );
    assert_eq!(line_col(&e), (5, 28 + 22));

    let e = err(&doc(4, 9, &[&rule("a", "histroy.x", 1)]));
    assert!(
        matches!(&e, RulesError::UnknownField { field, .. } if field == "histroy"),
        "{e}"
    );
    assert_eq!(line_col(&e), (5, 28));
}

#[test]
fn disabled_rules_are_not_compiled() {
    let set = load(&doc(
        4,
        9,
        &[
            r#"{"name": "off", "expr": "execution.nope ((", "weight": 1, "enabled": false}"#,
            &rule("on", "history.burst_open", 1),
        ],
    ));
    assert_eq!(set.rules().len(), 1);
    assert_eq!(set.disabled_rules(), ["off".to_owned()]);
    assert_eq!(set.index_of("on"), Some(0));
    assert_eq!(set.index_of("off"), None);
}

#[test]
fn negative_thresholds() {
    let e = err(&doc(-1, 9, &[]));
    assert!(matches!(e, RulesError::NegativeThreshold { .. }), "{e}");
    assert_eq!(line_col(&e), (3, 25));
    assert_eq!(
        e.to_string(),
        "t.json:3:25: thresholds must be non-negative"
    );
    let e = err(&doc(0, -2, &[]));
    assert!(matches!(e, RulesError::NegativeThreshold { .. }), "{e}");
    assert_eq!(line_col(&e), (3, 37));
}

#[test]
fn alert_below_log() {
    let e = err(&doc(5, 4, &[]));
    assert!(matches!(e, RulesError::AlertBelowLog { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "t.json:3:37: alert threshold must be >= log threshold"
    );
}

#[test]
fn non_boolean_expression() {
    let e = err(&doc(
        4,
        9,
        &[&rule("n", "capability.dangerous_count + 1", 1)],
    ));
    assert!(
        matches!(&e, RulesError::NonBoolean { got, .. } if got == "int"),
        "{e}"
    );
    assert_eq!(line_col(&e), (5, 28));
}

#[test]
fn evaluation_error_on_default_context() {
    let e = err(&doc(
        4,
        9,
        &[&rule(
            "d",
            "capability.dangerous_count / capability.dangerous_count == 1",
            1,
        )],
    ));
    assert!(matches!(e, RulesError::Evaluation { .. }), "{e}");
    assert_eq!(line_col(&e).0, 5);
}

#[test]
fn duplicate_rule_name() {
    let e = err(&doc(
        4,
        9,
        &[
            &rule("a", "history.burst_open", 1),
            &rule("b", "history.burst_open", 1),
            &rule("a", "history.burst_exec", 1),
        ],
    ));
    assert!(
        matches!(&e, RulesError::DuplicateName { index: 2, first: 0, name, .. } if name == "a"),
        "{e}"
    );
    assert_eq!(line_col(&e), (7, 14));
}

#[test]
fn missing_name_and_expr() {
    let e = err(&doc(
        4,
        9,
        &[r#"{"expr": "history.burst_open", "enabled": true}"#],
    ));
    assert!(matches!(e, RulesError::MissingName { index: 0, .. }), "{e}");
    assert_eq!(e.to_string(), "t.json:5:5: rule[0] missing name");
    let e = err(&doc(
        4,
        9,
        &[
            &rule("a", "history.burst_open", 1),
            r#"{"name": "b", "enabled": true}"#,
        ],
    ));
    assert!(matches!(e, RulesError::MissingExpr { index: 1, .. }), "{e}");
    assert_eq!(e.to_string(), "t.json:6:5: rule[1] missing expr");
    let e = err(&doc(
        4,
        9,
        &[r#"{"name": "b", "expr": " ", "enabled": true}"#],
    ));
    assert!(matches!(e, RulesError::MissingExpr { index: 0, .. }), "{e}");
    assert_eq!(line_col(&e), (5, 27));
}

#[test]
fn lineage_max_depth_is_required() {
    let e = err("{\n  \"analysis\": {\n    \"lineage_max_depth\": 0\n  }\n}\n");
    assert!(matches!(e, RulesError::LineageMaxDepth { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "t.json:3:26: analysis.lineage_max_depth must be > 0"
    );
    let e = err("{\n  \"thresholds\": {\"log\": 1, \"alert\": 2}\n}\n");
    assert!(matches!(e, RulesError::LineageMaxDepth { .. }), "{e}");
    assert_eq!(line_col(&e), (1, 1));
}

#[test]
fn invalid_ips_and_cidrs_are_located() {
    let e = err(
        "{\n  \"analysis\": {\n    \"lineage_max_depth\": 6,\n    \"ignored_connect_ips\": [\"10.0.0.1\", \"10.0.0.300\"]\n  }\n}\n",
    );
    assert!(matches!(e, RulesError::InvalidIp { index: 1, .. }), "{e}");
    assert_eq!(line_col(&e), (4, 41));
    let e = err(
        "{\n  \"analysis\": {\n    \"lineage_max_depth\": 6,\n    \"known_cidrs\": [\"10.0.0.0/8\",\n      \"10.0.0.0/40\"]\n  }\n}\n",
    );
    assert!(matches!(e, RulesError::InvalidCidr { .. }), "{e}");
    assert_eq!(line_col(&e), (5, 7));
}

#[test]
fn errors_are_distinct_variants() {
    let cases: Vec<(String, &str)> = vec![
        ("{".into(), "Syntax"),
        ("{\"x\": 1}".into(), "UnknownKey"),
        (doc(4, 9, &[&rule("a", "history.", 1)]), "CelSyntax"),
        (
            doc(4, 9, &[&rule("a", "execution.nope", 1)]),
            "UnknownField",
        ),
        (doc(-1, 9, &[]), "NegativeThreshold"),
        (doc(5, 4, &[]), "AlertBelowLog"),
        (doc(4, 9, &[&rule("a", "session_id", 1)]), "NonBoolean"),
        (
            doc(
                4,
                9,
                &[
                    &rule("a", "history.burst_open", 1),
                    &rule("a", "history.burst_open", 1),
                ],
            ),
            "DuplicateName",
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (text, want) in cases {
        let e = err(&text);
        let got = format!("{e:?}");
        assert!(got.starts_with(want), "{want}: {got}");
        assert!(seen.insert(std::mem::discriminant(&e)));
    }
}

// ---- enabled / analysis defaults ----

#[test]
fn missing_enabled_means_disabled_with_a_warning() {
    let set = load(&doc(
        4,
        9,
        &[
            r#"{"name": "a", "expr": "history.burst_open", "weight": 1}"#,
            &rule("b", "history.burst_exec", 1),
        ],
    ));
    assert_eq!(set.rules().len(), 1);
    assert_eq!(set.rules()[0].name, "b");
    assert_eq!(set.warnings().len(), 1);
    assert!(
        set.warnings()[0].starts_with("t.json:5:5: rule[0] \"a\" has no \"enabled\" key"),
        "{:?}",
        set.warnings()
    );
}

#[test]
fn code_defaults_apply_when_analysis_keys_are_absent_or_zero() {
    let set = load("{\"analysis\": {\"lineage_max_depth\": 3}}");
    let want = crate::context::Heuristics {
        lineage_max_depth: 3,
        ..crate::context::Heuristics::default()
    };
    assert_eq!(*set.heuristics(), want);
    assert_eq!(*set.filters(), Filters::default());
    assert_eq!(set.filters().configured_connect_refresh_seconds, 300);
    assert_eq!(set.thresholds(), Thresholds { log: 0, alert: 0 });
    assert!(set.rules().is_empty());

    let set = load(
        r#"{"analysis": {"lineage_max_depth": 3, "burst_open_threshold": 0, "burst_window_seconds": -4,
            "shell_names": [], "dangerous_capability_names": null, "configured_connect_refresh_seconds": 0,
            "sensitive_history_window_seconds": 2, "interpreter_names": ["python3"]},
           "thresholds": null, "rules": null}"#,
    );
    let h = set.heuristics();
    assert_eq!(h.burst_open_threshold, 8);
    assert_eq!(h.burst_window_ns, 10_000_000_000);
    assert_eq!(h.sensitive_history_window_ns, 2_000_000_000);
    assert_eq!(h.shell_names, want.shell_names);
    assert_eq!(h.interpreter_names, vec!["python3".to_owned()]);
    assert_eq!(h.dangerous_capabilities, vec![21, 12, 13, 19]);
    assert_eq!(set.filters().configured_connect_refresh_seconds, 300);
}

#[test]
fn capability_names_map_to_bits() {
    let set = load(
        "{\"analysis\": {\"lineage_max_depth\": 3,\n \"dangerous_capability_names\": [\"cap_net_raw\", \"Sys_Admin\", \"CAP_NOPE\", \"CAP_NET_RAW\"]}}",
    );
    assert_eq!(set.heuristics().dangerous_capabilities, vec![13, 21]);
    let caps: Vec<&String> = set
        .warnings()
        .iter()
        .filter(|w| w.contains("capability"))
        .collect();
    assert_eq!(caps.len(), 1, "{:?}", set.warnings());
    assert!(
        caps[0].starts_with("t.json:2:61: unknown capability name \"CAP_NOPE\""),
        "{:?}",
        set.warnings()
    );
    assert_eq!(capability_bit("cap_net_raw"), Some(13));
}

#[test]
fn filters_are_parsed() {
    let set = load(
        r#"{"analysis": {"lineage_max_depth": 3, "allowed_loopback_ports": [18000],
            "ignored_connect_ips": ["169.254.169.254", "::ffff:10.0.0.1", "fe80::1"],
            "known_cidrs": ["10.1.2.3/8"], "channel_urls": ["https://api.telegram.org"],
            "configured_connect_refresh_seconds": 60}}"#,
    );
    let f = set.filters();
    assert_eq!(f.allowed_loopback_ports, vec![18000]);
    let ips: Vec<String> = f
        .ignored_connect_ips
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(ips, vec!["169.254.169.254", "10.0.0.1", "fe80::1"]);
    assert_eq!(f.known_cidrs.len(), 1);
    assert_eq!(f.known_cidrs[0].0.to_string(), "10.0.0.0");
    assert_eq!(f.known_cidrs[0].1, 8);
    assert_eq!(f.channel_urls, vec!["https://api.telegram.org".to_owned()]);
    assert_eq!(f.configured_connect_refresh_seconds, 60);
}

// ---- reload summary ----

#[test]
fn describe_changes_lists_rule_and_threshold_changes() {
    let old = load(&doc(
        4,
        9,
        &[
            &rule("a", "history.burst_open", 3),
            &rule("b", "history.burst_exec", 3),
            &rule("c", "history.burst_connect", 3),
            r#"{"name": "d", "expr": "history.opened_deleted_path", "weight": 1, "enabled": false}"#,
        ],
    ));
    let new = load(&doc(
        5,
        9,
        &[
            &rule("a", "history.burst_open", 4),
            &rule("c", "history.burst_connect && execution.shell_in_chain", 3),
            &rule("d", "history.opened_deleted_path", 1),
            &rule("e", "history.burst_exec", 2),
        ],
    ));
    assert_eq!(
        describe_changes(&old, &new),
        vec![
            "log threshold 4 -> 5",
            "removed rule b (weight 3)",
            "reweighted rule a: 3 -> 4",
            "changed expr of rule c: history.burst_connect && execution.shell_in_chain",
            "enabled rule d (weight 1)",
            "added rule e (weight 2)",
        ]
    );
    let same = load(&doc(
        4,
        9,
        &[
            &rule("a", "history.burst_open", 3),
            &rule("b", "history.burst_exec", 3),
            &rule("c", "history.burst_connect", 3),
        ],
    ));
    assert_eq!(
        describe_changes(&old, &same),
        Vec::<String>::new(),
        "disabled d dropped from the file is not an enabled-rule change"
    );
    assert_eq!(same.describe_changes_from(&old), "no changes");
    assert_eq!(
        new.describe_changes_from(&old).split("; ").next(),
        Some("log threshold 4 -> 5")
    );
    assert_eq!(
        old.summary(),
        "3 rules enabled, 1 disabled, thresholds log 4 / alert 9"
    );
    assert_ne!(old.id(), same.id());
    assert_eq!(same.source(), Path::new("t.json"));
}

#[test]
fn rule_set_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuleSet>();
    assert_send_sync::<Scorer>();
}

#[test]
fn load_reports_io_errors() {
    let e = RuleSet::load("/nonexistent/casa/rules.json").expect_err("missing file");
    assert!(matches!(e, RulesError::Io { .. }));
    assert!(e.location().is_none());
    assert!(e.to_string().starts_with("/nonexistent/casa/rules.json: "));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_json_like_input(
            text in r#"[{}\[\],:" a-z0-9_.&|!()\\-]{0,120}"#
        ) {
            let _ = parse(&text);
            let _ = parse(&doc(4, 9, &[&format!(r#"{{"name": "x", "expr": {text:?}, "enabled": true}}"#)]));
        }

        #[test]
        fn matching_agrees_with_single_rule_evaluation(bits in proptest::collection::vec(any::<bool>(), 18), count in -3i64..5) {
            let set = RuleSet::load(shipped_path()).expect("shipped rules load");
            let mut c = Context::default();
            let e = &mut c.execution;
            (e.suspicious_path_exec, e.deep_chain, e.shell_in_chain, e.network_tool_in_chain,
             e.interpreter_in_chain, e.container_runtime_in_chain, e.memfd_or_deleted_exec) =
                (bits[0], bits[1], bits[2], bits[3], bits[4], bits[5], bits[6]);
            let h = &mut c.history;
            (h.connect_then_exec, h.sensitive_then_network, h.sensitive_then_execve, h.burst_open,
             h.burst_connect, h.burst_exec, h.write_then_exec_same_path, h.opened_deleted_path) =
                (bits[7], bits[8], bits[9], bits[10], bits[11], bits[12], bits[13], bits[14]);
            c.capability.has_dangerous_caps = bits[15];
            c.capability.seccomp_disabled = bits[16];
            c.capability.dangerous_count = count;
            let all = set.matching_all(&c);
            // Skipping a subset never changes the verdict of the other rules.
            let skip: RuleBits = (0..set.rules().len()).filter(|i| i % 2 == 0).collect();
            let rest = set.matching(&c, &skip);
            prop_assert_eq!(rest, all.difference(&skip));
            // The one hand-checked rule.
            prop_assert_eq!(all.contains(11), c.capability.has_dangerous_caps && c.capability.seccomp_disabled);
        }
    }
}

#[test]
fn long_operator_chains_are_rejected_before_they_can_overflow_the_stack() {
    // Found by the `rules` fuzz target: `1+1+…` with ~1,000 operands aborted casa.
    let chain = vec!["1"; 1000].join("+") + " > 0";
    let doc = format!(
        "{{\"analysis\": {{\"lineage_max_depth\": 6}},\n \"rules\": [{{\"name\": \"deep\", \"expr\": \"{chain}\", \"weight\": 1, \"enabled\": true}}]}}"
    );
    match RuleSet::parse(&doc, "deep.json") {
        Err(RulesError::TooComplex {
            operators,
            limit,
            loc,
            ..
        }) => {
            assert_eq!(operators, 1000);
            assert_eq!(limit, MAX_OPERATORS);
            assert_eq!(loc.line, 2);
        }
        other => panic!("expected TooComplex, got {other:?}"),
    }
    // The shipped rules (casa's and CASA's) are far below the limit.
    for file in ["/../rules.json", "/../rules.casa.json"] {
        let shipped = RuleSet::load(format!("{}{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        for r in shipped.rules() {
            let n = count_operators(&r.expr);
            assert!(n <= MAX_OPERATORS / 2, "{}: {n} in {}", r.name, r.expr);
        }
    }
    assert_eq!(count_operators("a.b in ['x+y', \"z-w\"] && !c"), 5);
    // The other shapes the fuzzer found: index, method and member chains.
    for expr in [
        format!("[[1]]{} == 1", "[0]".repeat(600)),
        format!("\"x\"{} > 0", ".size()".repeat(600)),
        format!("execution{}", ".a".repeat(6000)),
    ] {
        let doc = format!(
            "{{\"analysis\": {{\"lineage_max_depth\": 6}}, \"rules\": [{{\"name\": \"x\", \"expr\": {}, \"weight\": 1, \"enabled\": true}}]}}",
            serde_json::to_string(&expr).unwrap()
        );
        assert!(matches!(
            RuleSet::parse(&doc, "x.json"),
            Err(RulesError::TooComplex { .. })
        ));
    }
}

mod response_policy {
    use super::*;

    const RULES: &str = r#"{"analysis": {"lineage_max_depth": 4}, "thresholds": {"log": 4, "alert": 9}, "rules": [
        {"name": "shell", "expr": "execution.shell_spawned", "weight": 5},
        {"name": "egress", "expr": "history.new_dest_count > 0", "weight": 5}
    ]"#;

    fn with(response: &str) -> String {
        format!("{RULES}, \"response\": {response}}}")
    }

    #[test]
    fn a_file_without_response_acts_on_nothing_and_prevents_everything_under_enforce() {
        let set = load(&format!("{RULES}}}"));
        let p = set.response();
        assert!(!p.declared);
        assert!(p.due(1_000, ["shell", "egress"]).is_empty());
        assert_eq!(p.prevent.len(), Prevention::ALL.len());
    }

    #[test]
    fn threshold_defaults_to_alert_and_rules_act_whatever_the_score() {
        let set = load(&with(
            r#"{"actions": ["kill"], "rules": {"egress": ["deny_network"]}, "prevent": []}"#,
        ));
        let p = set.response();
        assert!(p.declared);
        assert_eq!(p.threshold, 9);
        assert!(p.prevent.is_empty());
        assert!(p.due(8, ["shell"]).is_empty());
        assert_eq!(
            p.due(8, ["egress"]).into_iter().collect::<Vec<_>>(),
            vec![ResponseAction::DenyNetwork]
        );
        assert_eq!(
            p.due(9, ["egress"]).into_iter().collect::<Vec<_>>(),
            vec![ResponseAction::Kill, ResponseAction::DenyNetwork]
        );
    }

    #[test]
    fn bad_policies_are_located_errors() {
        let e = err(&with(r#"{"actions": ["kil"]}"#));
        assert!(
            e.to_string().contains("unknown response action \"kil\"")
                && e.to_string().contains("kill, deny_network, log_only"),
            "{e}"
        );
        assert!(e.location().is_some_and(|l| l.line > 0), "{e}");
        let e = err(&with(r#"{"rules": {"nope": ["kill"]}}"#));
        assert!(
            e.to_string().contains("unknown response rule \"nope\""),
            "{e}"
        );
        let e = err(&with(r#"{"prevent": ["memfd"]}"#));
        assert!(
            e.to_string()
                .contains("unknown response preventive rule \"memfd\""),
            "{e}"
        );
        let e = err(&with(r#"{"threshold": 0, "actions": ["kill"]}"#));
        assert!(e.to_string().contains("response.threshold"), "{e}");
        let e = err(&with(r#"{"kill": true}"#));
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = err(&with(r#"["kill"]"#));
        assert!(e.to_string().contains("expected an object"), "{e}");
    }
}

//! `casa rules check` on bad input: each mistake gives its own located message and exit 1;
//! the shipped file and its self-test pass.

use std::{path::Path, process::Command};

fn check(name: &str, text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("casa-rules-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_casa"))
        .args(["rules", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (o.status.code().unwrap_or(-1), err)
}

const HEAD: &str = "{\n  \"analysis\": { \"lineage_max_depth\": 6 },\n";

#[test]
fn each_bad_input_is_a_distinct_located_error() {
    let rule = |expr: &str| {
        format!(
            "{HEAD}  \"thresholds\": {{ \"log\": 4, \"alert\": 9 }},\n  \"rules\": [\n    {{ \"name\": \"r\", \"expr\": \"{expr}\", \"weight\": 1, \"enabled\": true }}\n  ]\n}}\n"
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "syntax.json",
            format!("{HEAD}  \"thresholds\": {{ \"log\": 4, \"alert\": 9 }},,\n}}\n"),
            "syntax.json:3:",
        ),
        (
            "unknown-key.json",
            format!(
                "{HEAD}  \"thresholds\": {{ \"log\": 4, \"alert\": 9, \"critical\": 12 }},\n  \"rules\": []\n}}\n"
            ),
            "unknown-key.json:3:",
        ),
        ("cel.json", rule("history.burst_exec &&"), "cel.json:5:"),
        (
            "missing-field.json",
            rule("execution.shell_in_chain && history.nope"),
            "missing-field.json:5:",
        ),
        (
            "negative.json",
            format!(
                "{HEAD}  \"thresholds\": {{ \"log\": -1, \"alert\": 9 }},\n  \"rules\": []\n}}\n"
            ),
            "negative.json:3:",
        ),
        (
            "alert-below-log.json",
            format!(
                "{HEAD}  \"thresholds\": {{ \"log\": 9, \"alert\": 4 }},\n  \"rules\": []\n}}\n"
            ),
            "alert-below-log.json:3:",
        ),
    ];
    let mut messages = Vec::new();
    for (name, text, location) in &cases {
        let (code, err) = check(name, text);
        assert_eq!(code, 1, "{name}: exit {code}\n{err}");
        assert!(
            err.contains(location),
            "{name}: error does not point at {location}: {err}"
        );
        // The message after the location identifies the kind of mistake.
        let msg = err
            .split_once(location)
            .map(|(_, m)| m.split_once(' ').map_or(m, |(_, r)| r))
            .unwrap_or("")
            .trim()
            .to_owned();
        messages.push((name.to_string(), msg));
    }
    let (_, neg) = &messages[4];
    assert!(neg.contains("thresholds must be non-negative"), "{neg}");
    let (_, below) = &messages[5];
    assert!(
        below.contains("alert threshold must be >= log threshold"),
        "{below}"
    );
    let (_, unknown) = &messages[1];
    assert!(unknown.contains("critical"), "{unknown}");
    let (_, missing) = &messages[3];
    assert!(missing.contains("nope"), "{missing}");
    for i in 0..messages.len() {
        for j in i + 1..messages.len() {
            assert_ne!(
                messages[i].1, messages[j].1,
                "{} and {} give the same message",
                messages[i].0, messages[j].0
            );
        }
    }
}

/// `rules check` and `rules test` on one shipped ruleset with its fixture directory.
fn check_and_self_test(rules: &str, fixtures: &str, enabled: usize, cases: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_casa"))
        .current_dir(root)
        .args(["rules", "check", rules])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!(
            "{enabled} rules enabled, 0 disabled, thresholds log 4 / alert 9"
        )),
        "{out}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_casa"))
        .current_dir(root)
        .args(["rules", "test", "--rules", rules, "--fixtures", fixtures])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&format!("{cases} passed, 0 failed")), "{out}");
    // Every enabled rule was checked against a positive fixture (no "not checked" notes for
    // a rule of this file, no rule without a fixture).
    assert!(!out.contains("no positive fixture"), "{out}");
}

#[test]
fn shipped_rules_check_and_self_test_pass() {
    // casa's own ruleset: 36 rules, each with a positive fixture; 13 baselines.
    check_and_self_test("rules.json", "casa/tests/fixtures/rules", 36, 49);
}

#[test]
fn casa_original_rules_check_and_self_test_pass() {
    // CASA's ruleset, kept for CASA users: 12 rules, 9 baselines.
    check_and_self_test("rules.casa.json", "casa/tests/fixtures/rules.casa", 12, 21);
}

#[test]
fn readme_documents_every_shipped_rule_with_its_weight_and_expression() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let begin = readme
        .find("<!-- shipped-rules:begin")
        .expect("README has the shipped-rules block");
    let end = readme.find("<!-- shipped-rules:end -->").unwrap();
    let block = &readme[begin..end];
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("rules.json")).unwrap()).unwrap();
    let rules = doc["rules"].as_array().unwrap();
    for r in rules {
        let (name, weight) = (r["name"].as_str().unwrap(), r["weight"].as_i64().unwrap());
        let expr = r["expr"].as_str().unwrap().replace('|', "\\|");
        let row = format!("| `{name}` | {weight} | `{expr}` |");
        assert!(
            block.contains(&row),
            "README's rule table lacks or misstates {name} (want a row starting {row}); \
             regenerate it from rules.json"
        );
        // Every shipped rule names the ATT&CK technique(s) it detects.
        let description = r["description"].as_str().unwrap();
        assert!(description.contains("ATT&CK T"), "{name}: {description}");
    }
    assert_eq!(
        block.lines().filter(|l| l.starts_with("| `")).count(),
        rules.len(),
        "README lists a rule rules.json does not have"
    );
}

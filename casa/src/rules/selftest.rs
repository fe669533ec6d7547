//! Rule self-test (`casa rules test`): every enabled rule must fire on its positive fixture
//! (`<dir>/positive/<rule name>.json`), and no rule may fire on a baseline fixture
//! (`<dir>/baseline/*.json`).
//!
//! A fixture is a [`Context`] as JSON, `{"execution":{...},"capability":{...},
//! "history":{...}}` (optionally `"session_id"`), read through the context definition's own
//! `Deserialize`: missing fields are false / 0, unknown keys are errors.
//!
//! The tests run the same check on fixtures generated from the context definition (one rule
//! and one positive fixture per field, and the all-default baseline): a field the fixture
//! parser, the rule loader or the CEL activation does not know fails there.

use std::fmt;
use std::path::{Path, PathBuf};

use super::eval::RuleBits;
use super::locate::Source;
use super::{RuleSet, RulesError};
use crate::context::Context;

/// Reads a fixture file into a [`Context`]; errors are located like rules.json errors.
pub fn load_fixture(path: &Path) -> Result<Context, RulesError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
        path: shown.clone(),
        source,
    })?;
    parse_fixture(&shown, &text)
}

/// Parses fixture text (`shown` names it in errors).
fn parse_fixture(shown: &str, text: &str) -> Result<Context, RulesError> {
    let src = Source::new(shown, text);
    serde_json::from_str::<Context>(text).map_err(|e| {
        let located = super::json_error(&src, &e);
        RulesError::Fixture {
            loc: located.location().cloned().unwrap_or_else(|| src.at(0)),
            message: super::serde_message(&e),
        }
    })
}

/// What a self-test case checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseKind {
    /// The rule must fire on `positive/<rule>.json`.
    Positive { rule: String },
    /// No rule may fire on this baseline fixture.
    Baseline,
}

/// One checked fixture (or one missing one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTestCase {
    pub kind: CaseKind,
    pub fixture: PathBuf,
    pub passed: bool,
    /// What fired (or that the fixture is missing).
    pub detail: String,
}

/// The outcome of [`self_test`]. `Display` prints one line per case and a closing count line
/// (each newline-terminated).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelfTestReport {
    pub cases: Vec<SelfTestCase>,
    /// Informational: positive fixtures whose rule is not an enabled rule of the set.
    pub notes: Vec<String>,
}

impl SelfTestReport {
    /// True when every case passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.cases.is_empty() && self.cases.iter().all(|c| c.passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &SelfTestCase> {
        self.cases.iter().filter(|c| !c.passed)
    }
}

impl fmt::Display for SelfTestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cases {
            let verdict = if c.passed { "ok  " } else { "FAIL" };
            let what = match &c.kind {
                CaseKind::Positive { rule } => format!("positive {rule}"),
                CaseKind::Baseline => "baseline".to_owned(),
            };
            writeln!(
                f,
                "{verdict} {what} ({}): {}",
                c.fixture.display(),
                c.detail
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note {n}")?;
        }
        let failed = self.failures().count();
        writeln!(
            f,
            "{} cases, {} passed, {failed} failed",
            self.cases.len(),
            self.cases.len() - failed
        )
    }
}

fn fired(set: &RuleSet, bits: &RuleBits) -> String {
    let names: Vec<&str> = set.names(bits).collect();
    if names.is_empty() {
        "no rule fired".to_owned()
    } else {
        format!("fired: {}", names.join(", "))
    }
}

/// `*.json` files of a directory, sorted; a missing directory is empty.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, RulesError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RulesError::Io {
                path: dir.display().to_string(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| RulesError::Io {
                path: dir.display().to_string(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|x| x == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Runs every enabled rule of `set` against its positive fixture and every rule against the
/// baseline fixtures under `fixtures_dir`. A rule without a positive fixture, and an empty
/// baseline, are failures; an unreadable fixture is an error.
pub fn self_test(set: &RuleSet, fixtures_dir: &Path) -> Result<SelfTestReport, RulesError> {
    let mut report = SelfTestReport::default();
    let positive = fixtures_dir.join("positive");
    for (i, rule) in set.rules().iter().enumerate() {
        let fixture = positive.join(format!("{}.json", rule.name));
        let kind = CaseKind::Positive {
            rule: rule.name.clone(),
        };
        if !fixture.is_file() {
            report.cases.push(SelfTestCase {
                kind,
                fixture,
                passed: false,
                detail: "no positive fixture".to_owned(),
            });
            continue;
        }
        let ctx = load_fixture(&fixture)?;
        let matched = set.matching_all(&ctx);
        report.cases.push(SelfTestCase {
            kind,
            fixture,
            passed: matched.contains(i),
            detail: fired(set, &matched),
        });
    }
    for path in json_files(&positive)? {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        if stem.as_deref().and_then(|s| set.index_of(s)).is_none() {
            report.notes.push(format!(
                "{}: no enabled rule of that name: not checked",
                path.display()
            ));
        }
    }
    let baseline_dir = fixtures_dir.join("baseline");
    let baseline = json_files(&baseline_dir)?;
    if baseline.is_empty() {
        report.cases.push(SelfTestCase {
            kind: CaseKind::Baseline,
            fixture: baseline_dir,
            passed: false,
            detail: "no baseline fixtures".to_owned(),
        });
    }
    for fixture in baseline {
        let ctx = load_fixture(&fixture)?;
        let matched = set.matching_all(&ctx);
        report.cases.push(SelfTestCase {
            kind: CaseKind::Baseline,
            fixture,
            passed: matched.is_empty(),
            detail: fired(set, &matched),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Field, baseline_fixture};

    /// The rule [`field_self_test`] uses for a context field: named after the field's CEL path
    /// (`history.burst_exec`), true exactly when the field is not at its default.
    fn field_rule(f: &Field) -> serde_json::Value {
        serde_json::json!({
            "name": f.path,
            "description": f.meaning(),
            "expr": f.positive_expr(),
            "weight": 1,
            "enabled": true,
        })
    }

    /// One [`field_rule`] per field, loaded like a rules file.
    fn field_rule_set(fields: &[&Field]) -> Result<RuleSet, RulesError> {
        let rules = serde_json::json!({
            "analysis": {"lineage_max_depth": 6},
            "thresholds": {"log": 1, "alert": 2},
            "rules": fields.iter().map(|f| field_rule(f)).collect::<Vec<_>>(),
        });
        RuleSet::parse(&rules.to_string(), "<context definition>")
    }

    /// The self-test of the context definition itself: one rule per field of the definition
    /// ([`Field::positive_expr`]), each of which must fire, alone, on its field's generated
    /// positive fixture ([`Field::positive_fixture`]), and none on the generated baseline
    /// ([`baseline_fixture`]). The fixtures go through the same parser as fixture files and the
    /// rules through the same loader and CEL activation as `rules.json`, so a field that one of
    /// them does not know fails here.
    fn field_self_test() -> Result<SelfTestReport, RulesError> {
        let fields: Vec<&Field> = Context::GROUPS.iter().flat_map(|g| g.fields).collect();
        let set = field_rule_set(&fields)?;
        let mut report = SelfTestReport::default();
        for f in &fields {
            let shown = format!("<positive fixture of {}>", f.path);
            let ctx = parse_fixture(&shown, &f.positive_fixture().to_string())?;
            let matched = set.matching_all(&ctx);
            let alone: RuleBits = set.index_of(f.path).into_iter().collect();
            report.cases.push(SelfTestCase {
                kind: CaseKind::Positive {
                    rule: f.path.to_owned(),
                },
                fixture: PathBuf::from(shown),
                passed: !alone.is_empty() && matched == alone,
                detail: fired(&set, &matched),
            });
        }
        let shown = "<baseline fixture>";
        let ctx = parse_fixture(shown, &baseline_fixture().to_string())?;
        let matched = set.matching_all(&ctx);
        report.cases.push(SelfTestCase {
            kind: CaseKind::Baseline,
            fixture: PathBuf::from(shown),
            passed: matched.is_empty(),
            detail: fired(&set, &matched),
        });
        Ok(report)
    }

    #[test]
    fn every_field_of_the_definition_passes_its_self_test() {
        let report = field_self_test().expect("generated rules and fixtures load");
        let fields = Context::GROUPS
            .iter()
            .map(|g| g.fields.len())
            .sum::<usize>();
        assert_eq!(report.cases.len(), fields + 1, "{report}");
        assert!(report.passed(), "{report}");
    }

    #[test]
    fn a_fixture_setting_two_fields_fails_the_field_check() {
        // The check is exact: a rule firing on another field's fixture is a failure.
        let fields: Vec<&Field> = Context::GROUPS.iter().flat_map(|g| g.fields).collect();
        let set = field_rule_set(&fields).expect("loads");
        let ctx = parse_fixture(
            "x",
            r#"{"history": {"burst_exec": true}, "execution": {"deep_chain": true}}"#,
        )
        .expect("parses");
        let matched = set.matching_all(&ctx);
        assert_eq!(matched.len(), 2);
        let alone: RuleBits = set.index_of("history.burst_exec").into_iter().collect();
        assert_ne!(matched, alone);
    }

    #[test]
    fn fixtures_reject_internal_and_unknown_fields() {
        for text in [
            r#"{"capability": {"capability_unknown": true}}"#,
            r#"{"history": {"burst_opn": true}}"#,
            r#"{"histroy": {}}"#,
        ] {
            let e = parse_fixture("f.json", text).expect_err(text);
            assert!(matches!(e, RulesError::Fixture { .. }), "{e}");
            assert!(e.to_string().contains("unknown field"), "{e}");
        }
    }
}

//! Rule self-test (`casa rules test`): every enabled rule must fire on its positive fixture
//! (`<dir>/positive/<rule name>.json`), and no rule may fire on a baseline fixture
//! (`<dir>/baseline/*.json`).
//!
//! A fixture is a `Context`-shaped object, `{"execution":{...},"capability":{...},
//! "history":{...}}` (optionally `"session_id"`); missing fields are false / 0, unknown keys
//! are errors.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::eval::RuleBits;
use super::locate::Source;
use super::{RuleSet, RulesError};
use crate::context::{Capability, Context, Execution, History};

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a context object")]
struct FixtureContext {
    session_id: u64,
    execution: FixtureExecution,
    capability: FixtureCapability,
    history: FixtureHistory,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FixtureExecution {
    suspicious_path_exec: bool,
    deep_chain: bool,
    shell_in_chain: bool,
    network_tool_in_chain: bool,
    interpreter_in_chain: bool,
    container_runtime_in_chain: bool,
    memfd_or_deleted_exec: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FixtureCapability {
    has_dangerous_caps: bool,
    dangerous_count: i64,
    seccomp_disabled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FixtureHistory {
    connect_then_exec: bool,
    sensitive_then_network: bool,
    sensitive_then_execve: bool,
    burst_open: bool,
    burst_connect: bool,
    burst_exec: bool,
    write_then_exec_same_path: bool,
    opened_deleted_path: bool,
}

impl From<FixtureContext> for Context {
    fn from(f: FixtureContext) -> Self {
        let e = f.execution;
        let c = f.capability;
        let h = f.history;
        Context {
            session_id: f.session_id,
            execution: Execution {
                suspicious_path_exec: e.suspicious_path_exec,
                deep_chain: e.deep_chain,
                shell_in_chain: e.shell_in_chain,
                network_tool_in_chain: e.network_tool_in_chain,
                interpreter_in_chain: e.interpreter_in_chain,
                container_runtime_in_chain: e.container_runtime_in_chain,
                memfd_or_deleted_exec: e.memfd_or_deleted_exec,
            },
            capability: Capability {
                has_dangerous_caps: c.has_dangerous_caps,
                dangerous_count: c.dangerous_count,
                seccomp_disabled: c.seccomp_disabled,
                capability_unknown: false,
            },
            history: History {
                connect_then_exec: h.connect_then_exec,
                sensitive_then_network: h.sensitive_then_network,
                sensitive_then_execve: h.sensitive_then_execve,
                burst_open: h.burst_open,
                burst_connect: h.burst_connect,
                burst_exec: h.burst_exec,
                write_then_exec_same_path: h.write_then_exec_same_path,
                opened_deleted_path: h.opened_deleted_path,
            },
        }
    }
}

/// Reads a fixture file into a [`Context`]; errors are located like rules.json errors.
pub fn load_fixture(path: &Path) -> Result<Context, RulesError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
        path: shown.clone(),
        source,
    })?;
    let src = Source::new(&shown, &text);
    serde_json::from_str::<FixtureContext>(&text)
        .map(Context::from)
        .map_err(|e| {
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

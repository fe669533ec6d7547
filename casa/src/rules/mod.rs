//! Rules: `rules.json` (CASA format), CEL compilation and evaluation, per-session scoring.
//!
//! ```text
//! rules.json ──RuleSet::load──▶ RuleSet { thresholds, rules (CEL), heuristics, filters }
//!                                  │            │                      │
//!   context stage ◀── heuristics ──┘            │                      └──▶ pipeline gates
//!   (context::Heuristics)                       ▼                           (Filters)
//! context::Context ──▶ RuleSet::matching ──▶ RuleBits ──▶ Scorer::decide ──▶ Decision ──▶ sinks
//!                      (skips rules already triggered       (per session)     (IGNORE/LOG/ALERT)
//!                       in the session)
//! ```
//!
//! This module sits after context derivation and before the audit/alert sinks. It accepts the
//! original CASA's `rules.json` unchanged (reference §6.1, §7): the CEL form (`expr`) and the
//! legacy one (`feature` / `match` / `min_value`), the same thresholds and `analysis` knobs, the
//! same validation messages. It is stricter where the original was silent, and every error says
//! `path:line:col`: unknown keys at any level are rejected, and an expression that references a
//! variable or field the context does not have (`execution.nope`, `histroy.x`) or that does not
//! yield a bool is a load error instead of a rule that can never fire.
//!
//! Scoring follows §6.2: each rule counts once per session, and an event is logged or alerted
//! only when it newly triggers a rule.

mod analysis;
mod config;
mod error;
mod eval;
mod locate;
pub mod response;
mod score;
mod selftest;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cel::{Env, Program, Value};
use serde::Serialize;

pub use analysis::{DEFAULT_CONNECT_REFRESH_SECONDS, Filters, capability_bit, capability_name};
pub use error::{Location, RulesError};
pub use eval::{CAPABILITY_FIELDS, EXECUTION_FIELDS, HISTORY_FIELDS, RuleBits, VARIABLES};
pub use response::{Prevention, ResponseAction, ResponsePolicy};
pub use score::{Action, Decision, Scorer, TriggeredRule};
pub use selftest::{CaseKind, SelfTestCase, SelfTestReport, load_fixture, self_test};

use crate::context::{Context, Heuristics};
use config::{RawConfig, RawRule};
use locate::Source;

/// `thresholds` of `rules.json`: cumulative session scores at which an event is logged
/// (audit.log) and alerted (alert.log as well).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    pub log: i64,
    pub alert: i64,
}

/// An enabled, compiled rule.
pub struct Rule {
    pub name: String,
    pub description: String,
    /// The CEL expression (for a legacy rule, the one converted from `feature`/`match`).
    pub expr: String,
    pub weight: i64,
    program: Program,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("expr", &self.expr)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

static NEXT_SET_ID: AtomicU64 = AtomicU64::new(1);

/// A loaded, validated and compiled `rules.json`. Immutable: a reload builds a new one
/// (share it behind an `Arc` and swap on SIGHUP).
pub struct RuleSet {
    id: u64,
    source: PathBuf,
    thresholds: Thresholds,
    rules: Vec<Rule>,
    disabled: Vec<String>,
    heuristics: Heuristics,
    filters: Filters,
    response: ResponsePolicy,
    warnings: Vec<String>,
    env: Arc<Env>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("source", &self.source)
            .field("thresholds", &self.thresholds)
            .field("rules", &self.rules)
            .field("disabled", &self.disabled)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// Removes serde_json's ` at line L column C` suffix (the location is reported separately).
fn serde_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

fn json_error(src: &Source<'_>, e: &serde_json::Error) -> RulesError {
    let message = serde_message(e);
    match e.classify() {
        serde_json::error::Category::Data if message.starts_with("unknown field") => {
            RulesError::UnknownKey {
                loc: src.key_start(e.line(), e.column()),
                message,
            }
        }
        serde_json::error::Category::Data => RulesError::InvalidValue {
            loc: src.at_serde(e.line(), e.column()),
            message,
        },
        _ => RulesError::Syntax {
            loc: src.at_serde(e.line(), e.column()),
            message,
        },
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "sequence",
        serde_json::Value::Object(_) => "map",
    }
}

/// serde's derived structs also accept a JSON array (fields by position); CASA's decoder does
/// not, and neither does casa: every object of the format must be written as an object.
fn check_shapes(text: &str, src: &Source<'_>) -> Result<(), RulesError> {
    use serde_json::Value as J;
    let doc: J = serde_json::from_str(text).map_err(|e| json_error(src, &e))?;
    let bad = |path: &str, v: &J, want: &str| RulesError::InvalidValue {
        loc: src.locate(path),
        message: format!("invalid type: {}, expected {want}", json_kind(v)),
    };
    let J::Object(top) = &doc else {
        return Err(bad("", &doc, "a rules.json object"));
    };
    for key in ["analysis", "thresholds", "response"] {
        if let Some(v) = top.get(key).filter(|v| !v.is_object() && !v.is_null()) {
            return Err(bad(key, v, "an object"));
        }
    }
    match top.get("rules") {
        Some(J::Array(rules)) => {
            for (i, r) in rules.iter().enumerate() {
                if !r.is_object() {
                    return Err(bad(&format!("rules[{i}]"), r, "a rule object"));
                }
            }
        }
        Some(v) if !v.is_null() => return Err(bad("rules", v, "an array of rules")),
        _ => {}
    }
    Ok(())
}

fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|s| s.trim().is_empty())
}

/// Go's `%v` of a JSON number: integral floats print without a fraction (`3.0` → `3`).
fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

/// A rule after validation, before compilation.
struct Checked {
    name: String,
    description: String,
    expr: String,
    weight: i64,
    enabled: bool,
    /// JSON path of the string the expression comes from (`rules[i].expr` or `.feature`).
    expr_path: String,
}

/// CASA's validation and legacy conversion of one rule.
fn check_rule(
    index: usize,
    r: &RawRule,
    src: &Source<'_>,
    warnings: &mut Vec<String>,
) -> Result<Checked, RulesError> {
    let at = |key: &str| src.locate(&format!("rules[{index}]{key}"));
    let name = match &r.name {
        Some(n) if !n.trim().is_empty() => n.clone(),
        Some(_) => {
            return Err(RulesError::MissingName {
                loc: at(".name"),
                index,
            });
        }
        None => return Err(RulesError::MissingName { loc: at(""), index }),
    };
    let (expr, expr_path) = if !blank(&r.expr) {
        if !blank(&r.feature) {
            warnings.push(format!(
                "{}: rule[{index}] {name:?} has both \"expr\" and \"feature\": \"feature\" ignored",
                at(".feature")
            ));
        }
        (
            r.expr.clone().unwrap_or_default(),
            format!("rules[{index}].expr"),
        )
    } else if let Some(feature) = r.feature.as_deref().filter(|f| !f.trim().is_empty()) {
        let expr = match r.match_mode.as_deref().unwrap_or("") {
            "" | "bool_true" => feature.to_owned(),
            "number_gte" => match &r.min_value {
                Some(min) => format!("{feature} >= {}", number_text(min)),
                None => {
                    return Err(RulesError::NumberGteWithoutMinValue {
                        loc: at(".match"),
                        index,
                    });
                }
            },
            other => {
                return Err(RulesError::InvalidMatchMode {
                    loc: at(".match"),
                    index,
                    mode: other.to_owned(),
                });
            }
        };
        warnings.push(format!(
            "{}: rule[{index}] {name:?} uses the legacy feature/match form: converted to expr {expr:?}",
            at(".feature")
        ));
        (expr, format!("rules[{index}].feature"))
    } else {
        let loc = if r.expr.is_some() {
            at(".expr")
        } else {
            at("")
        };
        return Err(RulesError::MissingExpr { loc, index });
    };
    let enabled = match r.enabled {
        Some(e) => e,
        None => {
            warnings.push(format!(
                "{}: rule[{index}] {name:?} has no \"enabled\" key: it is disabled \
                 (as in the original); add \"enabled\": true to use it",
                at("")
            ));
            false
        }
    };
    Ok(Checked {
        name,
        description: r.description.clone().unwrap_or_default(),
        expr,
        weight: r.weight.unwrap_or(0),
        enabled,
        expr_path,
    })
}

/// The location of character `char_index` of rule `c`'s expression in the file.
fn expr_loc(src: &Source<'_>, c: &Checked, char_index: usize) -> Location {
    src.locate_in_string(&c.expr_path, char_index)
}

/// Character index of a CEL parser position (1-based line and character column).
fn char_index_of(expr: &str, line: isize, col: isize) -> usize {
    let line = usize::try_from(line).unwrap_or(1).max(1);
    let col = usize::try_from(col).unwrap_or(1).max(1);
    let mut index = 0;
    for (n, l) in expr.split_inclusive('\n').enumerate() {
        if n + 1 == line {
            return index + (col - 1).min(l.chars().count());
        }
        index += l.chars().count();
    }
    index
}

/// Compiles one rule and proves it usable: every reference exists, and on an all-default
/// context it evaluates, to a bool.
/// Most operators and accessors one rule expression may have. The `cel` parser and
/// interpreter recurse once per binary operator, member access, index and call, so a long
/// chain (`1+1+…`, `a.a.a…`, `x[0][0]…`, `f().f()…`; a few hundred links) overflows the stack
/// and aborts the process — a panic handler cannot catch that. The shipped rules use at most
/// ten.
pub const MAX_OPERATORS: usize = 64;

/// Count operator and accessor tokens (`+ - * / % ! == != < <= > >= && || ? :`, `in`, `.`,
/// `[`, `(`) outside string literals: an upper bound on the expression's nesting depth.
pub fn count_operators(expr: &str) -> usize {
    let b = expr.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'&' | b'|' | b'=' if b.get(i + 1) == Some(&b[i]) => {
                n += 1;
                i += 1;
            }
            b'<' | b'>' | b'!' if b.get(i + 1) == Some(&b'=') => {
                n += 1;
                i += 1;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'!' | b'?' | b':' | b'.' | b'['
            | b'(' => n += 1,
            b'i' if b.get(i + 1) == Some(&b'n')
                && (i == 0
                    || !(b[i - 1].is_ascii_alphanumeric()
                        || b[i - 1] == b'_'
                        || b[i - 1] == b'.'))
                && !b
                    .get(i + 2)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') =>
            {
                n += 1;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    n
}

fn compile_rule(
    env: &Arc<Env>,
    c: &Checked,
    src: &Source<'_>,
    default_act: &cel::Context<'_, '_>,
) -> Result<Rule, RulesError> {
    let operators = count_operators(&c.expr);
    if operators > MAX_OPERATORS {
        return Err(RulesError::TooComplex {
            loc: expr_loc(src, c, 0),
            rule: c.name.clone(),
            operators,
            limit: MAX_OPERATORS,
        });
    }
    let program = eval::compile(env, &c.expr).map_err(|e| {
        let first = e.errors.first();
        let (line, col) = first.map_or((1, 1), |f| f.pos);
        let mut message = first.map_or_else(|| e.to_string(), |f| f.msg.clone());
        if e.errors.len() > 1 {
            message.push_str(&format!(" (and {} more)", e.errors.len() - 1));
        }
        RulesError::CelSyntax {
            loc: expr_loc(src, c, char_index_of(&c.expr, line, col)),
            rule: c.name.clone(),
            message,
        }
    })?;
    if let Some(bad) = eval::check_references(&program) {
        let chars = c.expr.get(..bad.offset).map_or(0, |s| s.chars().count());
        return Err(RulesError::UnknownField {
            loc: expr_loc(src, c, chars),
            rule: c.name.clone(),
            field: bad.field,
            message: bad.message,
        });
    }
    match eval::execute(&program, default_act) {
        Ok(Value::Bool(_)) => {}
        Ok(other) => {
            return Err(RulesError::NonBoolean {
                loc: expr_loc(src, c, 0),
                rule: c.name.clone(),
                got: other.type_of().to_string(),
            });
        }
        Err(message) => {
            return Err(RulesError::Evaluation {
                loc: expr_loc(src, c, 0),
                rule: c.name.clone(),
                message,
            });
        }
    }
    Ok(Rule {
        name: c.name.clone(),
        description: c.description.clone(),
        expr: c.expr.clone(),
        weight: c.weight,
        program,
    })
}

impl RuleSet {
    /// Reads and loads a `rules.json`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, RulesError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Loads a `rules.json` from text; `path` is only used in messages and [`Self::source`].
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Self, RulesError> {
        let source = path.as_ref().to_path_buf();
        let shown = source.display().to_string();
        let src = Source::new(&shown, text);
        check_shapes(text, &src)?;
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| json_error(&src, &e))?;
        let mut warnings = Vec::new();

        let analysis = raw.analysis.unwrap_or_default();
        if analysis.lineage_max_depth.is_none_or(|d| d <= 0) {
            return Err(RulesError::LineageMaxDepth {
                loc: src.locate("analysis.lineage_max_depth"),
            });
        }

        let t = raw.thresholds.unwrap_or_default();
        let thresholds = Thresholds {
            log: t.log.unwrap_or(0),
            alert: t.alert.unwrap_or(0),
        };
        if thresholds.log < 0 || thresholds.alert < 0 {
            let key = if thresholds.log < 0 { "log" } else { "alert" };
            return Err(RulesError::NegativeThreshold {
                loc: src.locate(&format!("thresholds.{key}")),
            });
        }
        if thresholds.alert < thresholds.log {
            return Err(RulesError::AlertBelowLog {
                loc: src.locate("thresholds.alert"),
            });
        }

        let mut checked = Vec::new();
        let mut first_use: HashMap<String, usize> = HashMap::new();
        for (index, r) in raw.rules.iter().flatten().enumerate() {
            let c = check_rule(index, r, &src, &mut warnings)?;
            if let Some(&first) = first_use.get(&c.name) {
                return Err(RulesError::DuplicateName {
                    loc: src.locate(&format!("rules[{index}].name")),
                    index,
                    name: c.name,
                    first,
                });
            }
            first_use.insert(c.name.clone(), index);
            checked.push(c);
        }

        let names: std::collections::BTreeSet<&str> =
            checked.iter().map(|c| c.name.as_str()).collect();
        let response = ResponsePolicy::check(raw.response, thresholds.alert, &names, &src)?;
        let heuristics = analysis::heuristics(&analysis, &src, &mut warnings);
        let filters = analysis::filters(&analysis, &src)?;

        let env = Arc::new(Env::stdlib());
        let default_act = eval::activation(&env, &Context::default());
        let mut rules = Vec::new();
        let mut disabled = Vec::new();
        for c in &checked {
            if c.enabled {
                rules.push(compile_rule(&env, c, &src, &default_act)?);
            } else {
                disabled.push(c.name.clone());
            }
        }
        if rules.is_empty() {
            warnings.push(format!(
                "{}: no enabled rules: nothing will ever be logged",
                src.locate("rules")
            ));
        }

        Ok(Self {
            id: NEXT_SET_ID.fetch_add(1, Ordering::Relaxed),
            source,
            thresholds,
            rules,
            disabled,
            heuristics,
            filters,
            response,
            warnings,
            env,
        })
    }

    /// The response policy (`response` in `rules.json`; empty when absent).
    pub fn response(&self) -> &ResponsePolicy {
        &self.response
    }

    /// A process-unique identity of this load (a reload gets a new one).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The file this set was loaded from (or the name given to [`Self::parse`]).
    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// The enabled rules, in file order; [`RuleBits`] indices refer to this slice.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Names of the rules present in the file but disabled (not compiled).
    pub fn disabled_rules(&self) -> &[String] {
        &self.disabled
    }

    /// Index of an enabled rule by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.name == name)
    }

    /// `analysis` resolved over the code defaults.
    pub fn heuristics(&self) -> &Heuristics {
        &self.heuristics
    }

    /// `analysis` settings for the pipeline gates and the configured-connect classifier.
    pub fn filters(&self) -> &Filters {
        &self.filters
    }

    /// Non-fatal findings (`path:line:col: ...`): rules without `enabled`, legacy rules,
    /// unknown capability names. Print them at startup and on reload.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The enabled rules that match `ctx`, skipping those in `already` (rules already
    /// triggered in this session count only once). Rules are evaluated in file order; a
    /// runtime error or a non-bool result is "not matched".
    pub fn matching(&self, ctx: &Context, already: &RuleBits) -> RuleBits {
        let mut matched = RuleBits::new();
        if (0..self.rules.len()).all(|i| already.contains(i)) {
            return matched;
        }
        let act = eval::activation(&self.env, ctx);
        for (i, rule) in self.rules.iter().enumerate() {
            if already.contains(i) {
                continue;
            }
            match eval::execute(&rule.program, &act) {
                Ok(Value::Bool(true)) => matched.insert(i),
                Ok(Value::Bool(false)) => {}
                Ok(other) => tracing::debug!(
                    rule = %rule.name,
                    session = ctx.session_id,
                    "rule yielded {} instead of a bool: not matched",
                    other.type_of()
                ),
                Err(e) => tracing::debug!(
                    rule = %rule.name,
                    session = ctx.session_id,
                    "rule evaluation failed: {e}: not matched"
                ),
            }
        }
        matched
    }

    /// Every enabled rule matching `ctx` (nothing skipped).
    pub fn matching_all(&self, ctx: &Context) -> RuleBits {
        self.matching(ctx, &RuleBits::new())
    }

    /// One line for startup and `casa rules check`: rule counts and thresholds.
    pub fn summary(&self) -> String {
        format!(
            "{} rules enabled, {} disabled, thresholds log {} / alert {}",
            self.rules.len(),
            self.disabled.len(),
            self.thresholds.log,
            self.thresholds.alert
        )
    }

    /// [`describe_changes`] from `old` to `self`, on one line (`"no changes"` when none).
    pub fn describe_changes_from(&self, old: &RuleSet) -> String {
        let changes = describe_changes(old, self);
        if changes.is_empty() {
            "no changes".to_owned()
        } else {
            changes.join("; ")
        }
    }

    /// Names of the rules in `bits`, in file order.
    pub fn names<'a>(&'a self, bits: &'a RuleBits) -> impl Iterator<Item = &'a str> + 'a {
        bits.iter()
            .filter_map(|i| self.rules.get(i).map(|r| r.name.as_str()))
    }
}

/// A short human summary of what a reload changed: thresholds, added / removed / reweighted /
/// rewritten rules, `analysis`. Empty when nothing did.
pub fn describe_changes(old: &RuleSet, new: &RuleSet) -> Vec<String> {
    let mut out = Vec::new();
    let (a, b) = (old.thresholds, new.thresholds);
    if a.log != b.log {
        out.push(format!("log threshold {} -> {}", a.log, b.log));
    }
    if a.alert != b.alert {
        out.push(format!("alert threshold {} -> {}", a.alert, b.alert));
    }
    for r in &old.rules {
        if new.index_of(&r.name).is_none() {
            let how = if new.disabled.contains(&r.name) {
                "disabled"
            } else {
                "removed"
            };
            out.push(format!("{how} rule {} (weight {})", r.name, r.weight));
        }
    }
    for r in &new.rules {
        match old.index_of(&r.name).and_then(|i| old.rules.get(i)) {
            None => {
                let how = if old.disabled.contains(&r.name) {
                    "enabled"
                } else {
                    "added"
                };
                out.push(format!("{how} rule {} (weight {})", r.name, r.weight));
            }
            Some(o) => {
                if o.weight != r.weight {
                    out.push(format!(
                        "reweighted rule {}: {} -> {}",
                        r.name, o.weight, r.weight
                    ));
                }
                if o.expr != r.expr {
                    out.push(format!("changed expr of rule {}: {}", r.name, r.expr));
                }
            }
        }
    }
    if old.heuristics != new.heuristics {
        out.push("analysis heuristics changed".to_owned());
    }
    if old.filters != new.filters {
        out.push("analysis filters changed".to_owned());
    }
    out
}

#[cfg(test)]
mod tests;

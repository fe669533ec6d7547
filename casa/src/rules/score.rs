//! Per-session scoring (reference §6.2): each rule counts once per session; a decision is
//! LOG/ALERT only on an event that newly triggers at least one rule.

use std::collections::BTreeSet;

use serde::Serialize;

use super::RuleSet;
use super::eval::RuleBits;
use crate::context::Context;

/// What to do with the event that produced a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Ignore,
    Log,
    Alert,
}

impl Action {
    /// `"IGNORE"`, `"LOG"` or `"ALERT"`, as in CASA's logs.
    pub fn as_str(self) -> &'static str {
        crate::names::variant_name(&self)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule newly triggered by an event (CASA's `TriggeredRuleRecord`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TriggeredRule {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub expr: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub weight: i64,
}

fn is_zero(w: &i64) -> bool {
    *w == 0
}

/// The outcome of one evaluation. Serializes as the `decision` object of CASA's audit/alert
/// records: `{"action","score","log_threshold","alert_threshold","triggered_rules"}`
/// (`increment` is not part of that record and is not serialized).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: Action,
    /// The session's cumulative score after this event.
    pub score: i64,
    /// What this event added (sum of the newly triggered rules' weights).
    #[serde(skip)]
    pub increment: i64,
    pub log_threshold: i64,
    pub alert_threshold: i64,
    /// Only the rules newly triggered by this event, in file order.
    #[serde(rename = "triggered_rules")]
    pub triggered: Vec<TriggeredRule>,
}

impl Decision {
    /// CASA's `CrossesAlertThreshold`: something new triggered and the score reached alert.
    pub fn crosses_alert_threshold(&self) -> bool {
        !self.triggered.is_empty() && self.score >= self.alert_threshold
    }

    /// Something new triggered and the score reached the log threshold (an audit record).
    pub fn crosses_log_threshold(&self) -> bool {
        !self.triggered.is_empty() && self.score >= self.log_threshold
    }
}

/// One session's scoring state: which rules have triggered (by name, so it survives a reload
/// that reorders rules) and the accumulated score. Drop it when the session closes.
#[derive(Clone, Debug, Default)]
pub struct Scorer {
    names: BTreeSet<String>,
    score: i64,
    /// `names` as indices of the rule set identified by `set_id`.
    bits: RuleBits,
    set_id: Option<u64>,
}

impl Scorer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The accumulated score.
    pub fn score(&self) -> i64 {
        self.score
    }

    /// Names of the rules triggered so far in this session.
    pub fn triggered_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The rules already triggered in this session, as indices of the rule set last bound with
    /// [`Self::rebind`] (or seen by [`Self::decide`]); pass it to [`RuleSet::matching`] so
    /// they are not evaluated again.
    pub fn triggered(&self) -> &RuleBits {
        &self.bits
    }

    /// Binds the session to a (re)loaded rule set: rules keep counting as triggered by name.
    pub fn rebind(&mut self, set: &RuleSet) {
        self.sync(set);
    }

    fn sync(&mut self, set: &RuleSet) {
        if self.set_id != Some(set.id()) {
            self.bits = set
                .rules()
                .iter()
                .enumerate()
                .filter(|(_, r)| self.names.contains(&r.name))
                .map(|(i, _)| i)
                .collect();
            self.set_id = Some(set.id());
        }
    }

    /// Folds the rules of `set` that `matched` (indices into `set.rules()`) into the session:
    /// rules not triggered before are added to the score, and the action follows §6.2.
    pub fn decide(&mut self, matched: &RuleBits, set: &RuleSet) -> Decision {
        self.sync(set);
        let thresholds = set.thresholds();
        let mut triggered = Vec::new();
        let mut increment: i64 = 0;
        for i in matched.iter() {
            if self.bits.contains(i) {
                continue;
            }
            let Some(rule) = set.rules().get(i) else {
                continue;
            };
            self.bits.insert(i);
            self.names.insert(rule.name.clone());
            increment = increment.saturating_add(rule.weight);
            triggered.push(TriggeredRule {
                name: rule.name.clone(),
                expr: rule.expr.clone(),
                weight: rule.weight,
            });
        }
        let score = self.score.saturating_add(increment);
        let mut action = Action::Ignore;
        if !triggered.is_empty() {
            self.score = score;
            action = if score >= thresholds.alert {
                Action::Alert
            } else if score >= thresholds.log {
                Action::Log
            } else {
                Action::Ignore
            };
        }
        Decision {
            action,
            score: self.score,
            increment,
            log_threshold: thresholds.log,
            alert_threshold: thresholds.alert,
            triggered,
        }
    }

    /// Evaluates `ctx` (skipping rules already triggered) and decides, in one call.
    pub fn evaluate(&mut self, set: &RuleSet, ctx: &Context) -> Decision {
        self.sync(set);
        let matched = set.matching(ctx, &self.bits);
        self.decide(&matched, set)
    }
}

//! The response policy: the optional `response` object of `rules.json`, parsed and checked
//! with the rest of the rules file. A file without it (every CASA file) responds to nothing.
//!
//! ```json
//! "response": {
//!   "threshold": 9,
//!   "actions": ["kill"],
//!   "rules": { "reverse_shell": ["kill"], "credential_exfiltration": ["deny_network"] },
//!   "prevent": ["deleted_exec", "fetched_exec"]
//! }
//! ```
//!
//! `actions` apply once the session's score reaches `threshold` (default: the alert
//! threshold); `rules` apply when the named rule fires, whatever the score. `prevent` lists
//! the preventive rules the kernel applies on its own under `casa run --enforce` (absent, or
//! no `response` object at all: all of them; `[]`: none). Without `--enforce` every action
//! is a dry run (`crate::respond`), recorded only when the file declares a policy.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{RulesError, locate::Source};
use crate::names::variant_name;

/// One response action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseAction {
    /// Kill every process of the session now, and any of its processes (forked or
    /// daemonised since) at its next tracked syscall, fork or exec, in the kernel.
    Kill,
    /// New connections and datagrams to non-loopback addresses fail (`EPERM`) for the
    /// session's processes and their children.
    DenyNetwork,
    /// Record what would be done, do nothing (a policy's dry run).
    LogOnly,
}

impl ResponseAction {
    /// Every action.
    pub const ALL: [Self; 3] = [Self::Kill, Self::DenyNetwork, Self::LogOnly];

    /// Its name in `rules.json` and in records (its `Serialize` name).
    pub fn name(self) -> &'static str {
        variant_name(&self)
    }
}

/// A preventive rule: decided in the kernel at exec, with no userspace round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prevention {
    /// Running a deleted file or a memfd.
    DeletedExec,
    /// Running a file a session wrote with content fetched from the network.
    FetchedExec,
}

impl Prevention {
    /// Every preventive rule.
    pub const ALL: [Self; 2] = [Self::DeletedExec, Self::FetchedExec];

    /// Its name in `rules.json` and in records (its `Serialize` name).
    pub fn name(self) -> &'static str {
        variant_name(&self)
    }
}

/// The item of `all` named `name` (by its `Serialize` name).
fn by_name<T: Serialize + Copy>(all: &[T], name: &str) -> Option<T> {
    all.iter().copied().find(|v| variant_name(v) == name)
}

/// `response` as written (every key optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a response object")]
pub(crate) struct RawResponse {
    pub threshold: Option<i64>,
    pub actions: Option<Vec<String>>,
    pub rules: Option<BTreeMap<String, Vec<String>>>,
    pub prevent: Option<Vec<String>>,
}

/// The checked response policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponsePolicy {
    /// The rules file has a `response` object.
    pub declared: bool,
    /// Score at which [`Self::actions`] apply.
    pub threshold: i64,
    /// Actions once the score reaches the threshold.
    pub actions: BTreeSet<ResponseAction>,
    /// Actions when a named rule fires.
    pub rules: BTreeMap<String, BTreeSet<ResponseAction>>,
    /// Preventive rules under `--enforce`.
    pub prevent: BTreeSet<Prevention>,
}

impl Default for ResponsePolicy {
    /// No `response` object: no actions; under `--enforce` every preventive rule.
    fn default() -> Self {
        Self {
            declared: false,
            threshold: i64::MAX,
            actions: BTreeSet::new(),
            rules: BTreeMap::new(),
            prevent: Prevention::ALL.into_iter().collect(),
        }
    }
}

impl ResponsePolicy {
    /// The actions due for a decision at `score` whose newly triggered rules are `fired`.
    pub fn due<'a>(
        &self,
        score: i64,
        fired: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<ResponseAction> {
        let mut due = BTreeSet::new();
        if score >= self.threshold {
            due.extend(self.actions.iter().copied());
        }
        for name in fired {
            if let Some(a) = self.rules.get(name) {
                due.extend(a.iter().copied());
            }
        }
        due
    }

    /// Check `raw` against the rule names of the file; `alert` is the alert threshold (the
    /// default threshold). Absent: nothing responds, nothing is prevented.
    pub(crate) fn check(
        raw: Option<RawResponse>,
        alert: i64,
        rule_names: &BTreeSet<&str>,
        src: &Source<'_>,
    ) -> Result<Self, RulesError> {
        let Some(raw) = raw else {
            return Ok(Self::default());
        };
        let threshold = raw.threshold.unwrap_or(alert);
        if threshold < 1 {
            return Err(RulesError::ResponseThreshold {
                loc: src.locate("response.threshold"),
            });
        }
        let actions = |list: &[String], at: &str| -> Result<BTreeSet<ResponseAction>, RulesError> {
            list.iter()
                .enumerate()
                .map(|(i, a)| {
                    by_name(&ResponseAction::ALL, a).ok_or_else(|| RulesError::UnknownResponse {
                        loc: src.locate(&format!("{at}[{i}]")),
                        what: "action",
                        name: a.clone(),
                        known: names(&ResponseAction::ALL),
                    })
                })
                .collect()
        };
        let mut rules = BTreeMap::new();
        for (name, list) in raw.rules.unwrap_or_default() {
            let at = format!("response.rules.{name}");
            if !rule_names.contains(name.as_str()) {
                return Err(RulesError::UnknownResponse {
                    loc: src.locate(&at),
                    what: "rule",
                    name,
                    known: "the rules of this file".to_owned(),
                });
            }
            let a = actions(&list, &at)?;
            rules.insert(name, a);
        }
        let prevent = match raw.prevent {
            None => Prevention::ALL.into_iter().collect(),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    by_name(&Prevention::ALL, p).ok_or_else(|| RulesError::UnknownResponse {
                        loc: src.locate(&format!("response.prevent[{i}]")),
                        what: "preventive rule",
                        name: p.clone(),
                        known: names(&Prevention::ALL),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            declared: true,
            threshold,
            actions: actions(&raw.actions.unwrap_or_default(), "response.actions")?,
            rules,
            prevent,
        })
    }
}

fn names<T: Serialize>(all: &[T]) -> String {
    all.iter().map(variant_name).collect::<Vec<_>>().join(", ")
}

//! Responses: the stage after scoring. When a session's decision meets the response policy
//! (`crate::rules::ResponsePolicy`), this module decides what to do to which processes, says
//! so in the decision's audit record, and follows the processes it ordered killed until they
//! are gone, so that a later record states how long after the triggering event they died.
//!
//! It is pure, like the rest of the pipeline: the live edge carries out the [`Order`]s
//! (kernel map bits, `pidfd_send_signal`) and a replay ignores them; time comes from event
//! timestamps, so a replayed enforcement reads the same as it did live.
//!
//! ```text
//! decision ──▶ Responder::decide ──▶ ResponseRecord (audit.log, span) + Orders (edge)
//! fork / exit of an ordered session ──▶ Responder::follow ──▶ Orders, outcome record
//! exec killed by a preventive rule (Exec::facts.prevented) ──▶ ResponseRecord
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::{
    context::is_memfd_or_deleted,
    event::{Detail, Event},
    rules::{Prevention, ResponseAction, ResponsePolicy},
    session::SessionId,
};

/// What the live edge must do (a replay does nothing with these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Order {
    /// Act on these processes of a session: the kernel bits first (so that a child forked
    /// meanwhile inherits them), then the signal.
    Processes {
        session: SessionId,
        pids: Vec<u32>,
        kill: bool,
        deny_network: bool,
    },
    /// A file with fetched content (`(st_dev, st_ino)`): running it is refused in the kernel.
    Fetched { dev: u64, ino: u64 },
    /// A session process now runs a network tool: the kernel marks what it writes as fetched
    /// at the open, with no round trip (`TRACK_FETCHER`).
    Fetcher { pid: u32 },
}

/// The `response` object of an audit record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResponseRecord {
    /// `enforce`: carried out; `dry_run`: what would have been done.
    pub mode: &'static str,
    /// The actions (`kill`, `deny_network`, `log_only`).
    pub actions: Vec<&'static str>,
    /// Why: `threshold` (the policy's score threshold), a rule's name, or `prevent:<rule>`.
    pub because: Vec<String>,
    /// The session's live processes it applies to.
    pub pids: Vec<u32>,
    /// Filled in the record written once every ordered process is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<KillOutcome>,
}

/// How a kill order ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KillOutcome {
    /// Processes that died after the order (the ordered ones and those forked since).
    pub killed: usize,
    /// Time from the triggering event to each death, milliseconds: median and maximum.
    pub after_trigger_ms_p50: f64,
    pub after_trigger_ms_max: f64,
}

/// A kill order being followed.
#[derive(Clone, Debug, Default)]
struct KillWatch {
    trigger_ns: u64,
    /// Ordered processes not seen gone yet.
    waiting: BTreeSet<u32>,
    /// Time from the trigger to each death seen.
    deaths_ns: Vec<u64>,
    /// The record's `because` and `actions`, repeated in the outcome record.
    because: Vec<String>,
    actions: Vec<&'static str>,
}

/// Per-session response state.
#[derive(Clone, Debug, Default)]
struct SessionResponse {
    applied: BTreeSet<ResponseAction>,
    kill: Option<KillWatch>,
    deny_network: bool,
}

/// Follows responses across sessions.
#[derive(Debug, Default)]
pub struct Responder {
    enforce: bool,
    sessions: HashMap<SessionId, SessionResponse>,
    /// Fetched files already handed to the kernel.
    fetched_sent: HashSet<(u64, u64)>,
    /// Transcript sessions (a CLI's `--session-id`) whose session was ordered killed: the
    /// gateway may go on running their tool calls as new processes, which are killed too.
    killed_transcripts: HashMap<String, SessionId>,
    orders: Vec<Order>,
}

/// Most fetched-file identities handed to the kernel (its map holds 8192, LRU).
const FETCHED_SENT_MAX: usize = 8192;

/// Most killed transcript sessions remembered.
const KILLED_TRANSCRIPTS_MAX: usize = 4096;

impl Responder {
    /// `enforce`: carry responses out (`casa run --enforce`); otherwise dry runs.
    pub fn new(enforce: bool) -> Self {
        Self {
            enforce,
            ..Self::default()
        }
    }

    /// Whether responses are carried out.
    pub fn enforcing(&self) -> bool {
        self.enforce
    }

    /// Whether an exec may need a preventive record ([`Self::prevented`]): enforcing, only
    /// one the kernel killed; in a dry run, only under a declared policy. Cheap: the pipeline
    /// asks before it looks anything up.
    pub fn may_prevent(&self, policy: &ResponsePolicy, x: &crate::event::Exec) -> bool {
        x.result == 0
            && !policy.prevent.is_empty()
            && if self.enforce {
                x.facts.prevented
            } else {
                policy.declared
            }
    }

    /// Whether any session has a response being followed (forks and exits matter only
    /// then).
    pub fn following(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// The orders collected since the last call.
    pub fn take_orders(&mut self) -> Vec<Order> {
        std::mem::take(&mut self.orders)
    }

    /// A decision of `session` at `score`, with the rules it newly triggered: the response
    /// due and not applied yet, if any. `pids`: the session's live processes; `ev`: the
    /// triggering event.
    pub fn decide<'a>(
        &mut self,
        policy: &ResponsePolicy,
        session: SessionId,
        score: i64,
        fired: impl IntoIterator<Item = &'a str> + Clone,
        pids: Vec<u32>,
        ev: &Event,
    ) -> Option<ResponseRecord> {
        let due = policy.due(score, fired.clone());
        if due.is_empty() {
            return None;
        }
        let state = self.sessions.entry(session).or_default();
        let new: Vec<ResponseAction> = due.difference(&state.applied).copied().collect();
        if new.is_empty() {
            return None;
        }
        state.applied.extend(new.iter().copied());
        let mut because = Vec::new();
        if score >= policy.threshold && !policy.actions.is_empty() {
            because.push("threshold".to_owned());
        }
        because.extend(
            fired
                .into_iter()
                .filter(|r| policy.rules.contains_key(*r))
                .map(str::to_owned),
        );
        let actions: Vec<&'static str> = new.iter().map(|a| a.name()).collect();
        let kill = new.contains(&ResponseAction::Kill);
        let deny = new.contains(&ResponseAction::DenyNetwork);
        if self.enforce && (kill || deny) {
            // A kill also bars the network: a process between the order and its death
            // sends nothing out.
            self.orders.push(Order::Processes {
                session,
                pids: pids.clone(),
                kill,
                deny_network: deny || kill,
            });
            state.deny_network |= deny || kill;
            if kill {
                let w = state.kill.get_or_insert_with(|| KillWatch {
                    trigger_ns: ev.ktime_ns,
                    because: because.clone(),
                    actions: actions.clone(),
                    ..KillWatch::default()
                });
                w.waiting.extend(pids.iter().copied());
            }
        }
        Some(ResponseRecord {
            mode: self.mode(),
            actions,
            because,
            pids,
            outcome: None,
        })
    }

    /// An exec the kernel killed (`Exec::facts.prevented`), or, in a dry run, one a
    /// preventive rule of `policy` would have: the record saying so. `fetched`: the executed
    /// file is one the session wrote with fetched content.
    pub fn prevented(
        &mut self,
        policy: &ResponsePolicy,
        session: SessionId,
        ev: &Event,
        fetched: bool,
    ) -> Option<ResponseRecord> {
        let Detail::Exec(x) = &ev.detail else {
            return None;
        };
        if x.result != 0 {
            return None;
        }
        let deleted = is_memfd_or_deleted(&x.path.to_text())
            || x.facts
                .script_path
                .as_ref()
                .is_some_and(|p| is_memfd_or_deleted(&p.to_text()));
        let rule = if deleted && policy.prevent.contains(&Prevention::DeletedExec) {
            Prevention::DeletedExec
        } else if fetched && policy.prevent.contains(&Prevention::FetchedExec) {
            Prevention::FetchedExec
        } else {
            return None;
        };
        // Enforcing, the kernel's flag says it acted (it may have let an exec run whose file
        // was marked too late: nothing to claim then); in a dry run, say what it would do,
        // but only for a file that declares a policy (a CASA file gets no new records).
        if self.enforce != x.facts.prevented || (!self.enforce && !policy.declared) {
            return None;
        }
        if self.enforce {
            let w = self
                .sessions
                .entry(session)
                .or_default()
                .kill
                .get_or_insert_with(|| KillWatch {
                    trigger_ns: ev.ktime_ns,
                    because: vec![format!("prevent:{}", rule.name())],
                    actions: vec![ResponseAction::Kill.name()],
                    ..KillWatch::default()
                });
            w.waiting.insert(ev.pid);
        }
        Some(ResponseRecord {
            mode: self.mode(),
            actions: vec![ResponseAction::Kill.name()],
            because: vec![format!("prevent:{}", rule.name())],
            pids: vec![ev.pid],
            outcome: None,
        })
    }

    /// Any event of a session: a child forked by an ordered process is ordered too (the
    /// kernel already gave it its parent's bits; the edge also signals it), and a death of
    /// an ordered process is timed. Returns the outcome record once none is left waiting.
    pub fn follow(&mut self, session: SessionId, ev: &Event) -> Option<ResponseRecord> {
        let state = self.sessions.get_mut(&session)?;
        match &ev.detail {
            Detail::Fork(f) if self.enforce && f.child_pid == f.child_tid => {
                let kill = state
                    .kill
                    .as_ref()
                    .is_some_and(|w| w.waiting.contains(&ev.pid));
                if kill || state.deny_network {
                    self.orders.push(Order::Processes {
                        session,
                        pids: vec![f.child_pid],
                        kill,
                        deny_network: true,
                    });
                }
                if kill && let Some(w) = &mut state.kill {
                    w.waiting.insert(f.child_pid);
                }
                None
            }
            // The leader's exit or the last thread's, whichever the session sees first (a
            // killed process's leader may exit before its other threads, whose exits the
            // session no longer follows).
            Detail::Exit(x) if x.process_gone || x.leader => {
                let w = state.kill.as_mut()?;
                if !w.waiting.remove(&ev.pid) {
                    return None;
                }
                w.deaths_ns.push(ev.ktime_ns.saturating_sub(w.trigger_ns));
                if !w.waiting.is_empty() {
                    return None;
                }
                let w = state.kill.take()?;
                let mut d = w.deaths_ns;
                d.sort_unstable();
                let ms = |ns: u64| ns as f64 / 1e6;
                Some(ResponseRecord {
                    mode: "enforce",
                    actions: w.actions,
                    because: w.because,
                    pids: Vec::new(),
                    outcome: Some(KillOutcome {
                        killed: d.len(),
                        after_trigger_ms_p50: ms(d[(d.len() - 1) / 2]),
                        after_trigger_ms_max: ms(d[d.len() - 1]),
                    }),
                })
            }
            _ => None,
        }
    }

    /// A kill was ordered for `session`, which names the transcript session `key`.
    pub fn killed_transcript(&mut self, key: &str, session: SessionId) {
        if self.killed_transcripts.len() < KILLED_TRANSCRIPTS_MAX {
            self.killed_transcripts.insert(key.to_owned(), session);
        }
    }

    /// A gateway tool process (`ev`, its exec) that the transcript shows runs a tool call of
    /// `key`: when that transcript's session was ordered killed, the process is killed too
    /// (the gateway outlives the session it served and runs the agent's next call as a new
    /// process). Returns the record, for the session the process joined as `joined`.
    pub fn continuation(
        &mut self,
        key: &str,
        joined: SessionId,
        ev: &Event,
    ) -> Option<ResponseRecord> {
        let killed = *self.killed_transcripts.get(key)?;
        let because = vec![format!("continues killed session {killed}")];
        let actions = vec![ResponseAction::Kill.name()];
        if self.enforce {
            self.orders.push(Order::Processes {
                session: joined,
                pids: vec![ev.pid],
                kill: true,
                deny_network: true,
            });
            let state = self.sessions.entry(joined).or_default();
            state.applied.insert(ResponseAction::Kill);
            state.deny_network = true;
            state
                .kill
                .get_or_insert_with(|| KillWatch {
                    trigger_ns: ev.ktime_ns,
                    because: because.clone(),
                    actions: actions.clone(),
                    ..KillWatch::default()
                })
                .waiting
                .insert(ev.pid);
        }
        Some(ResponseRecord {
            mode: self.mode(),
            actions,
            because,
            pids: vec![ev.pid],
            outcome: None,
        })
    }

    /// A session process exec'd a network tool (enforcing, with `fetched_exec` in force).
    pub fn network_tool(&mut self, policy: &ResponsePolicy, pid: u32) {
        if self.enforce && policy.prevent.contains(&Prevention::FetchedExec) {
            self.orders.push(Order::Fetcher { pid });
        }
    }

    /// Hand the kernel the session's files with fetched content it does not have yet
    /// (enforcing only).
    pub fn fetched(&mut self, ids: impl Iterator<Item = (u64, u64)>) {
        if !self.enforce {
            return;
        }
        for id in ids {
            if self.fetched_sent.len() >= FETCHED_SENT_MAX {
                break;
            }
            if self.fetched_sent.insert(id) {
                self.orders.push(Order::Fetched {
                    dev: id.0,
                    ino: id.1,
                });
            }
        }
    }

    /// The session closed: forget it.
    pub fn closed(&mut self, session: SessionId) {
        self.sessions.remove(&session);
    }

    fn mode(&self) -> &'static str {
        if self.enforce { "enforce" } else { "dry_run" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Bytes, Exec, Exit, Fork};

    fn ev(t: u64, pid: u32, detail: Detail) -> Event {
        Event {
            ktime_ns: t,
            pid,
            tid: pid,
            ppid: 1,
            uid: 1000,
            gid: 1000,
            cgroup_id: 1,
            comm: Bytes::from("x"),
            detail,
        }
    }

    fn killed(leader: bool, gone: bool) -> Detail {
        Detail::Exit(Exit {
            exit_code: 9,
            status: None,
            signal: Some(9),
            core_dumped: false,
            leader,
            process_gone: gone,
        })
    }

    fn policy(actions: &[ResponseAction]) -> ResponsePolicy {
        ResponsePolicy {
            declared: true,
            threshold: 9,
            actions: actions.iter().copied().collect(),
            ..ResponsePolicy::default()
        }
    }

    fn trigger() -> Event {
        ev(1_000_000, 10, Detail::Exec(Exec::test("/bin/sh", &["sh"])))
    }

    #[test]
    fn a_kill_order_is_given_once_and_followed_to_the_last_death() {
        let mut r = Responder::new(true);
        let p = policy(&[ResponseAction::Kill]);
        assert!(
            r.decide(&p, 1, 8, ["a"], vec![10, 11], &trigger())
                .is_none()
        );
        let rec = r
            .decide(&p, 1, 9, ["a"], vec![10, 11], &trigger())
            .expect("due at the threshold");
        assert_eq!((rec.mode, rec.actions.clone()), ("enforce", vec!["kill"]));
        assert_eq!(rec.because, vec!["threshold".to_owned()]);
        assert_eq!(
            r.take_orders(),
            vec![Order::Processes {
                session: 1,
                pids: vec![10, 11],
                kill: true,
                deny_network: true,
            }]
        );
        // Not again for a higher score.
        assert!(
            r.decide(&p, 1, 20, ["b"], vec![10, 11], &trigger())
                .is_none()
        );
        // A child forked before the kill landed is ordered too, and waited for.
        let fork = ev(
            1_500_000,
            11,
            Detail::Fork(Fork {
                child_pid: 12,
                child_tid: 12,
            }),
        );
        assert!(r.follow(1, &fork).is_none());
        assert_eq!(
            r.take_orders(),
            vec![Order::Processes {
                session: 1,
                pids: vec![12],
                kill: true,
                deny_network: true,
            }]
        );
        assert!(
            r.follow(1, &ev(2_000_000, 10, killed(true, true)))
                .is_none()
        );
        // A thread's exit after its leader's does not count twice.
        assert!(
            r.follow(1, &ev(2_100_000, 10, killed(false, true)))
                .is_none()
        );
        assert!(
            r.follow(1, &ev(3_000_000, 12, killed(true, true)))
                .is_none()
        );
        let done = r
            .follow(1, &ev(5_000_000, 11, killed(true, false)))
            .expect("the last death closes the order");
        let o = done.outcome.expect("outcome");
        assert_eq!(o.killed, 3);
        assert_eq!((o.after_trigger_ms_p50, o.after_trigger_ms_max), (2.0, 4.0));
    }

    #[test]
    fn a_gateway_tool_call_of_a_killed_transcript_is_killed_in_the_session_it_joined() {
        let mut r = Responder::new(true);
        let call = ev(
            9_000_000,
            40,
            Detail::Exec(Exec::test("/bin/bash", &["bash"])),
        );
        // Nothing is known of the transcript yet.
        assert!(r.continuation("conv-1", 2, &call).is_none());
        r.killed_transcript("conv-1", 1);
        assert!(r.continuation("conv-2", 2, &call).is_none());
        let rec = r.continuation("conv-1", 2, &call).expect("a continuation");
        assert_eq!(rec.because, vec!["continues killed session 1".to_owned()]);
        assert_eq!(
            r.take_orders(),
            vec![Order::Processes {
                session: 2,
                pids: vec![40],
                kill: true,
                deny_network: true,
            }]
        );
        // Its death closes the order in the session it joined.
        let done = r
            .follow(2, &ev(9_500_000, 40, killed(true, true)))
            .expect("outcome");
        assert_eq!(done.outcome.unwrap().killed, 1);
    }

    #[test]
    fn a_dry_run_records_the_same_decision_and_orders_nothing() {
        let mut r = Responder::new(false);
        let p = policy(&[ResponseAction::Kill, ResponseAction::DenyNetwork]);
        let rec = r.decide(&p, 1, 9, ["a"], vec![10], &trigger()).unwrap();
        assert_eq!(rec.mode, "dry_run");
        assert_eq!(rec.actions, vec!["kill", "deny_network"]);
        assert!(r.take_orders().is_empty());
        assert!(r.follow(1, &ev(2, 10, killed(true, true))).is_none());
        r.fetched([(1, 2)].into_iter());
        r.network_tool(&p, 10);
        assert!(r.take_orders().is_empty());
    }

    #[test]
    fn a_rule_response_names_the_rule_and_log_only_orders_nothing() {
        let mut r = Responder::new(true);
        let mut p = policy(&[]);
        p.rules.insert(
            "egress".into(),
            [ResponseAction::LogOnly].into_iter().collect(),
        );
        let rec = r
            .decide(&p, 1, 2, ["egress"], vec![10], &trigger())
            .unwrap();
        assert_eq!(rec.because, vec!["egress".to_owned()]);
        assert_eq!(rec.actions, vec!["log_only"]);
        assert!(r.take_orders().is_empty());
    }

    fn exec_of(path: &str, prevented: bool) -> Event {
        let mut x = Exec::test(path, &["payload"]);
        x.facts.prevented = prevented;
        ev(1, 10, Detail::Exec(x))
    }

    #[test]
    fn preventive_records_claim_only_what_the_kernel_did_or_would_do() {
        let p = policy(&[]);
        let mut live = Responder::new(true);
        let rec = live
            .prevented(&p, 1, &exec_of("/memfd:payload (deleted)", true), false)
            .expect("the kernel killed it");
        assert_eq!(rec.because, vec!["prevent:deleted_exec".to_owned()]);
        assert_eq!(rec.mode, "enforce");
        // The kernel let it run: nothing is claimed.
        assert!(
            live.prevented(&p, 1, &exec_of("/memfd:payload (deleted)", false), false)
                .is_none()
        );
        let rec = live
            .prevented(&p, 1, &exec_of("/tmp/x", true), true)
            .unwrap();
        assert_eq!(rec.because, vec!["prevent:fetched_exec".to_owned()]);
        // An ordinary program is nobody's business.
        assert!(
            live.prevented(&p, 1, &exec_of("/usr/bin/ls", false), false)
                .is_none()
        );

        let mut dry = Responder::new(false);
        let rec = dry
            .prevented(&p, 1, &exec_of("/tmp/x", false), true)
            .expect("would kill");
        assert_eq!(rec.mode, "dry_run");
        // A file that declares no policy (a CASA file) gets no new records.
        let undeclared = ResponsePolicy::default();
        assert!(
            dry.prevented(&undeclared, 1, &exec_of("/tmp/x", false), true)
                .is_none()
        );
        // Turned off by the policy.
        let off = ResponsePolicy {
            prevent: BTreeSet::new(),
            ..policy(&[])
        };
        assert!(
            live.prevented(&off, 1, &exec_of("/memfd:p (deleted)", true), false)
                .is_none()
        );
    }
}

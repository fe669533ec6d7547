//! Which processes belong to the agent runtime, and which exec starts an agent session.
//!
//! This is configuration, not code: [`AgentProfile`] describes one runtime (OpenClaw by
//! default, [`AgentProfile::openclaw`]); another runtime is added with a JSON file
//! (`--agents FILE`) holding a list of profiles. See README "Agent profiles".

use serde::{Deserialize, Serialize};

use crate::event::{Bytes, Exec};

/// One agent runtime.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    /// Name shown in logs.
    pub name: String,
    /// Package names of the runtime: a process is part of the runtime when its executable, or
    /// the script one of the profile's interpreters runs, has a path component equal to one
    /// of these (`…/node_modules/openclaw/dist/worker.js`), or is the launcher itself. A path
    /// that merely contains the name (`/tmp/openclaw-x.sh`, `run_openclaw_case.sh`,
    /// `~/.openclaw/…`) is not the runtime.
    pub root_markers: Vec<String>,
    /// Process titles the runtime gives itself (`process.title`: what `/proc/PID/comm` shows
    /// for a runtime found already running, e.g. `openclaw-gateway`). Compared exactly
    /// (against the first 15 bytes, the kernel's comm length).
    #[serde(default)]
    pub titles: Vec<String>,
    /// The exec that starts a session.
    pub invocation: Invocation,
    /// The runtime's own work, not the agent's: commands a runtime process starts for itself
    /// (environment and shell-snapshot probes, a `git config` lookup). Regular expressions
    /// matched against the whole argv joined by single spaces; only a process forked directly
    /// by a runtime process can match. Such a process and its descendants count as runtime.
    #[serde(default)]
    pub housekeeping: Vec<String>,
    /// The runtime's tool plumbing: the wrapper processes through which it runs each tool
    /// command (OpenClaw: a `/bin/sh` OOM-score shim that exec's `bash … eval '<command>'`).
    /// Same matching as `housekeeping`; a wrapper must be forked by a runtime process or be
    /// exec'd in place by another wrapper. A wrapper's exec is not an agent exec (it would
    /// double every burst count); its children — the agent's commands — are.
    #[serde(default)]
    pub tool_wrappers: Vec<String>,
}

/// A profile's `housekeeping` and `tool_wrappers` patterns, compiled.
#[derive(Clone, Debug)]
pub struct Patterns {
    housekeeping: Vec<regex::Regex>,
    tool_wrappers: Vec<regex::Regex>,
}

impl Patterns {
    /// True when `argv` (joined by spaces) is one of the runtime's housekeeping commands.
    pub fn housekeeping(&self, argv: &str) -> bool {
        self.housekeeping.iter().any(|r| r.is_match(argv))
    }

    /// True when `argv` is one of the runtime's tool wrappers.
    pub fn tool_wrapper(&self, argv: &str) -> bool {
        self.tool_wrappers.iter().any(|r| r.is_match(argv))
    }

    /// Nothing to match: callers can skip building the argv text.
    pub fn is_empty(&self) -> bool {
        self.housekeeping.is_empty() && self.tool_wrappers.is_empty()
    }
}

/// A pattern of a profile that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("agent profile {profile:?}: {field}[{index}] is not a valid regular expression: {source}")]
pub struct PatternError {
    pub profile: String,
    pub field: &'static str,
    pub index: usize,
    #[source]
    pub source: regex::Error,
}

/// How a session-starting invocation looks, e.g. `node /x/bin/openclaw agent --agent main -m hi`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Invocation {
    /// Basenames of the interpreter executed (`node`).
    pub interpreters: Vec<String>,
    /// Basename of the launcher script passed to the interpreter (`openclaw`).
    pub launcher: String,
    /// Arguments that must all be present as exact tokens (`agent`, `--agent`).
    pub required_args: Vec<String>,
    /// At least one of these must be present (`-m`, `--message`).
    pub message_flags: Vec<String>,
    /// The original's rule: the interpreter and the launcher sit in the same directory (the
    /// nvm layout). Launchers matching `other_launcher_paths` are accepted in any directory.
    #[serde(default = "yes")]
    pub same_dir: bool,
    /// Path suffixes of launchers accepted wherever they are (project-local installs).
    #[serde(default)]
    pub other_launcher_paths: Vec<String>,
}

fn yes() -> bool {
    true
}

fn basename(p: &[u8]) -> &[u8] {
    p.rsplit(|&c| c == b'/').next().unwrap_or(p)
}

fn dirname(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&c| c == b'/') {
        Some(0) => b"/",
        Some(i) => &p[..i],
        None => b".",
    }
}

/// The kernel's comm length (`TASK_COMM_LEN` less the NUL).
const COMM_LEN: usize = 15;

impl AgentProfile {
    /// Compile the `housekeeping` and `tool_wrappers` patterns.
    pub fn patterns(&self) -> Result<Patterns, PatternError> {
        let compile = |field: &'static str, list: &[String]| {
            list.iter()
                .enumerate()
                .map(|(index, p)| {
                    regex::Regex::new(p).map_err(|source| PatternError {
                        profile: self.name.clone(),
                        field,
                        index,
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Patterns {
            housekeeping: compile("housekeeping", &self.housekeeping)?,
            tool_wrappers: compile("tool_wrappers", &self.tool_wrappers)?,
        })
    }

    /// The built-in OpenClaw profile (reference §3.5, §11).
    pub fn openclaw() -> Self {
        Self {
            name: "openclaw".into(),
            root_markers: vec!["openclaw".into()],
            titles: vec![
                "openclaw".into(),
                "openclaw-agent".into(),
                "openclaw-gateway".into(),
            ],
            invocation: Invocation {
                interpreters: vec!["node".into()],
                launcher: "openclaw".into(),
                required_args: vec!["agent".into(), "--agent".into()],
                message_flags: vec!["-m".into(), "--message".into()],
                same_dir: true,
                other_launcher_paths: vec![
                    "/node_modules/.bin/openclaw".into(),
                    "/node_modules/openclaw/openclaw.mjs".into(),
                ],
            },
            // OpenClaw 2026.9.6 (shared/docs/openclaw.md §4): before its first tool command a
            // run imports the login shell's environment, captures and checks a shell
            // snapshot, and asks git for the workspace's remote.
            housekeeping: vec![
                r"^\S*bash -l -c printf '\\0'; env -0$".into(),
                r"^\S*bash -i -c \{\n:\nprintf '\\n%s\\n' '__OPENCLAW_SHELL_SNAPSHOT_CAPTURE__'\n".into(),
                r"^\S*bash --noprofile --norc -c \. '[^']*/shell-snapshots/[^']*' >/dev/null 2>&1$"
                    .into(),
                r"^\S*git -C \S*/workspace config --get remote\.origin\.url$".into(),
            ],
            // Each exec tool call: `/bin/sh -c 'echo 1000 > /proc/self/oom_score_adj …; exec
            // "$0" "$@"' /bin/bash --noprofile --norc -c "<snapshot> export PATH=… eval '<cmd>'"`.
            tool_wrappers: vec![
                r#"^\S*sh -c echo -?\d+ > /proc/self/oom_score_adj 2>/dev/null; exec "\$0" "\$@" "#
                    .into(),
                r"^\S*bash --noprofile --norc -c (if \[ -r '[^']*' \]; then \. '[^']*'; fi\n)?export PATH='[^']*'\neval '".into(),
            ],
        }
    }

    /// True when a process with this comm / executable / argv is part of the runtime, by the
    /// profile's own signals: its comm is one of the runtime's `titles`, its executable is the
    /// launcher or lies in the runtime's package (`root_markers` as a path component), or it
    /// is one of the profile's interpreters running such a script (`node /x/openclaw`, `node
    /// /x/node_modules/openclaw/dist/worker.js`). Nothing else counts: a name or path that
    /// merely contains the runtime's name (`run_openclaw_case.sh`, `cat ~/.openclaw/x`) is a
    /// user's or an agent's program, never exempt.
    pub fn is_runtime(&self, comm: &[u8], exe: &[u8], argv: &[Bytes]) -> bool {
        if self.titles.iter().any(|t| {
            let t = t.as_bytes();
            comm == &t[..t.len().min(COMM_LEN)]
        }) {
            return true;
        }
        if self.is_runtime_path(exe) {
            return true;
        }
        let interp = basename(exe);
        if !self
            .invocation
            .interpreters
            .iter()
            .any(|i| i.as_bytes() == interp)
        {
            return false;
        }
        argv.iter()
            .skip(1)
            .find(|a| !a.as_bytes().starts_with(b"-"))
            .is_some_and(|script| self.is_runtime_path(script.as_bytes()))
    }

    /// `path` is the launcher or lies inside the runtime's package.
    fn is_runtime_path(&self, path: &[u8]) -> bool {
        basename(path) == self.invocation.launcher.as_bytes()
            || path.split(|&c| c == b'/').any(|component| {
                self.root_markers
                    .iter()
                    .any(|m| component.eq_ignore_ascii_case(m.as_bytes()))
            })
    }

    /// True when this exec starts an agent session (the original's `isOpenClawCLIInvocation`).
    pub fn is_invocation(&self, exec: &Exec) -> bool {
        self.is_invocation_after(exec, None)
    }

    /// True when `path` (a script the kernel executed) is this profile's launcher: the
    /// tracker remembers it for the interpreter exec that follows in the same process.
    pub fn is_launcher_script(&self, path: &[u8]) -> bool {
        basename(path) == self.invocation.launcher.as_bytes()
    }

    /// As [`Self::is_invocation`]; `launched` is the launcher script this same process
    /// executed just before (`#!/usr/bin/env node`: the kernel ran the script, `env` then
    /// exec'd the interpreter). The user ran the launcher itself, so wherever it lives — a
    /// symlink in `~/bin` or `/usr/local/bin` to a global install, any layout — and
    /// wherever the interpreter comes from, it is the invocation.
    pub fn is_invocation_after(&self, exec: &Exec, launched: Option<&[u8]>) -> bool {
        if exec.result != 0 {
            return false;
        }
        let inv = &self.invocation;
        // The name the caller executed (the symlink-level path, as the original saw it).
        let interp = exec.filename.as_bytes();
        let interp_name = basename(interp);
        if !inv.interpreters.iter().any(|i| i.as_bytes() == interp_name)
            && !inv
                .interpreters
                .iter()
                .any(|i| i.as_bytes() == basename(exec.path.as_bytes()))
        {
            return false;
        }
        let args: Vec<&[u8]> = exec.argv.iter().map(Bytes::as_bytes).collect();
        let Some(launcher) = args
            .iter()
            .skip(1)
            .find(|a| !a.starts_with(b"-") && basename(a) == inv.launcher.as_bytes())
        else {
            return false;
        };
        let has = |t: &str| args.contains(&t.as_bytes());
        if !inv.required_args.iter().all(|t| has(t)) {
            return false;
        }
        if !inv.message_flags.is_empty() && !inv.message_flags.iter().any(|t| has(t)) {
            return false;
        }
        if inv
            .other_launcher_paths
            .iter()
            .any(|s| launcher.ends_with(s.as_bytes()))
            || launched == Some(*launcher)
        {
            return true;
        }
        !inv.same_dir || (interp.contains(&b'/') && dirname(interp) == dirname(launcher))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(filename: &str, argv: &[&str]) -> Exec {
        Exec::test(filename, argv)
    }

    const BIN: &str = "/home/u/.nvm/versions/node/v24.14.1/bin";

    #[test]
    fn original_positive_example() {
        let p = AgentProfile::openclaw();
        let e = exec(
            &format!("{BIN}/node"),
            &[
                "node",
                &format!("{BIN}/openclaw"),
                "agent",
                "--agent",
                "main",
                "-m",
                "hey",
            ],
        );
        assert!(p.is_invocation(&e));
        let re = exec(
            &format!("{BIN}/node"),
            &[
                "node",
                "--disable-warning=ExperimentalWarning",
                &format!("{BIN}/openclaw"),
                "agent",
                "--agent",
                "main",
                "--message",
                "hey",
            ],
        );
        assert!(
            p.is_invocation(&re),
            "the re-exec also matches; the tracker dedups it"
        );
    }

    #[test]
    fn dir_mismatch_and_missing_flags_rejected() {
        let p = AgentProfile::openclaw();
        let e = exec(
            "/home/u/.pyenv/bin/node",
            &[
                "node",
                &format!("{BIN}/openclaw"),
                "agent",
                "--agent",
                "main",
                "-m",
                "hey",
            ],
        );
        assert!(!p.is_invocation(&e));
        let e = exec(
            &format!("{BIN}/node"),
            &["node", &format!("{BIN}/openclaw"), "agent", "-m", "x"],
        );
        assert!(!p.is_invocation(&e), "--agent is required");
        let e = exec(
            &format!("{BIN}/node"),
            &["node", &format!("{BIN}/openclaw"), "gateway", "run"],
        );
        assert!(!p.is_invocation(&e));
    }

    #[test]
    fn project_local_layout_accepted() {
        let p = AgentProfile::openclaw();
        let e = exec(
            "/usr/bin/node",
            &[
                "node",
                "/srv/app/node_modules/.bin/openclaw",
                "agent",
                "--agent",
                "main",
                "-m",
                "x",
            ],
        );
        assert!(p.is_invocation(&e));
    }

    #[test]
    fn a_launcher_the_user_ran_is_an_invocation_in_any_layout() {
        let p = AgentProfile::openclaw();
        // `openclaw` on PATH is a symlink in /usr/local/bin to a global install; node is the
        // distribution's. The directories differ, so the original rule says no...
        let e = exec(
            "/usr/bin/node",
            &[
                "node",
                "/usr/local/bin/openclaw",
                "agent",
                "--agent",
                "main",
                "-m",
                "x",
            ],
        );
        assert!(!p.is_invocation(&e));
        // ...but the kernel ran that launcher as a script just before, in this process.
        assert!(p.is_launcher_script(b"/usr/local/bin/openclaw"));
        assert!(p.is_invocation_after(&e, Some(b"/usr/local/bin/openclaw")));
        assert!(!p.is_invocation_after(&e, Some(b"/tmp/other/openclaw")));
        assert!(!p.is_launcher_script(b"/usr/local/bin/openclaw-helper"));
    }

    #[test]
    fn runtime_markers() {
        let p = AgentProfile::openclaw();
        assert!(p.is_runtime(b"openclaw-gatewa", b"/usr/bin/node", &[]));
        assert!(p.is_runtime(
            b"node",
            b"/usr/bin/node",
            &[
                Bytes::from("node"),
                Bytes::from("/x/openclaw/dist/worker.js")
            ]
        ));
        assert!(!p.is_runtime(b"bash", b"/usr/bin/bash", &[Bytes::from("bash")]));
        let cat = [
            Bytes::from("cat"),
            Bytes::from("/root/.openclaw/openclaw.json"),
        ];
        assert!(
            !p.is_runtime(b"cat", b"/usr/bin/cat", &cat),
            "a tool mentioning it is not the runtime"
        );
    }

    #[test]
    fn only_the_runtimes_own_signals_make_a_process_the_runtime() {
        let p = AgentProfile::openclaw();
        let argv = |a: &[&str]| a.iter().map(|x| Bytes::from(*x)).collect::<Vec<_>>();
        // The runtime: its title, its launcher, its package's scripts under its interpreter.
        assert!(p.is_runtime(b"openclaw-agent", b"/opt/node/bin/node", &[]));
        assert!(p.is_runtime(b"openclaw", b"/opt/node/bin/openclaw", &[]));
        let worker = "/opt/node/lib/node_modules/openclaw/dist/process/spawn-broker/worker.js";
        assert!(p.is_runtime(b"node", b"/opt/node/bin/node", &argv(&["node", worker])));
        // A user's wrapper named after it, a tool's file, the state directory: not the runtime.
        assert!(!p.is_runtime(
            b"run_openclaw_ca",
            b"/home/u/run_openclaw_case.sh",
            &argv(&["/bin/bash", "/home/u/run_openclaw_case.sh"])
        ));
        assert!(!p.is_runtime(
            b"node",
            b"/opt/node/bin/node",
            &argv(&["node", "/tmp/openclaw-eval/x.js"])
        ));
        assert!(!p.is_runtime(
            b"python3",
            b"/usr/bin/python3",
            &argv(&["python3", "/root/.openclaw/workspace/openclaw_report.py"])
        ));
        assert!(!p.is_runtime(b"openclaw-helper", b"/usr/bin/bash", &[]));
    }
}

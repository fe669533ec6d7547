//! Gateway attribution: which CLI session asked for a tool process the gateway started.
//!
//! Through a gateway, OpenClaw's tool processes hang off the gateway's spawn broker, not off
//! the `openclaw agent` CLI that asked for them (the CLI is a WebSocket client), so the process
//! tree cannot say which of two overlapping CLI turns a tool belongs to. What both sides do
//! expose (verified on OpenClaw 2026.9.6, evaluation/README.md "Linking a gateway tool
//! process to its CLI"):
//!
//! * the tool wrapper's argv carries the command text exactly as the model sent it
//!   (`bash --noprofile --norc -c "… eval '<command>'"`, see [`wrapped_command`]);
//! * the agent's transcript (`crate::transcript`, read by the live edge) holds that command in
//!   a `toolCall` row of the transcript session named by the CLI's `--session-id`, after the
//!   session's user message (the CLI's `-m` text), committed before the tool process starts.
//!
//! So when the tracker meets a gateway tool process while a CLI session is open, it asks
//! (an [`Request`] in the pipeline's `Outcome`); the edge looks the command up and answers
//! with an [`Attribution`] (an `Input` the recorder writes, so a replay decides the same);
//! the tracker then joins the process to the CLI session whose invocation carries that
//! `--session-id` (or, when none does, whose message is the transcript's user message). With
//! no answer, or one that names no open session, the newest open CLI session takes it, as in
//! CASA: [`Method::Recency`], recorded in the session (`sessions.log`: `attribution`).

use serde::{Deserialize, Serialize};

use crate::event::Bytes;

/// What the tracker asks the edge about a gateway tool process (not recorded: the answer is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The tool process.
    pub pid: u32,
    /// Kernel time of its wrapper exec (with `pid`, names the process even if the pid is
    /// reused).
    pub exec_ns: u64,
    /// The command text the wrapper runs (as the model sent it).
    pub command: String,
    /// The runtime's state directory, when the wrapper's argv names it (its shell-snapshot
    /// path `<state>/cache/shell-snapshots/…`).
    pub state_dir: Option<String>,
}

/// The edge's answer to a [`Request`] (recording frame type 8): what the transcript says
/// about the command, or nothing (no database, locked, no such call).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribution {
    pub pid: u32,
    pub exec_ns: u64,
    /// The transcript session (`transcript_events.session_id`: the CLI's `--session-id`)
    /// whose tool call runs this command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_session: Option<String>,
    /// That session's latest user message before the call (the CLI's `-m` text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How a gateway tool process was attributed to a CLI session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// By the runtime's transcript: the session that issued the call.
    Transcript,
    /// By recency: the newest open CLI session (no answer, or none that named an open
    /// session). A session with both keeps this, the weaker claim.
    Recency,
}

impl Method {
    /// The name written in `sessions.log`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Transcript => "transcript",
            Method::Recency => "recency",
        }
    }
}

/// The prefix OpenClaw 2026.9.6 puts before a gateway tool command inside the `eval`.
const PREPEND_PATH: &str =
    "export PATH=\"${OPENCLAW_PREPEND_PATH}${PATH:+:$PATH}\"; unset OPENCLAW_PREPEND_PATH; ";

/// The command text and state directory in an OpenClaw tool wrapper's argv (the `/bin/sh`
/// OOM shim's or the `bash --noprofile --norc -c` it exec's): the last argument holding a
/// line `eval '<quoted>'` gives the command (`'\''` back to `'`, the gateway's PATH prefix
/// removed); its shell-snapshot path gives the state directory. `None` when no argument has
/// such a line (a truncated argv, another runtime).
pub fn wrapped_command(argv: &[Bytes]) -> Option<(String, Option<String>)> {
    argv.iter().rev().find_map(|a| {
        let script = std::str::from_utf8(a.as_bytes()).ok()?;
        let start = if script.starts_with("eval '") {
            0
        } else {
            script.rfind("\neval '")? + 1
        };
        let quoted = script[start + "eval '".len()..].strip_suffix('\'')?;
        let command = quoted.replace("'\\''", "'");
        let command = command
            .strip_prefix(PREPEND_PATH)
            .map(str::to_owned)
            .unwrap_or(command);
        // Only from the snapshot line OpenClaw writes first, never from the command's text.
        let state_dir = script
            .strip_prefix("if [ -r '")
            .and_then(|rest| rest.split_once('\''))
            .and_then(|(snapshot, _)| snapshot.split_once("/cache/shell-snapshots/"))
            .map(|(dir, _)| dir)
            .filter(|d| d.starts_with('/'))
            .map(str::to_owned);
        Some((command, state_dir))
    })
}

/// The transcript session id and message an invocation's argv names: `--session-id X` (or
/// `--session-id=X`) and `-m X`/`--message X` (or `--message=X`).
pub fn invocation_keys(argv: &[Bytes]) -> (Option<String>, Option<String>) {
    let text = |b: &Bytes| String::from_utf8_lossy(b.as_bytes()).into_owned();
    let (mut id, mut msg) = (None, None);
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.as_bytes();
        if a == b"--session-id" {
            id = it.next().map(text);
        } else if a == b"-m" || a == b"--message" {
            msg = it.next().map(text);
        } else if let Some(v) = a.strip_prefix(b"--session-id=") {
            id = Some(String::from_utf8_lossy(v).into_owned());
        } else if let Some(v) = a.strip_prefix(b"--message=") {
            msg = Some(String::from_utf8_lossy(v).into_owned());
        }
    }
    (id, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<Bytes> {
        a.iter().map(|x| Bytes::from(*x)).collect()
    }

    /// The wrapper argv seen on OpenClaw 2026.9.6's gateway for `sleep 2; printf '%s\n'
    /// "it's q"; echo done-GD` (evaluation/README.md).
    const GATEWAY_SCRIPT: &str = "if [ -r '/tmp/h7-oc/home/.openclaw/cache/shell-snapshots/e159.sh' ]; then . '/tmp/h7-oc/home/.openclaw/cache/shell-snapshots/e159.sh'; fi\nexport PATH='/usr/bin:/bin:/opt/casa-eval/node/bin'\neval 'export PATH=\"${OPENCLAW_PREPEND_PATH}${PATH:+:$PATH}\"; unset OPENCLAW_PREPEND_PATH; sleep 2; printf '\\''%s\\n'\\'' \"it'\\''s q\"; echo done-GD'";

    #[test]
    fn the_command_and_state_dir_come_back_from_the_wrapper_argv() {
        let bash = argv(&[
            "/bin/bash",
            "--noprofile",
            "--norc",
            "-c",
            GATEWAY_SCRIPT,
            "",
        ]);
        let (cmd, state) = wrapped_command(&bash).expect("a wrapper");
        assert_eq!(cmd, "sleep 2; printf '%s\\n' \"it's q\"; echo done-GD");
        assert_eq!(state.as_deref(), Some("/tmp/h7-oc/home/.openclaw"));
        // The OOM shim carries the same script as its last arguments.
        let shim = argv(&[
            "/bin/sh",
            "-c",
            "echo 1000 > /proc/self/oom_score_adj 2>/dev/null; exec \"$0\" \"$@\"",
            "/bin/bash",
            "--noprofile",
            "--norc",
            "-c",
            GATEWAY_SCRIPT,
        ]);
        assert_eq!(wrapped_command(&shim).map(|c| c.0), Some(cmd));
        // `--local` (no PATH prefix, no snapshot) and a cut argv.
        let local = argv(&[
            "/bin/bash",
            "-c",
            "export PATH='/bin'\neval 'cat /etc/hosts'",
        ]);
        assert_eq!(
            wrapped_command(&local),
            Some(("cat /etc/hosts".to_owned(), None))
        );
        // A command cannot name the state directory (the edge would read another database).
        let forged = argv(&[
            "/bin/bash",
            "-c",
            r"export PATH='/bin'
eval 'cat '\''/tmp/x/cache/shell-snapshots/y'\'''",
        ]);
        assert_eq!(
            wrapped_command(&forged),
            Some(("cat '/tmp/x/cache/shell-snapshots/y'".to_owned(), None))
        );
        let cut = argv(&["/bin/bash", "-c", "export PATH='/bin'\neval 'cat /etc/ho"]);
        assert_eq!(wrapped_command(&cut), None);
        assert_eq!(wrapped_command(&argv(&["/bin/sh", "-c", "id"])), None);
    }

    #[test]
    fn an_invocation_names_its_transcript_session_and_message() {
        let a = argv(&[
            "node",
            "/x/openclaw",
            "agent",
            "--agent",
            "main",
            "--session-id",
            "h7-A",
            "-m",
            "[case:GA] go",
            "--json",
        ]);
        assert_eq!(
            invocation_keys(&a),
            (Some("h7-A".into()), Some("[case:GA] go".into()))
        );
        let b = argv(&[
            "node",
            "/x/openclaw",
            "agent",
            "--message=hi",
            "--session-id=s",
        ]);
        assert_eq!(invocation_keys(&b), (Some("s".into()), Some("hi".into())));
        assert_eq!(
            invocation_keys(&argv(&["node", "/x/openclaw", "agent", "-m"])),
            (None, None)
        );
    }
}

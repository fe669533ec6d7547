//! A `casa run` daemon started by a test, with its own logs, pid file and rules, and a
//! stand-in OpenClaw to drive agent sessions through it.

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{casa_bin, require_root, tempdir};

/// Serialises the tests that drive agents through a daemon: every daemon sees every exec on
/// the host, so two such tests running at once would each see the other's agent sessions.
/// Hold the guard for the whole test (`let _serial = serial();`).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Daemon {
    pub dir: PathBuf,
    pub logs: PathBuf,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The shipped rules file (casa's own ruleset).
pub fn shipped_rules() -> PathBuf {
    repo_root().join("rules.json")
}

/// CASA's original ruleset, shipped for CASA users as `rules.casa.json`.
pub fn casa_rules() -> PathBuf {
    repo_root().join("rules.casa.json")
}

impl Daemon {
    /// Start `casa run` with `rules`, and wait until its pipeline runs.
    pub fn start(name: &str, rules: &Path) -> Self {
        Self::start_with_env(name, rules, &[])
    }

    /// As [`Daemon::start`], with extra environment variables.
    pub fn start_with_env(name: &str, rules: &Path, env: &[(&str, &str)]) -> Self {
        require_root();
        let dir = tempdir(name);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self::spawn_in(dir, rules, env)
    }

    /// A daemon in a directory the test prepared (e.g. with a filesystem mounted on `logs/`).
    pub fn start_in(dir: &Path, rules: &Path) -> Self {
        require_root();
        Self::spawn_in(dir.to_owned(), rules, &[])
    }

    /// As [`Daemon::start_in`], with extra `casa run` arguments.
    pub fn start_in_with_args(dir: &Path, rules: &Path, args: &[&str]) -> Self {
        require_root();
        Self::spawn_full(dir.to_owned(), rules, &[], args)
    }

    /// A new daemon on the files of an earlier one (after it was killed).
    pub fn restart_in(dir: &Path, rules: &Path) -> Self {
        Self::spawn_in(dir.to_owned(), rules, &[])
    }

    fn spawn_in(dir: PathBuf, rules: &Path, env: &[(&str, &str)]) -> Self {
        Self::spawn_full(dir, rules, env, &[])
    }

    fn spawn_full(dir: PathBuf, rules: &Path, env: &[(&str, &str)], extra: &[&str]) -> Self {
        let logs = dir.join("logs");
        let mut child = Command::new(casa_bin())
            .current_dir(&dir)
            .env("RUST_LOG", "info")
            .env_remove("CASA_OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(env.iter().copied())
            .arg("run")
            .arg("--rules")
            .arg(rules)
            .arg("--events-log")
            .arg(logs.join("events.log"))
            .arg("--sessions-log")
            .arg(logs.join("sessions.log"))
            .arg("--audit-log")
            .arg(logs.join("audit.log"))
            .arg("--alert-log")
            .arg(logs.join("alert.log"))
            .arg("--pid-file")
            .arg(dir.join("casa.pid"))
            .arg("--stats-interval")
            .arg("3600")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start casa run");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let d = Self {
            dir,
            logs,
            child: Some(child),
            stderr,
        };
        d.wait_stderr("CASA pipeline is running", Duration::from_secs(30));
        d
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(name)).unwrap_or_default()
    }

    /// Ids of the sessions this test's own agent invocations started (their launcher is in
    /// this daemon's `bin/`). Other agents may run on the machine, and the daemon sees every
    /// one: a test looks only at its own.
    pub fn own_sessions(&self) -> Vec<u64> {
        let bin = self.dir.join("bin");
        let mut ids: Vec<u64> = self
            .log("sessions.log")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| {
                r["session"]["invocation"]
                    .as_array()
                    .and_then(|a| a.get(1))
                    .and_then(|a| a.as_str())
                    .is_some_and(|launcher| std::path::Path::new(launcher).starts_with(&bin))
            })
            .filter_map(|r| r["session_id"].as_u64())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The records of `log` that belong to this test's own sessions ([`Self::own_sessions`]).
    pub fn own_records(&self, log: &str) -> Vec<serde_json::Value> {
        let own = self.own_sessions();
        self.log(log)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["session_id"].as_u64().is_some_and(|id| own.contains(&id)))
            .collect()
    }

    /// The highest `final_action` of this test's closed sessions (`IGNORE` when none).
    pub fn own_final_action(&self) -> String {
        const RANK: [&str; 3] = ["IGNORE", "LOG", "ALERT"];
        self.own_records("sessions.log")
            .iter()
            .filter(|r| r["reason"] == "session_closed")
            .filter_map(|r| r["session"]["final_action"].as_str().map(str::to_owned))
            .max_by_key(|a| RANK.iter().position(|r| r == a))
            .unwrap_or_else(|| "IGNORE".to_owned())
    }

    /// How many of this test's own sessions have closed (`session_closed` in sessions.log).
    pub fn own_closed(&self) -> usize {
        self.own_records("sessions.log")
            .iter()
            .filter(|r| r["reason"] == "session_closed")
            .count()
    }

    /// Everything collected, for failure messages.
    pub fn dump(&self) -> String {
        let mut s = format!("--- casa stderr ---\n{}", self.stderr());
        for l in ["events.log", "sessions.log", "audit.log", "alert.log"] {
            s.push_str(&format!("--- {l} ---\n{}\n", self.log(l)));
        }
        s
    }

    /// Wait until stderr has `needle` (panics with everything collected after `timeout`).
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) {
        self.wait(timeout, &format!("stderr to contain {needle:?}"), || {
            self.stderr().contains(needle)
        });
    }

    pub fn wait(&self, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id();
        // SAFETY: signalling the daemon this test started.
        unsafe { libc::kill(pid as i32, sig) };
    }

    /// Reap a daemon that was sent SIGKILL.
    pub fn stop_killed(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        child.wait().ok()
    }

    /// SIGTERM and wait for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("casa did not stop within 20 s of SIGTERM\n{}", self.dump());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run one agent invocation through the stand-in OpenClaw, unprivileged (uid/gid 65534),
    /// with the nvm-style layout (`node` and `openclaw` in one `bin/`). Each `[exec] ` part of
    /// `message` is one tool call. Returns its exit status.
    pub fn agent(&self, message: &str) -> ExitStatus {
        run_agent(&self.dir, message)
    }

    /// A fresh directory under /tmp writable by the unprivileged agent.
    pub fn workdir(&self, name: &str) -> PathBuf {
        let w = self.dir.join(name);
        std::fs::create_dir_all(&w).unwrap();
        std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o777)).unwrap();
        w
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run one agent invocation (see [`Daemon::agent`]) with the stand-in launcher in `dir/bin`.
pub fn run_agent(dir: &Path, message: &str) -> ExitStatus {
    run_agent_under(dir, message, &[])
}

/// [`run_agent`] under a root wrapper command (e.g. `ip netns exec NS`), which runs the
/// unprivileged launcher.
pub fn run_agent_under(dir: &Path, message: &str, wrapper: &[&str]) -> ExitStatus {
    run_agent_as(dir, message, wrapper, "openclaw")
}

/// [`run_agent_under`] with the stand-in launcher named `launcher` (a test whose daemon acts on
/// sessions names its own launcher, and gives the daemon a profile for that name only).
pub fn run_agent_as(dir: &Path, message: &str, wrapper: &[&str], launcher: &str) -> ExitStatus {
    let bin = dir.join("bin");
    if !bin.join("node").exists() {
        std::fs::create_dir_all(&bin).unwrap();
        let node = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v node"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(!node.trim().is_empty(), "node is needed for the live tests");
        std::os::unix::fs::symlink(node.trim(), bin.join("node")).unwrap();
    }
    if !bin.join(launcher).exists() {
        let stand_in = repo_root().join("casa/tests/fixtures/fake-openclaw/openclaw");
        if launcher == "openclaw" {
            std::os::unix::fs::symlink(stand_in, bin.join(launcher)).unwrap();
        } else {
            // A copy, not a link: node runs a link's target, and the re-exec'd runtime must
            // carry the launcher's own name too.
            std::fs::copy(stand_in, bin.join(launcher)).unwrap();
        }
    }
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg("setpriv");
            c
        }
        None => Command::new("setpriv"),
    };
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin.join("node"))
        .arg(bin.join(launcher))
        .args(["agent", "--agent", "main", "-m", message])
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/tmp")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .status()
        .expect("run the stand-in openclaw")
}

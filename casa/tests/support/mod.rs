//! Shared helpers of the kernel integration tests: run the real `casa` binary as root,
//! read back what it recorded with the library, and print everything on failure.
#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod daemon;
pub mod ocsf;
pub mod otlp;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use casa::{
    decode::decode,
    event::{Connect, Detail, Event, Exec, Exit, Open},
    recording::{Frame, Reader, Summary},
};

/// Fail loudly unless root: these tests load eBPF programs for real.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "kernel integration tests must run as root (they load eBPF programs); run `make test` as root"
    );
}

/// The real Python interpreter (not a pyenv/asdf shim script), so that the workload's own
/// process is the recorded command.
pub fn python() -> &'static str {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by the kernel tests");
        String::from_utf8(out.stdout)
            .expect("utf-8 path")
            .trim()
            .to_owned()
    })
}

/// A private key by its name, `dir/.ssh/id_rsa`, readable by the unprivileged agent
/// (`/.ssh/id_*` is a credential store of the shipped rules).
pub fn private_key(dir: &std::path::Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join(".ssh/id_rsa");
    std::fs::create_dir_all(dir.join(".ssh")).unwrap();
    std::fs::write(&key, "s3cret\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    key
}

/// A fresh scratch directory for one test.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("casa-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// What one `casa record` run saw.
pub struct Recorded {
    pub events: Vec<Event>,
    pub summary: Summary,
    pub stderr: String,
    pub status: std::process::ExitStatus,
}

pub fn casa_bin() -> &'static str {
    env!("CARGO_BIN_EXE_casa")
}

/// Run `casa record [extra] --out FILE -- cmd...` and read the recording back.
pub fn record(name: &str, extra: &[&str], cmd: &[&str]) -> Recorded {
    require_root();
    let dir = tempdir(&format!("{name}-rec"));
    let out = dir.join("run.rec");
    let mut c = Command::new(casa_bin());
    c.arg("record").arg("--out").arg(&out).args(extra);
    if !cmd.is_empty() {
        c.arg("--").args(cmd);
    }
    let output = c.stdin(Stdio::null()).output().expect("run casa record");
    read_recording(&out, output)
}

pub fn read_recording(path: &Path, output: Output) -> Recorded {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut reader = match Reader::open(path) {
        Ok(r) => r,
        Err(e) => panic!(
            "cannot read recording {}: {e}\ncasa stderr:\n{stderr}",
            path.display()
        ),
    };
    let mut events = Vec::new();
    let mut summary = None;
    loop {
        match reader.next_frame() {
            Ok(Some(Frame::Record(raw))) => match decode(&raw) {
                Ok(e) => events.push(e),
                Err(e) => panic!(
                    "undecodable record {}: {e}\ncasa stderr:\n{stderr}",
                    events.len()
                ),
            },
            Ok(Some(Frame::Summary(s))) => summary = Some(s),
            Ok(Some(other)) => panic!("`casa record` wrote a daemon frame: {other:?}"),
            Ok(None) => break,
            Err(e) => panic!("recording error: {e}\ncasa stderr:\n{stderr}"),
        }
    }
    Recorded {
        events,
        summary: summary
            .unwrap_or_else(|| panic!("recording has no summary\ncasa stderr:\n{stderr}")),
        stderr,
        status: output.status,
    }
}

impl Recorded {
    /// Everything collected, for failure messages.
    pub fn dump(&self) -> String {
        let mut s = format!(
            "casa exit: {:?}\ncasa stderr:\n{}\nsummary: {:?}\n{} events:\n",
            self.status,
            self.stderr,
            self.summary,
            self.events.len()
        );
        for e in &self.events {
            let _ = writeln!(s, "  {}", serde_json::to_string(e).unwrap_or_default());
        }
        s
    }

    /// The started command's pid.
    pub fn root(&self) -> u32 {
        self.summary
            .command_pid
            .unwrap_or_else(|| panic!("no command pid in the summary\n{}", self.dump()))
    }

    /// Pids of the root and every process forked below it.
    pub fn tree(&self) -> Vec<u32> {
        let mut pids = vec![self.root()];
        for e in &self.events {
            if let Detail::Fork(f) = &e.detail
                && pids.contains(&e.pid)
                && !pids.contains(&f.child_pid)
            {
                pids.push(f.child_pid);
            }
        }
        pids
    }

    pub fn execs(&self) -> Vec<(&Event, &Exec)> {
        self.events
            .iter()
            .filter_map(|e| match &e.detail {
                Detail::Exec(x) => Some((e, x)),
                _ => None,
            })
            .collect()
    }

    pub fn opens(&self) -> Vec<(&Event, &Open)> {
        self.events
            .iter()
            .filter_map(|e| match &e.detail {
                Detail::Open(x) => Some((e, x)),
                _ => None,
            })
            .collect()
    }

    pub fn connects(&self) -> Vec<(&Event, &Connect)> {
        self.events
            .iter()
            .filter_map(|e| match &e.detail {
                Detail::Connect(x) => Some((e, x)),
                _ => None,
            })
            .collect()
    }

    pub fn exits(&self) -> Vec<(&Event, &Exit)> {
        self.events
            .iter()
            .filter_map(|e| match &e.detail {
                Detail::Exit(x) => Some((e, x)),
                _ => None,
            })
            .collect()
    }

    /// The open whose raw path is `raw`, from the tracked tree.
    pub fn open_raw(&self, raw: &str) -> (&Event, &Open) {
        let tree = self.tree();
        self.opens()
            .into_iter()
            .find(|(e, o)| o.raw_path.as_bytes() == raw.as_bytes() && tree.contains(&e.pid))
            .unwrap_or_else(|| panic!("no open of `{raw}` by the tracked tree\n{}", self.dump()))
    }

    /// The exec whose argv[0] is `arg0` within the tracked tree.
    pub fn exec_arg0(&self, arg0: &[u8]) -> (&Event, &Exec) {
        let tree = self.tree();
        self.execs()
            .into_iter()
            .find(|(e, x)| {
                x.argv.first().map(|a| a.as_bytes()) == Some(arg0) && tree.contains(&e.pid)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no exec with argv[0] {:?}\n{}",
                    String::from_utf8_lossy(arg0),
                    self.dump()
                )
            })
    }
}

/// `assert!` that prints everything the run collected.
#[macro_export]
macro_rules! check {
    ($rec:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            panic!("{}\n{}", format!($($msg)+), $rec.dump());
        }
    };
}

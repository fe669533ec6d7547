//! Live capture: drive the sensor's ring buffer into a recording or a JSONL stream, count
//! what was seen and lost, and start a command whose whole process tree is tracked.
//!
//! This sits between `sensor` (raw bytes from the kernel) and the files `casa record` and
//! `casa run` write. Records are stored raw (recording) or decoded (JSONL); a record that
//! does not decode is counted, never dropped silently (in a recording it is kept as is).

use std::{
    ffi::{CString, OsStr, OsString},
    fs::File,
    io::{self, BufWriter, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::{OsStrExt, OsStringExt},
    },
    path::{Path, PathBuf},
};

use serde::Serialize;
use tokio::io::unix::AsyncFd;

use crate::{
    clock::BootClock,
    decode::decode,
    event::Event,
    pipeline::Input,
    recording::{self, Recorder, RecordingError, Summary},
    sensor::{KernelStats, Sensor, SensorError},
};

/// Errors of the capture stage.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Sensor(Box<SensorError>),
}

impl From<SensorError> for CaptureError {
    fn from(e: SensorError) -> Self {
        Self::Sensor(Box::new(e))
    }
}

/// Output format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The versioned binary recording (`crate::recording`), replayable.
    Recording,
    /// One decoded, self-describing JSON object per line.
    Jsonl,
}

/// One line of the JSONL format.
#[derive(Serialize)]
struct JsonlLine<'a> {
    /// RFC 3339 UTC time of the event.
    time: String,
    #[serde(flatten)]
    event: &'a Event,
}

enum Out {
    Recording(Recorder),
    Jsonl(BufWriter<File>, PathBuf),
}

/// Where captured records go, with the counts for the summary.
pub struct CaptureSink {
    out: Out,
    clock: BootClock,
    summary: Summary,
    /// First few decode errors, for the report.
    pub decode_error_samples: Vec<String>,
}

impl CaptureSink {
    pub fn create(
        path: &Path,
        format: Format,
        meta: &recording::Meta,
    ) -> Result<Self, CaptureError> {
        let out = match format {
            Format::Recording => Out::Recording(Recorder::create(path, meta)?),
            Format::Jsonl => {
                let f = File::create(path).map_err(|source| CaptureError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                Out::Jsonl(BufWriter::with_capacity(1 << 20, f), path.to_owned())
            }
        };
        Ok(Self {
            out,
            clock: meta.clock,
            summary: Summary::default(),
            decode_error_samples: Vec::new(),
        })
    }

    /// Take one raw record from the ring.
    pub fn on_record(&mut self, raw: &[u8]) -> Result<(), CaptureError> {
        let decoded = decode(raw);
        match &decoded {
            Ok(ev) => {
                *self
                    .summary
                    .events
                    .entry(ev.detail.kind_name().to_owned())
                    .or_default() += 1
            }
            Err(e) => {
                self.summary.decode_errors += 1;
                if self.decode_error_samples.len() < 5 {
                    self.decode_error_samples.push(e.to_string());
                }
            }
        }
        match &mut self.out {
            Out::Recording(r) => r.write(&Input::Record(raw))?,
            Out::Jsonl(w, path) => {
                if let Ok(ev) = decoded {
                    let line = JsonlLine {
                        time: self.clock.rfc3339(ev.ktime_ns),
                        event: &ev,
                    };
                    serde_json::to_writer(&mut *w, &line)
                        .map_err(io::Error::from)
                        .and_then(|()| w.write_all(b"\n"))
                        .map_err(|source| CaptureError::Io {
                            path: path.clone(),
                            source,
                        })?;
                }
            }
        }
        Ok(())
    }

    /// Counts so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Record the started command's pid and final status in the summary.
    pub fn set_command(&mut self, pid: u32, status: Option<i32>) {
        self.summary.command_pid = Some(pid);
        self.summary.command_status = status;
    }

    /// Write the summary (with the kernel counters) and flush.
    pub fn finish(mut self, kernel: &KernelStats) -> Result<Summary, CaptureError> {
        for (name, v) in kernel.named() {
            self.summary.kernel.insert(name.to_owned(), v);
        }
        match self.out {
            Out::Recording(r) => r.finish(&self.summary)?,
            Out::Jsonl(mut w, path) => w
                .flush()
                .map_err(|source| CaptureError::Io { path, source })?,
        }
        Ok(self.summary)
    }
}

/// Human-readable summary lines.
pub fn describe(summary: &Summary) -> String {
    let total: u64 = summary.events.values().sum();
    let kinds: Vec<String> = summary
        .events
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let lost: u64 = summary
        .kernel
        .iter()
        .filter(|(k, _)| k.starts_with("lost_") || *k == "pending_full")
        .map(|(_, v)| v)
        .sum();
    let kernel: Vec<String> = summary
        .kernel
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "events: {total} ({})\nlost: {lost}{}\ndecode errors: {}",
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        },
        if kernel.is_empty() {
            String::new()
        } else {
            format!(" ({})", kernel.join(", "))
        },
        summary.decode_errors
    )
}

/// A child process started with its whole tree tracked from its first instruction.
pub struct TrackedChild {
    pub pid: u32,
    pidfd: AsyncFd<OwnedFd>,
}

fn cstring(s: &OsStr) -> Result<CString, io::Error> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"))
}

/// Find `program` on `PATH` like a shell would.
fn resolve_program(program: &OsStr) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return Some(p.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|c| {
            c.is_file()
                && std::fs::metadata(c).is_ok_and(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                })
        })
}

/// Start `argv` with its pid in the kernel's tracked set before it runs any code of its own.
///
/// The child is forked and waits on a pipe; casa adds its pid to `TRACKED`, then releases it
/// to `execve`. (std's `Command::spawn` cannot be used: it blocks until the child has exec'd.)
pub fn spawn_tracked(argv: &[OsString], sensor: &mut Sensor) -> Result<TrackedChild, CaptureError> {
    let program = argv.first().ok_or_else(|| CaptureError::Spawn {
        program: String::new(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let spawn_err = |source| CaptureError::Spawn {
        program: program.to_string_lossy().into_owned(),
        source,
    };
    let path = resolve_program(program)
        .ok_or_else(|| spawn_err(io::Error::new(io::ErrorKind::NotFound, "not found on PATH")))?;
    // Everything the child needs is prepared before fork: after it, only async-signal-safe
    // calls are allowed.
    let c_path = cstring(path.as_os_str()).map_err(spawn_err)?;
    let c_argv: Vec<CString> = argv
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<_, _>>()
        .map_err(spawn_err)?;
    let c_env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    let mut argv_ptrs: Vec<*const libc::c_char> = c_argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = c_env.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());

    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(spawn_err(io::Error::last_os_error()));
    }
    let (rfd, wfd) = (fds[0], fds[1]);
    // SAFETY: fork in a multi-threaded process; the child only calls async-signal-safe
    // functions (close, read, execve, _exit) on data prepared above.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: closing our own pipe fds.
        unsafe {
            libc::close(rfd);
            libc::close(wfd);
        }
        return Err(spawn_err(e));
    }
    if pid == 0 {
        // Child.
        // SAFETY: async-signal-safe calls only; pointers prepared before fork.
        unsafe {
            libc::close(wfd);
            let mut b = 0u8;
            loop {
                let n = libc::read(rfd, (&raw mut b).cast(), 1);
                if n == 1 {
                    break;
                }
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                libc::_exit(127);
            }
            libc::close(rfd);
            libc::execve(c_path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    // Parent.
    // SAFETY: closing the read end we do not use; wfd is owned from here on.
    let wfd = unsafe {
        libc::close(rfd);
        OwnedFd::from_raw_fd(wfd)
    };
    let pid = pid as u32;
    let tracked = sensor.track(pid);
    if let Err(e) = tracked {
        // Do not release an untracked child: let it die on the closed pipe.
        drop(wfd);
        reap(pid);
        return Err(e.into());
    }
    // SAFETY: pidfd_open on our own child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    let pidfd = if pidfd < 0 {
        return Err(spawn_err(io::Error::last_os_error()));
    } else {
        // SAFETY: a fresh fd returned by the kernel.
        unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) }
    };
    // SAFETY: writing one byte to our own pipe releases the child.
    let n = unsafe { libc::write(wfd.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    if n != 1 {
        return Err(spawn_err(io::Error::last_os_error()));
    }
    drop(wfd);
    Ok(TrackedChild {
        pid,
        // SAFETY: the AsyncFd owns the pidfd for as long as it is registered.
        pidfd: unsafe { AsyncFd::register(pidfd) }
            .map_err(io::Error::from)
            .map_err(spawn_err)?,
    })
}

fn reap(pid: u32) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    status
}

impl TrackedChild {
    /// Wait for the child to exit; returns its `wait(2)` status.
    pub async fn wait(&self) -> io::Result<i32> {
        loop {
            let mut guard = self.pidfd.readable().await?;
            let mut status = 0;
            // SAFETY: non-blocking wait for our own child.
            let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG) };
            if r == self.pid as libc::pid_t {
                return Ok(status);
            }
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            guard.clear_ready();
        }
    }

    /// Send SIGTERM to the child (only ever our own child).
    pub fn terminate(&self) {
        // SAFETY: signalling our own child by pid while it is not yet reaped.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
    }
}

/// Exit code a shell would report for a `wait(2)` status.
pub fn shell_exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

//! The live event source: loads casa's kernel programs, attaches them, and reads the ring
//! buffer. This is the only module that touches the kernel; everything after it consumes
//! raw record bytes (`crate::decode`) exactly as replay does.
//!
//! ```text
//! kernel programs ──EVENTS ring──▶ RingReader::drain ──bytes──▶ decode / recording
//!        ▲ TRACKED (tgids, seeded by Sensor::track, extended on fork)
//!        ▲ CONFIG (offsets from BTF, casa's tgid, --all-processes)
//!        └ STATS (per-CPU loss counters) ──▶ Sensor::kernel_stats
//! ```

pub mod btf;
pub mod enforce;
pub mod prereq;

use std::{io, time::Duration};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, CgroupAttachMode, CgroupSockAddr, TracePoint},
};
use casa_common::{
    config::KernelConfig,
    respond::{FetchedKey, TRACK_SEEN},
    stats,
};
use tokio::io::unix::AsyncFd;

/// The compiled kernel programs, built by `build.rs`.
#[cfg(not(feature = "kernel-stub"))]
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/casa"));
/// A `kernel-stub` build (`make test-unit`) embeds no kernel programs: [`Sensor::load`]
/// refuses with [`SensorError::NoKernelPrograms`] before looking at this.
#[cfg(feature = "kernel-stub")]
static EBPF_OBJECT: &[u8] = &[];

/// True when this build embeds casa's kernel programs (false in a `kernel-stub` build).
pub const HAS_KERNEL_PROGRAMS: bool = cfg!(not(feature = "kernel-stub"));

/// Errors from loading, attaching and driving the kernel side. Each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// This binary was built with the `kernel-stub` feature (`make test-unit`): it can replay,
    /// dump and check, but it has no eBPF programs to load.
    #[error(
        "this casa was built without its kernel programs (cargo feature `kernel-stub`, used by \
         `make test-unit`); build it with `make build` to run the sensor"
    )]
    NoKernelPrograms,
    #[error(
        "casa's sensor must run as root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN); running as uid {0}"
    )]
    NotRoot(u32),
    #[error("cannot mount tracefs on /sys/kernel/tracing: {0}")]
    Tracefs(#[source] io::Error),
    #[error("kernel BTF: {0}")]
    Btf(String),
    #[error("tracepoint `{tracepoint}` does not have the layout casa was built for: {detail}")]
    Layout { tracepoint: String, detail: String },
    #[error("loading the eBPF object: {0}")]
    Object(#[source] aya::EbpfError),
    #[error("program `{0}` is missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("map `{0}` is missing from the eBPF object")]
    MissingMap(&'static str),
    #[error(
        "loading program `{program}` for `{hook}` (verifier rejected it or the hook is missing): {source}"
    )]
    Load {
        program: &'static str,
        hook: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("attaching program `{program}` to `{hook}`: {source}")]
    Attach {
        program: &'static str,
        hook: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map `{map}`: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("ring buffer: {0}")]
    Ring(#[source] io::Error),
    #[error("--enforce: no cgroup v2 hierarchy to attach deny_network to: {0}")]
    Cgroup(#[source] io::Error),
}

/// How to load the sensor.
#[derive(Clone, Debug)]
pub struct SensorOptions {
    /// Report open/connect for every process, not only tracked trees.
    pub all_processes: bool,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Wake the reader for every record, not in batches (`casa run --enforce`: a decision,
    /// and so a response, never waits for the reader's timer).
    pub wake_every_record: bool,
}

impl Default for SensorOptions {
    fn default() -> Self {
        Self {
            all_processes: false,
            ring_bytes: 16 << 20,
            wake_every_record: false,
        }
    }
}

/// Syscall and scheduler tracepoints: (program, category, tracepoint).
const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("sys_enter_execve", "syscalls", "sys_enter_execve"),
    ("sys_enter_execveat", "syscalls", "sys_enter_execveat"),
    ("sys_exit_execve", "syscalls", "sys_exit_execve"),
    ("sys_exit_execveat", "syscalls", "sys_exit_execveat"),
    ("sched_process_exit", "sched", "sched_process_exit"),
    ("sys_enter_openat", "syscalls", "sys_enter_openat"),
    ("sys_enter_openat2", "syscalls", "sys_enter_openat2"),
    ("sys_exit_openat", "syscalls", "sys_exit_openat"),
    ("sys_exit_openat2", "syscalls", "sys_exit_openat2"),
    ("sys_enter_connect", "syscalls", "sys_enter_connect"),
    ("sys_exit_connect", "syscalls", "sys_exit_connect"),
    ("sys_enter_open", "syscalls", "sys_enter_open"),
    ("sys_enter_creat", "syscalls", "sys_enter_creat"),
    ("sys_exit_open", "syscalls", "sys_exit_open"),
    ("sys_exit_creat", "syscalls", "sys_exit_creat"),
    ("sys_enter_sendto", "syscalls", "sys_enter_sendto"),
    ("sys_enter_sendmsg", "syscalls", "sys_enter_sendmsg"),
    ("sys_enter_sendmmsg", "syscalls", "sys_enter_sendmmsg"),
    ("sys_enter_bind", "syscalls", "sys_enter_bind"),
    ("sys_enter_listen", "syscalls", "sys_enter_listen"),
    ("sys_enter_accept", "syscalls", "sys_enter_accept"),
    ("sys_enter_accept4", "syscalls", "sys_enter_accept4"),
    ("sys_exit_sendto", "syscalls", "sys_exit_sendto"),
    ("sys_exit_sendmsg", "syscalls", "sys_exit_sendmsg"),
    ("sys_exit_sendmmsg", "syscalls", "sys_exit_sendmmsg"),
    ("sys_exit_bind", "syscalls", "sys_exit_bind"),
    ("sys_exit_listen", "syscalls", "sys_exit_listen"),
    ("sys_exit_accept", "syscalls", "sys_exit_accept"),
    ("sys_exit_accept4", "syscalls", "sys_exit_accept4"),
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
    ("sock_send_length", "sock", "sock_send_length"),
    ("io_uring_create", "io_uring", "io_uring_create"),
    ("sys_enter_setsid", "syscalls", "sys_enter_setsid"),
    ("sys_exit_setsid", "syscalls", "sys_exit_setsid"),
    ("sys_enter_ptrace", "syscalls", "sys_enter_ptrace"),
    ("sys_exit_ptrace", "syscalls", "sys_exit_ptrace"),
    (
        "sys_enter_memfd_create",
        "syscalls",
        "sys_enter_memfd_create",
    ),
    ("sys_exit_memfd_create", "syscalls", "sys_exit_memfd_create"),
    ("sys_enter_rename", "syscalls", "sys_enter_rename"),
    ("sys_exit_rename", "syscalls", "sys_exit_rename"),
    ("sys_enter_renameat", "syscalls", "sys_enter_renameat"),
    ("sys_exit_renameat", "syscalls", "sys_exit_renameat"),
    ("sys_enter_renameat2", "syscalls", "sys_enter_renameat2"),
    ("sys_exit_renameat2", "syscalls", "sys_exit_renameat2"),
    ("sys_enter_link", "syscalls", "sys_enter_link"),
    ("sys_exit_link", "syscalls", "sys_exit_link"),
    ("sys_enter_linkat", "syscalls", "sys_enter_linkat"),
    ("sys_exit_linkat", "syscalls", "sys_exit_linkat"),
    ("sys_enter_symlink", "syscalls", "sys_enter_symlink"),
    ("sys_exit_symlink", "syscalls", "sys_exit_symlink"),
    ("sys_enter_symlinkat", "syscalls", "sys_enter_symlinkat"),
    ("sys_exit_symlinkat", "syscalls", "sys_exit_symlinkat"),
    ("sys_enter_unlink", "syscalls", "sys_enter_unlink"),
    ("sys_exit_unlink", "syscalls", "sys_exit_unlink"),
    ("sys_enter_unlinkat", "syscalls", "sys_enter_unlinkat"),
    ("sys_exit_unlinkat", "syscalls", "sys_exit_unlinkat"),
    ("sys_enter_chmod", "syscalls", "sys_enter_chmod"),
    ("sys_exit_chmod", "syscalls", "sys_exit_chmod"),
    ("sys_enter_fchmodat", "syscalls", "sys_enter_fchmodat"),
    ("sys_exit_fchmodat", "syscalls", "sys_exit_fchmodat"),
    ("sys_enter_fchmodat2", "syscalls", "sys_enter_fchmodat2"),
    ("sys_exit_fchmodat2", "syscalls", "sys_exit_fchmodat2"),
    ("sys_enter_fchmod", "syscalls", "sys_enter_fchmod"),
    ("sys_exit_fchmod", "syscalls", "sys_exit_fchmod"),
];

/// Kernel-side counters, per CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// `per_cpu[cpu][index]`, indices from `casa_common::stats`.
    pub per_cpu: Vec<Vec<u64>>,
}

impl KernelStats {
    pub fn total(&self, index: u32) -> u64 {
        self.per_cpu
            .iter()
            .map(|c| c.get(index as usize).copied().unwrap_or(0))
            .sum()
    }

    /// Events the kernel could not hand over (ring full or pending-state full).
    pub fn lost(&self) -> u64 {
        [
            stats::LOST_EXEC,
            stats::LOST_FORK,
            stats::LOST_EXIT,
            stats::LOST_OPEN,
            stats::LOST_CONNECT,
            stats::LOST_OTHER,
            stats::PENDING_FULL,
        ]
        .iter()
        .map(|&i| self.total(i))
        .sum()
    }

    /// `(name, total)` for every counter, in index order.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        stats::NAMES
            .iter()
            .map(|&(i, n)| (n, self.total(i)))
            .collect()
    }

    /// One line for logs: non-zero counters with their per-CPU split.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for &(i, name) in stats::NAMES.iter() {
            let total = self.total(i);
            if total > 0 {
                let split: Vec<String> = self
                    .per_cpu
                    .iter()
                    .map(|c| c.get(i as usize).copied().unwrap_or(0).to_string())
                    .collect();
                parts.push(format!("{name}={total} (per cpu {})", split.join("/")));
            }
        }
        if parts.is_empty() {
            "no loss".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Loaded and attached kernel programs.
pub struct Sensor {
    // Keeps programs and links alive for as long as the sensor lives.
    _ebpf: Ebpf,
    ring: Option<RingBuf<MapData>>,
    tracked: HashMap<MapData, u32, u32>,
    stats: PerCpuArray<MapData, u64>,
    respond: Array<MapData, u32>,
    fetched: HashMap<MapData, FetchedKey, u8>,
    /// The cgroup v2 root the `deny_network` programs are attached to (`--enforce`); dropped
    /// after `_ebpf`, so the programs are detached before casa unmounts it.
    cgroup: Option<enforce::CgroupRoot>,
    /// True when loading mounted tracefs (it stays mounted).
    pub mounted_tracefs: bool,
}

/// The `deny_network` programs: (program, hook) for errors.
const CGROUP_PROGRAMS: [(&str, &str); 4] = [
    ("respond_connect4", "cgroup/connect4"),
    ("respond_connect6", "cgroup/connect6"),
    ("respond_sendmsg4", "cgroup/sendmsg4"),
    ("respond_sendmsg6", "cgroup/sendmsg6"),
];

impl Sensor {
    /// Check prerequisites, load every program, attach it, and take the maps.
    pub fn load(opts: &SensorOptions) -> Result<Self, SensorError> {
        if !HAS_KERNEL_PROGRAMS {
            return Err(SensorError::NoKernelPrograms);
        }
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if uid != 0 {
            return Err(SensorError::NotRoot(uid));
        }
        let mounted_tracefs = prereq::ensure_tracefs()?;
        prereq::check_layouts()?;
        let offsets = btf::kernel_offsets(btf::VMLINUX_BTF)?;
        // Without it a script exec still reports the script by name, not by its own file.
        let fput = std::fs::read_to_string("/proc/kallsyms")
            .map(|k| btf::kallsyms_address(&k, "____fput"))
            .unwrap_or(0);
        let config = KernelConfig {
            self_tgid: std::process::id(),
            all_processes: u32::from(opts.all_processes),
            fput_fn_lo: fput as u32,
            fput_fn_hi: (fput >> 32) as u32,
            // 0: every record wakes the reader.
            wakeup_bytes: if opts.wake_every_record {
                0
            } else {
                wakeup_bytes(opts.ring_bytes)
            },
            _pad: 0,
            offsets,
        };
        let kernel_btf = Btf::from_sys_fs().map_err(|e| SensorError::Btf(e.to_string()))?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&kernel_btf))
            .override_global("CONFIG", &config, true)
            .map_max_entries("EVENTS", opts.ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(SensorError::Object)?;

        for &(name, category, tp) in TRACEPOINTS {
            let hook = format!("tracepoint {category}:{tp}");
            let prog: &mut TracePoint = program(&mut ebpf, name)?;
            prog.load().map_err(|source| SensorError::Load {
                program: name,
                hook: hook.clone(),
                source,
            })?;
            prog.attach(category, tp)
                .map_err(|source| SensorError::Attach {
                    program: name,
                    hook,
                    source,
                })?;
        }
        // `sched_process_exec_script` and `sched_process_exec_ctx` are attached before
        // `sched_process_exec`: probes of one tracepoint run in attach order, and the last
        // reads what the first two gathered.
        for (name, hook_fn) in [
            ("sched_process_fork", "sched_process_fork"),
            ("sched_process_exec_script", "sched_process_exec"),
            ("sched_process_exec_ctx", "sched_process_exec"),
            ("sched_process_exec", "sched_process_exec"),
            ("io_uring_submit_req", "io_uring_submit_req"),
        ] {
            let hook = format!("tp_btf {hook_fn}");
            let prog: &mut BtfTracePoint = program(&mut ebpf, name)?;
            prog.load(hook_fn, &kernel_btf)
                .map_err(|source| SensorError::Load {
                    program: name,
                    hook: hook.clone(),
                    source,
                })?;
            prog.attach().map_err(|source| SensorError::Attach {
                program: name,
                hook,
                source,
            })?;
        }
        let ring = RingBuf::try_from(take_map(&mut ebpf, "EVENTS")?).map_err(|source| {
            SensorError::Map {
                map: "EVENTS",
                source,
            }
        })?;
        let tracked = HashMap::try_from(take_map(&mut ebpf, "TRACKED")?).map_err(|source| {
            SensorError::Map {
                map: "TRACKED",
                source,
            }
        })?;
        let stats = PerCpuArray::try_from(take_map(&mut ebpf, "STATS")?).map_err(|source| {
            SensorError::Map {
                map: "STATS",
                source,
            }
        })?;
        let respond = Array::try_from(take_map(&mut ebpf, "RESPOND")?).map_err(|source| {
            SensorError::Map {
                map: "RESPOND",
                source,
            }
        })?;
        let fetched = HashMap::try_from(take_map(&mut ebpf, "FETCHED")?).map_err(|source| {
            SensorError::Map {
                map: "FETCHED",
                source,
            }
        })?;
        Ok(Self {
            _ebpf: ebpf,
            ring: Some(ring),
            tracked,
            stats,
            respond,
            fetched,
            cgroup: None,
            mounted_tracefs,
        })
    }

    /// Attach the `deny_network` programs to the cgroup v2 root (mounting one privately when
    /// the host has only v1). Every process on the host passes through them; they refuse only
    /// processes whose `TRACKED` bits carry `TRACK_DENY_NETWORK`.
    pub fn enable_enforcement(&mut self) -> Result<&std::path::Path, SensorError> {
        let root = enforce::CgroupRoot::find_or_mount().map_err(SensorError::Cgroup)?;
        let dir = std::fs::File::open(root.path()).map_err(SensorError::Cgroup)?;
        for (name, hook) in CGROUP_PROGRAMS {
            let hook = format!("{hook} at {}", root.path().display());
            let prog: &mut CgroupSockAddr = program(&mut self._ebpf, name)?;
            prog.load().map_err(|source| SensorError::Load {
                program: name,
                hook: hook.clone(),
                source,
            })?;
            // A BPF link (kernel ≥ 5.7) always shares the cgroup with other programs; its
            // flags must be 0, which is what `Single` passes.
            prog.attach(&dir, CgroupAttachMode::Single)
                .map_err(|source| SensorError::Attach {
                    program: name,
                    hook,
                    source,
                })?;
        }
        Ok(self.cgroup.insert(root).path())
    }

    /// Set the preventive rules in force (`casa_common::respond::PREVENT_*` bits).
    pub fn set_prevention(&mut self, bits: u32) -> Result<(), SensorError> {
        self.respond
            .set(0, bits, 0)
            .map_err(|source| SensorError::Map {
                map: "RESPOND",
                source,
            })
    }

    /// Add response bits (`TRACK_KILL`, `TRACK_DENY_NETWORK`) to a tracked process. Returns
    /// false, changing nothing, when `tgid` is not tracked: responses never reach a process
    /// outside the agents' trees.
    pub fn order(&mut self, tgid: u32, bits: u32) -> Result<bool, SensorError> {
        let Ok(old) = self.tracked.get(&tgid, 0) else {
            return Ok(false);
        };
        self.tracked
            .insert(tgid, old | bits, 0)
            .map_err(|source| SensorError::Map {
                map: "TRACKED",
                source,
            })?;
        Ok(true)
    }

    /// Record a file with fetched or decoded content (`dev` as `stat(2)` gives it): running it
    /// is refused under `PREVENT_FETCHED_EXEC`.
    pub fn mark_fetched(&mut self, dev: u64, ino: u64) -> Result<(), SensorError> {
        let key = FetchedKey {
            ino,
            dev: enforce::kernel_dev(dev),
            _pad: 0,
        };
        self.fetched
            .insert(key, 1, 0)
            .map_err(|source| SensorError::Map {
                map: "FETCHED",
                source,
            })
    }

    /// Start reporting open/connect for `tgid` (its future children follow automatically).
    /// Response bits it already carries are kept.
    pub fn track(&mut self, tgid: u32) -> Result<(), SensorError> {
        let bits = self.tracked.get(&tgid, 0).unwrap_or(0) | TRACK_SEEN;
        self.tracked
            .insert(tgid, bits, 0)
            .map_err(|source| SensorError::Map {
                map: "TRACKED",
                source,
            })
    }

    /// Stop tracking `tgid` (absent is fine).
    pub fn untrack(&mut self, tgid: u32) {
        let _ = self.tracked.remove(&tgid);
    }

    /// Whether `tgid` is in the kernel's tracked set.
    pub fn is_tracked(&self, tgid: u32) -> bool {
        self.tracked.get(&tgid, 0).is_ok()
    }

    /// The kernel's loss and degradation counters.
    pub fn kernel_stats(&self) -> Result<KernelStats, SensorError> {
        let mut per_cpu: Vec<Vec<u64>> = Vec::new();
        for index in 0..stats::COUNT {
            let values = self
                .stats
                .get(&index, 0)
                .map_err(|source| SensorError::Map {
                    map: "STATS",
                    source,
                })?;
            for (cpu, v) in values.iter().enumerate() {
                if per_cpu.len() <= cpu {
                    per_cpu.push(vec![0; stats::COUNT as usize]);
                }
                per_cpu[cpu][index as usize] = *v;
            }
        }
        Ok(KernelStats { per_cpu })
    }

    /// Hand out the ring reader (once).
    pub fn take_ring(&mut self) -> Result<RingReader, SensorError> {
        let ring = self.ring.take().ok_or(SensorError::MissingMap("EVENTS"))?;
        Ok(RingReader {
            // SAFETY: the AsyncFd owns the ring buffer (and its fd) while registered.
            fd: unsafe { AsyncFd::register(ring) }
                .map_err(io::Error::from)
                .map_err(SensorError::Ring)?,
            poll: POLL_MIN,
        })
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, SensorError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    ebpf.program_mut(name)
        .ok_or(SensorError::MissingProgram(name))?
        .try_into()
        .map_err(|_| SensorError::MissingProgram(name))
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, SensorError> {
    ebpf.take_map(name).ok_or(SensorError::MissingMap(name))
}

/// Bytes waiting in a ring of `ring_bytes` past which every record wakes the reader: an
/// eighth of the ring, so a burst is read long before the ring fills, while the reader's
/// timer (see [`RingReader::drain`]) collects quieter traffic without a wake-up per record.
pub fn wakeup_bytes(ring_bytes: u32) -> u32 {
    ring_bytes / 8
}

/// Asynchronous reader of the `EVENTS` ring buffer.
pub struct RingReader {
    fd: AsyncFd<RingBuf<MapData>>,
    /// How long the next [`Self::drain`] waits for a wake-up before it looks anyway.
    poll: Duration,
}

/// The reader's timer right after records arrived.
pub const POLL_MIN: Duration = Duration::from_millis(1);
/// The reader's timer after quiet polls (each quiet poll doubles it up to this).
pub const POLL_MAX: Duration = Duration::from_millis(4);

impl RingReader {
    /// Wait until records are available — a wake-up from the kernel (execs, connects, a ring
    /// past [`wakeup_bytes`]) or the timer, which collects records written without one —
    /// then hand each to `f`; returns how many (0 when the timer found none).
    pub async fn drain<F: FnMut(&[u8])>(&mut self, mut f: F) -> Result<usize, SensorError> {
        let wait = self.poll;
        let woken = tokio::select! {
            guard = self.fd.readable_mut() => Some(guard.map_err(SensorError::Ring)?),
            () = tokio::time::sleep(wait) => None,
        };
        let n = match woken {
            Some(mut guard) => {
                let ring = guard.get_inner_mut();
                let mut n = 0;
                while let Some(item) = ring.next() {
                    f(&item);
                    n += 1;
                }
                guard.clear_ready();
                n
            }
            None => self.drain_now(&mut f),
        };
        self.poll = if n > 0 {
            POLL_MIN
        } else {
            (self.poll * 2).min(POLL_MAX)
        };
        Ok(n)
    }

    /// Hand every record available right now to `f` without waiting (final flush).
    pub fn drain_now<F: FnMut(&[u8])>(&mut self, mut f: F) -> usize {
        let ring = self.fd.get_mut();
        let mut n = 0;
        while let Some(item) = ring.next() {
            f(&item);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `kernel-stub` build refuses to load, whoever runs it, with the error that says why.
    #[cfg(feature = "kernel-stub")]
    #[test]
    fn stub_build_refuses_to_load() {
        let opts = SensorOptions {
            all_processes: false,
            ring_bytes: 1 << 16,
            wake_every_record: false,
        };
        let Err(err) = Sensor::load(&opts) else {
            panic!("a stub build cannot load");
        };
        assert!(matches!(err, SensorError::NoKernelPrograms), "{err}");
        assert!(err.to_string().contains("kernel-stub"), "{err}");
        assert!(EBPF_OBJECT.is_empty());
    }

    /// A normal build embeds the object build.rs produced (an ELF file).
    #[cfg(not(feature = "kernel-stub"))]
    #[test]
    fn normal_build_embeds_the_kernel_programs() {
        assert!(EBPF_OBJECT.starts_with(b"\x7fELF"), "not an ELF object");
    }
}

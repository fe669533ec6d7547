//! What `/proc` says about running processes: the start-up scan that seeds the pipeline
//! (an [`crate::pipeline::Input::Scan`]) and the children of a process that must be tracked
//! along with it.
//!
//! Sits at the live edge, before the pipeline: replay never reads `/proc` (a recording holds
//! the scan it was seeded with).

use std::fs;

use crate::recording::{Seed, SeedProcess};

/// Most processes [`track_tree`] adds for one root (a bound against a fork bomb).
const TREE_LIMIT: usize = 10_000;

/// One running process as `/proc` describes it, with its start time (for ordering).
fn read_proc(pid: u32) -> Option<(u64, SeedProcess)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    let comm = fs::read(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.strip_suffix(b"\n").unwrap_or(&comm).to_vec();
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.into_os_string().into_encoded_bytes())
        .unwrap_or_default();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv: Vec<Vec<u8>> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    // The name the program was started as (what the kernel's exec event calls `filename`):
    // argv[0] when it is a path, so the invocation rule sees the symlink-level directory.
    let filename = argv
        .first()
        .filter(|a| a.contains(&b'/'))
        .cloned()
        .unwrap_or_else(|| exe.clone());
    Some((
        start,
        SeedProcess {
            pid,
            ppid,
            comm,
            exe,
            filename,
            argv,
        },
    ))
}

/// Every process in `/proc` but this one, parents before children (by start time), as the
/// scan input at kernel time `now_ns`.
pub fn scan(now_ns: u64) -> Seed {
    let me = std::process::id();
    let mut procs: Vec<(u64, SeedProcess)> = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&p| p != me)
                .filter_map(read_proc)
                .collect()
        })
        .unwrap_or_default();
    procs.sort_by_key(|(start, p)| (*start, p.pid));
    Seed {
        now_ns,
        processes: procs.into_iter().map(|(_, p)| p).collect(),
    }
}

/// `pid` names a process that exists (a zombie still counts until it is reaped). A reused pid
/// also counts as running: the check errs towards keeping a session open.
pub fn is_running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled; nothing
    // is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The children of every thread of `pid` (`/proc/PID/task/*/children`).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|t| {
            fs::read_to_string(t.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Track `pid` and the descendants it already has (children forked before the kernel knew
/// about it are found in `/proc`; later ones the kernel adds itself). A pid that `track`
/// refuses is reported to `refused` and its subtree is skipped. Returns how many were tracked.
pub fn track_tree<E>(
    pid: u32,
    mut track: impl FnMut(u32) -> Result<(), E>,
    mut refused: impl FnMut(u32, E),
) -> usize {
    let mut stack = vec![pid];
    let mut n = 0;
    while let Some(p) = stack.pop() {
        if let Err(e) = track(p) {
            refused(p, e);
            continue;
        }
        n += 1;
        if n > TREE_LIMIT {
            break;
        }
        stack.extend(children(p));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_our_parent_and_orders_parents_first() {
        let seed = scan(7);
        assert_eq!(seed.now_ns, 7);
        let me = std::process::id();
        assert!(seed.processes.iter().all(|p| p.pid != me), "casa itself");
        let parent = std::os::unix::process::parent_id();
        let at = |pid: u32| seed.processes.iter().position(|p| p.pid == pid);
        let p = at(parent).expect("the test's parent process is in the scan");
        if let Some(gp) = at(seed.processes[p].ppid) {
            assert!(gp < p, "a parent comes before its child");
        }
    }

    #[test]
    fn a_running_process_is_running_and_a_reaped_one_is_not() {
        assert!(is_running(std::process::id()));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("reap true");
        // The pid could be reused in between, but not by a process this quickly, in practice.
        assert!(!is_running(pid));
        assert!(!is_running(u32::MAX));
    }

    #[test]
    fn track_tree_walks_children_and_skips_refused_subtrees() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let me = std::process::id();
        let mut seen = Vec::new();
        let n = track_tree(
            me,
            |p| -> Result<(), ()> {
                seen.push(p);
                Ok(())
            },
            |_, ()| {},
        );
        assert!(seen.contains(&me) && seen.contains(&child.id()), "{seen:?}");
        assert_eq!(n, seen.len());
        let mut refused = Vec::new();
        let n = track_tree(
            me,
            |p| if p == me { Err("no") } else { Ok(()) },
            |p, e| refused.push((p, e)),
        );
        assert_eq!((n, refused), (0, vec![(me, "no")]));
        let _ = child.kill();
        let _ = child.wait();
    }
}

//! The kernel side of responses (`casa run --enforce`): the cgroup v2 hierarchy the
//! `deny_network` programs attach to, and the user ↔ kernel encodings the response maps use.
//!
//! The host may have only cgroup v1 mounted; cgroup v2's root still holds every process, so
//! casa mounts it privately when no cgroup2 mount exists, and unmounts it when the sensor is
//! dropped (the programs' links go first: the sensor drops its `Ebpf` before this).

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

/// Where casa mounts cgroup v2 when the host has none (one directory per casa process, so
/// two daemons never share one).
pub const MOUNT_BASE: &str = "/run/casa";

/// The cgroup v2 root casa attaches to; unmounted on drop when casa mounted it.
#[derive(Debug)]
pub struct CgroupRoot {
    path: PathBuf,
    mounted: bool,
}

impl CgroupRoot {
    /// The host's cgroup2 mount, or a private one mounted now.
    pub fn find_or_mount() -> io::Result<Self> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        if let Some(path) = cgroup2_mount(&mountinfo) {
            return Ok(Self {
                path,
                mounted: false,
            });
        }
        let path = Path::new(MOUNT_BASE).join(format!("cgroup2-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        let target = CString::new(path.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                c"none".as_ptr(),
                target.as_ptr(),
                c"cgroup2".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            let _ = std::fs::remove_dir(&path);
            return Err(e);
        }
        Ok(Self {
            path,
            mounted: true,
        })
    }

    /// The hierarchy's root directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CgroupRoot {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        if let Ok(target) = CString::new(self.path.as_os_str().as_bytes()) {
            // SAFETY: a NUL-terminated path; MNT_DETACH needs nothing else.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The mount point of the first cgroup2 file system in a `/proc/self/mountinfo` text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(unescape(point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Send `SIGKILL` to process `pid` through a pidfd (so that the signal reaches the process
/// opened, never a later process given the same pid). Refuses pid 0, 1 and casa itself.
pub fn kill(pid: u32) -> io::Result<()> {
    if pid <= 1 || pid == std::process::id() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("refusing to signal pid {pid}"),
        ));
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is the pidfd just opened; a null siginfo is allowed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd as libc::c_int,
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    let err = (rc != 0).then(io::Error::last_os_error);
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd as libc::c_int) };
    err.map_or(Ok(()), Err)
}

/// A `stat(2)` device number in the kernel's internal `major << 20 | minor` encoding (the
/// inverse of what `crate::decode` does with the kernel's `s_dev`).
pub fn kernel_dev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    ((major as u32) << 20) | (minor as u32 & 0xfffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_and_unescapes_it() {
        let text = "22 1 0:21 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                    30 22 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                    40 1 0:40 / /run/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(cgroup2_mount(text), Some(PathBuf::from("/run/my cg")));
        assert_eq!(
            cgroup2_mount("30 22 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
            None
        );
    }

    #[test]
    fn kernel_dev_inverts_the_decoders_encoding() {
        // 254:0 (a virtio disk) is 0xfe00 in stat(2) and 254 << 20 in the kernel.
        assert_eq!(kernel_dev(0xfe00), 254 << 20);
        // A large minor and major survive the round trip.
        for (major, minor) in [(8u32, 1u32), (259, 3), (4095, 1 << 19), (0, 300)] {
            let kernel = (major << 20) | minor;
            assert_eq!(kernel_dev(crate::decode::user_dev(kernel)), kernel);
        }
    }
}

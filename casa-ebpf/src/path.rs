//! Absolute path of a `struct file`, walked in the kernel.
//!
//! The kernel's own `d_path` is reachable from BPF only through `bpf_d_path`, which needs an
//! fentry or LSM program; casa's target hosts block BPF trampolines, so the programs walk the
//! dentry and mount chain themselves, the way `prepend_path()` in `fs/d_path.c` does:
//! component names are prepended right to left into `PathScratch::buf`, and crossing a mount
//! root continues at the mountpoint in the parent mount. The result is the path from the root
//! of the mount tree (a chroot or mount namespace is not cut off).
//!
//! "Deleted" follows `d_path`: an unhashed dentry that is not its own parent (unlinked), or a
//! dentry that is its own parent but not the root of its mount (a pseudo file such as a
//! memfd, which `d_path` prints as `/memfd:NAME (deleted)`).
//!
//! Verifier notes: each offset into the buffer is written to and read back from map memory
//! (`opaque`) before masking, so the compiler cannot prove a mask redundant and drop it.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;
use casa_common::wire::{FileId, PATH_MAX, StdioFd};

use crate::{
    maps::{PATHS, PathScratch},
    util::{config, read_kernel},
};

/// Most path components walked (`/a/b/...`): deeper paths keep their last components.
const MAX_DEPTH: usize = 40;
/// Longest component name (`NAME_MAX`).
const NAME_MASK: usize = 255;
const PATH_MASK: usize = PATH_MAX - 1;

/// Where a resolved path sits in the per-CPU workspace.
pub struct Resolved {
    pub scratch: *mut PathScratch,
    pub deleted: bool,
    pub truncated: bool,
}

/// Round-trip `v` through map memory so that the compiler knows nothing about the result.
///
/// # Safety
/// `ps` must point to the per-CPU `PathScratch` workspace (map memory, valid for reads and
/// writes while the program runs), and no reference to its `tmp` field may be alive.
#[inline(always)]
unsafe fn opaque(ps: *mut PathScratch, v: u64) -> u64 {
    // SAFETY: ps is the per-CPU workspace.
    unsafe {
        core::ptr::write_volatile(&raw mut (*ps).tmp, v);
        core::ptr::read_volatile(&raw const (*ps).tmp)
    }
}

impl Resolved {
    /// Offset of the path's first byte in `buf` (in `[1, PATH_MAX]`; `PATH_MAX` = empty).
    #[inline(always)]
    pub fn start(&self) -> usize {
        // SAFETY: scratch is the per-CPU workspace.
        unsafe {
            (core::ptr::read_volatile(&raw const (*self.scratch).pos) as usize) & (2 * PATH_MAX - 1)
        }
    }
}

/// Resolve the path of the `struct file` at `file`.
///
/// # Safety
/// `file` must be a kernel address (reads are checked, not trusted).
#[inline(always)]
pub unsafe fn resolve(file: u64) -> Option<Resolved> {
    // SAFETY: as resolve_path; f_path is a struct path inside the file.
    unsafe { resolve_path(file + config!(offsets.file_f_path) as u64) }
}

/// Resolve a `struct path` (at `fpath`) to its absolute name.
///
/// # Safety
/// `fpath` must be a kernel address (reads are checked, not trusted).
#[inline(always)]
pub unsafe fn resolve_path(fpath: u64) -> Option<Resolved> {
    let ps = PATHS.get_ptr_mut(0)?;
    // SAFETY: reads of kernel structs through checked probe reads; writes into our workspace.
    unsafe {
        let mut vfsmnt: u64 = read_kernel(fpath, config!(offsets.path_mnt))?;
        let mut dentry: u64 = read_kernel(fpath, config!(offsets.path_dentry))?;
        let leaf = dentry;
        let mut mnt = vfsmnt.wrapping_sub(config!(offsets.mount_mnt) as u64);
        let buf = (*ps).buf.as_mut_ptr();
        core::ptr::write_volatile(&raw mut (*ps).pos, PATH_MAX as u64);
        let mut truncated = true;
        let mut leaf_is_pseudo = false;

        for depth in 0..MAX_DEPTH {
            let mnt_root: u64 = read_kernel(vfsmnt, config!(offsets.vfsmount_mnt_root))?;
            let parent: u64 = read_kernel(dentry, config!(offsets.dentry_parent))?;
            if dentry == mnt_root {
                let mnt_parent: u64 = read_kernel(mnt, config!(offsets.mount_parent))?;
                if mnt_parent == mnt || mnt_parent == 0 {
                    truncated = false;
                    break;
                }
                dentry = read_kernel(mnt, config!(offsets.mount_mountpoint))?;
                mnt = mnt_parent;
                vfsmnt = mnt + config!(offsets.mount_mnt) as u64;
                continue;
            }
            let name: u64 = read_kernel(dentry, config!(offsets.dentry_name_ptr))?;
            let len: u32 = read_kernel(dentry, config!(offsets.dentry_name_len))?;
            let len = (opaque(ps, len as u64) as usize) & NAME_MASK;
            let pos =
                (core::ptr::read_volatile(&raw const (*ps).pos) as usize) & (2 * PATH_MAX - 1);
            if pos <= len + 1 {
                break;
            }
            let new = (opaque(ps, (pos - len - 1) as u64) as usize) & PATH_MASK;
            *buf.add(new) = b'/';
            bpf_probe_read_kernel(buf.add(new + 1).cast(), len as u32, name as *const _);
            core::ptr::write_volatile(&raw mut (*ps).pos, new as u64);
            if dentry == parent {
                // Its own parent but not a mount root: a pseudo file (memfd, anon inode)
                // or a disconnected dentry. Nothing above it to walk.
                leaf_is_pseudo = depth == 0;
                truncated = false;
                break;
            }
            dentry = parent;
        }
        let pos = (core::ptr::read_volatile(&raw const (*ps).pos) as usize) & (2 * PATH_MAX - 1);
        if pos == PATH_MAX {
            // The file is a mount root itself, e.g. "/".
            let new = PATH_MAX - 1;
            *buf.add(new) = b'/';
            core::ptr::write_volatile(&raw mut (*ps).pos, new as u64);
        }
        let pprev: u64 = read_kernel(leaf, config!(offsets.dentry_hash_pprev)).unwrap_or(1);
        let leaf_parent: u64 = read_kernel(leaf, config!(offsets.dentry_parent)).unwrap_or(0);
        let deleted = leaf_is_pseudo || (pprev == 0 && leaf_parent != leaf);
        Some(Resolved {
            scratch: ps,
            deleted,
            truncated,
        })
    }
}

/// The `struct file` behind `fd` in the current task's fd table.
///
/// # Safety
/// `task` must be the current `task_struct` address.
#[inline(always)]
pub unsafe fn file_of_fd(task: u64, fd: u64) -> Option<u64> {
    // SAFETY: checked probe reads along task->files->fdt->fd[fd].
    unsafe {
        let files: u64 = read_kernel(task, config!(offsets.task_files))?;
        let fdt: u64 = read_kernel(files, config!(offsets.files_fdt))?;
        let max: u32 = read_kernel(fdt, config!(offsets.fdtable_max_fds))?;
        if fd >= max as u64 {
            return None;
        }
        let arr: u64 = read_kernel(fdt, config!(offsets.fdtable_fd))?;
        let file: u64 = read_kernel(arr, (fd * 8) as u32)?;
        (file != 0).then_some(file)
    }
}

/// The current task's executable (`mm->exe_file`), right after an exec.
///
/// # Safety
/// `task` must be the current `task_struct` address.
#[inline(always)]
pub unsafe fn exe_file(task: u64) -> Option<u64> {
    // SAFETY: checked probe reads along task->mm->exe_file.
    unsafe {
        let mm: u64 = read_kernel(task, config!(offsets.task_mm))?;
        let file: u64 = read_kernel(mm, config!(offsets.mm_exe_file))?;
        (file != 0).then_some(file)
    }
}

/// The current task's working directory (`task->fs->pwd`) as a `struct path` address.
///
/// # Safety
/// `task` must be the current `task_struct` address.
#[inline(always)]
pub unsafe fn cwd(task: u64) -> Option<u64> {
    // SAFETY: checked probe read of task->fs.
    let fs: u64 = unsafe { read_kernel(task, config!(offsets.task_fs)) }?;
    (fs != 0).then(|| fs + config!(offsets.fs_pwd) as u64)
}

/// Append `/` and the kernel string at `name` to a resolved path (in the workspace, after
/// `PATH_MAX`); returns the appended length (0 when nothing could be read).
///
/// # Safety
/// `name` must be a kernel address.
#[inline(always)]
pub unsafe fn append(r: &Resolved, name: u64) -> usize {
    // SAFETY: the workspace is 2*PATH_MAX bytes; writes stay in [PATH_MAX, 2*PATH_MAX).
    unsafe {
        let buf = (*r.scratch).buf.as_mut_ptr();
        *buf.add(PATH_MAX) = b'/';
        let n = aya_ebpf::helpers::generated::bpf_probe_read_kernel_str(
            buf.add(PATH_MAX + 1).cast(),
            (PATH_MAX - 1) as u32,
            name as *const _,
        );
        if n <= 1 { 0 } else { n as usize }
    }
}

/// Copy a resolved path and `extra` bytes appended after it (see [`append`]) to `dst`
/// (at least `PATH_MAX` bytes); the result is cut to `PATH_MAX - 1` bytes.
///
/// # Safety
/// `dst` must point to at least `PATH_MAX` writable bytes of map memory.
#[inline(always)]
pub unsafe fn copy_with_extra_to(r: &Resolved, extra: usize, dst: *mut u8) -> usize {
    let start = r.start();
    if start >= PATH_MAX {
        return 0;
    }
    // SAFETY: start in [0, PATH_MAX); total bounded by the mask; src within the buffer.
    unsafe {
        let total = (opaque(r.scratch, (PATH_MAX - start + extra) as u64) as usize) & PATH_MASK;
        let src = (*r.scratch).buf.as_ptr().add(start & PATH_MASK);
        if bpf_probe_read_kernel(dst.cast(), total as u32, src.cast()) != 0 {
            return 0;
        }
        total
    }
}

/// Copy a resolved path to `dst` (which has at least `PATH_MAX` bytes); returns its length.
///
/// # Safety
/// `dst` must point to at least `PATH_MAX` writable bytes of map memory.
#[inline(always)]
pub unsafe fn copy_to(r: &Resolved, dst: *mut u8) -> usize {
    let start = r.start();
    if start >= PATH_MAX {
        return 0;
    }
    // SAFETY: start in [0, PATH_MAX); len in [1, PATH_MAX]; src within the 2*PATH_MAX buffer.
    unsafe {
        let len = (opaque(r.scratch, (PATH_MAX - start) as u64) as usize) & PATH_MASK;
        let src = (*r.scratch).buf.as_ptr().add(start & PATH_MASK);
        if bpf_probe_read_kernel(dst.cast(), len as u32, src.cast()) != 0 {
            return 0;
        }
        len
    }
}

/// `S_IFMT` and the file types casa tells apart.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;

/// Fill `out` with the identity of the `struct file` at `file`; returns its inode address.
///
/// # Safety
/// `file` must be a kernel address (reads are checked); `out` must be writable map memory.
#[inline(always)]
pub unsafe fn file_id(file: u64, out: *mut FileId) -> Option<u64> {
    // SAFETY: checked probe reads along file->f_inode->{i_ino, i_mode, i_sb->s_dev}.
    unsafe {
        let inode: u64 = read_kernel(file, config!(offsets.file_f_inode))?;
        let ino: u64 = read_kernel(inode, config!(offsets.inode_i_ino))?;
        let mode: u16 = read_kernel(inode, config!(offsets.inode_i_mode))?;
        let sb: u64 = read_kernel(inode, config!(offsets.inode_i_sb))?;
        let dev: u32 = read_kernel(sb, config!(offsets.sb_s_dev)).unwrap_or(0);
        (*out).ino = ino;
        (*out).dev = dev;
        (*out).mode = mode as u32;
        Some(inode)
    }
}

/// Describe fd `fd` of the current task in `out` (zeroed first): its identity, device number,
/// and for a socket its family and peer address.
///
/// # Safety
/// `task` must be the current `task_struct`; `out` must be writable map memory.
#[inline(always)]
pub unsafe fn stdio_fd(task: u64, fd: u64, out: *mut StdioFd) {
    // SAFETY: out is map memory; every kernel read is a checked probe read.
    unsafe {
        *out = StdioFd {
            id: FileId {
                ino: 0,
                dev: 0,
                mode: 0,
            },
            rdev: 0,
            family: 0,
            port: 0,
            addr: [0; 16],
        };
        let Some(file) = file_of_fd(task, fd) else {
            return;
        };
        let Some(inode) = file_id(file, &raw mut (*out).id) else {
            return;
        };
        (*out).rdev = read_kernel::<u32>(inode, config!(offsets.inode_i_rdev)).unwrap_or(0);
        if (*out).id.mode & S_IFMT != S_IFSOCK {
            return;
        }
        let sock: u64 = read_kernel(file, config!(offsets.file_private_data)).unwrap_or(0);
        let sk: u64 = read_kernel(sock, config!(offsets.socket_sk)).unwrap_or(0);
        let family: u16 = read_kernel(sk, config!(offsets.sock_family)).unwrap_or(0);
        (*out).family = family;
        let dport: u16 = read_kernel(sk, config!(offsets.sock_dport)).unwrap_or(0);
        (*out).port = u16::from_be(dport);
        if family == 2 {
            let a: [u8; 4] = read_kernel(sk, config!(offsets.sock_daddr)).unwrap_or([0; 4]);
            (*out).addr[0] = a[0];
            (*out).addr[1] = a[1];
            (*out).addr[2] = a[2];
            (*out).addr[3] = a[3];
        } else if family == 10 {
            (*out).addr = read_kernel(sk, config!(offsets.sock_v6_daddr)).unwrap_or([0; 16]);
        }
    }
}

/// Most `task_works` entries walked to find an exec'd script's pending release. An exec in
/// place (no fork) releases the whole old address space too: one entry per mapped file
/// (libraries, locale files), often dozens.
const TASK_WORKS_MAX: usize = 512;

/// The `struct file` of a `#!` script being exec'd, found at `sched_process_exec`.
///
/// By then the kernel has swapped the script's file for its interpreter's and dropped its
/// last reference; that final `fput` is deferred to the task's return to user space, so the
/// file is still queued on `task->task_works` (through `file->f_task_work`, callback
/// `____fput`). Every later `fput` of the same exec (the ELF interpreter, the files mapped by
/// the old address space, the old executable, close-on-exec fds) is pushed in front of it, so
/// the script's is the deepest `____fput` entry of the list. `None` unless the walk reached
/// the end of the list (a cut walk could stop at a later file).
///
/// # Safety
/// `task` must be the current `task_struct`.
#[inline(always)]
pub unsafe fn pending_script_file(task: u64) -> Option<u64> {
    let fput = ((config!(fput_fn_hi) as u64) << 32) | config!(fput_fn_lo) as u64;
    if fput == 0 {
        return None;
    }
    let ps = PATHS.get_ptr_mut(0)?;
    let next_off = config!(offsets.callback_head_next);
    let func_off = config!(offsets.callback_head_func);
    // SAFETY: checked probe reads along the callback_head list; the cursor and the result
    // live in the per-CPU workspace (volatile), so that every iteration reaches the next with
    // the same unknown values and the verifier prunes instead of tracking each path.
    unsafe {
        let head: u64 = read_kernel(task, config!(offsets.task_task_works))?;
        core::ptr::write_volatile(&raw mut (*ps).tmp, head);
        core::ptr::write_volatile(&raw mut (*ps).pos, 0);
        for _ in 0..TASK_WORKS_MAX {
            let cb = core::ptr::read_volatile(&raw const (*ps).tmp);
            if cb == 0 {
                let found = core::ptr::read_volatile(&raw const (*ps).pos);
                return (found != 0).then_some(found);
            }
            let func: u64 = read_kernel(cb, func_off)?;
            if func == fput {
                let file = cb.wrapping_sub(config!(offsets.file_f_task_work) as u64);
                core::ptr::write_volatile(&raw mut (*ps).pos, file);
            }
            let next: u64 = read_kernel(cb, next_off)?;
            core::ptr::write_volatile(&raw mut (*ps).tmp, next);
        }
    }
    None
}

//! Start-up configuration handed to the kernel programs as the read-only global `CONFIG`.
//!
//! Rust eBPF has no CO-RE relocations, so userspace reads the offsets of the kernel struct
//! fields the programs need from the running kernel's BTF and passes them here. Because the
//! global lives in a frozen read-only map, the verifier sees the values as constants.

/// Offsets (bytes) of the kernel struct fields the programs read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_cred: u32,
    pub task_mm: u32,
    pub task_signal: u32,
    pub task_exit_code: u32,
    pub task_atomic_flags: u32,
    /// `task_struct.seccomp.mode`.
    pub task_seccomp_mode: u32,
    pub cred_cap_effective: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `signal_struct.live` (an `atomic_t`).
    pub signal_live: u32,
    /// `file.f_path` (a `struct path`).
    pub file_f_path: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub mm_exe_file: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_parent: u32,
    /// `dentry.d_name.name`.
    pub dentry_name_ptr: u32,
    /// `dentry.d_name.len`.
    pub dentry_name_len: u32,
    /// `dentry.d_hash.pprev` (NULL when the dentry is unhashed, i.e. unlinked).
    pub dentry_hash_pprev: u32,
    pub vfsmount_mnt_root: u32,
    /// `mount.mnt`: where the `vfsmount` sits inside its `struct mount`.
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub task_fs: u32,
    /// `fs_struct.pwd` (a `struct path`).
    pub fs_pwd: u32,
    pub bprm_filename: u32,
    pub bprm_interp: u32,
}

/// The whole configuration.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    /// casa's own tgid: its activity is never reported.
    pub self_tgid: u32,
    /// Non-zero: report open/connect for every process, not only tracked trees.
    pub all_processes: u32,
    pub offsets: KernelOffsets,
}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, `repr(C)`, no padding (all fields are u32).
unsafe impl aya::Pod for KernelConfig {}

const _: () = assert!(core::mem::size_of::<KernelConfig>() == 8 + 33 * 4);

impl KernelConfig {
    /// All zeros: the placeholder compiled into the object, overwritten by userspace at load.
    pub const ZEROED: Self = {
        // SAFETY: every field is an integer; all-zero is a valid value.
        unsafe { core::mem::zeroed() }
    };
}

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
    /// `file.f_inode`.
    pub file_f_inode: u32,
    /// `file.private_data` (a `struct socket *` for sockets).
    pub file_private_data: u32,
    /// `file.f_task_work` (the `callback_head` a deferred `fput` queues).
    pub file_f_task_work: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub inode_i_mode: u32,
    pub inode_i_rdev: u32,
    pub sb_s_dev: u32,
    /// `task_struct.task_works` (head of the pending `callback_head` list).
    pub task_task_works: u32,
    pub callback_head_next: u32,
    pub callback_head_func: u32,
    pub mm_env_start: u32,
    pub mm_env_end: u32,
    /// `socket.sk`.
    pub socket_sk: u32,
    /// `sock.__sk_common.skc_family`.
    pub sock_family: u32,
    /// `sock.__sk_common.skc_daddr` (IPv4 peer, network order).
    pub sock_daddr: u32,
    /// `sock.__sk_common.skc_dport` (peer port, network order).
    pub sock_dport: u32,
    /// `sock.__sk_common.skc_v6_daddr`.
    pub sock_v6_daddr: u32,
    /// `sock.__sk_common.skc_rcv_saddr` (IPv4 local address, network order).
    pub sock_rcv_saddr: u32,
    /// `sock.__sk_common.skc_num` (local port, host order).
    pub sock_num: u32,
    /// `sock.__sk_common.skc_v6_rcv_saddr`.
    pub sock_v6_rcv_saddr: u32,
    /// `io_kiocb.opcode`; this and the io_uring offsets below are [`OFFSET_UNKNOWN`] when the
    /// kernel's BTF lacks the struct (then only opcodes are reported).
    pub io_kiocb_opcode: u32,
    /// `io_kiocb.cmd`: where the per-opcode request data (`io_open`, `io_connect`, …) starts.
    pub io_kiocb_cmd: u32,
    /// `io_open.filename` (a `struct filename *`).
    pub io_open_filename: u32,
    /// `filename.name` (the kernel's copy of the path string).
    pub filename_name: u32,
    /// `io_connect.addr` (the user's sockaddr pointer) and `io_connect.addr_len`.
    pub io_connect_addr: u32,
    pub io_connect_addr_len: u32,
    /// `io_sr_msg.umsg` (the user's `msghdr`, for `SENDMSG`).
    pub io_sr_msg_umsg: u32,
    /// `io_sr_msg.addr` and `io_sr_msg.addr_len` (a `u16`): the destination of `SEND`/`SEND_ZC`
    /// (user pointer), in kernels that keep it there.
    pub io_sr_msg_addr: u32,
    pub io_sr_msg_addr_len: u32,
    /// `io_kiocb.async_data`, and in it `io_async_msghdr.msg.msg_name`/`msg_namelen`: where
    /// newer kernels keep the kernel copy of a `SEND`'s destination.
    pub io_kiocb_async_data: u32,
    pub io_async_msghdr_msg_name: u32,
    pub io_async_msghdr_msg_namelen: u32,
    /// `io_rename.oldpath`/`newpath`, `io_link.oldpath`/`newpath` (`LINKAT`, `SYMLINKAT`),
    /// `io_unlink.filename`, `io_mkdir.filename`: `struct filename *`.
    pub io_rename_oldpath: u32,
    pub io_rename_newpath: u32,
    pub io_link_oldpath: u32,
    pub io_link_newpath: u32,
    pub io_unlink_filename: u32,
    pub io_mkdir_filename: u32,
}

/// An offset the running kernel's BTF does not have.
pub const OFFSET_UNKNOWN: u32 = u32::MAX;

/// The whole configuration.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    /// casa's own tgid: its activity is never reported.
    pub self_tgid: u32,
    /// Non-zero: report open/connect for every process, not only tracked trees.
    pub all_processes: u32,
    /// Address of the kernel's `____fput` (from `/proc/kallsyms`; 0 when unknown), split in
    /// two halves to keep the struct free of padding: a deferred `fput` on the exec'ing task
    /// is how a `#!` script's own file is still found at `sched_process_exec`.
    pub fput_fn_lo: u32,
    pub fput_fn_hi: u32,
    /// Bytes waiting in the ring past which any record wakes the reader (0: every record
    /// does). Records the reader is woken for anyway: execs and connects (what an alert is
    /// most often decided on); the rest wait for this threshold or the reader's timer.
    pub wakeup_bytes: u32,
    /// Keeps the struct free of padding.
    pub _pad: u32,
    pub offsets: KernelOffsets,
}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, `repr(C)`, no padding (all fields are u32).
unsafe impl aya::Pod for KernelConfig {}

const _: () = assert!(core::mem::size_of::<KernelConfig>() == 24 + 72 * 4);

impl KernelConfig {
    /// All zeros: the placeholder compiled into the object, overwritten by userspace at load.
    pub const ZEROED: Self = {
        // SAFETY: every field is an integer; all-zero is a valid value.
        unsafe { core::mem::zeroed() }
    };
}

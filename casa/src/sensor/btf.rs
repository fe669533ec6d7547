//! Kernel struct field offsets from the running kernel's BTF (Rust eBPF has no CO-RE).

use btf_rs::{Btf, Type};
use casa_common::config::{KernelOffsets, OFFSET_UNKNOWN};

use super::SensorError;

/// Where the kernel's BTF lives.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

fn err(what: impl Into<String>) -> SensorError {
    SensorError::Btf(what.into())
}

/// The struct named `name` (skipping forward declarations).
fn find_struct(btf: &Btf, name: &str) -> Result<btf_rs::Struct, SensorError> {
    let types = btf
        .resolve_types_by_name(name)
        .map_err(|e| err(format!("looking up `struct {name}`: {e}")))?;
    types
        .into_iter()
        .find_map(|t| match t {
            Type::Struct(s) if !s.members.is_empty() => Some(s),
            _ => None,
        })
        .ok_or_else(|| err(format!("`struct {name}` not found in BTF")))
}

/// Strip typedefs and qualifiers down to a struct or union.
fn as_aggregate(btf: &Btf, mut t: Type) -> Option<btf_rs::Struct> {
    for _ in 0..16 {
        match t {
            Type::Struct(s) | Type::Union(s) => return Some(s),
            Type::Typedef(_)
            | Type::Const(_)
            | Type::Volatile(_)
            | Type::Restrict(_)
            | Type::TypeTag(_) => {
                t = btf.resolve_chained_type(t.as_btf_type()?).ok()?;
            }
            _ => return None,
        }
    }
    None
}

/// Byte offset of `member` in `s`, looking through anonymous structs and unions.
fn member_offset(btf: &Btf, s: &btf_rs::Struct, member: &str) -> Option<(u32, Type)> {
    for m in &s.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let off = m.bit_offset() / 8;
        let ty = btf.resolve_chained_type(m).ok()?;
        if name == member {
            return Some((off, ty));
        }
        if name.is_empty()
            && let Some(inner) = as_aggregate(btf, ty)
            && let Some((o, t)) = member_offset(btf, &inner, member)
        {
            return Some((off + o, t));
        }
    }
    None
}

/// Offset of a dotted field path such as `seccomp.mode` in `struct name`.
fn offset(btf: &Btf, name: &str, path: &str) -> Result<u32, SensorError> {
    let mut s = find_struct(btf, name)?;
    let mut total = 0;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let (off, ty) = member_offset(btf, &s, part)
            .ok_or_else(|| err(format!("`struct {name}` has no field `{path}`")))?;
        total += off;
        if i + 1 < parts.len() {
            s = as_aggregate(btf, ty)
                .ok_or_else(|| err(format!("`{name}.{part}` is not a struct")))?;
        }
    }
    Ok(total)
}

/// Read every offset the kernel programs need.
pub fn kernel_offsets(path: &str) -> Result<KernelOffsets, SensorError> {
    let btf = Btf::from_file(path).map_err(|e| err(format!("reading {path}: {e}")))?;
    Ok(KernelOffsets {
        task_pid: offset(&btf, "task_struct", "pid")?,
        task_tgid: offset(&btf, "task_struct", "tgid")?,
        task_real_parent: offset(&btf, "task_struct", "real_parent")?,
        task_cred: offset(&btf, "task_struct", "cred")?,
        task_mm: offset(&btf, "task_struct", "mm")?,
        task_signal: offset(&btf, "task_struct", "signal")?,
        task_exit_code: offset(&btf, "task_struct", "exit_code")?,
        task_atomic_flags: offset(&btf, "task_struct", "atomic_flags")?,
        task_seccomp_mode: offset(&btf, "task_struct", "seccomp.mode")?,
        cred_cap_effective: offset(&btf, "cred", "cap_effective")?,
        mm_arg_start: offset(&btf, "mm_struct", "arg_start")?,
        mm_arg_end: offset(&btf, "mm_struct", "arg_end")?,
        signal_live: offset(&btf, "signal_struct", "live")?,
        file_f_path: offset(&btf, "file", "f_path")?,
        task_files: offset(&btf, "task_struct", "files")?,
        files_fdt: offset(&btf, "files_struct", "fdt")?,
        fdtable_max_fds: offset(&btf, "fdtable", "max_fds")?,
        fdtable_fd: offset(&btf, "fdtable", "fd")?,
        mm_exe_file: offset(&btf, "mm_struct", "exe_file")?,
        path_mnt: offset(&btf, "path", "mnt")?,
        path_dentry: offset(&btf, "path", "dentry")?,
        dentry_parent: offset(&btf, "dentry", "d_parent")?,
        dentry_name_ptr: offset(&btf, "dentry", "d_name.name")?,
        dentry_name_len: offset(&btf, "dentry", "d_name.len")?,
        dentry_hash_pprev: offset(&btf, "dentry", "d_hash.pprev")?,
        vfsmount_mnt_root: offset(&btf, "vfsmount", "mnt_root")?,
        mount_mnt: offset(&btf, "mount", "mnt")?,
        mount_parent: offset(&btf, "mount", "mnt_parent")?,
        mount_mountpoint: offset(&btf, "mount", "mnt_mountpoint")?,
        task_fs: offset(&btf, "task_struct", "fs")?,
        fs_pwd: offset(&btf, "fs_struct", "pwd")?,
        bprm_filename: offset(&btf, "linux_binprm", "filename")?,
        bprm_interp: offset(&btf, "linux_binprm", "interp")?,
        file_f_inode: offset(&btf, "file", "f_inode")?,
        file_private_data: offset(&btf, "file", "private_data")?,
        file_f_task_work: offset(&btf, "file", "f_task_work")?,
        inode_i_ino: offset(&btf, "inode", "i_ino")?,
        inode_i_sb: offset(&btf, "inode", "i_sb")?,
        inode_i_mode: offset(&btf, "inode", "i_mode")?,
        inode_i_rdev: offset(&btf, "inode", "i_rdev")?,
        sb_s_dev: offset(&btf, "super_block", "s_dev")?,
        task_task_works: offset(&btf, "task_struct", "task_works")?,
        callback_head_next: offset(&btf, "callback_head", "next")?,
        callback_head_func: offset(&btf, "callback_head", "func")?,
        mm_env_start: offset(&btf, "mm_struct", "env_start")?,
        mm_env_end: offset(&btf, "mm_struct", "env_end")?,
        socket_sk: offset(&btf, "socket", "sk")?,
        sock_family: offset(&btf, "sock", "__sk_common.skc_family")?,
        sock_daddr: offset(&btf, "sock", "__sk_common.skc_daddr")?,
        sock_dport: offset(&btf, "sock", "__sk_common.skc_dport")?,
        sock_v6_daddr: offset(&btf, "sock", "__sk_common.skc_v6_daddr")?,
        sock_rcv_saddr: offset(&btf, "sock", "__sk_common.skc_rcv_saddr")?,
        sock_num: offset(&btf, "sock", "__sk_common.skc_num")?,
        sock_v6_rcv_saddr: offset(&btf, "sock", "__sk_common.skc_v6_rcv_saddr")?,
        // io_uring's request structs are private to io_uring/*.c: optional.
        io_kiocb_opcode: optional(&btf, "io_kiocb", "opcode"),
        io_kiocb_cmd: optional(&btf, "io_kiocb", "cmd"),
        io_open_filename: optional(&btf, "io_open", "filename"),
        filename_name: optional(&btf, "filename", "name"),
        io_connect_addr: optional(&btf, "io_connect", "addr"),
        io_connect_addr_len: optional(&btf, "io_connect", "addr_len"),
        io_sr_msg_umsg: optional(&btf, "io_sr_msg", "umsg"),
        io_sr_msg_addr: optional(&btf, "io_sr_msg", "addr"),
        io_sr_msg_addr_len: optional(&btf, "io_sr_msg", "addr_len"),
        io_kiocb_async_data: optional(&btf, "io_kiocb", "async_data"),
        io_async_msghdr_msg_name: optional(&btf, "io_async_msghdr", "msg.msg_name"),
        io_async_msghdr_msg_namelen: optional(&btf, "io_async_msghdr", "msg.msg_namelen"),
        io_rename_oldpath: optional(&btf, "io_rename", "oldpath"),
        io_rename_newpath: optional(&btf, "io_rename", "newpath"),
        io_link_oldpath: optional(&btf, "io_link", "oldpath"),
        io_link_newpath: optional(&btf, "io_link", "newpath"),
        io_unlink_filename: optional(&btf, "io_unlink", "filename"),
        io_mkdir_filename: optional(&btf, "io_mkdir", "filename"),
    })
}

/// Like [`offset`], [`OFFSET_UNKNOWN`] when the struct or field is missing.
fn optional(btf: &Btf, name: &str, path: &str) -> u32 {
    offset(btf, name, path).unwrap_or(OFFSET_UNKNOWN)
}

/// Address of the kernel function `name` in `/proc/kallsyms` text (0 when it is not listed or
/// addresses are hidden).
pub fn kallsyms_address(kallsyms: &str, name: &str) -> u64 {
    kallsyms
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (addr, ty, sym) = (it.next()?, it.next()?, it.next()?);
            (sym == name && matches!(ty, "t" | "T"))
                .then(|| u64::from_str_radix(addr, 16).ok())
                .flatten()
        })
        .next()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::kallsyms_address;

    #[test]
    fn kallsyms_lookup_takes_text_symbols_only() {
        let text = "ffffffff81000000 D ____fput\nffffffff816bb9c0 t ____fput\nffffffff81387d40 T task_work_run [x]\n";
        assert_eq!(kallsyms_address(text, "____fput"), 0xffffffff816bb9c0);
        assert_eq!(kallsyms_address(text, "task_work_run"), 0xffffffff81387d40);
        assert_eq!(kallsyms_address(text, "missing"), 0);
    }
}

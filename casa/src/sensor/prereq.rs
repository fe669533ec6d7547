//! Kernel prerequisites the sensor checks before loading: tracefs, and the tracepoint field
//! layouts the kernel programs rely on.

use std::path::Path;

use super::SensorError;

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Mount tracefs on `/sys/kernel/tracing` when it is not mounted (it is not at boot on some
/// hosts). Returns true when this call mounted it. An existing mount is left as it is.
pub fn ensure_tracefs() -> Result<bool, SensorError> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(false);
    }
    let src = c"tracefs";
    let target = c"/sys/kernel/tracing";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(SensorError::Tracefs(std::io::Error::last_os_error()));
    }
    Ok(true)
}

/// A tracepoint field a program reads: (name, offset, size).
pub type Field = (&'static str, u32, u32);
/// A tracepoint (category, name) and the fields read from it.
pub type Layout = (&'static str, &'static str, &'static [Field]);

/// The fields each tracepoint program reads, as in its source.
pub const LAYOUTS: &[Layout] = &[
    (
        "syscalls",
        "sys_enter_execve",
        &[("filename", 16, 8), ("argv", 24, 8)],
    ),
    (
        "syscalls",
        "sys_enter_execveat",
        &[("fd", 16, 8), ("filename", 24, 8), ("argv", 32, 8)],
    ),
    ("syscalls", "sys_exit_execve", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_execveat", &[("ret", 16, 8)]),
    ("sched", "sched_process_exit", &[("group_dead", 32, 1)]),
    (
        "syscalls",
        "sys_enter_openat",
        &[
            ("dfd", 16, 8),
            ("filename", 24, 8),
            ("flags", 32, 8),
            ("mode", 40, 8),
        ],
    ),
    (
        "syscalls",
        "sys_enter_openat2",
        &[("dfd", 16, 8), ("filename", 24, 8), ("how", 32, 8)],
    ),
    ("syscalls", "sys_exit_openat", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_openat2", &[("ret", 16, 8)]),
    (
        "syscalls",
        "sys_enter_connect",
        &[("fd", 16, 8), ("uservaddr", 24, 8), ("addrlen", 32, 8)],
    ),
    ("syscalls", "sys_exit_connect", &[("ret", 16, 8)]),
    (
        "syscalls",
        "sys_enter_open",
        &[("filename", 16, 8), ("flags", 24, 8), ("mode", 32, 8)],
    ),
    (
        "syscalls",
        "sys_enter_creat",
        &[("pathname", 16, 8), ("mode", 24, 8)],
    ),
    ("syscalls", "sys_exit_open", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_creat", &[("ret", 16, 8)]),
    (
        "syscalls",
        "sys_enter_sendto",
        &[
            ("fd", 16, 8),
            ("len", 32, 8),
            ("addr", 48, 8),
            ("addr_len", 56, 8),
        ],
    ),
    (
        "syscalls",
        "sys_enter_sendmsg",
        &[("fd", 16, 8), ("msg", 24, 8)],
    ),
    (
        "syscalls",
        "sys_enter_sendmmsg",
        &[("fd", 16, 8), ("mmsg", 24, 8)],
    ),
    (
        "syscalls",
        "sys_enter_bind",
        &[("fd", 16, 8), ("umyaddr", 24, 8), ("addrlen", 32, 8)],
    ),
    (
        "syscalls",
        "sys_enter_listen",
        &[("fd", 16, 8), ("backlog", 24, 8)],
    ),
    ("syscalls", "sys_enter_accept", &[("fd", 16, 8)]),
    ("syscalls", "sys_enter_accept4", &[("fd", 16, 8)]),
    ("syscalls", "sys_exit_sendto", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_sendmsg", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_sendmmsg", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_bind", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_listen", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_accept", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_accept4", &[("ret", 16, 8)]),
    (
        "syscalls",
        "sys_enter_rename",
        &[("oldname", 16, 8), ("newname", 24, 8)],
    ),
    (
        "syscalls",
        "sys_enter_renameat",
        &[
            ("olddfd", 16, 8),
            ("oldname", 24, 8),
            ("newdfd", 32, 8),
            ("newname", 40, 8),
        ],
    ),
    (
        "syscalls",
        "sys_enter_renameat2",
        &[
            ("olddfd", 16, 8),
            ("oldname", 24, 8),
            ("newdfd", 32, 8),
            ("newname", 40, 8),
            ("flags", 48, 8),
        ],
    ),
    (
        "syscalls",
        "sys_enter_link",
        &[("oldname", 16, 8), ("newname", 24, 8)],
    ),
    (
        "syscalls",
        "sys_enter_linkat",
        &[
            ("olddfd", 16, 8),
            ("oldname", 24, 8),
            ("newdfd", 32, 8),
            ("newname", 40, 8),
            ("flags", 48, 8),
        ],
    ),
    (
        "syscalls",
        "sys_enter_symlink",
        &[("oldname", 16, 8), ("newname", 24, 8)],
    ),
    (
        "syscalls",
        "sys_enter_symlinkat",
        &[("oldname", 16, 8), ("newdfd", 24, 8), ("newname", 32, 8)],
    ),
    ("syscalls", "sys_enter_unlink", &[("pathname", 16, 8)]),
    (
        "syscalls",
        "sys_enter_unlinkat",
        &[("dfd", 16, 8), ("pathname", 24, 8), ("flag", 32, 8)],
    ),
    (
        "syscalls",
        "sys_enter_chmod",
        &[("filename", 16, 8), ("mode", 24, 8)],
    ),
    (
        "syscalls",
        "sys_enter_fchmodat",
        &[("dfd", 16, 8), ("filename", 24, 8), ("mode", 32, 8)],
    ),
    (
        "syscalls",
        "sys_enter_fchmodat2",
        &[
            ("dfd", 16, 8),
            ("filename", 24, 8),
            ("mode", 32, 8),
            ("flags", 40, 8),
        ],
    ),
    (
        "syscalls",
        "sys_enter_fchmod",
        &[("fd", 16, 8), ("mode", 24, 8)],
    ),
    ("syscalls", "sys_exit_rename", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_renameat", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_renameat2", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_link", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_linkat", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_symlink", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_symlinkat", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_unlink", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_unlinkat", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_chmod", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_fchmodat", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_fchmodat2", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_fchmod", &[("ret", 16, 8)]),
    (
        "syscalls",
        "sys_enter_ptrace",
        &[("request", 16, 8), ("pid", 24, 8)],
    ),
    (
        "syscalls",
        "sys_enter_memfd_create",
        &[("uname", 16, 8), ("flags", 24, 8)],
    ),
    ("syscalls", "sys_exit_setsid", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_ptrace", &[("ret", 16, 8)]),
    ("syscalls", "sys_exit_memfd_create", &[("ret", 16, 8)]),
    (
        "io_uring",
        "io_uring_create",
        &[
            ("fd", 8, 4),
            ("sq_entries", 24, 4),
            ("cq_entries", 28, 4),
            ("flags", 32, 4),
        ],
    ),
    (
        "sock",
        "sock_send_length",
        &[
            ("sk", 8, 8),
            ("family", 16, 2),
            ("protocol", 18, 2),
            ("ret", 20, 4),
        ],
    ),
    (
        "sock",
        "inet_sock_set_state",
        &[
            ("oldstate", 16, 4),
            ("newstate", 20, 4),
            ("sport", 24, 2),
            ("dport", 26, 2),
            ("family", 28, 2),
            ("protocol", 30, 2),
            ("saddr", 32, 4),
            ("daddr", 36, 4),
            ("saddr_v6", 40, 16),
            ("daddr_v6", 56, 16),
        ],
    ),
];

/// Parse `field:TYPE NAME; offset:N; size:M;` lines of a tracefs `format` file.
pub fn parse_format(text: &str) -> Vec<(String, u32, u32)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let decl = parts.next().unwrap_or("");
        let name = decl
            .split_whitespace()
            .last()
            .unwrap_or("")
            .split('[')
            .next()
            .unwrap_or("")
            .to_owned();
        let mut offset = None;
        let mut size = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        if let (Some(o), Some(s)) = (offset, size) {
            out.push((name, o, s));
        }
    }
    out
}

/// Check every field in [`LAYOUTS`] against the running kernel's tracefs formats.
pub fn check_layouts() -> Result<(), SensorError> {
    for (cat, name, fields) in LAYOUTS {
        let path = Path::new(TRACEFS)
            .join("events")
            .join(cat)
            .join(name)
            .join("format");
        let text = std::fs::read_to_string(&path).map_err(|e| SensorError::Layout {
            tracepoint: format!("{cat}:{name}"),
            detail: format!("cannot read {}: {e}", path.display()),
        })?;
        let have = parse_format(&text);
        for (field, off, size) in *fields {
            match have.iter().find(|(n, _, _)| n == field) {
                Some((_, o, s)) if o == off && s == size => {}
                Some((_, o, s)) => {
                    return Err(SensorError::Layout {
                        tracepoint: format!("{cat}:{name}"),
                        detail: format!(
                            "field `{field}` is at offset {o} size {s}, the program reads offset {off} size {size}"
                        ),
                    });
                }
                None => {
                    return Err(SensorError::Layout {
                        tracepoint: format!("{cat}:{name}"),
                        detail: format!("has no field `{field}`"),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracefs_format() {
        let text = "name: sched_process_exit\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n";
        let f = parse_format(text);
        assert_eq!(f[1], ("comm".to_owned(), 8, 16));
        assert_eq!(f[2], ("group_dead".to_owned(), 32, 1));
    }
}

//! casa's kernel programs: the first stage of the pipeline.
//!
//! They observe process, file and network activity and write one record per event (layout in
//! `casa_common::wire`) into the `EVENTS` ring buffer, which `casa::sensor` reads.
//!
//! | program | hook | what it does |
//! |---|---|---|
//! | `sys_enter_execve`, `sys_enter_execveat` | syscall tracepoints | remember the exec's arguments per thread (`EXEC_PENDING`) |
//! | `sched_process_exec` | tracepoint | emit the successful exec: absolute path of `mm->exe_file`, argv from the new `mm`, caps/seccomp/no_new_privs read now |
//! | `sys_exit_execve`, `sys_exit_execveat` | syscall tracepoints | emit failed execs of tracked processes |
//! | `sched_process_fork` | BTF tracepoint | emit process creation; extend `TRACKED` to children of tracked processes |
//! | `sched_process_exit` | tracepoint | emit exits (leaders and last threads everywhere, every thread when tracked); shrink `TRACKED` |
//! | `sys_enter/exit_openat`, `…openat2` | syscall tracepoints | tracked processes only: emit the open with flags, mode, raw path, absolute path of the new fd's file, fd/errno |
//! | `sys_enter/exit_connect` | syscall tracepoints | tracked processes only: emit the connect with the raw sockaddr and its result |
//! | `sched_process_exec_script` | BTF tracepoint, attached first | script execs only: the script's own file (identity, path) into `SCRIPT_CTX` |
//! | `sched_process_exec_ctx` | BTF tracepoint, attached before `sched_process_exec` | tracked processes only: fds 0–2 and loader variables into `EXEC_CTX`, which the exec record picks up |
//! | `sys_enter/exit_open`, `…creat` | syscall tracepoints | tracked processes only: legacy opens, emitted as opens |
//! | `sys_enter/exit_{sendto,sendmsg,sendmmsg,bind,listen,accept,accept4}`, `inet_sock_set_state`, `sock_send_length` | syscall and `sock` tracepoints | tracked processes only: socket operations (`probes/sock.rs`) |
//! | `sys_enter/exit_{rename*,link*,symlink*,unlink*,*chmod*}` | syscall tracepoints | tracked processes only: file lifecycle (`probes/fileop.rs`) |
//! | `sys_enter/exit_{setsid,ptrace,memfd_create}` | syscall tracepoints | tracked processes only (`probes/procop.rs`) |
//! | `io_uring_create`, `io_uring_submit_req` | tracepoint, BTF tracepoint | tracked processes only: rings and requests (`probes/uring.rs`) |
//! | `respond_{connect,sendmsg}{4,6}` | cgroup socket-address programs, attached only under `casa run --enforce` | `deny_network`: refuse non-loopback destinations of banned processes (`probes/respond.rs`) |
//!
//! Responses (`casa_common::respond`): a tracked process whose `TRACKED` bits carry a kill
//! order is killed (`bpf_send_signal`) at its next tracked syscall, fork or exec; and
//! `sched_process_exec` kills a tracked process that runs what a preventive rule refuses
//! (a memfd or deleted file, a file in `FETCHED`) before the new program runs.
//!
//! Paths are resolved from the kernel's `struct file` (`path.rs`), not from the caller's
//! string: a relative `openat` in `/tmp` arrives as `/tmp/…`, a file reopened through
//! `/proc/self/fd/N` after `unlink` is marked deleted, and an exec of a memfd arrives as
//! `/memfd:NAME` marked deleted. (`bpf_d_path` would do this, but it needs fentry/LSM programs,
//! and BPF trampolines are not available on casa's target hosts.)
//!
//! Records are built in a per-CPU scratch buffer and copied with `bpf_ringbuf_output` at their
//! real length, so a short path does not cost the ring 8 KiB. Every place an event is given up
//! increments a `STATS` counter.
#![no_std]
#![no_main]

mod maps;
mod path;
mod probes;
mod util;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here; nothing in casa-ebpf panics.
    loop {}
}

/// GPL: `bpf_d_path` and `bpf_probe_read_*` are GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#!/usr/bin/env bash
# setup.sh — make this machine able to build, test and run casa.
#
# Idempotent: every step checks first and does nothing when already satisfied, so
# `make test` and `make run` can call it on every invocation. It installs:
#   * the nightly `rust-src` component (the eBPF crate is built with -Z build-std=core),
#   * bpf-linker, built against the nightly's own LLVM (the two must share one LLVM),
#   * the Debian packages casa's tests and tools use,
# and checks the kernel prerequisites (root, BTF, tracefs — mounted when absent).
#
# Usage: ./setup.sh [--build-only | --bench]
#   --build-only  skips the kernel checks, for machines that only compile
#   --bench       also installs what `make bench` uses (see the bench section below)
set -euo pipefail

say()  { printf 'setup: %s\n' "$*"; }
die()  { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

BUILD_ONLY=0
BENCH=0
[ "${1:-}" = "--build-only" ] && BUILD_ONLY=1
[ "${1:-}" = "--bench" ] && BENCH=1

NIGHTLY="${CASA_NIGHTLY:-nightly}"
TOOLDIR="${CASA_TOOLCHAIN_DIR:-$HOME/.cache/casa-toolchain}"
export PATH="$HOME/.cargo/bin:$PATH"

# --- Rust toolchains -------------------------------------------------------
command -v rustup >/dev/null || die "rustup not found: install Rust with rustup first (https://rustup.rs)"
if ! rustup toolchain list | grep -q "^$NIGHTLY"; then
  say "installing the $NIGHTLY toolchain"
  rustup toolchain install "$NIGHTLY" --profile minimal
fi
if ! rustup component list --toolchain "$NIGHTLY" --installed | grep -q '^rust-src'; then
  say "adding rust-src to $NIGHTLY (needed to build core for bpfel-unknown-none)"
  rustup component add rust-src --toolchain "$NIGHTLY"
fi
for comp in clippy rustfmt; do
  if ! rustup component list --toolchain "$NIGHTLY" --installed | grep -q "^$comp"; then
    rustup component add "$comp" --toolchain "$NIGHTLY"
  fi
  if ! rustup component list --installed | grep -q "^$comp"; then
    rustup component add "$comp"
  fi
done

# --- bpf-linker against the nightly's LLVM ----------------------------------
llvm_major=$(rustc +"$NIGHTLY" -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
libdir=$(rustc +"$NIGHTLY" --print sysroot)/lib
soname=$(basename "$(ls "$libdir"/libLLVM.so.* 2>/dev/null | head -n1)")
[ -n "$soname" ] || die "no libLLVM.so.* in $libdir: the $NIGHTLY toolchain has no shared LLVM"
prefix="$TOOLDIR/rustc-llvm"

linker_ok() {
  command -v bpf-linker >/dev/null || return 1
  bpf-linker --version >/dev/null 2>&1 || return 1
  # It must load the nightly's LLVM, not another one.
  ldd "$(command -v bpf-linker)" 2>/dev/null | grep -q "$soname" || return 1
  [ "$(readlink -f "$prefix/lib/$soname")" = "$(readlink -f "$libdir/$soname")" ]
}
if linker_ok; then
  say "bpf-linker ok ($(bpf-linker --version 2>&1 | head -n1), LLVM $llvm_major)"
else
  say "building bpf-linker against the $NIGHTLY LLVM $llvm_major (about a minute)"
  mkdir -p "$prefix/lib"
  ln -sf "$libdir/$soname" "$prefix/lib/libLLVM.so"
  ln -sf "$libdir/$soname" "$prefix/lib/$soname"
  LLVM_PREFIX="$prefix" cargo install --locked bpf-linker --force \
      --no-default-features --features "llvm-$llvm_major"
  linker_ok || die "bpf-linker was built but does not run against $soname"
fi

# --- cargo-fuzz (casa/fuzz/run.sh: the fuzz targets, built with the nightly) ---
if cargo fuzz --version >/dev/null 2>&1; then
  say "cargo-fuzz ok ($(cargo fuzz --version 2>&1 | head -n1))"
else
  say "installing cargo-fuzz (about two minutes)"
  cargo install --locked cargo-fuzz
  cargo fuzz --version >/dev/null 2>&1 || die "cargo-fuzz was installed but 'cargo fuzz --version' fails"
fi

# --- Debian packages ---------------------------------------------------------
# iproute2: network namespaces for tests; procps: ps/pgrep in scripts; python3: the kernel
# tests' workloads and the evaluation harness (evaluation/, standard library only); curl: the
# evaluation's scripted agent commands; valgrind: `make test`'s instruction-count check of
# the pipeline (callgrind); systemd: `systemd-analyze verify` of the service unit in the tests;
# python3-venv: the OCSF validator's virtual environment (below).
pkgs=(iproute2 procps python3 python3-venv curl valgrind systemd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "Debian packages missing (${missing[*]}) and not root to install them"
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# --- OCSF schema validation ---------------------------------------------------------
# The tests validate `--ocsf-log` output with evaluation/ocsf_validate.py against the OCSF
# 1.8.0 schema export that the ocsf-json-schema package ships, using jsonschema. Both, pinned
# with their dependencies (evaluation/ocsf-requirements.txt), go into a virtual environment
# of their own; the tests find it at $TOOLDIR/ocsf-venv (or CASA_OCSF_PYTHON).
ocsf_venv="$TOOLDIR/ocsf-venv"
ocsf_reqs="$(dirname "$0")/evaluation/ocsf-requirements.txt"
ocsf_ok() {
  [ -x "$ocsf_venv/bin/python" ] || return 1
  "$ocsf_venv/bin/python" - "$ocsf_reqs" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, pinned = line.split("==")
        if version(name) != pinned:
            sys.exit(1)
PY
}
if ocsf_ok; then
  say "OCSF validator ok ($ocsf_venv)"
else
  say "installing the OCSF validator's packages into $ocsf_venv"
  python3 -m venv "$ocsf_venv"
  "$ocsf_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ocsf_reqs"
  ocsf_ok || die "the OCSF validator's packages were installed but do not match $ocsf_reqs"
fi

[ "$BUILD_ONLY" -eq 1 ] && { say "build prerequisites ready"; exit 0; }

# --- benchmarks (only with --bench) -----------------------------------------------
# `make bench` compares casa with auditd and bpftrace, profiles with perf/valgrind, and runs
# its workloads with git, node (the stand-in OpenClaw), taskset and setpriv. stress-ng and
# hyperfine are installed for manual cross-checks. Installing auditd may start it: it is
# stopped again if this script installed it, so the audit state stays as it was found (the
# benchmark starts it itself only for the auditd runs and removes its own rules).
if [ "$BENCH" -eq 1 ]; then
  [ "$(id -u)" -eq 0 ] || die "the benchmark packages need root to install"
  bench_pkgs=(auditd bpftrace stress-ng hyperfine linux-perf valgrind git nodejs util-linux)
  bench_missing=()
  for p in "${bench_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || bench_missing+=("$p")
  done
  if [ "${#bench_missing[@]}" -gt 0 ]; then
    audit_was_installed=0
    command -v auditd >/dev/null 2>&1 && audit_was_installed=1
    say "installing for the benchmarks: ${bench_missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${bench_missing[@]}"
    if [ "$audit_was_installed" -eq 0 ] && [ -r /var/run/auditd.pid ]; then
      say "stopping the auditd the package started (the benchmark starts it when needed)"
      kill "$(cat /var/run/auditd.pid)" 2>/dev/null || true
    fi
  fi
  say "benchmark tools ok"
fi

# --- kernel prerequisites ----------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "casa's sensor needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN): run as root"
[ -r /sys/kernel/btf/vmlinux ] || die "/sys/kernel/btf/vmlinux is missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y"
if [ ! -e /sys/kernel/tracing/events/syscalls ]; then
  say "tracefs is not mounted: mounting it on /sys/kernel/tracing"
  mount -t tracefs tracefs /sys/kernel/tracing || die "could not mount tracefs on /sys/kernel/tracing"
fi
for tp in syscalls/sys_enter_execve syscalls/sys_enter_execveat syscalls/sys_exit_openat \
          syscalls/sys_exit_openat2 syscalls/sys_exit_connect sched/sched_process_exec \
          sched/sched_process_fork sched/sched_process_exit; do
  [ -e "/sys/kernel/tracing/events/$tp/id" ] || die "tracepoint $tp is missing from this kernel"
done
say "kernel ok: $(uname -r), BTF present, tracefs mounted"

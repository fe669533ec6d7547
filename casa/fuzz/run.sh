#!/usr/bin/env bash
# run.sh — build casa's fuzz targets once and run each for a while on a copy of its corpus.
#
# Usage: casa/fuzz/run.sh [SECONDS_PER_TARGET]     (default 20; from any directory)
#
# Each target runs under libFuzzer with AddressSanitizer, debug assertions and overflow checks
# on a scratch copy of its committed seed corpus (`corpus/<target>/`), so a run never modifies
# the repository. Inputs under `regressions/<target>/` (crashes found earlier, since fixed) are
# replayed first and must run clean; inputs under `regressions/<target>/open/` (known crashes
# not fixed yet, see regressions/README.md) are replayed and reported, without failing the run.
# A crash, abort, timeout, leak or out-of-memory fails the target: the input is kept in
# `artifacts/<target>/` and the command that reproduces it is printed. The last line is always
# `fuzz: N passed, M failed`; the exit status is non-zero when any target failed.
#
# Environment: CASA_NIGHTLY (toolchain, default nightly), FUZZ_TARGETS (space-separated subset).
set -uo pipefail

say() { printf 'fuzz: %s\n' "$*"; }
die() {
  printf 'fuzz: error: %s\n' "$*" >&2
  echo "fuzz: 0 passed, ${#TARGETS[@]} failed"
  exit 2
}

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECONDS_PER_TARGET="${1:-20}"
NIGHTLY="${CASA_NIGHTLY:-nightly}"
export PATH="$HOME/.cargo/bin:$PATH"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-decode recording rules}"

# Longest input per target: a kernel record is at most wire::RECORD_MAX (12384) bytes, so
# decode goes a little past it (the Oversized check); the golden recordings are < 64 KiB;
# rules files are a few KiB.
max_len() {
  case "$1" in
    decode) echo 12800 ;;
    recording) echo 65536 ;;
    rules) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] && [ "$SECONDS_PER_TARGET" -gt 0 ] ||
  die "SECONDS_PER_TARGET must be a positive integer, got '$SECONDS_PER_TARGET'"
cargo +"$NIGHTLY" fuzz --version >/dev/null 2>&1 ||
  die "cargo-fuzz (or the $NIGHTLY toolchain) is missing: run ./setup.sh --build-only"

# --- build once -----------------------------------------------------------------------------
TRIPLE=$(rustc +"$NIGHTLY" -vV | sed -n 's/^host: //p')
BIN_DIR="$FUZZ_DIR/target/$TRIPLE/release"
mkdir -p "$FUZZ_DIR/artifacts"
BUILD_LOG="$FUZZ_DIR/artifacts/build.log"
say "building ${TARGETS[*]} with cargo +$NIGHTLY fuzz build (log: $BUILD_LOG)"
start=$(date +%s)
# casa's build script compiles the eBPF programs with a nested `cargo +nightly` (aya-build);
# it sets its own CARGO_ENCODED_RUSTFLAGS, so the sanitizer flags cargo-fuzz passes through
# RUSTFLAGS never reach the BPF target.
if ! (cd "$FUZZ_DIR/.." && cargo +"$NIGHTLY" fuzz build --fuzz-dir "$FUZZ_DIR" -O -a) \
  >"$BUILD_LOG" 2>&1; then
  grep -v '^warning: casa@' "$BUILD_LOG" | tail -n 40 >&2
  die "build failed (full log: $BUILD_LOG)"
fi
say "built in $(($(date +%s) - start)) s"

# --- run each target --------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/casa-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0
run_start=$(date +%s)
for t in "${TARGETS[@]}"; do
  bin="$BIN_DIR/$t"
  [ -x "$bin" ] || { say "$t: FAILED: no binary at $bin"; failed=$((failed + 1)); continue; }
  art="$FUZZ_DIR/artifacts/$t"
  rm -rf "$art"
  mkdir -p "$art"
  log="$art/fuzz.log"
  corpus="$WORK/$t"
  mkdir -p "$corpus"
  [ -d "$FUZZ_DIR/corpus/$t" ] && cp -R "$FUZZ_DIR/corpus/$t/." "$corpus/"
  dict=()
  [ -f "$FUZZ_DIR/$t.dict" ] && dict=("-dict=$FUZZ_DIR/$t.dict")
  # -timeout: a single input running longer than 10 s is a hang.
  opts=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 "-max_len=$(max_len "$t")" "${dict[@]}")

  # Known open crashes: replayed one by one, reported, not counted.
  if [ -d "$FUZZ_DIR/regressions/$t/open" ]; then
    while IFS= read -r -d '' f; do
      mkdir -p "$WORK/open-$t"
      if "$bin" "${opts[@]}" "-artifact_prefix=$WORK/open-$t/" "$f" >"$WORK/open-$t/log" 2>&1; then
        say "$t: open regression now runs clean, move it up to regressions/$t/: $f"
      else
        say "$t: open regression still crashes (known, regressions/README.md): $f"
      fi
    done < <(find "$FUZZ_DIR/regressions/$t/open" -maxdepth 1 -type f ! -name '*.md' -print0 | sort -z)
  fi

  # Fixed earlier crashes first: each must run clean.
  status=0
  regs=()
  if [ -d "$FUZZ_DIR/regressions/$t" ]; then
    while IFS= read -r -d '' f; do regs+=("$f"); done \
      < <(find "$FUZZ_DIR/regressions/$t" -maxdepth 1 -type f ! -name '*.md' -print0 | sort -z)
  fi
  if [ "${#regs[@]}" -gt 0 ]; then
    "$bin" "${opts[@]}" "-artifact_prefix=$art/" "${regs[@]}" >"$art/regressions.log" 2>&1 ||
      status=$?
    if [ "$status" -ne 0 ]; then
      cat "$art/regressions.log" >>"$log"
    fi
  fi
  if [ "$status" -eq 0 ]; then
    "$bin" "${opts[@]}" "-artifact_prefix=$art/" "-max_total_time=$SECONDS_PER_TARGET" \
      -print_final_stats=1 "$corpus" >"$log" 2>&1 || status=$?
  fi

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1)
  if [ "$status" -eq 0 ]; then
    say "$t: ok (${execs:-?} runs in ${SECONDS_PER_TARGET} s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs)"
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    say "$t: FAILED (libFuzzer exit status $status); log: $log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|thread .* panicked|panicked at)|^    #[0-9]+ .* in (casa|core::panicking)' "$log" | head -n 20 | sed 's/^/    /'
    found=0
    for f in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
      [ -f "$f" ] || continue
      found=1
      say "$t: input: $f"
      say "$t: reproduce: $bin $f"
      say "$t:        or: (cd $FUZZ_DIR/.. && cargo +$NIGHTLY fuzz run --fuzz-dir $FUZZ_DIR -O -a $t $f)"
    done
    if [ "$found" -eq 0 ] && [ -s "$art/regressions.log" ]; then
      f=$(sed -n 's/^Running: //p' "$art/regressions.log" | tail -n1)
      say "$t: a fixed regression crashes again: ${f:-see $art/regressions.log}"
      say "$t: reproduce: $bin ${f:-<file>}"
    fi
  fi
done

say "ran ${#TARGETS[@]} targets in $(($(date +%s) - run_start)) s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

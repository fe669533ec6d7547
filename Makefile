# casa — see README.md. Every target that needs the toolchain or the kernel runs ./setup.sh
# first; it is idempotent and takes about a second when everything is already in place.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
CASA := target/release/casa
RUN_ARGS ?=

.PHONY: all setup build run test check bench eval clean

all: build

setup:
	@./setup.sh

build:
	@./setup.sh --build-only
	$(CARGO) build --release --locked -p casa

# Run the daemon for real (root): Ctrl-C or `kill $$(cat /var/run/casa.pid)` stops it.
run: build
	@./setup.sh
	$(CASA) run $(RUN_ARGS)

# Unit tests, golden tests, the kernel and live integration tests (root; loads eBPF for
# real), then every fuzz target for FUZZ_SECONDS each on its committed corpus.
FUZZ_SECONDS ?= 15
test:
	@./setup.sh
	$(CARGO) test --workspace --exclude casa-ebpf --locked
	bash casa/fuzz/run.sh $(FUZZ_SECONDS)

# Formatting and clippy -D warnings on every crate, the eBPF crate included.
check:
	@./setup.sh --build-only
	$(CARGO) xtask check

bench:
	@echo "make bench: the benchmark suite is not built yet (issue #5: Performance)." >&2
	@exit 1

eval:
	@echo "make eval: the evaluation harness is not built yet (issue #7: Evaluation harness)." >&2
	@exit 1

clean:
	$(CARGO) clean
	rm -rf logs

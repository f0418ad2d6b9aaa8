#!/usr/bin/env bash
# Reruns the TLS comparison of issue 15 with one command and writes the
# markdown tables to stdout (progress and each run's summary go to stderr).
#
#   bench/run-tls.sh [RESULTS.jsonl]
#
# Each scenario runs against chat-server over TLS and over plain TCP, and
# against `ncat --chat --ssl` and plain `ncat --chat`, in that order, each
# started by chat-bench on free loopback ports:
#   chat-server --listen 127.0.0.1:P --tls-listen 127.0.0.1:Q
#       --tls-cert C --tls-key K --rate 0 --max-per-ip 0 --max-per-net 0
#       --connect-rate 0 --sendq 16777216 --max-clients N
#   ncat --ssl --ssl-cert C --ssl-key K -l --chat --max-conns 100000 127.0.0.1 PORT
# where C and K are a self-signed certificate (ECDSA P-256, for localhost
# and 127.0.0.1) chat-bench makes for the run and trusts; its TLS
# connections verify it (rustls, ring provider, x25519 offered first, no
# resumption: every handshake a full one). Then the handshake storms,
# against chat-server only (ncat's `select` cannot hold 1,200 clients).
#
# RESULTS.jsonl (default: a temporary file) collects every run's JSON line;
# `target/release/chat-bench table RESULTS.jsonl` prints the tables again.
# DURATION=SECS (default 10) sets how long A, B and the storms send;
# HANDSHAKE_SECS=SECS (default 5) how long each handshakes run lasts.
# SERVER_ARGS="--threads 2" (split on spaces) adds arguments to chat-server.
# Everything stays on loopback; every run is bounded in time (the whole
# script takes about 4 minutes with the defaults).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
HANDSHAKE_SECS="${HANDSHAKE_SECS:-5}"
RESULTS="${1:-$(mktemp -t chat-bench-tls-XXXXXX.jsonl)}"
SERVER_FLAGS=()
for word in ${SERVER_ARGS:-}; do SERVER_FLAGS+=("--server-arg=$word"); done

if ! command -v ncat >/dev/null 2>&1; then
    echo "ncat is missing; installing the Debian package ncat" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ncat >&2
fi

echo "building release binaries" >&2
cargo build --release -q -p chat-server -p chat-bench >&2
BENCH="${CARGO_TARGET_DIR:-target}/release/chat-bench"
SERVER="${CARGO_TARGET_DIR:-target}/release/chat-server"

# once LABEL WHO SCENARIO-ARGS...: one run, its JSON line appended to
# RESULTS. A failed run (ncat dying under load, say) is reported and the
# comparison goes on; its cells stay empty.
once() {
    local label="$1" who="$2"
    shift 2
    local -a how
    case "$who" in
        chat-server-tls) how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}" --tls) ;;
        chat-server-tcp) how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}") ;;
        ncat-tls) how=(--target ncat --tls) ;;
        ncat-tcp) how=(--target ncat) ;;
    esac
    echo "== $label: $who" >&2
    local out
    if out="$("$BENCH" "${how[@]}" --label "$label" "$@")"; then
        printf '%s\n' "$out" | grep -v '^{' >&2 || true
        printf '%s\n' "$out" | grep '^{' | tail -n 1 >>"$RESULTS"
    else
        echo "   ($who failed in \"$label\"; see above)" >&2
    fi
}

# run LABEL SCENARIO-ARGS...: the scenario against all four.
run() {
    local label="$1" who
    shift
    for who in chat-server-tls chat-server-tcp ncat-tls ncat-tcp; do
        once "$label" "$who" "$@"
    done
}

run "A: 100 clients, 10 senders, window 64" \
    fanout --clients 100 --senders 10 --window 64 --duration "$DURATION"
run "B: 1,000 clients, 2 senders × 50 lines/s" \
    fixed-rate --clients 1000 --senders 2 --rate 50 --duration "$DURATION" --setup-timeout 60
# Every closed connection keeps its source port for a minute (TIME_WAIT):
# 64 source addresses give ~1.8 million ports.
run "new connections, 8 in flight" \
    --sources 64 handshakes --concurrency 8 --duration "$HANDSHAKE_SECS"
run "new connections, 32 in flight" \
    --sources 64 handshakes --concurrency 32 --duration "$HANDSHAKE_SECS"
run "C: 1,000 idle connections" \
    idle --clients 1000

STORM=(storm --clients 200 --senders 2 --rate 50 --duration "$DURATION" --storm-at 3)
once "200 TLS clients chatting, no storm" chat-server-tls "${STORM[@]}" --storm 0
once "1,000 TLS handshakes at once" chat-server-tls "${STORM[@]}" --storm 1000
once "1,000 TLS handshakes at once, clients on the plain port" chat-server-tls "${STORM[@]}" --storm 1000 --plain-clients
once "1,000 connections stuck after half a ClientHello" chat-server-tls "${STORM[@]}" --storm 1000 --storm-kind half-hello
once "200 TCP clients chatting, no storm" chat-server-tcp "${STORM[@]}" --storm 0
once "1,000 plain TCP connections at once" chat-server-tcp "${STORM[@]}" --storm 1000

echo "results: $RESULTS" >&2
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB," \
    "$(uname -sr), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "load average before the end $(cut -d' ' -f1-3 /proc/loadavg); load generator on the same cores."
echo
"$BENCH" table "$RESULTS"

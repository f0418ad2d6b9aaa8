#!/usr/bin/env bash
# Reruns the WebSocket comparison of issue 18 with one command and writes
# the markdown table to stdout (progress and each run's summary go to
# stderr).
#
#   bench/run-web.sh [RESULTS.jsonl]
#
# Scenario A (100 clients, 10 senders, window 64) in one room of
# chat-server's line clients, of its WebSocket clients, and of both (every
# other client on each, so 5 senders speak each), then the anchor, ncat
# --chat with the same number of clients; ROUNDS times (default 3), each
# round its own group of the table, since the machine's noise is larger
# than the differences. Then the memory of 10,000 idle connections, line
# and WebSocket, once per round. chat-bench starts each server itself on
# free loopback ports:
#   chat-server --listen 127.0.0.1:P --web-listen 127.0.0.1:0
#       --rate 0 --max-per-ip 0 --max-per-net 0 --connect-rate 0
#       --sendq 16777216 --max-clients N
# (the web listener's port is read from the server's log), and
#   ncat -l --chat --max-conns 100000 127.0.0.1 PORT
#
# RESULTS.jsonl (default: a temporary file) collects every run's JSON line;
# `target/release/chat-bench table RESULTS.jsonl` prints the table again.
# DURATION=SECS (default 10) sets how long A sends; ROUNDS=N the rounds.
# SERVER_ARGS="--threads 2" (split on spaces) adds arguments to chat-server.
# Installs the Debian package ncat if it is missing. Everything stays on
# loopback; every run is bounded in time (the whole script takes about
# 4 minutes with the defaults).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
RESULTS="${1:-$(mktemp -t chat-bench-web-XXXXXX.jsonl)}"
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
# RESULTS. A failed run is reported and the comparison goes on; its cells
# stay empty.
once() {
    local label="$1" who="$2"
    shift 2
    local -a how
    case "$who" in
        chat-server-line) how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}" --protocol line) ;;
        chat-server-web) how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}" --protocol web) ;;
        chat-server-mixed-web) how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}" --protocol mixed-web) ;;
        ncat) how=(--target ncat) ;;
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

A=(fanout --clients 100 --senders 10 --window 64 --duration "$DURATION")
for round in $(seq 1 "$ROUNDS"); do
    for who in chat-server-line chat-server-web chat-server-mixed-web ncat; do
        once "A: 100 clients, 10 senders, window 64 (round $round)" "$who" "${A[@]}"
    done
done
for round in $(seq 1 "$ROUNDS"); do
    for who in chat-server-line chat-server-web; do
        once "C: 10,000 idle connections (round $round)" "$who" idle --clients 10000
    done
done

echo "results: $RESULTS" >&2
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB," \
    "$(uname -sr), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "load average before the end $(cut -d' ' -f1-3 /proc/loadavg); load generator on the same cores."
echo
"$BENCH" table "$RESULTS"

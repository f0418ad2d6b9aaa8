#!/usr/bin/env bash
# Reruns the whole chat-server vs `ncat --chat` comparison (and, if asked,
# tokio's chat example) with one command and writes the markdown table to
# stdout (progress and each run's summary go to stderr).
#
#   bench/run-comparison.sh [RESULTS.jsonl]
#
# RESULTS.jsonl (default: a temporary file) collects every run's JSON line;
# `target/release/chat-bench table RESULTS.jsonl` prints the table again.
# DURATION=SECS (default 10) sets how long each fan-out scenario sends.
# SERVER_ARGS="--threads 2" (split on spaces) adds arguments to chat-server,
# each passed to chat-bench as --server-arg; they show in each JSON line.
# TOKIO_CHAT_BIN=PATH (optional) adds a third target: each scenario also
# runs against tokio's chat example (`--target tokio-chat --tokio-bin
# PATH`), and the table gets a "tokio chat" column and a chat-server ÷
# tokio ratio. That example is NOT part of this project and nothing here
# builds it: take `examples/chat.rs` from the tokio-rs/tokio repository
# (tokio 1.x), put it unchanged as src/main.rs of a scratch crate outside
# this repository named `chat` (the example's log filter is `chat=info`),
# give that crate the example's dependencies (tokio 1 with feature "full",
# tokio-util 0.7 with "codec", tokio-stream 0.1, futures 0.3, tracing 0.1,
# tracing-subscriber 0.3 with "fmt", "ansi", "env-filter" and
# "tracing-log"), run `cargo build --release` there, and point
# TOKIO_CHAT_BIN at its target/release/chat. Unset or empty: no tokio
# column, the table as before.
#
# Each scenario runs against chat-server and then ncat (then tokio's
# example), each started by chat-bench on a free loopback port: chat-server with
# `--rate 0 --max-per-ip 0 --max-per-net 0 --connect-rate 0 --max-clients N --sendq 16777216` (N = the
# run's clients and a few more; flood
# control off, which the load needs), ncat as
# `ncat -l --chat --max-conns 100000`, tokio's example as `chat
# 127.0.0.1:PORT` (it has no options). Everything stays on loopback; every
# run is bounded in time. The idle and ramp rows include the kernel's slab
# memory per connection (machine-wide /proc/slabinfo, readable by root;
# both ends of each loopback connection, so the server's share is about
# half).
set -euo pipefail

TARGETS=(chat-server ncat)
if [ -n "${TOKIO_CHAT_BIN:-}" ]; then
    if [ ! -x "$TOKIO_CHAT_BIN" ] || [ -d "$TOKIO_CHAT_BIN" ]; then
        echo "TOKIO_CHAT_BIN=$TOKIO_CHAT_BIN is not an executable file" >&2
        exit 1
    fi
    # Made absolute before the script changes directory.
    TOKIO_CHAT_BIN="$(cd "$(dirname "$TOKIO_CHAT_BIN")" && pwd)/$(basename "$TOKIO_CHAT_BIN")"
    TARGETS+=(tokio-chat)
fi

cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
RESULTS="${1:-$(mktemp -t chat-bench-XXXXXX.jsonl)}"
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
BENCH=target/release/chat-bench
SERVER=target/release/chat-server

# run LABEL SCENARIO-ARGS...: the scenario against chat-server, then ncat
# (then tokio's chat example, with TOKIO_CHAT_BIN).
run() {
    local label="$1"
    shift
    local target out
    for target in "${TARGETS[@]}"; do
        local -a how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}")
        if [ "$target" = ncat ]; then how=(--target ncat); fi
        if [ "$target" = tokio-chat ]; then how=(--target tokio-chat --tokio-bin "$TOKIO_CHAT_BIN"); fi
        echo "== $label: $target" >&2
        # A failed run (ncat dying under load, say) is reported and the
        # comparison goes on; its cells stay empty.
        if out="$("$BENCH" "${how[@]}" --label "$label" "$@")"; then
            printf '%s\n' "$out" | grep -v '^{' >&2 || true
            printf '%s\n' "$out" | grep '^{' | tail -n 1 >>"$RESULTS"
        else
            echo "   ($target failed in \"$label\"; see above)" >&2
        fi
    done
}

run "A: 100 clients, 10 senders, window 64" \
    fanout --clients 100 --senders 10 --window 64 --duration "$DURATION"
run "A at 500 lines/s per sender" \
    fixed-rate --clients 100 --senders 10 --rate 500 --duration "$DURATION"
run "B: 1,000 clients, 2 senders × 50 lines/s" \
    fixed-rate --clients 1000 --senders 2 --rate 50 --duration "$DURATION" --setup-timeout 60
run "C: 1,000 idle connections" \
    idle --clients 1000
run "C: ramp to 19,000 in steps of 1,000 (2 worker processes, 30 s budget)" \
    ramp --max 19000 --step 1000 --workers 2 --step-timeout 15 --budget 30
run "join storm: 1,000 clients into one room" \
    join-storm --clients 1000 --timeout 30

echo "results: $RESULTS" >&2
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB," \
    "$(uname -sr), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);" \
    "load generator on the same cores."
echo
"$BENCH" table "$RESULTS"

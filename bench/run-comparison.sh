#!/usr/bin/env bash
# Reruns the whole chat-server vs `ncat --chat` comparison with one command
# and writes the markdown table to stdout (progress and each run's summary
# go to stderr).
#
#   bench/run-comparison.sh [RESULTS.jsonl]
#
# RESULTS.jsonl (default: a temporary file) collects every run's JSON line;
# `target/release/chat-bench table RESULTS.jsonl` prints the table again.
# DURATION=SECS (default 10) sets how long each fan-out scenario sends.
# SERVER_ARGS="--threads 2" (split on spaces) adds arguments to chat-server,
# each passed to chat-bench as --server-arg; they show in each JSON line.
#
# Each scenario runs against chat-server and then ncat, both started by
# chat-bench on a free loopback port: chat-server with
# `--rate 0 --max-per-ip 0 --max-clients N --sendq 16777216` (N = the
# run's clients and a few more; flood
# control off, which the load needs), ncat as
# `ncat -l --chat --max-conns 100000`. Everything stays on loopback; every
# run is bounded in time. The idle and ramp rows include the kernel's slab
# memory per connection (machine-wide /proc/slabinfo, readable by root;
# both ends of each loopback connection, so the server's share is about
# half).
set -euo pipefail

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

# run LABEL SCENARIO-ARGS...: the scenario against chat-server, then ncat.
run() {
    local label="$1"
    shift
    local target out
    for target in chat-server ncat; do
        local -a how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}")
        if [ "$target" = ncat ]; then how=(--target ncat); fi
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

#!/usr/bin/env bash
# Reruns the IRC comparison of issue 16 with one command and writes the
# markdown table to stdout (progress and each run's summary go to stderr).
#
#   bench/run-irc.sh [RESULTS.jsonl]
#
# Each scenario runs against chat-server's IRC listener, Debian's ngircd,
# chat-server's line protocol and a chat-server room mixing both (every
# other client on each), in that order, each started by chat-bench on free
# loopback ports:
#   chat-server --listen 127.0.0.1:P --irc-listen 127.0.0.1:Q --server-name bench
#       --rate 0 --max-per-ip 0 --max-per-net 0 --connect-rate 0
#       --sendq 16777216 --max-clients N
#   ngircd -n -f CONFIG
# where CONFIG is written by chat-bench for the run into a directory of its
# own (127.0.0.1 and the run's port; no PAM, ident or DNS lookups; no limit
# on connections, connections per address or channels; MaxPenaltyTime = 0;
# an IRC operator the senders take up to set user mode F, ngircd's relaxed
# flood protection) and removed afterwards; the JSON lines carry it
# (`server_config`). Then scenario A against ngircd with less of its flood
# control lifted (MaxPenaltyTime = 0 alone, and ngircd's defaults), to show
# what it does.
#
# RESULTS.jsonl (default: a temporary file) collects every run's JSON line;
# `target/release/chat-bench table RESULTS.jsonl` prints the table again.
# DURATION=SECS (default 10) sets how long A and B send.
# SERVER_ARGS="--threads 2" (split on spaces) adds arguments to chat-server.
# Installs the Debian package ngircd if it is missing (it is started by
# chat-bench only, never as a service). Everything stays on loopback; every
# run is bounded in time (the whole script takes about 3 minutes).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
RESULTS="${1:-$(mktemp -t chat-bench-irc-XXXXXX.jsonl)}"
SERVER_FLAGS=()
for word in ${SERVER_ARGS:-}; do SERVER_FLAGS+=("--server-arg=$word"); done

if ! command -v ngircd >/dev/null 2>&1 && [ ! -x /usr/sbin/ngircd ]; then
    echo "ngircd is missing; installing the Debian package ngircd" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    # The package's service is not wanted: chat-bench starts its own ngircd.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ngircd >&2
    if command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --now ngircd >/dev/null 2>&1 || true
    fi
fi
NGIRCD="$(command -v ngircd || echo /usr/sbin/ngircd)"

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
        chat-server-irc) how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}" --protocol irc) ;;
        chat-server-line) how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}" --protocol line) ;;
        chat-server-mixed) how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}" --protocol mixed) ;;
        ngircd) how=(--target ngircd --ngircd-bin "$NGIRCD") ;;
        ngircd-no-penalty) how=(--target ngircd --ngircd-bin "$NGIRCD" --ngircd-flood no-penalty) ;;
        ngircd-default) how=(--target ngircd --ngircd-bin "$NGIRCD" --ngircd-flood default) ;;
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

# run LABEL TARGETS SCENARIO-ARGS...: the scenario against each of TARGETS
# (space-separated).
run() {
    local label="$1" targets="$2" who
    shift 2
    for who in $targets; do
        once "$label" "$who" "$@"
    done
}

ALL="chat-server-irc ngircd chat-server-line chat-server-mixed"
A=(fanout --clients 100 --senders 10 --window 64 --duration "$DURATION")
run "A: 100 clients, 10 senders, window 64" "$ALL" "${A[@]}"
run "B: 1,000 clients, 2 senders × 50 lines/s" "$ALL" \
    fixed-rate --clients 1000 --senders 2 --rate 50 --duration "$DURATION" --setup-timeout 60
run "C: 1,000 idle connections" "chat-server-irc ngircd chat-server-line" \
    idle --clients 1000
once "A, ngircd with MaxPenaltyTime = 0 only (no user mode F)" ngircd-no-penalty "${A[@]}"
# ngircd's defaults throttle the senders to a few lines a second: the run
# cannot drain, so it is kept short.
once "A, ngircd with its flood control as shipped" ngircd-default \
    fanout --clients 100 --senders 10 --window 64 --duration 5 --drain 5

echo "results: $RESULTS" >&2
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB," \
    "$(uname -sr), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "$("$NGIRCD" --version 2>/dev/null | head -n 1 | cut -d- -f1)," \
    "load average before the end $(cut -d' ' -f1-3 /proc/loadavg); load generator on the same cores."
echo
"$BENCH" table "$RESULTS"

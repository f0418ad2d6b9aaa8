#!/usr/bin/env bash
# Measures the Redis cluster of issue 17 against a single instance, in one
# run, and writes a markdown table to stdout (progress and each run's
# summary go to stderr).
#
#   bench/run-cluster.sh [RESULTS.jsonl]
#
# Three comparisons, each of a single chat-server, one instance through
# Redis, and two instances through one Redis (every client K on instance
# K mod 2, so half of each room's receivers are on the other instance):
#
#   fan-out     100 clients, 10 senders, window 64: deliveries/s, latency
#               p50/p99, and the CPU of the instances and of Redis;
#   publish     12 clients, 10 senders, window 256: room lines/s, every one
#               through Redis (its numbering script, stream and publish);
#   500 lines/s 10 clients, 1 sender at 500 lines/s: the latency a user
#               sees at a modest load, and what the cluster adds to p50.
#
# chat-bench starts everything itself on free loopback ports:
#   redis-server --bind 127.0.0.1 --port R --save '' --appendonly no
#   chat-server --listen 127.0.0.1:P --rate 0 --max-per-ip 0 --max-per-net 0
#       --connect-rate 0 --sendq 16777216 --max-clients N
#       [--cluster redis://127.0.0.1:R]
# Redis's CPU is read from /proc/PID/stat before and after each run.
#
# BASELINE_BIN=PATH adds, before each single-instance run, the same run
# against that chat-server (a build of the main branch, say): with
# clustering off the instance must be as fast as before the cluster came.
#
# RESULTS.jsonl (default: a temporary file) collects every run's JSON line.
# DURATION=SECS (default 10) sets how long each run sends; ROUNDS=N (default
# 1) repeats the whole set. SERVER_ARGS="--threads 2" (split on spaces) adds
# arguments to every chat-server. Needs redis-server (Debian's package; it
# is installed if missing). Everything stays on loopback; each run is
# bounded (under 30 s with the defaults: a failed setup gives up after 20 s),
# the whole script takes about two minutes a round.
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-1}"
RESULTS="${1:-$(mktemp -t chat-bench-cluster-XXXXXX.jsonl)}"
SERVER_FLAGS=()
for word in ${SERVER_ARGS:-}; do SERVER_FLAGS+=("--server-arg=$word"); done

if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server is missing; installing the Debian package redis-server" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >&2
fi
if ! command -v jq >/dev/null 2>&1; then
    echo "jq is missing (the table is made with it): apt-get install jq" >&2
    exit 1
fi

echo "building release binaries" >&2
cargo build --release -q -p chat-server -p chat-bench >&2
BENCH="${CARGO_TARGET_DIR:-target}/release/chat-bench"
SERVER="${CARGO_TARGET_DIR:-target}/release/chat-server"

# once LABEL SETUP SCENARIO-ARGS...: one run, its JSON line appended to
# RESULTS. SETUP is single, cluster-1 or cluster-2. A failed run is
# reported and the others go on; its row stays out of the table.
once() {
    local label="$1" setup="$2"
    shift 2
    local -a how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}")
    case "$setup" in
        baseline) how=(--server-bin "$BASELINE_BIN" "${SERVER_FLAGS[@]}") ;;
        single) ;;
        cluster-1) how+=(--cluster-instances 1) ;;
        cluster-2) how+=(--cluster-instances 2) ;;
    esac
    echo "== $label: $setup" >&2
    local out
    if out="$("$BENCH" "${how[@]}" --label "$label" "$@")"; then
        printf '%s\n' "$out" | grep -v '^{' >&2 || true
        printf '%s\n' "$out" | grep '^{' | tail -n 1 >>"$RESULTS"
    else
        echo "   ($setup failed in \"$label\"; see above)" >&2
    fi
}

FANOUT=(--setup-timeout 20 fanout --clients 100 --senders 10 --window 64 --duration "$DURATION")
PUBLISH=(--setup-timeout 20 fanout --clients 12 --senders 10 --window 256 --duration "$DURATION")
SLOW=(--setup-timeout 20 fixed-rate --clients 10 --senders 1 --rate 500 --duration "$DURATION")
SETUPS=(single cluster-1 cluster-2)
if [ -n "${BASELINE_BIN:-}" ]; then SETUPS=(baseline "${SETUPS[@]}"); fi
for round in $(seq 1 "$ROUNDS"); do
    for setup in "${SETUPS[@]}"; do
        once "fan-out: 100 clients, 10 senders, window 64 (round $round)" "$setup" "${FANOUT[@]}"
    done
    for setup in "${SETUPS[@]}"; do
        once "publish: 12 clients, 10 senders, window 256 (round $round)" "$setup" "${PUBLISH[@]}"
    done
    for setup in "${SETUPS[@]}"; do
        once "500 lines/s: 10 clients, 1 sender (round $round)" "$setup" "${SLOW[@]}"
    done
done

echo "results: $RESULTS" >&2
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB," \
    "$(uname -sr), $(redis-server --version | cut -d' ' -f1-3), commit" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown), load average before the end" \
    "$(cut -d' ' -f1-3 /proc/loadavg); load generator on the same cores."
echo
echo "| run | instances | room lines/s | deliveries/s | p50 µs | p99 µs | lost/dup/out of order | instances' CPU % | Redis CPU % |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
jq -r --arg base "${BASELINE_BIN:-}" '
    def r: . * 10 | round / 10;
    [ .label,
      (if .cluster_instances then (.cluster_instances | tostring)
       elif $base != "" and (.server | contains($base)) then "single (baseline build)"
       else "single" end),
      (if .active_s > 0 then (.lines_sent / .active_s | round) else 0 end | tostring),
      (.deliveries_per_s | round | tostring),
      (.latency.p50_us | round | tostring),
      (.latency.p99_us | round | tostring),
      "\(.integrity.lost)/\(.integrity.duplicated)/\(.integrity.out_of_order)",
      ([.server_cpu_pct | to_entries[] | select(.key != "redis-server") | .value] | add // 0 | r | tostring),
      (.server_cpu_pct["redis-server"] // 0 | r | tostring)
    ] | "| " + join(" | ") + " |"
' "$RESULTS"
echo
echo "Added p50 at 500 lines/s (two instances minus single, per round):"
jq -rs --arg base "${BASELINE_BIN:-}" '
    map(select(.label | startswith("500 lines/s")))
    | group_by(.label)[]
    | (map(select(.cluster_instances == null and ($base == "" or (.server | contains($base) | not))))[0].latency.p50_us) as $single
    | (map(select(.cluster_instances == 2))[0].latency.p50_us) as $two
    | if $single and $two then "- \(.[0].label): \(($two - $single) | round) µs (single \($single | round) µs, two instances \($two | round) µs)" else "- \(.[0].label): incomplete" end
' "$RESULTS"

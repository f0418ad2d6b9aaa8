#!/usr/bin/env bash
# Sweeps the fan-out scenario over the number of clients, against
# chat-server and `ncat --chat`, and plots deliveries/s and latency p99
# against clients in one PNG (two panels, log-scale x).
#
#   bench/run-sweep.sh [OUT.png]
#
# OUT.png defaults to bench/plots/fanout-vs-clients.png; beside it go
# OUT.dat (one row per run: clients, target, deliveries/s, p50 and p99 in
# ms, complete, lost) and OUT.jsonl (every run's JSON line).
#
# For each N in NS, `chat-bench fanout --clients N --senders S --window 64
# --duration $DURATION`, with S = min(10, N - 1) (a sender does not hear
# itself, so 2 clients have 1 sender), against chat-server and, for N up to
# NCAT_MAX, against ncat (which exits past ~1,019 clients). Both are started
# by chat-bench on a free loopback port, chat-server with
# `--rate 0 --max-per-ip 0 --max-per-net 0 --connect-rate 0 --max-clients N --sendq 16777216` and then
# SERVER_ARGS. Everything stays on loopback; every run is bounded by
# chat-bench's own timeouts and, in case those fail, by `timeout`.
#
# Environment:
#   DURATION=SECS     how long each point sends (default 5)
#   NS="2 10 ..."     the client counts (default 2 10 30 100 300 1000 3000 10000)
#   NCAT_MAX=N        largest N run against ncat; 0 skips ncat (default 1000)
#   SERVER_ARGS="--threads 2"
#                     extra chat-server arguments, split on spaces, each
#                     passed as --server-arg (so a sweep per thread count)
#   TOKIO_CHAT_BIN=PATH
#                     also run tokio's chat example (built by the reader
#                     from tokio's repository, see `chat-bench --help`) for
#                     N up to TOKIO_MAX (default 3000)
#   LABEL=TEXT        put in the plot's title and each run's --label
#   BUILD=0           use the binaries already in target/release
#
# Installs ncat (when NCAT_MAX > 0) and gnuplot-nox with apt-get if they
# are missing, using sudo when not root.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${1:-bench/plots/fanout-vs-clients.png}"
DURATION="${DURATION:-5}"
NS="${NS:-2 10 30 100 300 1000 3000 10000}"
NCAT_MAX="${NCAT_MAX:-1000}"
SERVER_ARGS="${SERVER_ARGS:-}"
LABEL="${LABEL:-}"
BUILD="${BUILD:-1}"
TOKIO_CHAT_BIN="${TOKIO_CHAT_BIN:-}"
TOKIO_MAX="${TOKIO_MAX:-3000}"
if [ -n "$TOKIO_CHAT_BIN" ]; then
    if [ ! -x "$TOKIO_CHAT_BIN" ]; then
        echo "TOKIO_CHAT_BIN=$TOKIO_CHAT_BIN is not an executable" >&2
        exit 2
    fi
    TOKIO_CHAT_BIN="$(cd "$(dirname "$TOKIO_CHAT_BIN")" && pwd)/$(basename "$TOKIO_CHAT_BIN")"
fi

case "$OUT" in
*.png) ;;
*) echo "the output must be a .png file: $OUT" >&2; exit 2 ;;
esac
BASE="${OUT%.png}"
DATA="$BASE.dat"
JSONL="$BASE.jsonl"
mkdir -p "$(dirname "$OUT")"

# apt_install PACKAGE: installs a Debian package.
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "installing the Debian package $1" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >&2
}
if [ "$NCAT_MAX" -gt 0 ] && ! command -v ncat >/dev/null 2>&1; then apt_install ncat; fi
if ! command -v gnuplot >/dev/null 2>&1; then apt_install gnuplot-nox; fi

if [ "$BUILD" != 0 ]; then
    echo "building release binaries" >&2
    cargo build --release -q -p chat-server -p chat-bench >&2
fi
BENCH=target/release/chat-bench
SERVER=target/release/chat-server

SERVER_FLAGS=()
for word in $SERVER_ARGS; do SERVER_FLAGS+=("--server-arg=$word"); done

# json_num KEY LINE: the number after "KEY": in a JSON line (each key the
# sweep reads occurs once in a fan-out report).
json_num() {
    { printf '%s\n' "$2" | grep -o "\"$1\":[-0-9.eE+]*" || true; } | head -n 1 | cut -d: -f2
}

: >"$JSONL"
printf '# clients target deliveries_per_s p50_ms p99_ms complete lost\n' >"$DATA"

# point N TARGET: one fan-out run; appends its row, or says why not.
point() {
    local n="$1" target="$2" senders setup json out
    senders=$((n - 1 < 10 ? n - 1 : 10))
    # 10,000 clients connect and join in seconds; the margin is for a
    # busy machine.
    setup=$((n >= 3000 ? 120 : 60))
    local -a how=(--server-bin "$SERVER" "${SERVER_FLAGS[@]}")
    if [ "$target" = ncat ]; then how=(--target ncat); fi
    if [ "$target" = tokio-chat ]; then how=(--target tokio-chat --tokio-bin "$TOKIO_CHAT_BIN"); fi
    echo "== $n clients, $senders senders: $target" >&2
    # chat-bench ends itself after setup (and settling) + duration + drain;
    # timeout is the backstop.
    if ! out="$(timeout --kill-after=10 $((2 * setup + DURATION + 10 + 60)) \
        "$BENCH" "${how[@]}" --setup-timeout "$setup" --label "$LABEL" \
        fanout --clients "$n" --senders "$senders" --window 64 --duration "$DURATION" --drain 10)"; then
        echo "   ($target failed at $n clients; no point)" >&2
        return 0
    fi
    printf '%s\n' "$out" | grep -v '^{' >&2 || true
    json="$(printf '%s\n' "$out" | grep '^{' | tail -n 1 || true)"
    if [ -z "$json" ]; then
        echo "   ($target printed no JSON line at $n clients; no point)" >&2
        return 0
    fi
    printf '%s\n' "$json" >>"$JSONL"
    local complete=false
    if printf '%s\n' "$json" | grep -q '"complete":true'; then complete=true; fi
    awk -v n="$n" -v t="$target" -v d="$(json_num deliveries_per_s "$json")" \
        -v p50="$(json_num p50_us "$json")" -v p99="$(json_num p99_us "$json")" \
        -v c="$complete" -v lost="$(json_num lost "$json")" \
        'BEGIN { printf "%s %s %.0f %.3f %.3f %s %s\n", n, t, d, p50 / 1000, p99 / 1000, c, lost }' >>"$DATA"
}

for n in $NS; do
    if [ "$n" -lt 2 ]; then echo "skipping N=$n: fan-out needs 2 clients" >&2; continue; fi
    point "$n" chat-server
    if [ "$n" -le "$NCAT_MAX" ]; then point "$n" ncat; fi
    if [ -n "$TOKIO_CHAT_BIN" ] && [ "$n" -le "$TOKIO_MAX" ]; then point "$n" tokio-chat; fi
done

COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- 2>/dev/null; then COMMIT="$COMMIT+changes"; fi
TITLE="fan-out vs clients${LABEL:+ — $LABEL}: $(date -u +%Y-%m-%d), commit $COMMIT, $(nproc) cores"
SUBTITLE="window 64, min(10, N-1) senders, ${DURATION} s per point${SERVER_ARGS:+; chat-server $SERVER_ARGS}; generator on the same cores"
if [ "$BUILD" = 0 ]; then SUBTITLE="$SUBTITLE; binaries not rebuilt (BUILD=0)"; fi

# One file per target for gnuplot, complete runs only: an incomplete run's
# rate and latency are not comparable.
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
for target in chat-server ncat tokio-chat; do
    awk -v t="$target" '$2 == t && $6 == "true"' "$DATA" >"$TMP/$target.dat"
done
if awk '$6 == "false"' "$DATA" | grep -q .; then
    echo "incomplete runs (left out of the plot):" >&2
    awk '$6 == "false"' "$DATA" >&2
fi

# plot_series FILE COLUMN TITLE STYLE: a gnuplot plot element, or nothing
# for an empty file (gnuplot refuses to plot one).
plot_series() {
    if [ -s "$1" ]; then
        printf '"%s" using 1:%s with linespoints %s title "%s"' "$1" "$2" "$4" "$3"
    fi
}
series() {
    local col="$1" parts=() p
    p="$(plot_series "$TMP/chat-server.dat" "$col" chat-server 'lw 2 pt 7 lc rgb "#1f77b4"')"
    [ -n "$p" ] && parts+=("$p")
    p="$(plot_series "$TMP/ncat.dat" "$col" "ncat --chat" 'lw 2 pt 5 lc rgb "#d62728"')"
    [ -n "$p" ] && parts+=("$p")
    p="$(plot_series "$TMP/tokio-chat.dat" "$col" "tokio chat example" 'lw 2 pt 9 lc rgb "#2ca02c"')"
    [ -n "$p" ] && parts+=("$p")
    if [ "${#parts[@]}" -eq 0 ]; then
        echo "no complete run to plot" >&2
        exit 1
    fi
    local IFS=,
    printf '%s' "${parts[*]}"
}
THROUGHPUT="$(series 3)"
P99="$(series 5)"

gnuplot <<EOF
set terminal pngcairo size 1000,1000 font "sans,11"
set output "$OUT"
set multiplot layout 2,1 title "$TITLE\n{/*0.85 $SUBTITLE}"
set logscale x
set grid
set key top left
set xlabel "clients in the room"
set format y "%.1s%c"
set ylabel "deliveries/s"
set yrange [0:*]
plot $THROUGHPUT
set logscale y
set format y "%g"
set yrange [*:*]
set ylabel "latency p99 (ms)"
set key top left
plot $P99
unset multiplot
EOF
echo "plot: $OUT" >&2
echo "data: $DATA" >&2
echo "runs: $JSONL" >&2

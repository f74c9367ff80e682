#!/usr/bin/env bash
# A/B of two halo-gateway binaries with bench/run.sh, in alternating rounds (A B A B ...), so
# drift of the machine hits both sides alike. Reports per side the median and min-max of
# req/s and proxy CPU µs/request for (c) reused token and (d) fresh token, and VmRSS with
# IDLE_CONNS idle keep-alive connections.
#
#   A=/path/to/before/halo-gateway B=/path/to/after/halo-gateway ROUNDS=5 bash bench/ab.sh
#
# Short settings by default (no uploads, no 1-connection, info-log, rate-limit or tracing rows); every knob of
# bench/run.sh can still be set. Results: bench/results/ab-<stamp>.md.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${A:?set A to the first binary}" "${B:?set B to the second binary}"
ROUNDS=${ROUNDS:-5}
export DURATION=${DURATION:-10} WARMUP=${WARMUP:-2} LOW_DURATION=${LOW_DURATION:-2}
export UPLOAD_SIZES=${UPLOAD_SIZES-} MEASURE_INFO_LOG=${MEASURE_INFO_LOG:-0} MEASURE_RATE_LIMIT=${MEASURE_RATE_LIMIT:-0} MEASURE_TRACING=${MEASURE_TRACING:-0}
export WAIT_QUIET=${WAIT_QUIET:-600} SKIP_BUILD=1
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
WORK=$(mktemp -d /tmp/halo-ab.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$RESULTS_DIR"

# One round of one side: the figures as "rps_c cpu_c rps_d cpu_d idle_rss" on one line.
measure() {
    local bin=$1 out=$2
    ROUNDS=1 RESULTS_DIR="$WORK/raw" HALO_BIN="$bin" bash "$BENCH_DIR/run.sh" >/dev/null 2>&1 || {
        echo "bench/run.sh failed for $bin" >&2
        return 1
    }
    local md
    md=$(ls -t "$WORK"/raw/results-*.md | head -1)
    awk -F'|' '
        /^\| \(c\) halo-gateway, one reused token/ { rc = $3; cc = $6 }
        /^\| \(d\) halo-gateway, distinct token/  { rd = $3; cd = $6 }
        /keep-alive connections/ { if (match($0, /with [0-9]+ idle keep-alive connections [0-9.]+ MiB/)) { s = substr($0, RSTART, RLENGTH); n = split(s, w, " "); rss = w[n-1] } }
        END { gsub(/ /, "", rc); gsub(/ /, "", cc); gsub(/ /, "", rd); gsub(/ /, "", cd); print rc, cc, rd, cd, rss }
    ' "$md" >>"$out"
}

for ((round = 1; round <= ROUNDS; round++)); do
    echo "round $round/$ROUNDS: A"; measure "$A" "$WORK/a"
    echo "round $round/$ROUNDS: B"; measure "$B" "$WORK/b"
done

# median and min-max of column $2 in file $1
stat() { cut -d' ' -f"$2" "$1" | sort -n | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%g (%g-%g)", m, v[1], v[NR]}'; }

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
{
    echo "### A/B, $ROUNDS alternating rounds, $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores"
    echo
    echo "A: $A"
    echo "B: $B"
    echo "settings: DURATION=$DURATION WARMUP=$WARMUP, 64 connections; median (min-max)"
    echo
    echo "| side | (c) req/s | (c) CPU µs/req | (d) req/s | (d) CPU µs/req | RSS, ${IDLE_CONNS:-5000} idle conns (MiB) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for side in a b; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "${side^^}" "$(stat "$WORK/$side" 1)" "$(stat "$WORK/$side" 2)" \
            "$(stat "$WORK/$side" 3)" "$(stat "$WORK/$side" 4)" "$(stat "$WORK/$side" 5)"
    done
    echo
    echo "raw rounds (rps_c cpu_c rps_d cpu_d rss):"
    echo; echo "A:"; sed 's/^/    /' "$WORK/a"; echo "B:"; sed 's/^/    /' "$WORK/b"
} | tee "$RESULTS_DIR/ab-$STAMP.md"

#!/usr/bin/env bash
# CPU profile of halo-gateway under the (c) or (d) load of bench/run.sh, with perf.
#
#   bash bench/profile.sh            # MODE=cached: one reused token (c)
#   MODE=uncached bash bench/profile.sh   # TokenCacheSize=0, distinct tokens (d)
#   MODE=nginx bash bench/profile.sh      # the nginx baseline (b), for comparison
#
# Needs perf (apt: linux-perf). Prints the top symbols (self time) of the gateway process and
# keeps perf.data under $OUT (default /tmp/halo-profile-<mode>). The release binary has symbols
# but no frame pointers, so the report is flat (self time per function), which is what is
# needed to see where the cycles go.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
MODE=${MODE:-cached}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
BASE_PORT=${BASE_PORT:-18180}
BIN=${HALO_BIN:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/halo-gateway}
OUT=${OUT:-/tmp/halo-profile-$MODE}
HOST=127.0.0.1
GW_PORT=$BASE_PORT ADMIN_PORT=$((BASE_PORT + 1)) ISSUER_PORT=$((BASE_PORT + 2)) STUB_PORT=$((BASE_PORT + 3))
ISSUER_URL="http://$HOST:$ISSUER_PORT/oauth2/default"
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 1; }
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_http() { for _ in $(seq 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "$1 did not answer" >&2; exit 1; }

"$BIN" dev --upstream-only --upstream-listen "$HOST:$STUB_PORT" >/dev/null 2>&1 & PIDS+=("$!")
"$BIN" dev --issuer-only --issuer-listen "$HOST:$ISSUER_PORT" --user-client-id prof --user-client-secret prof-secret \
    --admin-client-id profadmin --admin-client-secret prof-admin-secret >/dev/null 2>&1 & PIDS+=("$!")
wait_http "http://$HOST:$STUB_PORT/api/v1/policies"
wait_http "$ISSUER_URL/.well-known/openid-configuration"
cache=10000
[[ "$MODE" == uncached ]] && cache=0
env -i PATH="$PATH" Authentication__Schemes__Bearer__Authority="$ISSUER_URL" \
    Authentication__Schemes__Bearer__ValidAudiences__0=api://halo Authentication__Schemes__Bearer__RequireHttpsMetadata=false \
    Authentication__Schemes__Bearer__TokenCacheSize=$cache Gateway__Upstream="http://$HOST:$STUB_PORT" \
    Gateway__Listen="$HOST:$GW_PORT" Gateway__AdminListen="$HOST:$ADMIN_PORT" Gateway__LogLevel="${LOG_LEVEL:-warn}" \
    "$BIN" serve >/dev/null 2>&1 & GW=$!; PIDS+=("$GW")
wait_http "http://$HOST:$ADMIN_PORT/readyz"

python3 "$BENCH_DIR/mint_tokens.py" "$ISSUER_URL" prof prof-secret 500 "$OUT/tokens.txt"
export HALO_BENCH_TOKENS=$OUT/tokens.txt HALO_BENCH_DIR=$BENCH_DIR
if [[ "$MODE" == uncached ]]; then
    args=(-s "$BENCH_DIR/tokens.lua")
else
    args=(-s "$BENCH_DIR/report.lua" -H "Authorization: Bearer $(head -1 "$OUT/tokens.txt")")
fi
TARGET_PORT=$GW_PORT TARGET_PIDS=$GW
if [[ "$MODE" == nginx ]]; then
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    mkdir -p "$OUT"/nginx-{body,proxy,fastcgi,uwsgi,scgi}
    sed -e "s|@RUN_DIR@|$OUT|g" -e "s|@UPSTREAM@|$HOST:$STUB_PORT|g" -e "s|@NGINX_LISTEN@|$HOST:$((BASE_PORT + 4))|g" \
        "$BENCH_DIR/nginx.conf.template" >"$OUT/nginx.conf"
    "$NGINX" -c "$OUT/nginx.conf" -p "$OUT" 2>>"$OUT/nginx-error.log" & PIDS+=("$!")
    TARGET_PORT=$((BASE_PORT + 4))
    wait_http "http://$HOST:$TARGET_PORT/api/v1/policies"
    TARGET_PIDS=$(pgrep -P "${PIDS[-1]}" | paste -sd,)
fi
wrk -t2 -c"$CONNECTIONS" -d3s "${args[@]}" "http://$HOST:$TARGET_PORT/api/v1/policies" >/dev/null
perf record -F 1999 -o "$OUT/perf.data" -p "$TARGET_PIDS" -- sleep "$DURATION" >/dev/null 2>&1 &
PERF=$!
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "${args[@]}" "http://$HOST:$TARGET_PORT/api/v1/policies" | grep RESULT
wait "$PERF" || true
echo "CPU by binary (kernel = TCP/IP and syscalls; the rest is user space):"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -6 | tee "$OUT/dso.txt"
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -E 's/ +$//' | head -"${TOP:-45}" | tee "$OUT/top.txt"
echo "full report: perf report -i $OUT/perf.data --no-children --sort symbol"

#!/usr/bin/env bash
# halo-gateway load benchmark against a plain nginx reverse proxy and HAProxy with JWT checks,
# on loopback.
#
#   bash bench/run.sh              # from the repository root; ~12-15 minutes on 2 cores
#
# What it does (docs/performance.md explains the method and has the latest results):
#   1. builds the release binary, installs wrk, nginx-light and haproxy if missing (apt),
#      starts the stub Halo API (Rust/axum, `halo-gateway dev --upstream-only`), the embedded
#      issuer (`dev --issuer-only`), nginx as a plain proxy, HAProxy verifying the token on every
#      request (RS256 signature against the issuer's key, alg, iss, aud, exp:
#      bench/haproxy.cfg.template) and halo-gateway (`serve`) twice, cached and uncached;
#   2. GET /api/v1/policies with wrk, 64 connections, ROUNDS rounds in alternating order
#      (medians reported): (a) direct to the stub, (b) nginx, (h) HAProxy with JWT checks and
#      one reused token, (c) halo-gateway with one reused token, (d) halo-gateway with a
#      distinct token on every request and TokenCacheSize=0 (a full RS256 verification per
#      request); the same at 1 connection (added latency); uploads through (a), (b), (c); RSS idle and
#      with 5,000 idle keep-alive connections; optionally (c) again with the info access log;
#      (c) with OpenTelemetry traces exported over OTLP/HTTP to a local sink (bench/otlp_sink.py)
#      at 1 % and 100 % sampling, next to (c) without OTEL_* variables (export off);
#   3. prints one markdown table and saves it (and the raw log) under bench/results/.
#
# Knobs (environment):
#   DURATION=20        seconds per 64-connection run      LOW_DURATION=10  seconds per 1-connection run
#   ROUNDS=3           rounds of the 64-connection runs (a, b, h, c, d); medians reported
#   WARMUP=2           seconds of warm-up before each run  CONNECTIONS=64
#   WRK_THREADS=2      wrk threads for the 64-connection runs (1 for the 1-connection runs)
#   TOKENS=2000        pre-minted distinct tokens for (d)
#   UPLOAD_SIZES="100M 1G"   UPLOAD_REPEAT=3 (median reported)
#   UPLOAD_PATH=/stub/sink (raw body, counted by the stub; default) or /api/v1/rebuild/file
#              (multipart echoed back; nginx cannot proxy that full-duplex exchange: it stalls
#              until proxy_read_timeout, see docs/performance.md)
#   IDLE_CONNS=5000    MEASURE_INFO_LOG=1 (extra run of (c) with Gateway__LogLevel=info)
#   MEASURE_RATE_LIMIT=1 (extra runs of (c) with a per-client rate limit set too high to
#              trigger: counted in the process, and in a local redis-server)
#   ONLY_RATE_LIMIT=0  1: run only (c) and the rate-limit rows (a quick check of their cost)
#   MEASURE_TRACING=1  (extra runs of (c) with traces exported at 1 % and 100 % sampling)
#   ONLY_TRACING=0     1: run only (c) and the tracing rows
#   SKIP_BUILD=0       HALO_BIN=<path> (skip the build and use this binary)
#   CARGO_TARGET_DIR   where the release binary is built (default ./target)
#   BASE_PORT=18080    ports BASE..BASE+9 on 127.0.0.1 (BASE+5: redis-server, BASE+6: OTLP sink,
#                      BASE+7: HAProxy, BASE+8/9: the uncached gateway and its admin listener)
#   RESULTS_DIR=bench/results   KEEP_RUN_DIR=0
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-3}
LOW_DURATION=${LOW_DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
TOKENS=${TOKENS:-2000}
UPLOAD_SIZES=${UPLOAD_SIZES:-"100M 1G"}
UPLOAD_REPEAT=${UPLOAD_REPEAT:-3}
UPLOAD_PATH=${UPLOAD_PATH:-/stub/sink}
IDLE_CONNS=${IDLE_CONNS:-5000}
MEASURE_INFO_LOG=${MEASURE_INFO_LOG:-1}
MEASURE_RATE_LIMIT=${MEASURE_RATE_LIMIT:-1}
ONLY_RATE_LIMIT=${ONLY_RATE_LIMIT:-0}
MEASURE_TRACING=${MEASURE_TRACING:-1}
ONLY_TRACING=${ONLY_TRACING:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
BASE_PORT=${BASE_PORT:-18080}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
KEEP_RUN_DIR=${KEEP_RUN_DIR:-0}

GW_PORT=$BASE_PORT
ADMIN_PORT=$((BASE_PORT + 1))
ISSUER_PORT=$((BASE_PORT + 2))
STUB_PORT=$((BASE_PORT + 3))
NGINX_PORT=$((BASE_PORT + 4))
REDIS_PORT=$((BASE_PORT + 5))
OTLP_PORT=$((BASE_PORT + 6))
HAPROXY_PORT=$((BASE_PORT + 7))
UNCACHED_PORT=$((BASE_PORT + 8))
UNCACHED_ADMIN_PORT=$((BASE_PORT + 9))
HOST=127.0.0.1
ISSUER_URL="http://$HOST:$ISSUER_PORT/oauth2/default"
ADMIN_ID=0oabenchadmin
ADMIN_SECRET=bench-admin-secret-not-for-production-000000
USER_ID=0oabenchuser
USER_SECRET=bench-user-secret-not-for-production-0000000

RUN_DIR=$(mktemp -d /tmp/halo-bench.XXXXXX)
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
LOG="$RESULTS_DIR/run-$STAMP.log"
exec > >(tee "$LOG") 2>&1

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ "$KEEP_RUN_DIR" != 1 ]]; then rm -rf "$RUN_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
die() { echo "error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- tools and build
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx-light)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || need_apt+=(haproxy)
[[ "$MEASURE_RATE_LIMIT" != 1 ]] || command -v redis-server >/dev/null || need_apt+=(redis-server)
if ((${#need_apt[@]})); then
    say "installing ${need_apt[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
command -v python3 >/dev/null || die "python3 is needed (token minting, idle connections)"
command -v curl >/dev/null || die "curl is needed"

if [[ -n "${HALO_BIN:-}" ]]; then
    BIN=$HALO_BIN
else
    TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}
    BIN=$TARGET_DIR/release/halo-gateway
    if [[ "$SKIP_BUILD" != 1 ]]; then
        say "cargo build --release"
        (cd "$REPO_DIR" && cargo build --release --bin halo-gateway)
    fi
fi
[[ -x "$BIN" ]] || die "no binary at $BIN"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The numbers only mean something on an otherwise idle machine: measure the CPU already busy.
cpu_busy() { # percent of all CPUs busy over 2 s
    local a b
    read -ra a </proc/stat; sleep 2; read -ra b </proc/stat
    awk -v u=$((b[1] + b[2] + b[3] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[6] - a[7] - a[8])) \
        -v t=$((b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[4] - a[5] - a[6] - a[7] - a[8])) \
        'BEGIN {printf "%d", t ? 100 * u / t : 0}'
}
WAIT_QUIET=${WAIT_QUIET:-300}
BUSY=$(cpu_busy)
waited=0
while ((BUSY > 10 && waited < WAIT_QUIET)); do
    echo "machine busy (${BUSY}% CPU used by other processes); waiting for it to settle (WAIT_QUIET=$WAIT_QUIET s)"
    sleep 8; waited=$((waited + 10)); BUSY=$(cpu_busy)
done
if ((BUSY > 10)); then
    echo "WARNING: ${BUSY}% of the CPU is busy before the benchmark starts; results will be low and noisy:"
    ps -eo pcpu,comm --sort=-pcpu | head -5
fi

say "environment"
echo "date (UTC):   $(date -u '+%Y-%m-%d %H:%M')"
echo "machine:      $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
echo "halo-gateway: $BIN ($(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO_DIR" && git diff --quiet -- src Cargo.toml 2>/dev/null || echo ', dirty src'))"
echo "wrk:          $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
echo "nginx:        $("$NGINX" -v 2>&1 | sed 's/.*version: //')"
echo "haproxy:      $("$HAPROXY" -v 2>&1 | head -1 | awk '{print $3}')"
echo "curl:         $(curl --version | head -1 | awk '{print $2}')"
echo "settings:     DURATION=$DURATION ROUNDS=$ROUNDS LOW_DURATION=$LOW_DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS TOKENS=$TOKENS UPLOAD_PATH=$UPLOAD_PATH UPLOAD_SIZES='$UPLOAD_SIZES' IDLE_CONNS=$IDLE_CONNS"
echo "ulimit -n:    $(ulimit -n)"
echo "CPU busy before start: ${BUSY}%"

# ---------------------------------------------------------------- helpers
wait_http() { # url [tries]
    local i
    for ((i = 0; i < ${2:-200}; i++)); do
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    die "$1 did not answer"
}

kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || echo "note: cannot reset VmHWM of $1 (clear_refs); peak RSS includes earlier phases"; }

GW_PID=
# GW_LISTEN_PORT / GW_ADMIN_PORT override the ports (a second gateway beside the first).
start_gateway() { # name token_cache_size log_level [NAME=value settings...]
    local name=$1 cache=$2 level=$3 out=$RUN_DIR/gateway-$1.log
    local listen=${GW_LISTEN_PORT:-$GW_PORT} admin=${GW_ADMIN_PORT:-$ADMIN_PORT}
    shift 3
    [[ "$level" == info ]] && out=/dev/null
    env -i PATH="$PATH" \
        Authentication__Schemes__Bearer__Authority="$ISSUER_URL" \
        Authentication__Schemes__Bearer__ValidAudiences__0=api://halo \
        Authentication__Schemes__Bearer__RequireHttpsMetadata=false \
        Authentication__Schemes__Bearer__TokenCacheSize="$cache" \
        Gateway__Upstream="http://$HOST:$STUB_PORT" \
        Gateway__Listen="$HOST:$listen" \
        Gateway__AdminListen="$HOST:$admin" \
        Gateway__LogLevel="$level" \
        Gateway__HeaderReadTimeout=120s \
        "$@" \
        "$BIN" serve >"$out" 2>"$RUN_DIR/gateway-$name.err" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_http "http://$HOST:$admin/readyz"
}

stop_gateway() {
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
}

# CPU time (user + system, clock ticks) used so far by the given processes.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

declare -A R_RPS R_P50 R_P99 R_ERR R_CPU L_RPS L_P50 L_P99 L_CPU
median() { tr ' ' '\n' | sort -g | awk 'NF {a[++n] = $1} END {if (n == 0) print "-"; else if (n % 2) print a[(n + 1) / 2]; else print (a[n / 2] + a[n / 2 + 1]) / 2}'; }
# run_wrk key url connections threads duration [wrk args...]
# With CPU_PIDS set (space-separated), also records the proxy's CPU µs per request. Running the
# same key again adds a round: R_* then hold the medians over its rounds (errors: the sum).
run_wrk() {
    local key=$1 url=$2 conns=$3 threads=$4 dur=$5
    shift 5
    wrk -t"$threads" -c"$conns" -d"${WARMUP}s" --timeout 5s "$@" "$url" >/dev/null 2>&1 || true
    local out t0 t1
    # shellcheck disable=SC2086
    t0=$(cpu_ticks ${CPU_PIDS:-})
    out=$(wrk -t"$threads" -c"$conns" -d"${dur}s" --timeout 5s --latency "$@" "$url" 2>&1) || die "wrk failed: $out"
    # shellcheck disable=SC2086
    t1=$(cpu_ticks ${CPU_PIDS:-})
    echo "$out" >"$RUN_DIR/wrk-$key.txt"
    local line
    line=$(grep '^RESULT' <<<"$out") || die "no RESULT line from wrk: $out"
    L_RPS[$key]+=" $(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$line")"
    L_P50[$key]+=" $(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")"
    L_P99[$key]+=" $(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")"
    local sock non2xx
    sock=$(sed -E 's/.*socket_errors=([0-9]+).*/\1/' <<<"$line")
    non2xx=$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$line")
    R_ERR[$key]=$((${R_ERR[$key]:-0} + sock + non2xx))
    local requests
    requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
    if [[ -n "${CPU_PIDS:-}" ]] && ((requests > 0)); then
        local cpu
        cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')
        L_CPU[$key]+=" $cpu"
        line="$line proxy_cpu_us_per_request=$cpu"
    fi
    R_RPS[$key]=$(median <<<"${L_RPS[$key]}")
    R_P50[$key]=$(median <<<"${L_P50[$key]}")
    R_P99[$key]=$(median <<<"${L_P99[$key]}")
    R_CPU[$key]=$(median <<<"${L_CPU[$key]:-}")
    printf '%-22s %s\n' "$key" "$line"
    if ((sock + non2xx > 0)); then echo "WARNING: $key had $sock socket errors and $non2xx non-2xx responses"; fi
}

# One markdown row of the 64-connection table: label, key.
ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }
row() { printf '| %s | %.0f | %s | %s | %s | %s |\n' "$1" "${R_RPS[$2]}" "$(ms "${R_P50[$2]}")" "$(ms "${R_P99[$2]}")" "${R_CPU[$2]}" "${R_ERR[$2]}"; }

declare -A U_MBS U_HWM
# upload key url size_label file [pid-for-peak-rss]
run_upload() {
    local key=$1 url=$2 label=$3 file=$4 pid=${5:-}
    local size rates=() hwm=0 i out code t down
    size=$(stat -c %s "$file")
    for ((i = 0; i < UPLOAD_REPEAT; i++)); do
        [[ -n "$pid" ]] && reset_hwm "$pid"
        if [[ "$UPLOAD_PATH" == /stub/sink ]]; then
            out=$(curl -sS -o /dev/null -H 'Expect:' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
                -X POST -T "$file" -w '%{http_code} %{time_total} %{size_upload} %{size_download}' "$url$UPLOAD_PATH")
        else
            out=$(curl -sS -o /dev/null -H 'Expect:' -H "Authorization: Bearer $TOKEN" \
                -F "file=@$file;type=application/octet-stream" -w '%{http_code} %{time_total} %{size_upload} %{size_download}' "$url$UPLOAD_PATH")
        fi
        read -r code t _ down <<<"$out"
        [[ "$code" == 200 ]] || die "upload $key/$label: HTTP $code"
        if [[ "$UPLOAD_PATH" != /stub/sink && "$down" != "$size" ]]; then die "upload $key/$label: echoed $down bytes, sent $size"; fi
        rates+=("$(awk -v s="$size" -v t="$t" 'BEGIN {printf "%.0f", s / t / 1e6}')")
        if [[ -n "$pid" ]]; then
            local h
            h=$(kib "$pid" VmHWM)
            ((h > hwm)) && hwm=$h
        fi
    done
    U_MBS[$key-$label]=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    [[ -n "$pid" ]] && U_HWM[$key-$label]=$hwm
    printf '%-22s %s MB/s (runs: %s)%s\n' "upload $key $label" "${U_MBS[$key-$label]}" "${rates[*]}" "${pid:+ peak RSS $(mib "$hwm") MiB}"
}

# ---------------------------------------------------------------- start the fixed parts
say "starting the stub upstream, the issuer and nginx"
"$BIN" dev --upstream-only --upstream-listen "$HOST:$STUB_PORT" >"$RUN_DIR/stub.log" 2>&1 &
STUB_PID=$!
PIDS+=("$STUB_PID")
"$BIN" dev --issuer-only --issuer-listen "$HOST:$ISSUER_PORT" \
    --admin-client-id "$ADMIN_ID" --admin-client-secret "$ADMIN_SECRET" \
    --user-client-id "$USER_ID" --user-client-secret "$USER_SECRET" >"$RUN_DIR/issuer.log" 2>&1 &
PIDS+=("$!")
wait_http "http://$HOST:$STUB_PORT/api/v1/policies"
wait_http "$ISSUER_URL/.well-known/openid-configuration"

mkdir -p "$RUN_DIR"/nginx-{body,proxy,fastcgi,uwsgi,scgi}
sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@UPSTREAM@|$HOST:$STUB_PORT|g" -e "s|@NGINX_LISTEN@|$HOST:$NGINX_PORT|g" \
    "$BENCH_DIR/nginx.conf.template" >"$RUN_DIR/nginx.conf"
"$NGINX" -t -q -c "$RUN_DIR/nginx.conf" -p "$RUN_DIR" 2>&1 | grep -v 'could not open error log' || true
"$NGINX" -c "$RUN_DIR/nginx.conf" -p "$RUN_DIR" 2>>"$RUN_DIR/nginx-error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_http "http://$HOST:$NGINX_PORT/api/v1/policies"
echo "nginx workers: $(pgrep -P "$NGINX_PID" | wc -l)"

python3 "$BENCH_DIR/jwks_to_pem.py" "$ISSUER_URL" "$RUN_DIR/issuer-key.pem"
sed -e "s|@HAPROXY_LISTEN@|$HOST:$HAPROXY_PORT|g" -e "s|@UPSTREAM@|$HOST:$STUB_PORT|g" \
    -e "s|@ISSUER@|$ISSUER_URL|g" -e "s|@KEY_FILE@|$RUN_DIR/issuer-key.pem|g" \
    "$BENCH_DIR/haproxy.cfg.template" >"$RUN_DIR/haproxy.cfg"
"$HAPROXY" -c -q -f "$RUN_DIR/haproxy.cfg" || die "haproxy rejected $RUN_DIR/haproxy.cfg"
"$HAPROXY" -db -f "$RUN_DIR/haproxy.cfg" >"$RUN_DIR/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")

say "minting tokens"
python3 "$BENCH_DIR/mint_tokens.py" "$ISSUER_URL" "$USER_ID" "$USER_SECRET" 1 "$RUN_DIR/token.txt"
TOKEN=$(cat "$RUN_DIR/token.txt")
python3 "$BENCH_DIR/mint_tokens.py" "$ISSUER_URL" "$USER_ID" "$USER_SECRET" "$TOKENS" "$RUN_DIR/tokens.txt"
echo "$(wc -l <"$RUN_DIR/tokens.txt") distinct tokens, ${#TOKEN} bytes each"
for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://$HOST:$HAPROXY_PORT/api/v1/policies" || true)
    [[ "$code" == 200 ]] && break
    sleep 0.05
done
[[ "$code" == 200 ]] || die "HAProxy answered $code to a valid token (see $RUN_DIR/haproxy.log)"
# The reused token's header and claims with another token's signature: only jwt_verify refuses it.
OTHER_TOKEN=$(head -1 "$RUN_DIR/tokens.txt")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN%.*}.${OTHER_TOKEN##*.}" "http://$HOST:$HAPROXY_PORT/api/v1/policies")
[[ "$code" == 401 ]] || die "HAProxy answered $code to a token with another token's signature"
export HALO_BENCH_TOKENS=$RUN_DIR/tokens.txt HALO_BENCH_DIR=$BENCH_DIR

# ---------------------------------------------------------------- (c) gateway, cached token
say "halo-gateway (TokenCacheSize=10000, LogLevel=warn)"
start_gateway cached 10000 warn
sleep 1
IDLE_RSS=$(kib "$GW_PID" VmRSS)
echo "idle RSS after start: $(mib "$IDLE_RSS") MiB"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://$HOST:$GW_PORT/api/v1/policies")
[[ "$code" == 200 ]] || die "the gateway answered $code to a valid token"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$HOST:$GW_PORT/api/v1/policies")
[[ "$code" == 401 ]] || die "the gateway answered $code without a token"

P="/api/v1/policies"
AUTH=(-H "Authorization: Bearer $TOKEN")

# (c) with a per-client rate limit that never triggers (1,000,000 per second per client):
# c_rl_local counted in the process, c_rl_redis in a redis-server on loopback.
NEVER_TRIGGERS=(Gateway__RateLimit__Requests=1000000 Gateway__RateLimit__Period=1)
rate_limit_runs() {
    say "halo-gateway with a per-client rate limit that never triggers, counted in the process"
    start_gateway rl_local 10000 warn "${NEVER_TRIGGERS[@]}"
    CPU_PIDS=$GW_PID run_wrk c_rl_local "http://$HOST:$GW_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/report.lua" "${AUTH[@]}"
    stop_gateway
    say "the same, counted in redis-server on $HOST:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind "$HOST" --save "" --appendonly no >"$RUN_DIR/redis.log" 2>&1 &
    local redis_pid=$!
    PIDS+=("$redis_pid")
    for _ in $(seq 50); do redis-cli -h "$HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    start_gateway rl_redis 10000 warn "${NEVER_TRIGGERS[@]}" Gateway__Redis__Url="redis://$HOST:$REDIS_PORT"
    CPU_PIDS="$GW_PID $redis_pid" run_wrk c_rl_redis "http://$HOST:$GW_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/report.lua" "${AUTH[@]}"
    curl -s "http://$HOST:$ADMIN_PORT/metrics" | grep -E '^halo_gateway_(ratelimit_backend_errors|rate_limited)' || true
    stop_gateway
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
}
rate_limit_rows() {
    row "(c) halo-gateway, one reused token (cached)" c
    row "(c) with a per-client rate limit that never triggers, in the process" c_rl_local
    row "(c) with the same limit counted in Redis (loopback; CPU includes redis-server)" c_rl_redis
}

# (c) with OpenTelemetry traces exported over OTLP/HTTP to bench/otlp_sink.py, parent-based
# sampling of 1 % (t_1) and 100 % (t_100) of the traces; (c) itself has no OTEL_* variables.
tracing_runs() {
    say "halo-gateway with OTLP/HTTP trace export to bench/otlp_sink.py on $HOST:$OTLP_PORT"
    python3 "$BENCH_DIR/otlp_sink.py" "$HOST" "$OTLP_PORT" >"$RUN_DIR/otlp-sink.log" 2>&1 &
    local sink_pid=$!
    PIDS+=("$sink_pid")
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/$HOST/$OTLP_PORT") 2>/dev/null; then break; fi
        sleep 0.05
    done
    local run key ratio
    for run in t_1:0.01 t_100:1; do
        key=${run%%:*} ratio=${run#*:}
        start_gateway "$key" 10000 warn OTEL_EXPORTER_OTLP_ENDPOINT="http://$HOST:$OTLP_PORT" \
            OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_TRACES_SAMPLER=parentbased_traceidratio \
            OTEL_TRACES_SAMPLER_ARG="$ratio"
        CPU_PIDS=$GW_PID run_wrk "$key" "http://$HOST:$GW_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/report.lua" "${AUTH[@]}"
        stop_gateway
    done
    kill -TERM "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
    SINK_LINE=$(tail -1 "$RUN_DIR/otlp-sink.log")
    echo "$SINK_LINE"
}
tracing_rows() {
    row "(c) halo-gateway, one reused token (cached), trace export off (no OTEL_* variables)" c
    row "(c) with traces exported over OTLP/HTTP, 1 % sampled (parentbased_traceidratio 0.01)" t_1
    row "(c) with traces exported over OTLP/HTTP, 100 % sampled" t_100
}

# ONLY_TRACING / ONLY_RATE_LIMIT: (c) once, then one group of extra rows, and its table.
only_rows() { # label runs-function rows-function
    say "GET $P, $CONNECTIONS connections, ${DURATION}s, wrk -t$WRK_THREADS ($1 rows only)"
    CPU_PIDS=$GW_PID run_wrk c "http://$HOST:$GW_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/report.lua" "${AUTH[@]}"
    stop_gateway
    "$2"
    echo
    if [[ -n "${SINK_LINE:-}" ]]; then echo "OTLP sink (bench/otlp_sink.py, on the same cores): $SINK_LINE"; echo; fi
    echo "| target | req/s | p50 ms | p99 ms | proxy CPU µs/request | errors |"
    echo "|---|---:|---:|---:|---:|---:|"
    "$3"
    exit 0
}
if [[ "$ONLY_TRACING" == 1 ]]; then only_rows tracing tracing_runs tracing_rows; fi
if [[ "$ONLY_RATE_LIMIT" == 1 ]]; then only_rows rate-limit rate_limit_runs rate_limit_rows; fi

# (d) runs in a second gateway beside (c), so every round has all five targets.
say "halo-gateway (TokenCacheSize=0: every request verifies its RS256 signature) on $HOST:$UNCACHED_PORT"
CACHED_PID=$GW_PID
GW_LISTEN_PORT=$UNCACHED_PORT GW_ADMIN_PORT=$UNCACHED_ADMIN_PORT start_gateway uncached 0 warn
UNCACHED_PID=$GW_PID
GW_PID=$CACHED_PID

say "GET $P, $CONNECTIONS connections, ${DURATION}s, wrk -t$WRK_THREADS, $ROUNDS rounds (order alternates)"
NGINX_WORKER_PIDS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
reset_hwm "$GW_PID"
run_target() { # a | b | h | c | d
    case $1 in
    a) run_wrk a "http://$HOST:$STUB_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/report.lua" ;;
    b) CPU_PIDS=$NGINX_WORKER_PIDS run_wrk b "http://$HOST:$NGINX_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/report.lua" ;;
    h) CPU_PIDS=$HAPROXY_PID run_wrk h "http://$HOST:$HAPROXY_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/report.lua" "${AUTH[@]}" ;;
    c) CPU_PIDS=$GW_PID run_wrk c "http://$HOST:$GW_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/report.lua" "${AUTH[@]}" ;;
    d) CPU_PIDS=$UNCACHED_PID run_wrk d "http://$HOST:$UNCACHED_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/tokens.lua" ;;
    esac
}
for ((round = 1; round <= ROUNDS; round++)); do
    echo "-- round $round of $ROUNDS"
    if ((round % 2)); then order="a b h c d"; else order="d c h b a"; fi
    for target in $order; do run_target "$target"; done
done
LOAD_HWM=$(kib "$GW_PID" VmHWM)

say "GET $P, 1 connection, ${LOW_DURATION}s, wrk -t1"
run_wrk a1 "http://$HOST:$STUB_PORT$P" 1 1 "$LOW_DURATION" -s "$BENCH_DIR/report.lua"
run_wrk b1 "http://$HOST:$NGINX_PORT$P" 1 1 "$LOW_DURATION" -s "$BENCH_DIR/report.lua"
run_wrk h1 "http://$HOST:$HAPROXY_PORT$P" 1 1 "$LOW_DURATION" -s "$BENCH_DIR/report.lua" "${AUTH[@]}"
run_wrk c1 "http://$HOST:$GW_PORT$P" 1 1 "$LOW_DURATION" -s "$BENCH_DIR/report.lua" "${AUTH[@]}"
run_wrk d1 "http://$HOST:$UNCACHED_PORT$P" 1 1 "$LOW_DURATION" -s "$BENCH_DIR/tokens.lua"
GW_PID=$UNCACHED_PID stop_gateway

say "uploads: POST $UPLOAD_PATH, sizes $UPLOAD_SIZES, median of $UPLOAD_REPEAT"
for size in $UPLOAD_SIZES; do
    head -c "$size" /dev/zero >"$RUN_DIR/upload-$size.bin"
    run_upload a "http://$HOST:$STUB_PORT" "$size" "$RUN_DIR/upload-$size.bin"
    run_upload b "http://$HOST:$NGINX_PORT" "$size" "$RUN_DIR/upload-$size.bin"
    run_upload c "http://$HOST:$GW_PORT" "$size" "$RUN_DIR/upload-$size.bin" "$GW_PID"
    rm -f "$RUN_DIR/upload-$size.bin"
done

say "$IDLE_CONNS idle keep-alive connections"
IDLE_LINE=$(python3 "$BENCH_DIR/idle_conns.py" "$HOST" "$GW_PORT" "$IDLE_CONNS" "$P" --token "$TOKEN" --pid "$GW_PID")
echo "halo-gateway: $IDLE_LINE"
NGINX_WORKERS=$(pgrep -P "$NGINX_PID" | sed 's/^/--pid /' | tr '\n' ' ')
# shellcheck disable=SC2086
NGINX_IDLE_LINE=$(python3 "$BENCH_DIR/idle_conns.py" "$HOST" "$NGINX_PORT" "$IDLE_CONNS" "$P" --pid "$NGINX_PID" $NGINX_WORKERS)
echo "nginx (master + workers): $NGINX_IDLE_LINE"
IDLE_CONN_RSS=$(sed -E 's/.*rss_kib=([0-9]+).*/\1/' <<<"$IDLE_LINE")
IDLE_CONN_OPEN=$(sed -E 's/.*connections=([0-9]+).*/\1/' <<<"$IDLE_LINE")
NGINX_IDLE_RSS=$(sed -E 's/.*rss_kib=([0-9]+).*/\1/' <<<"$NGINX_IDLE_LINE")
stop_gateway

if [[ "$MEASURE_INFO_LOG" == 1 ]]; then
    say "halo-gateway (TokenCacheSize=10000, LogLevel=info: JSON access log to /dev/null)"
    start_gateway info 10000 info
    CPU_PIDS=$GW_PID run_wrk c_info "http://$HOST:$GW_PORT$P" "$CONNECTIONS" "$WRK_THREADS" "$DURATION" -s "$BENCH_DIR/report.lua" "${AUTH[@]}"
    stop_gateway
fi

if [[ "$MEASURE_RATE_LIMIT" == 1 ]]; then
    rate_limit_runs
fi

if [[ "$MEASURE_TRACING" == 1 ]]; then
    tracing_runs
fi

# ---------------------------------------------------------------- table
us_diff() { awk -v x="$1" -v y="$2" 'BEGIN {printf "%+d", x - y}'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN {printf "%.2f", x / y}'; }

TABLE=$RESULTS_DIR/latest.md
{
    echo "### halo-gateway vs nginx — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, loopback (CPU busy before start: ${BUSY}%)"
    echo
    echo "**Headline:** (c)/(b) throughput = **$(ratio "${R_RPS[c]}" "${R_RPS[b]}")x**, (d)/(b) = **$(ratio "${R_RPS[d]}" "${R_RPS[b]}")x**" \
        "(p99 (c) − p99 (b) = $(us_diff "${R_P99[c]}" "${R_P99[b]}") µs); against HAProxy with JWT checks:" \
        "(c)/(h) = **$(ratio "${R_RPS[c]}" "${R_RPS[h]}")x**, (d)/(h) = **$(ratio "${R_RPS[d]}" "${R_RPS[h]}")x**"
    echo
    echo "GET $P, $CONNECTIONS connections, ${DURATION} s, wrk -t$WRK_THREADS (load generator on the same 2 cores)," \
        "median of $ROUNDS rounds in alternating order (each round's figures are in the raw log):"
    echo
    echo "| target | req/s | p50 ms | p99 ms | proxy CPU µs/request | errors |"
    echo "|---|---:|---:|---:|---:|---:|"
    row "(a) direct to stub upstream" a
    row "(b) nginx plain proxy" b
    row "(h) HAProxy $("$HAPROXY" -v 2>&1 | head -1 | awk '{print $3}' | cut -d- -f1) with JWT checks on every request (RS256, alg, iss, aud, exp), one reused token" h
    row "(c) halo-gateway, one reused token (cached)" c
    row "(d) halo-gateway, distinct token per request, TokenCacheSize=0" d
    if [[ -n "${R_RPS[c_info]:-}" ]]; then row "(c) with Gateway__LogLevel=info (access log on, to /dev/null)" c_info; fi
    if [[ -n "${R_RPS[c_rl_redis]:-}" ]]; then
        row "(c) with a per-client rate limit that never triggers, in the process" c_rl_local
        row "(c) with the same limit counted in Redis (loopback; CPU includes redis-server)" c_rl_redis
    fi
    if [[ -n "${R_RPS[t_100]:-}" ]]; then
        row "(c) with traces exported over OTLP/HTTP, 1 % sampled (parentbased_traceidratio 0.01)" t_1
        row "(c) with traces exported over OTLP/HTTP, 100 % sampled (sink on the same cores: $SINK_LINE)" t_100
    fi
    echo
    echo "1 connection, ${LOW_DURATION} s, wrk -t1 (latency in µs):"
    echo
    echo "| target | req/s | p50 µs | p99 µs |"
    echo "|---|---:|---:|---:|"
    for k in a1 b1 h1 c1 d1; do
        printf '| %s | %.0f | %s | %s |\n' "$k" "${R_RPS[$k]}" "${R_P50[$k]}" "${R_P99[$k]}"
    done
    echo
    echo "Latency added at 1 connection, (c) − (a): p50 $(us_diff "${R_P50[c1]}" "${R_P50[a1]}") µs, p99 $(us_diff "${R_P99[c1]}" "${R_P99[a1]}") µs" \
        "(nginx (b) − (a): p50 $(us_diff "${R_P50[b1]}" "${R_P50[a1]}") µs, p99 $(us_diff "${R_P99[b1]}" "${R_P99[a1]}") µs)"
    echo
    echo "Upload POST $UPLOAD_PATH$([[ "$UPLOAD_PATH" == /stub/sink ]] && echo ' (raw body, counted by the stub)' || echo ' (multipart, the file is streamed back: bytes flow both ways)'), MB/s = 10^6 bytes/s, median of $UPLOAD_REPEAT:"
    echo
    echo "| size | (a) direct MB/s | (b) nginx MB/s | (c) halo-gateway MB/s | (c)/(b) | gateway peak RSS (VmHWM) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for size in $UPLOAD_SIZES; do
        printf '| %s | %s | %s | %s | %s | %s MiB |\n' "$size" "${U_MBS[a-$size]}" "${U_MBS[b-$size]}" "${U_MBS[c-$size]}" \
            "$(ratio "${U_MBS[c-$size]}" "${U_MBS[b-$size]}")" "$(mib "${U_HWM[c-$size]}")"
    done
    echo
    echo "Memory (halo-gateway VmRSS): idle after start $(mib "$IDLE_RSS") MiB;" \
        "with $IDLE_CONN_OPEN idle keep-alive connections $(mib "$IDLE_CONN_RSS") MiB" \
        "(nginx master + workers with $IDLE_CONNS: $(mib "$NGINX_IDLE_RSS") MiB);" \
        "peak during the $CONNECTIONS-connection GET run $(mib "$LOAD_HWM") MiB."
} >"$TABLE"
cp "$TABLE" "$RESULTS_DIR/results-$STAMP.md"
say "results ($TABLE, raw log $LOG)"
cat "$TABLE"

#!/usr/bin/env bash
# End-to-end load benchmark: the example caching proxy against the bare origin it fronts.
#
#   bash scripts/load.sh                  # ~85 s after the release build
#   DURATION=5 CONNECTIONS=32 bash scripts/load.sh
#
# Builds `bench_origin` and `caching_proxy` in release, starts both on free ports on
# 127.0.0.1 and runs wrk (installed with apt-get if missing) for DURATION seconds (default 10)
# per case:
#   1. origin direct  GET /bytes/1024          3. origin direct  GET /bytes/102400
#   2. proxy hit      GET /bytes/1024 (warm)   4. proxy hit      GET /bytes/102400 (warm)
#   5. proxy miss     GET /miss/1024/<unique>  6. origin direct  GET /miss/1024/<unique>
#   7. proxy forward  GET /miss/1024/<unique> with `Cache-Control: no-store` (not stored):
#      the proxying cost without the store, to tell it apart from the cost of a miss
# On a machine with 2 or more CPUs the servers are pinned to CPU 1 and wrk to CPU 0
# (taskset), so the load generator does not steal the servers' CPU. Prints requests/s, p50 and
# p99 latency per case and the proxy/direct ratios against the goals (hit throughput >= 0.9x
# direct, miss latency <= 1.2x direct), and writes the table to target/load-results.txt.
#
# Next to wrk's figures it prints the CPU time the servers (origin + proxy, from
# /proc/PID/stat) spent per request: less sensitive than requests/s to other processes
# competing for the CPU.
#
# The proxy runs with RUST_LOG=warn (PROXY_LOG to change): its default per-request info log
# line costs more than the cache itself and is not what is measured here.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh load
duration=${DURATION:-10}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
proxy_log=${PROXY_LOG:-warn}
out="$root/target/load-results.txt"
work=$(mktemp -d)

ensure_wrk

build_servers


clean_up_on_exit

if [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 1)
    client_cpu=(taskset -c 0)
    pinning="servers (origin + proxy) pinned to CPU 1, wrk pinned to CPU 0 (taskset)"
else
    server_cpu=()
    client_cpu=()
    pinning="one CPU: no pinning, wrk shares the CPU with the servers"
fi

origin_port=$(free_port)
proxy_port=$(free_port)
origin="http://127.0.0.1:$origin_port"
proxy="http://127.0.0.1:$proxy_port"
origin_cmd=("${server_cpu[@]}" "$origin_bin" --port "$origin_port")
proxy_cmd=("${server_cpu[@]}" "$proxy_bin" --port "$proxy_port" --origin "$origin")
echo "load: RUST_LOG=$proxy_log ${proxy_cmd[*]}"
echo "load: ${origin_cmd[*]}"
"${origin_cmd[@]}" >"$work/origin.log" 2>&1 &
pids+=($!)
wait_listening "$origin_port"
RUST_LOG=$proxy_log "${proxy_cmd[@]}" >"$work/proxy.log" 2>&1 &
pids+=($!)
wait_listening "$proxy_port"

# wrk scripts: one line of machine-readable results; `unique.lua` makes every path new.
cat >"$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d errors=%d status_errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50),
    latency:percentile(99), summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status))
end
LUA
cat "$work/report.lua" >"$work/unique.lua"
cat >>"$work/unique.lua" <<'LUA'
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local prefix = os.getenv("MISS_PREFIX") or "x"
request = function()
  counter = counter + 1
  return wrk.format("GET", "/miss/1024/" .. prefix .. "-" .. tid .. "-" .. counter)
end
LUA
cat "$work/unique.lua" >"$work/unique-nostore.lua"
echo 'wrk.headers["Cache-Control"] = "no-store"' >>"$work/unique-nostore.lua"

# CPU time (user + system) of the servers so far, in microseconds.
clk_tck=$(getconf CLK_TCK)
server_cpu_us() {
    local total=0 pid ticks
    for pid in "${pids[@]}"; do
        # Fields after the ")" closing the command name: 12 = utime, 13 = stime.
        ticks=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')
        total=$((total + ticks))
    done
    echo $((total * 1000000 / clk_tck))
}

# run NAME SECONDS URL [LUA]: runs wrk, stores "rps p50_us p99_us requests errors status
# cpu_us_per_request" in results[NAME].
declare -A results
run() {
    local name=$1 secs=$2 url=$3 lua=${4:-$work/report.lua}
    local cmd=("${client_cpu[@]}" wrk -t "${THREADS_FOR:-$threads}" -c "${CONNECTIONS_FOR:-$connections}" -d "${secs}s" --latency -s "$lua" "$url")
    if [ "$name" != warmup ]; then echo "load: ${cmd[*]}"; fi
    local output cpu_before cpu_after
    cpu_before=$(server_cpu_us)
    output=$(timeout $((secs + 30)) "${cmd[@]}")
    cpu_after=$(server_cpu_us)
    local line
    line=$(grep '^RESULT' <<<"$output") || { echo "$output" >&2; return 1; }
    line=$(sed -E 's/[a-z_0-9]+=//g; s/^RESULT //' <<<"$line")
    local requests
    requests=$(cut -d' ' -f4 <<<"$line")
    results[$name]="$line $(awk -v c=$((cpu_after - cpu_before)) -v r="$requests" 'BEGIN { printf "%.1f", r ? c / r : 0 }')"
}

expect_x_cache() {
    local url=$1 want=$2 got
    got=$(curl -s -o /dev/null -D - "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
    if [ "$got" != "$want" ]; then
        echo "load: expected x-cache: $want for $url, got '${got:-none}'" >&2
        return 1
    fi
}

echo "load: $pinning; wrk -t $threads -c $connections, ${duration}s per case, 1 s warm-up before each"

run warmup 1 "$origin/bytes/1024"
run direct_1k "$duration" "$origin/bytes/1024"
curl -s -o /dev/null "$proxy/bytes/1024"
expect_x_cache "$proxy/bytes/1024" HIT
run warmup 1 "$proxy/bytes/1024"
run hit_1k "$duration" "$proxy/bytes/1024"
expect_x_cache "$proxy/bytes/1024" HIT

run warmup 1 "$origin/bytes/102400"
run direct_100k "$duration" "$origin/bytes/102400"
curl -s -o /dev/null "$proxy/bytes/102400"
expect_x_cache "$proxy/bytes/102400" HIT
run warmup 1 "$proxy/bytes/102400"
run hit_100k "$duration" "$proxy/bytes/102400"
expect_x_cache "$proxy/bytes/102400" HIT

nonce=$(date +%s%N)
MISS_PREFIX="w$nonce" run warmup 1 "$proxy" "$work/unique.lua"
expect_x_cache "$proxy/miss/1024/check-$nonce" MISS
MISS_PREFIX="m$nonce" run miss_proxy "$duration" "$proxy" "$work/unique.lua"
MISS_PREFIX="m$nonce" run warmup 1 "$origin" "$work/unique.lua"
MISS_PREFIX="m$nonce" run miss_direct "$duration" "$origin" "$work/unique.lua"
MISS_PREFIX="f$nonce" run warmup 1 "$proxy" "$work/unique-nostore.lua"
MISS_PREFIX="f$nonce" run forward_proxy "$duration" "$proxy" "$work/unique-nostore.lua"
# Unloaded miss latency: one connection, one request at a time, so latency is the time a
# request takes, not the time it queues behind 63 others on a saturated core.
export THREADS_FOR=1 CONNECTIONS_FOR=1
MISS_PREFIX="u$nonce" run miss_proxy_1c "$duration" "$proxy" "$work/unique.lua"
MISS_PREFIX="v$nonce" run miss_direct_1c "$duration" "$origin" "$work/unique.lua"
unset THREADS_FOR CONNECTIONS_FOR

if ! kill -0 "${pids[1]}" 2>/dev/null; then
    echo "load: the proxy died during the run" >&2
    tail -5 "$work/proxy.log" >&2
    exit 1
fi

{
    echo "tower-cache-layer load test, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs"
    echo "wrk -t $threads -c $connections -d ${duration}s; $pinning; proxy RUST_LOG=$proxy_log"
    echo
    printf '%-36s %12s %10s %10s %8s %18s\n' case requests/s p50 p99 errors "server CPU/req"
    row() {
        local name=$1 label=$2 rps p50 p99 requests errors status cpu
        read -r rps p50 p99 requests errors status cpu <<<"${results[$name]}"
        awk -v l="$label" -v r="$rps" -v a="$p50" -v b="$p99" -v e=$((errors + status)) -v c="$cpu" \
            'BEGIN { printf "%-36s %12.0f %7.3f ms %7.3f ms %8d %15.1f us\n", l, r, a / 1000, b / 1000, e, c }'
    }
    row direct_1k "origin direct  /bytes/1024"
    row hit_1k "proxy hit      /bytes/1024"
    row direct_100k "origin direct  /bytes/102400"
    row hit_100k "proxy hit      /bytes/102400"
    row miss_proxy "proxy miss     /miss/1024/<unique>"
    row miss_direct "origin direct  /miss/1024/<unique>"
    row forward_proxy "proxy forward  (request no-store)"
    row miss_proxy_1c "proxy miss, 1 connection"
    row miss_direct_1c "origin direct miss, 1 connection"
    echo
    ratio() { # label numerator denominator field(1=rps 2=p50 3=p99) goal-op goal
        local n d
        n=$(cut -d' ' -f"$4" <<<"${results[$2]}")
        d=$(cut -d' ' -f"$4" <<<"${results[$3]}")
        awk -v l="$1" -v n="$n" -v d="$d" -v op="$5" -v g="$6" 'BEGIN {
            r = n / d
            ok = (op == ">=") ? (r >= g) : (r <= g)
            printf "%-44s %6.2fx   goal %s %.1fx   %s\n", l, r, op, g, ok ? "met" : "NOT MET"
        }'
    }
    ratio "hit throughput, 1 KiB (proxy/direct)" hit_1k direct_1k 1 ">=" 0.9
    ratio "hit throughput, 100 KiB (proxy/direct)" hit_100k direct_100k 1 ">=" 0.9
    ratio "miss p50 latency, unloaded (proxy/direct)" miss_proxy_1c miss_direct_1c 2 "<=" 1.2
    ratio "miss p99 latency, unloaded (proxy/direct)" miss_proxy_1c miss_direct_1c 3 "<=" 1.2
    ratio "miss p50 latency, 64 conns (proxy/direct)" miss_proxy miss_direct 2 "<=" 1.2
    ratio "miss p99 latency, 64 conns (proxy/direct)" miss_proxy miss_direct 3 "<=" 1.2
    cpu_ratio() {
        local n d
        n=$(cut -d' ' -f7 <<<"${results[$2]}")
        d=$(cut -d' ' -f7 <<<"${results[$3]}")
        awk -v l="$1" -v n="$n" -v d="$d" 'BEGIN { printf "%-44s %6.2fx   (%+.1f us per request)\n", l, n / d, n - d }'
    }
    cpu_ratio "server CPU per hit, 1 KiB (proxy/direct)" hit_1k direct_1k
    cpu_ratio "server CPU per hit, 100 KiB (proxy/direct)" hit_100k direct_100k
    cpu_ratio "server CPU per miss (proxy+origin/origin)" miss_proxy miss_direct
    cpu_ratio "server CPU per miss vs forward (no-store)" miss_proxy forward_proxy
    echo "machine load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
echo "load: table written to $out"

#!/usr/bin/env bash
# Memory of a large streamed response: the proxy must stream it, never buffer it.
#
#   bash scripts/memory.sh                # SIZE=1073741824 (1 GiB) by default
#
# Builds `bench_origin` and `caching_proxy` in release and, for two proxy configurations
# (the defaults, then `--max-capacity 64M --max-entry-size 32M`), downloads through a fresh
# proxy with curl to /dev/null:
#   GET /stream/SIZE            chunked (no Content-Length), no caching headers: passed through
#   GET /stream/SIZE?cacheable  chunked, `Cache-Control: public, max-age=3600`: the cache
#                               cannot rule it out before the body, so it keeps a copy up to
#                               --max-entry-size, must then drop it and keep streaming
# Records the proxy's VmRSS (/proc/PID/status) before and after each download and samples it
# every 0.1 s during it (and reads the kernel's peak mark, VmHWM, reset before the download);
# prints the growth (after - before) and the peak growth. Goal for the default configuration:
# < 16 MiB resident growth, at the peak. Checks that every byte arrived. Exits non-zero when
# a download is short or the default configuration misses the goal.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh memory
size=${SIZE:-1073741824}
goal_kib=$((16 * 1024))
work=$(mktemp -d)

build_servers

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

clean_up_on_exit

origin_port=$(free_port)
echo "memory: $origin_bin --port $origin_port"
"$origin_bin" --port "$origin_port" >"$work/origin.log" 2>&1 &
pids+=($!)
wait_listening "$origin_port"

failed=0
summary=()
# measure LABEL QUERY [PROXY FLAGS...]: one fresh proxy, one download of /stream/SIZE?QUERY;
# appends a line to `summary`.
measure() {
    local label=$1 query=$2 goal=$3
    shift 3
    local port
    port=$(free_port)
    local cmd=("$proxy_bin" --port "$port" --origin "http://127.0.0.1:$origin_port" "$@")
    echo "memory: [$label] RUST_LOG=warn ${cmd[*]}"
    RUST_LOG=warn "${cmd[@]}" >"$work/proxy-$port.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_listening "$port"
    # One small request first, so the runtime, the connection pool and the allocator's
    # arenas exist before the baseline is taken.
    curl -s -o /dev/null "http://127.0.0.1:$port/stream/65536"
    curl -s -o /dev/null "http://127.0.0.1:$port/bytes/1024"
    sleep 0.2
    local before peak now
    # Reset the kernel's peak-RSS mark (VmHWM), so that it records this download's peak even
    # between two samples; without that right, the samples alone give the peak.
    local hwm_reset=0
    if echo 5 2>/dev/null >"/proc/$pid/clear_refs"; then hwm_reset=1; fi
    before=$(rss_kib "$pid")
    peak=$before
    echo "memory: [$label] curl -s -o /dev/null -w '%{size_download}' http://127.0.0.1:$port/stream/$size$query"
    local started=$SECONDS
    timeout 300 curl -s -o /dev/null -w '%{size_download}' \
        "http://127.0.0.1:$port/stream/$size$query" >"$work/bytes" &
    local curl_pid=$!
    while kill -0 "$curl_pid" 2>/dev/null; do
        now=$(rss_kib "$pid" 2>/dev/null || echo 0)
        if [ "$now" -gt "$peak" ]; then peak=$now; fi
        sleep 0.1
    done
    wait "$curl_pid" || true
    local elapsed=$((SECONDS - started))
    sleep 0.5
    local after got
    after=$(rss_kib "$pid")
    if [ "$after" -gt "$peak" ]; then peak=$after; fi
    if [ "$hwm_reset" = 1 ] && [ "$(hwm_kib "$pid")" -gt "$peak" ]; then peak=$(hwm_kib "$pid"); fi
    got=$(cat "$work/bytes")
    local line
    line=$(awk -v l="$label" -v b="$before" -v a="$after" -v p="$peak" -v got="$got" -v t="$elapsed" \
        'BEGIN { printf "%-62s VmRSS before %7.1f MiB, after %7.1f MiB, growth %+7.1f MiB, peak growth %+7.1f MiB; %d bytes in ~%d s",
                 l, b / 1024, a / 1024, (a - b) / 1024, (p - b) / 1024, got, t }')
    local verdict=""
    if [ "$got" != "$size" ]; then
        verdict="  SHORT DOWNLOAD (expected $size bytes)"
        failed=1
    fi
    if [ "$goal" = goal ]; then
        if [ $((peak - before)) -lt "$goal_kib" ]; then
            verdict="$verdict  (goal < 16 MiB peak growth: met)"
        else
            verdict="$verdict  (goal < 16 MiB peak growth: NOT MET)"
            failed=1
        fi
    fi
    summary+=("$line$verdict")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

measure "defaults, /stream/N" "" goal
measure "defaults, /stream/N?cacheable" "?cacheable" goal
big=(--max-capacity 64M --max-entry-size 32M)
measure "${big[*]}, /stream/N" "" info "${big[@]}"
measure "${big[*]}, /stream/N?cacheable" "?cacheable" info "${big[@]}"

echo
echo "memory: proxy resident memory around one GET /stream/$size (chunked) through a fresh proxy"
for line in "${summary[@]}"; do echo "$line"; done
exit "$failed"

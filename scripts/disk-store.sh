#!/usr/bin/env bash
# The disk store (`--store disk:DIR`): memory of a 1 GiB object stored and served from disk,
# and hit latency of a small object from the memory tier and from disk.
#
#   bash scripts/disk-store.sh            # SIZE=1073741824 (1 GiB), DURATION=3 (s per wrk run)
#
# Builds `bench_origin` and `caching_proxy --features disk` in release, starts the origin and
# a proxy with `--store disk:DIR --max-entry-size 2G --disk-capacity 4G` (DIR a fresh
# temporary directory, removed at the end; it needs SIZE bytes free), then:
#   1. GET /stream/SIZE?cacheable (chunked, `Cache-Control: public, max-age=3600`): a MISS,
#      written to a body file as it streams; then the same GET again: a HIT streamed from the
#      file. For each, the proxy's VmRSS before and after, and the peak growth (VmHWM reset
#      before the download; sampled every 0.1 s too). Goal: < 32 MiB peak growth for both.
#   2. Hit latency of GET /bytes/1024 (1 KiB): from the memory tier (the default proxy), and
#      from disk (a proxy with `--max-capacity 0`, whose memory tier keeps nothing), each with
#      `wrk -t1 -c1 -dDURATION --latency` (one connection: sequential requests), after one
#      request that stores it.
# Exits non-zero when a download is short, a hit is not a HIT, or the memory goal is missed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh disk-store
size=${SIZE:-1073741824}
duration=${DURATION:-3}
goal_kib=$((32 * 1024))
work=$(mktemp -d)

echo "disk-store: cargo build --release --features disk --example bench_origin --example caching_proxy"
cargo build --quiet --release --features disk --example bench_origin --example caching_proxy
origin_bin="$root/target/release/examples/bench_origin"
proxy_bin="$root/target/release/examples/caching_proxy"
ensure_wrk

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

clean_up_on_exit

origin_port=$(free_port)
"$origin_bin" --port "$origin_port" >"$work/origin.log" 2>&1 &
pids+=($!)
wait_listening "$origin_port"

# start_proxy DIR [FLAGS...]: a proxy on the disk store in DIR; sets port and pid.
start_proxy() {
    local dir=$1
    shift
    port=$(free_port)
    local cmd=("$proxy_bin" --port "$port" --origin "http://127.0.0.1:$origin_port"
        --store "disk:$dir" "$@")
    echo "disk-store: RUST_LOG=warn ${cmd[*]}"
    RUST_LOG=warn "${cmd[@]}" >>"$work/proxy.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_listening "$port"
}

failed=0
summary=()
# download LABEL EXPECTED_X_CACHE: one GET /stream/SIZE?cacheable through the proxy, with
# the proxy's memory around it; appends a line to `summary`.
download() {
    local label=$1 expected=$2
    sleep 0.2
    local hwm_reset=0
    if echo 5 2>/dev/null >"/proc/$pid/clear_refs"; then hwm_reset=1; fi
    local before peak now
    before=$(rss_kib "$pid")
    peak=$before
    local url="http://127.0.0.1:$port/stream/$size?cacheable"
    echo "disk-store: [$label] curl -s -D - -o /dev/null $url"
    local started=$SECONDS
    timeout 600 curl -s -D "$work/headers" -o /dev/null -w '%{size_download}' "$url" \
        >"$work/bytes" &
    local curl_pid=$!
    while kill -0 "$curl_pid" 2>/dev/null; do
        now=$(rss_kib "$pid" 2>/dev/null || echo 0)
        if [ "$now" -gt "$peak" ]; then peak=$now; fi
        sleep 0.1
    done
    wait "$curl_pid" || true
    local elapsed=$((SECONDS - started))
    sleep 0.5
    local after got seen
    after=$(rss_kib "$pid")
    if [ "$after" -gt "$peak" ]; then peak=$after; fi
    if [ "$hwm_reset" = 1 ] && [ "$(hwm_kib "$pid")" -gt "$peak" ]; then peak=$(hwm_kib "$pid"); fi
    got=$(cat "$work/bytes")
    seen=$(awk 'tolower($1) == "x-cache:" { print $2 }' "$work/headers" | tr -d '\r')
    local line verdict=""
    line=$(awk -v l="$label" -v x="$seen" -v b="$before" -v a="$after" -v p="$peak" -v got="$got" -v t="$elapsed" \
        'BEGIN { printf "%-14s x-cache %-4s VmRSS before %6.1f MiB, after %6.1f MiB, growth %+6.1f MiB, peak growth %+6.1f MiB; %d bytes in ~%d s",
                 l, x, b / 1024, a / 1024, (a - b) / 1024, (p - b) / 1024, got, t }')
    if [ "$got" != "$size" ]; then verdict="$verdict  SHORT DOWNLOAD"; failed=1; fi
    if [ "$seen" != "$expected" ]; then verdict="$verdict  EXPECTED $expected"; failed=1; fi
    if [ $((peak - before)) -lt "$goal_kib" ]; then
        verdict="$verdict  (goal < 32 MiB: met)"
    else
        verdict="$verdict  (goal < 32 MiB: NOT MET)"
        failed=1
    fi
    summary+=("$line$verdict")
}

# 1. A 1 GiB object through the disk store.
start_proxy "$work/big" --max-entry-size 2G --disk-capacity 4G
# Warm the runtime, pool and allocator before the baseline.
curl -s -o /dev/null "http://127.0.0.1:$port/bytes/1024"
download "1 GiB miss" MISS
sleep 1 # the entry is written once the body is complete
stored=$(du -sb "$work/big" | cut -f1)
download "1 GiB hit" HIT
summary+=("disk directory after the miss: $stored bytes")
kill "$pid"
wait "$pid" 2>/dev/null || true

# 2. Hit latency of 1 KiB: memory tier, then disk (a memory tier that keeps nothing).
# latency LABEL: wrk on /bytes/1024 through the current proxy; appends to `summary`.
latency() {
    local url="http://127.0.0.1:$port/bytes/1024"
    curl -s -o /dev/null "$url"
    sleep 0.3
    local seen
    seen=$(curl -s -D - -o /dev/null "$url" | awk 'tolower($1) == "x-cache:" { print $2 }' | tr -d '\r')
    echo "disk-store: [$1] wrk -t1 -c1 -d${duration}s --latency $url"
    wrk -t1 -c1 -d"${duration}s" --latency "$url" >"$work/wrk"
    local line
    line=$(awk -v l="$1" -v x="$seen" '
        /^    Latency/ { avg = $2 }
        /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
        /^Requests\/sec/ { rps = $2 }
        END { printf "%-14s x-cache %-4s 1 KiB hit latency avg %s, p50 %s, p99 %s; %s requests/s (one connection)", l, x, avg, p50, p99, rps }' "$work/wrk")
    if [ "$seen" != HIT ]; then line="$line  EXPECTED HIT"; failed=1; fi
    summary+=("$line")
}

start_proxy "$work/small"
latency "memory tier"
kill "$pid"
wait "$pid" 2>/dev/null || true
start_proxy "$work/small" --max-capacity 0
latency "disk"
kill "$pid"
wait "$pid" 2>/dev/null || true

echo
echo "disk-store: results (SIZE=$size)"
for line in "${summary[@]}"; do echo "$line"; done
exit "$failed"

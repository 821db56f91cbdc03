#!/usr/bin/env bash
# Memory held by the in-memory store against its configured capacity: fills the cache twice
# over with 1 KiB responses and reports the proxy's resident memory.
#
#   bash scripts/capacity.sh              # CAPACITY=64M, FILL=2 (times the capacity), RUST_LOG=warn
#
# Builds `bench_origin` and `caching_proxy` in release, starts the proxy with
# `--max-capacity CAPACITY --no-doorkeeper`, reads its VmRSS, then sends GET /miss/1024/<n> for
# FILL × CAPACITY / 1 KiB distinct URLs (wrk, one thread, 16 connections, a Lua counter for the
# URLs; every one a cacheable miss handed to the store: without the doorkeeper a full store
# keeps taking new entries and turning them or others out, the harder case for the allocator)
# and reads VmRSS again, with the store's own counts from the admin listener's /metrics. Goal
# (issue 12): RSS at most CAPACITY + 32 MiB.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh capacity
capacity=${CAPACITY:-64M}
fill=${FILL:-2}
work=$(mktemp -d)

build_servers
ensure_wrk

to_bytes() { python3 -c "import sys; s=sys.argv[1]; m={'K':1<<10,'M':1<<20,'G':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))" "$1"; }
capacity_bytes=$(to_bytes "$capacity")
urls=$((fill * capacity_bytes / 1024))

clean_up_on_exit

origin_port=$(free_port)
"$origin_bin" --port "$origin_port" >"$work/origin.log" 2>&1 &
pids+=($!)
wait_listening "$origin_port"
port=$(free_port)
RUST_LOG=${RUST_LOG:-warn} "$proxy_bin" --port "$port" --origin "http://127.0.0.1:$origin_port" \
    --max-capacity "$capacity" --no-doorkeeper --admin-file "$work/proxy.admin" \
    >"$work/proxy.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_listening "$port"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
before=$(rss)

cat >"$work/urls.lua" <<LUA
counter = 0
limit = $urls
request = function()
    counter = counter + 1
    return wrk.format("GET", "/miss/1024/u" .. counter)
end
response = function(status, headers, body)
    if counter >= limit then
        wrk.thread:stop()
    end
end
LUA
echo "capacity: $urls distinct 1 KiB URLs through --max-capacity $capacity"
# About 10,000 misses a second: the duration covers every URL (wrk then idles until it ends).
wrk -t1 -c16 -d"$((urls / 4000 + 5))s" -s "$work/urls.lua" "http://127.0.0.1:$port/" >"$work/wrk.log" 2>&1 || true
grep -E "requests in|Non-2xx" "$work/wrk.log" | sed 's/^/capacity: wrk: /'
sleep 1
after=$(rss)

admin=$(sed -n 's/^admin=//p' "$work/proxy.admin")
token=$(sed -n 's/^token=//p' "$work/proxy.admin")
metrics=$(curl -s -H "authorization: Bearer $token" "http://$admin/metrics" || true)
held=$(echo "$metrics" | awk '/^cache_size_bytes / { print $2 }')
entries=$(echo "$metrics" | awk '/^cache_entries / { print $2 }')
echo "capacity: store holds ${entries:-?} entries, ${held:-?} bytes as weighed"
python3 - "$before" "$after" "$capacity_bytes" <<'PY'
import sys
before, after, cap = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
mib = lambda kib: kib / 1024
goal = cap / 1048576 + 32
print(f"capacity: RSS {mib(before):.1f} MiB before, {mib(after):.1f} MiB after "
      f"(capacity {cap / 1048576:.0f} MiB; goal at most {goal:.0f} MiB): "
      + ("met" if mib(after) <= goal else "missed"))
PY

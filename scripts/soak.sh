#!/usr/bin/env bash
# Soak test: mixed hit / miss / uncacheable load on the caching proxy, with more distinct keys
# than the cache can hold, watching the proxy's resident memory.
#
#   bash scripts/soak.sh [SECONDS]        # default 40
#
# Builds `bench_origin` and `caching_proxy` in release and starts the proxy with
# `--max-capacity 32M` on free ports on 127.0.0.1. wrk (installed with apt-get if missing;
# -t 2 -c 64 --timeout 5s) runs for SECONDS with a Lua script that picks, per request:
#   60%  GET /bytes/<size>?k=<0..199>           hot keys, 1-64 KiB (about 6.5 MiB: mostly hits)
#   25%  GET /bytes/<size>?k=<0..19999>         cold keys, 1-64 KiB (about 650 MiB: evictions)
#   10%  GET /miss/<size>/<unique>              a new URL every time, 1-16 KiB
#    5%  GET /stream/<1..65536>                 chunked, no caching headers: never stored
# (size = 1024 * (1 + k % 64)). The proxy's VmRSS is sampled every second. At the end it
# prints requests done, hits/misses, non-2xx answers and socket errors, peak and final RSS,
# and whether the proxy is still alive and answering. Exits non-zero when there was any error
# or non-2xx answer, when the proxy died, or when its RSS went over the bound
# (capacity + 96 MiB = 128 MiB; RSS_LIMIT_MIB to change).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh soak
seconds=${1:-40}
capacity_mib=32
limit_mib=${RSS_LIMIT_MIB:-$((capacity_mib + 96))}
work=$(mktemp -d)

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: bash scripts/soak.sh [SECONDS]" >&2
    exit 2
fi

ensure_wrk

build_servers

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

clean_up_on_exit

origin_port=$(free_port)
proxy_port=$(free_port)
origin_cmd=("$origin_bin" --port "$origin_port")
proxy_cmd=("$proxy_bin" --port "$proxy_port" --origin "http://127.0.0.1:$origin_port"
    --max-capacity "${capacity_mib}M")
echo "soak: ${origin_cmd[*]}"
"${origin_cmd[@]}" >"$work/origin.log" 2>&1 &
pids+=($!)
wait_listening "$origin_port"
echo "soak: RUST_LOG=warn ${proxy_cmd[*]}"
RUST_LOG=warn "${proxy_cmd[@]}" >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
wait_listening "$proxy_port"

cat >"$work/soak.lua" <<'LUA'
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

-- Globals, so that done() can read them from each thread with thread:get().
hits, misses, bad = 0, 0, 0
local counter = 0
local prefix = os.getenv("MISS_PREFIX") or "x"
init = function(args)
  math.randomseed(os.time() * 100 + tid)
end

local function bytes(k)
  return "/bytes/" .. (1024 * (1 + k % 64)) .. "?k=" .. k
end

request = function()
  local r = math.random(100)
  local path
  if r <= 60 then
    path = bytes(math.random(0, 199))
  elseif r <= 85 then
    path = bytes(math.random(0, 19999))
  elseif r <= 95 then
    counter = counter + 1
    path = "/miss/" .. (1024 * (1 + counter % 16)) .. "/" .. prefix .. "-" .. tid .. "-" .. counter
  else
    path = "/stream/" .. math.random(1, 65536)
  end
  return wrk.format("GET", path)
end

response = function(status, headers, body)
  if status < 200 or status > 299 then bad = bad + 1 end
  local x = headers["x-cache"] or headers["X-Cache"]
  if x == "HIT" then hits = hits + 1 elseif x == "MISS" then misses = misses + 1 end
end

done = function(summary, latency, requests)
  local h, m, b = 0, 0, 0
  for _, thread in ipairs(threads) do
    h = h + thread:get("hits")
    m = m + thread:get("misses")
    b = b + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d hits=%d misses=%d non2xx=%d errors=%d connect=%d read=%d write=%d timeout=%d status=%d rps=%.0f p50_us=%d p99_us=%d\n",
    summary.requests, h, m, b, e.connect + e.read + e.write + e.timeout,
    e.connect, e.read, e.write, e.timeout, e.status,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99)))
end
LUA

wrk_cmd=(wrk -t 2 -c 64 -d "${seconds}s" --timeout 5s -s "$work/soak.lua" "http://127.0.0.1:$proxy_port")
echo "soak: ${wrk_cmd[*]}"
echo "soak: proxy RSS bound ${limit_mib} MiB (capacity ${capacity_mib} MiB + 96 MiB); sampling VmRSS every second"
MISS_PREFIX="s$(date +%s%N)" timeout $((seconds + 30)) "${wrk_cmd[@]}" >"$work/wrk.out" 2>&1 &
wrk_pid=$!
pids+=("$wrk_pid")

peak=0
samples=0
while kill -0 "$wrk_pid" 2>/dev/null; do
    sleep 1
    rss=$(rss_kib "$proxy_pid")
    samples=$((samples + 1))
    if [ "$rss" -gt "$peak" ]; then peak=$rss; fi
    if [ $((samples % 5)) -eq 0 ]; then
        awk -v t="$samples" -v r="$rss" 'BEGIN { printf "soak: t=%3ds  proxy VmRSS %6.1f MiB\n", t, r / 1024 }'
    fi
done
wrk_status=0
wait "$wrk_pid" || wrk_status=$?

alive=yes
if ! kill -0 "$proxy_pid" 2>/dev/null; then alive=no; fi
answering=no
if [ "$alive" = yes ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    "http://127.0.0.1:$proxy_port/bytes/1024")" = 200 ]; then
    answering=yes
fi
final=$(rss_kib "$proxy_pid")
if [ "$final" -gt "$peak" ]; then peak=$final; fi

line=$(grep '^RESULT' "$work/wrk.out" || true)
if [ -z "$line" ]; then
    echo "soak: wrk failed (exit $wrk_status):" >&2
    cat "$work/wrk.out" >&2
    exit 1
fi
declare -A r
for field in ${line#RESULT }; do r[${field%%=*}]=${field#*=}; done

echo
echo "soak: ${seconds}s of mixed load through the proxy (--max-capacity ${capacity_mib}M)"
printf '  requests done      %d (%s req/s, p50 %s ms, p99 %s ms)\n' "${r[requests]}" "${r[rps]}" \
    "$(awk -v v="${r[p50_us]}" 'BEGIN { printf "%.2f", v / 1000 }')" \
    "$(awk -v v="${r[p99_us]}" 'BEGIN { printf "%.2f", v / 1000 }')"
printf '  x-cache            %d HIT, %d MISS\n' "${r[hits]}" "${r[misses]}"
printf '  non-2xx answers    %d\n' "${r[non2xx]}"
printf '  socket errors      %d (connect %d, read %d, write %d, timeout %d)\n' "${r[errors]}" \
    "${r[connect]}" "${r[read]}" "${r[write]}" "${r[timeout]}"
awk -v p="$peak" -v f="$final" -v l="$limit_mib" \
    'BEGIN { printf "  proxy VmRSS        peak %.1f MiB, final %.1f MiB (bound %d MiB)\n", p / 1024, f / 1024, l }'
printf '  proxy alive        %s (answers GET /bytes/1024 with 200: %s)\n' "$alive" "$answering"

failed=()
if [ "${r[errors]}" -gt 0 ]; then failed+=("socket errors"); fi
if [ "${r[non2xx]}" -gt 0 ] || [ "${r[status]}" -gt 0 ]; then failed+=("non-2xx answers"); fi
if [ "$alive" != yes ] || [ "$answering" != yes ]; then failed+=("proxy died or stopped answering"); fi
if [ "$peak" -gt $((limit_mib * 1024)) ]; then failed+=("RSS over ${limit_mib} MiB"); fi
if [ "${#failed[@]}" -gt 0 ]; then
    echo "soak: FAILED: $(IFS=,; echo "${failed[*]}")"
    tail -5 "$work/proxy.log" >&2 || true
    exit 1
fi
echo "soak: passed"

#!/usr/bin/env bash
# User-space instructions per request (callgrind), for the cases the performance work tracks:
#   hit         one cached 1 KiB URL (`/bytes/1024`);
#   miss        a new 1 KiB URL every request (`/miss/1024/<n>`), stored in the default store;
#   bypassed    as miss, with `Cache-Control: no-store` on the request (not looked up, nothing
#               captured);
#   forwarded   as miss, but the response says `Cache-Control: no-store` (bench_origin's
#               `?no-store`): looked up, forwarded, not stored;
#   stored, 0   as miss, with `--max-capacity 0 --no-doorkeeper` (captured and handed to a
#               store that keeps nothing: each entry is evicted as it is inserted);
#   evicting    as miss, into a 4 MiB store that the warm-up has filled (every insert evicts),
#               with `--no-doorkeeper`: every response captured and inserted;
#   full        as evicting, with default flags: the doorkeeper passes first uses on unstored.
#
#   bash scripts/instructions.sh               # all seven; CASES="hit miss" for some
#
# PROXY_BIN measures another build of the proxy (e.g. an older commit's, copied aside).
# ORIGIN_BIN and MISS_PREFIX run them against another origin, e.g. the shared harness's, as
# README's table of instructions does: ORIGIN_BIN=/tmp/bench-origin-target/release/bench-origin
# MISS_PREFIX=/uniq/r (its 1 KiB miss responses carry more header fields than bench_origin's).
#
# Builds `bench_origin` and `caching_proxy` in release (cargo profile $PROFILE, default
# release: the count needs the proxy's symbols, see below). For each case it runs the proxy
# under `valgrind --tool=callgrind` on CPU 1 with the origin, as the shared harness places
# them (so the proxy sees one CPU and runs its single-threaded runtime), warms it up with wrk
# (on CPU 0, one thread, 4 connections, 3 s),
# zeroes the counters, runs wrk for DURATION (default 10) seconds, and dumps them. Under
# valgrind the counters are zeroed late, so the total is divided not by wrk's count but by
# the calls of a function that runs once per request: the request log's
# `caching_proxy::log::RequestLog::write` (the log must be on: the default level). Needs
# valgrind (installed with apt-get when missing).
#
# PER_CALL_OF names another such function, for a proxy run without the request log: a hit's
# cost without it is
#   RUST_LOG=warn PER_CALL_OF='Shared<St>>::answer_from_store' CASES=hit bash scripts/instructions.sh
# (the hit's answer from the store; it runs once per hit, and never for a miss).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh instructions
duration=${DURATION:-10}
cases=${CASES:-hit miss bypassed forwarded stored0 evicting full}
work=$(mktemp -d)

ensure_tool valgrind
build_servers
ensure_wrk
origin_bin=${ORIGIN_BIN:-$origin_bin}
miss_prefix=${MISS_PREFIX:-/miss/1024/}
per_call_of=${PER_CALL_OF:-RequestLog::write}

clean_up_on_exit

write_unique_urls_lua "$work/stored.lua" "$miss_prefix" nil
write_unique_urls_lua "$work/bypassed.lua" "$miss_prefix" '{["Cache-Control"] = "no-store"}'
write_unique_urls_lua "$work/forwarded.lua" "$miss_prefix" nil '?no-store'

# $1: label, $2: what wrk asks for (`path:/bytes/1024`, or `lua:FILE`), then the proxy's flags.
run_case() {
    local label=$1 target=$2
    shift 2
    local origin_port port origin proxy out total calls
    origin_port=$(free_port)
    taskset -c 1 "$origin_bin" --port "$origin_port" >"$work/origin.log" 2>&1 &
    origin=$!
    port=$(free_port)
    out="$work/$label.callgrind"
    taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$proxy_bin" --port "$port" --origin "http://127.0.0.1:$origin_port" "$@" \
        >"$work/proxy.log" 2>&1 &
    proxy=$!
    pids+=("$origin" "$proxy")
    wait_listening "$origin_port"
    # valgrind starts slowly: up to a minute.
    for _ in $(seq 200); do
        if listening "$port"; then break; fi
        sleep 0.3
    done
    if ! listening "$port"; then
        echo "$tag: $label: the proxy did not start under valgrind; its log:" >&2
        tail -5 "$work/proxy.log" >&2
        return 1
    fi
    local -a load
    case $target in
        path:*) load=("http://127.0.0.1:$port${target#path:}") ;;
        lua:*) load=(-s "${target#lua:}" "http://127.0.0.1:$port/") ;;
    esac
    taskset -c 0 wrk -t1 -c4 -d3s "${load[@]}" >/dev/null
    callgrind_control -z "$proxy" >/dev/null 2>&1
    taskset -c 0 wrk -t1 -c4 -d"${duration}s" "${load[@]}" >/dev/null
    callgrind_control -d "$proxy" >/dev/null 2>&1
    sleep 1
    kill "$proxy" "$origin"
    wait "$proxy" "$origin" 2>/dev/null || true
    out=$(ls -t "$out".* | head -1)
    total=$(callgrind_annotate --threshold=100 "$out" 2>/dev/null |
        awk '/PROGRAM TOTALS/ { gsub(/,/, "", $1); print $1 }')
    # The calls of the divisor: the sum of its callers' counts, the `<` lines above its `*`
    # line in its block of the caller tree.
    calls=$(callgrind_annotate --tree=caller --threshold=100 "$out" 2>/dev/null | python3 -c '
import re, sys
for block in sys.stdin.read().split("\n\n"):
    lines = block.splitlines()
    if any("*" in line and sys.argv[1] + " " in line for line in lines):
        counts = (re.search(r"\(([0-9,]+)x\)", line) for line in lines if " < " in line)
        print(sum(int(m.group(1).replace(",", "")) for m in counts if m))
        break
' "$per_call_of")
    if [ -z "$calls" ] || [ "$calls" -eq 0 ]; then
        echo "$tag: $label: no call of $per_call_of counted (inlined, or the log off?)" >&2
        return 1
    fi
    python3 -c "import sys; t, n = map(int, sys.argv[1:3]); print(f'{sys.argv[3]:<11} {t / n / 1000:6.1f}k instructions per request ({n} requests)')" \
        "$total" "$calls" "$label"
}

for case in $cases; do
    case $case in
        hit) run_case hit path:/bytes/1024 ;;
        miss) run_case miss "lua:$work/stored.lua" ;;
        bypassed) run_case bypassed "lua:$work/bypassed.lua" ;;
        forwarded)
            # Only bench_origin answers `?no-store` with `Cache-Control: no-store`.
            if [ -n "${ORIGIN_BIN:-}" ]; then
                echo "$tag: forwarded needs bench_origin (unset ORIGIN_BIN)" >&2
                exit 2
            fi
            run_case forwarded "lua:$work/forwarded.lua"
            ;;
        stored0) run_case "stored, 0" "lua:$work/stored.lua" --max-capacity 0 --no-doorkeeper ;;
        evicting) run_case evicting "lua:$work/stored.lua" --max-capacity 4M --no-doorkeeper ;;
        full) run_case full "lua:$work/stored.lua" --max-capacity 4M ;;
        *) echo "$tag: unknown case $case (hit, miss, bypassed, forwarded, stored0, evicting, full)" >&2; exit 2 ;;
    esac
done

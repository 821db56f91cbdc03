#!/usr/bin/env bash
# The proxy's own CPU per 1 KiB hit, split into user and system time, with the request log on
# (the default level) and off (`RUST_LOG=warn`): what the log line costs, without the origin's
# and the load generator's time that the shared harness counts on CPU 1 too.
#
#   bash scripts/hit-cpu.sh          # ROUNDS=3 alternating rounds, DURATION=8 seconds each
#   PROFILE=production bash scripts/hit-cpu.sh
#
# Builds `bench_origin` and `caching_proxy` (cargo profile $PROFILE, default release). Each
# round starts both on CPU 1 (taskset), the proxy's output going to a file as in the shared
# harness, warms one URL up, then runs wrk (one thread, 64 connections, CPU 0) on it and prints
# the proxy's user and system CPU time per request (from /proc/PID/stat).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh hit-cpu
rounds=${ROUNDS:-3}
duration=${DURATION:-8}
work=$(mktemp -d)

build_servers
ensure_wrk

clean_up_on_exit

# $1: label, then the environment for the proxy (e.g. RUST_LOG=warn).
run_case() {
    local label=$1
    shift
    local origin_port port origin proxy url requests before after
    origin_port=$(free_port)
    taskset -c 1 "$origin_bin" --port "$origin_port" >"$work/origin.log" 2>&1 &
    origin=$!
    port=$(free_port)
    env "$@" taskset -c 1 "$proxy_bin" --port "$port" --origin "http://127.0.0.1:$origin_port" \
        >"$work/proxy.log" 2>&1 &
    proxy=$!
    pids+=("$origin" "$proxy")
    wait_listening "$origin_port"
    wait_listening "$port"
    url="http://127.0.0.1:$port/bytes/1024"
    taskset -c 0 wrk -t1 -c64 -d2s "$url" >/dev/null
    before=$(cpu_usage "$proxy")
    requests=$(taskset -c 0 wrk -t1 -c64 -d"${duration}s" "$url" | awk '/requests in/ { print $1 }')
    after=$(cpu_usage "$proxy")
    kill "$proxy" "$origin"
    wait "$proxy" "$origin" 2>/dev/null || true
    print_cpu_per_request "$label" "$before" "$after" "$requests"
}

for round in $(seq "$rounds"); do
    echo "$tag: round $round"
    run_case "log on" RUST_LOG=info
    run_case "log off" RUST_LOG=warn
done

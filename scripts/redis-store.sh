#!/usr/bin/env bash
# The Redis store (`--store redis://…`): hit latency from the memory tier, from Redis (a hit on
# proxy B of what proxy A stored, B's memory tier cold) and of a miss, over one keep-alive
# connection each, against a redis-server of its own on a free port.
#
#   bash scripts/redis-store.sh            # N=2000 distinct 1 KiB URLs
#
# Builds `bench_origin` and `caching_proxy --features redis` in release and needs
# `redis-server` (apt-get install redis-server). Prints one line per phase: requests, mean
# time per request, and the X-Cache values seen; then Redis's command counts. Exits non-zero
# when a phase does not see the X-Cache it should.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/common.sh
source scripts/common.sh redis-store
n=${N:-2000}
work=$(mktemp -d)
command -v redis-server >/dev/null || { echo "redis-store: needs redis-server" >&2; exit 1; }

echo "redis-store: cargo build --release --features redis --example bench_origin --example caching_proxy"
cargo build --quiet --release --features redis --example bench_origin --example caching_proxy
bin=target/release/examples

clean_up_on_exit

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
origin_port=$(free_port)
"$bin/bench_origin" --port "$origin_port" >"$work/origin.log" 2>&1 &
pids+=($!)
wait_listening "$redis_port"
wait_listening "$origin_port"

proxy_ports=()
for name in a b; do
    port=$(free_port)
    RUST_LOG=warn "$bin/caching_proxy" --port "$port" --origin "http://127.0.0.1:$origin_port" \
        --store "redis://127.0.0.1:$redis_port/0" --admin-file "$work/$name.admin" \
        >"$work/proxy-$name.log" 2>&1 &
    pids+=($!)
    wait_listening "$port"
    proxy_ports+=("$port")
done

python3 - "${proxy_ports[0]}" "${proxy_ports[1]}" "$n" <<'PY'
import http.client, sys, time
a, b, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
failed = False
def run(port, label, expected):
    global failed
    c = http.client.HTTPConnection("127.0.0.1", port)
    seen = {}
    t = time.perf_counter()
    for i in range(n):
        c.request("GET", f"/miss/1024/u{i}")
        r = c.getresponse(); r.read()
        x = r.getheader("x-cache"); seen[x] = seen.get(x, 0) + 1
    dt = time.perf_counter() - t
    print(f"redis-store: {label}: {n} requests, {dt / n * 1e6:.0f} us each, x-cache {seen}")
    if seen.get(expected, 0) != n:
        failed = True
run(a, "A, misses (from the origin, stored in Redis)", "MISS")
time.sleep(0.5)
run(b, "B, hits read from Redis (memory tier cold)", "HIT")
run(b, "B, hits from the memory tier", "HIT")
sys.exit(1 if failed else 0)
PY
redis-cli -p "$redis_port" info commandstats | grep -E "cmdstat_(get|set|publish|exec):" | cut -d, -f1 || true

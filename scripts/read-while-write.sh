#!/usr/bin/env bash
# Read-while-write through the proxy: how long after the first byte of a slow miss reaches
# the request that went to the origin (the leader) does it reach a request that collapsed
# onto it (the follower)?
#
#   bash scripts/read-while-write.sh      # SIZE=10485760 (10 MiB), CHUNK=65536, PAUSE=0.005 (s)
#
# Builds `caching_proxy` in release ($PROFILE, $FEATURES and $PROXY_BIN as in
# scripts/common.sh) and runs it with `--max-entry-size 64M` (so that SIZE is storable) and
# $PROXY_FLAGS. It starts a slow origin (python3's http.server, inline below): for any GET it
# waits THINK=0.5 s, then sends `200`, `Content-Length: SIZE` and `Cache-Control: max-age=60`,
# then SIZE bytes in CHUNK-byte writes with PAUSE seconds between them (10 MiB in about
# 0.8 s), and counts its requests. Then, from one python3 process (one clock): the leader
# GETs /slow through the proxy; 0.2 s later (while the origin still thinks) the follower GETs
# it too. Each records when its response head, its first body byte
# and its last byte arrived. Prints those times, the follower's first byte minus the leader's,
# both `Cache-Status` values, whether both bodies are the origin's bytes, and the origin's
# request count. Exits non-zero when a body differs, the origin saw more than one request, or
# the first byte reached the follower 1 ms or more after the leader (the goal).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh read-while-write
size=${SIZE:-10485760}
chunk=${CHUNK:-65536}
pause=${PAUSE:-0.005}
think=${THINK:-0.5}
work=$(mktemp -d)

build_examples caching_proxy

clean_up_on_exit

cat >"$work/origin.py" <<'PY'
import sys, time, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, size, chunk, pause, think, count_file = sys.argv[1:7]
size, chunk, pause, think = int(size), int(chunk), float(pause), float(think)
lock = threading.Lock()
requests = 0

def body_byte(i):
    return bytes([97 + (i % 26)])

class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        global requests
        with lock:
            requests += 1
            with open(count_file, "w") as f:
                f.write(str(requests))
        time.sleep(think)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "max-age=60")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        sent, i = 0, 0
        while sent < size:
            n = min(chunk, size - sent)
            self.wfile.write(body_byte(i) * n)
            self.wfile.flush()
            sent, i = sent + n, i + 1
            time.sleep(pause)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(port)), Slow).serve_forever()
PY

cat >"$work/clients.py" <<'PY'
import hashlib, http.client, sys, threading, time

port, size, chunk = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
expected = hashlib.sha256(b"".join(bytes([97 + (i % 26)]) * min(chunk, size - i * chunk)
                                  for i in range((size + chunk - 1) // chunk))).hexdigest()
start = time.perf_counter()
seen = {}

def fetch(name):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/slow")
    resp = conn.getresponse()
    head = time.perf_counter()
    first = resp.read(1)
    first_at = time.perf_counter()
    digest = hashlib.sha256(first)
    got = len(first)
    while True:
        data = resp.read(1 << 16)
        if not data:
            break
        digest.update(data)
        got += len(data)
    seen[name] = dict(head=head - start, first=first_at - start, last=time.perf_counter() - start,
                      got=got, ok=digest.hexdigest() == expected,
                      status=resp.getheader("cache-status", "-"))

leader = threading.Thread(target=fetch, args=("leader",))
leader.start()
time.sleep(0.2)
follower = threading.Thread(target=fetch, args=("follower",))
follower.start()
leader.join()
follower.join()
for name in ("leader", "follower"):
    s = seen[name]
    print(f"{name:8} head {s['head'] * 1e3:8.2f} ms, first byte {s['first'] * 1e3:8.2f} ms, "
          f"last byte {s['last'] * 1e3:8.2f} ms; {s['got']} bytes, "
          f"{'the origin body' if s['ok'] else 'NOT THE ORIGIN BODY'}; cache-status: {s['status']}")
delta = (seen["follower"]["first"] - seen["leader"]["first"]) * 1e3
print(f"first byte: follower - leader = {delta:.3f} ms", end="")
print("  (goal < 1 ms: met)" if delta < 1 else "  (goal < 1 ms: NOT MET)")
ok = seen["leader"]["ok"] and seen["follower"]["ok"] and delta < 1
sys.exit(0 if ok else 1)
PY

origin_port=$(free_port)
echo "read-while-write: python3 origin.py $origin_port $size $chunk $pause $think (slow origin)"
python3 "$work/origin.py" "$origin_port" "$size" "$chunk" "$pause" "$think" "$work/count" \
    >"$work/origin.log" 2>&1 &
pids+=($!)
wait_listening "$origin_port"

port=$(free_port)
# The default `--max-entry-size` (8M) would keep a 10 MiB response out of the store, and
# its followers would go to the origin themselves.
cmd=("$proxy_bin" --port "$port" --origin "http://127.0.0.1:$origin_port" --max-entry-size 64M)
# PROXY_FLAGS: more flags for the proxy, e.g. `--threads 1`.
read -r -a extra <<<"${PROXY_FLAGS:-}"
cmd+=("${extra[@]}")
echo "read-while-write: RUST_LOG=warn ${cmd[*]}"
RUST_LOG=warn "${cmd[@]}" >"$work/proxy.log" 2>&1 &
pids+=($!)
wait_listening "$port"

echo "read-while-write: leader GET /slow, follower GET /slow 0.2 s later"
failed=0
python3 "$work/clients.py" "$port" "$size" "$chunk" || failed=1
requests=$(cat "$work/count" 2>/dev/null || echo 0)
echo "origin requests: $requests"
if [ "$requests" != 1 ]; then
    echo "read-while-write: EXPECTED one origin request"
    failed=1
fi
exit "$failed"

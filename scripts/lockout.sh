#!/usr/bin/env bash
# The idle-connection lock-out scenario (issue 7, item 3), measured: IDLE keep-alive clients
# that each send one small GET every 8 s hold the proxy's connections; then NEW fresh clients
# connect, and the script prints how long each waited for its answer. With the fair limit,
# idle connections are closed to admit new ones, so the new clients are answered at once.
#
#   bash scripts/lockout.sh [IDLE] [MAX_CONNECTIONS] [NEW]     # default: 1030 1024 4
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh lockout
idle=${1:-1030}
max=${2:-1024}
new=${3:-4}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
build_servers
origin_port=$(free_port)
proxy_port=$(free_port)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
"$origin_bin" --port "$origin_port" >/dev/null 2>&1 &
pids+=($!)
RUST_LOG=warn "$proxy_bin" --port "$proxy_port" --origin "http://127.0.0.1:$origin_port" \
    --max-connections "$max" --header-read-timeout 60 >/dev/null 2>&1 &
pids+=($!)
wait_listening "$origin_port"
wait_listening "$proxy_port"

echo "lockout: $idle idle keep-alive clients (one GET every 8 s), --max-connections $max, then $new new clients"
python3 - "$proxy_port" "$idle" "$new" <<'PY'
import socket, sys, threading, time

port, idle, new = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
request = b"GET /bytes/16 HTTP/1.1\r\nHost: localhost\r\n\r\n"
stop = time.time() + 30

def read_answer(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    return True

def idle_client():
    # Reconnects when the proxy closes its connection, as a browser would.
    while time.time() < stop:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            while time.time() < stop:
                s.sendall(request)
                if not read_answer(s):
                    break
                time.sleep(8)
            s.close()
        except OSError:
            time.sleep(0.5)

threads = [threading.Thread(target=idle_client, daemon=True) for _ in range(idle)]
for t in threads:
    t.start()
time.sleep(5)  # all idle clients connected and answered once

waits = []
for _ in range(new):
    start = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.settimeout(5)
        s.sendall(request)
        ok = read_answer(s)
        s.close()
    except OSError:
        ok = False
    waits.append((time.time() - start) if ok else None)
for i, w in enumerate(waits, 1):
    print(f"lockout: new client {i}: " + (f"answered in {w * 1000:.1f} ms" if w is not None else "no answer within 5 s"))
answered = [w for w in waits if w is not None]
print(f"lockout: {len(answered)}/{new} new clients answered; slowest "
      + (f"{max(answered) * 1000:.1f} ms" if answered else "-"))
PY

# Shared by the scripts in this folder: `source "$(dirname "${BASH_SOURCE[0]}")/common.sh" NAME`
# with NAME the script's name, used to prefix messages. Expects `root` to be the repository.

tag=${1:?usage: source common.sh NAME}

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Is something accepting connections on 127.0.0.1:PORT?
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to 10 s for 127.0.0.1:PORT to accept connections.
wait_listening() {
    for _ in $(seq 100); do
        if listening "$1"; then return 0; fi
        sleep 0.1
    done
    echo "$tag: nothing listening on port $1 after 10 s" >&2
    return 1
}

# Installs the Debian package $2 (default: $1) when the command $1 is missing.
ensure_tool() {
    command -v "$1" >/dev/null && return 0
    local package=${2:-$1} sudo=()
    echo "$tag: $1 not found; installing it: apt-get install -y $package"
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get install -y "$package" >/dev/null \
        || { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y "$package" >/dev/null; }
}

# Installs wrk from Debian's packages when it is missing.
ensure_wrk() { ensure_tool wrk; }

# Writes to $1 a wrk script asking for a new URL every request, `$2<run>-<random>-<n>$4` (e.g.
# `/miss/1024/`, and `?no-store` or nothing), with the extra header fields $3 (a Lua table, or
# `nil`). <run> is wrk's process id: Lua's random numbers start from the same seed in every
# run, so without it a run after a warm-up would ask for the warm-up's URLs again, and hit.
write_unique_urls_lua() {
    cat >"$1" <<LUA
local stat = io.open("/proc/self/stat")
local run = (stat and stat:read("*n")) or os.time()
if stat then stat:close() end
counter = 0
request = function()
    counter = counter + 1
    return wrk.format("GET", "$2" .. run .. "-" .. math.random(1, 1000000000) .. "-" .. counter .. "${4:-}", $3)
end
LUA
}

# Builds the origin and proxy with the cargo profile in $PROFILE (default `release`; e.g.
# `production`, the deployment build) and the cargo features in $FEATURES, if any; sets
# origin_bin and proxy_bin. PROXY_BIN runs another build of the proxy instead (e.g. an older
# commit's, copied aside).
build_servers() {
    build_examples bench_origin caching_proxy
    origin_bin="$root/target/${PROFILE:-release}/examples/bench_origin"
}

# Builds the examples named, as build_servers says; sets proxy_bin.
build_examples() {
    local features=() profile=${PROFILE:-release} examples=() example
    if [ -n "${FEATURES:-}" ]; then features=(--features "$FEATURES"); fi
    for example in "$@"; do examples+=(--example "$example"); done
    echo "$tag: cargo build --profile $profile ${features[*]} ${examples[*]}"
    cargo build --quiet --profile "$profile" "${features[@]}" "${examples[@]}"
    proxy_bin=${PROXY_BIN:-"$root/target/$profile/examples/caching_proxy"}
}

# Kills and reaps the processes whose ids the script adds to `pids`, and removes `$work` (when
# set), when the script exits, however it exits.
clean_up_on_exit() {
    pids=()
    trap clean_up EXIT
}

clean_up() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}

# A process's user and system CPU ticks and minor page faults, from /proc/PID/stat.
cpu_usage() {
    awk '{ print $14, $15, $10 }' "/proc/$1/stat"
}

# Prints LABEL's REQUESTS and its process's CPU per request between two cpu_usage readings
# (BEFORE, AFTER): in all, in user space and in the kernel, and its page faults; then EXTRA,
# if given.
print_cpu_per_request() { # LABEL BEFORE AFTER REQUESTS [EXTRA]
    python3 - "$(getconf CLK_TCK)" "$@" <<'PY'
import sys
hz, label, requests = int(sys.argv[1]), sys.argv[2], int(sys.argv[5])
before, after = (list(map(int, field.split())) for field in sys.argv[3:5])
extra = "".join(f", {text}" for text in sys.argv[6:])
user, system, faults = (b - a for a, b in zip(before, after))
us = 1e6 / hz / requests
print(f"{label:<12} {requests:>8} requests  proxy CPU {(user + system) * us:6.2f} us per request"
      f" (user {user * us:5.2f}, system {system * us:5.2f}), {faults / requests:.2f} page faults"
      f"{extra}")
PY
}

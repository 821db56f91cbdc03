#!/usr/bin/env bash
# Runs the HTTP cache conformance suite (http-cache-tests, the suite behind cache-tests.fyi)
# against the example caching proxy, prints the score next to the published results of other
# caches, and fails when a required test fails that is not a documented deviation.
#
#   scripts/conformance.sh            # needs node + npm; builds the example proxy
#   KEEP_RESULTS=out.json scripts/conformance.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh conformance
suite_version=0.4.5
work="$root/target/conformance"
mkdir -p "$work"

if [ ! -d "$work/package/node_modules" ]; then
    (cd "$work" && npm pack --silent "http-cache-tests@$suite_version" >/dev/null \
        && tar xzf "http-cache-tests-$suite_version.tgz" \
        && cd package && npm install --omit=dev --no-audit --no-fund --silent)
fi

cargo build --quiet --example caching_proxy
proxy_bin="$root/target/debug/examples/caching_proxy"

origin_port=$(free_port)
proxy_port=$(free_port)

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

cd "$work/package"
npm_config_protocol=http npm_config_port=$origin_port npm_config_pidfile="$work/server.pid" \
    node server/server.mjs >"$work/server.log" 2>&1 &
pids+=($!)
"$proxy_bin" --port "$proxy_port" --origin "http://127.0.0.1:$origin_port" >"$work/proxy.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
    if listening "$origin_port" && listening "$proxy_port"; then
        break
    fi
    sleep 0.1
done
if ! listening "$origin_port" || ! listening "$proxy_port"; then
    echo "conformance: the suite's origin or the proxy did not start" >&2
    tail -5 "$work/server.log" "$work/proxy.log" >&2
    exit 1
fi

results="$work/results.json"
npm_config_base="http://127.0.0.1:$proxy_port" npm_package_config_id="" node --no-warnings cli.mjs >"$results"
if [ -n "${KEEP_RESULTS:-}" ]; then cp "$results" "$KEEP_RESULTS"; fi

# Required tests this cache fails on purpose; README.md ("Conformance") says why.
node --input-type=module - "$results" <<'JS'
import fs from 'fs'
import index from './tests/index.mjs'

const known = new Set([
  // RFC 9111 §5.1: "a cache SHOULD ignore" an invalid Age; these tests expect the response to
  // be treated as stale instead (every cache and browser in results/ fails them too).
  'age-parse-nonnumeric', 'age-parse-negative', 'age-parse-float', 'age-parse-prefix-twoline',
  'age-parse-dup-0', 'age-parse-dup-0-twoline', 'age-parse-dup-old', 'age-parse-parameter',
  'age-parse-numeric-parameter',
  // The origin drops the connection, so no answer can carry the server's request number that
  // the harness looks for (every cache in results/ fails these).
  'stale-close-must-revalidate', 'stale-close-proxy-revalidate', 'stale-close-no-cache',
  'stale-close-s-maxage=2',
  // Responses with Set-Cookie are not stored by default (--store-set-cookie stores them).
  'headers-store-Set-Cookie', '304-etag-update-response-Set-Cookie'
])

const ours = JSON.parse(fs.readFileSync(process.argv[2]))
const score = (results) => {
  const by = {}
  for (const suite of index) {
    for (const test of suite.tests) {
      const kind = test.kind || 'required'
      by[kind] = by[kind] || { passed: 0, total: 0 }
      by[kind].total++
      if (results[test.id] === true) by[kind].passed++
    }
  }
  return by
}
const line = (name, by) => `${name.padEnd(16)} required ${by.required.passed}/${by.required.total}  optimal ${by.optimal.passed}/${by.optimal.total}  check ${by.check.passed}/${by.check.total}`
console.log(line('tower-cache-layer', score(ours)))
for (const other of ['squid', 'apache', 'trafficserver', 'varnish', 'nginx']) {
  console.log(line(other, score(JSON.parse(fs.readFileSync(`results/${other}.json`)))))
}

const unexpected = []
for (const suite of index) {
  for (const test of suite.tests) {
    if ((test.kind || 'required') !== 'required') continue
    const result = ours[test.id]
    if (result === undefined || result === true || known.has(test.id)) continue
    unexpected.push(`${test.id}: ${Array.isArray(result) ? result.join(' - ') : result}`)
  }
}
if (unexpected.length) {
  console.error(`${unexpected.length} required conformance tests failed:\n  ` +
    unexpected.slice(0, 30).map(line => line.slice(0, 200)).join('\n  '))
  process.exit(1)
}
console.log('conformance: no required test fails beyond the documented deviations')
JS

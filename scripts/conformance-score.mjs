// Scores a conformance result file as cache-tests.fyi does (test-engine/lib/results.mjs: a test
// whose depends_on tests did not pass counts as failed, and so does a Setup error), prints it
// beside every cache in the suite's results/ folder as a markdown table, and fails on a
// required test outside the deliberate deviations below or on a score below the gate.
//
//   node scripts/conformance-score.mjs SUITE_DIR RESULTS.json LABEL MIN_REQUIRED MIN_OPTIMAL
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, resultsFile, label, minRequired, minOptimal] = process.argv.slice(2)
const load = (rel) => import(pathToFileURL(path.join(suiteDir, rel)).href)
const { default: suites } = await load('tests/index.mjs')
const { determineTestResult, resultTypes } = await load('test-engine/lib/results.mjs')
const { default: others } = await load('results/index.mjs')

// Required tests this cache fails on purpose; README.md ("Conformance") says why.
const deviations = new Map([
  ['headers-store-Set-Cookie', 'Set-Cookie is not stored by default (--store-set-cookie stores it)'],
  ['interim-not-cached', "1xx interim responses are not forwarded: hyper's server cannot send them (hyper PR #4114)"]
])

const kinds = ['required', 'optimal', 'check']
const passed = (id, results) =>
  [resultTypes.pass, resultTypes.yes].includes(determineTestResult(suites, id, results))
// The tests that apply, chosen as test-engine/client/runner.mjs chooses them: browsers skip
// browser_skip and cdn_only tests, other caches skip browser_only tests.
const applies = (test, browser) => browser
  ? test.browser_skip !== true && test.cdn_only !== true
  : test.browser_only !== true
const score = (results, browser = false) => {
  const by = Object.fromEntries(kinds.map(kind => [kind, { passed: 0, total: 0, failed: [] }]))
  for (const suite of suites) {
    for (const test of suite.tests) {
      if (!applies(test, browser)) continue
      const kind = by[test.kind || 'required']
      kind.total++
      if (passed(test.id, results)) kind.passed++
      else kind.failed.push(test.id)
    }
  }
  return by
}

const ours = JSON.parse(fs.readFileSync(resultsFile))
const our = score(ours)
const rows = others.map(other => ({
  name: `${other.name} ${other.version} (${other.type})`,
  by: score(JSON.parse(fs.readFileSync(path.join(suiteDir, 'results', other.file))), other.type === 'browser')
}))
rows.sort((a, b) => b.by.required.passed - a.by.required.passed || b.by.optimal.passed - a.by.optimal.passed)
const cell = (k) => `${k.passed} / ${k.total}`
console.log('| cache | required | optimal | check |')
console.log('|---|---|---|---|')
console.log(`| **${label}** | **${cell(our.required)}** | **${cell(our.optimal)}** | ${cell(our.check)} |`)
for (const row of rows) {
  console.log(`| ${row.name} | ${cell(row.by.required)} | ${cell(row.by.optimal)} | ${cell(row.by.check)} |`)
}
console.log()

const why = (id) => {
  const result = ours[id]
  if (result === undefined) return 'not run'
  if (result === true) return 'depends on a failed test'
  return Array.isArray(result) ? result.join(': ').slice(0, 160) : String(result)
}
for (const id of our.required.failed) {
  if (deviations.has(id)) console.log(`deviation (required): ${id}: ${deviations.get(id)}`)
}
for (const id of our.optimal.failed) console.log(`not passed (optimal): ${id}: ${why(id)}`)

const problems = []
for (const id of our.required.failed) {
  if (!deviations.has(id)) problems.push(`required test failed: ${id}: ${why(id)}`)
}
if (our.required.passed < Number(minRequired)) {
  problems.push(`required ${cell(our.required)} is below the gate of ${minRequired}`)
}
if (our.optimal.passed < Number(minOptimal)) {
  problems.push(`optimal ${cell(our.optimal)} is below the gate of ${minOptimal}`)
}
if (problems.length) {
  console.error(`conformance: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
console.log(`conformance: gate passed (required >= ${minRequired}, optimal >= ${minOptimal}, no required failure beyond the documented deviations)`)

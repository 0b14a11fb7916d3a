// Dev-only: asks Segment's published packages for their answer to every case of the differential
// corpus and stores the answers next to the cases (data/<kind>.answers.json), so that the Rust
// comparison (crates/destinations/tests/segment_diff.rs) runs without Node.
//
// Run through `cargo xtask segment-diff`, which writes the cases first and sets TZ=UTC (Segment's
// servers run in UTC, and liquidjs's `date` filter formats in the local time zone).
//
// Answers:
//   mapping:   {id, value} | {id, absent: true} | {id, error} | {id, errors: [...]} (validation)
//   trigger:   {id, match: bool} | {id, parse_error} | {id, error} (validate threw)
//   userpilot: {id, requests: [{action, method, url, headers, json}] | [{action, error}]}

'use strict'

const fs = require('fs')
const http = require('http')
const path = require('path')

const core = require('@segment/actions-core')
const subscriptions = require('@segment/destination-subscriptions')
const userpilot = require('@segment/action-destinations/dist/destinations/userpilot').default

const DATA = path.join(__dirname, 'data')
const GENERATED_BY = 'cargo xtask segment-diff (node tools/segment-diff/answer.js)'
const ENDPOINT = 'https://analytex.userpilot.io/'
const API_KEY = 'segment-diff-key'

function readCases(kind) {
  const file = path.join(DATA, `${kind}.cases.json`)
  return JSON.parse(fs.readFileSync(file, 'utf8')).cases
}

function writeAnswers(kind, answers) {
  const lines = answers.map((a, i) => '  ' + JSON.stringify(a) + (i + 1 === answers.length ? '' : ','))
  const text =
    `{"generated_by": ${JSON.stringify(GENERATED_BY)},\n` +
    ` "packages": ${JSON.stringify(packages())},\n` +
    ` "answers": [\n${lines.join('\n')}\n ]}\n`
  fs.writeFileSync(path.join(DATA, `${kind}.answers.json`), text)
  console.error(`wrote data/${kind}.answers.json (${answers.length} answers)`)
}

function packages() {
  const version = (name) =>
    JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', name, 'package.json'), 'utf8')).version
  return {
    '@segment/actions-core': version('@segment/actions-core'),
    '@segment/action-destinations': version('@segment/action-destinations'),
    '@segment/destination-subscriptions': version('@segment/destination-subscriptions'),
    liquidjs: version('liquidjs')
  }
}

// Mapping validation throws an AggregateError (the `aggregate-error` package) that iterates over
// one error per rule broken.
function errorAnswer(id, e) {
  if (e && e.name === 'AggregateError' && typeof e[Symbol.iterator] === 'function') {
    return { id, errors: [...e].map((x) => String(x && x.message)) }
  }
  return { id, error: String(e && e.message) }
}

function answerMappings() {
  return readCases('mapping').map(({ id, mapping, payload }) => {
    try {
      const value = core.transform(mapping, payload)
      return value === undefined ? { id, absent: true } : { id, value }
    } catch (e) {
      return errorAnswer(id, e)
    }
  })
}

function answerTriggers() {
  return readCases('trigger').map(({ id, fql, event }) => {
    const ir = subscriptions.parseFql(fql)
    if (ir.error) {
      return { id, parse_error: String(ir.error.message) }
    }
    try {
      return { id, match: subscriptions.validate(ir, event) }
    } catch (e) {
      return { id, error: String(e && e.message) }
    }
  })
}

// Userpilot's actions send real HTTP requests; a local server records them and answers 200.
async function answerUserpilot() {
  const seen = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const local = `http://127.0.0.1:${server.address().port}/`
  const destination = new core.Destination(userpilot)
  const settings = { apiKey: API_KEY, endpoint: local }
  const answers = []
  for (const { id, event } of readCases('userpilot')) {
    const requests = []
    for (const preset of userpilot.presets) {
      const ir = subscriptions.parseFql(preset.subscribe)
      if (ir.error || !subscriptions.validate(ir, event)) continue
      seen.length = 0
      try {
        await destination.executeAction(preset.partnerAction, { event, mapping: preset.mapping, settings })
        for (const r of seen) {
          const headers = {}
          for (const name of ['authorization', 'content-type', 'x-api-version', 'accept', 'user-agent']) {
            if (r.headers[name] !== undefined) headers[name] = r.headers[name].replace(API_KEY, '<apiKey>')
          }
          requests.push({
            action: preset.partnerAction,
            method: r.method,
            url: ENDPOINT + r.url.replace(/^\//, ''),
            headers,
            json: r.body === '' ? null : JSON.parse(r.body)
          })
        }
      } catch (e) {
        requests.push({ action: preset.partnerAction, error: { name: e.name, message: String(e.message), status: e.status } })
      }
    }
    answers.push({ id, requests })
  }
  server.close()
  return answers
}

async function main() {
  if (process.env.TZ !== 'UTC') {
    throw new Error('run with TZ=UTC (cargo xtask segment-diff does)')
  }
  writeAnswers('mapping', answerMappings())
  writeAnswers('trigger', answerTriggers())
  writeAnswers('userpilot', await answerUserpilot())
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

// Runs the official OpenWhisk client's activation calls against an API host and prints
// what each answered, as one JSON object. Called by tests/openwhisk.rs:
//   node activations.js APIHOST KEY ACTIVATION_ID NAME SINCE_MS
const openwhisk = require('openwhisk')

async function main () {
  const [apihost, key, id, name, since] = process.argv.slice(2)
  const ow = openwhisk({ apihost, api_key: key })
  const out = {}
  out.list = await ow.activations.list()
  out.named = await ow.activations.list({ name, limit: 200, docs: true })
  out.paged = await ow.activations.list({ name, limit: 2, skip: 1 })
  out.since = await ow.activations.list({ name, since: Number(since), limit: 200 })
  out.get = await ow.activations.get({ name: id })
  out.logs = await ow.activations.logs({ name: id })
  out.result = await ow.activations.result({ name: id })
  try {
    await openwhisk({ apihost, api_key: 'wrong:key' }).activations.list()
    out.wrongKey = 'accepted'
  } catch (e) {
    out.wrongKey = e.statusCode
  }
  process.stdout.write(JSON.stringify(out))
}

main().catch(e => { console.error(e.message); process.exit(1) })

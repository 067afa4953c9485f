// Node's built-in fetch (undici, a small keep-alive pool per origin) as a pooled HTTP client:
// sends the requests listed in a JSON file ([{user, i, body}], body "" means GET) to
// http://127.0.0.1:PORT over LANES concurrent lanes, each lane one request at a time, and prints
// one JSON array of {i, status, text} in request order. Usage: node fetch_client.js PORT FILE LANES
'use strict';
const fs = require('fs');
const [port, file, lanes] = [+process.argv[2], process.argv[3], +process.argv[4]];
const jobs = JSON.parse(fs.readFileSync(file, 'utf8'));
const out = new Array(jobs.length);
let next = 0;

async function lane() {
  while (next < jobs.length) {
    const j = jobs[next++];
    const url = `http://127.0.0.1:${port}/send/${j.i}?user=${encodeURIComponent(j.user)}`;
    const init = j.body === '' ? {} : {method: 'POST', body: j.body};
    const res = await fetch(url, init);
    out[j.i] = {i: j.i, status: res.status, text: await res.text()};
  }
}

Promise.all(Array.from({length: lanes}, lane)).then(
  () => { process.stdout.write(JSON.stringify(out)); },
  e => { console.error(e); process.exit(1); });

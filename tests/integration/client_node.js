#!/usr/bin/node
// Node `ws` client driven by the integration tests. Prints one JSON document on stdout.
//   node client_node.js route PORT USERS_JSON_FILE REPEAT CONCURRENCY
//       connects REPEAT times as every user (ws://127.0.0.1:PORT/chat?user=U), keeping at most
//       CONCURRENCY connections in flight; records the backend's first message and closes.
//       -> {"results": [{"user", "attempt", "hello"} | {"user", "attempt", "error"}]}
//   node client_node.js echo PORT USER
//       one connection offering permessage-deflate; echoes text, binary, 1 MiB and a ping.
//       -> {"hello", "ext", "checks": {name: true|"why"}}
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const WebSocket = require('ws');

const TIMEOUT_MS = 15000;
// WS_SCHEME=wss connects over TLS (the CA comes from NODE_EXTRA_CA_CERTS; verification stays on).
const SCHEME = process.env.WS_SCHEME || 'ws';

function connectOnce(url, opts) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, opts);
    const timer = setTimeout(() => { ws.terminate(); resolve({ error: 'timeout' }); }, TIMEOUT_MS);
    ws.once('message', (data) => {
      clearTimeout(timer);
      let hello;
      try { hello = JSON.parse(data.toString()); } catch (e) { hello = { unparsable: data.toString() }; }
      ws.close(1000);
      resolve({ hello });
    });
    ws.once('unexpected-response', (req, res) => { clearTimeout(timer); ws.terminate(); resolve({ error: `HTTP ${res.statusCode}` }); });
    ws.once('error', (e) => { clearTimeout(timer); resolve({ error: e.message }); });
  });
}

async function route(port, usersFile, repeat, concurrency) {
  const users = JSON.parse(fs.readFileSync(usersFile, 'utf8'));
  const jobs = [];
  for (let a = 0; a < repeat; a++) for (const u of users) jobs.push([u, a]);
  const results = [];
  let next = 0;
  async function worker() {
    while (next < jobs.length) {
      const [user, attempt] = jobs[next++];
      const r = await connectOnce(`${SCHEME}://127.0.0.1:${port}/chat?user=${encodeURIComponent(user)}`, { perMessageDeflate: false });
      results.push({ user, attempt, ...r });
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { results };
}

function echo(port, user) {
  return new Promise((resolve) => {
    const out = { checks: {} };
    const ws = new WebSocket(`${SCHEME}://127.0.0.1:${port}/chat?user=${encodeURIComponent(user)}`,
                             { perMessageDeflate: true, maxPayload: 64 * 1024 * 1024 });
    const timer = setTimeout(() => { out.error = 'timeout'; ws.terminate(); resolve(out); }, 30000);
    const big = crypto.randomBytes(1 << 20);
    const plan = [
      ['text', 'hello ✓ wsring', false],
      ['binary', crypto.randomBytes(1000), true],
      ['binary_1mib', big, true],
      ['text_1mib_compressible', 'abcdefgh'.repeat(1 << 17), false],
      ['empty_binary', Buffer.alloc(0), true],
    ];
    let step = -1;
    function sendNext() {
      step++;
      if (step < plan.length) { ws.send(plan[step][1], { binary: plan[step][2] }); return; }
      const payload = Buffer.from('ping-payload');
      ws.once('pong', (data) => {
        out.checks.ping = data.equals(payload) ? true : `pong payload ${data.toString('hex')}`;
        clearTimeout(timer); ws.close(1000); resolve(out);
      });
      ws.ping(payload);
    }
    ws.on('upgrade', (res) => { out.ext = res.headers['sec-websocket-extensions'] || null; });
    ws.on('message', (data, isBinary) => {
      if (!out.hello) { out.hello = JSON.parse(data.toString()); sendNext(); return; }
      const [name, sent, bin] = plan[step];
      const want = Buffer.isBuffer(sent) ? sent : Buffer.from(sent);
      out.checks[name] = (isBinary === bin && data.equals(want)) ? true
        : `got ${isBinary ? 'binary' : 'text'} of ${data.length} bytes, want ${bin ? 'binary' : 'text'} of ${want.length}`;
      sendNext();
    });
    ws.on('unexpected-response', (req, res) => { out.error = `HTTP ${res.statusCode}`; clearTimeout(timer); resolve(out); });
    ws.on('error', (e) => { out.error = out.error || e.message; clearTimeout(timer); resolve(out); });
  });
}

(async () => {
  const [mode, ...a] = process.argv.slice(2);
  let out;
  if (mode === 'route') out = await route(Number(a[0]), a[1], Number(a[2]), Number(a[3]));
  else if (mode === 'echo') out = await echo(Number(a[0]), a[1]);
  else { console.error('usage: client_node.js route|echo ...'); process.exit(2); }
  // exit only once the pipe has taken all of it
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
})();

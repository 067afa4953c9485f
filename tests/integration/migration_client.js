#!/usr/bin/node
// Node `ws` client for test_migration.py: holds one connection per user to a streaming backend
// (migration_stream_backend.py) and verifies every message as it comes.
//   node migration_client.js PORT USERS_JSON_FILE
// Prints "OPEN <ok> <failed>" once every connection has its hello; then, per stdin line:
//   REPORT -> REPORT {user: {first, open, msgs, bad: [...], close: {code, reason, t, clean,
//                            fragmentedAtClose, partialBytes} | null, error}}
//   EXIT   -> exits.
// `t` is CLOCK_MONOTONIC in seconds (comparable with Python's time.monotonic()).
// fragmentedAtClose / partialBytes come from ws's receiver state when the Close frame arrived:
// non-zero means the Close came between the fragments of a data message.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const readline = require('readline');
const WebSocket = require('ws');

const [port, usersFile] = process.argv.slice(2);
const users = JSON.parse(fs.readFileSync(usersFile, 'utf8'));
const state = {};

function mono() { return Number(process.hrtime.bigint()) / 1e9; }

function verify(st, data, isBinary) {
  if (!isBinary) throw new Error(`text message of ${data.length} bytes in the stream`);
  if (data.length < 48) throw new Error(`short message of ${data.length} bytes`);
  if (data.subarray(0, 4).toString('latin1') !== 'WSRM') throw new Error('bad magic');
  const seq = Number(data.readBigUInt64BE(4));
  const n = data.readUInt32BE(12);
  if (n !== data.length - 48) throw new Error(`message #${seq}: ${data.length} bytes, header says body ${n}`);
  const h = crypto.createHash('sha256');
  h.update(data.subarray(0, 16));
  h.update(data.subarray(48));
  if (!h.digest().equals(data.subarray(16, 48))) throw new Error(`message #${seq}: sha256 mismatch`);
  if (st.seq !== null && seq !== st.seq + 1) throw new Error(`message #${seq} after #${st.seq}`);
  st.seq = seq;
}

function open(user) {
  return new Promise((resolve) => {
    const st = { first: null, open: false, msgs: 0, bad: [], close: null, error: null, seq: null };
    state[user] = st;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/chat?user=${encodeURIComponent(user)}`,
                             { perMessageDeflate: false, maxPayload: 64 << 20 });
    const timer = setTimeout(() => { st.error = 'timeout'; ws.terminate(); resolve(false); }, 30000);
    ws.on('open', () => {
      const rx = ws._receiver;
      rx.on('conclude', (code) => {  // the Close frame has just been parsed
        st.fragmentedAtClose = rx._fragmented || 0;
        st.partialBytes = rx._totalPayloadLength || 0;
        st.closeFrameT = mono();
      });
    });
    ws.on('message', (data, isBinary) => {
      if (st.first === null) {
        try {
          const hello = JSON.parse(data.toString());
          if (hello.key !== user) throw new Error(`hello for ${hello.key}`);
          st.first = hello.backend;
          st.open = true;
        } catch (e) { st.error = `hello: ${e.message}`; }
        clearTimeout(timer);
        resolve(st.first !== null);
        return;
      }
      try { verify(st, data, isBinary); st.msgs++; st.lastMsgT = mono(); } catch (e) { st.bad.push(e.message); }
    });
    ws.on('close', (code, reason) => {
      st.open = false;
      st.close = { code, reason: reason.toString(), t: mono(), frameT: st.closeFrameT || null,
                   clean: !!(ws._closeFrameReceived && ws._closeFrameSent),
                   fragmentedAtClose: st.fragmentedAtClose || 0, partialBytes: st.partialBytes || 0 };
      clearTimeout(timer);
      resolve(st.first !== null);
    });
    ws.on('unexpected-response', (req, res) => { st.error = `HTTP ${res.statusCode}`; clearTimeout(timer); resolve(false); });
    ws.on('error', (e) => { st.error = st.error || e.message; });
  });
}

(async () => {
  const ok = await Promise.all(users.map(open));
  const good = ok.filter(Boolean).length;
  process.stdout.write(`OPEN ${good} ${users.length - good}\n`);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'EXIT') process.exit(0);
    if (cmd === 'REPORT') {
      const out = {};
      for (const u of users) {
        const s = state[u];
        out[u] = { first: s.first, open: s.open, msgs: s.msgs, bad: s.bad.slice(0, 5),
                   close: s.close, error: s.error, lastMsgT: s.lastMsgT || null };
      }
      process.stdout.write('REPORT ' + JSON.stringify(out) + '\n');
    } else {
      process.stdout.write(`ERROR unknown command ${cmd}\n`);
    }
  });
  rl.on('close', () => process.exit(0));
})();

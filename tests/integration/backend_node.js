#!/usr/bin/node
// Stock Node `ws` backend for the integration tests.
// On each connection: one text message, JSON {backend, key, ring, xff, proto, path, ext, headers}
// from the request it received; then every message is echoed back unchanged (text as text, binary
// as binary; one starting with "__frag__" comes back as 7-byte fragments). Pings are answered by
// the library; permessage-deflate is accepted when the client offers it.
// Usage: node backend_node.js --name NAME [--port P] [--host H]; prints "READY <port>".
'use strict';
const { WebSocketServer } = require('ws');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const NAME = arg('name');
if (!NAME) { console.error('usage: backend_node.js --name NAME [--port P]'); process.exit(2); }

const wss = new WebSocketServer({
  host: arg('host', '127.0.0.1'), port: Number(arg('port', '0')), backlog: 4096,
  perMessageDeflate: true, maxPayload: 64 * 1024 * 1024, clientTracking: false,
});

// Node keeps header bytes as latin1 code units; report them decoded as UTF-8.
function utf8(s) { return Buffer.from(s, 'latin1').toString('utf8'); }
function one(h) { return h === undefined ? null : utf8(Array.isArray(h) ? h.join(', ') : h); }

wss.on('headers', (headers, req) => { req.wsringExt = headers.find((l) => /^sec-websocket-extensions:/i.test(l)) || null; });
wss.on('connection', (ws, req) => {
  const pairs = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) pairs.push([req.rawHeaders[i], utf8(req.rawHeaders[i + 1])]);
  ws.send(JSON.stringify({
    backend: NAME, key: one(req.headers['x-wsring-key']), ring: one(req.headers['x-wsring-ring']),
    xff: one(req.headers['x-forwarded-for']), proto: one(req.headers['x-forwarded-proto']),
    path: req.url, ext: req.wsringExt ? req.wsringExt.replace(/^[^:]*:\s*/, '') : null, headers: pairs,
  }));
  ws.on('message', (data, isBinary) => {
    if (data.length >= 8 && data.subarray(0, 8).toString('latin1') === '__frag__') {
      for (let i = 0; i < data.length; i += 7) {
        ws.send(data.subarray(i, i + 7), { binary: isBinary, fin: i + 7 >= data.length, compress: false });
      }
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('error', () => {});
});
wss.on('listening', () => { process.stdout.write(`READY ${wss.address().port}\n`); });
wss.on('error', (e) => { console.error(`backend_node ${NAME}: ${e.message}`); process.exit(1); });
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));

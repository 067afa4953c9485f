// Keep-alive HTTP backend (Node's http module, keep-alive by default): answers JSON naming
// itself, the X-Wsring-Key it saw, the method and target, the body length and SHA-256, how many
// TCP connections it has accepted (conns) and the peer port of the one this request came on
// (peer), so a test can tell whether wsring reuses backend connections and whether every
// response belongs to its request. HEAD and /204 answer without a body.
// Usage: node backend_node_http.js NAME PORT (0 picks a free port); prints "READY <port>".
'use strict';
const crypto = require('crypto');
const http = require('http');
const name = process.argv[2], port = +process.argv[3];
let conns = 0;
const srv = http.createServer((req, res) => {
  let body = [];
  req.on('data', c => body.push(c));
  req.on('end', () => {
    const b = Buffer.concat(body);
    if (req.method === 'HEAD') { res.writeHead(200, {'Content-Length': 5}); return res.end(); }
    if (req.url.startsWith('/204')) { res.writeHead(204); return res.end(); }
    const out = JSON.stringify({
      backend: name, key: req.headers['x-wsring-key'], method: req.method, url: req.url,
      len: b.length, sha256: crypto.createHash('sha256').update(b).digest('hex'), conns,
      peer: req.socket.remotePort,
    });
    res.writeHead(200, {'Content-Type': 'application/json'});
    res.end(out);
  });
});
srv.on('connection', () => conns++);
srv.listen(port, '127.0.0.1', () => console.log('READY ' + srv.address().port));

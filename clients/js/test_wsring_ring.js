'use strict';
/**
 * Tests of clients/js/wsring_ring.js against ring/SPEC.md and the C ring.
 *
 * Run: node --test clients/js/          (Node 20 runs it through wsring_ring.test.js)
 *  or: node --test clients/js/test_wsring_ring.js
 *
 * - The SPEC §7 vectors (and the worked values of §4-§6) are parsed from ring/SPEC.md at
 *   test time, so they stay in sync with the contract; the parser insists on finding all
 *   three vector sets with twenty keys each.
 * - XXH3 is compared with libxxhash (through the oracle's `hash` mode) for every length
 *   0..1000 and longer inputs.
 * - Owners, next distinct members and fingerprints are compared with the C ring on 100,000
 *   keys for 1, 10 and 100 weighted members, both algorithms, through
 *   clients/test_support/ring_oracle.c compiled at test time against ring/*.c.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const wsring = require('./wsring_ring.js');
const { Ring, FingerprintMismatch, xxh3_64, keyHash } = wsring;

const REPO = path.resolve(__dirname, '..', '..');
const SPEC = path.join(REPO, 'ring', 'SPEC.md');
const ORACLE_SRC = path.join(REPO, 'clients', 'test_support', 'ring_oracle.c');
const NKEYS = 100000;
const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------- SPEC.md parsing

function cells(line) {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
}

function unquote(cell) {
  if (cell.startsWith('`""`')) return '';
  const m = /^`([^`]*)`(?:\s.*)?$/.exec(cell);
  return m ? m[1] : cell;
}

function parseSpecVectors(text) {
  const parts = text.split(/^### 7\.\d+ `([^`]+)`.*$/m);
  const vectors = [];
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const body = parts[i + 1].split('\n## ')[0];
    const tables = [];
    let current = null;
    for (const line of body.split('\n')) {
      if (line.startsWith('|')) {
        if (current === null) {
          current = [];
          tables.push(current);
        }
        if (!/^\|[\s\-|:]+\|?$/.test(line.trim())) current.push(cells(line));
      } else {
        current = null;
      }
    }
    const vec = { name: parts[i], members: [], fp: {}, keys: [] };
    for (const table of tables) {
      const head = table[0];
      if (head[0] === 'id' && head[1] === 'address' && head[2] === 'weight') {
        vec.members = table.slice(1).map((r) => [unquote(r[0]), unquote(r[1]), Number(r[2])]);
      } else if (head[0] === 'fingerprint') {
        for (const r of table.slice(1)) {
          vec.fp[`${r[0]}/ring`] = unquote(r[1]);
          vec.fp[`${r[0]}/rendezvous`] = unquote(r[2]);
        }
      } else if (head[0] === 'key') {
        for (const r of table.slice(1)) {
          vec.keys.push({
            key: unquote(r[0]),
            hash: BigInt('0x' + unquote(r[1])),
            slot: Number(r[2]),
            ring: unquote(r[3]),
            rendezvous: unquote(r[4]),
          });
        }
      }
    }
    vectors.push(vec);
  }
  return vectors;
}

const SPEC_TEXT = fs.readFileSync(SPEC, 'utf8');
const VECTORS = parseSpecVectors(SPEC_TEXT);

test('SPEC.md vectors parsed completely', () => {
  assert.deepEqual(VECTORS.map((v) => v.name), ['three', 'weighted', 'bytewise']);
  for (const v of VECTORS) {
    assert.equal(v.keys.length, 20, v.name);
    assert.equal(Object.keys(v.fp).length, 4, v.name);
    assert.ok(v.members.length > 0, v.name);
  }
  assert.equal(VECTORS[2].members[0][0], 'ab'); // §7.3 keeps its discovery order
  assert.equal(VECTORS[0].keys[19].key, 'été');
});

for (const vec of VECTORS) {
  for (const algo of ['ring', 'rendezvous']) {
    test(`SPEC §7 vector ${vec.name} (${algo})`, () => {
      const ring = new Ring(vec.members, { algo });
      assert.equal(ring.membershipFingerprint(), vec.fp[`membership/${algo}`]);
      for (const k of vec.keys) {
        assert.equal(keyHash(k.key), k.hash, k.key);
        assert.equal(Number(k.hash >> 44n), k.slot);
        assert.equal(ring.owner(k.key), k[algo], k.key);
        assert.equal(ring.owner(enc.encode(k.key)), k[algo], k.key);
      }
      assert.equal(ring.tableFingerprint(), vec.fp[`table/${algo}`]);
      for (const k of vec.keys) assert.equal(ring.owner(k.key), k[algo], k.key); // now from the table
    });
  }
}

test('SPEC worked values (§1, §4, §5, §6)', () => {
  const worked = [...SPEC_TEXT.matchAll(/`H\("([^"]*)"\) = ([0-9a-f]{16})`/g)];
  assert.ok(worked.length >= 2);
  for (const [, s, h] of worked) assert.equal(xxh3_64(s), BigInt('0x' + h));
  assert.ok(SPEC_TEXT.includes('0x2d06800538d394c2') && wsring.selftest());
  const empty = Object.fromEntries([...SPEC_TEXT.matchAll(/`([0-9a-f]{16})`\s+for\s+`([^`]+)`/g)].map((m) => [m[2], m[1]]));
  assert.deepEqual(Object.keys(empty).sort(), ['rendezvous/v1;slots=1048576', 'ring/v1;vnodes=1000']);
  for (const [algo, tag] of [['ring', 'ring/v1;vnodes=1000'], ['rendezvous', 'rendezvous/v1;slots=1048576']]) {
    const r = new Ring([], { algo });
    assert.equal(r.membershipFingerprint(), empty[tag]);
    assert.equal(r.tableFingerprint(), empty[tag]);
    assert.equal(r.owner('alice'), null);
    assert.deepEqual(r.successors('alice', 3), []);
  }
  const rows = [...SPEC_TEXT.matchAll(/\| `(ws-[abc]#0)` \| `([0-9a-f]{16})` \| `([0-9a-f]{16})`/g)];
  assert.equal(rows.length, 3);
  const slotKey = wsring.slotKey(Number(keyHash('alice') >> 44n));
  for (const [, name, vhash, score] of rows) {
    assert.equal(xxh3_64(name), BigInt('0x' + vhash));
    assert.equal(wsring.scoreBigInt(slotKey, BigInt('0x' + vhash)), BigInt('0x' + score));
  }
});

test('bytewise member order, str and bytes ids', () => {
  const ring = new Ring([['é-1', 'x:1'], ['ab', 'x:1'], ['a/b', 'x:1'], ['Z', 'x:1'], ['a', 'x:1']]);
  assert.deepEqual(ring.members.map((m) => m.id), ['Z', 'a', 'a/b', 'ab', 'é-1']);
  assert.equal(xxh3_64('ws-a#0'), 0x2e0a989e792ee486n);
  const a = new Ring([['ws-a', 'h:1', 2], ['ws-b', 'h:2', 1]]);
  const b = new Ring([{ id: enc.encode('ws-b'), address: 'h:2' }, { id: 'ws-a', address: enc.encode('h:1'), weight: 2 }]);
  assert.equal(a.membershipFingerprint(), b.membershipFingerprint());
  assert.equal(a.tableFingerprint(), b.tableFingerprint());
});

test('validation', () => {
  assert.throws(() => new Ring([['a', 'x:1'], ['a', 'y:1']]), RangeError);
  assert.throws(() => new Ring([['a', 'x:1', 0]]), RangeError);
  assert.throws(() => new Ring([['a', 'x:1', 1001]]), RangeError);
  assert.throws(() => new Ring([['a', 'x:1', 1.5]]), RangeError);
  assert.throws(() => new Ring([['', 'x:1']]), RangeError);
  assert.throws(() => new Ring([['a', '']]), RangeError);
  assert.throws(() => new Ring([['a', 'x:1']], { vnodes: 0 }), RangeError);
  assert.throws(() => new Ring([['a', 'x:1']], { algo: 'maglev' }), RangeError);
  assert.throws(() => new Ring([['a', 'x:1']]).owner(5), TypeError);
});

// ---------------------------------------------------------------- the C oracle

let oracleCache;

/** Compiles ring_oracle.c against ring/*.c once; returns its path, or {skip: reason}. */
function oracle() {
  if (oracleCache !== undefined) return oracleCache;
  const cc = process.env.CC || 'cc';
  if (!fs.existsSync('/usr/include/xxhash.h') && !process.env.CPATH) {
    oracleCache = { skip: 'xxhash.h not found (apt-get install libxxhash-dev): cannot build the C ring oracle' };
    return oracleCache;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsring-oracle-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const exe = path.join(dir, 'ring_oracle');
  const sources = fs.readdirSync(path.join(REPO, 'ring')).filter((f) => f.endsWith('.c')).sort().map((f) => path.join(REPO, 'ring', f));
  const r = spawnSync(cc, ['-O2', '-std=c11', '-D_GNU_SOURCE', '-I', REPO, '-o', exe, ORACLE_SRC, ...sources, '-lxxhash'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : r.stderr.trim().slice(-400);
    oracleCache = { skip: `cannot compile the C ring oracle: ${why}` };
  } else {
    oracleCache = exe;
  }
  return oracleCache;
}

function hex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

function runOracle(exe, input) {
  const r = spawnSync(exe, [], { input, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`ring_oracle failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l, i, all) => i < all.length - 1 || l !== '');
}

function oracleRing(exe, members, algo, keys, vnodes = 1000, nsucc = 4) {
  const lines = [`ring ${algo} ${vnodes} ${nsucc}`, String(members.length)];
  for (const [id, address, weight] of members) lines.push(`${hex(enc.encode(id))} ${hex(enc.encode(address))} ${weight}`);
  for (const k of keys) lines.push(hex(k));
  const out = runOracle(exe, lines.join('\n') + '\n');
  const [membership, table] = out[0].split(' ');
  const rows = out.slice(1).map((line) => {
    const [h, owner, succ] = line.split(' ');
    return {
      hash: BigInt('0x' + h),
      owner: owner === '-' ? null : dec.decode(Buffer.from(owner, 'hex')),
      successors: succ === '-' ? [] : succ.split(',').map((s) => dec.decode(Buffer.from(s, 'hex'))),
    };
  });
  assert.equal(rows.length, keys.length);
  return { membership, table, rows };
}

/** A small deterministic PRNG (mulberry32). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randBytes(rnd, n) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

function makeKeys(n, seed = 7) {
  const rnd = prng(seed);
  const keys = [new Uint8Array(0), enc.encode('alice'), enc.encode('été')];
  while (keys.length < n) {
    const r = rnd();
    if (r < 0.4) keys.push(enc.encode(`user-${Math.floor(rnd() * 1e9)}`));
    else if (r < 0.6) keys.push(randBytes(rnd, Math.floor(rnd() * 48)));
    else if (r < 0.8) keys.push(enc.encode(hex(randBytes(rnd, 16))));
    else if (r < 0.95) keys.push(enc.encode(`ü-${Math.floor(rnd() * 1e6)}-用户`));
    else keys.push(randBytes(rnd, 48 + Math.floor(rnd() * 352)));
  }
  return keys;
}

function makeMembers(n, seed) {
  if (n === 1) return [['solo', '10.0.0.1:9001', 3]];
  const rnd = prng(seed);
  const members = [];
  for (let i = 0; i < n; i++) {
    let id;
    switch (i % 4) {
      case 0: id = `node-${i}/ws-${Math.floor(rnd() * 1000)}`; break;
      case 1: id = `ws-${String(i).padStart(2, '0')}`; break;
      case 2: id = `é-${i}`; break;
      default: id = `Z${Math.floor(rnd() * 2 ** 40).toString(16)}`;
    }
    const maxWeight = n >= 100 ? 3 : 5;
    members.push([id, `10.0.${Math.floor(i / 250)}.${i % 250}:${8000 + i}`, 1 + Math.floor(rnd() * maxWeight)]);
  }
  for (let i = members.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [members[i], members[j]] = [members[j], members[i]];
  }
  return members;
}

// ---------------------------------------------------------------- XXH3 vs libxxhash

test('XXH3 known answer', () => {
  assert.equal(xxh3_64(''), 0x2d06800538d394c2n);
  assert.equal(xxh3_64(new Uint8Array(0)), 0x2d06800538d394c2n);
});

test('XXH3 agrees with libxxhash on every length 0..1000 and long inputs', (t) => {
  const exe = oracle();
  if (typeof exe !== 'string') return t.skip(exe.skip);
  const rnd = prng(20240601);
  const inputs = [];
  for (let n = 0; n <= 1000; n++) for (let r = 0; r < 4; r++) inputs.push(randBytes(rnd, n));
  for (const n of [1023, 1024, 1025, 1087, 1088, 1089, 2047, 2048, 2049, 3072, 4096, 4097, 65536, 100003, (4 << 20) + 12]) {
    inputs.push(randBytes(rnd, n));
  }
  for (const n of [0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 1025]) {
    inputs.push(new Uint8Array(n), new Uint8Array(n).fill(0xff));
  }
  // A view into a larger buffer (non-zero byteOffset) must hash the same bytes.
  const backing = randBytes(rnd, 600);
  inputs.push(backing.subarray(3, 3 + 300), backing.subarray(5, 5 + 13));
  const want = runOracle(exe, 'hash\n' + inputs.map(hex).join('\n') + '\n');
  assert.equal(want.length, inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    assert.equal(wsring.formatFingerprint(xxh3_64(inputs[i])), want[i], `length ${inputs[i].length}`);
  }
});

test('uint32-pair rendezvous scores equal the BigInt reference', () => {
  // The ring compares scores as uint32 pairs; a rendezvous ring of many members whose owners
  // are checked against the BigInt argmax covers scoreAll and the comparison together.
  const members = makeMembers(50, 11);
  const ring = new Ring(members, { algo: 'rendezvous' });
  const vhash = [];
  ring.members.forEach((m, idx) => {
    for (let k = 0; k < m.weight; k++) vhash.push([xxh3_64(`${m.id}#${k}`), idx]);
  });
  const rnd = prng(3);
  for (let i = 0; i < 3000; i++) {
    const slot = Math.floor(rnd() * wsring.NSLOTS);
    const key = wsring.slotKey(slot);
    let best = -1n;
    let owner = -1;
    for (const [h, idx] of vhash) {
      const s = wsring.scoreBigInt(key, h);
      if (s > best) {
        best = s;
        owner = idx;
      }
    }
    assert.equal(ring.ownerIndexForHash(BigInt(slot) << 44n), owner, `slot ${slot}`);
  }
});

// ---------------------------------------------------------------- against the C ring

let keysCache;
function keys() {
  if (keysCache === undefined) keysCache = makeKeys(NKEYS);
  return keysCache;
}

for (const nmembers of [1, 10, 100]) {
  for (const algo of ['ring', 'rendezvous']) {
    test(`agrees with the C ring: ${nmembers} members, ${algo}, ${NKEYS} keys`, (t) => {
      const exe = oracle();
      if (typeof exe !== 'string') return t.skip(exe.skip);
      const members = makeMembers(nmembers, nmembers);
      const ks = keys();
      const want = oracleRing(exe, members, algo, ks);
      const ring = new Ring(members, { algo });
      assert.equal(ring.membershipFingerprint(), want.membership);
      assert.equal(ring.tableFingerprint(), want.table); // rendezvous: the full 2^20-slot table
      // rendezvous: `ring` now reads its table; `fresh` scores each key's slot on demand.
      const fresh = algo === 'rendezvous' ? new Ring(members, { algo }) : ring;
      let mismatches = 0;
      for (let i = 0; i < ks.length; i++) {
        const h = keyHash(ks[i]);
        assert.equal(h, want.rows[i].hash);
        if (ring.members[ring.ownerIndexForHash(h)].id !== want.rows[i].owner) mismatches++;
        if (i < 20000 && fresh !== ring && fresh.members[fresh.ownerIndexForHash(h)].id !== want.rows[i].owner) mismatches++;
        if (i < 3000) assert.deepEqual(fresh.successors(ks[i], 4), want.rows[i].successors);
      }
      assert.equal(mismatches, 0, `${mismatches} owners differ from the C ring`);
    });
  }
}

test('vnodes other than the default agree with the C ring', (t) => {
  const exe = oracle();
  if (typeof exe !== 'string') return t.skip(exe.skip);
  const members = makeMembers(10, 99);
  const sample = makeKeys(5000, 3);
  for (const vnodes of [1, 7, 160]) {
    const want = oracleRing(exe, members, 'ring', sample, vnodes, 10);
    const ring = new Ring(members, { vnodes });
    assert.equal(ring.membershipFingerprint(), want.membership);
    assert.equal(ring.tableFingerprint(), want.table);
    sample.forEach((k, i) => {
      assert.equal(ring.owner(k), want.rows[i].owner);
      assert.deepEqual(ring.successors(k, 10), want.rows[i].successors);
    });
  }
});

// ---------------------------------------------------------------- /ring JSON

function ringJson(members, algo, membership, table) {
  // Shaped like proxy/publisher.c's GET /ring answer.
  const sorted = [...members].sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
  return {
    members: sorted.map(([id, address, weight]) => ({ id, address, weight })),
    fingerprint: table,
    membership_fingerprint: membership,
    hash: algo,
    vnodes: 1000,
    source: 'static',
    last_update: 1795657576,
    changes: 1,
  };
}

test('Ring.fromRingJson checks fingerprints', (t) => {
  const exe = oracle();
  if (typeof exe !== 'string') return t.skip(exe.skip);
  const members = makeMembers(4, 5);
  const ab = [enc.encode('alice'), enc.encode('bob')];
  for (const algo of ['ring', 'rendezvous']) {
    const want = oracleRing(exe, members, algo, ab);
    const obj = ringJson(members, algo, want.membership, want.table);
    const ring = Ring.fromRingJson(obj);
    assert.equal(ring.owner('alice'), want.rows[0].owner);
    assert.equal(ring.owner('bob'), want.rows[1].owner);
    assert.equal(Ring.fromRingJson(JSON.stringify(obj), { check: 'membership' }).owner('alice'), want.rows[0].owner);
    assert.throws(() => Ring.fromRingJson({ ...obj, membership_fingerprint: '0000000000000000' }), FingerprintMismatch);
    assert.throws(() => Ring.fromRingJson({ ...obj, fingerprint: '0123456789abcdef' }), FingerprintMismatch);
    assert.throws(() => Ring.fromRingJson({ ...obj, fingerprint: '0123456789abcdef' }, { check: 'full' }), FingerprintMismatch);
    Ring.fromRingJson({ ...obj, fingerprint: '0123456789abcdef' }, { check: 'membership' });
    const noMembership = { ...obj, fingerprint: '0123456789abcdef' };
    delete noMembership.membership_fingerprint;
    assert.throws(() => Ring.fromRingJson(noMembership, { check: 'membership' }), FingerprintMismatch);
    Ring.fromRingJson({ ...obj, membership_fingerprint: '0' }, { check: 'none' });
  }
  assert.throws(() => Ring.fromRingJson({ members: [] }, { check: 'bogus' }), RangeError);
  const three = VECTORS[0];
  const minimal = {
    members: three.members.map(([id, address, weight]) => ({ id, address, weight })),
    hash: 'ring',
    vnodes: 1000,
    fingerprint: three.fp['table/ring'],
  };
  assert.equal(Ring.fromRingJson(minimal).owner('alice'), 'ws-c');
});

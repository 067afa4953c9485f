'use strict';
/**
 * wsring_ring: a dependency-free JavaScript port of wsring's ring lookup (ring/SPEC.md).
 *
 * CommonJS, Node >= 18, no dependencies and no Node-specific APIs (TextEncoder, DataView,
 * BigInt, typed arrays), so bundlers take it as is. From ESM:
 * `import wsring from './wsring_ring.js'; const { Ring } = wsring;`.
 *
 * A backend uses it to compute a user's owner locally (DESIGN §10, the third way): fetch
 * wsring's `GET /ring` once, `Ring.fromRingJson(json)`, then `ring.owner(key)`; rebuild when
 * the ring changes (`X-Wsring-Ring` differs from the `fingerprint` of that /ring answer).
 *
 * The result is byte-identical to the C ring (ring/ring.c): same owners, same next
 * distinct members, same fingerprints. Changing anything here remaps users; the contract
 * is ring/SPEC.md and clients/js/test_wsring_ring.js checks this file against its vectors,
 * against libxxhash and against the C ring.
 *
 * 64-bit values at the API are BigInt (xxh3_64, keyHash, ownerIndexForHash). Inside, XXH3
 * uses BigInt, while the two hot loops (ring point search, rendezvous scoring) work on
 * pairs of uint32 numbers, about 7x faster than BigInt in V8 (~25 ns per score).
 *
 * Costs (Node 20, one core): a `ring` of 100 members x 1000 vnodes builds in ~0.15 s and
 * answers ~250k lookups/s (the key's XXH3 dominates). `rendezvous` builds nothing up front:
 * a lookup scores every virtual member for the key's slot (slots cached); the table
 * fingerprint needs all 2^20 slots (~20 ms per virtual member: ~2 s for 100), after
 * which lookups read the table.
 */

const M64 = 0xffffffffffffffffn;
const M32 = 0xffffffffn;

// ---------------------------------------------------------------- XXH3-64 (seed 0)

const P32_1 = 0x9e3779b1n;
const P32_2 = 0x85ebca77n;
const P32_3 = 0xc2b2ae3dn;
const P64_1 = 0x9e3779b185ebca87n;
const P64_2 = 0xc2b2ae3d27d4eb4fn;
const P64_3 = 0x165667b19e3779f9n;
const P64_4 = 0x85ebca77c2b2ae63n;
const P64_5 = 0x27d4eb2f165667c5n;
const PMX1 = 0x165667919e3779f9n;
const PMX2 = 0x9fb21c651e98df25n;

const SECRET_HEX =
  'b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f' +
  'cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c' +
  '3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8' +
  'a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364' +
  'eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e' +
  '2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e';
const SECRET = new Uint8Array(192);
for (let i = 0; i < 192; i++) SECRET[i] = parseInt(SECRET_HEX.substr(2 * i, 2), 16);
const SECRET_VIEW = new DataView(SECRET.buffer);
// The secret read as u64le / u32le at every byte offset (the long path reads odd offsets).
const S64 = [];
for (let o = 0; o + 8 <= 192; o++) S64.push(SECRET_VIEW.getBigUint64(o, true));
const S32 = [];
for (let o = 0; o + 4 <= 192; o++) S32.push(BigInt(SECRET_VIEW.getUint32(o, true)));

const BITFLIP_1TO3 = S32[0] ^ S32[4];
const BITFLIP_4TO8 = S64[8] ^ S64[16];
const BITFLIP_9TO16_LO = S64[24] ^ S64[32];
const BITFLIP_9TO16_HI = S64[40] ^ S64[48];

const encoder = new TextEncoder();

function toBytes(value, what) {
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError(`${what} must be a string or bytes, not ${value === null ? 'null' : typeof value}`);
}

function xxh64Avalanche(h) {
  h ^= h >> 33n;
  h = (h * P64_2) & M64;
  h ^= h >> 29n;
  h = (h * P64_3) & M64;
  return h ^ (h >> 32n);
}

function avalanche(h) {
  h ^= h >> 37n;
  h = (h * PMX1) & M64;
  return h ^ (h >> 32n);
}

function fold(p) {
  return (p & M64) ^ (p >> 64n);
}

function mix16(view, off, soff) {
  const lo = view.getBigUint64(off, true);
  const hi = view.getBigUint64(off + 8, true);
  return fold((lo ^ S64[soff]) * (hi ^ S64[soff + 8]));
}

function swap64(x) {
  let r = 0n;
  for (let i = 0; i < 8; i++) {
    r = (r << 8n) | (x & 0xffn);
    x >>= 8n;
  }
  return r;
}

/** XXH3_hashLong_64b with the default secret (n > 240): 64-byte stripes, 8 lanes. */
function hashLong(view, n) {
  const acc = [P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1];
  const nbBlocks = Math.floor((n - 1) / 1024);
  const lastStripes = Math.floor((n - 1 - 1024 * nbBlocks) / 64);
  const stripe = (off, soff) => {
    for (let i = 0; i < 8; i++) {
      const d = view.getBigUint64(off + 8 * i, true);
      const k = d ^ S64[soff + 8 * i];
      acc[i ^ 1] += d;
      acc[i] += (k & M32) * (k >> 32n);
    }
  };
  for (let b = 0; b < nbBlocks; b++) {
    for (let s = 0; s < 16; s++) stripe(1024 * b + 64 * s, 8 * s);
    for (let i = 0; i < 8; i++) {
      let a = acc[i] & M64;
      a ^= a >> 47n;
      a ^= S64[128 + 8 * i];
      acc[i] = (a * P32_1) & M64;
    }
  }
  for (let s = 0; s < lastStripes; s++) stripe(1024 * nbBlocks + 64 * s, 8 * s);
  stripe(n - 64, 121);
  let r = (BigInt(n) * P64_1) & M64;
  for (let i = 0; i < 4; i++) {
    r += fold(((acc[2 * i] & M64) ^ S64[11 + 16 * i]) * ((acc[2 * i + 1] & M64) ^ S64[19 + 16 * i]));
  }
  return avalanche(r & M64);
}

/** XXH3_64bits(data), seed 0, default secret (xxHash >= 0.8.0), as a BigInt. Strings are UTF-8. */
function xxh3_64(data) {
  const bytes = toBytes(data, 'data');
  const n = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, n);
  if (n <= 16) {
    if (n > 8) {
      const lo = view.getBigUint64(0, true) ^ BITFLIP_9TO16_LO;
      const hi = view.getBigUint64(n - 8, true) ^ BITFLIP_9TO16_HI;
      return avalanche((BigInt(n) + swap64(lo) + hi + fold(lo * hi)) & M64);
    }
    if (n >= 4) {
      const in1 = BigInt(view.getUint32(0, true));
      const in2 = BigInt(view.getUint32(n - 4, true));
      let x = ((in2 + (in1 << 32n)) ^ BITFLIP_4TO8) & M64;
      x ^= (((x << 49n) | (x >> 15n)) & M64) ^ (((x << 24n) | (x >> 40n)) & M64);
      x = (x * PMX2) & M64;
      x ^= (x >> 35n) + BigInt(n);
      x = (x * PMX2) & M64;
      return x ^ (x >> 28n);
    }
    if (n > 0) {
      const combined = (bytes[0] << 16) | (bytes[n >> 1] << 24) | bytes[n - 1] | (n << 8);
      return xxh64Avalanche(BigInt(combined >>> 0) ^ BITFLIP_1TO3);
    }
    return xxh64Avalanche(S64[56] ^ S64[64]);
  }
  if (n <= 128) {
    let acc = BigInt(n) * P64_1;
    if (n > 32) {
      if (n > 64) {
        if (n > 96) acc += mix16(view, 48, 96) + mix16(view, n - 64, 112);
        acc += mix16(view, 32, 64) + mix16(view, n - 48, 80);
      }
      acc += mix16(view, 16, 32) + mix16(view, n - 32, 48);
    }
    acc += mix16(view, 0, 0) + mix16(view, n - 16, 16);
    return avalanche(acc & M64);
  }
  if (n <= 240) {
    let acc = BigInt(n) * P64_1;
    for (let i = 0; i < 8; i++) acc += mix16(view, 16 * i, 16 * i);
    acc = avalanche(acc & M64);
    const rounds = Math.floor(n / 16);
    for (let i = 8; i < rounds; i++) acc += mix16(view, 16 * i, 16 * (i - 8) + 3);
    acc += mix16(view, n - 16, 136 - 17);
    return avalanche(acc & M64);
  }
  return hashLong(view, n);
}

/** A 64-bit value as wsring shows fingerprints: 16 lowercase hex digits. */
function formatFingerprint(value) {
  return BigInt.asUintN(64, BigInt(value)).toString(16).padStart(16, '0');
}

/** SPEC §1: XXH3_64bits("") must be 0x2d06800538d394c2, or nothing here may be used. */
function selftest() {
  return xxh3_64(new Uint8Array(0)) === 0x2d06800538d394c2n;
}

if (!selftest()) {
  throw new Error('wsring_ring: XXH3 self-test failed (SPEC §1); refusing to compute owners');
}

/** The key hash wsring uses (SPEC §1): XXH3_64bits over the key's bytes (strings are UTF-8). */
function keyHash(key) {
  return xxh3_64(toBytes(key, 'key'));
}

// ---------------------------------------------------------------- 64-bit math on uint32 pairs

// mul64 leaves its result here (no allocation in the hot loops).
let rHi = 0;
let rLo = 0;

/** (ah:al * bh:bl) mod 2^64 into rHi:rLo; every intermediate stays below 2^53. */
function mul64(ah, al, bh, bl) {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0;
  const low = a0 * b0 + (mid % 65536) * 65536;
  const lo = low >>> 0;
  rHi = (a1 * b1 + Math.floor(mid / 65536) + (low - lo) / 4294967296 + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
  rLo = lo;
}

const GOLDEN = 0x9e3779b97f4a7c15n;

/**
 * SPEC §5.3 for every virtual member: the splitmix64 finalizer of vhash ^ slotKey, on
 * uint32 halves, into outHi/outLo. The two multiplications are mul64 written out for the
 * constants 0xbf58476d1ce4e5b9 and 0x94d049bb133111eb (every intermediate < 2^53).
 */
function scoreAll(kHi, kLo, VH, VL, outHi, outLo) {
  for (let v = 0; v < VH.length; v++) {
    let h = (VH[v] ^ kHi) >>> 0;
    let l = (VL[v] ^ kLo) >>> 0;
    l = (l ^ ((l >>> 30) | (h << 2))) >>> 0;
    h = (h ^ (h >>> 30)) >>> 0;
    let a0 = l & 0xffff;
    let a1 = l >>> 16;
    let mid = a0 * 0x1ce4 + a1 * 0xe5b9;
    let low = a0 * 0xe5b9 + (mid & 0xffff) * 65536;
    let lo = low >>> 0;
    h = (a1 * 0x1ce4 + Math.floor(mid / 65536) + (low - lo) / 4294967296 +
         Math.imul(h, 0x1ce4e5b9) + Math.imul(l, 0xbf58476d)) >>> 0;
    l = lo;
    l = (l ^ ((l >>> 27) | (h << 5))) >>> 0;
    h = (h ^ (h >>> 27)) >>> 0;
    a0 = l & 0xffff;
    a1 = l >>> 16;
    mid = a0 * 0x1331 + a1 * 0x11eb;
    low = a0 * 0x11eb + (mid & 0xffff) * 65536;
    lo = low >>> 0;
    h = (a1 * 0x1331 + Math.floor(mid / 65536) + (low - lo) / 4294967296 +
         Math.imul(h, 0x133111eb) + Math.imul(l, 0x94d049bb)) >>> 0;
    l = lo;
    outLo[v] = (l ^ ((l >>> 31) | (h << 1))) >>> 0;
    outHi[v] = (h ^ (h >>> 31)) >>> 0;
  }
}

/** Reference score in BigInt (SPEC §5.3 literally), for tests. */
function scoreBigInt(slotKey, vhash) {
  let z = (vhash ^ slotKey) & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

function slotKeyHalves(slot) {
  // (slot * golden) mod 2^64 with slot < 2^20.
  mul64(0, slot, 0x9e3779b9, 0x7f4a7c15);
}

// ---------------------------------------------------------------- the ring (SPEC §2-§6)

const NSLOTS = 1 << 20;
const SLOT_SHIFT = 44n;
const MAX_VNODES = 10000;
const MAX_WEIGHT = 1000;
const SLOT_CACHE_MAX = 1 << 16;

class FingerprintMismatch extends Error {
  constructor(message) {
    super(message);
    this.name = 'FingerprintMismatch';
  }
}

/** memcmp over the common bytes, then the shorter first (SPEC §2). */
function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

function concatBytes(parts) {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function u32le(v) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

function lp(bytes) {
  return concatBytes([u32le(bytes.length), bytes]);
}

/** Hashes "<id>#<i>" for i = 0 .. count-1 into hi/lo arrays from position at. */
function hashNames(idBytes, count, hi, lo, at) {
  const buf = new Uint8Array(idBytes.length + 11);
  buf.set(idBytes, 0);
  buf[idBytes.length] = 0x23; // '#'
  const start = idBytes.length + 1;
  for (let i = 0; i < count; i++) {
    const digits = String(i);
    for (let j = 0; j < digits.length; j++) buf[start + j] = digits.charCodeAt(j);
    const h = xxh3_64(buf.subarray(0, start + digits.length));
    hi[at + i] = Number(h >> 32n);
    lo[at + i] = Number(h & M32);
  }
}

/**
 * wsring's ring over a member set.
 *
 * members: iterable of {id, address, weight} (weight defaults to 1) or [id, address, weight?];
 * ids and addresses are strings (UTF-8) or Uint8Arrays; order does not matter.
 * options.algo: 'ring' (default) or 'rendezvous'; options.vnodes: points per unit of weight
 * for 'ring' (1..10000, default 1000), ignored by 'rendezvous' as in wsring.
 * Owners are returned as the id values that were passed in. A Ring is immutable.
 */
class Ring {
  constructor(members, options = {}) {
    const algo = options.algo === undefined ? 'ring' : options.algo;
    const vnodes = options.vnodes === undefined ? 1000 : options.vnodes;
    if (algo !== 'ring' && algo !== 'rendezvous') {
      throw new RangeError(`algo must be 'ring' or 'rendezvous', not ${JSON.stringify(algo)}`);
    }
    if (algo === 'ring' && !(Number.isInteger(vnodes) && vnodes >= 1 && vnodes <= MAX_VNODES)) {
      throw new RangeError(`vnodes must be an integer 1..${MAX_VNODES}`);
    }
    this.algo = algo;
    this.vnodes = vnodes;
    const parsed = [];
    for (const m of members) {
      let id, address, weight;
      if (Array.isArray(m)) {
        if (m.length !== 2 && m.length !== 3) throw new RangeError('a member is [id, address] or [id, address, weight]');
        [id, address, weight] = m;
      } else {
        ({ id, address, weight } = m);
      }
      if (weight === undefined) weight = 1;
      const idBytes = toBytes(id, 'member id');
      const addressBytes = toBytes(address, 'member address');
      if (idBytes.length === 0 || addressBytes.length === 0) throw new RangeError('member id and address must be non-empty');
      if (idBytes.includes(0) || addressBytes.includes(0)) throw new RangeError('member id and address cannot contain NUL bytes');
      if (!(Number.isInteger(weight) && weight >= 1 && weight <= MAX_WEIGHT)) {
        throw new RangeError(`member ${String(id)}: weight must be an integer 1..${MAX_WEIGHT}`);
      }
      parsed.push({ idBytes, addressBytes, member: Object.freeze({ id, address, weight }) });
    }
    parsed.sort((a, b) => compareBytes(a.idBytes, b.idBytes));
    for (let i = 1; i < parsed.length; i++) {
      if (compareBytes(parsed[i - 1].idBytes, parsed[i].idBytes) === 0) {
        throw new RangeError(`duplicate member id ${String(parsed[i].member.id)}`);
      }
    }
    this._ids = parsed.map((p) => p.idBytes);
    this._addresses = parsed.map((p) => p.addressBytes);
    this._weights = parsed.map((p) => p.member.weight);
    this.members = Object.freeze(parsed.map((p) => p.member));
    this.tag = encoder.encode(algo === 'ring' ? `ring/v1;vnodes=${vnodes}` : `rendezvous/v1;slots=${NSLOTS}`);
    this._membershipFp = null;
    this._tableFp = null;
    this._slotOwner = null;
    this._slotCache = new Map();
    if (algo === 'ring') this._buildPoints();
    else this._buildVirtual();
  }

  /** SPEC §4: vnodes*w points per member at H(id#i), sorted by (hash, member index). */
  _buildPoints() {
    let total = 0;
    for (const w of this._weights) total += this.vnodes * w;
    const hi = new Uint32Array(total);
    const lo = new Uint32Array(total);
    const member = new Uint32Array(total);
    let at = 0;
    for (let m = 0; m < this._ids.length; m++) {
      const count = this.vnodes * this._weights[m];
      hashNames(this._ids[m], count, hi, lo, at);
      member.fill(m, at, at + count);
      at += count;
    }
    // Points were generated in member order, so the position breaks ties by member index.
    const order = new Uint32Array(total);
    for (let i = 0; i < total; i++) order[i] = i;
    order.sort((a, b) => hi[a] - hi[b] || lo[a] - lo[b] || a - b);
    this._hi = new Uint32Array(total);
    this._lo = new Uint32Array(total);
    this._pointMember = new Uint32Array(total);
    for (let i = 0; i < total; i++) {
      const j = order[i];
      this._hi[i] = hi[j];
      this._lo[i] = lo[j];
      this._pointMember[i] = member[j];
    }
  }

  /** SPEC §5.1: w virtual members per member at H(id#k), in member order. */
  _buildVirtual() {
    let total = 0;
    for (const w of this._weights) total += w;
    this._vHi = new Uint32Array(total);
    this._vLo = new Uint32Array(total);
    this._vMember = new Uint32Array(total);
    this._scoreHi = new Uint32Array(total); // scratch for scoreAll
    this._scoreLo = new Uint32Array(total);
    let at = 0;
    for (let m = 0; m < this._ids.length; m++) {
      hashNames(this._ids[m], this._weights[m], this._vHi, this._vLo, at);
      this._vMember.fill(m, at, at + this._weights[m]);
      at += this._weights[m];
    }
  }

  /** First point with hash >= hi:lo, wrapping to 0. */
  _findPoint(hHi, hLo) {
    const H = this._hi;
    const L = this._lo;
    let a = 0;
    let b = H.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (H[mid] < hHi || (H[mid] === hHi && L[mid] < hLo)) a = mid + 1;
      else b = mid;
    }
    return a === H.length ? 0 : a;
  }

  /** The slot's owner: highest score, the first (lowest member index) on ties. */
  _slotWinner(slot) {
    slotKeyHalves(slot);
    const SH = this._scoreHi;
    const SL = this._scoreLo;
    scoreAll(rHi, rLo, this._vHi, this._vLo, SH, SL);
    let bestHi = SH[0];
    let bestLo = SL[0];
    let winner = 0;
    for (let v = 1; v < SH.length; v++) {
      if (SH[v] > bestHi || (SH[v] === bestHi && SL[v] > bestLo)) {
        bestHi = SH[v];
        bestLo = SL[v];
        winner = v;
      }
    }
    return this._vMember[winner];
  }

  get size() {
    return this.members.length;
  }

  /** Index (in `members`) of the owner of key hash h (BigInt), or -1 if the ring is empty. */
  ownerIndexForHash(h) {
    if (this._ids.length === 0) return -1;
    if (this.algo === 'ring') {
      return this._pointMember[this._findPoint(Number(h >> 32n), Number(h & M32))];
    }
    const slot = Number(h >> SLOT_SHIFT);
    if (this._slotOwner !== null) return this._slotOwner[slot];
    let m = this._slotCache.get(slot);
    if (m === undefined) {
      if (this._slotCache.size >= SLOT_CACHE_MAX) this._slotCache.clear();
      m = this._slotWinner(slot);
      this._slotCache.set(slot, m);
    }
    return m;
  }

  /** The owner of key as a frozen {id, address, weight}, or null if the ring is empty. */
  ownerMember(key) {
    const m = this.ownerIndexForHash(keyHash(key));
    return m < 0 ? null : this.members[m];
  }

  /** The id of key's owner (as passed in), or null if the ring is empty. */
  owner(key) {
    const m = this.ownerIndexForHash(keyHash(key));
    return m < 0 ? null : this.members[m].id;
  }

  /** Up to n distinct member indexes for key hash h (BigInt), owner first (SPEC §4.5, §5.5). */
  successorIndexesForHash(h, n) {
    const count = this._ids.length;
    if (!(n > 0) || count === 0) return [];
    n = Math.min(n, count);
    if (this.algo === 'ring') {
      const npoints = this._hi.length;
      let i = this._findPoint(Number(h >> 32n), Number(h & M32));
      const out = [];
      const seen = new Uint8Array(count);
      for (let step = 0; step < npoints && out.length < n; step++) {
        const m = this._pointMember[i];
        if (!seen[m]) {
          seen[m] = 1;
          out.push(m);
        }
        i = i + 1 === npoints ? 0 : i + 1;
      }
      return out;
    }
    slotKeyHalves(Number(h >> SLOT_SHIFT));
    const SH = this._scoreHi;
    const SL = this._scoreLo;
    scoreAll(rHi, rLo, this._vHi, this._vLo, SH, SL);
    const bestHi = new Float64Array(count).fill(-1);
    const bestLo = new Float64Array(count);
    for (let v = 0; v < SH.length; v++) {
      const m = this._vMember[v];
      if (SH[v] > bestHi[m] || (SH[v] === bestHi[m] && SL[v] > bestLo[m])) {
        bestHi[m] = SH[v];
        bestLo[m] = SL[v];
      }
    }
    const order = Array.from({ length: count }, (_, m) => m);
    order.sort((a, b) => bestHi[b] - bestHi[a] || bestLo[b] - bestLo[a] || a - b);
    return order.slice(0, n);
  }

  /**
   * Up to n distinct member ids in preference order for key: the owner first, then where
   * the key moves as the ones before it leave (wsring's retry order).
   */
  successors(key, n) {
    return this.successorIndexesForHash(keyHash(key), n).map((m) => this.members[m].id);
  }

  /** H(LP(tag) || LP(id) || LP(address) || u32le(weight) ...) as 16 lowercase hex (SPEC §6). */
  membershipFingerprint() {
    if (this._membershipFp === null) {
      const parts = [lp(this.tag)];
      for (let m = 0; m < this._ids.length; m++) {
        parts.push(lp(this._ids[m]), lp(this._addresses[m]), u32le(this._weights[m]));
      }
      this._membershipFp = formatFingerprint(xxh3_64(concatBytes(parts)));
    }
    return this._membershipFp;
  }

  /**
   * H(LP(tag) || table) as 16 lowercase hex (SPEC §6): /ring's `fingerprint`, the value of
   * X-Wsring-Ring. For 'rendezvous' this builds the 2^20-slot table (buildTable()) first.
   */
  tableFingerprint() {
    if (this._tableFp === null) {
      const head = lp(this.tag);
      let table;
      if (this.algo === 'ring') {
        const n = this._hi.length;
        table = new Uint8Array(head.length + 12 * n);
        const view = new DataView(table.buffer);
        let off = head.length;
        for (let i = 0; i < n; i++, off += 12) {
          view.setUint32(off, this._lo[i], true);
          view.setUint32(off + 4, this._hi[i], true);
          view.setUint32(off + 8, this._pointMember[i], true);
        }
      } else if (this._ids.length > 0) {
        this.buildTable();
        table = new Uint8Array(head.length + 4 * NSLOTS);
        const view = new DataView(table.buffer);
        for (let s = 0, off = head.length; s < NSLOTS; s++, off += 4) view.setUint32(off, this._slotOwner[s], true);
      } else {
        table = new Uint8Array(head.length);
      }
      table.set(head, 0);
      this._tableFp = formatFingerprint(xxh3_64(table));
    }
    return this._tableFp;
  }

  /** 'rendezvous': scores all 2^20 slots now (4 MiB); lookups then read the table. */
  buildTable() {
    if (this.algo !== 'rendezvous' || this._slotOwner !== null || this._ids.length === 0) return;
    const owners = new Uint32Array(NSLOTS);
    if (this._ids.length > 1) {
      for (let s = 0; s < NSLOTS; s++) owners[s] = this._slotWinner(s);
    }
    this._slotOwner = owners;
  }

  /**
   * Builds the ring wsring's `GET /ring` describes (an object, or its JSON text).
   * options.check says which of the answer's fingerprints must be reproduced:
   *   'full'        `membership_fingerprint` and the table `fingerprint` (X-Wsring-Ring);
   *                 for 'rendezvous' that builds the 2^20-slot table (~20 ms per virtual member);
   *   'membership'  only `membership_fingerprint` (the table one if there is none);
   *   'auto'        (default) the same as 'full' here;
   *   'none'        nothing.
   * A mismatch throws FingerprintMismatch: this port and that wsring disagree (or the
   * answer was altered), so do not route with it.
   */
  static fromRingJson(obj, options = {}) {
    if (typeof obj === 'string') obj = JSON.parse(obj);
    let check = options.check === undefined ? 'auto' : options.check;
    if (!['auto', 'full', 'membership', 'none'].includes(check)) {
      throw new RangeError("check must be 'auto', 'full', 'membership' or 'none'");
    }
    const algo = obj.hash === undefined ? 'ring' : obj.hash;
    const ring = new Ring(obj.members || [], { algo, vnodes: obj.vnodes === undefined ? 1000 : obj.vnodes });
    if (check === 'auto') check = 'full';
    if (check === 'none') return ring;
    const wantMembership = obj.membership_fingerprint;
    if (wantMembership !== undefined && ring.membershipFingerprint() !== wantMembership) {
      throw new FingerprintMismatch(`membership fingerprint ${ring.membershipFingerprint()}, /ring says ${wantMembership}`);
    }
    const wantTable = obj.fingerprint;
    if (wantTable !== undefined && (check === 'full' || wantMembership === undefined)) {
      if (ring.tableFingerprint() !== wantTable) {
        throw new FingerprintMismatch(`table fingerprint ${ring.tableFingerprint()}, /ring says ${wantTable}`);
      }
    }
    return ring;
  }

  toString() {
    return `Ring(${this.members.length} members, ${this.algo}${this.algo === 'ring' ? `, vnodes=${this.vnodes}` : ''})`;
  }
}

module.exports = {
  Ring,
  FingerprintMismatch,
  xxh3_64,
  keyHash,
  formatFingerprint,
  selftest,
  NSLOTS,
  SLOT_SHIFT: 44,
  // For tests: the SPEC §5.3 score, literally, and the slot key.
  scoreBigInt,
  slotKey: (slot) => (BigInt(slot) * GOLDEN) & M64,
};

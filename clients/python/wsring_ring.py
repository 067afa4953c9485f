"""wsring_ring: a dependency-free Python port of wsring's ring lookup (ring/SPEC.md).

A backend uses it to compute a user's owner locally (DESIGN §10, the third way):
fetch wsring's ``GET /ring`` once, build ``Ring.from_ring_json(...)``, and call
``ring.owner(key)``; rebuild when the ring changes (``X-Wsring-Ring`` differs from
the ``fingerprint`` of the /ring answer it was built from). Python 3 standard
library only: XXH3-64 (seed 0,
default secret) is implemented here in pure Python for every input length.

The result is byte-identical to the C ring (ring/ring.c): same owners, same next
distinct members, same fingerprints. Changing anything here remaps users; the
contract is ring/SPEC.md, and clients/python/test_wsring_ring.py checks this file
against its vectors, against libxxhash and against the C ring.

Costs (CPython, one core): XXH3 of a short key ~1-2 us; a `ring` of 100 members x
1000 vnodes (100k points) builds in well under a second and answers a few hundred
thousand lookups per second. `rendezvous` builds nothing up front: a lookup scores
every virtual member for the key's slot (O(total weight) per lookup, slots cached),
and `table_fingerprint()` has to score all 2^20 slots (about half a second per
virtual member in pure Python, ~50 s for 100); it is computed only when asked for
and then also serves lookups.
"""

import bisect
import json
import struct
import sys
from array import array
from collections import namedtuple

__all__ = [
    "Ring",
    "Member",
    "FingerprintMismatch",
    "xxh3_64",
    "key_hash",
    "format_fingerprint",
    "selftest",
    "NSLOTS",
    "SLOT_SHIFT",
]

_M64 = 0xFFFFFFFFFFFFFFFF
_M32 = 0xFFFFFFFF

# ------------------------------------------------------------------ XXH3-64 (seed 0)

_P32_1 = 0x9E3779B1
_P32_2 = 0x85EBCA77
_P32_3 = 0xC2B2AE3D
_P64_1 = 0x9E3779B185EBCA87
_P64_2 = 0xC2B2AE3D27D4EB4F
_P64_3 = 0x165667B19E3779F9
_P64_4 = 0x85EBCA77C2B2AE63
_P64_5 = 0x27D4EB2F165667C5
_PMX1 = 0x165667919E3779F9
_PMX2 = 0x9FB21C651E98DF25

_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e"
)
assert len(_SECRET) == 192

# The secret read as u64le at every byte offset (the long path reads odd offsets).
_S64 = [int.from_bytes(_SECRET[o : o + 8], "little") for o in range(len(_SECRET) - 7)]
_S32 = [int.from_bytes(_SECRET[o : o + 4], "little") for o in range(len(_SECRET) - 3)]

_EMPTY = None  # filled in below, after the functions exist
_BITFLIP_1TO3 = _S32[0] ^ _S32[4]
_BITFLIP_4TO8 = _S64[8] ^ _S64[16]
_BITFLIP_9TO16_LO = _S64[24] ^ _S64[32]
_BITFLIP_9TO16_HI = _S64[40] ^ _S64[48]

_U64 = struct.Struct("<Q").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U64X2 = struct.Struct("<QQ").unpack_from
_U64X8 = struct.Struct("<8Q").unpack_from


def _xxh64_avalanche(h):
    h ^= h >> 33
    h = (h * _P64_2) & _M64
    h ^= h >> 29
    h = (h * _P64_3) & _M64
    return h ^ (h >> 32)


def _avalanche(h):
    h ^= h >> 37
    h = (h * _PMX1) & _M64
    return h ^ (h >> 32)


def _mix16(data, off, soff):
    lo, hi = _U64X2(data, off)
    p = (lo ^ _S64[soff]) * (hi ^ _S64[soff + 8])
    return (p & _M64) ^ (p >> 64)


def _hash_long(data, n):
    """XXH3_hashLong_64b with the default secret (n > 240): stripes of 64 bytes, 8 lanes."""
    a0, a1, a2, a3, a4, a5, a6, a7 = _P32_3, _P64_1, _P64_2, _P64_3, _P64_4, _P32_2, _P64_5, _P32_1
    keys = [_U64X8(_SECRET, 8 * s) for s in range(16)]
    # 16 stripes per block of 1024 bytes, then a scramble with the last 64 secret bytes.
    nb_blocks = (n - 1) // 1024
    last_stripes = ((n - 1) - 1024 * nb_blocks) // 64

    def stripes(off, count, a0, a1, a2, a3, a4, a5, a6, a7):
        for s in range(count):
            d0, d1, d2, d3, d4, d5, d6, d7 = _U64X8(data, off + 64 * s)
            k0, k1, k2, k3, k4, k5, k6, k7 = keys[s]
            k0 ^= d0
            k1 ^= d1
            k2 ^= d2
            k3 ^= d3
            k4 ^= d4
            k5 ^= d5
            k6 ^= d6
            k7 ^= d7
            a0 += d1 + (k0 & 0xFFFFFFFF) * (k0 >> 32)
            a1 += d0 + (k1 & 0xFFFFFFFF) * (k1 >> 32)
            a2 += d3 + (k2 & 0xFFFFFFFF) * (k2 >> 32)
            a3 += d2 + (k3 & 0xFFFFFFFF) * (k3 >> 32)
            a4 += d5 + (k4 & 0xFFFFFFFF) * (k4 >> 32)
            a5 += d4 + (k5 & 0xFFFFFFFF) * (k5 >> 32)
            a6 += d7 + (k6 & 0xFFFFFFFF) * (k6 >> 32)
            a7 += d6 + (k7 & 0xFFFFFFFF) * (k7 >> 32)
        return a0, a1, a2, a3, a4, a5, a6, a7

    m = _M64
    s0, s1, s2, s3, s4, s5, s6, s7 = _U64X8(_SECRET, 128)
    for b in range(nb_blocks):
        a0, a1, a2, a3, a4, a5, a6, a7 = stripes(1024 * b, 16, a0, a1, a2, a3, a4, a5, a6, a7)
        a0 &= m
        a1 &= m
        a2 &= m
        a3 &= m
        a4 &= m
        a5 &= m
        a6 &= m
        a7 &= m
        a0 = ((a0 ^ (a0 >> 47) ^ s0) * _P32_1) & m
        a1 = ((a1 ^ (a1 >> 47) ^ s1) * _P32_1) & m
        a2 = ((a2 ^ (a2 >> 47) ^ s2) * _P32_1) & m
        a3 = ((a3 ^ (a3 >> 47) ^ s3) * _P32_1) & m
        a4 = ((a4 ^ (a4 >> 47) ^ s4) * _P32_1) & m
        a5 = ((a5 ^ (a5 >> 47) ^ s5) * _P32_1) & m
        a6 = ((a6 ^ (a6 >> 47) ^ s6) * _P32_1) & m
        a7 = ((a7 ^ (a7 >> 47) ^ s7) * _P32_1) & m
    a0, a1, a2, a3, a4, a5, a6, a7 = stripes(1024 * nb_blocks, last_stripes, a0, a1, a2, a3, a4, a5, a6, a7)
    # The last stripe (the final 64 bytes, overlapping) with the secret at 192 - 64 - 7.
    d = _U64X8(data, n - 64)
    acc = [a0, a1, a2, a3, a4, a5, a6, a7]
    for i in range(8):
        k = d[i] ^ _S64[121 + 8 * i]
        acc[i ^ 1] += d[i]
        acc[i] += (k & 0xFFFFFFFF) * (k >> 32)
    # mergeAccs with the secret from offset 11.
    r = (n * _P64_1) & m
    for i in range(4):
        p = ((acc[2 * i] & m) ^ _S64[11 + 16 * i]) * ((acc[2 * i + 1] & m) ^ _S64[19 + 16 * i])
        r += (p & m) ^ (p >> 64)
    return _avalanche(r & m)


def xxh3_64(data):
    """XXH3_64bits(data) with seed 0 and the default secret, as an int (xxHash >= 0.8.0)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    n = len(data)
    if n <= 16:
        if n > 8:
            lo = _U64(data, 0)[0] ^ _BITFLIP_9TO16_LO
            hi = _U64(data, n - 8)[0] ^ _BITFLIP_9TO16_HI
            p = lo * hi
            swapped = int.from_bytes(lo.to_bytes(8, "little"), "big")
            acc = (n + swapped + hi + ((p & _M64) ^ (p >> 64))) & _M64
            acc ^= acc >> 37
            acc = (acc * _PMX1) & _M64
            return acc ^ (acc >> 32)
        if n >= 4:
            x = ((_U32(data, n - 4)[0] + (_U32(data, 0)[0] << 32)) ^ _BITFLIP_4TO8) & _M64
            # rrmxmx
            x ^= (((x << 49) | (x >> 15)) & _M64) ^ (((x << 24) | (x >> 40)) & _M64)
            x = (x * _PMX2) & _M64
            x ^= (x >> 35) + n
            x = (x * _PMX2) & _M64
            return x ^ (x >> 28)
        if n:
            combined = (data[0] << 16) | (data[n >> 1] << 24) | data[n - 1] | (n << 8)
            return _xxh64_avalanche(combined ^ _BITFLIP_1TO3)
        return _xxh64_avalanche(_S64[56] ^ _S64[64])
    if n <= 128:
        acc = n * _P64_1
        if n > 32:
            if n > 64:
                if n > 96:
                    acc += _mix16(data, 48, 96) + _mix16(data, n - 64, 112)
                acc += _mix16(data, 32, 64) + _mix16(data, n - 48, 80)
            acc += _mix16(data, 16, 32) + _mix16(data, n - 32, 48)
        acc += _mix16(data, 0, 0) + _mix16(data, n - 16, 16)
        return _avalanche(acc & _M64)
    if n <= 240:
        acc = n * _P64_1
        for i in range(8):
            acc += _mix16(data, 16 * i, 16 * i)
        acc = _avalanche(acc & _M64)
        for i in range(8, n // 16):
            acc += _mix16(data, 16 * i, 16 * (i - 8) + 3)
        acc += _mix16(data, n - 16, 136 - 17)
        return _avalanche(acc & _M64)
    return _hash_long(data, n)


def format_fingerprint(value):
    """A 64-bit value as wsring shows fingerprints: 16 lowercase hex digits."""
    return "%016x" % value


def selftest():
    """SPEC §1: XXH3_64bits("") must be 0x2d06800538d394c2, or nothing here may be used."""
    return xxh3_64(b"") == 0x2D06800538D394C2


if not selftest():  # pragma: no cover - a broken port must refuse to run
    raise ImportError("wsring_ring: XXH3 self-test failed (SPEC §1); refusing to compute owners")

# ------------------------------------------------------------------ the ring (SPEC §2-§6)

NSLOTS = 1 << 20  # SPEC §5: rendezvous slots
SLOT_SHIFT = 44  # slot = key hash >> 44
MAX_VNODES = 10000
MAX_WEIGHT = 1000
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_SLOT_CACHE_MAX = 1 << 16

Member = namedtuple("Member", "id address weight")
Member.__doc__ = "A ring member as given (id and address as passed in: str or bytes)."


class FingerprintMismatch(ValueError):
    """A /ring answer whose fingerprint this port does not reproduce: do not route with it."""


def _as_bytes(value, what):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("%s must be str or bytes, not %s" % (what, type(value).__name__))


def key_hash(key):
    """The key hash wsring uses (SPEC §1): XXH3_64bits over the key's bytes (str is UTF-8)."""
    return xxh3_64(_as_bytes(key, "key"))


def _lp(b):
    return struct.pack("<I", len(b)) + b


def _score(slot_key, vhash):
    """SPEC §5.3: the splitmix64 finalizer of vhash ^ (slot * golden)."""
    z = vhash ^ slot_key
    z = ((z ^ (z >> 30)) * _MIX1) & _M64
    z = ((z ^ (z >> 27)) * _MIX2) & _M64
    return z ^ (z >> 31)


class Ring:
    """wsring's ring over a member set: `owner(key)`, `successors(key, n)`, fingerprints.

    members: iterable of dicts {"id", "address", "weight"} (weight defaults to 1) or
    tuples (id, address[, weight]); ids and addresses are str (UTF-8) or bytes. Order does
    not matter. algo: "ring" (default) or "rendezvous". vnodes: points per unit of weight
    for "ring" (1..10000, default 1000); ignored by "rendezvous", as in wsring.
    Owners are returned as the id objects that were passed in. A Ring is immutable.
    """

    def __init__(self, members, algo="ring", vnodes=1000):
        if algo not in ("ring", "rendezvous"):
            raise ValueError("algo must be 'ring' or 'rendezvous', not %r" % (algo,))
        if algo == "ring":
            if isinstance(vnodes, bool) or not isinstance(vnodes, int) or not 1 <= vnodes <= MAX_VNODES:
                raise ValueError("vnodes must be an integer 1..%d" % MAX_VNODES)
        self.algo = algo
        self.vnodes = vnodes
        parsed = []
        seen = set()
        for m in members:
            if isinstance(m, dict):
                mid, addr, weight = m.get("id"), m.get("address"), m.get("weight", 1)
            else:
                m = tuple(m)
                if len(m) not in (2, 3):
                    raise ValueError("a member is (id, address) or (id, address, weight)")
                mid, addr, weight = m[0], m[1], (m[2] if len(m) == 3 else 1)
            bid, baddr = _as_bytes(mid, "member id"), _as_bytes(addr, "member address")
            if not bid or not baddr:
                raise ValueError("member id and address must be non-empty")
            if b"\0" in bid or b"\0" in baddr:
                raise ValueError("member id and address cannot contain NUL bytes")
            if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
                raise ValueError("member %r: weight must be an integer 1..%d" % (mid, MAX_WEIGHT))
            if bid in seen:
                raise ValueError("duplicate member id %r" % (mid,))
            seen.add(bid)
            parsed.append((bid, baddr, weight, Member(mid, addr, weight)))
        # SPEC §2: bytewise order (Python compares bytes exactly like memcmp-then-length).
        parsed.sort(key=lambda p: p[0])
        self._ids = [p[0] for p in parsed]
        self._addresses = [p[1] for p in parsed]
        self._weights = [p[2] for p in parsed]
        self.members = tuple(p[3] for p in parsed)
        if algo == "ring":
            self.tag = ("ring/v1;vnodes=%d" % vnodes).encode()
        else:
            self.tag = ("rendezvous/v1;slots=%d" % NSLOTS).encode()
        self._membership_fp = None
        self._table_fp = None
        self._slot_owner = None  # rendezvous: the full table, once table_fingerprint() built it
        self._slot_cache = {}
        if algo == "ring":
            self._build_points()
        else:
            self._build_virtual()

    # -------------------------------------------------------------- building

    def _build_points(self):
        """SPEC §4: vnodes*w points per member at H(id#i), sorted by (hash, member index)."""
        h = xxh3_64
        points = []
        for m, (bid, w) in enumerate(zip(self._ids, self._weights)):
            prefix = bid + b"#"
            points.extend([(h(prefix + b"%d" % i), m) for i in range(self.vnodes * w)])
        points.sort()
        self._hashes = [p[0] for p in points]
        self._point_member = [p[1] for p in points]

    def _build_virtual(self):
        """SPEC §5.1: w virtual members per member at H(id#k), in member order."""
        self._vhash = []
        self._vmember = []
        for m, (bid, w) in enumerate(zip(self._ids, self._weights)):
            prefix = bid + b"#"
            for k in range(w):
                self._vhash.append(xxh3_64(prefix + b"%d" % k))
                self._vmember.append(m)

    def _slot_winner(self, slot):
        """Index of the slot's owner: highest score, the first (lowest member index) on ties."""
        z0 = (slot * _GOLDEN) & _M64
        m64, c1, c2 = _M64, _MIX1, _MIX2
        best = -1
        winner = 0
        v = 0
        for vh in self._vhash:
            z = vh ^ z0
            z = ((z ^ (z >> 30)) * c1) & m64
            z = ((z ^ (z >> 27)) * c2) & m64
            z ^= z >> 31
            if z > best:
                best = z
                winner = v
            v += 1
        return self._vmember[winner]

    # -------------------------------------------------------------- lookups

    def __len__(self):
        return len(self.members)

    def owner_index_for_hash(self, h):
        """Index (in `members`) of the owner of key hash h, or None if the ring is empty."""
        if not self._ids:
            return None
        if self.algo == "ring":
            i = bisect.bisect_left(self._hashes, h)
            return self._point_member[i if i < len(self._hashes) else 0]
        slot = h >> SLOT_SHIFT
        if self._slot_owner is not None:
            return self._slot_owner[slot]
        cache = self._slot_cache
        m = cache.get(slot)
        if m is None:
            if len(cache) >= _SLOT_CACHE_MAX:
                cache.clear()
            m = cache[slot] = self._slot_winner(slot)
        return m

    def owner_member(self, key):
        """The owner of key as a Member (id, address, weight), or None if the ring is empty."""
        m = self.owner_index_for_hash(key_hash(key))
        return None if m is None else self.members[m]

    def owner(self, key):
        """The id of key's owner (as passed in), or None if the ring is empty."""
        m = self.owner_index_for_hash(key_hash(key))
        return None if m is None else self.members[m].id

    def successor_indexes_for_hash(self, h, n):
        """Up to n distinct member indexes for key hash h, owner first (SPEC §4.5, §5.5)."""
        count = len(self._ids)
        if n <= 0 or count == 0:
            return []
        n = min(n, count)
        if self.algo == "ring":
            hashes, pm = self._hashes, self._point_member
            npoints = len(hashes)
            i = bisect.bisect_left(hashes, h)
            out = []
            seen = set()
            for step in range(npoints):
                m = pm[(i + step) % npoints]
                if m not in seen:
                    seen.add(m)
                    out.append(m)
                    if len(out) == n:
                        break
            return out
        slot_key = ((h >> SLOT_SHIFT) * _GOLDEN) & _M64
        best = [-1] * count
        for vh, m in zip(self._vhash, self._vmember):
            s = _score(slot_key, vh)
            if s > best[m]:
                best[m] = s
        order = sorted(range(count), key=lambda m: (-best[m], m))
        return order[:n]

    def successors(self, key, n):
        """Up to n distinct member ids in preference order for key: the owner first, then
        where the key moves as the ones before leave (wsring's retry order)."""
        return [self.members[m].id for m in self.successor_indexes_for_hash(key_hash(key), n)]

    # -------------------------------------------------------------- fingerprints (SPEC §6)

    def membership_fingerprint(self):
        """H(LP(tag) || LP(id) || LP(address) || u32le(weight) ...) as 16 lowercase hex."""
        if self._membership_fp is None:
            parts = [_lp(self.tag)]
            for bid, baddr, w in zip(self._ids, self._addresses, self._weights):
                parts.append(_lp(bid) + _lp(baddr) + struct.pack("<I", w))
            self._membership_fp = format_fingerprint(xxh3_64(b"".join(parts)))
        return self._membership_fp

    def table_fingerprint(self):
        """H(LP(tag) || table) as 16 lowercase hex: the value of /ring's `fingerprint` and of
        X-Wsring-Ring. Cheap for `ring`; for `rendezvous` it builds the 2^20-slot table
        (slow in pure Python: roughly a second or more per virtual member), kept afterwards
        so that lookups become table reads."""
        if self._table_fp is None:
            if self.algo == "ring":
                table = bytearray(12 * len(self._hashes))
                pack = struct.Struct("<QI").pack_into
                off = 0
                for h, m in zip(self._hashes, self._point_member):
                    pack(table, off, h, m)
                    off += 12
            elif self._ids:
                self.build_table()
                owners = array("I", self._slot_owner)
                if sys.byteorder != "little":
                    owners.byteswap()
                table = owners.tobytes()
            else:
                table = b""
            self._table_fp = format_fingerprint(xxh3_64(_lp(self.tag) + bytes(table)))
        return self._table_fp

    def build_table(self):
        """rendezvous: score all 2^20 slots now (slow in pure Python), then lookups are O(1)."""
        if self.algo != "rendezvous" or self._slot_owner is not None or not self._ids:
            return
        vh = self._vhash
        vm = self._vmember
        m64, c1, c2, golden = _M64, _MIX1, _MIX2, _GOLDEN
        owners = array("I", bytes(4 * NSLOTS))
        if len(self._ids) == 1:
            self._slot_owner = owners
            return
        for slot in range(NSLOTS):
            z0 = (slot * golden) & m64
            best = -1
            winner = 0
            v = 0
            for h in vh:
                z = h ^ z0
                z = ((z ^ (z >> 30)) * c1) & m64
                z = ((z ^ (z >> 27)) * c2) & m64
                z ^= z >> 31
                if z > best:
                    best = z
                    winner = v
                v += 1
            owners[slot] = vm[winner]
        self._slot_owner = owners

    # -------------------------------------------------------------- /ring

    @classmethod
    def from_ring_json(cls, obj, check="auto"):
        """Builds the ring wsring's `GET /ring` describes (a dict, or its JSON text/bytes).

        check says which of the answer's fingerprints must be reproduced:
          "full"        `membership_fingerprint` and the table `fingerprint` (X-Wsring-Ring);
          "membership"  only `membership_fingerprint` (the table one if there is none);
          "auto"        (default) "full" for `ring`, "membership" for `rendezvous`, whose
                        table takes about half a second per virtual member in pure Python;
          "none"        nothing.
        A mismatch raises FingerprintMismatch: this port and that wsring disagree (or the
        answer was altered), so do not route with it.
        """
        if isinstance(obj, (str, bytes, bytearray)):
            obj = json.loads(obj)
        if check not in ("auto", "full", "membership", "none"):
            raise ValueError("check must be 'auto', 'full', 'membership' or 'none'")
        algo = obj.get("hash", "ring")
        ring = cls(obj.get("members", []), algo=algo, vnodes=obj.get("vnodes", 1000))
        if check == "auto":
            check = "full" if algo == "ring" else "membership"
        if check == "none":
            return ring
        want_membership = obj.get("membership_fingerprint")
        want_table = obj.get("fingerprint")
        if want_membership is not None and ring.membership_fingerprint() != want_membership:
            raise FingerprintMismatch(
                "membership fingerprint %s, /ring says %s" % (ring.membership_fingerprint(), want_membership)
            )
        if want_table is not None and (check == "full" or want_membership is None):
            if ring.table_fingerprint() != want_table:
                raise FingerprintMismatch(
                    "table fingerprint %s, /ring says %s" % (ring.table_fingerprint(), want_table)
                )
        return ring

    def __repr__(self):
        return "Ring(%d members, algo=%r%s)" % (
            len(self.members),
            self.algo,
            ", vnodes=%d" % self.vnodes if self.algo == "ring" else "",
        )

"""Tests of clients/python/wsring_ring.py against ring/SPEC.md and the C ring.

Run: /usr/bin/python3 -m pytest -q clients/python

- The SPEC §7 vectors (and the worked values of §4-§6) are parsed from ring/SPEC.md at
  test time, so they stay in sync with the contract; the parser insists on finding all
  three vector sets with twenty keys each.
- XXH3 is compared with libxxhash (ctypes) for every length 0..1000 and longer inputs.
- Owners, next distinct members and fingerprints are compared with the C ring on 100,000
  keys for 1, 10 and 100 weighted members, both algorithms, through
  clients/test_support/ring_oracle.c compiled at test time against ring/*.c.
"""

import ctypes
import ctypes.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import wsring_ring  # noqa: E402
from wsring_ring import FingerprintMismatch, Ring, key_hash, xxh3_64  # noqa: E402

SPEC = REPO / "ring" / "SPEC.md"
ORACLE_SRC = REPO / "clients" / "test_support" / "ring_oracle.c"
NKEYS = 100_000

# ------------------------------------------------------------------ SPEC.md parsing


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _unquote(cell):
    if cell.startswith('`""`'):
        return ""
    m = re.fullmatch(r"`([^`]*)`(?:\s.*)?", cell)
    return m.group(1) if m else cell


def parse_spec_vectors(text=None):
    """The §7 vectors: [{name, members, fp: {(kind, algo): hex}, keys: [(key, hash, slot, ring, rdv)]}]."""
    text = SPEC.read_text(encoding="utf-8") if text is None else text
    parts = re.split(r"^### 7\.\d+ `([^`]+)`.*$", text, flags=re.M)
    vectors = []
    for name, body in zip(parts[1::2], parts[2::2]):
        body = body.split("\n## ", 1)[0]
        tables = []
        current = None
        for line in body.splitlines():
            if line.startswith("|"):
                if current is None:
                    current = []
                    tables.append(current)
                if not re.fullmatch(r"\|[\s\-|:]+\|?", line.strip()):
                    current.append(_cells(line))
            else:
                current = None
        vec = {"name": name, "members": [], "fp": {}, "keys": []}
        for table in tables:
            head = table[0]
            if head[:3] == ["id", "address", "weight"]:
                vec["members"] = [(_unquote(r[0]), _unquote(r[1]), int(r[2])) for r in table[1:]]
            elif head[0] == "fingerprint":
                for r in table[1:]:
                    vec["fp"][(r[0], "ring")] = _unquote(r[1])
                    vec["fp"][(r[0], "rendezvous")] = _unquote(r[2])
            elif head[0] == "key":
                for r in table[1:]:
                    vec["keys"].append((_unquote(r[0]), int(_unquote(r[1]), 16), int(r[2]), _unquote(r[3]), _unquote(r[4])))
        vectors.append(vec)
    return vectors


VECTORS = parse_spec_vectors()


def test_spec_parsed_completely():
    assert [v["name"] for v in VECTORS] == ["three", "weighted", "bytewise"]
    for v in VECTORS:
        assert len(v["keys"]) == 20, v["name"]
        assert len(v["fp"]) == 4, v["name"]
        assert v["members"], v["name"]
    assert VECTORS[2]["members"][0][0] == "ab"  # §7.3 keeps its discovery order
    assert VECTORS[0]["keys"][19][0] == "été"


@pytest.mark.parametrize("vec", VECTORS, ids=lambda v: v["name"])
@pytest.mark.parametrize("algo", ["ring", "rendezvous"])
def test_spec_vector(vec, algo):
    ring = Ring(vec["members"], algo=algo)
    assert ring.membership_fingerprint() == vec["fp"][("membership", algo)]
    for key, h, slot, ring_owner, rdv_owner in vec["keys"]:
        assert key_hash(key) == h, key
        assert h >> 44 == slot
        assert ring.owner(key) == (ring_owner if algo == "ring" else rdv_owner), key
        assert ring.owner(key.encode()) == ring.owner(key)
    # The rendezvous table fingerprint scores all 2^20 slots: ~0.5 s per virtual member here.
    assert ring.table_fingerprint() == vec["fp"][("table", algo)]
    # After the table is built, lookups read it: same answers.
    for key, _h, _s, ring_owner, rdv_owner in vec["keys"]:
        assert ring.owner(key) == (ring_owner if algo == "ring" else rdv_owner), key


def test_spec_worked_values():
    text = SPEC.read_text(encoding="utf-8")
    worked = re.findall(r'`H\("([^"]*)"\) = ([0-9a-f]{16})`', text)
    assert len(worked) >= 2
    for s, h in worked:
        assert xxh3_64(s.encode()) == int(h, 16)
    assert "0x2d06800538d394c2" in text and wsring_ring.selftest()
    empty = dict((tag, fp) for fp, tag in re.findall(r"`([0-9a-f]{16})`\s+for\s+`([^`]+)`", text))
    assert set(empty) == {"ring/v1;vnodes=1000", "rendezvous/v1;slots=1048576"}
    for algo, tag in (("ring", "ring/v1;vnodes=1000"), ("rendezvous", "rendezvous/v1;slots=1048576")):
        r = Ring([], algo=algo)
        assert r.membership_fingerprint() == r.table_fingerprint() == empty[tag]
        assert r.owner("alice") is None and r.successors("alice", 3) == []
    # §5: the alice scores for ws-a#0, ws-b#0, ws-c#0.
    rows = re.findall(r"\| `(ws-[abc]#0)` \| `([0-9a-f]{16})` \| `([0-9a-f]{16})`", text)
    assert len(rows) == 3
    slot_key = ((key_hash("alice") >> 44) * 0x9E3779B97F4A7C15) & (2**64 - 1)
    for name, vhash, score in rows:
        assert xxh3_64(name) == int(vhash, 16)
        assert wsring_ring._score(slot_key, int(vhash, 16)) == int(score, 16)


def test_bytewise_order_and_names():
    ring = Ring([("é-1", "x:1"), ("ab", "x:1"), ("a/b", "x:1"), ("Z", "x:1"), ("a", "x:1")])
    assert [m.id for m in ring.members] == ["Z", "a", "a/b", "ab", "é-1"]
    assert xxh3_64(b"ws-a#0") == 0x2E0A989E792EE486
    # bytes and str ids are the same member set.
    a = Ring([("ws-a", "h:1", 2), ("ws-b", "h:2", 1)])
    b = Ring([{"id": b"ws-b", "address": b"h:2"}, {"id": b"ws-a", "address": b"h:1", "weight": 2}])
    assert a.membership_fingerprint() == b.membership_fingerprint()
    assert a.table_fingerprint() == b.table_fingerprint()
    assert b.owner("alice") in (b"ws-a", b"ws-b")


def test_validation():
    with pytest.raises(ValueError):
        Ring([("a", "x:1"), ("a", "y:1")])
    with pytest.raises(ValueError):
        Ring([("a", "x:1", 0)])
    with pytest.raises(ValueError):
        Ring([("a", "x:1", 1001)])
    with pytest.raises(ValueError):
        Ring([("", "x:1")])
    with pytest.raises(ValueError):
        Ring([("a", "")])
    with pytest.raises(ValueError):
        Ring([("a", "x:1")], vnodes=0)
    with pytest.raises(ValueError):
        Ring([("a", "x:1")], algo="maglev")
    with pytest.raises(TypeError):
        Ring([("a", "x:1")]).owner(5)


# ------------------------------------------------------------------ XXH3 vs libxxhash


def _libxxhash():
    for name in ("libxxhash.so.0", ctypes.util.find_library("xxhash")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.XXH3_64bits.restype = ctypes.c_uint64
        lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        return lib
    return None


def test_xxh3_known_answer():
    assert xxh3_64(b"") == 0x2D06800538D394C2
    assert xxh3_64("") == 0x2D06800538D394C2


def test_xxh3_against_libxxhash():
    lib = _libxxhash()
    if lib is None:
        pytest.skip("libxxhash.so.0 not loadable (apt-get install libxxhash0)")
    rnd = random.Random(20240601)
    lengths = [n for n in range(0, 1001) for _ in range(4)]
    # Block boundaries of the long path (1024-byte blocks, 64-byte stripes) and big inputs.
    lengths += [1023, 1024, 1025, 1087, 1088, 1089, 2047, 2048, 2049, 3072, 4096, 4097, 65536, 100003, (4 << 20) + 12]
    checked = 0
    for n in lengths:
        data = rnd.randbytes(n)
        assert xxh3_64(data) == lib.XXH3_64bits(data, n), n
        checked += 1
    # Low-entropy inputs too (all zero, all 0xff) at every length class.
    for n in (0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 1025):
        for fill in (b"\0", b"\xff"):
            data = fill * n
            assert xxh3_64(data) == lib.XXH3_64bits(data, n), (n, fill)
    assert checked > 4000


# ------------------------------------------------------------------ against the C ring


@pytest.fixture(scope="module")
def oracle():
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler: cannot build the C ring oracle")
    if not Path("/usr/include/xxhash.h").exists() and not os.environ.get("CPATH"):
        pytest.skip("xxhash.h not found (apt-get install libxxhash-dev): cannot build the C ring oracle")
    tmp = tempfile.mkdtemp(prefix="wsring-oracle-")
    exe = os.path.join(tmp, "ring_oracle")
    sources = sorted(str(p) for p in (REPO / "ring").glob("*.c"))
    cmd = [cc, "-O2", "-std=c11", "-D_GNU_SOURCE", "-I", str(REPO), "-o", exe, str(ORACLE_SRC), *sources, "-lxxhash"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip("cannot compile the C ring oracle: %s" % proc.stderr.strip()[-400:])
    yield exe
    shutil.rmtree(tmp, ignore_errors=True)


def run_oracle(exe, members, algo, keys, vnodes=1000, nsucc=4):
    lines = ["ring %s %d %d" % (algo, vnodes, nsucc), str(len(members))]
    for mid, addr, w in members:
        lines.append("%s %s %d" % (mid.encode().hex(), addr.encode().hex(), w))
    lines.extend(k.hex() for k in keys)
    proc = subprocess.run([exe], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    out = proc.stdout.splitlines()
    membership, table = out[0].split()
    rows = []
    for line in out[1:]:
        h, owner, succ = line.split(" ")
        rows.append(
            (
                int(h, 16),
                None if owner == "-" else bytes.fromhex(owner).decode(),
                [] if succ == "-" else [bytes.fromhex(s).decode() for s in succ.split(",")],
            )
        )
    assert len(rows) == len(keys)
    return membership, table, rows


def make_keys(n, seed=7):
    """Realistic and hostile keys: ids, UUID-ish, unicode, binary, every short length, some long."""
    rnd = random.Random(seed)
    keys = [b"", b"alice", "été".encode()]
    while len(keys) < n:
        r = rnd.random()
        if r < 0.4:
            keys.append(b"user-%d" % rnd.randrange(10**9))
        elif r < 0.6:
            keys.append(rnd.randbytes(rnd.randrange(0, 48)))
        elif r < 0.8:
            keys.append(b"%032x" % rnd.getrandbits(128))
        elif r < 0.95:
            keys.append(("ü-%d-用户" % rnd.randrange(10**6)).encode())
        else:
            keys.append(rnd.randbytes(rnd.randrange(48, 400)))
    return keys[:n]


def make_members(n, seed):
    rnd = random.Random(seed)
    if n == 1:
        return [("solo", "10.0.0.1:9001", 3)]
    members = []
    for i in range(n):
        style = i % 4
        if style == 0:
            mid = "node-%d/ws-%d" % (i, rnd.randrange(1000))
        elif style == 1:
            mid = "ws-%02d" % i
        elif style == 2:
            mid = "é-%d" % i
        else:
            mid = "Z%x" % rnd.getrandbits(40)
        members.append((mid, "10.0.%d.%d:%d" % (i // 250, i % 250, 8000 + i), rnd.randint(1, 3 if n >= 100 else 5)))
    rnd.shuffle(members)
    return members


@pytest.fixture(scope="module")
def keys():
    return make_keys(NKEYS)


@pytest.mark.parametrize("algo", ["ring", "rendezvous"])
@pytest.mark.parametrize("nmembers", [1, 10, 100])
def test_agrees_with_c_ring(oracle, keys, nmembers, algo):
    members = make_members(nmembers, seed=nmembers)
    membership, table, rows = run_oracle(oracle, members, algo, keys)
    ring = Ring(members, algo=algo)
    assert ring.membership_fingerprint() == membership
    if algo == "ring" or nmembers == 1:
        assert ring.table_fingerprint() == table
    # (The rendezvous table fingerprint of 10+ members takes minutes in pure Python; the
    # SPEC vectors check it for 3 to 6 virtual members.)
    mismatches = 0
    for i, (key, (h, owner, succ)) in enumerate(zip(keys, rows)):
        kh = key_hash(key)
        assert kh == h, key
        m = ring.owner_index_for_hash(kh)
        if ring.members[m].id != owner:
            mismatches += 1
        if i < 3000:
            assert ring.successors(key, 4) == succ, key
    assert mismatches == 0, "%d of %d owners differ from the C ring" % (mismatches, len(keys))


def test_vnodes_other_than_default(oracle):
    members = make_members(10, seed=99)
    sample = make_keys(5000, seed=3)
    for vnodes in (1, 7, 160):
        membership, table, rows = run_oracle(oracle, members, "ring", sample, vnodes=vnodes, nsucc=10)
        ring = Ring(members, vnodes=vnodes)
        assert ring.membership_fingerprint() == membership
        assert ring.table_fingerprint() == table
        for key, (_h, owner, succ) in zip(sample, rows):
            assert ring.owner(key) == owner
            assert ring.successors(key, 10) == succ


# ------------------------------------------------------------------ /ring JSON


def ring_json(members, algo, membership, table, vnodes=1000):
    """Shaped like proxy/publisher.c's GET /ring answer."""
    return {
        "members": [{"id": i, "address": a, "weight": w} for i, a, w in sorted(members, key=lambda m: m[0].encode())],
        "fingerprint": table,
        "membership_fingerprint": membership,
        "hash": algo,
        "vnodes": vnodes,
        "source": "static",
        "last_update": 1795657576,
        "changes": 1,
    }


def test_from_ring_json(oracle):
    members = make_members(10, seed=5)
    for algo in ("ring", "rendezvous"):
        membership, table, rows = run_oracle(oracle, members, algo, [b"alice", b"bob"])
        obj = ring_json(members, algo, membership, table)
        ring = Ring.from_ring_json(obj)
        assert ring.owner("alice") == rows[0][1] and ring.owner("bob") == rows[1][1]
        assert Ring.from_ring_json(json.dumps(obj)).membership_fingerprint() == membership
        bad = dict(obj, membership_fingerprint="0000000000000000")
        with pytest.raises(FingerprintMismatch):
            Ring.from_ring_json(bad)
        Ring.from_ring_json(bad, check="none")
    # ring: the table fingerprint is checked too.
    membership, table, _ = run_oracle(oracle, members, "ring", [])
    with pytest.raises(FingerprintMismatch):
        Ring.from_ring_json(ring_json(members, "ring", membership, "0123456789abcdef"))
    # rendezvous without a membership fingerprint falls back to the (slow) table check.
    one = [("solo", "10.0.0.1:9001", 2)]
    membership, table, _ = run_oracle(oracle, one, "rendezvous", [])
    obj = ring_json(one, "rendezvous", membership, table)
    assert Ring.from_ring_json(obj, check="full").table_fingerprint() == table
    wrong_table = dict(obj, fingerprint="0123456789abcdef")
    Ring.from_ring_json(wrong_table)  # auto = membership only for rendezvous in Python
    with pytest.raises(FingerprintMismatch):
        Ring.from_ring_json(wrong_table, check="full")
    with pytest.raises(ValueError):
        Ring.from_ring_json(obj, check="bogus")
    del obj["membership_fingerprint"]
    assert Ring.from_ring_json(obj).table_fingerprint() == table
    obj["fingerprint"] = "0123456789abcdef"
    with pytest.raises(FingerprintMismatch):
        Ring.from_ring_json(obj)
    # The README's minimal shape (no membership fingerprint, `ring`).
    three = VECTORS[0]
    obj = {
        "members": [{"id": i, "address": a, "weight": w} for i, a, w in three["members"]],
        "hash": "ring",
        "vnodes": 1000,
        "fingerprint": three["fp"][("table", "ring")],
    }
    assert Ring.from_ring_json(obj).owner("alice") == "ws-c"

#!/usr/bin/env python3
"""An independent implementation of the reference design's placement functions (SEED.md:
HashBasedSharding, ConsistentHashSharding), writing the shard each key lands on for 4 shards
named shard-1..shard-4 (and for 3 shards, to catch a modulus mix-up). The Rust placement tests
compare against placement.tsv; regenerate with `python3 tests/golden/placement.py`."""
import bisect
import hashlib
import os


def h(text):
    return int(hashlib.md5(text.encode()).hexdigest(), 16)


def ring(names, vnodes=150):
    points = {}
    for name in names:
        for i in range(vnodes):
            points[h(f"{name}:{i}")] = name
    return points, sorted(points)


def on_ring(points, hashes, key):
    i = bisect.bisect_right(hashes, h(str(key)))
    return points[hashes[0 if i == len(hashes) else i]]


keys = [k for k in range(-50, 1000)] + [10**12 + k for k in range(50)] + [2**63 - 1, -(2**63)]
keys += [f"user-{i}" for i in range(300)] + ["", "alice", "Bob", "ключ", "名前", "a b"]
rows = []
for count in (4, 3):
    names = [f"shard-{i}" for i in range(1, count + 1)]
    points, hashes = ring(names)
    for key in keys:
        kind = "int" if isinstance(key, int) else "text"
        rows.append(
            f"{count}\t{kind}\t{key}\t{names[h(str(key)) % count]}\t{on_ring(points, hashes, key)}"
        )
with open(os.path.join(os.path.dirname(__file__), "placement.tsv"), "w") as out:
    out.write("# shards\tkind\tkey\thash\tconsistent_hash (150 virtual nodes)\n")
    out.write("\n".join(rows) + "\n")

"""The workload every client driver runs (see clients/README.md).

For each codec: N records, record i goes to partition i % 3, with
key "key-<codec>-<i>", value "value-<codec>-<i>:" + a compressible tail, and
headers codec=<codec>, partition=<p>. Each codec is produced (and flushed) by
its own producer, in CODECS order, so each partition holds its records in
exactly this order and its offsets run 0..count-1.
"""

import argparse
import sys
import time

PARTITIONS = 3
PER_CODEC = 30
ALL_CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def records(codec):
    """(partition, key, value, headers) for one codec, in produce order."""
    out = []
    for i in range(PER_CODEC):
        p = i % PARTITIONS
        key = f"key-{codec}-{i}".encode()
        value = (f"value-{codec}-{i}:" + "sluice-" * (i % 7 * 5)).encode()
        headers = [("codec", codec.encode()), ("partition", str(p).encode())]
        out.append((p, key, value, headers))
    return out


def auto_create_records():
    """(key, value) for the auto-create phase: the partitioner picks the
    partition, as the driver does not know the new topic's partition count."""
    return [(f"key-auto-{i}".encode(), f"value-auto-{i}".encode()) for i in range(PER_CODEC)]


def expected_by_partition(codecs):
    """partition -> list of (key, value, headers) in offset order."""
    exp = {p: [] for p in range(PARTITIONS)}
    for codec in codecs:
        for p, k, v, h in records(codec):
            exp[p].append((k, v, h))
    return exp


class Failure(Exception):
    pass


def check_partition(p, got, want):
    """got: list of (offset, key, value, headers); want: list of (key, value, headers)."""
    if len(got) != len(want):
        raise Failure(f"partition {p}: consumed {len(got)} records, expected {len(want)}")
    for idx, ((off, k, v, h), (wk, wv, wh)) in enumerate(zip(got, want)):
        if off != idx:
            raise Failure(f"partition {p}: record #{idx} has offset {off}, expected {idx}")
        if k != wk or v != wv:
            raise Failure(f"partition {p} offset {off}: got key={k!r} value={v!r}, expected key={wk!r} value={wv!r}")
        if list(h) != list(wh):
            raise Failure(f"partition {p} offset {off}: got headers {h!r}, expected {wh!r}")


def parse_args(name):
    ap = argparse.ArgumentParser(description=f"{name}: create/produce/consume/list-offsets/delete against a broker")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--phase", default="all", choices=["all", "produce", "produce-consume", "verify-only", "auto-create"],
                    help="produce: create and produce only; produce-consume: create, produce, consume, list offsets (topic kept); "
                         "verify-only: consume, list offsets, delete (after a restart); all: both; "
                         "auto-create: produce to the topic without creating it (the broker auto-creates it)")
    ap.add_argument("--codecs", default=",".join(ALL_CODECS))
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per wait")
    a = ap.parse_args()
    a.codecs = [c for c in a.codecs.split(",") if c]
    return a


def step(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(name, fn):
    """Runs fn(), turning any failure into a one-line FAIL message and exit 1."""
    try:
        fn()
    except Failure as e:
        print(f"FAIL {name}: {e}", flush=True)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - any client error is a failed check
        import traceback
        traceback.print_exc()
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    print(f"OK {name}", flush=True)

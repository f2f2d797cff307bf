#!/usr/bin/env python3
"""kafka-python against a multi-node cluster (the `cluster` scenario of
clients/README.md), in one process.

--bootstrap names ONE broker; --topic exists with --partitions partitions
(replication factor 3, min.insync.replicas=2, leaders spread over the
brokers). Every record is sent with acks=all and idempotence on (kafka-python
3.0.12 has an idempotent producer; set explicitly, a conflicting setting
raises instead of silently turning it off). Steps:
1. produce PER_PARTITION records to every partition, all acknowledged;
2. read everything back with assign (every acknowledged offset holds its value);
3. read everything back in group <topic>-group and commit; the committed
   offsets equal the end offsets;
4. print LOOP_STARTED, then one record per partition every 100 ms (retries,
   120 s delivery timeout) until --stop-file exists (the test kills a broker
   with SIGKILL and later restarts it meanwhile); failed sends are counted, not
   fatal;
5. one more record per partition that must be acknowledged (the client
   recovered), then every acknowledged record must be read back at its offset;
6. a new member of <topic>-group starts at the committed offsets.
Prints OK kafka-python acked=N failed=F or FAIL kafka-python: reason.
"""

import argparse
import os
import sys
import threading
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

NAME = "kafka-python"
PER_PARTITION = 20


class Failure(Exception):
    pass


def step(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Acks:
    """Acknowledged (partition, offset) -> value, and failures, from the
    producer's callbacks (its I/O thread)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}
        self.failed = []
        # Offsets acknowledged twice for different records: the first one
        # was lost (e.g. the broker lost its log).
        self.reused = []

    def send(self, producer, topic, p, value):
        fut = producer.send(topic, key=value, value=value, partition=p)

        def ok(md):
            with self.lock:
                old = self.acked.get((md.partition, md.offset))
                if old is not None and old != value:
                    self.reused.append((md.partition, md.offset, old, value))
                self.acked[(md.partition, md.offset)] = value

        def err(e):
            with self.lock:
                self.failed.append((p, value, repr(e)))

        fut.add_callback(ok)
        fut.add_errback(err)
        return fut


def wait_partitions(a, consumer):
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        parts = consumer.partitions_for_topic(a.topic)
        if parts is not None and len(parts) == a.partitions:
            return
        time.sleep(0.2)
    raise Failure(f"{a.topic} not visible with {a.partitions} partitions")


def read_all(a, expected, what):
    """Reads every partition from offset 0 up to its end offset (assign) and
    checks that every expected (partition, offset) holds its value."""
    consumer = KafkaConsumer(bootstrap_servers=a.bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(a.topic, p) for p in range(a.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        seen = {}
        deadline = time.time() + a.timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.time() > deadline:
                pos = {tp.partition: (consumer.position(tp), ends[tp]) for tp in tps}
                raise Failure(f"{what}: not at the end offsets after {a.timeout}s: {pos}")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    seen[(tp.partition, r.offset)] = r.value
        missing = [(k, v) for k, v in expected.items() if seen.get(k) != v]
        if missing:
            raise Failure(f"{what}: {len(missing)} acknowledged records not read back, e.g. {missing[:5]}")
        step(f"{what}: read {len(seen)} records, every acknowledged one at its offset")
        return ends
    finally:
        consumer.close()


def group_read(a, expected):
    group = f"{a.topic}-group"
    consumer = KafkaConsumer(
        a.topic,
        bootstrap_servers=a.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        seen = set()
        deadline = time.time() + a.timeout
        while not set(expected) <= seen:
            if time.time() > deadline:
                raise Failure(f"group {group}: read {len(seen)} of {len(expected)} records")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    if expected.get((tp.partition, r.offset)) == r.value:
                        seen.add((tp.partition, r.offset))
        consumer.commit()
        for p in range(a.partitions):
            tp = TopicPartition(a.topic, p)
            want = max(o for (q, o) in expected if q == p) + 1
            got = consumer.committed(tp)
            if got != want:
                raise Failure(f"group {group}: committed {got} on partition {p}, expected {want}")
        print(f"GROUP_READ {len(seen)}", flush=True)
    finally:
        consumer.close()


def group_resume(a):
    """A new member of <topic>-group starts on every partition exactly at the
    offset committed before its coordinator was killed (the group is now
    coordinated by another node)."""
    group = f"{a.topic}-group"
    consumer = KafkaConsumer(
        a.topic,
        bootstrap_servers=a.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        first = {}
        deadline = time.time() + a.timeout
        while len(first) < a.partitions:
            if time.time() > deadline:
                raise Failure(f"group {group} after the restart: first offsets {first}")
            for tp, records in consumer.poll(timeout_ms=500).items():
                if records:
                    first.setdefault(tp.partition, records[0].offset)
        wrong = {p: o for p, o in first.items() if o != PER_PARTITION}
        if wrong:
            raise Failure(f"group {group} resumed at {wrong}, not at the committed {PER_PARTITION}")
        print(f"GROUP_RESUMED {PER_PARTITION}", flush=True)
    finally:
        consumer.close()


def run(a):
    # acks=all and idempotent: an acknowledged record is on every in-sync
    # replica (at least 2), so it survives the SIGKILL of its leader, and
    # retries are not written twice.
    producer = KafkaProducer(
        bootstrap_servers=a.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        retry_backoff_ms=200,
        request_timeout_ms=10000,
        delivery_timeout_ms=120000,
        metadata_max_age_ms=5000,
    )
    acks = Acks()
    probe = KafkaConsumer(bootstrap_servers=a.bootstrap)
    wait_partitions(a, probe)
    probe.close()

    for p in range(a.partitions):
        for i in range(PER_PARTITION):
            acks.send(producer, a.topic, p, f"first-{p}-{i}".encode())
    producer.flush(timeout=a.timeout)
    if acks.failed or len(acks.acked) != a.partitions * PER_PARTITION:
        raise Failure(f"first batch: {len(acks.acked)} acknowledged, failures {acks.failed[:3]}")
    print(f"PRODUCED {len(acks.acked)}", flush=True)
    first = dict(acks.acked)
    read_all(a, first, "assign")
    group_read(a, first)

    print("LOOP_STARTED", flush=True)
    i = 0
    started = time.time()
    last_report = 0
    while not os.path.exists(a.stop_file):
        if time.time() - started > a.loop_limit:
            raise Failure(f"no stop file after {a.loop_limit}s")
        for p in range(a.partitions):
            acks.send(producer, a.topic, p, f"loop-{p}-{i}".encode())
        i += 1
        if time.time() - last_report >= 1:
            last_report = time.time()
            with acks.lock:
                print(f"ACKED {len(acks.acked)} FAILED {len(acks.failed)}", flush=True)
        time.sleep(0.1)
    step(f"stop file seen after {i} rounds")
    finals = [acks.send(producer, a.topic, p, f"final-{p}".encode()) for p in range(a.partitions)]
    producer.flush(timeout=150)
    for p, f in enumerate(finals):
        if not f.succeeded():
            raise Failure(f"final record to partition {p} not acknowledged: {f.exception!r}")
    producer.close()
    if acks.reused:
        raise Failure(f"{len(acks.reused)} offsets acknowledged for two records (the first lost), e.g. {acks.reused[:3]}")
    with acks.lock:
        acked, failed = dict(acks.acked), list(acks.failed)
    for p in range(a.partitions):
        n = sum(1 for (q, _) in acked if q == p)
        f = sum(1 for (q, _, _) in failed if q == p)
        print(f"PARTITION {p} acked={n} failed={f}", flush=True)
    if failed:
        step(f"{len(failed)} sends failed while a leader was down, e.g. {failed[0]}")
    read_all(a, acked, "after the restart")
    group_resume(a)
    print(f"OK {NAME} acked={len(acked)} failed={len(failed)}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--timeout", type=float, default=90)
    ap.add_argument("--loop-limit", type=float, default=400)
    a = ap.parse_args()
    try:
        run(a)
    except Exception as e:  # noqa: BLE001 - report any failure as the driver's verdict
        print(f"FAIL {NAME}: {e!r}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""kafka-python driver: see clients/README.md for the workload."""

import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402

import workload as w  # noqa: E402

NAME = "kafka-python"
_admin = None


def admin(a):
    global _admin
    if _admin is None:
        _admin = KafkaAdminClient(bootstrap_servers=a.bootstrap, client_id="sluice-driver", request_timeout_ms=30000)
    return _admin


def describe(a):
    """The topic's metadata dict, or None when the broker does not list it."""
    for t in admin(a).describe_topics([a.topic]):
        if t.get("name") == a.topic and t.get("error_code", 0) == 0:
            return t
    return None


def wait_topic(a, present):
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        if present:
            t = describe(a)
            if t is not None and len(t.get("partitions", [])) == w.PARTITIONS:
                return t
        elif a.topic not in admin(a).list_topics():
            return None
        time.sleep(0.2)
    raise w.Failure(f"topic {a.topic} {'not visible with 3 partitions' if present else 'still listed'} after {a.timeout}s")


def print_topic_id(a):
    t = wait_topic(a, True)
    tid = t.get("topic_id")
    if tid is None:
        raise w.Failure(f"metadata for {a.topic} has no topic_id: {t!r}")
    print(f"TOPIC_ID={tid}", flush=True)


def create(a):
    w.step(f"create topic {a.topic} with {w.PARTITIONS} partitions")
    admin(a).create_topics({a.topic: {"num_partitions": w.PARTITIONS, "replication_factor": 1}}, timeout_ms=30000)
    wait_topic(a, True)


def produce(a):
    for codec in a.codecs:
        w.step(f"produce {w.PER_CODEC} records with compression {codec}")
        p = KafkaProducer(
            bootstrap_servers=a.bootstrap,
            compression_type=None if codec == "none" else codec,
            enable_idempotence=False,
            max_in_flight_requests_per_connection=1,
            acks="all",
            linger_ms=20,
        )
        try:
            futs = [
                p.send(a.topic, value=v, key=k, partition=part, headers=[(hk, hv) for hk, hv in h])
                for part, k, v, h in w.records(codec)
            ]
            p.flush(timeout=a.timeout)
            for f in futs:
                f.get(timeout=a.timeout)
        finally:
            p.close(timeout=10)


def produce_auto_create(a):
    """Produces to a topic nobody created; every send must succeed."""
    w.step(f"produce {w.PER_CODEC} records to {a.topic}, which does not exist yet")
    p = KafkaProducer(bootstrap_servers=a.bootstrap, enable_idempotence=False, acks="all")
    try:
        futs = [p.send(a.topic, value=v, key=k) for k, v in w.auto_create_records()]
        p.flush(timeout=a.timeout)
        metas = [f.get(timeout=a.timeout) for f in futs]
    finally:
        p.close(timeout=10)
    print(f"DELIVERED={len(metas)}", flush=True)


def consume(a):
    want = w.expected_by_partition(a.codecs)
    w.step("consume every partition from the beginning")
    c = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="none", consumer_timeout_ms=1000)
    try:
        tps = [TopicPartition(a.topic, p) for p in range(w.PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = {p: [] for p in range(w.PARTITIONS)}
        total = sum(len(v) for v in want.values())
        deadline = time.time() + a.timeout
        while sum(len(v) for v in got.values()) < total and time.time() < deadline:
            for tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    got[tp.partition].append((m.offset, m.key, m.value, [(k, v) for k, v in m.headers]))
        for p in range(w.PARTITIONS):
            w.check_partition(p, got[p], want[p])

        w.step("list offsets (earliest, latest)")
        for name, offs in (("earliest", c.beginning_offsets(tps)), ("latest", c.end_offsets(tps))):
            for tp in tps:
                exp = 0 if name == "earliest" else len(want[tp.partition])
                if offs.get(tp) != exp:
                    raise w.Failure(f"{name} offset of partition {tp.partition}: {offs.get(tp)}, expected {exp}")
    finally:
        c.close()


def delete(a):
    w.step(f"delete topic {a.topic}")
    admin(a).delete_topics([a.topic], timeout_ms=30000)
    wait_topic(a, False)


def main():
    logging.basicConfig(level=logging.ERROR)
    a = w.parse_args(NAME)

    def go():
        try:
            if a.phase == "auto-create":
                produce_auto_create(a)
            if a.phase in ("all", "produce", "produce-consume"):
                create(a)
                print_topic_id(a)
                produce(a)
            if a.phase in ("all", "produce-consume"):
                consume(a)
            if a.phase in ("all", "verify-only"):
                print_topic_id(a)
                consume(a)
                delete(a)
        finally:
            if _admin is not None:
                _admin.close()

    w.run(NAME, go)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""confluent-kafka (librdkafka) driver: see clients/README.md for the workload."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from confluent_kafka import Consumer, KafkaException, Producer, TopicCollection, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # noqa: E402

import workload as w  # noqa: E402

NAME = "confluent-kafka"


_admin = None


def admin(a):
    """One AdminClient for the whole run (a dropped client cancels its futures)."""
    global _admin
    if _admin is None:
        _admin = AdminClient({"bootstrap.servers": a.bootstrap})
    return _admin


def wait_topic(a, present):
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        md = admin(a).list_topics(timeout=10)
        t = md.topics.get(a.topic)
        if present and t is not None and t.error is None and len(t.partitions) == w.PARTITIONS:
            return
        if not present and t is None:
            return
        time.sleep(0.2)
    raise w.Failure(f"topic {a.topic} {'not visible with 3 partitions' if present else 'still listed'} after {a.timeout}s")


def topic_id(a):
    futs = admin(a).describe_topics(TopicCollection([a.topic]), request_timeout=10)
    desc = futs[a.topic].result()
    if len(desc.partitions) != w.PARTITIONS:
        raise w.Failure(f"describe_topics: {len(desc.partitions)} partitions, expected {w.PARTITIONS}")
    return str(desc.topic_id)


def create(a):
    w.step(f"create topic {a.topic} with {w.PARTITIONS} partitions")
    fut = admin(a).create_topics([NewTopic(a.topic, w.PARTITIONS, 1)], request_timeout=30)[a.topic]
    fut.result()
    wait_topic(a, True)


def produce(a):
    for codec in a.codecs:
        w.step(f"produce {w.PER_CODEC} records with compression {codec}")
        p = Producer({
            "bootstrap.servers": a.bootstrap,
            "compression.type": codec,
            "enable.idempotence": False,
            "max.in.flight.requests.per.connection": 1,
            "acks": "all",
            "linger.ms": 20,
        })
        errors = []
        delivered = []

        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                delivered.append((msg.partition(), msg.offset()))

        for part, k, v, h in w.records(codec):
            p.produce(a.topic, value=v, key=k, partition=part, headers=h, on_delivery=cb)
        left = p.flush(a.timeout)
        if left:
            raise w.Failure(f"{codec}: {left} records not delivered within {a.timeout}s")
        if errors:
            raise w.Failure(f"{codec}: delivery errors: {errors[:3]}")
        if len(delivered) != w.PER_CODEC:
            raise w.Failure(f"{codec}: {len(delivered)} delivery reports, expected {w.PER_CODEC}")


def produce_auto_create(a):
    """Produces to a topic nobody created; every delivery must succeed."""
    w.step(f"produce {w.PER_CODEC} records to {a.topic}, which does not exist yet")
    p = Producer({"bootstrap.servers": a.bootstrap, "enable.idempotence": False, "acks": "all"})
    errors, delivered = [], []
    for k, v in w.auto_create_records():
        p.produce(a.topic, value=v, key=k,
                  on_delivery=lambda err, msg: errors.append(err) if err is not None else delivered.append(msg.offset()))
    left = p.flush(a.timeout)
    if left or errors or len(delivered) != w.PER_CODEC:
        raise w.Failure(f"{left} undelivered, {len(delivered)} delivered, errors {errors[:3]}")
    print(f"DELIVERED={len(delivered)}", flush=True)


def consume(a):
    want = w.expected_by_partition(a.codecs)
    w.step("consume every partition from the beginning")
    c = Consumer({
        "bootstrap.servers": a.bootstrap,
        "group.id": f"sluice-driver-{a.topic}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
    })
    try:
        c.assign([TopicPartition(a.topic, p, 0) for p in range(w.PARTITIONS)])
        got = {p: [] for p in range(w.PARTITIONS)}
        total = sum(len(v) for v in want.values())
        deadline = time.time() + a.timeout
        while sum(len(v) for v in got.values()) < total and time.time() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise w.Failure(f"consume error: {msg.error()}")
            got[msg.partition()].append((msg.offset(), msg.key(), msg.value(), msg.headers() or []))
        for p in range(w.PARTITIONS):
            w.check_partition(p, got[p], want[p])
    finally:
        c.close()
    list_offsets(a, want)


def list_offsets(a, want):
    w.step("list offsets (earliest, latest)")
    ad = admin(a)
    for spec, name in ((OffsetSpec.earliest(), "earliest"), (OffsetSpec.latest(), "latest")):
        req = {TopicPartition(a.topic, p): spec for p in range(w.PARTITIONS)}
        res = ad.list_offsets(req, request_timeout=10)
        for tp, fut in res.items():
            off = fut.result().offset
            exp = 0 if name == "earliest" else len(want[tp.partition])
            if off != exp:
                raise w.Failure(f"list_offsets {name} partition {tp.partition}: {off}, expected {exp}")


def delete(a):
    w.step(f"delete topic {a.topic}")
    admin(a).delete_topics([a.topic], request_timeout=30)[a.topic].result()
    wait_topic(a, False)


def main():
    a = w.parse_args(NAME)

    def go():
        if a.phase == "auto-create":
            produce_auto_create(a)
        if a.phase in ("all", "produce", "produce-consume"):
            create(a)
            print(f"TOPIC_ID={topic_id(a)}", flush=True)
            produce(a)
        if a.phase in ("all", "produce-consume"):
            consume(a)
        if a.phase in ("all", "verify-only"):
            print(f"TOPIC_ID={topic_id(a)}", flush=True)
            consume(a)
            delete(a)

    w.run(NAME, go)


if __name__ == "__main__":
    main()

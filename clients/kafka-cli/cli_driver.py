#!/usr/bin/env python3
"""Kafka CLI tools driver: see clients/README.md for the workload.

The console producer cannot choose partitions, so records go where Kafka's
default partitioner sends keyed records (murmur2 of the key); the expected
layout is computed with the same function, and the partition header carries
that partition.
"""

import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "python"))

import workload as w  # noqa: E402

NAME = "kafka-cli"
ROOT = os.path.abspath(os.path.join(here, "..", ".."))
LIB = os.path.join(ROOT, ".cache", "kafka", "lib")
# Class names as in Kafka 4.1.2's bin/kafka-*.sh.
TOPICS = "org.apache.kafka.tools.TopicCommand"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell"


def murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2 (32-bit, seed 0x9747b28c)."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = length & ~3
    rem = length % 4
    if rem == 3:
        h ^= data[tail + 2] << 16
    if rem >= 2:
        h ^= data[tail + 1] << 8
    if rem >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def partition_for(key: bytes) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % w.PARTITIONS


def records(codec):
    """(partition, key, value, headers) in produce order, partitioned like Kafka's producer."""
    out = []
    for _, k, v, _ in w.records(codec):
        p = partition_for(k)
        out.append((p, k, v, [("codec", codec.encode()), ("partition", str(p).encode())]))
    return out


def expected(codecs):
    exp = {p: [] for p in range(w.PARTITIONS)}
    for c in codecs:
        for p, k, v, h in records(c):
            exp[p].append((k, v, h))
    return exp


def tool(a, cls, *args, stdin=None):
    cmd = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1",
           f"-Dlog4j.configuration=file:{os.path.join(here, '..', 'java', 'log4j.properties')}",
           "-cp", os.path.join(LIB, "*"), cls, "--bootstrap-server", a.bootstrap, *args]
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, timeout=a.timeout + 30)
    except subprocess.TimeoutExpired:
        raise w.Failure(f"{cls.rsplit('.', 1)[-1]} {' '.join(args)} timed out")
    out = res.stdout.decode(errors="replace")
    if res.returncode != 0:
        raise w.Failure(f"{cls.rsplit('.', 1)[-1]} {' '.join(args)} exited {res.returncode}:\n"
                        f"{out}{res.stderr.decode(errors='replace')}")
    return out


def topic_line(a):
    out = tool(a, TOPICS, "--describe", "--topic", a.topic)
    for line in out.splitlines():
        if line.startswith(f"Topic: {a.topic}\t"):
            return dict(f.split(": ", 1) for f in line.split("\t") if ": " in f)
    raise w.Failure(f"kafka-topics --describe printed no topic line:\n{out}")


def print_topic_id(a):
    d = topic_line(a)
    if d.get("PartitionCount") != str(w.PARTITIONS):
        raise w.Failure(f"kafka-topics --describe: PartitionCount {d.get('PartitionCount')}, expected {w.PARTITIONS}")
    print(f"TOPIC_ID={d['TopicId']}", flush=True)


def produce(a):
    for codec in a.codecs:
        w.step(f"kafka-console-producer: {w.PER_CODEC} records with compression {codec}")
        lines = []
        for _, k, v, h in records(codec):
            hs = ",".join(f"{hk}:{hv.decode()}" for hk, hv in h)
            lines.append(f"{hs}\t{k.decode()}\t{v.decode()}\n")
        tool(a, PRODUCER, "--topic", a.topic, "--compression-codec", codec,
             "--property", "parse.key=true", "--property", "parse.headers=true",
             "--producer-property", "acks=all", "--producer-property", "enable.idempotence=false",
             "--producer-property", "linger.ms=50",
             stdin="".join(lines).encode())


def consume(a):
    want = expected(a.codecs)
    for p in range(w.PARTITIONS):
        if not want[p]:
            raise w.Failure(f"workload puts no record in partition {p}")
    w.step("kafka-console-consumer: every partition from the beginning")
    for p in range(w.PARTITIONS):
        out = tool(a, CONSUMER, "--topic", a.topic, "--partition", str(p), "--offset", "earliest",
                   "--max-messages", str(len(want[p])), "--timeout-ms", str(int(a.timeout * 1000)),
                   "--property", "print.offset=true", "--property", "print.key=true",
                   "--property", "print.headers=true", "--property", "print.partition=true")
        got = []
        for line in out.splitlines():
            if not line.startswith("Partition:"):
                continue
            fields = line.split("\t")
            if len(fields) != 5:
                raise w.Failure(f"unexpected console consumer line: {line!r}")
            part, off, hs, k, v = fields
            if part != f"Partition:{p}":
                raise w.Failure(f"asked for partition {p}, got {part}")
            headers = [(x.split(":", 1)[0], x.split(":", 1)[1].encode()) for x in hs.split(",")] if hs != "NO_HEADERS" else []
            got.append((int(off.split(":", 1)[1]), k.encode(), v.encode(), headers))
        w.check_partition(p, got, want[p])

    w.step("kafka-get-offsets: earliest (-2) and latest (-1)")
    for t, name in (("-2", "earliest"), ("-1", "latest")):
        out = tool(a, GET_OFFSETS, "--topic", a.topic, "--time", t)
        offs = {}
        for line in out.splitlines():
            parts = line.rsplit(":", 2)
            if len(parts) == 3 and parts[0] == a.topic:
                offs[int(parts[1])] = int(parts[2])
        for p in range(w.PARTITIONS):
            exp = 0 if name == "earliest" else len(want[p])
            if offs.get(p) != exp:
                raise w.Failure(f"{name} offset of partition {p}: {offs.get(p)}, expected {exp}\n{out}")


def topic_listed(a):
    return a.topic in tool(a, TOPICS, "--list").split()


def wait_listed(a, present):
    import time
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        if topic_listed(a) == present:
            return
        time.sleep(0.5)
    raise w.Failure(f"topic {a.topic} {'not listed' if present else 'still listed'} after {a.timeout}s")


def main():
    a = w.parse_args(NAME)
    if not os.path.exists(os.path.join(LIB, ".complete")):
        print(f"FAIL {NAME}: Kafka jars missing, run tools/kafka/fetch")
        sys.exit(1)

    def go():
        if a.phase in ("all", "produce-consume"):
            w.step(f"kafka-topics --create {a.topic} with {w.PARTITIONS} partitions")
            tool(a, TOPICS, "--create", "--topic", a.topic, "--partitions", str(w.PARTITIONS),
                 "--replication-factor", "1")
            wait_listed(a, True)
            print_topic_id(a)
            produce(a)
            consume(a)
        if a.phase in ("all", "verify-only"):
            print_topic_id(a)
            consume(a)
            w.step(f"kafka-topics --delete {a.topic}")
            tool(a, TOPICS, "--delete", "--topic", a.topic)
            wait_listed(a, False)

    w.run(NAME, go)


if __name__ == "__main__":
    main()

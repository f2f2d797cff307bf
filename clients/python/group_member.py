#!/usr/bin/env python3
"""One consumer-group member (confluent-kafka or kafka-python) for the group tests.

group_member.py --client confluent-kafka|kafka-python --bootstrap HOST:PORT --topic T

Subscribes to T in group "<T>-group" (auto.offset.reset=earliest, no
auto-commit) and, until stdin is closed, prints one line per event:

  ASSIGNED [0, 3]       its assignment after every change (JSON list)
  RECORD <p> <offset>   every record consumed
  COMMITTED <p> <next>  after a synchronous commit of the consumed positions

then leaves the group (close) and prints "OK <client>". See
crates/sluice/tests/group_clients.rs.
"""

import argparse
import json
import sys
import threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True, choices=["confluent-kafka", "kafka-python"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    a = ap.parse_args()
    group = a.topic + "-group"

    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    def out(line):
        print(line, flush=True)

    if a.client == "confluent-kafka":
        from confluent_kafka import Consumer

        c = Consumer({
            "bootstrap.servers": a.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
        })
        last = [None]

        def report(consumer, _parts):
            ps = sorted(tp.partition for tp in consumer.assignment())
            if ps != last[0]:
                last[0] = ps
                out("ASSIGNED " + json.dumps(ps))

        c.subscribe([a.topic], on_assign=report, on_revoke=lambda cons, parts: None)
        while not stop.is_set():
            msgs = c.consume(num_messages=100, timeout=0.2)
            report(c, None)
            done = {}
            for m in msgs:
                if m.error():
                    out(f"ERROR {m.error()}")
                    continue
                out(f"RECORD {m.partition()} {m.offset()}")
                done[m.partition()] = m.offset() + 1
            if done:
                c.commit(asynchronous=False)
                for p, nxt in sorted(done.items()):
                    out(f"COMMITTED {p} {nxt}")
        c.close()
    else:
        from kafka import KafkaConsumer

        c = KafkaConsumer(
            a.topic,
            bootstrap_servers=a.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=10000,
        )
        last = None
        while not stop.is_set():
            batches = c.poll(timeout_ms=200)
            ps = sorted(tp.partition for tp in c.assignment())
            if ps != last:
                last = ps
                out("ASSIGNED " + json.dumps(ps))
            done = {}
            for tp, recs in batches.items():
                for r in recs:
                    out(f"RECORD {tp.partition} {r.offset}")
                    done[tp.partition] = r.offset + 1
            if done:
                c.commit()
                for p, nxt in sorted(done.items()):
                    out(f"COMMITTED {p} {nxt}")
        c.close()
    out(f"OK {a.client}")


if __name__ == "__main__":
    main()

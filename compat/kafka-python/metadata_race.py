"""Forces kafka-python 3.0.12's metadata race: the consumer subscribes while its
bootstrap MetadataRequest(topics=[]) is in flight; the late response clears
_need_update, so the consumer never learns the topic's partitions (until
metadata.max.age.ms = 5 min). usage: race.py HOST:PORT [delay_s]"""
import sys, time, threading, uuid
from kafka import KafkaConsumer, KafkaProducer, KafkaAdminClient
from kafka.admin import NewTopic
import kafka.cluster as kc

addr = sys.argv[1]
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
topic = "race_" + uuid.uuid4().hex[:8]
with KafkaAdminClient(bootstrap_servers=addr) as a:
    a.create_topics([NewTopic(topic, 2, 1)])
time.sleep(1)
p = KafkaProducer(bootstrap_servers=addr)
for part in (0, 1):
    for i in range(100):
        p.send(topic, b"x%d" % i, partition=part)
p.flush(); p.close()

orig = kc.ClusterMetadata.metadata_request
def slow_request(self):
    # widen the window between building the bootstrap request (no topics yet)
    # and its response, as a busy machine does
    req = orig(self)
    if delay and not self._topics:
        time.sleep(delay)
    return req
kc.ClusterMetadata.metadata_request = slow_request
import kafka.consumer.subscription_state as ss
orig_sub = ss.SubscriptionState.subscribe
def slow_subscribe(self, *a, **kw):
    # a busy main thread reaches subscribe() after the IO thread built the
    # bootstrap MetadataRequest
    if delay:
        time.sleep(delay / 2)
    return orig_sub(self, *a, **kw)
ss.SubscriptionState.subscribe = slow_subscribe

c = KafkaConsumer(topic, bootstrap_servers=addr, auto_offset_reset="earliest", consumer_timeout_ms=10000, api_version=(4, 1))
n = {0: 0, 1: 0}
for m in c:
    n[m.partition] += 1
    if sum(n.values()) >= 200:
        break
print("delay", delay, "assignment", sorted(tp.partition for tp in c.assignment()), "counts", n)
c.close()

"""kafka-python 3.0.12's test_list_partition_offsets on several brokers, in a loop:
create a topic through one broker, then at once list_partition_offsets, which sends
ListOffsets to the partition's leader. A leader that has not applied the new topic
yet answers UNKNOWN_TOPIC_OR_PARTITION (Kafka's answer too: the topic is not in its
metadata), and kafka-python retries only NOT_LEADER_OR_FOLLOWER, so the call fails.
Whether it does depends on how long the new topic takes to reach the leader.
usage: list_offsets_race.py HOST:PORT [rounds]   (prints "N of M failed")"""
import random
import string
import sys

from kafka import KafkaAdminClient
from kafka.admin import NewTopic, OffsetSpec
from kafka.structs import TopicPartition

addr = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 30
admin = KafkaAdminClient(bootstrap_servers=addr)
failed = 0
for _ in range(rounds):
    topic = "race_" + "".join(random.choices(string.ascii_lowercase, k=10))
    admin.create_topics([NewTopic(topic, 4, 1)])  # as the test's topic fixture
    try:
        admin.list_partition_offsets({TopicPartition(topic, 0): OffsetSpec.LATEST})
    except Exception as e:  # noqa: BLE001 - the failure is what is counted
        failed += 1
        print(topic, type(e).__name__)
admin.close()
print(f"{failed} of {rounds} failed")

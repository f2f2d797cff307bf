import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Transactions through the Java client (kafka-clients 4.1.2), the same
 * against Sluice and Apache Kafka:
 *
 * 1. a transactional producer runs N transactions over 3 partitions, each
 *    with 10 records and the group's offset of partition 0 sent to the
 *    transaction (sendOffsetsToTransaction); every third one is aborted;
 * 2. a second producer with the same transactional.id fences the first:
 *    the first one's next commit fails with ProducerFencedException;
 * 3. a read_committed consumer reads exactly the committed records, in
 *    order per partition, and stops at the last stable offset; a
 *    read_uncommitted one reads every record, aborted ones included;
 * 4. the group's committed offset is the one of the last committed
 *    transaction; DescribeTransactions and ListTransactions see the id.
 *
 * It prints the producer epoch after step 1: with transaction version 2
 * (KIP-890, what Kafka 4.x clusters finalize) every end bumps it.
 *
 * Prints its steps and ends with "OK java-txn" or "FAIL java-txn: reason".
 */
public class TxnDriver {
    static void fail(String why) {
        System.out.println("FAIL java-txn: " + why);
        System.exit(1);
    }

    static void check(boolean ok, String why) {
        if (!ok) fail(why);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = null, topic = null, txnIdArg = null;
        int transactions = 12, partitions = 3;
        short replication = 1;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap": bootstrap = args[++i]; break;
                case "--topic": topic = args[++i]; break;
                case "--transactions": transactions = Integer.parseInt(args[++i]); break;
                case "--replication": replication = Short.parseShort(args[++i]); break;
                case "--txn-id": txnIdArg = args[++i]; break;
                default: fail("unknown argument " + args[i]);
            }
        }
        check(bootstrap != null && topic != null, "--bootstrap and --topic are required");
        String txnId = txnIdArg != null ? txnIdArg : "txn-driver-" + topic;
        String group = "txn-driver-group-" + topic;

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, replication))).all().get(60, TimeUnit.SECONDS);
            System.out.println("created " + topic);

            Properties pp = new Properties();
            pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
            pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");

            List<List<String>> committed = new ArrayList<>();
            List<List<String>> all = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                committed.add(new ArrayList<>());
                all.add(new ArrayList<>());
            }
            long lastCommittedOffset = -1;
            KafkaProducer<String, String> producer = new KafkaProducer<>(pp);
            producer.initTransactions();
            System.out.println("initTransactions");
            for (int t = 0; t < transactions; t++) {
                boolean abort = t % 3 == 2;
                producer.beginTransaction();
                for (int r = 0; r < 10; r++) {
                    int p = r % partitions;
                    String v = "t" + t + "-r" + r;
                    producer.send(new ProducerRecord<>(topic, p, "k" + r, v));
                    all.get(p).add(v);
                    if (!abort) committed.get(p).add(v);
                }
                Map<TopicPartition, OffsetAndMetadata> offsets =
                    Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(t + 1));
                producer.sendOffsetsToTransaction(offsets, new ConsumerGroupMetadata(group));
                if (abort) {
                    // Sent, so the log holds the aborted records too (an
                    // abort drops batches still in the producer).
                    producer.flush();
                    producer.abortTransaction();
                } else {
                    producer.commitTransaction();
                    lastCommittedOffset = t + 1;
                }
            }
            System.out.println("transactions " + transactions);
            // Transaction version 2 (KIP-890) bumps the epoch at every
            // commit and abort; version 1 keeps it.
            TransactionDescription afterRun = admin.describeTransactions(List.of(txnId))
                .description(txnId).get(60, TimeUnit.SECONDS);
            System.out.println("producer epoch after " + transactions + " transactions: "
                + afterRun.producerEpoch());

            // A second instance fences the first.
            try (KafkaProducer<String, String> second = new KafkaProducer<>(pp)) {
                second.initTransactions();
                producer.beginTransaction();
                producer.send(new ProducerRecord<>(topic, 0, "zombie", "zombie"));
                try {
                    producer.commitTransaction();
                    fail("the fenced producer committed");
                } catch (ProducerFencedException e) {
                    System.out.println("fenced: " + e.getClass().getSimpleName());
                } catch (org.apache.kafka.common.KafkaException e) {
                    check(e.getCause() instanceof ProducerFencedException
                            || e instanceof org.apache.kafka.common.errors.InvalidProducerEpochException,
                        "the zombie failed with " + e);
                    System.out.println("fenced: " + e.getClass().getSimpleName());
                }
                producer.close(Duration.ofSeconds(5));
                // One more committed transaction by the new instance.
                second.beginTransaction();
                second.send(new ProducerRecord<>(topic, 1, "k", "second")).get();
                second.commitTransaction();
                committed.get(1).add("second");
                all.get(1).add("second");
            }

            check(read(bootstrap, topic, partitions, "read_committed").equals(committed),
                "read_committed saw other records than the committed ones");
            System.out.println("read_committed ok");
            List<List<String>> uncommitted = read(bootstrap, topic, partitions, "read_uncommitted");
            for (int p = 0; p < partitions; p++) {
                List<String> seen = new ArrayList<>(uncommitted.get(p));
                seen.remove("zombie");
                check(seen.equals(all.get(p)), "read_uncommitted partition " + p + ": " + seen);
            }
            System.out.println("read_uncommitted ok");

            Map<TopicPartition, OffsetAndMetadata> got =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS);
            OffsetAndMetadata o = got.get(new TopicPartition(topic, 0));
            check(o != null && o.offset() == lastCommittedOffset,
                "group offset " + o + ", expected " + lastCommittedOffset);
            System.out.println("group offset " + o.offset());

            TransactionDescription d = admin.describeTransactions(List.of(txnId)).description(txnId).get(60, TimeUnit.SECONDS);
            check(d.state() == TransactionState.COMPLETE_COMMIT || d.state() == TransactionState.EMPTY,
                "described state " + d.state());
            boolean listed = admin.listTransactions().all().get(60, TimeUnit.SECONDS).stream()
                .anyMatch(l -> l.transactionalId().equals(txnId));
            check(listed, "not listed");
            System.out.println("described " + d.state() + ", listed");
        }
        System.out.println("OK java-txn");
    }

    /** Every record of every partition, read from the start up to the end offsets of `isolation`. */
    static List<List<String>> read(String bootstrap, String topic, int partitions, String isolation) {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        List<List<String>> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                tps.add(new TopicPartition(topic, p));
                out.add(new ArrayList<>());
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            long deadline = System.currentTimeMillis() + 60_000;
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) fail(isolation + ": not at the end offsets " + end);
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    out.get(r.partition()).add(r.value());
                }
            }
        }
        return out;
    }
}

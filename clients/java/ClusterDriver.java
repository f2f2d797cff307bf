// The Java client (kafka-clients 4.1.2) against a multi-node cluster: the
// `cluster` scenario of clients/README.md, the same steps as
// clients/python/cluster_driver.py. Run through cluster.sh.
// Args: --bootstrap HOST:PORT --topic T --stop-file F [--partitions N]

import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class ClusterDriver {
    static final String NAME = "java-client";
    static final int PER_PARTITION = 20;
    static String bootstrap, topic, stopFile;
    static int partitions = 6;
    static final long TIMEOUT_MS = 90_000, LOOP_LIMIT_MS = 400_000;

    static final class Failure extends Exception {
        Failure(String m) { super(m); }
    }

    static void step(String s) { System.out.println("[" + java.time.LocalTime.now().withNano(0) + "] " + s); }

    // Acknowledged "partition/offset" -> value, and failures.
    static final Map<String, String> acked = new HashMap<>();
    static final List<String> failed = new ArrayList<>();
    // Offsets acknowledged for two different records: the first was lost.
    static final List<String> reused = new ArrayList<>();

    static Future<RecordMetadata> send(Producer<String, String> p, int partition, String value) {
        return p.send(new ProducerRecord<>(topic, partition, value, value), (md, e) -> {
            synchronized (acked) {
                if (e == null) {
                    String old = acked.put(md.partition() + "/" + md.offset(), value);
                    if (old != null && !old.equals(value)) reused.add(md.partition() + "/" + md.offset() + ": " + old + " then " + value);
                }
                else failed.add(partition + " " + value + ": " + e);
            }
        });
    }

    static Map<String, String> snapshot() {
        synchronized (acked) { return new HashMap<>(acked); }
    }

    static Properties consumerProps(String group) {
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        c.put("enable.auto.commit", "false");
        c.put("auto.offset.reset", "earliest");
        if (group != null) c.put("group.id", group);
        return c;
    }

    static List<TopicPartition> tps() {
        List<TopicPartition> l = new ArrayList<>();
        for (int p = 0; p < partitions; p++) l.add(new TopicPartition(topic, p));
        return l;
    }

    static void readAll(Map<String, String> expected, String what) throws Failure {
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(null))) {
            c.assign(tps());
            c.seekToBeginning(tps());
            Map<TopicPartition, Long> ends = c.endOffsets(tps(), Duration.ofMillis(TIMEOUT_MS));
            Map<String, String> seen = new HashMap<>();
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps()) if (c.position(tp) < ends.get(tp)) done = false;
                if (done) break;
                if (System.currentTimeMillis() > deadline) throw new Failure(what + ": not at the end offsets " + ends);
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500)))
                    seen.put(r.partition() + "/" + r.offset(), r.value());
            }
            int missing = 0;
            for (Map.Entry<String, String> e : expected.entrySet())
                if (!e.getValue().equals(seen.get(e.getKey()))) missing++;
            if (missing > 0) throw new Failure(what + ": " + missing + " acknowledged records not read back");
            step(what + ": read " + seen.size() + " records, every acknowledged one at its offset");
        }
    }

    static void groupRead(Map<String, String> expected) throws Failure {
        String group = topic + "-group";
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(group))) {
            c.subscribe(List.of(topic));
            Set<String> seen = new HashSet<>();
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (seen.size() < expected.size()) {
                if (System.currentTimeMillis() > deadline)
                    throw new Failure("group " + group + ": read " + seen.size() + " of " + expected.size());
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    String k = r.partition() + "/" + r.offset();
                    if (r.value().equals(expected.get(k))) seen.add(k);
                }
            }
            c.commitSync(Duration.ofMillis(TIMEOUT_MS));
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(new HashSet<>(tps()), Duration.ofMillis(TIMEOUT_MS));
            for (TopicPartition tp : tps()) {
                long want = 0;
                for (String k : expected.keySet()) {
                    String[] pk = k.split("/");
                    if (Integer.parseInt(pk[0]) == tp.partition()) want = Math.max(want, Long.parseLong(pk[1]) + 1);
                }
                OffsetAndMetadata o = committed.get(tp);
                if (o == null || o.offset() != want)
                    throw new Failure("group " + group + ": committed " + o + " on " + tp + ", expected " + want);
            }
            System.out.println("GROUP_READ " + seen.size());
        }
    }

    // A new member of <topic>-group starts on every partition exactly at the
    // offset committed before its coordinator was killed.
    static void groupResume() throws Failure {
        String group = topic + "-group";
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(group))) {
            c.subscribe(List.of(topic));
            Map<Integer, Long> first = new HashMap<>();
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (first.size() < partitions) {
                if (System.currentTimeMillis() > deadline)
                    throw new Failure("group " + group + " after the restart: first offsets " + first);
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500)))
                    first.putIfAbsent(r.partition(), r.offset());
            }
            for (Map.Entry<Integer, Long> e : first.entrySet())
                if (e.getValue() != PER_PARTITION)
                    throw new Failure("group " + group + " resumed " + first + ", not at the committed " + PER_PARTITION);
            System.out.println("GROUP_RESUMED " + PER_PARTITION);
        }
    }

    static void run() throws Exception {
        Properties pp = new Properties();
        pp.put("bootstrap.servers", bootstrap);
        pp.put("key.serializer", StringSerializer.class.getName());
        pp.put("value.serializer", StringSerializer.class.getName());
        // acks=all, idempotent (the client's defaults since 3.0, spelled
        // out): an acknowledged record is on every in-sync replica (at least
        // min.insync.replicas=2), so it survives the SIGKILL of its leader,
        // and retries are not written twice.
        pp.put("acks", "all");
        pp.put("enable.idempotence", "true");
        pp.put("linger.ms", "5");
        pp.put("request.timeout.ms", "10000");
        pp.put("delivery.timeout.ms", "120000");
        pp.put("metadata.max.age.ms", "5000");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (producer.partitionsFor(topic).size() != partitions) {
                if (System.currentTimeMillis() > deadline) throw new Failure(topic + " never had " + partitions + " partitions");
                Thread.sleep(200);
            }
            for (int p = 0; p < partitions; p++)
                for (int i = 0; i < PER_PARTITION; i++) send(producer, p, "first-" + p + "-" + i);
            producer.flush();
            Map<String, String> first = snapshot();
            synchronized (acked) {
                if (!failed.isEmpty() || first.size() != partitions * PER_PARTITION)
                    throw new Failure("first batch: " + first.size() + " acknowledged, failures " + failed);
            }
            System.out.println("PRODUCED " + first.size());
            readAll(first, "assign");
            groupRead(first);

            System.out.println("LOOP_STARTED");
            long started = System.currentTimeMillis(), lastReport = 0;
            int round = 0;
            while (!Files.exists(Paths.get(stopFile))) {
                if (System.currentTimeMillis() - started > LOOP_LIMIT_MS) throw new Failure("no stop file after " + LOOP_LIMIT_MS + " ms");
                for (int p = 0; p < partitions; p++) send(producer, p, "loop-" + p + "-" + round);
                round++;
                if (System.currentTimeMillis() - lastReport >= 1000) {
                    lastReport = System.currentTimeMillis();
                    synchronized (acked) { System.out.println("ACKED " + acked.size() + " FAILED " + failed.size()); }
                }
                Thread.sleep(100);
            }
            step("stop file seen after " + round + " rounds");
            List<Future<RecordMetadata>> finals = new ArrayList<>();
            for (int p = 0; p < partitions; p++) finals.add(send(producer, p, "final-" + p));
            producer.flush();
            for (int p = 0; p < partitions; p++) {
                try {
                    finals.get(p).get();
                } catch (Exception e) {
                    throw new Failure("final record to partition " + p + " not acknowledged: " + e);
                }
            }
        }
        synchronized (acked) {
            if (!reused.isEmpty())
                throw new Failure(reused.size() + " offsets acknowledged for two records (the first lost), e.g. " + reused.get(0));
        }
        Map<String, String> all = snapshot();
        List<String> f;
        synchronized (acked) { f = new ArrayList<>(failed); }
        for (int p = 0; p < partitions; p++) {
            int n = 0;
            for (String k : all.keySet()) if (k.startsWith(p + "/")) n++;
            System.out.println("PARTITION " + p + " acked=" + n);
        }
        if (!f.isEmpty()) step(f.size() + " sends failed (a leader was killed), e.g. " + f.get(0));
        readAll(all, "after the restart");
        groupResume();
        System.out.println("OK " + NAME + " acked=" + all.size() + " failed=" + f.size());
    }

    public static void main(String[] args) {
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--bootstrap": bootstrap = args[i + 1]; break;
                case "--topic": topic = args[i + 1]; break;
                case "--stop-file": stopFile = args[i + 1]; break;
                case "--partitions": partitions = Integer.parseInt(args[i + 1]); break;
                default: System.out.println("FAIL " + NAME + ": unknown argument " + args[i]); System.exit(2);
            }
        }
        if (bootstrap == null || topic == null || stopFile == null) {
            System.out.println("usage: --bootstrap HOST:PORT --topic T --stop-file F [--partitions N]");
            System.exit(2);
        }
        try {
            run();
            System.out.flush();
            System.exit(0);
        } catch (Exception e) {
            System.out.println("FAIL " + NAME + ": " + e);
            System.out.flush();
            System.exit(1);
        }
    }
}

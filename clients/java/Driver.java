// Java client (kafka-clients 4.1.2) driver: see clients/README.md for the workload.
// Run through clients/java/driver.sh, which compiles it against .cache/kafka/lib.
// Phase `auto-create` produces to a topic nobody created (default producer settings: idempotent,
// the broker auto-creates the topic) and prints DELIVERED=n once every send succeeded.
// Extra phases `create`, `describe` (prints TOPIC_ID) and `delete` serve drivers whose client cannot manage
// topics (kcat). Phase `group` is one consumer-group member for crates/sluice/tests/group_clients.rs:
// it subscribes to the topic in group "<topic>-group" and prints ASSIGNED [..], RECORD p offset and
// COMMITTED p next lines until its stdin is closed, then leaves the group.
// Phase `consumer-group` is the same with the KIP-848 protocol (group.protocol=consumer) for
// crates/sluice/tests/consumer_protocol.rs: group --group (default "<topic>-group"), subscribed to
// --topic or, with --pattern, to a broker-side regex (SubscriptionPattern); --assignor sets
// group.remote.assignor, --instance group.instance.id. It prints ADDED/REVOKED/LOST t:p.. from its rebalance listener, ASSIGNED t:p..
// whenever its whole assignment changes, RECORD t p offset, COMMITTED t p next and COMMIT_FAILED lines.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class Driver {
    static final int PARTITIONS = 3;
    static final int PER_CODEC = 30;
    static final String NAME = "java-client";

    static String bootstrap, topic, phase = "all";
    static String group, pattern, assignor, instance;
    static List<String> codecs = List.of("none", "gzip", "snappy", "lz4", "zstd");
    static long timeoutMs = 60_000;

    static final class Failure extends Exception {
        Failure(String m) { super(m); }
    }

    record Rec(int partition, byte[] key, byte[] value, List<Header> headers) {}

    static byte[] b(String s) { return s.getBytes(StandardCharsets.UTF_8); }

    static List<Rec> records(String codec) {
        List<Rec> out = new ArrayList<>();
        for (int i = 0; i < PER_CODEC; i++) {
            int p = i % PARTITIONS;
            String value = "value-" + codec + "-" + i + ":" + "sluice-".repeat(i % 7 * 5);
            out.add(new Rec(p, b("key-" + codec + "-" + i), b(value),
                List.of(new RecordHeader("codec", b(codec)), new RecordHeader("partition", b(Integer.toString(p))))));
        }
        return out;
    }

    static Map<Integer, List<Rec>> expected() {
        Map<Integer, List<Rec>> m = new TreeMap<>();
        for (int p = 0; p < PARTITIONS; p++) m.put(p, new ArrayList<>());
        for (String c : codecs) for (Rec r : records(c)) m.get(r.partition()).add(r);
        return m;
    }

    static void step(String s) {
        System.out.printf("[%tT] %s%n", new Date(), s);
        System.out.flush();
    }

    static Admin admin;

    static Admin admin() {
        if (admin == null) {
            Properties p = new Properties();
            p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) timeoutMs);
            p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) Math.min(timeoutMs, 30_000));
            admin = Admin.create(p);
        }
        return admin;
    }

    static void waitTopic(boolean present) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < deadline) {
            Set<String> names = admin().listTopics().names().get(30, TimeUnit.SECONDS);
            if (present && names.contains(topic)) {
                TopicDescription d = admin().describeTopics(List.of(topic)).allTopicNames().get().get(topic);
                if (d.partitions().size() == PARTITIONS && d.partitions().stream().allMatch(pi -> pi.leader() != null)) return;
            }
            if (!present && !names.contains(topic)) return;
            Thread.sleep(200);
        }
        throw new Failure("topic " + topic + (present ? " not visible with 3 partitions" : " still listed") + " after " + timeoutMs + " ms");
    }

    static void printTopicId() throws Exception {
        TopicDescription d = admin().describeTopics(List.of(topic)).allTopicNames().get().get(topic);
        if (d.partitions().size() != PARTITIONS) throw new Failure("describeTopics: " + d.partitions().size() + " partitions");
        System.out.println("TOPIC_ID=" + d.topicId());
    }

    static void create() throws Exception {
        step("create topic " + topic + " with " + PARTITIONS + " partitions");
        admin().createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get();
        waitTopic(true);
    }

    static void delete() throws Exception {
        step("delete topic " + topic);
        admin().deleteTopics(List.of(topic)).all().get();
        waitTopic(false);
    }

    static void produce() throws Exception {
        for (String codec : codecs) {
            step("produce " + PER_CODEC + " records with compression " + codec);
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            p.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 1);
            p.put(ProducerConfig.ACKS_CONFIG, "all");
            p.put(ProducerConfig.LINGER_MS_CONFIG, 20);
            p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) timeoutMs);
            p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) Math.min(timeoutMs, 30_000));
            try (KafkaProducer<byte[], byte[]> prod = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
                List<Future<RecordMetadata>> fs = new ArrayList<>();
                for (Rec r : records(codec)) {
                    fs.add(prod.send(new ProducerRecord<>(topic, r.partition(), null, r.key(), r.value(), r.headers())));
                }
                prod.flush();
                for (Future<RecordMetadata> f : fs) f.get(timeoutMs, TimeUnit.MILLISECONDS);
            }
        }
    }

    static void produceAutoCreate() throws Exception {
        step("produce " + PER_CODEC + " records to " + topic + ", which does not exist yet");
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) timeoutMs);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) Math.min(timeoutMs, 30_000));
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, timeoutMs);
        int delivered = 0;
        try (KafkaProducer<byte[], byte[]> prod = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < PER_CODEC; i++) {
                fs.add(prod.send(new ProducerRecord<>(topic, b("key-auto-" + i), b("value-auto-" + i))));
            }
            prod.flush();
            for (Future<RecordMetadata> f : fs) { f.get(timeoutMs, TimeUnit.MILLISECONDS); delivered++; }
        }
        System.out.println("DELIVERED=" + delivered);
    }

    static String show(byte[] x) { return x == null ? "null" : new String(x, StandardCharsets.UTF_8); }

    static String showHeaders(Iterable<Header> hs) {
        StringBuilder sb = new StringBuilder("[");
        for (Header h : hs) sb.append(h.key()).append('=').append(show(h.value())).append(' ');
        return sb.append(']').toString();
    }

    static void consume() throws Exception {
        Map<Integer, List<Rec>> want = expected();
        step("consume every partition from the beginning");
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) timeoutMs);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) Math.min(timeoutMs, 30_000));
        List<TopicPartition> tps = new ArrayList<>();
        for (int i = 0; i < PARTITIONS; i++) tps.add(new TopicPartition(topic, i));
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            c.assign(tps);
            for (TopicPartition tp : tps) c.seek(tp, 0);
            Map<Integer, List<ConsumerRecord<byte[], byte[]>>> got = new TreeMap<>();
            for (int i = 0; i < PARTITIONS; i++) got.put(i, new ArrayList<>());
            int total = want.values().stream().mapToInt(List::size).sum();
            long deadline = System.currentTimeMillis() + timeoutMs;
            int n = 0;
            while (n < total && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    got.get(r.partition()).add(r);
                    n++;
                }
            }
            for (int part = 0; part < PARTITIONS; part++) {
                List<ConsumerRecord<byte[], byte[]>> g = got.get(part);
                List<Rec> w = want.get(part);
                if (g.size() != w.size()) throw new Failure("partition " + part + ": consumed " + g.size() + " records, expected " + w.size());
                for (int i = 0; i < g.size(); i++) {
                    ConsumerRecord<byte[], byte[]> r = g.get(i);
                    Rec e = w.get(i);
                    if (r.offset() != i) throw new Failure("partition " + part + ": record #" + i + " has offset " + r.offset());
                    if (!Arrays.equals(r.key(), e.key()) || !Arrays.equals(r.value(), e.value()))
                        throw new Failure("partition " + part + " offset " + i + ": got key=" + show(r.key()) + " value=" + show(r.value())
                            + ", expected key=" + show(e.key()) + " value=" + show(e.value()));
                    if (!showHeaders(r.headers()).equals(showHeaders(e.headers())))
                        throw new Failure("partition " + part + " offset " + i + ": got headers " + showHeaders(r.headers())
                            + ", expected " + showHeaders(e.headers()));
                }
            }
            step("list offsets (earliest, latest)");
            for (String which : List.of("earliest", "latest")) {
                Map<TopicPartition, OffsetSpec> req = new HashMap<>();
                for (TopicPartition tp : tps) req.put(tp, which.equals("earliest") ? OffsetSpec.earliest() : OffsetSpec.latest());
                Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> res = admin().listOffsets(req).all().get();
                for (TopicPartition tp : tps) {
                    long exp = which.equals("earliest") ? 0 : want.get(tp.partition()).size();
                    long off = res.get(tp).offset();
                    if (off != exp) throw new Failure("listOffsets " + which + " partition " + tp.partition() + ": " + off + ", expected " + exp);
                }
            }
            // The consumer's own ListOffsets path too.
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            for (TopicPartition tp : tps)
                if (end.get(tp) != want.get(tp.partition()).size()) throw new Failure("consumer endOffsets " + tp + ": " + end.get(tp));
        }
    }

    static volatile boolean stdinClosed = false;

    static void groupMember() {
        Thread watcher = new Thread(() -> {
            try {
                while (System.in.read() != -1) { }
            } catch (java.io.IOException e) { }
            stdinClosed = true;
        });
        watcher.setDaemon(true);
        watcher.start();
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", topic + "-group");
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        p.put("session.timeout.ms", "10000");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic));
            List<Integer> last = null;
            while (!stdinClosed) {
                ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(200));
                List<Integer> now = new ArrayList<>();
                for (TopicPartition tp : c.assignment()) now.add(tp.partition());
                Collections.sort(now);
                if (!now.equals(last)) {
                    last = now;
                    System.out.println("ASSIGNED " + now);
                }
                TreeMap<Integer, Long> done = new TreeMap<>();
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    System.out.println("RECORD " + r.partition() + " " + r.offset());
                    done.put(r.partition(), r.offset() + 1);
                }
                if (!done.isEmpty()) {
                    c.commitSync();
                    done.forEach((part, next) -> System.out.println("COMMITTED " + part + " " + next));
                }
                System.out.flush();
            }
        }
    }

    /** Sorted "topic:partition" words. */
    static String tps(Collection<TopicPartition> ps) {
        List<String> out = new ArrayList<>();
        for (TopicPartition tp : ps) out.add(tp.topic() + ":" + tp.partition());
        Collections.sort(out);
        return String.join(" ", out);
    }

    static synchronized void line(String s) {
        System.out.println(s.stripTrailing());
        System.out.flush();
    }

    static void consumerGroupMember() {
        Thread watcher = new Thread(() -> {
            try {
                while (System.in.read() != -1) { }
            } catch (java.io.IOException e) { }
            stdinClosed = true;
        });
        watcher.setDaemon(true);
        watcher.start();
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group != null ? group : topic + "-group");
        p.put("group.protocol", "consumer");
        if (assignor != null) p.put("group.remote.assignor", assignor);
        if (instance != null) p.put("group.instance.id", instance);
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
            public void onPartitionsRevoked(Collection<TopicPartition> ps) { if (!ps.isEmpty()) line("REVOKED " + tps(ps)); }
            public void onPartitionsAssigned(Collection<TopicPartition> ps) { if (!ps.isEmpty()) line("ADDED " + tps(ps)); }
            public void onPartitionsLost(Collection<TopicPartition> ps) { if (!ps.isEmpty()) line("LOST " + tps(ps)); }
        };
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            if (pattern != null) c.subscribe(new SubscriptionPattern(pattern), listener);
            else c.subscribe(List.of(topic), listener);
            String last = null;
            while (!stdinClosed) {
                ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(200));
                String now = tps(c.assignment());
                if (!now.equals(last)) {
                    last = now;
                    line("ASSIGNED " + now);
                }
                TreeMap<String, Long> done = new TreeMap<>();
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    line("RECORD " + r.topic() + " " + r.partition() + " " + r.offset());
                    done.put(r.topic() + " " + r.partition(), r.offset() + 1);
                }
                if (!done.isEmpty()) {
                    try {
                        c.commitSync();
                        done.forEach((tp, next) -> line("COMMITTED " + tp + " " + next));
                    } catch (Exception e) {
                        line("COMMIT_FAILED " + e);
                    }
                }
            }
        }
    }

    public static void main(String[] args) {
        for (int i = 0; i < args.length; i++) {
            String v = i + 1 < args.length ? args[i + 1] : null;
            switch (args[i]) {
                case "--bootstrap" -> { bootstrap = v; i++; }
                case "--topic" -> { topic = v; i++; }
                case "--phase" -> { phase = v; i++; }
                case "--group" -> { group = v; i++; }
                case "--pattern" -> { pattern = v; i++; }
                case "--assignor" -> { assignor = v; i++; }
                case "--instance" -> { instance = v; i++; }
                case "--codecs" -> { codecs = List.of(v.split(",")); i++; }
                case "--timeout" -> { timeoutMs = (long) (Double.parseDouble(v) * 1000); i++; }
                default -> { System.err.println("unknown argument " + args[i]); System.exit(2); }
            }
        }
        if (bootstrap == null || topic == null || !List.of("all", "produce", "produce-consume", "verify-only", "create", "delete", "describe", "group", "consumer-group", "auto-create").contains(phase)) {
            System.err.println("usage: Driver --bootstrap HOST:PORT --topic NAME [--phase all|produce|produce-consume|verify-only|create|describe|delete|group|consumer-group|auto-create] [--group G] [--pattern REGEX] [--assignor uniform|range] [--instance ID] [--codecs a,b] [--timeout S]");
            System.exit(2);
        }
        int rc = 0;
        try {
            switch (phase) {
                case "create" -> { create(); printTopicId(); }
                case "delete" -> delete();
                case "describe" -> { waitTopic(true); printTopicId(); }
                case "group" -> groupMember();
                case "consumer-group" -> consumerGroupMember();
                case "auto-create" -> produceAutoCreate();
                default -> {
                    if (phase.equals("all") || phase.equals("produce") || phase.equals("produce-consume")) { create(); printTopicId(); produce(); }
                    if (phase.equals("all") || phase.equals("produce-consume")) consume();
                    if (phase.equals("all") || phase.equals("verify-only")) { printTopicId(); consume(); delete(); }
                }
            }
            System.out.println("OK " + NAME);
        } catch (Failure f) {
            System.out.println("FAIL " + NAME + ": " + f.getMessage());
            rc = 1;
        } catch (Throwable t) {
            t.printStackTrace(System.out);
            Throwable root = t;
            while (root.getCause() != null) root = root.getCause();
            System.out.println("FAIL " + NAME + ": " + root);
            rc = 1;
        } finally {
            if (admin != null) admin.close(Duration.ofSeconds(5));
        }
        System.out.flush();
        System.exit(rc);
    }
}

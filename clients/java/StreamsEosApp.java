// The Kafka Streams (exactly_once_v2) word count that crates/sluice/tests/streams_eos.rs
// kills with kill -9 and restarts: see the class comment.
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueBytesStoreSupplier;
import org.apache.kafka.streams.state.Stores;

/**
 * A Kafka Streams 4.1.2 word count for the exactly-once test
 * (crates/sluice/tests/streams_eos.rs), the same against Sluice and Apache
 * Kafka: it reads topic {@code --input} (key = word, value ignored),
 * re-keys every record by its word ({@code selectKey}, so the grouping goes
 * through the repartition topic {@code <app-id>-by-word-repartition}),
 * counts per word in the store {@code counts} (changelog
 * {@code <app-id>-counts-changelog}) and writes every new count to
 * {@code --output} (key = word, value = the count as an 8-byte long).
 *
 * With {@code processing.guarantee=exactly_once_v2} (the default here) one
 * producer per thread commits the output, changelog and repartition records
 * together with the input offsets in one transaction every
 * {@code commit.interval.ms}. The record cache is off
 * ({@code statestore.cache.max.bytes=0}), so every input record yields one
 * output record, and a read_committed reader sees exactly 1, 2, ..., n per
 * word however often the application was killed.
 *
 * Options: --bootstrap HOST:PORT, --app-id ID, --input TOPIC, --output TOPIC,
 * --state-dir DIR, --replication N (internal topics), --guarantee
 * exactly_once_v2|at_least_once, --commit-interval-ms MS, --store
 * memory|rocksdb (in-memory by default, so RocksDB is never loaded).
 *
 * Prints "STATE before -> after" on every state change and "CLOSED" after
 * a clean close (SIGTERM); a fatal error prints "FAIL streams: reason" and
 * exits 1.
 */
public class StreamsEosApp {
    static synchronized void say(String line) {
        System.out.println("[" + java.time.LocalTime.now() + "] " + line);
        System.out.flush();
    }

    static void fail(String why) {
        say("FAIL streams: " + why);
        System.exit(1);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = null, appId = null, input = "input", output = "output", stateDir = null;
        String guarantee = StreamsConfig.EXACTLY_ONCE_V2, store = "memory";
        int replication = 1;
        long commitIntervalMs = 100;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap": bootstrap = args[++i]; break;
                case "--app-id": appId = args[++i]; break;
                case "--input": input = args[++i]; break;
                case "--output": output = args[++i]; break;
                case "--state-dir": stateDir = args[++i]; break;
                case "--replication": replication = Integer.parseInt(args[++i]); break;
                case "--guarantee": guarantee = args[++i]; break;
                case "--commit-interval-ms": commitIntervalMs = Long.parseLong(args[++i]); break;
                case "--store": store = args[++i]; break;
                default: fail("unknown argument " + args[i]);
            }
        }
        if (bootstrap == null || appId == null || stateDir == null) {
            fail("--bootstrap, --app-id and --state-dir are required");
        }

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.toString(commitIntervalMs));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, Integer.toString(replication));
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        // Every update reaches the output and the changelog (no cache to
        // merge consecutive counts of a word).
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        // A killed instance's member leaves the group after 6 s (the
        // brokers' group.min.session.timeout.ms) instead of 45 s, so the
        // restarted instance gets the tasks sooner.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), "6000");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), "1500");
        // Streams' producer lingers 100 ms by default: with commits every
        // 100 ms a transaction's records would mostly reach the brokers only
        // at the flush before its commit, so a kill would rarely find
        // records of an open transaction there. Send them as they come.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), "5");

        KeyValueBytesStoreSupplier counts;
        switch (store) {
            case "memory": counts = Stores.inMemoryKeyValueStore("counts"); break;
            case "rocksdb": counts = Stores.persistentKeyValueStore("counts"); break;
            default: fail("--store must be memory or rocksdb"); return;
        }

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
            .selectKey((word, value) -> word)
            .groupByKey(Grouped.with("by-word", Serdes.String(), Serdes.String()))
            .count(Materialized.<String, Long>as(counts)
                .withKeySerde(Serdes.String())
                .withValueSerde(Serdes.Long()))
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        Topology topology = builder.build();
        say("TOPOLOGY " + topology.describe().toString().replace('\n', ' '));

        KafkaStreams streams = new KafkaStreams(topology, p);
        CountDownLatch done = new CountDownLatch(1);
        AtomicReference<Throwable> fatal = new AtomicReference<>();
        streams.setStateListener((now, before) -> {
            say("STATE " + before + " -> " + now);
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            fatal.compareAndSet(null, e);
            say("UNCAUGHT " + e);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(60));
            say("CLOSED");
        }));
        streams.start();
        done.await();
        if (streams.state() == KafkaStreams.State.ERROR || fatal.get() != null) {
            fail("stopped in state " + streams.state() + ": " + fatal.get());
        }
    }
}

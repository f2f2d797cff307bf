// Cross-checks Sluice's record layer against Apache Kafka's own Java code.
//
//   write DIR: writes one batch per codec, built by Kafka's MemoryRecordsBuilder
//              (the producer's code path), to DIR/java-<codec>.bin. These are
//              the fixtures crates/record/tests/java_fixtures.rs decodes.
//   read FILE...: reads batches written by Sluice's BatchBuilder with Kafka's
//              MemoryRecords, checks each CRC (ensureValid) and compares every
//              record with the same expected records.
//
// Run with tests/java/run.sh (needs the Kafka jars from tools/kafka/fetch).

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.CompressionType;
import org.apache.kafka.common.record.MemoryRecords;
import org.apache.kafka.common.record.MemoryRecordsBuilder;
import org.apache.kafka.common.record.Record;
import org.apache.kafka.common.record.RecordBatch;
import org.apache.kafka.common.record.TimestampType;

public class KafkaBatches {
    static final int COUNT = 50;

    // Keep in step with expected_records() in tests/java_fixtures.rs.
    static byte[] key(int i) {
        return i % 3 == 0 ? null : ("key-" + i).getBytes(StandardCharsets.UTF_8);
    }

    static byte[] value(int i) {
        if (i % 7 == 0) return null;
        return ("value-" + i + "-" + "x".repeat(i * 13 % 200)).getBytes(StandardCharsets.UTF_8);
    }

    static Header[] headers(int i) {
        if (i % 2 != 0) return new Header[0];
        return new Header[] {
            new RecordHeader("h1", ("v" + i).getBytes(StandardCharsets.UTF_8)),
            new RecordHeader("h2", null),
        };
    }

    static long timestamp(int i) {
        return 1_700_000_000_000L + i * 10L;
    }

    public static void main(String[] args) throws Exception {
        if (args.length >= 2 && args[0].equals("write")) {
            for (CompressionType type : CompressionType.values()) {
                ByteBuffer buf = ByteBuffer.allocate(1 << 20);
                MemoryRecordsBuilder b = MemoryRecords.builder(buf, RecordBatch.MAGIC_VALUE_V2,
                    Compression.of(type).build(), TimestampType.CREATE_TIME, 0L,
                    RecordBatch.NO_TIMESTAMP, 1234L, (short) 5, 77, false, -1);
                for (int i = 0; i < COUNT; i++) {
                    b.append(timestamp(i), key(i), value(i), headers(i));
                }
                MemoryRecords records = b.build();
                ByteBuffer out = records.buffer();
                byte[] bytes = new byte[out.remaining()];
                out.get(bytes);
                Path path = Path.of(args[1], "java-" + type.name + ".bin");
                Files.write(path, bytes);
                System.out.println("wrote " + path + " (" + bytes.length + " bytes)");
            }
        } else if (args.length >= 2 && args[0].equals("read")) {
            for (int f = 1; f < args.length; f++) {
                ByteBuffer buf = ByteBuffer.wrap(Files.readAllBytes(Path.of(args[f])));
                MemoryRecords records = MemoryRecords.readableRecords(buf);
                int i = 0;
                for (RecordBatch batch : records.batches()) {
                    batch.ensureValid();
                    for (Record r : batch) {
                        check(args[f], i, r);
                        i++;
                    }
                }
                if (i != COUNT) throw new AssertionError(args[f] + ": " + i + " records");
                System.out.println("ok " + args[f] + " (" + i + " records, CRC valid)");
            }
        } else {
            System.err.println("usage: KafkaBatches write DIR | read FILE...");
            System.exit(2);
        }
    }

    static void check(String file, int i, Record r) {
        String where = file + " record " + i;
        if (r.offset() != i) throw new AssertionError(where + ": offset " + r.offset());
        if (r.timestamp() != timestamp(i)) throw new AssertionError(where + ": timestamp");
        if (!Arrays.equals(bytes(r.key()), key(i))) throw new AssertionError(where + ": key");
        if (!Arrays.equals(bytes(r.value()), value(i))) throw new AssertionError(where + ": value");
        Header[] want = headers(i);
        Header[] got = r.headers();
        if (got.length != want.length) throw new AssertionError(where + ": header count");
        for (int h = 0; h < got.length; h++) {
            if (!got[h].key().equals(want[h].key())
                || !Arrays.equals(got[h].value(), want[h].value())) {
                throw new AssertionError(where + ": header " + h);
            }
        }
    }

    static byte[] bytes(ByteBuffer b) {
        if (b == null) return null;
        byte[] out = new byte[b.remaining()];
        b.duplicate().get(out);
        return out;
    }
}

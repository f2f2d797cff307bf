// Reads hex-encoded metadata records (one per line), decodes each with Kafka's
// own MetadataRecordSerde, re-encodes it at the same version and fails unless
// Kafka's bytes equal ours. Then, for every older version Kafka can write the
// record in, writes "<old bytes> <Kafka's reading of them, at our version>"
// to the second file, for the Rust side to decode the old bytes and compare.
// Run by crates/metadata/kafka-check/run.
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;

import java.util.ArrayList;
import java.util.List;

import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.protocol.ApiMessage;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.ObjectSerializationCache;
import org.apache.kafka.metadata.MetadataRecordSerde;
import org.apache.kafka.server.common.ApiMessageAndVersion;

public class KafkaCheck {
    static String encode(MetadataRecordSerde serde, ApiMessage message, short version) {
        ApiMessageAndVersion m = new ApiMessageAndVersion(message, version);
        ObjectSerializationCache cache = new ObjectSerializationCache();
        ByteBuffer out = ByteBuffer.allocate(serde.recordSize(m, cache));
        serde.write(m, cache, new ByteBufferAccessor(out));
        return HexFormat.of().formatHex(out.array());
    }

    public static void main(String[] args) throws Exception {
        MetadataRecordSerde serde = MetadataRecordSerde.INSTANCE;
        int ok = 0;
        List<String> older = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(args[0]))) {
            byte[] ours = HexFormat.of().parseHex(line);
            ApiMessageAndVersion m = serde.read(new ByteBufferAccessor(ByteBuffer.wrap(ours)), ours.length);
            ObjectSerializationCache cache = new ObjectSerializationCache();
            ByteBuffer out = ByteBuffer.allocate(serde.recordSize(m, cache));
            serde.write(m, cache, new ByteBufferAccessor(out));
            String theirs = HexFormat.of().formatHex(out.array());
            if (!theirs.equals(line)) {
                System.out.println("DIFFERENT\n  ours  " + line + "\n  kafka " + theirs + "\n  " + m);
                System.exit(1);
            }
            ok++;
            for (short v = 0; v < m.version(); v++) {
                String old;
                try {
                    old = encode(serde, m.message(), v);
                } catch (UnsupportedVersionException e) {
                    continue; // a field this version cannot hold is set
                }
                byte[] oldBytes = HexFormat.of().parseHex(old);
                ApiMessageAndVersion back = serde.read(new ByteBufferAccessor(ByteBuffer.wrap(oldBytes)), oldBytes.length);
                older.add(old + " " + encode(serde, back.message(), m.version()));
            }
        }
        Files.write(Path.of(args[1]), older);
        System.out.println("Kafka decoded and re-encoded " + ok + " records byte-identically; "
            + older.size() + " older-version encodings written");
    }
}

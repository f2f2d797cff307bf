// Reads hex-encoded metadata records (one per line), decodes each with Kafka's
// own MetadataRecordSerde, re-encodes it at the same version and fails unless
// Kafka's bytes equal ours. Run by crates/metadata/kafka-check/run.
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;

import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.ObjectSerializationCache;
import org.apache.kafka.metadata.MetadataRecordSerde;
import org.apache.kafka.server.common.ApiMessageAndVersion;

public class KafkaCheck {
    public static void main(String[] args) throws Exception {
        MetadataRecordSerde serde = MetadataRecordSerde.INSTANCE;
        int ok = 0;
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
        }
        System.out.println("Kafka decoded and re-encoded " + ok + " records byte-identically");
    }
}

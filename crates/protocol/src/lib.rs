//! Kafka wire protocol: framing, request header, bounded decoding on top of `kafka-protocol`.

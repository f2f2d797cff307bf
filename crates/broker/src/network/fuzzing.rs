//! Fuzzing entry point for the data path: untrusted bytes go through the
//! connection's frame reader and request decoding, and every request that
//! decodes is handed to the real handlers (ApiVersions, Metadata, Produce,
//! Fetch, ListOffsets) of an in-process broker on the simulated disk. The
//! properties: nothing panics, and every answer encodes (a handler that
//! sets a field its version lacks would fail here, as ListOffsets v1–3
//! once did). Used by `fuzz/fuzz_targets/data_path.rs` and by unit tests.

use std::sync::{Arc, OnceLock};

use kafka_protocol::messages::RequestKind;
use sluice_storage::{Clock, Fs, ManualClock, SimFs};

use super::codec::{self, Decoded};
use super::frame::{FrameReader, MemoryPool};
use crate::handlers::{self, Response};
use crate::{Broker, BrokerConfig};

struct Harness {
    runtime: tokio::runtime::Runtime,
    broker: Broker,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let broker = runtime.block_on(async {
            let config = BrokerConfig::with_overrides(&[
                ("listeners", "PLAINTEXT://127.0.0.1:0"),
                ("log.dirs", "/fuzz/data"),
                ("auto.create.topics.enable", "false"),
                ("offsets.topic.num.partitions", "1"),
            ])
            .expect("fuzz config");
            let fs: Arc<dyn Fs> = Arc::new(SimFs::new());
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_700_000_000_000));
            let broker = Broker::start(config, fs, clock).await.expect("broker");
            let ctx = broker.context().clone();
            ctx.controller
                .create_topic("t", 2, 1, Default::default())
                .await
                .expect("topic");
            broker
        });
        Harness { runtime, broker }
    })
}

/// Runs `data` as the byte stream of one connection.
pub fn data_path(data: &[u8]) {
    let h = harness();
    let ctx = h.broker.context().clone();
    h.runtime.block_on(async move {
        let mut frames = FrameReader::new(data, 1 << 20, MemoryPool::new(1 << 24));
        while let Ok(Some(frame)) = frames.next_frame().await {
            let request = match codec::decode_request(frame.bytes) {
                Decoded::Request(r) => r,
                Decoded::Answer(_) | Decoded::Reject(_) => continue,
            };
            let mut header = request.header;
            let mut body = request.body;
            match &mut body {
                RequestKind::ApiVersions(_)
                | RequestKind::Metadata(_)
                | RequestKind::Produce(_)
                | RequestKind::ListOffsets(_) => {}
                // Never long-poll in a fuzz run.
                RequestKind::Fetch(f) => f.max_wait_ms = 0,
                _ => continue,
            }
            header.client_id = None;
            match handlers::handle(&ctx, &header, body).await {
                Response::Message(m) => {
                    if let Err(e) = codec::encode_response(&header, &m) {
                        panic!("answer to {header:?} does not encode: {e}");
                    }
                }
                Response::Fetch(plan) => {
                    if let Err(e) = codec::fetch_chunks(&header, plan) {
                        panic!("fetch answer to {header:?} does not encode: {e}");
                    }
                }
                Response::NoResponse | Response::Close(_) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::{ApiKey, RequestHeader};
    use kafka_protocol::protocol::Encodable;

    fn frame(api_key: ApiKey, version: i16, body: &impl Encodable) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7);
        let mut buf = bytes::BytesMut::new();
        buf.put_i32(0);
        header
            .encode(
                &mut buf,
                sluice_protocol::request_header_version(api_key, version),
            )
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.to_vec()
    }

    /// Default-valued requests of every advertised version of the data-path
    /// APIs, then the same bytes cut and flipped: the fuzz body's properties
    /// hold on them (the fuzz target explores further).
    #[test]
    fn default_requests_and_mutations_keep_the_fuzz_properties() {
        use kafka_protocol::messages::*;
        let mut stream = Vec::new();
        for &(api, lo, hi) in sluice_protocol::SUPPORTED_APIS {
            for v in lo..=hi {
                let bytes = match api {
                    ApiKey::ApiVersions => frame(api, v, &ApiVersionsRequest::default()),
                    ApiKey::Metadata => frame(api, v, &MetadataRequest::default()),
                    ApiKey::Produce if v < 13 => frame(api, v, &ProduceRequest::default()),
                    ApiKey::Fetch => frame(api, v, &FetchRequest::default()),
                    ApiKey::ListOffsets => frame(api, v, &ListOffsetsRequest::default()),
                    _ => continue,
                };
                data_path(&bytes);
                stream.extend_from_slice(&bytes);
            }
        }
        data_path(&stream);
        for cut in (0..stream.len()).step_by(97) {
            let mut mutated = stream.clone();
            mutated[cut] ^= 0x5a;
            data_path(&mutated[..]);
            data_path(&stream[..cut]);
        }
    }
}

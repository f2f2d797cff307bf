//! Issue 21: a connection's network time counts against its client's
//! `request_percentage` quota, as Kafka charges each request's network
//! thread time (`recordNetworkThreadTimeCallback`), not only the handler's.
//!
//! The broker's side of an in-memory connection burns a second in every
//! write (a stand-in for expensive socket or TLS work: time spent inside
//! the broker's polls). A Metadata handler takes microseconds, so with a 5%
//! quota (500 ms of thread time over the 10 s a rate spans at least) the
//! first request is within it; the second carries the first response's
//! write and must come back throttled. Counting handler time only, it would
//! not be. Not a timing assertion: the burn is a lower bound on what is
//! charged, and the first request has 500 ms of slack.

mod netkit;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use netkit::Client;
use sluice_broker::metadata::QuorumMode;
use sluice_broker::network::Listener;
use sluice_broker::{Broker, BrokerConfig};
use sluice_controller::QuotaAlteration;
use sluice_storage::{Clock, Fs, RealFs, SystemClock};
use sluice_transport::net::{Acceptor, BoxFuture, BoxStream};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

/// How long each broker-side write burns.
const BURN: Duration = Duration::from_secs(1);

/// The broker's end of a connection: every write first burns [`BURN`] on
/// the polling thread.
struct BurningWrites(DuplexStream);

impl AsyncRead for BurningWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for BurningWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::thread::sleep(BURN);
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

struct BurningAcceptor(mpsc::Receiver<DuplexStream>);

impl Acceptor for BurningAcceptor {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, std::net::SocketAddr)>> {
        Box::pin(async move {
            let s = self.0.recv().await.ok_or_else(|| {
                io::Error::new(io::ErrorKind::ConnectionAborted, "no more connections")
            })?;
            let peer = std::net::SocketAddr::from(([127, 0, 0, 2], 40001));
            Ok((Box::new(BurningWrites(s)) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        Ok(std::net::SocketAddr::from(([127, 0, 0, 1], 9092)))
    }
}

fn metadata() -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("absent"))))]))
}

fn throttle_ms(response: ResponseKind) -> i32 {
    match response {
        ResponseKind::Metadata(r) => r.throttle_time_ms,
        other => panic!("not a Metadata response: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_writes_count_against_the_request_quota() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::with_overrides(&[
        ("listeners", "PLAINTEXT://127.0.0.1:9092"),
        ("log.dirs", dir.path().to_str().unwrap()),
        ("auto.create.topics.enable", "false"),
    ])
    .unwrap();
    let (tx, rx) = mpsc::channel(4);
    let fs: Arc<dyn Fs> = Arc::new(RealFs);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let listeners = vec![Listener::Other(Box::new(BurningAcceptor(rx)))];
    let broker = Broker::start_on(config, fs, clock, QuorumMode::SingleNode, listeners)
        .await
        .unwrap();
    // netkit's client id.
    let quota = QuotaAlteration {
        entity: vec![("client-id".to_owned(), Some("netkit".to_owned()))],
        ops: vec![("request_percentage".to_owned(), Some(5.0))],
    };
    let results = broker
        .context()
        .controller
        .alter_client_quotas(vec![quota], false)
        .await
        .unwrap();
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");

    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    tx.send(theirs).await.unwrap();
    let mut client = Client::over(Box::new(ours));
    let first = client.call(ApiKey::Metadata, 12, &metadata()).await;
    assert_eq!(
        throttle_ms(first),
        0,
        "microseconds of handler time are within 5%"
    );
    let second = client.call(ApiKey::Metadata, 12, &metadata()).await;
    let ms = throttle_ms(second);
    assert!(
        ms > 0,
        "the first response's {BURN:?} write was not charged to the quota"
    );
    broker.shutdown().await.unwrap();
}

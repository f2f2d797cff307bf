//! Connection bounds over a real socket: `max.connections` refuses with a
//! logged reason, `connections.max.idle.ms` closes idle connections, and a
//! request that stops arriving is abandoned after
//! `sluice.request.stall.timeout.ms`, with a WARN each.
//!
//! The broker runs in this process; a tracing subscriber keeps every log
//! line so the tests can look for the WARN.

mod netkit;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use netkit::{Client, TestBroker};

/// Every log line written by the broker in this test binary.
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The WARN lines logged so far that contain `needle`.
fn warnings(needle: &str) -> Vec<String> {
    let log = log();
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains("WARN") && l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// A hang means the bound is not enforced; this turns it into a failure.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no outcome after 120 s"))
}

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("netkit"))
        .with_client_software_version(StrBytes::from_static_str("1"))
}

async fn api_versions(c: &mut Client) {
    match c
        .call(ApiKey::ApiVersions, 3, &api_versions_request())
        .await
    {
        ResponseKind::ApiVersions(r) => assert_eq!(r.error_code, 0),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_max_connections_is_closed_with_a_warning() {
    log();
    let b = TestBroker::start(
        Arc::new(sluice_storage::RealFs),
        &[("max.connections", "2")],
    )
    .await;
    let mut first = b.client().await;
    let mut second = b.client().await;
    api_versions(&mut first).await;
    api_versions(&mut second).await;

    // The third is closed instead of left waiting, and the reason is logged.
    let mut third = b.client().await;
    let _ = third
        .send(ApiKey::ApiVersions, 3, &api_versions_request())
        .await;
    assert!(within("third connection", third.is_closed_by_broker()).await);
    let logged = warnings("max.connections (2) reached");
    assert!(!logged.is_empty(), "no WARN about the refused connection");

    // A flood is refused too, without a WARN per connection.
    for _ in 0..20 {
        let mut c = b.client().await;
        assert!(within("flooding connection", c.is_closed_by_broker()).await);
    }
    assert_eq!(warnings("max.connections (2) reached").len(), logged.len());

    // The admitted connections are still served, and once one leaves, a
    // newcomer gets its slot.
    api_versions(&mut first).await;
    drop(second);
    within("a freed slot", async {
        loop {
            let mut c = b.client().await;
            c.send(ApiKey::ApiVersions, 3, &api_versions_request())
                .await;
            if c.recv_frame().await.is_some() {
                break;
            }
            // The broker had not yet seen the departure: try again.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_max_idle_ms_closes_idle_connections() {
    log();
    let b = TestBroker::start(
        Arc::new(sluice_storage::RealFs),
        &[("connections.max.idle.ms", "300")],
    )
    .await;
    // One that never sends, one idle after an answer.
    let mut silent = b.client().await;
    let mut answered = b.client().await;
    api_versions(&mut answered).await;
    assert!(within("silent connection", silent.is_closed_by_broker()).await);
    assert!(within("answered connection", answered.is_closed_by_broker()).await);
    b.broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_stops_arriving_is_abandoned_with_a_warning() {
    log();
    let b = TestBroker::start(
        Arc::new(sluice_storage::RealFs),
        &[("sluice.request.stall.timeout.ms", "300")],
    )
    .await;
    let mut staller = b.client().await;
    // Claims 1 MiB, sends 10 bytes of it, then nothing (the connection is
    // far from connections.max.idle.ms, 10 minutes by default).
    let mut claim = (1i32 << 20).to_be_bytes().to_vec();
    claim.extend_from_slice(&[0u8; 10]);
    staller.send_raw(&claim).await.unwrap();
    assert!(within("stalled connection", staller.is_closed_by_broker()).await);
    let logged = warnings("stalled request");
    assert!(
        logged
            .iter()
            .any(|l| l.contains("after 10 of 1048576 bytes")),
        "{logged:?}"
    );
    b.broker.shutdown().await.unwrap();
}

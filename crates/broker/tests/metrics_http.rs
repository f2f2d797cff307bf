//! The metrics endpoint as an operator or a load balancer sees it:
//! `/health` says "recovering" (503) until the broker is ready, then 200;
//! `/metrics` serves process counters at once and partition, group and
//! producer-state gauges once the broker context is there.

mod netkit;

use std::sync::Arc;

use netkit::TestBroker;
use sluice_broker::metrics::{serve_http, HttpState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[tokio::test]
async fn health_is_not_ready_until_the_broker_is_and_gauges_appear_then() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = HttpState::new();
    tokio::spawn(serve_http(listener, Arc::clone(&state)));

    // Before recovery finished (no broker context yet).
    let (status, body) = request(addr, "GET", "/health").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 503 Service Unavailable", "recovering\n")
    );
    let (status, body) = request(addr, "GET", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("\nsluice_active_connections "), "{body}");
    assert!(!body.contains("sluice_producers"), "{body}");
    assert!(!body.contains("sluice_broker_info"), "{body}");

    let broker = TestBroker::start_default().await;
    state.set_ready(broker.broker.context().clone());
    let (status, body) = request(addr, "GET", "/health").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ready\n")
    );
    let (_, body) = request(addr, "GET", "/metrics").await;
    assert!(body.contains("\nsluice_producers 0\n"), "{body}");
    assert!(body.contains("\nsluice_producer_state_bytes 0\n"), "{body}");
    // Who answers, for readers that must not chart another broker's figures.
    let info = format!(
        "\nsluice_broker_info{{cluster_id=\"{}\",node_id=\"{}\"}} 1\n",
        broker.broker.context().metadata.cluster_id(),
        broker.broker.context().config.node_id
    );
    assert!(body.contains(&info), "{info} in {body}");

    let (status, _) = request(addr, "POST", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    broker.broker.shutdown().await.unwrap();
}

//! Connection limits per client IP through the real binary (issue 21), as
//! Kafka's `ConnectionQuotas` enforces them:
//! - `max.connections.per.ip` with `max.connections.per.ip.overrides`: a
//!   connection beyond the IP's limit is closed unanswered, and a slot
//!   given back by a closed connection can be used again;
//! - an `ip` entity's `connection_creation_rate` quota (set with
//!   AlterClientQuotas; `kafka-configs --entity-type ips` describes it when
//!   java and the jars are here): connections over the rate are closed
//!   unanswered, and once the quota is removed every connection is served;
//! - both changed at runtime with `kafka-configs --entity-type brokers`
//!   (cluster default and per broker): new connections get the new limits,
//!   live ones stay open;
//! - `listener.name.<l>.max.connection.creation.rate` (KIP-612): the
//!   listener waits before serving connections over the rate (only a lower
//!   bound on the time taken is checked, which slowness cannot break), set
//!   at start or at runtime with `kafka-configs --entity-type brokers`;
//! - `listener.name.<l>.max.connections`, at start and at runtime, and the
//!   inter-broker listener of a broker with several left out of
//!   `max.connections` while its connections count in it (Kafka's
//!   `ConnectionQuotas.connectionSlotAvailable`).
//!
//! No timing assertion beyond that lower bound: waits are bounded retries.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiVersionsRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, HeaderVersion, Request, StrBytes};

use common::{sb, RawClient};
use sluice_testkit::{ClusterLayout, SluiceCluster};

/// An ApiVersions v0 request frame.
fn api_versions_frame() -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiVersionsRequest::KEY)
        .with_request_api_version(0)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("conn-test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ApiVersionsRequest::header_version(0))
        .unwrap();
    ApiVersionsRequest::default().encode(&mut body, 0).unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Opens a connection and sends ApiVersions: the open connection when it
/// is answered, `None` when the broker closes it unanswered.
fn served(addr: &str) -> Option<TcpStream> {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    answers(s)
}

/// Sends ApiVersions on `s`: `s` when it is answered, `None` when closed.
fn answers(mut s: TcpStream) -> Option<TcpStream> {
    if s.write_all(&api_versions_frame()).is_err() {
        return None;
    }
    let mut size = [0u8; 4];
    match s.read_exact(&mut size) {
        Ok(()) => {
            let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
            s.read_exact(&mut body).ok().map(|_| s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => panic!("no answer and no close"),
        Err(_) => None,
    }
}

#[test]
fn connections_beyond_the_per_ip_limit_are_closed() {
    let broker = common::start(&[
        ("max.connections.per.ip", "1"),
        ("max.connections.per.ip.overrides", "localhost:3"),
    ]);
    let addr = broker.bootstrap().to_string();
    // localhost resolves to 127.0.0.1: its override (3) applies, not the
    // default of 1.
    let mut open: Vec<TcpStream> = (0..3)
        .map(|i| served(&addr).unwrap_or_else(|| panic!("connection {i} of 3 refused")))
        .collect();
    assert!(served(&addr).is_none(), "a 4th connection was served");
    // A closed connection gives its slot back (once the broker has seen
    // the close).
    drop(open.pop());
    let mut again = None;
    for _ in 0..600 {
        again = served(&addr);
        if again.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(again.is_some(), "the freed slot was never reused");
    assert!(
        broker
            .output()
            .contains("address already has the configured maximum of 3 connections"),
        "{}",
        broker.output()
    );
}

fn set_ip_rate(c: &mut RawClient, ip: &str, rate: Option<f64>) {
    let op = OpData::default().with_key(sb("connection_creation_rate"));
    let op = match rate {
        Some(r) => op.with_value(r),
        None => op.with_remove(true),
    };
    let resp = c.send(
        1,
        &AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(sb("ip"))
                .with_entity_name(Some(sb(ip)))])
            .with_ops(vec![op])]),
    );
    assert_eq!(resp.entries[0].error_code, 0, "{resp:?}");
}

#[test]
fn connections_over_an_ip_creation_rate_are_closed() {
    let broker = common::start(&[
        ("quota.window.num", "2"),
        ("quota.window.size.seconds", "1"),
    ]);
    let addr = broker.bootstrap().to_string();
    // Opened before the quota, and kept for removing it.
    let mut admin = RawClient::connect(&addr);
    set_ip_rate(&mut admin, "127.0.0.1", Some(1.0));
    if common::kafka_tools_ready("kafka-configs --entity-type ips") {
        // No log4j config: ConfigCommand's logging controller refuses the
        // log4j 1 file the other tools use.
        let out = std::process::Command::new("java")
            .args(["-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp"])
            .arg(common::root().join(".cache/kafka/lib/*"))
            .arg("kafka.admin.ConfigCommand")
            .args(["--bootstrap-server", &addr, "--describe"])
            .args(["--entity-type", "ips", "--entity-name", "127.0.0.1"])
            .output()
            .expect("run java");
        let out = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.contains("Quota configs for ip '127.0.0.1'")
                && out.contains("connection_creation_rate=1.0"),
            "{out}"
        );
    }
    // One per second allowed: 20 back-to-back connections cannot all be.
    let refused = (0..20).filter(|_| served(&addr).is_none()).count();
    eprintln!("{refused} of 20 connections refused at 1 connection/s");
    assert!(refused > 0, "no connection was throttled");

    set_ip_rate(&mut admin, "127.0.0.1", None);
    let refused = (0..20).filter(|_| served(&addr).is_none()).count();
    assert_eq!(refused, 0, "connections refused without a quota");
}

#[test]
fn a_listener_over_its_creation_rate_waits_before_serving() {
    let broker = common::start(&[
        ("quota.window.num", "2"),
        ("quota.window.size.seconds", "1"),
        ("listener.name.plaintext.max.connection.creation.rate", "2"),
    ]);
    let addr = broker.bootstrap().to_string();
    // 12 connections at 2 per second: every one is served (Kafka delays
    // accepting, it does not close), and they cannot all be served in
    // under 2 s however fast the machine (a lower bound: slowness only
    // makes it longer).
    let started = std::time::Instant::now();
    for i in 0..12 {
        assert!(served(&addr).is_some(), "connection {i} was closed");
    }
    let took = started.elapsed();
    eprintln!("12 connections at 2/s took {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "12 connections were accepted in {took:?}"
    );
}

/// Opens connections until `n` are held, retrying refused ones (a dynamic
/// config applies a little after kafka-configs returns); bounded.
fn hold(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..600 {
        if held.len() == n {
            return held;
        }
        match served(addr) {
            Some(s) => held.push(s),
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    panic!("only {} of {n} connections were served", held.len());
}

/// Waits until a new connection is refused; bounded.
fn until_refused(addr: &str, what: &str) {
    for _ in 0..600 {
        if served(addr).is_none() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: connections are still served");
}

/// `kafka-configs --alter --entity-type brokers` with `config`, for
/// broker `broker` or (`None`) the cluster default.
fn alter_broker_config(addr: &str, broker: Option<&str>, config: &str) {
    let mut args = vec![
        "--bootstrap-server",
        addr,
        "--alter",
        "--entity-type",
        "brokers",
    ];
    match broker {
        Some(id) => args.extend(["--entity-name", id]),
        None => args.push("--entity-default"),
    }
    args.extend(["--add-config", config]);
    common::sasl::configs_ok(&args);
}

#[test]
fn per_ip_limits_change_at_runtime_with_kafka_configs() {
    if !common::kafka_tools_ready("dynamic max.connections.per.ip with kafka-configs") {
        return;
    }
    let broker = common::start(&[]);
    let addr = broker.bootstrap().to_string();
    let held = hold(&addr, 3);
    // The cluster default: from now on 3 per IP; the 3 held stay open.
    alter_broker_config(&addr, None, "max.connections.per.ip=3");
    until_refused(&addr, "after max.connections.per.ip=3");
    // As in Kafka, a lowered limit closes no live connection.
    let held: Vec<_> = held.into_iter().filter_map(answers).collect();
    assert_eq!(held.len(), 3, "a live connection was closed");
    drop(held);
    // Slots given back: kafka-configs needs two connections.
    drop(hold(&addr, 2));
    std::thread::sleep(Duration::from_secs(1));
    // This broker's override for 127.0.0.1: 5.
    alter_broker_config(
        &addr,
        Some("1"),
        "max.connections.per.ip.overrides=127.0.0.1:5",
    );
    let held = hold(&addr, 5);
    assert!(served(&addr).is_none(), "a 6th connection was served");
    drop(held);
    assert!(
        broker
            .output()
            .contains("address already has the configured maximum of 5 connections"),
        "{}",
        broker.output()
    );
}

#[test]
fn max_connections_changes_at_runtime_with_kafka_configs() {
    if !common::kafka_tools_ready("dynamic max.connections with kafka-configs") {
        return;
    }
    let broker = common::start(&[]);
    let addr = broker.bootstrap().to_string();
    let held = hold(&addr, 3);
    alter_broker_config(&addr, None, "max.connections=3");
    until_refused(&addr, "after max.connections=3");
    let held: Vec<_> = held.into_iter().filter_map(answers).collect();
    assert_eq!(held.len(), 3, "a live connection was closed");
    drop(held);
    // The slots come back: exactly 3 again.
    let held = hold(&addr, 3);
    assert!(served(&addr).is_none(), "a 4th connection was served");
    drop(held);
    assert!(
        broker.output().contains("max.connections (3) reached"),
        "{}",
        broker.output()
    );
}

#[test]
fn a_listener_creation_rate_set_at_runtime_with_kafka_configs_delays_accepting() {
    if !common::kafka_tools_ready("dynamic max.connection.creation.rate with kafka-configs") {
        return;
    }
    let broker = common::start(&[
        ("quota.window.num", "2"),
        ("quota.window.size.seconds", "1"),
    ]);
    let addr = broker.bootstrap().to_string();
    // Per-listener keys are per broker in Kafka.
    alter_broker_config(
        &addr,
        Some("1"),
        "listener.name.plaintext.max.connection.creation.rate=2",
    );
    for _ in 0..600 {
        if broker
            .output()
            .contains("max.connection.creation.rate changed")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        broker
            .output()
            .contains("max.connection.creation.rate changed"),
        "{}",
        broker.output()
    );
    // As with the static key: every connection is served, 12 of them at 2
    // per second not in under 2 s (a lower bound only).
    let started = std::time::Instant::now();
    for i in 0..12 {
        assert!(served(&addr).is_some(), "connection {i} was closed");
    }
    let took = started.elapsed();
    eprintln!("12 connections at a dynamic 2/s took {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "12 connections were accepted in {took:?}"
    );
    // And the broker-wide key at the cluster default is accepted too
    // (Kafka's dynamic key; refused before as read at start only).
    alter_broker_config(&addr, None, "max.connection.creation.rate=1000");
}

/// The address `listener` of `node` listens on (its line may follow the
/// client listener's, which the start waited for); bounded.
fn listening_on(node: &sluice_testkit::SluiceProcess, listener: &str) -> String {
    let prefix = format!("listening on {listener}://");
    for _ in 0..600 {
        let found = node.output().lines().find_map(|l| {
            l.split_once(prefix.as_str())
                .map(|(_, a)| a.trim().to_string())
        });
        if let Some(addr) = found {
            return addr;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {prefix} line in\n{}", node.output())
}

#[test]
fn the_inter_broker_listener_is_outside_max_connections_but_counts_in_it() {
    let c = SluiceCluster::start(
        env!("CARGO_BIN_EXE_sluice"),
        ClusterLayout::Combined(1),
        &[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:{client_port},REPLICATION://127.0.0.1:0,\
                 CONTROLLER://127.0.0.1:{controller_port}",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
            ("inter.broker.listener.name", "REPLICATION"),
            ("max.connections", "3"),
            ("listener.name.replication.max.connections", "2"),
        ],
    )
    .expect("the node starts");
    let clients = c.broker_addr(1).to_string();
    let brokers = listening_on(&c.node(1).process, "REPLICATION");
    // The client listener: max.connections.
    let held = hold(&clients, 3);
    assert!(served(&clients).is_none(), "a 4th client connection");
    // The inter-broker listener is not held back by the full broker-wide
    // count, only by its own limit.
    let inter = hold(&brokers, 2);
    assert!(served(&brokers).is_none(), "a 3rd inter-broker connection");
    // Its connections count in the total: with the clients gone, one
    // client connection fits in max.connections (2 + 1).
    drop(held);
    let one = hold(&clients, 1);
    until_refused(&clients, "2 inter-broker + 1 client at max.connections=3");
    drop((one, inter));
    drop(hold(&clients, 3));
    let output = c.node(1).process.output();
    assert!(
        output.contains("listener.name.REPLICATION.max.connections (2) reached"),
        "{output}"
    );
}

#[test]
fn a_listener_connection_limit_set_at_runtime_with_kafka_configs_bounds_that_listener() {
    if !common::kafka_tools_ready("dynamic listener.name.<l>.max.connections with kafka-configs") {
        return;
    }
    let broker = common::start(&[]);
    let addr = broker.bootstrap().to_string();
    let held = hold(&addr, 3);
    alter_broker_config(
        &addr,
        Some("1"),
        "listener.name.plaintext.max.connections=3",
    );
    until_refused(&addr, "after listener.name.plaintext.max.connections=3");
    // As with max.connections, the live ones stay open.
    let held: Vec<_> = held.into_iter().filter_map(answers).collect();
    assert_eq!(held.len(), 3, "a live connection was closed");
    drop(held);
    let held = hold(&addr, 3);
    assert!(served(&addr).is_none(), "a 4th connection was served");
    drop(held);
    assert!(
        broker
            .output()
            .contains("listener.name.PLAINTEXT.max.connections (3) reached"),
        "{}",
        broker.output()
    );
}

//! Security between nodes (issue 20), through real processes and real
//! clients: a 3-node cluster whose only listeners are SASL_SSL (clients
//! and inter-broker traffic: replica fetchers log in with PLAIN as
//! `User:broker`) and an SSL controller listener with mutual TLS (the
//! controller channel and the raft RPC between voters; the nodes'
//! principal is their certificate's subject). The StandardAuthorizer is
//! on with `allow.everyone.if.no.acl.found=false`; both broker principals
//! are super users, alice has ACLs on one topic only.
//!
//! Kafka's `kafka-metadata-quorum --bootstrap-controller` describes the
//! quorum with the nodes' certificate and is refused (CLUSTER_AUTHORIZATION_
//! FAILED) with the client certificate, as Kafka's ControllerApis answers.
//! kcat produces with `acks=all` (RF 3, min ISR 2) and consumes as alice;
//! the partition leader is killed and the cluster still takes and serves
//! records; the killed node comes back with a wrong inter-broker password:
//! it logs why its fetchers cannot log in, stays out of the ISR, and keeps
//! running. A topic alice has no ACL for is refused. Helpers:
//! `common/sasl.rs` (kcat), `common/tls.rs` (`sluice tls init`).

mod common;

use std::time::{Duration, Instant};

use common::acls::{kafka_acls_ok, STANDARD_AUTHORIZER};
use common::sasl::{command_config_over, kcat_over, Transport};
use common::tls::{p, tls_init};
use common::{kafka_tool_output, kafka_tools_ready};
use sluice_testkit::{locate_sluice_binary, ClusterLayout, SluiceCluster};

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="broker-secret" user_broker="broker-secret" user_alice="alice-secret";"#;
const WRONG_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="not-the-secret" user_broker="broker-secret" user_alice="alice-secret";"#;
/// Opens mutual TLS to a voter with the client certificate and sends the
/// start of a metadata quorum RPC frame (`len: u32 | version 1 | ...`).
const RAFT_PROBE: &str = r#"
import socket, ssl, sys
host, port, ca, cert, key = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname=host)
s.sendall(b"\x00\x00\x00\x09\x01" + b"\x00" * 9)
try:
    print("answered" if s.recv(100) else "closed")
except Exception as e:
    print("closed", e)
"#;

const NODE_PRINCIPAL: &str = "User:CN=localhost,OU=brokers,O=Sluice test";

fn start_secured(dir: &std::path::Path) -> SluiceCluster {
    let keystore = p(dir, "broker.pem");
    let truststore = p(dir, "ca.pem");
    let super_users = format!("User:broker;{NODE_PRINCIPAL}");
    let extra: Vec<(&str, &str)> = vec![
        (
            "listeners",
            "SASL_SSL://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        ),
        (
            "listener.security.protocol.map",
            "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        ),
        ("inter.broker.listener.name", "SASL_SSL"),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &keystore),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", &truststore),
        ("listener.name.controller.ssl.client.auth", "required"),
        ("sasl.enabled.mechanisms", "PLAIN"),
        ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS),
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("allow.everyone.if.no.acl.found", "false"),
        ("super.users", &super_users),
        ("min.insync.replicas", "2"),
        ("offsets.topic.replication.factor", "3"),
        ("auto.create.topics.enable", "false"),
    ];
    SluiceCluster::start(
        locate_sluice_binary().unwrap(),
        ClusterLayout::Combined(3),
        &extra,
    )
    .expect("start a 3-node cluster secured between nodes")
}

/// kcat as `user` over TLS; asserts it succeeded and returns stdout.
fn kcat_ok(ca: &str, addr: &str, user: &str, password: &str, args: &[&str], stdin: &str) -> String {
    let (ok, out, err) = kcat_over(
        Transport::Tls { ca },
        addr,
        "PLAIN",
        user,
        password,
        args,
        stdin,
    );
    assert!(ok, "kcat {args:?} as {user}: {out}\n{err}");
    out
}

/// (leader, isr) of partition 0 of `topic`, from kcat -L.
fn leader_and_isr(ca: &str, addr: &str, topic: &str) -> Option<(i32, Vec<i32>)> {
    let (ok, out, _) = kcat_over(
        Transport::Tls { ca },
        addr,
        "PLAIN",
        "broker",
        "broker-secret",
        &["-L", "-t", topic, "-m", "10"],
        "",
    );
    if !ok {
        return None;
    }
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("partition 0,"))?;
    let leader = line
        .split("leader ")
        .nth(1)?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()?;
    let isr = line
        .split("isrs: ")
        .nth(1)?
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    Some((leader, isr))
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn produce(ca: &str, bootstrap: &str, user: &str, password: &str, topic: &str, from: usize) {
    let records: String = (from..from + 20).map(|i| format!("r-{i}\n")).collect();
    kcat_ok(
        ca,
        bootstrap,
        user,
        password,
        &["-P", "-t", topic, "-X", "acks=all"],
        &records,
    );
}

fn consume_all(ca: &str, bootstrap: &str, topic: &str, n: usize) {
    let out = kcat_ok(
        ca,
        bootstrap,
        "alice",
        "alice-secret",
        &["-C", "-t", topic, "-o", "beginning", "-e", "-q"],
        "",
    );
    for i in 0..n {
        assert!(
            out.contains(&format!("r-{i}\n")),
            "record r-{i} missing:\n{out}"
        );
    }
}

/// Creates `topic` (1 partition, RF 3) with Kafka's kafka-topics as the
/// super user of `admin` (a --command-config file).
fn create_replicated_topic(bootstrap: &str, admin: &str, topic: &str) {
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            admin,
            "--create",
            "--topic",
            topic,
            "--partitions",
            "1",
            "--replication-factor",
            "3",
        ],
    );
    assert!(ok, "create topic {topic}: {out}\n{err}");
}

#[test]
fn a_cluster_secured_between_nodes_replicates_fails_over_and_refuses_a_wrong_password() {
    if !kafka_tools_ready("interbroker_security") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    tls_init(tmp.path());
    let ca = p(tmp.path(), "ca.pem");
    let mut cluster = start_secured(tmp.path());
    let bootstrap = cluster.bootstrap();
    let first = bootstrap.split(',').next().unwrap().to_string();

    // The super user creates the topic and alice's ACLs over SASL_SSL.
    let admin = command_config_over(
        Transport::Tls { ca: &ca },
        tmp.path(),
        "PLAIN",
        "broker",
        "broker-secret",
    );
    create_replicated_topic(&first, &admin, "secured");
    kafka_acls_ok(
        &first,
        &admin,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "All",
            "--topic",
            "secured",
        ],
    );
    // Replication needs the fetchers' SASL_SSL login: the ISR fills up.
    wait_for("a full ISR", || {
        leader_and_isr(&ca, &first, "secured").filter(|(_, isr)| isr.len() == 3)
    });
    produce(&ca, &bootstrap, "alice", "alice-secret", "secured", 0);
    consume_all(&ca, &bootstrap, "secured", 20);

    // The controller listener authorizes as Kafka's ControllerApis:
    // kafka-metadata-quorum with the nodes' certificate (a super user) may
    // DESCRIBE the cluster, with the client certificate it is refused.
    let voter = cluster.controller_addr(1).unwrap();
    let quorum = |keystore: &str| {
        let props = tmp.path().join(format!("{keystore}.properties"));
        std::fs::write(
            &props,
            format!(
                "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca}\n\
                 ssl.keystore.type=PEM\nssl.keystore.location={}\n",
                p(tmp.path(), keystore)
            ),
        )
        .unwrap();
        kafka_tool_output(
            "org.apache.kafka.tools.MetadataQuorumCommand",
            &[
                "--bootstrap-controller",
                &voter,
                "--command-config",
                props.to_str().unwrap(),
                "describe",
                "--status",
            ],
        )
    };
    let (ok, out, err) = quorum("broker.pem");
    assert!(
        ok && out.contains("LeaderId"),
        "as the nodes' principal: {out}\n{err}"
    );
    let (ok, out, err) = quorum("client.pem");
    assert!(
        !ok && format!("{out}{err}").contains("ClusterAuthorization"),
        "as User:CN=sluice-client: {out}\n{err}"
    );

    // The metadata quorum's RPC needs CLUSTER_ACTION too: a raft frame
    // over mutual TLS with the client certificate is closed unanswered.
    let (host, port) = voter.rsplit_once(':').unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", RAFT_PROBE, host, port, &ca])
        .arg(p(tmp.path(), "client-cert.pem"))
        .arg(p(tmp.path(), "client-key.pem"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with("closed"),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the quorum RPC denial in the log", || {
        cluster
            .node(1)
            .process
            .output()
            .lines()
            .any(|l| l.contains("CN=sluice-client") && l.contains("metadata quorum RPC"))
            .then_some(())
    });

    // ACLs are on: alice may not write a topic she has no ACL for.
    let (ok, _, err) = kcat_over(
        Transport::Tls { ca: &ca },
        &bootstrap,
        "PLAIN",
        "alice",
        "alice-secret",
        &[
            "-P",
            "-t",
            "secured-other",
            "-X",
            "message.timeout.ms=10000",
        ],
        "x\n",
    );
    assert!(
        !ok || err.contains("authoriz"),
        "alice wrote a topic without ACLs: {err}"
    );

    // Kill the leader: another replica leads (the controller path may
    // fail over too), and produce with acks=all and consume still work.
    let (leader, _) = leader_and_isr(&ca, &first, "secured").unwrap();
    cluster.node_mut(leader).process.kill().unwrap();
    let survivors: String = cluster.bootstrap();
    let any = survivors.split(',').next().unwrap().to_string();
    wait_for("a new leader", || {
        leader_and_isr(&ca, &any, "secured").filter(|(l, _)| *l != leader && *l > 0)
    });
    produce(&ca, &survivors, "alice", "alice-secret", "secured", 20);
    consume_all(&ca, &survivors, "secured", 40);

    // The killed node comes back with a wrong inter-broker password: its
    // fetchers cannot log in, so it stays out of the ISR, and says why.
    cluster
        .node_mut(leader)
        .process
        .restart_with(&[("listener.name.sasl_ssl.plain.sasl.jaas.config", WRONG_JAAS)])
        .expect("the node restarts (its controller path is unaffected)");
    let output = wait_for("the fetchers' authentication failure in the log", || {
        let out = cluster.node(leader).process.output();
        out.contains("SASL authentication (PLAIN as broker)")
            .then_some(out)
    });
    assert!(output.contains("Authentication failed"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
    std::thread::sleep(Duration::from_secs(3));
    let (_, isr) = leader_and_isr(&ca, &any, "secured").unwrap();
    assert!(
        !isr.contains(&leader),
        "node {leader} joined the ISR without logging in: {isr:?}"
    );
    assert!(cluster.node_mut(leader).process.is_running());
    produce(&ca, &survivors, "alice", "alice-secret", "secured", 40);
    consume_all(&ca, &survivors, "secured", 60);
}

const NODE_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="node" password="node-secret" user_node="node-secret";"#;
const WRONG_NODE_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="node" password="wrong" user_node="node-secret";"#;

/// The controller listener over SASL_SSL (PLAIN, as `User:node`) and the
/// brokers logging in to each other with SCRAM-SHA-512 (credentials from
/// `storage format --add-scram`): replication works; a node restarted with
/// a wrong controller password never registers, says why, and the others
/// keep serving.
#[test]
fn sasl_ssl_controller_listener_and_scram_between_brokers() {
    if !kafka_tools_ready("interbroker_security") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    tls_init(tmp.path());
    let ca = p(tmp.path(), "ca.pem");
    let keystore = p(tmp.path(), "broker.pem");
    let extra: Vec<(&str, &str)> = vec![
        (
            "listeners",
            "SASL_SSL://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        ),
        (
            "listener.security.protocol.map",
            "SASL_SSL:SASL_SSL,CONTROLLER:SASL_SSL",
        ),
        ("inter.broker.listener.name", ""),
        ("security.inter.broker.protocol", "SASL_SSL"),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &keystore),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", &ca),
        (
            "listener.name.sasl_ssl.sasl.enabled.mechanisms",
            "PLAIN,SCRAM-SHA-512",
        ),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS),
        (
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";"#,
        ),
        ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
        ("listener.name.controller.sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.controller.plain.sasl.jaas.config", NODE_JAAS),
        ("sasl.mechanism.controller.protocol", "PLAIN"),
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("allow.everyone.if.no.acl.found", "false"),
        ("super.users", "User:broker;User:node"),
        ("min.insync.replicas", "2"),
        ("auto.create.topics.enable", "false"),
    ];
    let mut cluster = SluiceCluster::start_formatted(
        locate_sluice_binary().unwrap(),
        ClusterLayout::Combined(3),
        &extra,
        &[
            "--add-scram",
            "SCRAM-SHA-512=[name=broker,password=broker-secret]",
        ],
    )
    .expect("start a 3-node cluster with a SASL_SSL controller listener");
    let bootstrap = cluster.bootstrap();
    let first = bootstrap.split(',').next().unwrap().to_string();
    let admin = command_config_over(
        Transport::Tls { ca: &ca },
        tmp.path(),
        "PLAIN",
        "broker",
        "broker-secret",
    );
    create_replicated_topic(&first, &admin, "scram");
    // The followers fetch with their SCRAM-SHA-512 login: the ISR fills.
    wait_for("a full ISR", || {
        leader_and_isr(&ca, &first, "scram").filter(|(_, isr)| isr.len() == 3)
    });
    produce(&ca, &bootstrap, "broker", "broker-secret", "scram", 0);

    // Node 3 comes back with a wrong controller password: neither its
    // registration nor its quorum RPC gets past the other voters' gates.
    // Its first login fails at once; no need for the whole start timeout.
    cluster
        .node_mut(3)
        .process
        .set_start_timeout(Duration::from_secs(30));
    let err = cluster
        .node_mut(3)
        .process
        .restart_with(&[(
            "listener.name.controller.plain.sasl.jaas.config",
            WRONG_NODE_JAAS,
        )])
        .expect_err("a node with a wrong controller password must not register");
    let output = cluster.node(3).process.output();
    let _ = err;
    assert!(
        output.contains("SASL authentication (PLAIN as node)")
            && output.contains("Authentication failed"),
        "no authentication failure in node 3's log:\n{}",
        &output[output.len().saturating_sub(6000)..]
    );
    assert!(!output.contains("panicked"), "{output}");
    let survivors = cluster.bootstrap();
    produce(&ca, &survivors, "broker", "broker-secret", "scram", 20);
    let out = kcat_ok(
        &ca,
        &survivors,
        "broker",
        "broker-secret",
        &["-C", "-t", "scram", "-o", "beginning", "-e", "-q"],
        "",
    );
    for i in 0..40 {
        assert!(
            out.contains(&format!("r-{i}\n")),
            "record r-{i} missing:\n{out}"
        );
    }
}

//! KIP-226 reload of the keystore a node dials its peers with, through
//! real processes: a 3-node cluster whose client and inter-broker listener
//! is SSL with mutual TLS (`ssl.client.auth=required`), the
//! StandardAuthorizer on with the nodes' certificate subject a super user,
//! one RF 3 topic led by node 3 and written with `acks=all`.
//!
//! Kafka's `kafka-configs` swaps node 2's
//! `listener.name.ssl.ssl.keystore.location` for a certificate from the
//! same CA with another subject (`ssl.allow.dn.changes=true`); node 3 is
//! restarted and made leader again, so node 2's replica fetcher dials a
//! peer anew. That peer names it by the new subject, which is no super
//! user: its fetches are denied (the audit line shows the new principal,
//! which proves the new certificate is used). Once kafka-acls grants that
//! principal ClusterAction, replication continues: the ISR fills up and
//! kcat writes and reads with `acks=all`.
//!
//! Skips loudly without java or the jars unless `SLUICE_REQUIRE_CLIENTS=1`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::acls::{kafka_acls_ok, STANDARD_AUTHORIZER};
use common::tls::{issue_broker_pem, p, tls_init};
use common::{kafka_tool_output, kafka_tools_ready};
use sluice_testkit::{locate_sluice_binary, ClusterLayout, SluiceCluster};

/// The principal of node 2's new certificate.
const RENEWED: &str = "User:CN=node-2-renewed,OU=brokers,O=Sluice test";
const SUPER_USERS: &str = "User:ANONYMOUS;User:CN=localhost,OU=brokers,O=Sluice test;User:CN=sluice-client,OU=clients,O=Sluice test";

/// kcat over mutual TLS with the client certificate of `sluice tls init`.
fn kcat(dir: &std::path::Path, addr: &str, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("timeout")
        .env_remove("LD_LIBRARY_PATH")
        .args(["120", "kcat", "-b", addr, "-X", "security.protocol=ssl"])
        .arg("-X")
        .arg(format!("ssl.ca.location={}", p(dir, "ca.pem")))
        .arg("-X")
        .arg(format!(
            "ssl.certificate.location={}",
            p(dir, "client-cert.pem")
        ))
        .arg("-X")
        .arg(format!("ssl.key.location={}", p(dir, "client-key.pem")))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat runs (scripts/setup installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// (leader, ISR) of partition 0 of `topic`, from kcat -L.
fn leader_and_isr(dir: &std::path::Path, addr: &str, topic: &str) -> Option<(i32, Vec<i32>)> {
    let (ok, out) = kcat(dir, addr, &["-L", "-t", topic, "-m", "10"], "");
    let line = out
        .lines()
        .find(|l| ok && l.trim_start().starts_with("partition 0,"))?;
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

/// Waits until node `leader` leads partition 0 of `peers` with all three
/// replicas in sync.
fn wait_led_by(dir: &std::path::Path, addr: &str, leader: i32) {
    wait_for(&format!("node {leader} leading a full ISR"), || {
        leader_and_isr(dir, addr, "peers").filter(|(l, isr)| *l == leader && isr.len() == 3)
    });
}

/// Kafka's kafka-configs (a Scala tool: its log4j setup differs from the
/// Java tools' one that `kafka_tool_output` passes).
fn config_command(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("java")
        .args(["-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(common::root().join(".cache/kafka/lib/*"))
        .arg("kafka.admin.ConfigCommand")
        .args(args)
        .output()
        .expect("run java");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn produce(dir: &std::path::Path, bootstrap: &str, from: usize) {
    let records: String = (from..from + 20).map(|i| format!("r-{i}\n")).collect();
    let (ok, out) = kcat(
        dir,
        bootstrap,
        &["-P", "-t", "peers", "-X", "acks=all"],
        &records,
    );
    assert!(ok, "produce: {out}");
}

#[test]
fn a_reloaded_inter_broker_keystore_is_used_to_dial_peers() {
    if !kafka_tools_ready("interbroker_tls_reload") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    tls_init(dir);
    let (keystore, truststore) = (p(dir, "broker.pem"), p(dir, "ca.pem"));
    let extra: Vec<(&str, &str)> = vec![
        (
            "listeners",
            "SSL://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        ),
        (
            "listener.security.protocol.map",
            "SSL:SSL,CONTROLLER:PLAINTEXT",
        ),
        ("inter.broker.listener.name", "SSL"),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &keystore),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", &truststore),
        ("ssl.client.auth", "required"),
        ("listener.name.ssl.ssl.allow.dn.changes", "true"),
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("allow.everyone.if.no.acl.found", "false"),
        // ANONYMOUS: the PLAINTEXT controller listener.
        ("super.users", SUPER_USERS),
        ("min.insync.replicas", "2"),
        ("offsets.topic.replication.factor", "3"),
        ("auto.create.topics.enable", "false"),
    ];
    let mut cluster = SluiceCluster::start(
        locate_sluice_binary().unwrap(),
        ClusterLayout::Combined(3),
        &extra,
    )
    .expect("start a 3-node cluster with mutual TLS between brokers");
    let bootstrap = cluster.bootstrap();
    let first = bootstrap.split(',').next().unwrap().to_string();
    let admin = dir.join("admin.properties");
    std::fs::write(
        &admin,
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={truststore}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\n",
            p(dir, "client.pem")
        ),
    )
    .unwrap();
    let admin = admin.display().to_string();
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &first,
            "--command-config",
            &admin,
            "--create",
            "--topic",
            "peers",
            "--replica-assignment",
            "3:2:1",
        ],
    );
    assert!(ok, "create topic: {out}\n{err}");
    wait_led_by(dir, &first, 3);
    produce(dir, &bootstrap, 0);

    // Node 2 dials its peers with a certificate from the same CA for
    // another subject.
    let renewed = issue_broker_pem(dir, "node-2-renewed", "renewed.pem");
    let (ok, out, err) = config_command(&[
        "--bootstrap-server",
        &first,
        "--command-config",
        &admin,
        "--entity-type",
        "brokers",
        "--entity-name",
        "2",
        "--alter",
        "--add-config",
        &format!(
            "listener.name.ssl.ssl.keystore.location={}",
            renewed.display()
        ),
    ]);
    assert!(ok, "kafka-configs: {out}\n{err}");
    wait_for("node 2 to reload its peer clients", || {
        cluster
            .node(2)
            .process
            .output()
            .contains("connections to peers on this listener use the reloaded SSL keystore")
            .then_some(())
    });

    // Node 3 (the leader) restarts and leads again after a preferred
    // election: node 2's fetcher dials a peer anew, with the new
    // certificate, and is denied until its principal may ClusterAction.
    cluster
        .node_mut(3)
        .process
        .restart()
        .expect("restart node 3");
    let bootstrap = cluster.bootstrap();
    wait_for("node 3 back in the ISR", || {
        leader_and_isr(dir, &first, "peers").filter(|(_, isr)| isr.contains(&3))
    });
    wait_for("a preferred election", || {
        let (ok, _, _) = kafka_tool_output(
            "org.apache.kafka.tools.LeaderElectionCommand",
            &[
                "--bootstrap-server",
                &first,
                "--admin.config",
                &admin,
                "--election-type",
                "PREFERRED",
                "--topic",
                "peers",
                "--partition",
                "0",
            ],
        );
        leader_and_isr(dir, &first, "peers")
            .filter(|(l, _)| ok || *l == 3)
            .map(|_| ())
    });
    let denied = format!("Principal = {RENEWED} is Denied operation = CLUSTER_ACTION");
    wait_for("a peer denying node 2's new principal", || {
        [1, 3]
            .iter()
            .any(|&id| cluster.node(id).process.output().contains(&denied))
            .then_some(())
    });
    kafka_acls_ok(
        &first,
        &admin,
        &[
            "--add",
            "--allow-principal",
            RENEWED,
            "--operation",
            "ClusterAction",
            "--cluster",
        ],
    );
    wait_led_by(dir, &first, 3);
    produce(dir, &bootstrap, 20);
    let (ok, out) = kcat(
        dir,
        &bootstrap,
        &["-C", "-t", "peers", "-o", "beginning", "-e", "-q"],
        "",
    );
    assert!(ok, "consume: {out}");
    for i in 0..40 {
        assert!(
            out.contains(&format!("r-{i}\n")),
            "record r-{i} missing:\n{out}"
        );
    }
}

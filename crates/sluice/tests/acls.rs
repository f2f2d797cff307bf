//! ACL authorization (issue 20) through the real binary: Kafka's
//! `kafka-acls` adds, lists and removes ACLs on Sluice; kcat (librdkafka)
//! and confluent-kafka producers and consumers are refused without ACLs
//! and served with them; DENY beats ALLOW; PREFIXED patterns apply; a
//! principal without rights learns nothing about topic names from
//! Metadata; every denial leaves an audit line. Helpers:
//! `common/acls.rs`, `common/sasl.rs`.

mod common;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::{
    CreateAclsRequest, DescribeAclsRequest, DescribeClusterRequest, MetadataRequest,
};

use common::acls::*;
use common::sasl::*;
use common::{create_topic, kafka_tools_ready, sb, RawClient};

/// DescribeAcls of every ACL (Kafka's `AclBindingFilter.ANY`).
fn describe_any() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)
}

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

fn metadata_of(c: &mut Conn, names: &[&str], auto_create: bool) -> Vec<(String, i16)> {
    let req = MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(sb(n)))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(auto_create);
    let resp = c.send(12, &req).expect("Metadata answered");
    let mut out: Vec<(String, i16)> = resp
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                t.error_code,
            )
        })
        .collect();
    out.sort();
    out
}

/// Waits (bounded) for the audit line `line` in the broker's output: the
/// log is read from the process's stderr by another thread.
fn audited(sluice: &sluice_testkit::SluiceProcess, line: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sluice.output().contains(line) {
        assert!(
            std::time::Instant::now() < deadline,
            "no audit line {line:?} in:\n{}",
            sluice.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn login(addr: &str, user: &str) -> Conn {
    let mut c = Conn::connect(addr);
    let (code, msg) = c.plain_login(user, &format!("{user}-secret"));
    assert_eq!(code, 0, "{user}: {msg:?}");
    c
}

#[test]
fn metadata_hides_topics_and_reports_operations() {
    let (sluice, addr) = start_authorized(&[]);
    let mut admin = RawClient::connect(sluice.bootstrap());
    create_topic(&mut admin, "secret", &[]);
    create_topic(&mut admin, "visible", &[]);
    let mut alice = login(&addr, "alice");
    // No ACL: an existing and a missing topic look the same (no leak),
    // and neither is created.
    assert_eq!(
        metadata_of(&mut alice, &["secret", "ghost"], true),
        [
            ("ghost".to_string(), TOPIC_AUTHORIZATION_FAILED),
            ("secret".to_string(), TOPIC_AUTHORIZATION_FAILED)
        ]
    );
    // The admin (a super user on the SASL listener) allows alice to
    // describe every topic that starts with "vis" and to read "ghost-2".
    let mut root = login(&addr, "admin");
    let created = root
        .send(
            3,
            &CreateAclsRequest::default()
                .with_creations(vec![creation("vis", 4, 8), creation("ghost-2", 3, 3)]),
        )
        .unwrap();
    assert!(
        created.results.iter().all(|r| r.error_code == 0),
        "{created:?}"
    );
    // All topics: only the described ones are listed.
    let all = alice
        .send(12, &MetadataRequest::default().with_topics(None))
        .unwrap();
    let names: Vec<String> = all
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(names, ["visible"]);
    // READ implies DESCRIBE; auto-creation still needs CREATE.
    assert_eq!(
        metadata_of(&mut alice, &["ghost-2", "visible"], true),
        [
            ("ghost-2".to_string(), TOPIC_AUTHORIZATION_FAILED),
            ("visible".to_string(), 0)
        ]
    );
    audited(
        &sluice,
        "Principal = User:alice is Denied operation = CREATE from host = 127.0.0.1 on resource = Topic:LITERAL:ghost-2",
    );
    // Authorized operations: DESCRIBE only (bit 8), cluster: none.
    let with_ops = alice
        .send(
            10,
            &MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(TopicName(sb("visible"))))
                ]))
                .with_include_topic_authorized_operations(true),
        )
        .unwrap();
    assert_eq!(with_ops.topics[0].topic_authorized_operations, 1 << 8);
    let cluster = alice
        .send(
            0,
            &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        )
        .unwrap();
    assert_eq!(cluster.cluster_authorized_operations, 0);
    // DescribeAcls needs DESCRIBE on the cluster.
    let described = alice.send(3, &describe_any()).unwrap();
    assert_eq!(described.error_code, 31);
    let described = root.send(3, &describe_any()).unwrap();
    assert_eq!(described.error_code, 0);
    assert_eq!(described.resources.len(), 2, "{described:?}");
}

/// An ALLOW ACL for alice on a TOPIC pattern (`pattern`: 3 LITERAL,
/// 4 PREFIXED) and operation code `op`.
fn creation(
    name: &str,
    pattern: i8,
    op: i8,
) -> kafka_protocol::messages::create_acls_request::AclCreation {
    kafka_protocol::messages::create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(sb(name))
        .with_resource_pattern_type(pattern)
        .with_principal(sb("User:alice"))
        .with_host(sb("*"))
        .with_operation(op)
        .with_permission_type(3)
}

#[test]
fn without_an_authorizer_the_acl_apis_are_disabled() {
    let sluice = common::start(&[]);
    let mut c = RawClient::connect(sluice.bootstrap());
    let d = c.send(3, &describe_any());
    assert_eq!(d.error_code, 54, "SECURITY_DISABLED: {d:?}");
}

#[test]
fn an_authorizer_sluice_cannot_load_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--override"])
        .arg(format!("log.dirs={}", dir.path().display()))
        .args([
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "--override",
            "authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("authorizer.class.name") && err.contains("StandardAuthorizer"),
        "{err}"
    );
}

#[test]
fn kafka_acls_and_real_clients() {
    if !kafka_tools_ready("ACLs with kafka-acls") {
        return;
    }
    let (sluice, addr) = start_authorized(&[]);
    let mut admin = RawClient::connect(sluice.bootstrap());
    create_topic(&mut admin, "pay-1", &[]);
    create_topic(&mut admin, "pay-py", &[]);
    let dir = tempfile::tempdir().unwrap();
    let root = command_config(dir.path(), "PLAIN", "admin", "admin-secret");
    let bob = command_config(dir.path(), "PLAIN", "bob", "bob-secret");

    // No ACL: alice may not write.
    let (ok, _, err) = kcat(
        &addr,
        "PLAIN",
        "alice",
        "alice-secret",
        &["-P", "-t", "pay-1"],
        "a\n",
    );
    assert!(!ok && err.contains("Topic authorization failed"), "{err}");

    // A PREFIXED ALLOW for reading and writing every "pay" topic.
    kafka_acls_ok(
        &addr,
        &root,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--operation",
            "Write",
            "--topic",
            "pay",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    kafka_acls_ok(
        &addr,
        &root,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--group",
            "py-",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    let listed = kafka_acls_ok(
        &addr,
        &root,
        &[
            "--list",
            "--topic",
            "pay",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    assert!(
        listed.contains("principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW"),
        "{listed}"
    );
    kcat_round_trip(&addr, "PLAIN", "alice", "alice-secret", "pay-1");
    // Bob has no ACL: refused, and he may not list ACLs either.
    let (ok, _, err) = kcat(
        &addr,
        "PLAIN",
        "bob",
        "bob-secret",
        &["-P", "-t", "pay-1"],
        "b\n",
    );
    assert!(!ok && err.contains("Topic authorization failed"), "{err}");
    let (ok, out, err) = kafka_acls(&addr, &bob, &["--list"]);
    assert!(!ok && (out + &err).contains("ClusterAuthorizationException"));
    audited(
        &sluice,
        "Principal = User:bob is Denied operation = DESCRIBE from host = 127.0.0.1 on resource = Topic:LITERAL:pay-1 for request = Metadata",
    );

    // A consumer group: confluent-kafka produces and consumes in "py-PLAIN".
    if let Some(python) = venv_python("ACLs with confluent-kafka") {
        python_round_trip(&python, &addr, "PLAIN", "alice", "alice-secret", "pay-py");
    }

    // DENY beats ALLOW, and removing it restores the ALLOW.
    let deny = [
        "--deny-principal",
        "User:alice",
        "--operation",
        "Write",
        "--topic",
        "pay-1",
    ];
    kafka_acls_ok(&addr, &root, &[&["--add"][..], &deny].concat());
    let (ok, _, err) = kcat(
        &addr,
        "PLAIN",
        "alice",
        "alice-secret",
        &["-P", "-t", "pay-1"],
        "c\n",
    );
    assert!(!ok && err.contains("Topic authorization failed"), "{err}");
    kafka_acls_ok(
        &addr,
        &root,
        &[&["--remove", "--force"][..], &deny].concat(),
    );
    let (ok, out, err) = kcat(
        &addr,
        "PLAIN",
        "alice",
        "alice-secret",
        &["-P", "-t", "pay-1"],
        "d\n",
    );
    assert!(ok, "{out}\n{err}");
}

/// `sluice acl create|list|delete` on a PLAINTEXT listener whose
/// User:ANONYMOUS is a super user; the transcript of the same steps.
fn acl_cli_steps(bootstrap: &str) -> Vec<String> {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("acl")
            .args(args)
            .args(["--brokers", bootstrap])
            .output()
            .unwrap();
        format!(
            "{} {}{}",
            out.status.success(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    vec![
        run(&[
            "create",
            "--resource-type",
            "topic",
            "--name",
            "pay",
            "--pattern",
            "prefixed",
            "--principal",
            "User:alice",
            "--operation",
            "read",
        ]),
        run(&[
            "create",
            "--resource-type",
            "group",
            "--name",
            "g",
            "--principal",
            "User:bob",
            "--operation",
            "read",
            "--permission",
            "deny",
        ]),
        run(&[
            "create",
            "--resource-type",
            "cluster",
            "--name",
            "foo",
            "--principal",
            "User:bob",
            "--operation",
            "alter",
        ]),
        run(&["list"]),
        run(&[
            "list",
            "--resource-type",
            "topic",
            "--name",
            "pay-1",
            "--pattern",
            "match",
        ]),
        run(&[
            "delete",
            "--resource-type",
            "topic",
            "--name",
            "pay-1",
            "--pattern",
            "match",
        ]),
        run(&["list"]),
    ]
}

#[test]
fn sluice_acl_cli_as_against_kafka() {
    let sluice = common::start(&[
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("super.users", "User:ANONYMOUS"),
    ]);
    let ours = acl_cli_steps(sluice.bootstrap());
    assert!(ours[0].starts_with("true"), "{ours:?}");
    assert!(
        ours[2].contains("The only valid name for the CLUSTER resource is kafka-cluster"),
        "{ours:?}"
    );
    assert_eq!(
        ours[3],
        "true GROUP\tg\tLITERAL\tUser:bob\t*\tREAD\tDENY\nTOPIC\tpay\tPREFIXED\tUser:alice\t*\tREAD\tALLOW\n",
        "{ours:?}"
    );
    assert_eq!(ours[6], "true GROUP\tg\tLITERAL\tUser:bob\t*\tREAD\tDENY\n");
    // The same steps against Kafka 4.1.2 (a JVM broker: the full suite).
    if common::env_on("SLUICE_TEST_FULL") {
        let kafka = sluice_testkit::ReferenceKafka::start_with(&[
            ("authorizer.class.name", STANDARD_AUTHORIZER),
            ("super.users", "User:ANONYMOUS"),
        ])
        .expect("Kafka starts")
        .expect("the jars are here");
        assert_eq!(acl_cli_steps(&kafka.bootstrap()), ours);
    }
}

//! `sluice acl` and `sluice quotas` with `--command-config` (issue 20):
//! the same Kafka client properties file as `kafka-acls --command-config`
//! takes the CLI through TLS (a PEM trust store) and SASL (PLAIN,
//! SCRAM-SHA-512) to a SASL_SSL listener, where the authorizer sees the
//! logged-in principal: the super user may manage ACLs and quotas, alice
//! may not, a wrong password and a missing config are refused. The web
//! console (`sluice console --command-config`) reaches the same listener.

mod common;

use std::time::{Duration, Instant};

use common::sasl::{command_config_over, configs_ok, Transport};
use common::tls::{p, tls_init};
use common::{kafka_tools_ready, sasl::JAAS_SCRAM};
use sluice_testkit::SluiceProcess;

use common::acls::{JAAS_USERS, STANDARD_AUTHORIZER};

/// A broker with PLAINTEXT and SASL_SSL listeners and the authorizer on;
/// the SASL_SSL address.
fn start(dir: &std::path::Path) -> (SluiceProcess, String) {
    let keystore = p(dir, "broker.pem");
    let broker = SluiceProcess::start_default(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        ),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &keystore),
        ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS_USERS),
        (
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
            JAAS_SCRAM,
        ),
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("super.users", "User:admin;User:carol;User:ANONYMOUS"),
    ])
    .expect("start sluice with a SASL_SSL listener");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = broker.output();
        if let Some(addr) = out
            .lines()
            .find_map(|l| l.strip_prefix("listening on SASL_SSL://"))
        {
            return (broker, addr.trim().to_string());
        }
        assert!(Instant::now() < deadline, "no SASL_SSL listener:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sluice <args> --brokers addr [--command-config config]`: success and
/// both outputs.
fn sluice(addr: &str, config: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).args(["--brokers", addr, "--timeout", "5"]);
    if let Some(c) = config {
        cmd.args(["--command-config", c]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const CREATE: &[&str] = &[
    "acl",
    "create",
    "--resource-type",
    "topic",
    "--name",
    "pay",
    "--principal",
    "User:alice",
    "--operation",
    "read",
];
const LINE: &str = "TOPIC\tpay\tLITERAL\tUser:alice\t*\tREAD\tALLOW";

#[test]
fn acl_and_quotas_over_sasl_ssl() {
    let tmp = tempfile::tempdir().unwrap();
    tls_init(tmp.path());
    let ca = p(tmp.path(), "ca.pem");
    let tls = Transport::Tls { ca: &ca };
    let (broker, addr) = start(tmp.path());
    let admin = command_config_over(tls, tmp.path(), "PLAIN", "admin", "admin-secret");
    let alice = command_config_over(tls, tmp.path(), "PLAIN", "alice", "alice-secret");
    // The file is named after mechanism and user: another directory.
    let other = tempfile::tempdir().unwrap();
    let wrong = command_config_over(tls, other.path(), "PLAIN", "admin", "wrong");

    let (ok, out) = sluice(&addr, Some(&admin), CREATE);
    assert!(ok, "{out}");
    let (ok, out) = sluice(&addr, Some(&admin), &["acl", "list"]);
    assert!(ok && out.contains(LINE), "{out}");
    // Quotas as the super user.
    let (ok, out) = sluice(
        &addr,
        Some(&admin),
        &[
            "quotas",
            "alter",
            "--user",
            "alice",
            "--add",
            "producer_byte_rate=1024",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = sluice(&addr, Some(&admin), &["quotas", "describe"]);
    assert!(ok && out.contains("producer_byte_rate=1024"), "{out}");

    // alice logs in, and the authorizer refuses her.
    let (ok, out) = sluice(&addr, Some(&alice), &["acl", "list"]);
    assert!(!ok && out.contains("ClusterAuthorizationFailed"), "{out}");
    let (ok, out) = sluice(&addr, Some(&alice), &["quotas", "describe"]);
    assert!(!ok && out.contains("ClusterAuthorizationFailed"), "{out}");
    // A wrong password, and no config at all, do not get in.
    let (ok, out) = sluice(&addr, Some(&wrong), &["acl", "list"]);
    assert!(!ok && out.contains("Invalid username or password"), "{out}");
    let (ok, out) = sluice(&addr, None, &["acl", "list"]);
    assert!(!ok, "{out}");

    // SCRAM-SHA-512 as a user kafka-configs adds while the broker runs.
    if kafka_tools_ready("cli_security scram") {
        configs_ok(&[
            "--bootstrap-server",
            broker.bootstrap(),
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[iterations=4096,password=carol-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ]);
        let carol = command_config_over(tls, tmp.path(), "SCRAM-SHA-512", "carol", "carol-secret");
        let (ok, out) = sluice(&addr, Some(&carol), &["acl", "list"]);
        assert!(ok && out.contains(LINE), "{out}");
        let bad = command_config_over(tls, other.path(), "SCRAM-SHA-512", "carol", "nope");
        let (ok, out) = sluice(&addr, Some(&bad), &["acl", "list"]);
        assert!(!ok && out.contains("SaslAuthenticationFailed"), "{out}");
    }
}

/// `sluice console --command-config` over TLS and SASL PLAIN: the pages
/// that ask the bootstrap broker and those that ask the partition leader
/// work; a wrong password shows the unreachable page with Kafka's reason.
#[test]
fn console_over_sasl_ssl() {
    use common::console::ConsoleProcess;
    let tmp = tempfile::tempdir().unwrap();
    tls_init(tmp.path());
    let ca = p(tmp.path(), "ca.pem");
    let tls = Transport::Tls { ca: &ca };
    let (broker, addr) = start(tmp.path());
    let admin = command_config_over(tls, tmp.path(), "PLAIN", "admin", "admin-secret");
    let other = tempfile::tempdir().unwrap();
    let wrong = command_config_over(tls, other.path(), "PLAIN", "admin", "wrong");
    // Created over PLAINTEXT: this build of librdkafka has no TLS.
    let (ok, out) = sluice(
        broker.bootstrap(),
        None,
        &["topic", "create", "secured", "-p", "2", "-r", "1"],
    );
    assert!(ok, "{out}");

    // An ACL, a quota and (with Kafka's tools) a SCRAM user for the
    // security pages.
    for args in [
        CREATE,
        &[
            "quotas",
            "alter",
            "--user",
            "alice",
            "--add",
            "producer_byte_rate=1024",
        ],
    ] {
        let (ok, out) = sluice(&addr, Some(&admin), args);
        assert!(ok, "{out}");
    }
    let scram = kafka_tools_ready("console SCRAM users page");
    if scram {
        configs_ok(&[
            "--bootstrap-server",
            broker.bootstrap(),
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[iterations=4096,password=carol-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ]);
    }

    let c = ConsoleProcess::start(
        &addr,
        &[
            "--command-config",
            &admin,
            "--timeout",
            "10",
            "--allow-writes",
        ],
    );
    let acls = c.page("/acls");
    assert!(
        acls.contains("<td>TOPIC</td><td><code>pay</code></td><td>LITERAL</td><td><code>User:alice</code></td><td>*</td><td>READ</td>"),
        "{acls}"
    );
    let quotas = c.page("/quotas");
    assert!(
        quotas.contains("<code>user=alice</code></td><td><code>producer_byte_rate=1024</code>"),
        "{quotas}"
    );
    let users = c.page("/users");
    if scram {
        assert!(
            users.contains("<code>carol</code></td><td>SCRAM-SHA-512 (4096)"),
            "{users}"
        );
    }
    let topics = c.page("/topics");
    assert!(topics.contains("href=\"/topics/secured\""), "{topics}");
    let topic = c.page("/topics/secured");
    assert!(topic.contains("id=\"partitions-table\""), "{topic}");
    let messages = c.page("/topics/secured/messages?partition=1");
    assert!(messages.contains("id=\"messages-summary\""), "{messages}");

    check_acl_writes(&c, &addr, &admin);

    // A SCRAM credential set in the console logs in (the authorizer then
    // refuses dave, who is no super user); deleted, it no longer does.
    let (status, location) = c.post(
        "/users/alter",
        &[
            ("user", "dave"),
            ("mechanism", "SCRAM-SHA-512"),
            ("iterations", "4096"),
            ("password", "dave-secret"),
        ],
    );
    assert_eq!((status, location.as_str()), (303, "/users"));
    let dave_dir = tempfile::tempdir().unwrap();
    let dave = command_config_over(tls, dave_dir.path(), "SCRAM-SHA-512", "dave", "dave-secret");
    let (ok, out) = sluice(&addr, Some(&dave), &["acl", "list"]);
    assert!(
        !ok && out.contains("ClusterAuthorizationFailed"),
        "dave logs in: {out}"
    );
    let users = c.page("/users");
    assert!(
        users.contains("<code>dave</code></td><td>SCRAM-SHA-512 (4096)"),
        "{users}"
    );
    let confirm = c.page("/users/delete?user=dave&mechanism=SCRAM-SHA-512");
    assert!(confirm.contains("id=\"user-plan\""), "{confirm}");
    let (ok, out) = sluice(&addr, Some(&dave), &["acl", "list"]);
    assert!(
        out.contains("ClusterAuthorizationFailed") && !ok,
        "the confirmation deleted nothing: {out}"
    );
    let (status, location) = c.post(
        "/users/delete",
        &[("user", "dave"), ("mechanism", "SCRAM-SHA-512")],
    );
    assert_eq!((status, location.as_str()), (303, "/users"));
    let (ok, out) = sluice(&addr, Some(&dave), &["acl", "list"]);
    assert!(
        !ok && out.contains("SaslAuthenticationFailed"),
        "dave is gone: {out}"
    );

    let refused = ConsoleProcess::start(&addr, &["--command-config", &wrong, "--timeout", "5"]);
    let (status, body) = refused.get("/topics");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("Invalid username or password"), "{body}");
    // Without any config the TLS listener cannot be spoken to at all.
    let plain = ConsoleProcess::start(&addr, &["--timeout", "3"]);
    assert_eq!(plain.get("/topics").0, 502);
}

/// Add an ACL from the console (a preview first), see it with the CLI,
/// then delete it from its row's link (a confirmation first).
fn check_acl_writes(c: &common::console::ConsoleProcess, addr: &str, admin: &str) {
    let acls = c.page("/acls");
    assert!(acls.contains("action=\"/acls/create\""), "{acls}");
    let form = [
        ("resource_type", "group"),
        ("resource_name", "billing"),
        ("pattern_type", "prefixed"),
        ("principal", "User:bob"),
        ("host", "*"),
        ("operation", "read"),
        ("permission", "allow"),
    ];
    let with_step = |step: &'static str| {
        let mut f = vec![("step", step)];
        f.extend(form);
        f
    };
    const BOB: &str = "GROUP\tbilling\tPREFIXED\tUser:bob\t*\tREAD\tALLOW";
    let listed = || sluice(addr, Some(admin), &["acl", "list"]).1;
    let (status, plan) = c.post("/acls/create", &with_step("preview"));
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan.contains("id=\"acl-plan\"") && plan.contains("User:bob"),
        "{plan}"
    );
    assert!(!listed().contains(BOB), "the preview created nothing");
    let (status, location) = c.post("/acls/create", &with_step("execute"));
    assert_eq!((status, location.as_str()), (303, "/acls"));
    assert!(listed().contains(BOB), "{}", listed());

    // Its row links to a confirmation of exactly this binding.
    let acls = c.page("/acls");
    let link = acls
        .split("href=\"/acls/delete?")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .find(|q| q.contains("User%3Abob"))
        .expect("a delete link for bob's ACL");
    let confirm = c.page(&format!("/acls/delete?{link}"));
    assert!(confirm.contains("id=\"acl-plan\""), "{confirm}");
    assert!(
        listed().contains(BOB),
        "the confirmation page deleted nothing"
    );
    let (status, location) = c.post("/acls/delete", &with_step("execute"));
    assert_eq!((status, location.as_str()), (303, "/acls"));
    assert!(!listed().contains(BOB), "{}", listed());
    assert!(listed().contains(LINE), "the other ACL stays");
    assert_eq!(c.post("/acls/delete", &with_step("execute")).0, 404);
}

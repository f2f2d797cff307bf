//! Helpers of the ACL process tests (`tests/acls.rs`): a broker with the
//! StandardAuthorizer on and a SASL_PLAINTEXT listener whose PLAIN users
//! are admin (a super user), alice and bob; Kafka's `kafka-acls`
//! (`AclCommand`) with `--command-config`.

use sluice_testkit::SluiceProcess;

use super::kafka_tool_output;
use super::sasl::{sasl_overrides, start_sasl};

pub const JAAS_USERS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";"#;

pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// A broker with the authorizer on. The testkit's PLAINTEXT listener is
/// User:ANONYMOUS, made a super user so the harness can administer.
pub fn start_authorized(extra: &[(&'static str, &'static str)]) -> (SluiceProcess, String) {
    let mut overrides = vec![
        (
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            JAAS_USERS,
        ),
        ("authorizer.class.name", STANDARD_AUTHORIZER),
        ("super.users", "User:admin;User:ANONYMOUS"),
        ("auto.create.topics.enable", "true"),
    ];
    overrides.extend_from_slice(extra);
    // The per-listener JAAS entry above replaces sasl_overrides' one.
    debug_assert!(sasl_overrides()
        .iter()
        .any(|(k, _)| *k == "listener.name.sasl_plaintext.plain.sasl.jaas.config"));
    start_sasl(&overrides)
}

/// `kafka-acls` against `addr` as `props`; exit status and both outputs.
pub fn kafka_acls(addr: &str, props: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--bootstrap-server", addr, "--command-config", props];
    all.extend_from_slice(args);
    kafka_tool_output("org.apache.kafka.tools.AclCommand", &all)
}

pub fn kafka_acls_ok(addr: &str, props: &str, args: &[&str]) -> String {
    let (ok, out, err) = kafka_acls(addr, props, args);
    assert!(ok, "kafka-acls {args:?}:\n{out}\n{err}");
    out
}

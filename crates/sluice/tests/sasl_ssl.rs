//! SASL_SSL listeners through real clients and real processes: SASL
//! (PLAIN, SCRAM-SHA-512) inside TLS, with the certificates of `sluice tls
//! init`. kcat (PLAIN), confluent-kafka (SCRAM, a user added by Kafka's
//! `kafka-configs` while the broker runs) and Kafka's Java tools with
//! their `--command-config` produce and consume; a wrong password, a
//! client that skips TLS and one that skips SASL are refused while the
//! broker keeps serving. The broker-wide `ssl.client.auth=required` (for
//! its SSL listener) is not applied to the SASL_SSL listener, as in Kafka:
//! SASL clients come without certificates. Helpers: `common/sasl.rs`,
//! `common/tls.rs`.

mod common;

use std::time::{Duration, Instant};

use common::sasl::*;
use common::tls::{p, tls_init};
use common::{create_topic, kafka_tool_output, kafka_tools_ready, RawClient};
use sluice_testkit::SluiceProcess;

/// A Sluice with PLAINTEXT, SSL (mutual TLS required) and SASL_SSL
/// listeners; the SASL_SSL address.
fn start_sasl_ssl(dir: &std::path::Path) -> (SluiceProcess, String) {
    let keystore = p(dir, "broker.pem");
    let truststore = p(dir, "ca.pem");
    let broker = SluiceProcess::start_default(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        ),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &keystore),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", &truststore),
        ("ssl.client.auth", "required"),
        ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS_PLAIN),
        (
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
            JAAS_SCRAM,
        ),
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

#[test]
fn plain_and_scram_over_tls_with_kcat_python_and_java() {
    let Some(python) = venv_python("sasl_ssl plain_and_scram_over_tls") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    tls_init(tmp.path());
    let ca = p(tmp.path(), "ca.pem");
    let tls = Transport::Tls { ca: &ca };
    let (sluice, addr) = start_sasl_ssl(tmp.path());
    let mut admin = RawClient::connect(sluice.bootstrap());
    create_topic(&mut admin, "secure", &[]);

    // PLAIN inside TLS, without a client certificate.
    kcat_round_trip_over(tls, &addr, "PLAIN", "alice", "alice-secret", "secure");
    let err = kcat_refused_over(tls, &addr, "PLAIN", "alice", "wrong");
    assert!(err.contains("Authentication failed"), "{err}");
    // SASL without TLS, and TLS without SASL, are refused too.
    let err = kcat_refused_over(
        Transport::Plaintext,
        &addr,
        "PLAIN",
        "alice",
        "alice-secret",
    );
    assert!(!err.is_empty());
    let (ok, out, _) = common::sasl::kcat_over(
        tls,
        &addr,
        "PLAIN",
        "alice",
        "alice-secret",
        &["-X", "security.protocol=ssl", "-L", "-m", "10"],
        "",
    );
    assert!(!ok, "TLS without SASL must be refused: {out}");

    // A SCRAM user added while the broker runs logs in over TLS at once.
    if kafka_tools_ready("sasl_ssl scram user from kafka-configs") {
        configs_ok(&[
            "--bootstrap-server",
            sluice.bootstrap(),
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[iterations=4096,password=bob-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "bob",
        ]);
        python_round_trip_over(
            tls,
            &python,
            [&addr, "SCRAM-SHA-512", "bob", "bob-secret", "secure"],
        );

        // Kafka's Java tools with a SASL_SSL client config.
        let config = command_config_over(tls, tmp.path(), "PLAIN", "admin", "admin-secret");
        let (ok, out, err) = kafka_tool_output(
            "org.apache.kafka.tools.TopicCommand",
            &[
                "--bootstrap-server",
                &addr,
                "--command-config",
                &config,
                "--describe",
                "--topic",
                "secure",
            ],
        );
        assert!(ok && out.contains("Topic: secure"), "{out}\n{err}");
    }
    // After all of that the broker still serves.
    create_topic(&mut admin, "secure-after", &[]);
    python_round_trip_over(
        tls,
        &python,
        [&addr, "PLAIN", "admin", "admin-secret", "secure-after"],
    );
}

//! SCRAM-SHA-256/512 credentials in the cluster metadata through real
//! processes: users created and deleted with Kafka's `kafka-configs` log in
//! (or stop logging in) over SASL_PLAINTEXT at once, with confluent-kafka
//! and the Java tools; `kafka-configs` against the pinned Kafka 4.1.2
//! gives the same answers; and `sluice storage format --add-scram` bootstraps
//! a user, as `kafka-storage format --add-scram` does. Helpers:
//! `common/sasl.rs`.

mod common;

use common::sasl::*;
use common::{create_topic, kafka_tool_output, kafka_tools_ready, RawClient};

#[test]
fn scram_users_from_kafka_configs_log_in_without_restart() {
    if !kafka_tools_ready("sasl scram_users_from_kafka_configs_log_in_without_restart") {
        return;
    }
    let Some(python) = venv_python("sasl scram_users_from_kafka_configs_log_in_without_restart")
    else {
        return;
    };
    let (sluice, addr) = start_sasl(&[]);
    let plain = sluice.bootstrap().to_string();
    let mut admin = RawClient::connect(&plain);
    create_topic(&mut admin, "scram-topic", &[]);
    // Nobody yet: refused with Kafka's generic message.
    let err = python_refused(&python, &addr, "SCRAM-SHA-256", "carol", "carol-secret");
    assert!(
        err.contains("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"),
        "{err}"
    );
    // Two mechanisms of one user in one request: DUPLICATE_RESOURCE, as
    // Kafka's controller answers (kafka_configs_describe_matches_reference_kafka).
    let (ok, out, err) = kafka_configs(&[
        "--bootstrap-server", &plain, "--alter", "--add-config",
        "SCRAM-SHA-256=[password=carol-secret],SCRAM-SHA-512=[iterations=8192,password=carol-secret]",
        "--entity-type", "users", "--entity-name", "carol",
    ]);
    assert!(!ok && (out + &err).contains("cannot be altered twice"));
    configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--alter",
        "--add-config",
        "SCRAM-SHA-256=[password=carol-secret]",
        "--entity-type",
        "users",
        "--entity-name",
        "carol",
    ]);
    configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--alter",
        "--add-config",
        "SCRAM-SHA-512=[iterations=8192,password=carol-secret]",
        "--entity-type",
        "users",
        "--entity-name",
        "carol",
    ]);
    let described = configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--describe",
        "--entity-type",
        "users",
        "--entity-name",
        "carol",
    ]);
    assert_eq!(
        described.trim(),
        "SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-256=iterations=4096, SCRAM-SHA-512=iterations=8192",
    );
    python_round_trip(
        &python,
        &addr,
        "SCRAM-SHA-256",
        "carol",
        "carol-secret",
        "scram-topic",
    );
    python_round_trip(
        &python,
        &addr,
        "SCRAM-SHA-512",
        "carol",
        "carol-secret",
        "scram-topic",
    );
    let err = python_refused(&python, &addr, "SCRAM-SHA-512", "carol", "wrong");
    assert!(
        err.contains("invalid credentials with SASL mechanism SCRAM-SHA-512"),
        "{err}"
    );
    // The Java client over SASL, through its own --command-config.
    let dir = tempfile::tempdir().unwrap();
    let cc = command_config(dir.path(), "SCRAM-SHA-512", "carol", "carol-secret");
    let (ok, out, err) = kafka_tool_output(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &addr,
            "--command-config",
            &cc,
            "--list",
        ],
    );
    assert!(ok && out.contains("scram-topic"), "{out}\n{err}");
    // Iterations out of Kafka's bounds are refused.
    let (ok, out, err) = kafka_configs(&[
        "--bootstrap-server",
        &plain,
        "--alter",
        "--add-config",
        "SCRAM-SHA-256=[iterations=100,password=x]",
        "--entity-type",
        "users",
        "--entity-name",
        "dave",
    ]);
    // (The admin client refuses it itself; the reference comparison below
    // checks that Kafka's answer is the same.)
    assert!(!ok, "{out}\n{err}");
    // Deleting one mechanism's credential: that login stops working at
    // once, the other goes on.
    configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--alter",
        "--delete-config",
        "SCRAM-SHA-256",
        "--entity-type",
        "users",
        "--entity-name",
        "carol",
    ]);
    python_refused(&python, &addr, "SCRAM-SHA-256", "carol", "carol-secret");
    python_round_trip(
        &python,
        &addr,
        "SCRAM-SHA-512",
        "carol",
        "carol-secret",
        "scram-topic",
    );
    let described = configs_ok(&[
        "--bootstrap-server",
        &plain,
        "--describe",
        "--entity-type",
        "users",
    ]);
    assert_eq!(
        described.trim(),
        "SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-512=iterations=8192",
    );
}

/// The same kafka-configs calls against the pinned Kafka 4.1.2, with the
/// same output (its tools talk to the broker's PLAINTEXT listener).
#[test]
fn kafka_configs_describe_matches_reference_kafka() {
    if !kafka_tools_ready("sasl kafka_configs_describe_matches_reference_kafka") {
        return;
    }
    let Some(kafka) = sluice_testkit::ReferenceKafka::start().expect("reference Kafka starts")
    else {
        return;
    };
    let (sluice, _) = start_sasl(&[]);
    let run_all = |bootstrap: &str| -> Vec<String> {
        let (both_ok, out, err) = kafka_configs(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=5000,password=p],SCRAM-SHA-512=[password=p]",
            "--entity-type",
            "users",
            "--entity-name",
            "erin",
        ]);
        let both = format!(
            "{both_ok} {}",
            (out + &err).contains("cannot be altered twice")
        );
        configs_ok(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=5000,password=p]",
            "--entity-type",
            "users",
            "--entity-name",
            "erin",
        ]);
        configs_ok(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=p]",
            "--entity-type",
            "users",
            "--entity-name",
            "erin",
        ]);
        configs_ok(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=q]",
            "--entity-type",
            "users",
            "--entity-name",
            "frank",
        ]);
        // Users and each user's mechanisms come in the broker's order
        // (hash maps' in Kafka, keyed by user and by an enum whose hash
        // changes from run to run): sort both.
        let sorted = |text: String| {
            let mut lines: Vec<String> = text
                .lines()
                .map(|l| match l.split_once(" are ") {
                    Some((head, list)) => {
                        let mut items: Vec<&str> = list.split(", ").collect();
                        items.sort();
                        format!("{head} are {}", items.join(", "))
                    }
                    None => l.to_string(),
                })
                .collect();
            lines.sort();
            lines.join("\n")
        };
        let mut outputs = vec![
            sorted(configs_ok(&[
                "--bootstrap-server",
                bootstrap,
                "--describe",
                "--entity-type",
                "users",
            ])),
            sorted(configs_ok(&[
                "--bootstrap-server",
                bootstrap,
                "--describe",
                "--entity-type",
                "users",
                "--entity-name",
                "erin",
            ])),
        ];
        let (ok, out, err) = kafka_configs(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--delete-config",
            "SCRAM-SHA-256",
            "--entity-type",
            "users",
            "--entity-name",
            "nobody",
        ]);
        outputs.push(format!("{ok} {}", (out + &err).contains("does not exist")));
        let (ok, out, err) = kafka_configs(&[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-256=[iterations=100,password=x]",
            "--entity-type",
            "users",
            "--entity-name",
            "dave",
        ]);
        outputs.push(format!(
            "{ok} {}",
            (out + &err).contains("Too few iterations")
        ));
        outputs.push(both);
        outputs
    };
    let theirs = run_all(&kafka.bootstrap());
    let ours = run_all(sluice.bootstrap());
    assert_eq!(ours, theirs);
}

fn sluice_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice")
}

#[test]
fn storage_format_add_scram_bootstraps_a_user() {
    let Some(python) = venv_python("sasl storage_format_add_scram_bootstraps_a_user") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dirs = format!("log.dirs={}", data.display());
    let id = String::from_utf8(sluice_cli(&["storage", "random-uuid"]).stdout).unwrap();
    // Outside Kafka's iteration bounds: refused.
    let refused = sluice_cli(&[
        "storage",
        "format",
        "-t",
        id.trim(),
        "--override",
        &dirs,
        "--add-scram",
        "SCRAM-SHA-256=[name=admin,password=admin-secret,iterations=100]",
    ]);
    assert!(!refused.status.success());
    let out = sluice_cli(&[
        "storage",
        "format",
        "-t",
        id.trim(),
        "--override",
        &dirs,
        "--add-scram",
        "SCRAM-SHA-256=[name=admin,password=admin-secret]",
        "--add-scram",
        "SCRAM-SHA-512=[name=admin,password=admin-secret,iterations=8192]",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (sluice, addr) = start_sasl_in(&data);
    let mut admin = RawClient::connect(sluice.bootstrap());
    create_topic(&mut admin, "boot", &[]);
    python_round_trip(
        &python,
        &addr,
        "SCRAM-SHA-256",
        "admin",
        "admin-secret",
        "boot",
    );
    python_round_trip(
        &python,
        &addr,
        "SCRAM-SHA-512",
        "admin",
        "admin-secret",
        "boot",
    );
    let err = python_refused(&python, &addr, "SCRAM-SHA-256", "admin", "wrong");
    assert!(err.contains("invalid credentials"), "{err}");
}

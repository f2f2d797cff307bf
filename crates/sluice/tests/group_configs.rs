//! KIP-848 group configs (config resource type GROUP = 32): DescribeConfigs
//! and IncrementalAlterConfigs answers compared with the pinned Apache Kafka
//! 4.1 (skipped when its jars are absent), overrides surviving a restart, and
//! the consumer group coordinator using a group's overrides.

mod common;

use std::time::{Duration, Instant};

use common::{sb, start, RawClient};
use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;
use sluice_testkit::ReferenceKafka;

const GROUP: i8 = 32;
const SET: i8 = 0;
const DELETE: i8 = 1;

/// `(key, operation, value)` of one IncrementalAlterConfigs entry.
type Op<'a> = (&'a str, i8, Option<&'a str>);

/// Every config of a GROUP resource as "name=value source type read_only
/// sensitive doc?", plus the error code.
fn describe_group(c: &mut RawClient, group: &str) -> Vec<String> {
    let resp: DescribeConfigsResponse = c.send(
        4,
        &DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(GROUP)
                .with_resource_name(sb(group))
                .with_configuration_keys(None)])
            .with_include_synonyms(true)
            .with_include_documentation(true),
    );
    let r = &resp.results[0];
    let mut out = vec![format!("error {}", r.error_code)];
    // Kafka lists them in hash order; compare by name.
    let mut configs: Vec<_> = r.configs.iter().collect();
    configs.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    for c in configs {
        let syn: Vec<String> = c
            .synonyms
            .iter()
            .map(|s| {
                format!(
                    "{}={:?}/{}",
                    s.name.as_str(),
                    s.value.as_ref().map(|v| v.to_string()),
                    s.source
                )
            })
            .collect();
        out.push(format!(
            "{}={:?} source {} type {} read_only {} sensitive {} doc {} synonyms {:?}",
            c.name.as_str(),
            c.value.as_ref().map(|v| v.to_string()),
            c.config_source,
            c.config_type,
            c.read_only,
            c.is_sensitive,
            c.documentation.is_some(),
            syn
        ));
    }
    out
}

/// [`describe_group`] once `want` (the start of one config's line) shows.
/// Kafka applies a committed config change to its broker's metadata image
/// asynchronously (KRaft), so a describe straight after an alter can still
/// show the old value there; Sluice answers from the value it just made
/// durable. Gives the last answer after 10 s so the comparison shows it.
fn describe_group_when(c: &mut RawClient, group: &str, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = describe_group(c, group);
        if lines.iter().any(|l| l.starts_with(want)) || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alter_group(c: &mut RawClient, group: &str, ops: &[Op]) -> i16 {
    let resp: IncrementalAlterConfigsResponse = c.send(
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(GROUP)
                .with_resource_name(sb(group))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(sb(k))
                                .with_config_operation(*op)
                                .with_value(v.map(sb))
                        })
                        .collect(),
                ),
        ]),
    );
    resp.responses[0].error_code
}

fn scenario(bootstrap: &str) -> Vec<String> {
    let mut c = RawClient::connect(bootstrap);
    let mut out = Vec::new();
    out.push("describe missing group".to_string());
    out.extend(describe_group(&mut c, "no-such-group"));
    out.push("describe empty group id".to_string());
    out.extend(describe_group(&mut c, "").into_iter().take(1));
    out.push(format!(
        "alter empty group id: code {}",
        alter_group(
            &mut c,
            "",
            &[("consumer.session.timeout.ms", SET, Some("50000"))]
        )
    ));
    out.push(format!(
        "append to a group key: code {}",
        alter_group(
            &mut c,
            "g0",
            &[("consumer.session.timeout.ms", 2, Some("50000"))]
        )
    ));
    out.push(format!(
        "delete unknown key: code {}",
        alter_group(&mut c, "g0", &[("foo.bar", DELETE, None)])
    ));
    let alters: &[(&str, &[Op])] = &[
        (
            "set session",
            &[("consumer.session.timeout.ms", SET, Some("50000"))],
        ),
        (
            "below min",
            &[("consumer.session.timeout.ms", SET, Some("1000"))],
        ),
        (
            "above max",
            &[("consumer.heartbeat.interval.ms", SET, Some("50000"))],
        ),
        (
            "not a number",
            &[("consumer.heartbeat.interval.ms", SET, Some("abc"))],
        ),
        ("unknown key", &[("foo.bar", SET, Some("1"))]),
        (
            "set isolation",
            &[("share.isolation.level", SET, Some("read_committed"))],
        ),
        (
            "bad isolation",
            &[("share.isolation.level", SET, Some("nope"))],
        ),
        (
            "set heartbeat",
            &[("consumer.heartbeat.interval.ms", SET, Some("6000"))],
        ),
    ];
    for (label, ops) in alters {
        out.push(format!("{label}: code {}", alter_group(&mut c, "g1", ops)));
    }
    out.push("describe altered".to_string());
    out.extend(describe_group_when(
        &mut c,
        "g1",
        r#"consumer.heartbeat.interval.ms=Some("6000")"#,
    ));
    out.push(format!(
        "delete heartbeat: code {}",
        alter_group(
            &mut c,
            "g1",
            &[("consumer.heartbeat.interval.ms", DELETE, None)]
        )
    ));
    out.push("describe after delete".to_string());
    out.extend(describe_group_when(
        &mut c,
        "g1",
        r#"consumer.heartbeat.interval.ms=Some("5000") source 5"#,
    ));
    // the legacy AlterConfigs replaces a group's whole set of overrides
    out.push(format!(
        "legacy unknown key: code {}",
        legacy_alter_group(&mut c, "g1", &[("foo.bar", "1")])
    ));
    out.push(format!(
        "legacy below min: code {}",
        legacy_alter_group(&mut c, "g1", &[("consumer.session.timeout.ms", "1000")])
    ));
    out.push(format!(
        "legacy set: code {}",
        legacy_alter_group(&mut c, "g1", &[("consumer.heartbeat.interval.ms", "8000")])
    ));
    out.push("describe after legacy".to_string());
    out.extend(describe_group_when(
        &mut c,
        "g1",
        r#"consumer.heartbeat.interval.ms=Some("8000")"#,
    ));
    out
}

fn legacy_alter_group(c: &mut RawClient, group: &str, configs: &[(&str, &str)]) -> i16 {
    use kafka_protocol::messages::alter_configs_request::{
        AlterConfigsResource as LegacyResource, AlterableConfig as LegacyConfig,
    };
    let resp: AlterConfigsResponse = c.send(
        2,
        &AlterConfigsRequest::default().with_resources(vec![LegacyResource::default()
            .with_resource_type(GROUP)
            .with_resource_name(sb(group))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        LegacyConfig::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            )]),
    );
    resp.responses[0].error_code
}

#[test]
fn group_configs_match_reference_kafka() {
    let Some(kafka) = ReferenceKafka::start().expect("reference Kafka starts") else {
        eprintln!("skipped: reference Kafka not available");
        return;
    };
    let expected = scenario(&kafka.bootstrap());
    kafka.stop();
    let sluice = start(&[]);
    let actual = scenario(sluice.bootstrap());
    let diff: Vec<String> = expected
        .iter()
        .zip(actual.iter())
        .filter(|(e, a)| e != a)
        .map(|(e, a)| format!("   kafka  {e}\n   sluice {a}"))
        .collect();
    assert!(
        diff.is_empty() && expected.len() == actual.len(),
        "differences from Apache Kafka 4.1.2:\n{}\nkafka: {expected:#?}\nsluice: {actual:#?}",
        diff.join("\n")
    );
}

fn value_of(lines: &[String], key: &str) -> String {
    lines
        .iter()
        .find(|l| l.starts_with(&format!("{key}=")))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn group_config_override_survives_restart() {
    let mut sluice = start(&[]);
    {
        let mut c = RawClient::connect(sluice.bootstrap());
        assert_eq!(
            alter_group(
                &mut c,
                "durable",
                &[("consumer.session.timeout.ms", SET, Some("55000"))]
            ),
            0
        );
        let d = describe_group(&mut c, "durable");
        assert!(value_of(&d, "consumer.session.timeout.ms").contains("Some(\"55000\") source 8"));
    }
    sluice.restart().expect("restart");
    let mut c = RawClient::connect(sluice.bootstrap());
    let d = describe_group(&mut c, "durable");
    assert!(
        value_of(&d, "consumer.session.timeout.ms").contains("Some(\"55000\") source 8"),
        "{d:#?}"
    );
    // another group still has the broker default
    let d = describe_group(&mut c, "other");
    assert!(value_of(&d, "consumer.session.timeout.ms").contains("Some(\"45000\") source 5"));
}

fn heartbeat(c: &mut RawClient, group: &str) -> ConsumerGroupHeartbeatResponse {
    c.send(
        0,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(sb(""))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(sb("group-configs-topic"))]))
            .with_topic_partitions(Some(Vec::new())),
    )
}

fn members(c: &mut RawClient, group: &str) -> usize {
    let resp: ConsumerGroupDescribeResponse = c.send(
        0,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))]),
    );
    resp.groups[0].members.len()
}

#[test]
fn coordinator_uses_group_session_and_heartbeat_overrides() {
    // The broker default session is 45 s; group "short" gets 2 s.
    let sluice = start(&[("group.consumer.min.session.timeout.ms", "1000")]);
    let mut c = RawClient::connect(sluice.bootstrap());
    assert_eq!(
        alter_group(
            &mut c,
            "short",
            &[
                ("consumer.session.timeout.ms", SET, Some("2000")),
                ("consumer.heartbeat.interval.ms", SET, Some("7000")),
            ],
        ),
        0
    );
    let r = heartbeat(&mut c, "short");
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.heartbeat_interval_ms, 7000);
    let r = heartbeat(&mut c, "default");
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.heartbeat_interval_ms, 5000);

    // Neither member heartbeats again: the 2 s member is removed long
    // before the 45 s default could expire the other one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while members(&mut c, "short") > 0 {
        assert!(
            Instant::now() < deadline,
            "the member of group 'short' was not expired by its 2 s session override"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(members(&mut c, "default"), 1);
}

#[test]
fn members_loaded_after_restart_get_the_group_session_override() {
    let mut sluice = start(&[("group.consumer.min.session.timeout.ms", "1000")]);
    {
        let mut c = RawClient::connect(sluice.bootstrap());
        // Joined with the broker's 45 s session, then the group gets 2 s:
        // the member's current deadline is still ~45 s away.
        let r = heartbeat(&mut c, "reloaded");
        assert_eq!(r.error_code, 0, "{r:?}");
        assert_eq!(
            alter_group(
                &mut c,
                "reloaded",
                &[("consumer.session.timeout.ms", SET, Some("2000"))]
            ),
            0
        );
        assert_eq!(members(&mut c, "reloaded"), 1);
    }
    sluice.restart().expect("restart");
    let mut c = RawClient::connect(sluice.bootstrap());
    // Loading gives the member a fresh session of the group's 2 s, not 45 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp: ConsumerGroupDescribeResponse = c.send(
            0,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb("reloaded"))]),
        );
        let g = &resp.groups[0];
        // COORDINATOR_LOAD_IN_PROGRESS (14) while __consumer_offsets loads
        if g.error_code == 0 && g.members.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reloaded member was not expired by the group's 2 s session override: {g:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

//! Kafka 4.1.2's own tools against a 3-node Sluice (see the crate doc).

use std::collections::BTreeSet;

use super::{java_ready, one_at_a_time, ready, start_cluster};

/// Runs a Kafka tool class; returns its stdout, panicking on failure.
fn tool(class: &str, args: &[&str]) -> String {
    super::common::kafka_tool(class, args)
}

/// `Key: value` lines.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

/// The `\tKey: value` cells of a tab-separated tool line.
fn cell<'a>(line: &'a str, key: &str) -> &'a str {
    line.split('\t')
        .find_map(|c| c.trim().strip_prefix(key)?.strip_prefix(':').map(str::trim))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn ids(list: &str) -> Vec<i32> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().expect("a broker id"))
        .collect()
}

#[test]
fn kafka_tools_describe_three_nodes() {
    if !ready("Kafka's tools", java_ready()) {
        return;
    }
    let _one = one_at_a_time();
    let c = start_cluster();
    let all: BTreeSet<i32> = [1, 2, 3].into();
    let (b1, b2, b3) = (c.broker_addr(1), c.broker_addr(2), c.broker_addr(3));
    let topics = "org.apache.kafka.tools.TopicCommand";

    // kafka-topics: created through node 2 with replication factor 3,
    // described through node 3.
    let created = tool(
        topics,
        &[
            "--bootstrap-server",
            b2,
            "--create",
            "--topic",
            "rf3",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
    );
    assert!(created.contains("Created topic rf3."), "{created}");
    let described = tool(
        topics,
        &["--bootstrap-server", b3, "--describe", "--topic", "rf3"],
    );
    let header = described
        .lines()
        .find(|l| l.starts_with("Topic: rf3\tTopicId:"))
        .unwrap_or_else(|| panic!("no topic line:\n{described}"));
    assert_eq!(cell(header, "PartitionCount"), "3", "{described}");
    assert_eq!(cell(header, "ReplicationFactor"), "3", "{described}");
    let rows: Vec<&str> = described
        .lines()
        .filter(|l| l.trim_start().starts_with("Topic: rf3\tPartition:"))
        .collect();
    assert_eq!(rows.len(), 3, "{described}");
    let mut leaders = BTreeSet::new();
    for row in rows {
        let leader: i32 = cell(row, "Leader").parse().unwrap();
        let replicas = ids(cell(row, "Replicas"));
        let isr = ids(cell(row, "Isr"));
        assert_eq!(
            replicas.iter().copied().collect::<BTreeSet<_>>(),
            all,
            "three replicas: {row}"
        );
        assert_eq!(replicas[0], leader, "the preferred replica leads: {row}");
        // Replicated (issue 17): every replica is in sync.
        assert_eq!(
            isr.iter().copied().collect::<BTreeSet<_>>(),
            all,
            "all three in sync: {row}"
        );
        leaders.insert(leader);
    }
    assert_eq!(
        leaders, all,
        "leaders spread over the brokers:\n{described}"
    );

    // kafka-metadata-quorum through a broker (forwarded to the active
    // controller).
    let quorum = "org.apache.kafka.tools.MetadataQuorumCommand";
    let status = tool(quorum, &["--bootstrap-server", b1, "describe", "--status"]);
    assert_eq!(field(&status, "ClusterId"), c.cluster_id(), "{status}");
    let leader: i32 = field(&status, "LeaderId").parse().unwrap();
    assert!(all.contains(&leader), "{status}");
    let voters = field(&status, "CurrentVoters");
    for id in 1..=3 {
        assert!(
            voters.contains(&format!(
                "{{\"id\": {id}, \"endpoints\": [\"CONTROLLER://127.0.0.1:"
            )),
            "voter {id}: {status}"
        );
    }
    assert!(field(&status, "HighWatermark").parse::<i64>().unwrap() > 0);
    let replication = tool(
        quorum,
        &["--bootstrap-server", b2, "describe", "--replication"],
    );
    let mut statuses = Vec::new();
    for row in replication.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').map(str::trim).collect();
        statuses.push((cols[0].parse::<i32>().unwrap(), cols[6].to_string()));
    }
    statuses.sort();
    let want: Vec<(i32, String)> = (1..=3)
        .map(|id| {
            let s = if id == leader { "Leader" } else { "Follower" };
            (id, s.to_string())
        })
        .collect();
    assert_eq!(statuses, want, "{replication}");

    // kafka-cluster cluster-id.
    let id = tool(
        "org.apache.kafka.tools.ClusterTool",
        &["cluster-id", "--bootstrap-server", b3],
    );
    assert_eq!(id.trim(), format!("Cluster ID: {}", c.cluster_id()));

    // kafka-features describe, through a broker and through a controller:
    // metadata.version finalized at 4.1-IV1 (27).
    let controller = c.controller_addr(3).expect("node 3 is a voter");
    for (how, addr) in [
        ("--bootstrap-server", b1),
        ("--bootstrap-controller", &controller),
    ] {
        let features = tool(
            "org.apache.kafka.tools.FeatureCommand",
            &[how, addr, "describe"],
        );
        let mv = features
            .lines()
            .find(|l| l.starts_with("Feature: metadata.version\t"))
            .unwrap_or_else(|| panic!("{how}: no metadata.version:\n{features}"));
        assert_eq!(cell(mv, "SupportedMinVersion"), "3.3-IV3", "{how}: {mv}");
        assert_eq!(cell(mv, "SupportedMaxVersion"), "4.1-IV1", "{how}: {mv}");
        assert_eq!(cell(mv, "FinalizedVersionLevel"), "4.1-IV1", "{how}: {mv}");
        assert!(
            cell(mv, "Epoch").parse::<i64>().unwrap() >= 0,
            "{how}: {mv}"
        );
    }

    // kafka-broker-api-versions: every broker, at its address.
    let apis = tool(
        "org.apache.kafka.tools.BrokerApiVersionsCommand",
        &["--bootstrap-server", b2],
    );
    for (id, a) in [(1, b1), (2, b2), (3, b3)] {
        assert!(
            apis.contains(&format!("{a} (id: {id} rack: null isFenced: false) -> (")),
            "broker {id}:\n{apis}"
        );
    }
    assert_eq!(
        apis.matches("Produce(0): ").count(),
        3,
        "three brokers' API lists:\n{apis}"
    );
}

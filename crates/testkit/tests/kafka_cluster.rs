//! The three-node reference Kafka cluster elects a new partition leader
//! after its leader is killed with SIGKILL, and takes the node back when it
//! restarts. Prints the failover time (informational: no timing assertion).
//!
//! Three JVMs take a minute or more on a small shared machine, so this runs
//! only with `SLUICE_TEST_FULL=1`.

use std::thread;
use std::time::{Duration, Instant};

use sluice_testkit::metadata::PartitionMetadata;
use sluice_testkit::ReferenceKafkaCluster;

const TOPIC: &str = "failover";
const PATIENCE: Duration = Duration::from_secs(180);

fn partition_zero(cluster: &mut ReferenceKafkaCluster) -> Option<PartitionMetadata> {
    let md = cluster.metadata(Some(&[TOPIC])).ok()?;
    md.partition(TOPIC, 0).cloned()
}

/// Waits until partition 0 satisfies `ok`, returning it and how long that took.
fn wait_for(
    cluster: &mut ReferenceKafkaCluster,
    what: &str,
    ok: impl Fn(&PartitionMetadata) -> bool,
) -> (PartitionMetadata, Duration) {
    let started = Instant::now();
    loop {
        if let Some(p) = partition_zero(cluster).filter(|p| ok(p)) {
            return (p, started.elapsed());
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}; last {:?}",
            partition_zero(cluster)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_leader_is_replaced_and_rejoins() {
    if std::env::var("SLUICE_TEST_FULL").as_deref() != Ok("1") {
        eprintln!("skipped: set SLUICE_TEST_FULL=1 to start a 3-node Kafka cluster");
        return;
    }
    let started = Instant::now();
    let Some(mut cluster) = ReferenceKafkaCluster::start().unwrap() else {
        return;
    };
    println!(
        "3-node Kafka cluster up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let bootstrap = cluster.bootstrap();
    let out = cluster
        .run_tool(
            "org.apache.kafka.tools.TopicCommand",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--create",
                "--topic",
                TOPIC,
                "--partitions",
                "1",
                "--replication-factor",
                "3",
            ],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "kafka-topics --create: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (before, _) = wait_for(&mut cluster, "a leader and a full ISR", |p| {
        p.leader >= 1 && p.isr.len() == 3
    });
    assert_eq!(before.replicas.len(), 3, "{before:?}");

    let old = before.leader;
    cluster.kill(old).unwrap();
    let (after, failover) = wait_for(&mut cluster, "a new leader", |p| {
        p.leader >= 1 && p.leader != old
    });
    println!(
        "leader failover after kill -9 of node {old}: {:.2} s (new leader {}, ISR {:?})",
        failover.as_secs_f64(),
        after.leader,
        after.isr
    );
    assert!(after.replicas.contains(&after.leader), "{after:?}");
    assert!(!after.isr.contains(&old), "{after:?}");

    cluster.restart(old).unwrap();
    let (back, rejoin) = wait_for(&mut cluster, "the restarted node back in the ISR", |p| {
        p.isr.contains(&old)
    });
    println!(
        "node {old} back in the ISR {:.2} s after its restart completed (ISR {:?})",
        rejoin.as_secs_f64(),
        back.isr
    );
    cluster.stop();
}

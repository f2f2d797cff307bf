//! Writes a small metadata log (a broker, topics, configs, a snapshot)
//! with the quorum controller on the single-voter log into a directory,
//! for Kafka's own tools to read:
//!
//! ```text
//! cargo run -p sluice-controller --example sample_metadata_log -- /tmp/meta
//! java -cp '.cache/kafka/lib/*' kafka.tools.DumpLogSegments \
//!   --cluster-metadata-decoder --files /tmp/meta/__cluster_metadata-0/00000000000000000000.log
//! ```

use std::sync::Arc;

use sluice_controller::*;
use sluice_metadata::{BrokerId, ConfigResource, ConfigResourceType};
use sluice_record::Offset;
use sluice_storage::{RealFs, SystemClock};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: sample_metadata_log <dir>");
    let config = SingleVoterConfig {
        snapshot_every_records: 20,
        ..SingleVoterConfig::new(BrokerId(1), &dir)
    };
    let log =
        Arc::new(SingleVoterLog::open(config, Arc::new(RealFs), Arc::new(SystemClock)).unwrap());
    let c = QuorumController::start(
        log.clone(),
        ControllerConfig::default(),
        Arc::new(PermissiveValidator),
        Arc::new(SystemClock),
    );
    let reg = c
        .register_broker(BrokerRegistrationRequest {
            broker_id: BrokerId(1),
            incarnation_id: uuid::Uuid::new_v4(),
            listeners: Vec::new(),
            features: Vec::new(),
            rack: Some("r1".into()),
            log_dirs: Vec::new(),
            previous_broker_epoch: None,
        })
        .await
        .unwrap();
    c.heartbeat(BrokerHeartbeat {
        broker_id: BrokerId(1),
        broker_epoch: reg.broker_epoch,
        current_metadata_offset: Offset(i64::MAX),
        want_fence: false,
        want_shutdown: false,
    })
    .await
    .unwrap();
    for i in 0..5 {
        let t = CreateTopic {
            num_partitions: 3,
            configs: vec![("retention.ms".into(), Some("60000".into()))],
            ..CreateTopic::named(format!("topic-{i}"))
        };
        c.create_topics(vec![t], false).await.unwrap();
    }
    let res = ConfigResource {
        resource_type: ConfigResourceType::Broker,
        name: String::new(),
    };
    let set = ConfigAlteration {
        name: "log.retention.ms".into(),
        op: AlterConfigOp::Set,
        value: Some("3600000".into()),
    };
    c.incremental_alter_configs(vec![(res, vec![set])], false)
        .await
        .unwrap();
    c.allocate_producer_ids(BrokerId(1), reg.broker_epoch)
        .await
        .unwrap();
    c.delete_topics(vec![TopicRef::Name("topic-0".into())])
        .await
        .unwrap();
    log.quiesce().await;
    c.shutdown().await;
    log.shutdown().await;
    println!(
        "wrote {} (snapshot {:?})",
        log.dir().display(),
        log.latest_snapshot().map(|s| s.file_name())
    );
}

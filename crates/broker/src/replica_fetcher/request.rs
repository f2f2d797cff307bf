//! The requests a fetcher sends: Fetch as a replica (ReplicaState with the
//! broker epoch from v15, ReplicaId before; CurrentLeaderEpoch,
//! LastFetchedEpoch, topic ids) and ListOffsets as a replica.

use std::collections::BTreeMap;

use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchRequest, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::{BrokerId as WireBrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_record::LeaderEpoch;
use sluice_storage::TopicPartition;
use uuid::Uuid;

use super::config::ReplicaFetcherConfig;
use super::session::FetchRequestData;

/// ListOffsets' special timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// The Fetch request of `data` at `version` (13..=17).
pub fn fetch_request(
    data: &FetchRequestData,
    version: i16,
    config: &ReplicaFetcherConfig,
    broker_epoch: i64,
) -> FetchRequest {
    let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
    for (&(topic_id, partition), p) in &data.to_send {
        topics.entry(topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(p.current_leader_epoch.0)
                .with_fetch_offset(p.fetch_offset.0)
                .with_last_fetched_epoch(p.last_fetched_epoch.map_or(-1, |e| e.0))
                .with_log_start_offset(p.log_start_offset.0)
                .with_partition_max_bytes(p.max_bytes),
        );
    }
    let mut forgotten: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for &(topic_id, partition) in &data.to_forget {
        forgotten.entry(topic_id).or_default().push(partition);
    }
    let req = FetchRequest::default()
        .with_max_wait_ms(config.wait_max_ms)
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.response_max_bytes)
        // Replicas read uncommitted data (up to the leader's log end).
        .with_isolation_level(0)
        .with_session_id(data.session_id)
        .with_session_epoch(data.epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(id, partitions)| {
                    FetchTopic::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_forgotten_topics_data(
            forgotten
                .into_iter()
                .map(|(id, partitions)| {
                    ForgottenTopic::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_rack_id(StrBytes::from_static_str(""));
    if version >= 15 {
        req.with_replica_id(WireBrokerId(-1)).with_replica_state(
            ReplicaState::default()
                .with_replica_id(WireBrokerId(config.replica_id))
                .with_replica_epoch(broker_epoch),
        )
    } else {
        req.with_replica_id(WireBrokerId(config.replica_id))
    }
}

/// A ListOffsets request for one partition's `timestamp` as a replica
/// (the leader answers its log end offset for LATEST, not the high watermark).
pub fn list_offsets_request(
    config: &ReplicaFetcherConfig,
    tp: &TopicPartition,
    leader_epoch: LeaderEpoch,
    timestamp: i64,
) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(WireBrokerId(config.replica_id))
        .with_isolation_level(0)
        .with_timeout_ms(config.socket_timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(tp.partition)
                .with_current_leader_epoch(leader_epoch.0)
                .with_timestamp(timestamp)])])
}

//! The API versions this broker advertises in ApiVersions, and the ApiVersions answer.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::error::ProtocolError;
use crate::response::encode_response;

/// `(api, min version, max version)` for every API the broker handles. ApiVersions
/// advertises exactly this table and [`crate::decode_request`] rejects anything outside
/// it with [`ProtocolError::UnsupportedVersion`] (or `UnknownApiKey` for an api key
/// Kafka does not define); the broker then answers the APIs of [`ANSWERED_WITH_ERROR`]
/// with an error and closes the connection for the rest.
///
/// For comparison, Apache Kafka 4.1.2 (measured with an ApiVersions v3 request against
/// the pinned reference broker) advertises: Produce 0–13 (it still lists v0–v2, which it
/// cannot parse, because librdkafka's compressed produce checks for them, KAFKA-18659;
/// neither kafka-protocol nor this crate's spec table decodes Produce below v3), Fetch
/// 4–18, ListOffsets 1–10, Metadata 0–13, OffsetForLeaderEpoch 2–4, ApiVersions 0–4, CreateTopics 2–7,
/// DeleteTopics 1–6, DeleteRecords 0–2, DescribeConfigs 1–4, AlterConfigs 0–2,
/// DescribeLogDirs 1–4, CreatePartitions 0–3, IncrementalAlterConfigs 0–1,
/// DescribeCluster 0–2, DescribeQuorum 0–2, DescribeTopicPartitions 0, WriteTxnMarkers 1. kafka-protocol 0.18 decodes all of
/// these except Produce v0–v2. The broker raises or lowers entries as handlers land.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    // Kafka 4.x removed v0-v1 (KIP-896); the leader answers from its
    // leader-epoch cache (crates/broker/src/handlers/offset_for_leader_epoch.rs).
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    // The single-voter metadata quorum (handlers/describe_quorum.rs).
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    // One-node answers (crates/broker/src/handlers/): no election or
    // reassignment is ever needed or ongoing, replicas stay in their log dir.
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::ListConfigResources, 0, 1),
    // Group coordinator (classic protocol).
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    // Transactional offset commits into the group coordinator, as Kafka
    // 4.1.2 advertises them (0–5); v5 is transaction version 2 (KIP-890):
    // the group coordinator adds the offsets partition itself.
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    // Consumer groups of the KIP-848 protocol.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Idempotent and transactional producers, as Kafka 4.1.2 advertises
    // them. AddPartitionsToTxn v0-v3 are the clients' versions (transaction
    // version 1); v4 (`verify_only`, KIP-890 part 1) and v5 (add, for a
    // transaction version 2 producer) are the partition leaders'. EndTxn
    // v5 is transaction version 2: an epoch bump in every answer.
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    // Transaction markers on a partition leader (KIP-98). Kafka 4.1.2's
    // broker listener advertises v1 only (v0 went in 4.0, KIP-896; its
    // spec in the pinned kafka-clients jar: validVersions "1").
    (ApiKey::WriteTxnMarkers, 1, 1),
    // The producers of a partition's log (KIP-664; the broker's
    // handlers/describe_producers.rs). Kafka 4.1.2 has only v0.
    (ApiKey::DescribeProducers, 0, 0),
    // Finalized feature levels (KIP-584), forwarded to the controller
    // (crates/broker/src/handlers/update_features.rs); 4.1.2 has 0–2.
    (ApiKey::UpdateFeatures, 0, 2),
    // SASL (issue 20), as Kafka 4.1.2 advertises it on every listener: a
    // SASL_PLAINTEXT connection's gate (the broker's network/sasl.rs)
    // answers them before authentication; afterwards, and on a PLAINTEXT
    // listener, they are answered with ILLEGAL_SASL_STATE
    // (handlers/unsupported.rs), as Kafka's KafkaApis answers them.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // SCRAM credentials in the cluster metadata (handlers/user_scram_credentials.rs).
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // ACLs (handlers/acls.rs); SECURITY_DISABLED without an authorizer,
    // as Kafka 4.1.2 answers (it advertises them either way).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // Client quotas in the cluster metadata (handlers/alter_client_quotas.rs,
    // describe_client_quotas.rs).
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// APIs that Apache Kafka 4.1.2's broker listener serves (with the version ranges it
/// advertises, measured with ApiVersions v0 against the pinned reference broker) and
/// Sluice does not implement. They are never advertised, but a request in Kafka's range
/// is decoded and answered with an error, as Kafka answers when the feature is absent
/// (the broker's `handlers/unsupported.rs`), instead of closing the connection. Kafka
/// closes the connection for a version outside its range, and so does Sluice.
pub const ANSWERED_WITH_ERROR: &[(ApiKey, i16, i16)] = &[
    // No delegation tokens.
    (ApiKey::CreateDelegationToken, 1, 3),
    (ApiKey::RenewDelegationToken, 1, 2),
    (ApiKey::ExpireDelegationToken, 1, 2),
    (ApiKey::DescribeDelegationToken, 1, 3),
];

/// The advertised `(min, max)` of `api_key` in `supported`, if any.
pub fn supported_range(supported: &[(ApiKey, i16, i16)], api_key: ApiKey) -> Option<(i16, i16)> {
    supported
        .iter()
        .find(|(k, _, _)| *k == api_key)
        .map(|&(_, lo, hi)| (lo, hi))
}

/// An ApiVersions response body listing `supported`, with `error_code`. Tagged fields
/// (supported/finalized features, zk migration) stay at their defaults, so they are not
/// written: librdkafka ≤ 2.12 fails on an ApiVersions v3 response carrying them at
/// default values.
pub fn api_versions_response(
    supported: &[(ApiKey, i16, i16)],
    error_code: i16,
) -> ApiVersionsResponse {
    let api_keys = supported
        .iter()
        .map(|&(k, lo, hi)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(lo)
                .with_max_version(hi)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_throttle_time_ms(0)
}

/// `resp` with the features of a KRaft node's ApiVersions v3+ answer:
/// `supported` as (name, min, max), `finalized` as (name, level) (Kafka
/// lists a finalized level as the range [level, level]) and `epoch`, the
/// metadata offset they are true at (`kafka-features describe` reads them).
/// Non-default values only, as Kafka writes them.
pub fn with_features<'a>(
    resp: ApiVersionsResponse,
    request_version: i16,
    supported: impl IntoIterator<Item = (&'a str, i16, i16)>,
    finalized: impl IntoIterator<Item = (&'a str, i16)>,
    epoch: i64,
) -> ApiVersionsResponse {
    let supported = supported
        .into_iter()
        // KIP-1022: before v4 a supported range starting at 0 is left out
        // (clients before it refuse a minimum of 0), as Kafka 4.1.2's
        // `maybeFilterSupportedFeatureKeys` does; v4 lists every feature.
        .filter(|&(_, lo, _)| request_version >= 4 || lo != 0)
        .map(|(name, lo, hi)| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_min_version(lo)
                .with_max_version(hi)
        })
        .collect();
    let finalized = finalized
        .into_iter()
        .map(|(name, level)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_min_version_level(level)
                .with_max_version_level(level)
        })
        .collect();
    resp.with_supported_features(supported)
        .with_finalized_features_epoch(epoch)
        .with_finalized_features(finalized)
}

/// The complete frame (size prefix, header v0, v0 body) answering an ApiVersions request
/// whose version the broker does not support: error UNSUPPORTED_VERSION and the
/// supported ranges, so the client can retry with a version both sides know.
pub fn api_versions_fallback_frame(
    supported: &[(ApiKey, i16, i16)],
    correlation_id: i32,
) -> Result<Bytes, ProtocolError> {
    let body = api_versions_response(supported, ResponseError::UnsupportedVersion.code());
    encode_response(
        ApiKey::ApiVersions,
        correlation_id,
        0,
        &ResponseKind::ApiVersions(body),
    )
}

#[cfg(test)]
mod answered_tests {
    use super::*;

    /// The APIs answered with an error are never advertised, and each is
    /// answered only in versions Kafka's specs define.
    #[test]
    fn apis_answered_with_an_error_are_never_advertised() {
        for &(key, lo, hi) in ANSWERED_WITH_ERROR {
            assert!(
                supported_range(SUPPORTED_APIS, key).is_none(),
                "{key:?} is advertised"
            );
            let spec = crate::schema::request_schema(key as i16).expect("in the specs");
            assert!(
                spec.valid.contains(lo) && spec.valid.contains(hi),
                "{key:?}"
            );
        }
        let advertised = api_versions_response(SUPPORTED_APIS, 0);
        for &(key, _, _) in ANSWERED_WITH_ERROR {
            assert!(advertised.api_keys.iter().all(|a| a.api_key != key as i16));
        }
    }
}

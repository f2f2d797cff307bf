//! Request dispatch: one module per Kafka API. The network layer decodes a
//! request (header + body) and calls [`handle`]; the result says how the
//! connection answers.

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::context::BrokerContext;
use crate::request::RequestContext;

pub mod api_versions;
pub mod controller_mutation;
pub mod fetch;
pub mod fetch_session;
pub mod leadership;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod request_quota;
pub mod throttled;

// Engineer A's modules (admin APIs).
pub mod alter_configs;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod incremental_alter_configs;

// Single-node answers of the replica-placement admin APIs, and
// ListConfigResources.
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod elect_leaders;
pub mod list_config_resources;
pub mod list_partition_reassignments;

// Group coordinator APIs (classic groups, committed offsets).
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod delete_groups;
pub mod describe_groups;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod update_features;

// Idempotent producers (issue 5).
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod describe_transactions;
pub mod end_txn;
pub mod init_producer_id;
pub mod list_transactions;
pub mod unsupported;

// Transactions: the partition leader's side, and what the admin tools
// read of a partition's producers.
pub mod describe_producers;
pub mod write_txn_markers;

// SASL/SCRAM credentials and ACLs in the cluster metadata (issue 20).
pub mod acls;
pub mod user_scram_credentials;
// Client quotas in the cluster metadata (issue 21).
pub mod alter_client_quotas;
pub mod describe_client_quotas;

/// How the connection answers one request.
#[derive(Debug)]
pub enum Response {
    /// An ordinary response, encoded by the network layer with the header
    /// version that matches the request.
    Message(ResponseKind),
    /// A Fetch response whose record bytes are sent from segment files
    /// (`sendfile`) instead of being copied into the encoded message.
    Fetch(fetch::FetchPlan),
    /// No response at all (Produce with acks=0).
    NoResponse,
    /// The request cannot be answered (an API this broker does not handle);
    /// Kafka closes the connection in that case. The string is for the log.
    Close(String),
}

impl From<ResponseKind> for Response {
    fn from(r: ResponseKind) -> Self {
        Response::Message(r)
    }
}

/// Calls the handler for `body`'s API. The header carries the version the
/// handler must answer in (`header.request_api_version`).
/// It runs as an unauthenticated local request (tests, fuzzing).
pub async fn handle(ctx: &BrokerContext, header: &RequestHeader, body: RequestKind) -> Response {
    handle_from(ctx, &RequestContext::plaintext(None), header, body).await
}

/// The name of the listener this broker advertises first: the endpoints
/// answered to a request made without a connection (tests, the broker's
/// own requests).
pub fn first_advertised(ctx: &BrokerContext) -> &str {
    ctx.config
        .advertised_listeners
        .first()
        .map_or("", |l| l.name.as_str())
}

/// [`handle`] for a request from the sender `request` describes (its
/// principal, listener and address; JoinGroup records the address as the
/// member's host, which DescribeGroups and `kafka-consumer-groups
/// --describe` show). While the image holds client quotas, the request's
/// time counts against its `request_percentage` quota ([`request_quota`]).
pub async fn handle_from(
    ctx: &BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    body: RequestKind,
) -> Response {
    if ctx.image.has_client_quotas() && request_quota::measured_here(&body) {
        let handling = gated(ctx, request, header, body);
        return request_quota::apply(ctx, request, header, handling).await;
    }
    gated(ctx, request, header, body).await
}

async fn gated(
    ctx: &BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    body: RequestKind,
) -> Response {
    // Authorization first (crate::authz): a denied request is answered
    // there, a partly denied one reaches its handler without the denied
    // items, which come back with their error codes.
    match crate::authz::gate(ctx, request, header, body) {
        crate::authz::Gate::Answer(response) => response,
        crate::authz::Gate::Pass(body, fixups) => {
            fixups.apply(dispatch(ctx, request, header, body).await)
        }
    }
}

async fn dispatch(
    ctx: &BrokerContext,
    request: &RequestContext,
    header: &RequestHeader,
    body: RequestKind,
) -> Response {
    let peer = request.client_address;
    match body {
        RequestKind::ApiVersions(req) => {
            ResponseKind::ApiVersions(api_versions::handle(ctx, header, req).await).into()
        }
        RequestKind::Metadata(req) => ResponseKind::Metadata(
            metadata::handle_on(
                ctx,
                request.listener.as_str(),
                request.principal.name(),
                header,
                req,
            )
            .await,
        )
        .into(),
        RequestKind::Produce(req) => throttled::produce(ctx, request, header, req).await,
        RequestKind::Fetch(req) => throttled::fetch(ctx, request, header, req).await,
        RequestKind::ListOffsets(req) => {
            ResponseKind::ListOffsets(list_offsets::handle(ctx, header, req).await).into()
        }
        RequestKind::OffsetForLeaderEpoch(req) => ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(ctx, header, req).await,
        )
        .into(),
        RequestKind::CreateTopics(req) => {
            ResponseKind::CreateTopics(create_topics::handle(ctx, request, header, req).await)
                .into()
        }
        RequestKind::DeleteTopics(req) => {
            ResponseKind::DeleteTopics(delete_topics::handle(ctx, request, header, req).await)
                .into()
        }
        RequestKind::CreatePartitions(req) => ResponseKind::CreatePartitions(
            create_partitions::handle(ctx, request, header, req).await,
        )
        .into(),
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(ctx, header, req).await).into()
        }
        RequestKind::AlterConfigs(req) => {
            ResponseKind::AlterConfigs(alter_configs::handle(ctx, header, req).await).into()
        }
        RequestKind::IncrementalAlterConfigs(req) => ResponseKind::IncrementalAlterConfigs(
            incremental_alter_configs::handle(ctx, header, req).await,
        )
        .into(),
        RequestKind::DeleteRecords(req) => {
            ResponseKind::DeleteRecords(delete_records::handle(ctx, header, req).await).into()
        }
        RequestKind::DescribeCluster(req) => ResponseKind::DescribeCluster(
            describe_cluster::handle_on(ctx, request.listener.as_str(), header, req).await,
        )
        .into(),
        RequestKind::DescribeQuorum(req) => {
            ResponseKind::DescribeQuorum(describe_quorum::handle(ctx, header, req).await).into()
        }
        RequestKind::DescribeLogDirs(req) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(ctx, header, req).await).into()
        }
        RequestKind::UpdateFeatures(req) => {
            ResponseKind::UpdateFeatures(update_features::handle(ctx, header, req).await).into()
        }
        RequestKind::ElectLeaders(req) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(ctx, header, req).await).into()
        }
        RequestKind::AlterPartitionReassignments(req) => ResponseKind::AlterPartitionReassignments(
            alter_partition_reassignments::handle(ctx, header, req).await,
        )
        .into(),
        RequestKind::ListPartitionReassignments(req) => ResponseKind::ListPartitionReassignments(
            list_partition_reassignments::handle(ctx, header, req).await,
        )
        .into(),
        RequestKind::AlterReplicaLogDirs(req) => ResponseKind::AlterReplicaLogDirs(
            alter_replica_log_dirs::handle(ctx, header, req).await,
        )
        .into(),
        RequestKind::ListConfigResources(req) => {
            ResponseKind::ListConfigResources(list_config_resources::handle(ctx, header, req).await)
                .into()
        }
        RequestKind::DescribeTopicPartitions(req) => ResponseKind::DescribeTopicPartitions(
            describe_topic_partitions::handle(ctx, header, req).await,
        )
        .into(),
        RequestKind::FindCoordinator(req) => ResponseKind::FindCoordinator(
            find_coordinator::handle_on(ctx, request.listener.as_str(), header, req).await,
        )
        .into(),
        RequestKind::JoinGroup(req) => {
            ResponseKind::JoinGroup(join_group::handle(ctx, header, req, peer).await).into()
        }
        RequestKind::ConsumerGroupHeartbeat(req) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(ctx, header, req, peer).await,
        )
        .into(),
        RequestKind::ConsumerGroupDescribe(req) => ResponseKind::ConsumerGroupDescribe(
            consumer_group_describe::handle(ctx, header, req).await,
        )
        .into(),
        RequestKind::SyncGroup(req) => {
            ResponseKind::SyncGroup(sync_group::handle(ctx, header, req).await).into()
        }
        RequestKind::Heartbeat(req) => {
            ResponseKind::Heartbeat(heartbeat::handle(ctx, header, req).await).into()
        }
        RequestKind::LeaveGroup(req) => {
            ResponseKind::LeaveGroup(leave_group::handle(ctx, header, req).await).into()
        }
        RequestKind::OffsetCommit(req) => {
            ResponseKind::OffsetCommit(offset_commit::handle(ctx, header, req).await).into()
        }
        RequestKind::OffsetFetch(req) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(ctx, header, req).await).into()
        }
        RequestKind::TxnOffsetCommit(req) => {
            ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(ctx, header, req).await).into()
        }
        RequestKind::OffsetDelete(req) => {
            ResponseKind::OffsetDelete(offset_delete::handle(ctx, header, req).await).into()
        }
        RequestKind::ListGroups(req) => {
            ResponseKind::ListGroups(list_groups::handle(ctx, header, req).await).into()
        }
        RequestKind::DescribeGroups(req) => {
            ResponseKind::DescribeGroups(describe_groups::handle(ctx, header, req).await).into()
        }
        RequestKind::DeleteGroups(req) => {
            ResponseKind::DeleteGroups(delete_groups::handle(ctx, header, req).await).into()
        }
        RequestKind::InitProducerId(req) => {
            ResponseKind::InitProducerId(init_producer_id::handle(ctx, header, req).await).into()
        }
        RequestKind::AddPartitionsToTxn(req) => {
            ResponseKind::AddPartitionsToTxn(add_partitions_to_txn::handle(ctx, header, req).await)
                .into()
        }
        RequestKind::AddOffsetsToTxn(req) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(ctx, header, req).await).into()
        }
        RequestKind::DescribeTransactions(req) => ResponseKind::DescribeTransactions(
            describe_transactions::handle(ctx, header, req).await,
        )
        .into(),
        RequestKind::ListTransactions(req) => {
            ResponseKind::ListTransactions(list_transactions::handle(ctx, header, req).await).into()
        }
        RequestKind::EndTxn(req) => {
            ResponseKind::EndTxn(end_txn::handle(ctx, header, req).await).into()
        }
        RequestKind::DescribeClientQuotas(req) => {
            ResponseKind::DescribeClientQuotas(describe_client_quotas::handle(ctx, req)).into()
        }
        RequestKind::AlterClientQuotas(req) => {
            ResponseKind::AlterClientQuotas(alter_client_quotas::handle(ctx, req).await).into()
        }
        RequestKind::DescribeUserScramCredentials(req) => {
            ResponseKind::DescribeUserScramCredentials(
                user_scram_credentials::describe(ctx, req).await,
            )
            .into()
        }
        RequestKind::AlterUserScramCredentials(req) => {
            ResponseKind::AlterUserScramCredentials(user_scram_credentials::alter(ctx, req).await)
                .into()
        }
        RequestKind::DescribeProducers(req) => {
            ResponseKind::DescribeProducers(describe_producers::handle(ctx, header, req).await)
                .into()
        }
        RequestKind::WriteTxnMarkers(req) => {
            let hook = write_txn_markers::offsets_marker_hook(ctx);
            ResponseKind::WriteTxnMarkers(write_txn_markers::handle(ctx, header, req, &hook).await)
                .into()
        }
        RequestKind::CreateAcls(req) => acls::create(ctx, header, req).await,
        RequestKind::DescribeAcls(req) => acls::describe(ctx, header, req).await,
        RequestKind::DeleteAcls(req) => acls::delete(ctx, header, req).await,
        other => unsupported::answer(header, other),
    }
}

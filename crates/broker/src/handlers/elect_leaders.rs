//! ElectLeaders through the controller: unknown topics and partitions are
//! answered here with Kafka's messages (UNKNOWN_TOPIC_OR_PARTITION "No such
//! topic as ..." / "No such partition as ..."); the rest go to the
//! controller, which elects (preferred: the first replica if it is in the
//! ISR and usable; unclean: only from the ISR, never a replica that may
//! lack the data) and commits the leader changes before the answer. A
//! partition already led by its preferred replica answers
//! ELECTION_NOT_NEEDED; a request for "all partitions" (null) lists only
//! partitions where something was done or went wrong, as Kafka does.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::ElectionType;

use crate::context::BrokerContext;

type Answer = (i16, Option<String>);

fn result(p: i32, (code, message): &Answer) -> PartitionResult {
    PartitionResult::default()
        .with_partition_id(p)
        .with_error_code(*code)
        .with_error_message(message.clone().map(StrBytes::from_string))
}

pub async fn handle(
    ctx: &BrokerContext,
    _header: &RequestHeader,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let election = if req.election_type == 1 {
        ElectionType::Unclean
    } else {
        ElectionType::Preferred
    };
    // Answers by topic, in request order; None = ask the controller.
    let mut order: Vec<TopicName> = Vec::new();
    let mut answers: BTreeMap<String, Vec<(i32, Option<Answer>)>> = BTreeMap::new();
    let mut ask = Vec::new();
    let all = req.topic_partitions.is_none();
    for t in req.topic_partitions.unwrap_or_default() {
        let name = t.topic.0.to_string();
        let topic = ctx.image.topic(&name);
        if !answers.contains_key(&name) {
            order.push(t.topic.clone());
        }
        let entry = answers.entry(name.clone()).or_default();
        for &p in &t.partitions {
            let unknown =
                |m: String| Some((ResponseError::UnknownTopicOrPartition.code(), Some(m)));
            let local = match &topic {
                None => unknown(format!("No such topic as {name}")),
                Some(m) if p < 0 || p >= m.partitions => {
                    unknown(format!("No such partition as {name}-{p}"))
                }
                Some(_) => {
                    ask.push((name.clone(), p));
                    None
                }
            };
            entry.push((p, local));
        }
    }
    let mut decided: BTreeMap<(String, i32), Answer> = BTreeMap::new();
    if all || !ask.is_empty() {
        let partitions = if all { None } else { Some(ask.clone()) };
        match ctx.controller.elect_leaders(election, partitions).await {
            Ok(results) => {
                for r in results {
                    let answer = match &r.result {
                        Ok(()) => (0, None),
                        Err(e) => (
                            sluice_transport::controller_error_code(e),
                            Some(e.to_string()),
                        ),
                    };
                    if all && !answers.contains_key(&r.topic) {
                        order.push(TopicName(StrBytes::from_string(r.topic.clone())));
                        answers.insert(r.topic.clone(), Vec::new());
                    }
                    if all {
                        if let Some(v) = answers.get_mut(&r.topic) {
                            v.push((r.partition, None));
                        }
                    }
                    decided.insert((r.topic, r.partition), answer);
                }
            }
            Err(e) => {
                let answer = (e.kafka_error_code(), Some(e.to_string()));
                for (t, p) in ask {
                    decided.insert((t, p), answer.clone());
                }
            }
        }
    }
    let results = order
        .into_iter()
        .map(|topic| {
            let name = topic.0.to_string();
            let partition_result = answers
                .remove(&name)
                .unwrap_or_default()
                .into_iter()
                .map(|(p, local)| {
                    let answer = local
                        .or_else(|| decided.get(&(name.clone(), p)).cloned())
                        .unwrap_or((ResponseError::UnknownServerError.code(), None));
                    result(p, &answer)
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic)
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_replica_election_results(results)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use sluice_metadata::record::PartitionChangeRecord;
    use sluice_metadata::MetadataRecord;
    use sluice_storage::SimFs;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::metadata::testing::{open_node, Node};

    fn request(election_type: i8, topics: Option<&[(&str, &[i32])]>) -> ElectLeadersRequest {
        ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_timeout_ms(30_000)
            .with_topic_partitions(topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps.to_vec())
                    })
                    .collect()
            }))
    }

    async fn elect(
        node: &Node,
        req: ElectLeadersRequest,
    ) -> Vec<(String, i32, i16, Option<String>)> {
        let r = handle(
            node,
            &RequestHeader::default().with_request_api_version(2),
            req,
        )
        .await;
        assert_eq!(r.error_code, 0);
        r.replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result.iter().map(|p| {
                    (
                        t.topic.0.to_string(),
                        p.partition_id,
                        p.error_code,
                        p.error_message.as_ref().map(|m| m.to_string()),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn elections_go_through_the_controller() {
        let config = BrokerConfig::with_overrides(&[("log.dirs", "/sim/data")]).unwrap();
        let node = open_node(config, &Arc::new(SimFs::new())).unwrap();
        node.block_on(node.controller.create_topic("t", 2, 1, BTreeMap::new()))
            .unwrap();
        node.block_on(async {
            let not_needed = Some("Leader election not needed for topic partition.".to_string());
            assert_eq!(
                elect(&node, request(0, Some(&[("t", &[0, 5]), ("nope", &[0])]))).await,
                vec![
                    ("t".into(), 0, 84, not_needed.clone()),
                    ("t".into(), 5, 3, Some("No such partition as t-5".into())),
                    ("nope".into(), 0, 3, Some("No such topic as nope".into())),
                ]
            );
            assert!(elect(&node, request(0, None)).await.is_empty());

            // t-1 loses its leader (as if its broker had been fenced): an
            // unclean election from the ISR gives it back, committed.
            let topic_id = node.image.topic("t").unwrap().topic_id;
            let mut change = PartitionChangeRecord::new(topic_id, 1);
            change.leader = sluice_metadata::BrokerId(-1);
            let offset = node
                .append(vec![MetadataRecord::PartitionChange(change)])
                .await;
            node.image.wait_for(offset).await.unwrap();
            assert!(!node.image.partition("t", 1).unwrap().has_leader());
            assert_eq!(
                elect(&node, request(1, None)).await,
                vec![("t".into(), 1, 0, None)]
            );
            let p = node.image.partition("t", 1).unwrap();
            assert_eq!(
                p.leader,
                sluice_metadata::BrokerId(1),
                "published before the answer"
            );
        });
    }
}

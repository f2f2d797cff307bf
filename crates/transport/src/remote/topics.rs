//! CreateTopics, DeleteTopics and CreatePartitions over the channel, with
//! or without the client they are for ([`MutationRequester`], sent in the
//! request's [`FORWARDED_REQUESTER_TAG`](crate::forwarded::FORWARDED_REQUESTER_TAG)):
//! the controller charges that client's controller mutation quota and
//! answers its throttle time in the response's `throttle_time_ms`.

use sluice_controller::client::{Committed, Items};
use sluice_controller::{
    ControllerError, CreatePartitions, CreateTopic, CreatedTopic, DeletedTopic, MutationRequester,
    Throttled, TopicRef,
};

use super::{convert, count_mismatch, RemoteController};

/// An answer without its throttle (a call made for no client).
pub(super) fn unthrottled<T>(c: Committed<Throttled<T>>) -> Committed<T> {
    Committed {
        value: c.value.value,
        offset: c.offset,
    }
}

fn committed<T>(
    value: T,
    throttle_ms: i32,
    offset: sluice_record::Offset,
) -> Committed<Throttled<T>> {
    Committed {
        value: Throttled { value, throttle_ms },
        offset,
    }
}

impl RemoteController {
    pub(super) async fn send_create_topics(
        &self,
        topics: &[CreateTopic],
        validate_only: bool,
        requester: Option<&MutationRequester>,
    ) -> Result<Committed<Throttled<Items<CreatedTopic>>>, ControllerError> {
        let mut req = convert::create_topics(topics, validate_only, self.timeout_ms());
        if let Some(r) = requester {
            crate::forwarded::attach(&mut req.unknown_tagged_fields, r);
        }
        let answer = self.send(&req).await?;
        let resp = answer.value;
        if resp.topics.len() != topics.len() {
            return Err(count_mismatch(
                "CreateTopics",
                resp.topics.len(),
                topics.len(),
            ));
        }
        let items = resp
            .topics
            .into_iter()
            .zip(topics)
            .map(|(r, asked)| convert::created_topic(r, &asked.name))
            .collect::<Result<_, _>>()?;
        Ok(committed(items, resp.throttle_time_ms, answer.offset))
    }

    pub(super) async fn send_delete_topics(
        &self,
        topics: &[TopicRef],
        requester: Option<&MutationRequester>,
    ) -> Result<Committed<Throttled<Items<DeletedTopic>>>, ControllerError> {
        let mut req = convert::delete_topics(topics, self.timeout_ms());
        if let Some(r) = requester {
            crate::forwarded::attach(&mut req.unknown_tagged_fields, r);
        }
        let answer = self.send(&req).await?;
        let resp = answer.value;
        if resp.responses.len() != topics.len() {
            return Err(count_mismatch(
                "DeleteTopics",
                resp.responses.len(),
                topics.len(),
            ));
        }
        let items = resp
            .responses
            .into_iter()
            .zip(topics)
            .map(|(r, asked)| convert::deleted_topic(r, asked))
            .collect();
        Ok(committed(items, resp.throttle_time_ms, answer.offset))
    }

    pub(super) async fn send_create_partitions(
        &self,
        topics: &[CreatePartitions],
        validate_only: bool,
        requester: Option<&MutationRequester>,
    ) -> Result<Committed<Throttled<Items<()>>>, ControllerError> {
        let mut req = convert::create_partitions(topics, validate_only, self.timeout_ms());
        if let Some(r) = requester {
            crate::forwarded::attach(&mut req.unknown_tagged_fields, r);
        }
        let answer = self.send(&req).await?;
        let resp = answer.value;
        if resp.results.len() != topics.len() {
            return Err(count_mismatch(
                "CreatePartitions",
                resp.results.len(),
                topics.len(),
            ));
        }
        let items = resp
            .results
            .iter()
            .zip(topics)
            .map(|(r, asked)| {
                convert::item(
                    "CreatePartitions",
                    &r.name.0,
                    &asked.topic,
                    r.error_code,
                    r.error_message.as_deref(),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(committed(items, resp.throttle_time_ms, answer.offset))
    }
}

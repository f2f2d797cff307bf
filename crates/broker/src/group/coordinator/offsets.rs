//! The offset APIs on the coordinator: OffsetCommit (lingered, see
//! [`crate::group::append`]), OffsetFetch (with KIP-447's stable read),
//! OffsetDelete, the retention of committed offsets and their removal when a
//! topic is deleted.

use std::collections::BTreeSet;

use crate::group::append::Durable;
use crate::group::consumer::{self, ConsumerGroup};
use crate::group::records::{self, OffsetCommitValue};
use crate::group::{GroupError, GroupState};

use super::{commit_values, CommitRequest, FetchedOffset, GroupCoordinator};

impl GroupCoordinator {
    /// OffsetCommit. `generation_id < 0` is a
    /// commit outside group membership (admin tools, manual assignment),
    /// allowed only while the group has no members.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        expire_timestamp: Option<i64>,
        commits: Vec<CommitRequest>,
    ) -> Result<(), GroupError> {
        self.commit_offsets_at_version(
            group_id,
            member_id,
            group_instance_id,
            generation_id,
            expire_timestamp,
            commits,
            9,
        )
        .await
    }

    /// [`GroupCoordinator::commit_offsets`] for an OffsetCommit of
    /// `api_version`: consumer group members must use v9+ (Kafka answers
    /// UNSUPPORTED_VERSION below).
    /// The commit is a lingered write: applied at once, answered when its
    /// batch is written.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_offsets_at_version(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        expire_timestamp: Option<i64>,
        commits: Vec<CommitRequest>,
        api_version: i16,
    ) -> Result<(), GroupError> {
        // Checked, applied and staged under the group's lock, which is
        // released before the answer waits for the batch.
        let stage = move || -> Result<Durable, GroupError> {
            // Kafka: generation < 0 is a commit from outside the group (admin
            // tools, manually assigned consumers), allowed while it has no members.
            let simple = generation_id < 0;
            let group = if simple {
                self.get_or_create_group(group_id)?
            } else {
                // Kafka: a member commit to a group that does not exist is a
                // stale generation (the group was deleted or expired).
                self.get_group(group_id)?
                    .ok_or(GroupError::IllegalGeneration)?
            };
            let mut entry = group.lock();
            let g = &entry.group;
            if g.state() == GroupState::Dead {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            if let Some(c) = &entry.consumer {
                // Kafka's ConsumerGroup.validateOffsetCommit: a commit from
                // outside the group (epoch < 0) only while it is empty; a
                // member's commit carries its current member epoch.
                if !(generation_id < 0 && c.is_empty()) {
                    let m = c.member(member_id).ok_or(GroupError::UnknownMemberId)?;
                    if api_version < 9 {
                        return Err(GroupError::UnsupportedVersion);
                    }
                    if generation_id != m.assignment.member_epoch {
                        return Err(GroupError::StaleMemberEpoch);
                    }
                }
            } else if simple {
                if g.num_members() > 0 {
                    // Kafka: a non-member commit to a group with members.
                    return Err(GroupError::UnknownMemberId);
                }
            } else {
                if g.state() == GroupState::Empty && g.num_members() == 0 {
                    return Err(GroupError::UnknownMemberId);
                }
                if let Some(instance) = group_instance_id {
                    match g
                        .members()
                        .find(|m| m.group_instance_id.as_deref() == Some(instance))
                    {
                        Some(m) if m.member_id != member_id => {
                            return Err(GroupError::FencedInstanceId)
                        }
                        None => return Err(GroupError::UnknownMemberId),
                        _ => {}
                    }
                }
                if g.member(member_id).is_none() {
                    return Err(GroupError::UnknownMemberId);
                }
                if generation_id != g.generation_id() {
                    return Err(GroupError::IllegalGeneration);
                }
                if g.state() == GroupState::CompletingRebalance {
                    return Err(GroupError::RebalanceInProgress);
                }
            }
            let now = self.now();
            let values = commit_values(commits, now, expire_timestamp);
            let recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = values
                .iter()
                .map(|(c, v)| {
                    (
                        records::offset_key(group_id, &c.topic, c.partition),
                        Some(records::offset_value(v)),
                    )
                })
                .collect();
            // Orders these commits against the group's transactional ones
            // (read under the group's lock, before the records are queued).
            let at = self.queue(group_id)?.order_stamp();
            let durable = self.stage(group_id, recs)?;
            for (c, v) in values {
                entry.offsets.apply(c.topic, c.partition, v, at);
            }
            Ok(durable)
        };
        stage()?.wait().await
    }

    /// OffsetFetch: `None` = every committed offset of the group.
    /// Partitions without a commit are returned with `None`. Pending
    /// transactional offsets are never shown.
    #[allow(clippy::type_complexity)]
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<(String, i32, Option<OffsetCommitValue>)>, GroupError> {
        Ok(self
            .fetch_offsets_stable(group_id, partitions, false)?
            .into_iter()
            .map(|(t, p, v)| (t, p, v.ok().flatten()))
            .collect())
    }

    /// OffsetFetch with KIP-447's `require_stable` (v7+): then a partition
    /// some open transaction holds a pending offset of answers
    /// UNSTABLE_OFFSET_COMMIT (the client retries until the transaction
    /// ends), as Kafka does per partition; without it, the committed
    /// offset. `None` lists the committed offsets only, as Kafka does (a
    /// partition with nothing but a pending offset is not listed).
    pub fn fetch_offsets_stable(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
        require_stable: bool,
    ) -> Result<Vec<FetchedOffset>, GroupError> {
        let group = self.get_group(group_id)?;
        let entry = group.as_ref().map(|g| g.lock());
        let answer = |t: &str, p: i32| -> Result<Option<OffsetCommitValue>, GroupError> {
            let Some(e) = &entry else { return Ok(None) };
            if require_stable && e.pending.is_pending(t, p) {
                return Err(GroupError::UnstableOffsetCommit);
            }
            Ok(e.offsets.get(t, p).cloned())
        };
        Ok(match partitions {
            Some(list) => list
                .into_iter()
                .map(|(t, p)| {
                    let v = answer(&t, p);
                    (t, p, v)
                })
                .collect(),
            None => entry
                .as_ref()
                .map(|e| {
                    e.offsets
                        .all()
                        .map(|((t, p), _)| (t.clone(), *p, answer(t, *p)))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// OffsetDelete: per-partition errors.
    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<(String, i32, Option<GroupError>)>, GroupError> {
        let group = self
            .get_group(group_id)?
            .ok_or(GroupError::GroupIdNotFound)?;
        let mut entry = group.lock();
        if entry.group.state() == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        let subscribed = if entry.group.num_members() > 0 {
            match entry.group.subscribed_topics() {
                Some(t) => Some(t),
                // Members of a non-consumer protocol: Kafka refuses.
                None => return Err(GroupError::NonEmptyGroup),
            }
        } else {
            None
        };
        let mut results = Vec::new();
        let mut recs = Vec::new();
        for (t, p) in partitions {
            let consumer_subscribed = entry
                .consumer
                .as_ref()
                .is_some_and(|c| c.members().any(|m| m.subscribes_to(&t)));
            if consumer_subscribed || subscribed.as_ref().is_some_and(|s| s.contains(&t)) {
                results.push((t, p, Some(GroupError::GroupSubscribedToTopic)));
                continue;
            }
            // Kafka writes the tombstone for a pending transactional
            // offset too; it removes the pending offsets of every producer.
            if entry.offsets.get(&t, p).is_some() || entry.pending.is_pending(&t, p) {
                recs.push((records::offset_key(group_id, &t, p), None));
            }
            results.push((t, p, None));
        }
        self.append(group_id, &recs)?;
        for (t, p, e) in &results {
            if e.is_none() {
                entry.offsets.remove(t, *p);
                entry.pending.remove(t, *p);
            }
        }
        Ok(results)
    }

    /// Removes expired offsets (writing tombstones) and deletes Empty
    /// groups left without offsets (Kafka's offsets.retention.minutes).
    pub fn expire_offsets(&self) {
        let now = self.now();
        let retention = self.config.offsets_retention_ms;
        for g in self.all_groups() {
            let mut entry = g.lock();
            let group_id = entry.group.group_id().to_string();
            let (has_members, empty_since, subscribed) = match &entry.consumer {
                Some(c) => (
                    !c.is_empty(),
                    c.is_empty().then(|| c.empty_since_ms()),
                    // A regex subscriber may consume any topic: keep them all.
                    if c.members()
                        .any(|m| m.subscription.subscribed_topic_regex.is_some())
                    {
                        None
                    } else {
                        Some(c.subscribed_topics(None).into_iter().collect::<Vec<_>>())
                    },
                ),
                None => (
                    entry.group.num_members() > 0,
                    (entry.group.state() == GroupState::Empty
                        && entry.group.protocol_type().is_some())
                    .then(|| entry.group.state_timestamp_ms()),
                    entry.group.subscribed_topics(),
                ),
            };
            // Kafka keeps an offset a transaction has a pending offset of,
            // and a group with an open transaction.
            let mut expired = entry.offsets.expired(
                now,
                retention,
                empty_since,
                subscribed.as_deref(),
                has_members,
            );
            expired.retain(|(t, p)| !entry.pending.is_pending(t, *p));
            let mut recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = expired
                .iter()
                .map(|(t, p)| (records::offset_key(&group_id, t, *p), None))
                .collect();
            let all_gone = expired.len() == entry.offsets.len()
                && entry.pending.is_empty()
                && entry.group.state() == GroupState::Empty
                && entry.group.is_empty()
                && entry.consumer.as_ref().is_none_or(ConsumerGroup::is_empty);
            if all_gone {
                if let Some(c) = &entry.consumer {
                    for r in c.delete_records() {
                        recs.extend(consumer::records::encode(&group_id, &r));
                    }
                }
                recs.push((records::group_key(&group_id), None));
            }
            if recs.is_empty() || self.append(&group_id, &recs).is_err() {
                continue;
            }
            for (t, p) in &expired {
                entry.offsets.remove(t, *p);
            }
            if all_gone {
                entry.consumer = None;
                entry.group.mark_dead(now);
            }
            tracing::info!(group = %group_id, offsets = expired.len(), "expired committed offsets");
        }
        // Drop Dead groups from the maps.
        if let Ok(parts) = self.parts() {
            for p in parts {
                p.groups
                    .lock()
                    .retain(|_, g| g.lock().group.state() != GroupState::Dead);
            }
        }
    }

    /// A topic was deleted: its committed offsets go too (tombstones), as
    /// Kafka does, so a topic re-created under the same name does not
    /// inherit them. Returns how many offsets were removed.
    pub fn on_topic_deleted(&self, topic: &str) -> usize {
        let mut removed = 0;
        for g in self.all_groups() {
            let mut entry = g.lock();
            let group_id = entry.group.group_id().to_string();
            // Committed and pending (transactional) offsets alike, one
            // tombstone per partition.
            let mut gone: BTreeSet<i32> = entry
                .offsets
                .all()
                .filter(|((t, _), _)| t == topic)
                .map(|((_, p), _)| *p)
                .collect();
            gone.extend(
                entry
                    .pending
                    .partitions()
                    .into_iter()
                    .filter(|(t, _)| t == topic)
                    .map(|(_, p)| p),
            );
            if gone.is_empty() {
                continue;
            }
            let recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = gone
                .iter()
                .map(|p| (records::offset_key(&group_id, topic, *p), None))
                .collect();
            if let Err(e) = self.append(&group_id, &recs) {
                tracing::warn!(group = %group_id, topic, error = %e, "cannot delete offsets of a deleted topic");
                continue;
            }
            for p in gone {
                entry.offsets.remove(topic, p);
                entry.pending.remove(topic, p);
                removed += 1;
            }
        }
        removed
    }

    // ---- admin ----

    /// OffsetFetch v9 of a consumer group member: the member must exist
    /// and send its current epoch (Kafka's `validateOffsetFetch`); a fetch
    /// without member id and with epoch < 0 (admin tools) is always allowed.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(group) = self.get_group(group_id)? else {
            return Ok(());
        };
        let entry = group.lock();
        let Some(c) = &entry.consumer else {
            return Ok(());
        };
        let member_id = member_id.filter(|m| !m.is_empty());
        if member_id.is_none() && member_epoch < 0 {
            return Ok(());
        }
        let m = c
            .member(member_id.unwrap_or(""))
            .ok_or(GroupError::UnknownMemberId)?;
        if m.assignment.member_epoch != member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    // ---- loading ----
}

//! The invariants of the metadata quorum, checked over a history of what
//! every node's listeners delivered, what openraft said about leadership,
//! and what the controllers acknowledged. The simulations feed it as they
//! run; `controller_sim.rs` also feeds it corrupted histories to show it
//! flags each violation.
//!
//! - **One leader per epoch**: every claim of leadership (a node's own
//!   state, a `LeaderChange` event) names the same node for an epoch.
//! - **Identical committed prefixes**: every record delivered at an offset,
//!   by any node in any incarnation, is the same (record and epoch); every
//!   image at an offset (folded from batches or loaded from a snapshot,
//!   or a controller's own image) has the same canonical bytes.
//! - **Broker epochs**: as in KRaft, a broker's epoch is the offset of its
//!   `RegisterBrokerRecord`; a broker's registrations carry strictly
//!   increasing epochs in offset order, and no epoch is given twice (to any
//!   broker).
//! - **Usable leaders only**: no image names as a partition leader a broker
//!   that is unregistered, fenced or in controlled shutdown, nor one
//!   outside the partition's replicas and ISR.
//! - **Sound ISRs**: every ISR is a list of distinct replicas holding the
//!   leader. Without ELR it is never empty, and a member that cannot serve
//!   (unregistered, fenced, shutting down) is only ever the last member of
//!   a leaderless ISR (fencing takes a broker out of every ISR; the last
//!   member stays). With ELR (KIP-966) no such member is in any ISR, an
//!   empty ISR has no leader, and the eligible leader replicas are distinct
//!   replicas outside the ISR.
//! - **Nothing acknowledged is lost**: every acknowledged operation's
//!   record is in the committed log ([`Checker::check_acked`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use sluice_controller::{CommittedBatch, LeaderAndEpoch};
use sluice_metadata::{BrokerId, MetadataImage, MetadataRecord};
use uuid::Uuid;

/// What a controller acknowledged; its record must be in the committed log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acked {
    Registered {
        broker: i32,
        epoch: i64,
    },
    TopicCreated {
        name: String,
        id: Uuid,
    },
    TopicDeleted {
        id: Uuid,
    },
    /// A topic of this name (some incarnation of it) reached `count`
    /// partitions.
    PartitionsCreated {
        topic: String,
        count: i32,
    },
    /// An AlterPartition answered with this ISR: some committed record of
    /// the partition set it (the change, or an earlier one when the
    /// request changed nothing).
    IsrChanged {
        topic: Uuid,
        partition: i32,
        isr: Vec<i32>,
    },
    /// A topic config key set to a value.
    ConfigSet {
        topic: String,
        key: String,
        value: String,
    },
}

impl Acked {
    /// Whether `r` is this operation's record; `ids_of` gives the ids the
    /// committed log gave a topic name.
    fn matches(&self, r: &MetadataRecord, ids_of: &dyn Fn(&str) -> Vec<Uuid>) -> bool {
        match (self, r) {
            (Acked::Registered { broker, epoch }, MetadataRecord::RegisterBroker(x)) => {
                x.broker_id.0 == *broker && x.broker_epoch.0 == *epoch
            }
            (Acked::TopicCreated { name, id }, MetadataRecord::Topic(x)) => {
                x.name == *name && x.topic_id == *id
            }
            (Acked::TopicDeleted { id }, MetadataRecord::RemoveTopic(x)) => x.topic_id == *id,
            (Acked::PartitionsCreated { topic, count }, MetadataRecord::Partition(x)) => {
                x.partition_id == count - 1 && ids_of(topic).contains(&x.topic_id)
            }
            (
                Acked::IsrChanged {
                    topic,
                    partition,
                    isr,
                },
                MetadataRecord::PartitionChange(x),
            ) => {
                x.topic_id == *topic
                    && x.partition_id == *partition
                    && x.isr
                        .as_ref()
                        .is_some_and(|i| i.iter().map(|b| b.0).eq(isr.iter().copied()))
            }
            (
                Acked::IsrChanged {
                    topic,
                    partition,
                    isr,
                },
                MetadataRecord::Partition(x),
            ) => {
                x.topic_id == *topic
                    && x.partition_id == *partition
                    && x.isr.iter().map(|b| b.0).eq(isr.iter().copied())
            }
            (Acked::ConfigSet { topic, key, value }, MetadataRecord::Config(x)) => {
                x.resource_type == 2
                    && x.resource_name == *topic
                    && x.name == *key
                    && x.value.as_deref() == Some(value.as_str())
            }
            _ => false,
        }
    }
}

/// The checker's state (see the module docs).
#[derive(Default)]
pub struct Checker {
    /// epoch → leader.
    pub leaders: BTreeMap<i64, i32>,
    /// offset → (epoch, record), from every listener of every node.
    pub committed: BTreeMap<i64, (i32, MetadataRecord)>,
    /// image offset → (hash of its canonical bytes, who first showed it).
    images: BTreeMap<i64, (u64, String)>,
    /// offset of a registration → (broker, broker epoch).
    registrations: BTreeMap<i64, (i32, i64)>,
    /// broker epoch → offset of the registration that gave it.
    epochs: BTreeMap<i64, i64>,
    acked_checked: usize,
    /// The controllers run with eligible leader replicas (KIP-966).
    pub elr: bool,
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl Checker {
    /// A checker of controllers that run with (or without) ELR.
    pub fn with_elr(elr: bool) -> Checker {
        Checker {
            elr,
            ..Checker::default()
        }
    }

    /// `node` claims to lead `epoch` (`how`: where the claim was seen).
    pub fn leader(&mut self, epoch: i64, node: i32, how: &str) -> Result<(), String> {
        let prev = *self.leaders.entry(epoch).or_insert(node);
        if prev != node {
            return Err(format!(
                "two leaders in epoch {epoch}: {prev} and {node} ({how})"
            ));
        }
        Ok(())
    }

    /// A `LeaderChange` event delivered by `node`'s listener.
    pub fn leader_change(&mut self, node: i32, le: LeaderAndEpoch) -> Result<(), String> {
        match le.leader {
            Some(l) => self.leader(le.epoch.0 as i64, l.0, &format!("listener of n{node}")),
            None => Ok(()),
        }
    }

    /// A committed batch delivered by `node`'s listener.
    pub fn batch(&mut self, node: i32, b: &CommittedBatch) -> Result<(), String> {
        for (i, r) in b.records.iter().enumerate() {
            let offset = b.base_offset.0 + i as i64;
            match self.committed.get(&offset) {
                Some(prev) if *prev != (b.epoch.0, r.clone()) => {
                    return Err(format!(
                        "diverging prefix: n{node} delivered {:?} at offset {offset}, \
                         another node delivered {prev:?}",
                        (b.epoch.0, r)
                    ));
                }
                Some(_) => {}
                None => {
                    self.committed.insert(offset, (b.epoch.0, r.clone()));
                    if let MetadataRecord::RegisterBroker(reg) = r {
                        self.registration(offset, reg.broker_id.0, reg.broker_epoch.0)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A committed `RegisterBrokerRecord` at `offset`.
    fn registration(&mut self, offset: i64, broker: i32, epoch: i64) -> Result<(), String> {
        if let Some(&other) = self.epochs.get(&epoch) {
            if other != offset {
                let (b, _) = self.registrations[&other];
                return Err(format!(
                    "broker epoch {epoch} given twice: to broker {b} at offset {other} \
                     and to broker {broker} at offset {offset}"
                ));
            }
        }
        if epoch != offset {
            return Err(format!(
                "broker {broker} registered at offset {offset} with epoch {epoch} \
                 (KRaft's broker epoch is the offset of the registration)"
            ));
        }
        let before = self
            .registrations
            .range(..offset)
            .rev()
            .find(|(_, (b, _))| *b == broker);
        if let Some((&o, &(_, e))) = before {
            if e >= epoch {
                return Err(format!(
                    "broker {broker}'s epoch went from {e} (offset {o}) to {epoch} (offset {offset})"
                ));
            }
        }
        let after = self
            .registrations
            .range(offset + 1..)
            .find(|(_, (b, _))| *b == broker);
        if let Some((&o, &(_, e))) = after {
            if e <= epoch {
                return Err(format!(
                    "broker {broker}'s epoch went from {epoch} (offset {offset}) to {e} (offset {o})"
                ));
            }
        }
        self.registrations.insert(offset, (broker, epoch));
        self.epochs.insert(epoch, offset);
        Ok(())
    }

    /// An image `who` built or loaded (after a whole batch or snapshot).
    pub fn image(&mut self, who: &str, image: &MetadataImage) -> Result<(), String> {
        leaders_usable(image).map_err(|e| format!("{who}: {e}"))?;
        isrs_sound(image, self.elr).map_err(|e| format!("{who}: {e}"))?;
        let offset = image.provenance().last_offset.0;
        let bytes = image
            .canonical_bytes()
            .map_err(|e| format!("{who}: image at {offset} has no canonical form: {e}"))?;
        let h = hash(&bytes);
        match self.images.get(&offset) {
            Some((prev, first)) if *prev != h => Err(format!(
                "diverging images at offset {offset}: {who}'s differs from {first}'s"
            )),
            Some(_) => Ok(()),
            None => {
                self.images.insert(offset, (h, who.to_owned()));
                Ok(())
            }
        }
    }

    /// Whether the committed log as delivered has no gap up to its end (a
    /// range every node skipped through snapshots cannot be searched).
    pub fn contiguous(&self) -> bool {
        match self.committed.keys().next_back() {
            None => true,
            Some(&last) => self.committed.len() as i64 == last + 1,
        }
    }

    /// Every acknowledged operation not yet checked must be in the
    /// committed log. Returns how many could not be searched (the log has
    /// gaps); `Err` for one that is missing from a gapless log.
    pub fn check_acked(&mut self, acked: &[Acked]) -> Result<usize, String> {
        let mut unsearchable = 0;
        let ids_of = |name: &str| -> Vec<Uuid> {
            self.committed
                .values()
                .filter_map(|(_, r)| match r {
                    MetadataRecord::Topic(t) if t.name == name => Some(t.topic_id),
                    _ => None,
                })
                .collect()
        };
        for a in &acked[self.acked_checked.min(acked.len())..] {
            if self.committed.values().any(|(_, r)| a.matches(r, &ids_of)) {
                continue;
            }
            if self.contiguous() {
                return Err(format!(
                    "acknowledged {a:?} is not in the committed log (offsets 0..={})",
                    self.committed.keys().next_back().copied().unwrap_or(-1)
                ));
            }
            unsearchable += 1;
        }
        self.acked_checked = acked.len();
        Ok(unsearchable)
    }
}

/// No partition is led by a broker that is not registered, fenced, in
/// controlled shutdown, or not among its replicas and ISR.
pub fn leaders_usable(image: &MetadataImage) -> Result<(), String> {
    let at = image.provenance().last_offset.0;
    for t in image.topics() {
        for (p, reg) in t.partitions() {
            let leader = reg.leader;
            if leader == BrokerId::NO_LEADER {
                continue;
            }
            let why = match image.broker(leader) {
                None => Some("an unregistered broker"),
                Some(b) if b.fenced => Some("a fenced broker"),
                Some(b) if b.in_controlled_shutdown => Some("a broker in controlled shutdown"),
                Some(_) if !reg.replicas.contains(&leader) => {
                    Some("a broker not among its replicas")
                }
                Some(_) if !reg.isr.contains(&leader) => Some("a broker outside its ISR"),
                Some(_) => None,
            };
            if let Some(why) = why {
                return Err(format!(
                    "image at offset {at} names {why} ({leader}) leader of {}-{p}",
                    t.name()
                ));
            }
        }
    }
    Ok(())
}

/// See **Sound ISRs** in the module docs.
pub fn isrs_sound(image: &MetadataImage, elr: bool) -> Result<(), String> {
    let at = image.provenance().last_offset.0;
    let distinct = |list: &[BrokerId]| {
        let mut sorted = list.to_vec();
        sorted.sort_unstable();
        !sorted.windows(2).any(|w| w[0] == w[1])
    };
    for t in image.topics() {
        for (p, reg) in t.partitions() {
            let fail = |why: String| {
                Err(format!(
                    "image at offset {at}: {}-{p} has ISR {:?} (leader {}, replicas {:?}, ELR {:?}): {why}",
                    t.name(),
                    reg.isr,
                    reg.leader,
                    reg.replicas,
                    reg.elr
                ))
            };
            if reg.isr.is_empty() && (!elr || reg.has_leader()) {
                return fail("empty".into());
            }
            if !distinct(&reg.isr) {
                return fail("a member twice".into());
            }
            if let Some(b) = reg.isr.iter().find(|b| !reg.replicas.contains(b)) {
                return fail(format!("{b} is not a replica"));
            }
            if reg.has_leader() && !reg.isr.contains(&reg.leader) {
                return fail("the leader is outside it".into());
            }
            let unusable = |b: &BrokerId| !image.broker(*b).is_some_and(|r| r.is_usable());
            if let Some(b) = reg.isr.iter().find(|b| unusable(b)) {
                if elr || reg.isr.len() > 1 || reg.has_leader() {
                    return fail(format!(
                        "{b} cannot serve (unregistered, fenced or shutting down) yet is \
                         not the last member of a leaderless ISR"
                    ));
                }
            }
            if !elr && !reg.elr.is_empty() {
                return fail("an ELR without ELR enabled".into());
            }
            if !distinct(&reg.elr) || reg.elr.iter().any(|b| !reg.replicas.contains(b)) {
                return fail("the ELR is not distinct replicas".into());
            }
            if let Some(b) = reg.elr.iter().find(|b| reg.isr.contains(b)) {
                return fail(format!("{b} is in both the ISR and the ELR"));
            }
        }
    }
    Ok(())
}

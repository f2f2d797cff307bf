//! Fetch from the closest replica (KIP-392): which replica the leader
//! sends a consumer to, as Kafka's `ReplicaManager.findPreferredReadReplica`
//! and its `ReplicaSelector`s decide. Pure: the fetch handler gathers the
//! views (the leader's follower states, the brokers' racks from the image)
//! and answers the choice as the partition's `PreferredReadReplica`.
//!
//! Rules (Kafka 4.1):
//! - only consumer fetches (no ReplicaId) of Fetch v11+ (which carry
//!   `RackId`) are redirected, and only by a leader;
//! - a follower is a candidate when it is in the committed ISR, its log
//!   holds the fetch offset (log start <= offset <= log end, as the leader
//!   last saw from its fetches) and it is an unfenced broker with an
//!   endpoint on the client's listener; the leader always is;
//! - [`ReplicaSelector::RackAware`] (`RackAwareReplicaSelector`): no client
//!   rack, or no candidate in the client's rack (exact, case-sensitive
//!   match): the leader; the leader when it is in that rack; otherwise the
//!   candidate of that rack with the largest log end, then the shortest
//!   time since it was last caught up, then the largest broker id;
//! - choosing the leader means no redirection (`PreferredReadReplica` -1
//!   and a normal read); choosing a follower means an answer with no
//!   records, the leader's offsets, and the follower's id, sent at once.

use sluice_metadata::BrokerId;
use sluice_record::Offset;

/// Kafka's class name of its rack-aware selector, the one value of
/// `replica.selector.class` Sluice implements.
pub const RACK_AWARE_CLASS: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// The configured `replica.selector.class` (unset: no selector, every
/// consumer reads from the leader, Kafka's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaSelector {
    /// `org.apache.kafka.common.replica.RackAwareReplicaSelector`.
    RackAware,
}

impl ReplicaSelector {
    /// The selector named by Kafka's class name (validated by the config
    /// table, so anything else is a bug there).
    pub fn from_class(name: &str) -> Option<Self> {
        (name == RACK_AWARE_CLASS).then_some(ReplicaSelector::RackAware)
    }

    /// Whether this selector can only pick the leader for a client in
    /// `client_rack` (so the leader need not gather any view).
    pub fn always_leader(&self, client_rack: &str) -> bool {
        match self {
            ReplicaSelector::RackAware => client_rack.is_empty(),
        }
    }

    /// Kafka's `ReplicaSelector.select`: the broker the client should
    /// fetch from among `leader` and the candidate `followers`.
    pub fn select(
        &self,
        client_rack: &str,
        leader: &ReplicaView<'_>,
        followers: &[ReplicaView<'_>],
    ) -> BrokerId {
        match self {
            ReplicaSelector::RackAware => rack_aware(client_rack, leader, followers),
        }
    }

    /// The `PreferredReadReplica` to answer: the selected follower, or
    /// `None` when the selector keeps the client on the leader.
    pub fn preferred_read_replica(
        &self,
        client_rack: &str,
        leader: &ReplicaView<'_>,
        followers: &[ReplicaView<'_>],
    ) -> Option<BrokerId> {
        let chosen = self.select(client_rack, leader, followers);
        (chosen != leader.broker).then_some(chosen)
    }
}

/// One replica as a selector sees it (Kafka's `ReplicaView`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaView<'a> {
    pub broker: BrokerId,
    /// The broker's `broker.rack` (`None`: not set).
    pub rack: Option<&'a str>,
    pub log_end_offset: Offset,
    /// How long ago it last had everything the leader had (0 for the leader).
    pub time_since_caught_up_ms: i64,
}

/// Kafka's `ReplicaView.comparator()`: larger log end first, then more
/// recently caught up, then the larger broker id.
fn more_caught_up(a: &ReplicaView<'_>, b: &ReplicaView<'_>) -> std::cmp::Ordering {
    a.log_end_offset
        .cmp(&b.log_end_offset)
        .then(b.time_since_caught_up_ms.cmp(&a.time_since_caught_up_ms))
        .then(a.broker.cmp(&b.broker))
}

fn rack_aware(
    client_rack: &str,
    leader: &ReplicaView<'_>,
    followers: &[ReplicaView<'_>],
) -> BrokerId {
    if client_rack.is_empty() || leader.rack == Some(client_rack) {
        return leader.broker;
    }
    followers
        .iter()
        .filter(|f| f.rack == Some(client_rack))
        .max_by(|a, b| more_caught_up(a, b))
        .map_or(leader.broker, |f| f.broker)
}

/// What the leader knows of one follower a consumer could be sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerCandidate {
    pub broker: BrokerId,
    pub log_end_offset: Offset,
    pub time_since_caught_up_ms: i64,
}

/// Kafka's eligibility rule: an ISR member whose log, as its last fetch
/// showed it, holds `fetch_offset`.
pub fn eligible(in_isr: bool, log_start: Offset, log_end: Offset, fetch_offset: Offset) -> bool {
    in_isr && log_end >= fetch_offset && log_start <= fetch_offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: i32, rack: Option<&str>, leo: i64, since: i64) -> ReplicaView<'_> {
        ReplicaView {
            broker: BrokerId(id),
            rack,
            log_end_offset: Offset(leo),
            time_since_caught_up_ms: since,
        }
    }

    const RACK: ReplicaSelector = ReplicaSelector::RackAware;

    #[test]
    fn the_class_name_is_kafkas() {
        assert_eq!(
            ReplicaSelector::from_class("org.apache.kafka.common.replica.RackAwareReplicaSelector"),
            Some(RACK)
        );
        assert_eq!(
            ReplicaSelector::from_class("RackAwareReplicaSelector"),
            None
        );
        assert!(RACK.always_leader(""));
        assert!(!RACK.always_leader("r1"));
    }

    #[test]
    fn the_config_key_takes_kafkas_class_name_only() {
        use crate::config::BrokerConfig;
        let set = |v: &str| BrokerConfig::with_overrides(&[("replica.selector.class", v)]);
        assert_eq!(set(RACK_AWARE_CLASS).unwrap().replica_selector, Some(RACK));
        assert_eq!(
            BrokerConfig::default().replica_selector,
            None,
            "Kafka's default: none"
        );
        for bad in ["com.example.MySelector", "RackAwareReplicaSelector", ""] {
            let e = set(bad).unwrap_err();
            assert_eq!(e.key(), Some("replica.selector.class"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_follower_in_the_clients_rack_is_preferred() {
        let leader = view(1, Some("r1"), 100, 0);
        let f = [view(2, Some("r2"), 100, 0), view(3, Some("r3"), 100, 0)];
        assert_eq!(
            RACK.preferred_read_replica("r2", &leader, &f),
            Some(BrokerId(2))
        );
        assert_eq!(
            RACK.preferred_read_replica("r3", &leader, &f),
            Some(BrokerId(3))
        );
    }

    #[test]
    fn the_leader_when_no_rack_matches_or_it_is_in_the_rack() {
        let leader = view(1, Some("r1"), 100, 0);
        let f = [view(2, Some("r1"), 100, 0), view(3, Some("r3"), 100, 0)];
        // The leader is in the client's rack: it wins even against a
        // follower there.
        assert_eq!(RACK.preferred_read_replica("r1", &leader, &f), None);
        // No replica in the client's rack, or no client rack at all.
        assert_eq!(RACK.preferred_read_replica("r9", &leader, &f), None);
        assert_eq!(RACK.preferred_read_replica("", &leader, &f), None);
        // Racks compare exactly (Kafka's String.equals).
        assert_eq!(RACK.preferred_read_replica("R3", &leader, &f), None);
        // A broker without broker.rack is in no rack.
        let unset = [view(2, None, 100, 0)];
        assert_eq!(RACK.preferred_read_replica("r2", &leader, &unset), None);
        // Without candidates (none in the ISR or holding the offset).
        assert_eq!(RACK.preferred_read_replica("r2", &leader, &[]), None);
    }

    #[test]
    fn ties_go_to_the_most_caught_up_then_the_largest_id() {
        let leader = view(1, Some("r1"), 100, 0);
        // Larger log end wins.
        let f = [view(2, Some("r2"), 90, 0), view(3, Some("r2"), 95, 500)];
        assert_eq!(
            RACK.preferred_read_replica("r2", &leader, &f),
            Some(BrokerId(3))
        );
        // Same log end: the one caught up more recently.
        let f = [view(2, Some("r2"), 95, 10), view(3, Some("r2"), 95, 500)];
        assert_eq!(
            RACK.preferred_read_replica("r2", &leader, &f),
            Some(BrokerId(2))
        );
        // Same both: the larger broker id (Kafka's comparator ends on the id).
        let f = [view(3, Some("r2"), 95, 10), view(2, Some("r2"), 95, 10)];
        assert_eq!(
            RACK.preferred_read_replica("r2", &leader, &f),
            Some(BrokerId(3))
        );
        let f = [view(4, Some("r2"), 95, 10), view(5, Some("r2"), 95, 10)];
        assert_eq!(
            RACK.preferred_read_replica("r2", &leader, &f),
            Some(BrokerId(5))
        );
    }

    #[test]
    fn eligibility_is_isr_and_the_offset_within_the_followers_log() {
        let (start, end) = (Offset(10), Offset(50));
        assert!(eligible(true, start, end, Offset(10)));
        assert!(eligible(true, start, end, Offset(50)), "at its log end");
        assert!(
            !eligible(true, start, end, Offset(51)),
            "beyond its log end"
        );
        assert!(
            !eligible(true, start, end, Offset(9)),
            "before its log start"
        );
        assert!(!eligible(false, start, end, Offset(20)), "out of the ISR");
        // A follower that has not fetched since this leader took over.
        assert!(!eligible(true, Offset(-1), Offset(-1), Offset(0)));
    }
}

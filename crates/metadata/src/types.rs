//! Newtypes of cluster metadata. Broker ids and epochs are never bare
//! integers. `Offset` and `LeaderEpoch` come from `sluice-record`, because
//! the log layer stamps them too.

use std::fmt;

/// A node id (`node.id` / `broker.id`). In replica lists and leader fields
/// Kafka uses -1 for "no leader" and, in a `PartitionChangeRecord`, -2 for
/// "leader unchanged".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BrokerId(pub i32);

impl BrokerId {
    /// Kafka's `LeaderConstants.NO_LEADER`.
    pub const NO_LEADER: BrokerId = BrokerId(-1);
    /// Kafka's `LeaderConstants.NO_LEADER_CHANGE` (PartitionChangeRecord only).
    pub const NO_LEADER_CHANGE: BrokerId = BrokerId(-2);
}

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The epoch a broker registration got from the controller (the offset of
/// its RegisterBrokerRecord in Kafka). Fences a restarted broker's old
/// incarnation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BrokerEpoch(pub i64);

impl fmt::Display for BrokerEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Bumped by every change to a partition's registration (replicas, ISR,
/// leader, ELR ...); followers use it to ignore stale AlterPartition answers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PartitionEpoch(pub i32);

impl fmt::Display for PartitionEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Kafka's `LeaderRecoveryState` (KIP-704): whether an unclean leader is
/// still recovering its log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum LeaderRecoveryState {
    #[default]
    Recovered,
    Recovering,
}

impl LeaderRecoveryState {
    /// The byte in records; -1 in a PartitionChangeRecord means "no change".
    pub const NO_CHANGE: i8 = -1;

    pub fn value(self) -> i8 {
        match self {
            LeaderRecoveryState::Recovered => 0,
            LeaderRecoveryState::Recovering => 1,
        }
    }

    pub fn from_value(v: i8) -> Option<Self> {
        match v {
            0 => Some(LeaderRecoveryState::Recovered),
            1 => Some(LeaderRecoveryState::Recovering),
            _ => None,
        }
    }
}

/// Kafka's `ConfigResource.Type` ids as a ConfigRecord stores them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum ConfigResourceType {
    Topic,
    /// Resource name "" is the cluster-wide default, a node id one broker.
    Broker,
    BrokerLogger,
    ClientMetrics,
    /// KIP-848 group config overrides.
    Group,
}

impl ConfigResourceType {
    pub fn id(self) -> i8 {
        match self {
            ConfigResourceType::Topic => 2,
            ConfigResourceType::Broker => 4,
            ConfigResourceType::BrokerLogger => 8,
            ConfigResourceType::ClientMetrics => 16,
            ConfigResourceType::Group => 32,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        match id {
            2 => Some(ConfigResourceType::Topic),
            4 => Some(ConfigResourceType::Broker),
            8 => Some(ConfigResourceType::BrokerLogger),
            16 => Some(ConfigResourceType::ClientMetrics),
            32 => Some(ConfigResourceType::Group),
            _ => None,
        }
    }
}

/// A config resource: its type and name (topic name, node id or "",
/// group id ...).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ConfigResource {
    pub resource_type: ConfigResourceType,
    pub name: String,
}

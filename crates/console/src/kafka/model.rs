//! Plain data the Kafka layer returns and the pages render.

/// One broker of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Partitions a broker leads and holds replicas of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BrokerLoad {
    pub leaders: usize,
    pub replicas: usize,
}

/// The broker page's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerDetail {
    pub broker: Broker,
    pub controller: bool,
    pub load: BrokerLoad,
    pub configs: Vec<ConfigEntry>,
}

/// The cluster overview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOverview {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<Broker>,
    /// By broker id.
    pub load: std::collections::BTreeMap<i32, BrokerLoad>,
    pub topics: usize,
    pub internal_topics: usize,
    pub partitions: usize,
    pub under_replicated: usize,
    pub offline: usize,
}

/// One partition's placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    /// Kafka's error for this partition (e.g. LeaderNotAvailable), if any.
    pub error: Option<String>,
}

impl PartitionInfo {
    pub fn is_offline(&self) -> bool {
        self.leader < 0
    }

    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

/// A topic as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSummary {
    pub name: String,
    pub internal: bool,
    pub partitions: usize,
    pub replication_factor: usize,
    pub under_replicated: usize,
    pub offline: usize,
    /// Sum over partitions of end minus start offset, when known.
    pub messages: Option<i64>,
    /// Kafka's error for the topic (e.g. LeaderNotAvailable while it is
    /// being created), if any.
    pub error: Option<String>,
}

/// Log start and end offsets of one partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffsetRange {
    pub start: i64,
    pub end: i64,
}

impl OffsetRange {
    /// Offsets between start and end (records, unless compacted or
    /// holding transaction markers).
    pub fn messages(&self) -> i64 {
        (self.end - self.start).max(0)
    }
}

/// One config of a resource, with where its value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: &'static str,
    pub read_only: bool,
    pub sensitive: bool,
}

/// The topic page's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDetail {
    pub name: String,
    pub internal: bool,
    pub topic_id: String,
    pub partitions: Vec<(PartitionInfo, Option<OffsetRange>)>,
    /// Bytes on disk per partition (the leader's replica), from
    /// DescribeLogDirs; empty when the cluster does not answer it.
    pub sizes: std::collections::BTreeMap<i32, i64>,
    pub configs: Vec<ConfigEntry>,
    /// Why configs could not be read, if they could not.
    pub configs_error: Option<String>,
}

/// One record as fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    /// The key's first [`crate::kafka::messages::MAX_SHOWN_BYTES`] bytes.
    pub key: Option<Vec<u8>>,
    pub key_size: usize,
    /// The value's first [`crate::kafka::messages::MAX_SHOWN_BYTES`] bytes.
    pub value: Option<Vec<u8>>,
    pub value_size: usize,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A page of the message browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagePage {
    pub topic: String,
    pub partition: i32,
    pub partitions: usize,
    pub range: OffsetRange,
    /// In display order (newest first when asked for).
    pub messages: Vec<Message>,
    pub newest_first: bool,
    /// The offset the next page (older ones when newest first, later ones
    /// otherwise) starts from, if there is one.
    pub next: Option<i64>,
    /// Where this page was read from: the offset before which it ends when
    /// newest first, its first offset otherwise. The same query with this
    /// offset shows the same page (its download link uses it).
    pub anchor: i64,
    /// The filter text, when the page is filtered.
    pub filter: Option<String>,
    /// The offsets a filtered page searched.
    pub scanned: Option<OffsetRange>,
}

/// A group as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    /// `classic` or `consumer` (ListGroups v5+), empty when unknown.
    pub group_type: String,
}

/// One member of a classic group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// topic -> partitions, when the assignment is a consumer's.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// One partition's committed offset and lag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub end: Option<i64>,
    /// End minus committed (never negative), when both are known.
    pub lag: Option<i64>,
}

/// The group page's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDetail {
    pub group_id: String,
    pub coordinator: i32,
    pub state: String,
    /// `classic` or `consumer` (KIP-848).
    pub kind: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
    pub offsets: Vec<PartitionLag>,
    pub total_lag: i64,
}

/// One row of an offset reset plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetRow {
    pub partition: i32,
    pub current: Option<i64>,
    pub new: i64,
    pub range: OffsetRange,
}

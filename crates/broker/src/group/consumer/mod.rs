//! Consumer groups of the next-generation group protocol (KIP-848):
//! the broker assigns partitions and members reconcile incrementally.
//!
//! - [`assignor`]: the `uniform` and `range` server assignors (pure).
//! - [`group`]: the group state machine (pure, clock injected): epochs,
//!   members, target assignment, reconciliation, timeouts.
//! - [`records`]: the group's records in `__consumer_offsets`, in Kafka's
//!   formats.

pub mod assignor;
pub mod group;
pub mod records;

pub use assignor::{Assignment, AssignorKind};
pub use group::{
    validate_heartbeat, ConsumerGroup, ConsumerGroupConfig, ConsumerGroupState, ConsumerMember,
    ConsumerRecord, HeartbeatRequest, HeartbeatResponse, MemberState, TopicView, TopicsView,
};

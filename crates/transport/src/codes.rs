//! The one mapping from [`ControllerError`] to Kafka error codes. The
//! controller RPC server answers with it and the broker's handlers reuse it
//! (a broker that is itself the active controller answers the same codes).

use kafka_protocol::ResponseError;
use sluice_controller::{ControllerError, LogError};
use sluice_protocol::kafka_protocol;

/// A Kafka error code (0 = none).
pub type ErrorCode = i16;

/// The Kafka error of `e`, by its meaning:
/// - metadata-log refusals: NotLeader and Shutdown are NOT_CONTROLLER (the
///   caller rediscovers the active controller), Uncertain is
///   REQUEST_TIMED_OUT (the outcome is unknown; a retry may find it done),
///   TooLarge is POLICY_VIOLATION (Kafka's "excessively large batch
///   operation"), Fatal is UNKNOWN_SERVER_ERROR;
/// - every other variant is the Kafka error of the same name.
pub fn controller_error_code(e: &ControllerError) -> ErrorCode {
    use ControllerError as E;
    let r = match e {
        E::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        E::InvalidTopic(_) => ResponseError::InvalidTopicException,
        E::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        E::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        E::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        E::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
        E::UnknownTopicId(_) => ResponseError::UnknownTopicId,
        E::InvalidConfig(_) => ResponseError::InvalidConfig,
        E::PolicyViolation(_) => ResponseError::PolicyViolation,
        E::InvalidRequest(_) => ResponseError::InvalidRequest,
        E::NotController(_) => ResponseError::NotController,
        E::BrokerIdNotRegistered(_) => ResponseError::BrokerIdNotRegistered,
        E::StaleBrokerEpoch { .. } => ResponseError::StaleBrokerEpoch,
        E::DuplicateBrokerRegistration(_) => ResponseError::DuplicateBrokerRegistration,
        E::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
        E::PreferredLeaderNotAvailable(_) => ResponseError::PreferredLeaderNotAvailable,
        E::EligibleLeadersNotAvailable(_) => ResponseError::EligibleLeadersNotAvailable,
        E::Internal(_) => ResponseError::UnknownServerError,
        E::Log(l) => match l {
            LogError::NotLeader(_) | LogError::Shutdown => ResponseError::NotController,
            LogError::Uncertain => ResponseError::RequestTimedOut,
            LogError::TooLarge { .. } => ResponseError::PolicyViolation,
            LogError::Fatal(_) => ResponseError::UnknownServerError,
        },
    };
    r.code()
}

/// The code and message of an item's result (`(0, None)` for success).
pub fn item_error<T>(r: &Result<T, ControllerError>) -> (ErrorCode, Option<String>) {
    match r {
        Ok(_) => (0, None),
        Err(e) => (controller_error_code(e), Some(e.to_string())),
    }
}

pub(crate) const NOT_CONTROLLER: ErrorCode = 41;
pub(crate) const STALE_BROKER_EPOCH: ErrorCode = 77;
pub(crate) const BROKER_ID_NOT_REGISTERED: ErrorCode = 102;
pub(crate) const INCONSISTENT_CLUSTER_ID: ErrorCode = 104;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_codes_match_kafka() {
        assert_eq!(ResponseError::NotController.code(), NOT_CONTROLLER);
        assert_eq!(ResponseError::StaleBrokerEpoch.code(), STALE_BROKER_EPOCH);
        assert_eq!(
            ResponseError::BrokerIdNotRegistered.code(),
            BROKER_ID_NOT_REGISTERED
        );
        assert_eq!(
            ResponseError::InconsistentClusterId.code(),
            INCONSISTENT_CLUSTER_ID
        );
        let nc = ControllerError::Log(LogError::Shutdown);
        assert_eq!(controller_error_code(&nc), NOT_CONTROLLER);
        let dup = ControllerError::DuplicateBrokerRegistration(sluice_metadata::BrokerId(1));
        assert_eq!(controller_error_code(&dup), 101);
    }
}

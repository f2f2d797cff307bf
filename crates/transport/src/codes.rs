//! The one mapping from [`ControllerError`] to Kafka error codes, and back.
//! The controller RPC server answers with [`controller_error_code`] and the
//! broker's handlers reuse it (a broker that is itself the active
//! controller answers the same codes); the remote controller client reads
//! answers with [`controller_error_from_code`].

use kafka_protocol::ResponseError;
use sluice_controller::{ControllerError, LeaderAndEpoch, LogError};
use sluice_metadata::BrokerId;
use sluice_protocol::kafka_protocol;
use sluice_record::LeaderEpoch;
use uuid::Uuid;

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
        E::InconsistentClusterId(_) => ResponseError::InconsistentClusterId,
        E::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
        E::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
        E::PreferredLeaderNotAvailable(_) => ResponseError::PreferredLeaderNotAvailable,
        E::EligibleLeadersNotAvailable(_) => ResponseError::EligibleLeadersNotAvailable,
        E::FencedLeaderEpoch(_) => ResponseError::FencedLeaderEpoch,
        E::InvalidUpdateVersion(_) => ResponseError::InvalidUpdateVersion,
        E::IneligibleReplica(_) => ResponseError::IneligibleReplica,
        E::NewLeaderElected(_) => ResponseError::NewLeaderElected,
        E::UnacceptableCredential(_) => ResponseError::UnacceptableCredential,
        E::UnsupportedSaslMechanism(_) => ResponseError::UnsupportedSaslMechanism,
        E::ResourceNotFound(_) => ResponseError::ResourceNotFound,
        E::DuplicateResource(_) => ResponseError::DuplicateResource,
        E::ThrottlingQuotaExceeded => ResponseError::ThrottlingQuotaExceeded,
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

/// What an answer's item was about: the data of the variants whose text
/// is built from it rather than carried in the answer's message.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorContext<'a> {
    pub topic: Option<&'a str>,
    pub topic_id: Option<Uuid>,
    pub broker: Option<BrokerId>,
    pub broker_epoch: Option<i64>,
}

/// The [`ControllerError`] of Kafka error `code` (`None` for 0), the reverse
/// of [`controller_error_code`]: the variant of the same name, with the
/// answer's `message` where the variant carries one (or the error's name
/// when the API has no message field) and `ctx` for the rest.
///
/// Inverse where it must be: `controller_error_code` of the result is
/// `code` for every code `controller_error_code` produces, and every
/// variant except `Log` comes back as itself with the same text. The
/// metadata-log refusals come back by their code's meaning: NOT_CONTROLLER
/// as `NotController` (leader unknown), REQUEST_TIMED_OUT as
/// `Log(Uncertain)`, POLICY_VIOLATION as `PolicyViolation` and
/// UNKNOWN_SERVER_ERROR as `Internal` (their text kept). A code no variant
/// has is `Internal`, naming the code.
pub fn controller_error_from_code(
    code: ErrorCode,
    message: Option<&str>,
    ctx: &ErrorContext<'_>,
) -> Option<ControllerError> {
    use ControllerError as E;
    use ResponseError as R;
    let r = ResponseError::try_from_code(code)?;
    let text = || message.map_or_else(|| format!("{r}"), str::to_string);
    let topic = || ctx.topic.map_or_else(text, str::to_string);
    let broker = ctx.broker.unwrap_or(BrokerId(-1));
    Some(match r {
        R::TopicAlreadyExists => E::TopicAlreadyExists(topic()),
        R::InvalidTopicException => E::InvalidTopic(text()),
        R::InvalidPartitions => E::InvalidPartitions(text()),
        R::InvalidReplicationFactor => E::InvalidReplicationFactor(text()),
        R::InvalidReplicaAssignment => E::InvalidReplicaAssignment(text()),
        R::UnknownTopicOrPartition => E::UnknownTopicOrPartition(text()),
        R::UnknownTopicId => E::UnknownTopicId(ctx.topic_id.unwrap_or_else(Uuid::nil)),
        R::InvalidConfig => E::InvalidConfig(text()),
        R::PolicyViolation => E::PolicyViolation(text()),
        R::InvalidRequest => E::InvalidRequest(text()),
        R::NotController => E::NotController(LeaderAndEpoch {
            leader: None,
            epoch: LeaderEpoch(-1),
        }),
        R::BrokerIdNotRegistered => E::BrokerIdNotRegistered(broker),
        R::StaleBrokerEpoch => E::StaleBrokerEpoch {
            broker,
            given: ctx.broker_epoch.unwrap_or(-1),
            current: message.and_then(current_epoch).unwrap_or(-1),
        },
        R::DuplicateBrokerRegistration => E::DuplicateBrokerRegistration(broker),
        R::InconsistentClusterId => E::InconsistentClusterId(text()),
        R::ElectionNotNeeded => E::ElectionNotNeeded,
        R::NoReassignmentInProgress => E::NoReassignmentInProgress,
        R::PreferredLeaderNotAvailable => E::PreferredLeaderNotAvailable(text()),
        R::EligibleLeadersNotAvailable => E::EligibleLeadersNotAvailable(text()),
        R::FencedLeaderEpoch => E::FencedLeaderEpoch(text()),
        R::InvalidUpdateVersion => E::InvalidUpdateVersion(text()),
        R::IneligibleReplica => E::IneligibleReplica(text()),
        R::NewLeaderElected => E::NewLeaderElected(text()),
        R::ThrottlingQuotaExceeded => E::ThrottlingQuotaExceeded,
        R::RequestTimedOut => E::Log(LogError::Uncertain),
        R::UnknownServerError => E::Internal(text()),
        R::UnacceptableCredential => E::UnacceptableCredential(text()),
        R::UnsupportedSaslMechanism => E::UnsupportedSaslMechanism(text()),
        R::ResourceNotFound => E::ResourceNotFound(text()),
        R::DuplicateResource => E::DuplicateResource(text()),
        other => E::Internal(match message {
            Some(m) => format!("{other} ({code}): {m}"),
            None => format!("{other} ({code})"),
        }),
    })
}

/// The current epoch in a STALE_BROKER_EPOCH message of this controller
/// ("... is stale (current N).").
fn current_epoch(message: &str) -> Option<i64> {
    let (_, rest) = message.rsplit_once("(current ")?;
    rest.strip_suffix(").")?.parse().ok()
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
        // AlterPartition's errors, by Kafka's numbers (Errors.java).
        let s = String::new;
        for (e, code) in [
            (ControllerError::FencedLeaderEpoch(s()), 74),
            (ControllerError::InvalidUpdateVersion(s()), 95),
            (ControllerError::IneligibleReplica(s()), 107),
            (ControllerError::NewLeaderElected(s()), 108),
            (ControllerError::InvalidRequest(s()), 42),
            (ControllerError::UnknownTopicId(Uuid::nil()), 100),
            (ControllerError::UnknownTopicOrPartition(s()), 3),
        ] {
            assert_eq!(controller_error_code(&e), code, "{e:?}");
        }
    }

    /// Every variant (and every metadata-log refusal), with the context an
    /// answer about it would have.
    fn every_variant() -> Vec<(ControllerError, ErrorContext<'static>)> {
        use ControllerError as E;
        let id = Uuid::from_u128(42);
        let topic = ErrorContext {
            topic: Some("orders"),
            topic_id: Some(id),
            ..ErrorContext::default()
        };
        let broker = ErrorContext {
            broker: Some(BrokerId(3)),
            broker_epoch: Some(7),
            ..ErrorContext::default()
        };
        let none = ErrorContext::default();
        let leader = LeaderAndEpoch {
            leader: Some(BrokerId(2)),
            epoch: LeaderEpoch(5),
        };
        vec![
            (E::TopicAlreadyExists("orders".into()), topic),
            (E::InvalidTopic("bad name".into()), topic),
            (E::InvalidPartitions("too few".into()), topic),
            (E::InvalidReplicationFactor("rf 9".into()), topic),
            (E::InvalidReplicaAssignment("dup".into()), topic),
            (E::UnknownTopicOrPartition("no such".into()), topic),
            (E::UnknownTopicId(id), topic),
            (E::InvalidConfig("retention.ms".into()), none),
            (E::PolicyViolation("policy".into()), none),
            (E::InvalidRequest("dup resource".into()), none),
            (E::NotController(leader), none),
            (E::BrokerIdNotRegistered(BrokerId(3)), broker),
            (
                E::StaleBrokerEpoch {
                    broker: BrokerId(3),
                    given: 7,
                    current: 9,
                },
                broker,
            ),
            (E::DuplicateBrokerRegistration(BrokerId(3)), broker),
            (E::InconsistentClusterId("other cluster".into()), broker),
            (E::ElectionNotNeeded, topic),
            (E::NoReassignmentInProgress, topic),
            (E::PreferredLeaderNotAvailable("down".into()), topic),
            (E::EligibleLeadersNotAvailable("none".into()), topic),
            (E::FencedLeaderEpoch("epoch 3 < 4".into()), topic),
            (E::InvalidUpdateVersion("epoch 3 < 4".into()), topic),
            (E::IneligibleReplica("2 (fenced)".into()), topic),
            (E::NewLeaderElected("leader 2".into()), topic),
            (E::Internal("exhausted".into()), none),
            (E::ThrottlingQuotaExceeded, topic),
            (E::UnacceptableCredential("Too few iterations".into()), none),
            (
                E::UnsupportedSaslMechanism("Unknown SCRAM mechanism".into()),
                none,
            ),
            (E::ResourceNotFound("no such credential".into()), none),
            (E::DuplicateResource("twice".into()), none),
            (E::Log(LogError::NotLeader(leader)), none),
            (E::Log(LogError::Uncertain), none),
            (
                E::Log(LogError::TooLarge {
                    records: 9,
                    bytes: 10,
                }),
                none,
            ),
            (E::Log(LogError::Shutdown), none),
            (E::Log(LogError::Fatal("disk".into())), none),
        ]
    }

    #[test]
    fn codes_round_trip_to_the_same_error() {
        for (e, ctx) in every_variant() {
            let code = controller_error_code(&e);
            assert_ne!(code, 0, "{e:?}");
            let text = e.to_string();
            let back = controller_error_from_code(code, Some(&text), &ctx).unwrap();
            assert_eq!(controller_error_code(&back), code, "{e:?} -> {back:?}");
            match (&e, &back) {
                // The leader is not on the wire; the channel retries it.
                (ControllerError::NotController(_), ControllerError::NotController(l)) => {
                    assert_eq!(l.leader, None)
                }
                (ControllerError::Log(LogError::NotLeader(_) | LogError::Shutdown), b) => {
                    assert!(matches!(b, ControllerError::NotController(_)), "{b:?}")
                }
                (ControllerError::Log(LogError::Uncertain), b) => {
                    assert!(
                        matches!(b, ControllerError::Log(LogError::Uncertain)),
                        "{b:?}"
                    )
                }
                (ControllerError::Log(_), b) => assert_eq!(b.to_string(), text, "{e:?}"),
                (e, b) => {
                    assert_eq!(
                        std::mem::discriminant(e),
                        std::mem::discriminant(b),
                        "{e:?} came back as {b:?}"
                    );
                    assert_eq!(b.to_string(), text, "{e:?}");
                }
            }
        }
    }

    #[test]
    fn errors_without_a_message_take_their_text_from_the_context() {
        for (e, ctx) in every_variant() {
            let code = controller_error_code(&e);
            let back = controller_error_from_code(code, None, &ctx).unwrap();
            assert_eq!(controller_error_code(&back), code);
            if matches!(
                e,
                ControllerError::TopicAlreadyExists(_)
                    | ControllerError::UnknownTopicId(_)
                    | ControllerError::BrokerIdNotRegistered(_)
                    | ControllerError::DuplicateBrokerRegistration(_)
                    | ControllerError::ElectionNotNeeded
                    | ControllerError::NoReassignmentInProgress
            ) {
                assert_eq!(back.to_string(), e.to_string());
            }
        }
        assert!(controller_error_from_code(0, Some("x"), &ErrorContext::default()).is_none());
        let other = controller_error_from_code(35, Some("v9"), &ErrorContext::default());
        match other {
            Some(ControllerError::Internal(m)) => {
                assert!(m.contains("UnsupportedVersion") && m.contains("v9"), "{m}")
            }
            o => panic!("{o:?}"),
        }
    }
}

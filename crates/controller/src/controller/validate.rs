//! Checks shared by the topic operations, with Kafka's rules and messages:
//! topic names (`org.apache.kafka.common.internals.Topic`), explicit
//! replica assignments, and leader choice for new partitions.

use std::collections::BTreeSet;

use sluice_metadata::{BrokerId, MetadataImage};

use crate::error::ControllerError;

/// Kafka's `Topic.MAX_NAME_LENGTH`.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Kafka's `Topic.validate`.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let invalid = |why: String| Err(ControllerError::InvalidTopic(why));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Whether two names are equal once '.' and '_' are identified (Kafka's
/// `Topic.hasCollision`: such topics would collide in metric names).
pub fn collides(a: &str, b: &str) -> bool {
    let unify = |c: u8| if c == b'.' { b'_' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| unify(x) == unify(y))
}

/// The existing topic (or one of `also`) that `name` collides with, if
/// any (not `name` itself).
pub fn colliding_topic<'a>(
    image: &'a MetadataImage,
    also: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Option<String> {
    if !name.contains(['.', '_']) {
        return None;
    }
    image
        .topic_names()
        .keys()
        .map(String::as_str)
        .chain(also)
        .find(|other| *other != name && collides(other, name))
        .map(str::to_owned)
}

/// Checks one explicit replica list against the image: not empty, no
/// broker twice, every broker registered. `what` names the partition in
/// messages.
pub fn check_replicas(
    image: &MetadataImage,
    replicas: &[BrokerId],
    what: &str,
) -> Result<(), ControllerError> {
    let bad = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    if replicas.is_empty() {
        return bad(format!(
            "The manual partition assignment includes an empty replica list for {what}."
        ));
    }
    let mut seen = BTreeSet::new();
    for &b in replicas {
        if !seen.insert(b) {
            return bad(format!(
                "The manual partition assignment includes the broker {b} more than once for {what}."
            ));
        }
        if image.broker(b).is_none() {
            return bad(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            ));
        }
    }
    Ok(())
}

/// The leader of a new partition: its first usable replica (Kafka puts
/// the usable replicas in the ISR and elects the first).
pub fn first_usable(
    image: &MetadataImage,
    replicas: &[BrokerId],
    what: &str,
) -> Result<BrokerId, ControllerError> {
    replicas
        .iter()
        .copied()
        .find(|&b| image.broker(b).is_some_and(|r| r.is_usable()))
        .ok_or_else(|| {
            ControllerError::InvalidReplicaAssignment(format!(
                "All brokers specified in the partition assignment for {what} are fenced or in controlled shutdown."
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafkas_rules() {
        for ok in ["a", "orders", "a.b_c-D9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "ü", "a/b", &"x".repeat(250)] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(ControllerError::InvalidTopic(_))
                ),
                "{bad}"
            );
        }
        assert!(collides("a.b", "a_b") && collides("a_b", "a_b"));
        assert!(!collides("a.b", "a-b") && !collides("a.b", "a.bc"));
    }
}

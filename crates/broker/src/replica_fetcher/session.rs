//! The client side of an incremental fetch session (KIP-227), as Kafka's
//! `FetchSessionHandler`: the first request is a full fetch (session id 0,
//! epoch 0); once the leader answers with a session id, each next request
//! (epoch 1, 2, ...) names only the partitions whose fetch position changed
//! and the partitions to forget. Any error starts over with a full fetch:
//! FETCH_SESSION_ID_NOT_FOUND without a session, anything else closing the
//! old session (its id with epoch 0).

use std::collections::BTreeMap;

use sluice_record::{LeaderEpoch, Offset};
use uuid::Uuid;

/// No session (a full fetch that asks for none, or a sessionless answer).
pub const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a full fetch (creates a session).
pub const INITIAL_EPOCH: i32 = 0;

/// Kafka's error codes for a session the leader does not know or whose epoch is off.
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

/// A partition of a session: topic id and partition index.
pub type SessionKey = (Uuid, i32);

/// What the fetch asks of one partition; a change of any field is sent in
/// the next incremental request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionRequest {
    pub fetch_offset: Offset,
    pub log_start_offset: Offset,
    pub max_bytes: i32,
    pub current_leader_epoch: LeaderEpoch,
    /// `None` is sent as -1.
    pub last_fetched_epoch: Option<LeaderEpoch>,
}

/// One request of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequestData {
    pub session_id: i32,
    pub epoch: i32,
    /// Partitions whose data goes in the request (all of them when full).
    pub to_send: BTreeMap<SessionKey, PartitionRequest>,
    /// Partitions the leader's session drops (incremental only).
    pub to_forget: Vec<SessionKey>,
}

impl FetchRequestData {
    pub fn is_full(&self) -> bool {
        self.epoch == INITIAL_EPOCH
    }
}

/// Why an answer cannot be used; the session starts over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionProblem {
    /// The leader refused the request (a top-level error code).
    Error(i16),
    /// The answer names a partition the session does not fetch.
    UnexpectedPartition(SessionKey),
}

/// The follower's half of one fetch session with one leader.
#[derive(Debug, Default)]
pub struct FetchSession {
    session_id: i32,
    epoch: i32,
    /// What the leader's session holds after the last request, as sent.
    partitions: BTreeMap<SessionKey, PartitionRequest>,
}

impl FetchSession {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn session_id(&self) -> i32 {
        self.session_id
    }

    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// The request that makes the leader's session fetch exactly `next`.
    pub fn build(&mut self, next: BTreeMap<SessionKey, PartitionRequest>) -> FetchRequestData {
        let data = if self.epoch == INITIAL_EPOCH {
            FetchRequestData {
                session_id: self.session_id,
                epoch: INITIAL_EPOCH,
                to_send: next.clone(),
                to_forget: Vec::new(),
            }
        } else {
            let to_send = next
                .iter()
                .filter(|(k, p)| self.partitions.get(k) != Some(p))
                .map(|(k, p)| (*k, *p))
                .collect();
            let to_forget = self
                .partitions
                .keys()
                .filter(|k| !next.contains_key(k))
                .copied()
                .collect();
            FetchRequestData {
                session_id: self.session_id,
                epoch: self.epoch,
                to_send,
                to_forget,
            }
        };
        self.partitions = next;
        data
    }

    /// Takes the answer to `sent`: its top-level error code, session id and
    /// the partitions it names. On a problem the next request is full.
    pub fn handle_response(
        &mut self,
        sent: &FetchRequestData,
        error_code: i16,
        session_id: i32,
        partitions: impl IntoIterator<Item = SessionKey>,
    ) -> Result<(), SessionProblem> {
        if error_code != 0 {
            if error_code == FETCH_SESSION_ID_NOT_FOUND {
                self.start_over(false);
            } else {
                self.start_over(true);
            }
            return Err(SessionProblem::Error(error_code));
        }
        for key in partitions {
            // A full answer may only name partitions of the request, an
            // incremental one only partitions of the session.
            if !self.partitions.contains_key(&key) {
                self.start_over(!sent.is_full());
                return Err(SessionProblem::UnexpectedPartition(key));
            }
        }
        if session_id == INVALID_SESSION_ID {
            // Sessionless (the leader keeps no session, or closed ours):
            // every request is full.
            self.session_id = INVALID_SESSION_ID;
            self.epoch = INITIAL_EPOCH;
        } else if sent.is_full() {
            self.session_id = session_id;
            self.epoch = 1;
        } else {
            // Epochs wrap from i32::MAX to 1 (0 means a full fetch).
            self.epoch = if self.epoch == i32::MAX {
                1
            } else {
                self.epoch + 1
            };
        }
        Ok(())
    }

    /// The connection failed or the answer never came: close the session
    /// and start a new one with a full fetch.
    pub fn handle_error(&mut self) {
        self.start_over(true);
    }

    fn start_over(&mut self, close_existing: bool) {
        if !close_existing {
            self.session_id = INVALID_SESSION_ID;
        }
        self.epoch = INITIAL_EPOCH;
        self.partitions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(offset: i64) -> PartitionRequest {
        PartitionRequest {
            fetch_offset: Offset(offset),
            log_start_offset: Offset(0),
            max_bytes: 1 << 20,
            current_leader_epoch: LeaderEpoch(1),
            last_fetched_epoch: None,
        }
    }

    fn key(p: i32) -> SessionKey {
        (Uuid::from_u128(7), p)
    }

    fn parts(list: &[(i32, i64)]) -> BTreeMap<SessionKey, PartitionRequest> {
        list.iter().map(|&(p, o)| (key(p), req(o))).collect()
    }

    #[test]
    fn full_then_only_changed_partitions_then_forgotten() {
        let mut s = FetchSession::new();
        let full = s.build(parts(&[(0, 0), (1, 0), (2, 0)]));
        assert!(full.is_full());
        assert_eq!((full.session_id, full.to_send.len()), (0, 3));
        s.handle_response(&full, 0, 42, [key(0)]).unwrap();
        assert_eq!((s.session_id(), s.epoch()), (42, 1));

        // Partition 0 moved; partition 2 is no longer fetched.
        let inc = s.build(parts(&[(0, 10), (1, 0)]));
        assert!(!inc.is_full());
        assert_eq!((inc.session_id, inc.epoch), (42, 1));
        assert_eq!(inc.to_send.keys().copied().collect::<Vec<_>>(), [key(0)]);
        assert_eq!(inc.to_forget, [key(2)]);
        s.handle_response(&inc, 0, 42, []).unwrap();
        assert_eq!(s.epoch(), 2);

        // Nothing changed: an empty incremental request at the next epoch.
        let idle = s.build(parts(&[(0, 10), (1, 0)]));
        assert!(idle.to_send.is_empty() && idle.to_forget.is_empty());
        assert_eq!(idle.epoch, 2);
    }

    #[test]
    fn errors_start_over_with_a_full_fetch() {
        let mut s = FetchSession::new();
        let full = s.build(parts(&[(0, 0)]));
        s.handle_response(&full, 0, 42, []).unwrap();
        let inc = s.build(parts(&[(0, 5)]));
        // A stale epoch: the old session is closed by the next full fetch.
        assert_eq!(
            s.handle_response(&inc, INVALID_FETCH_SESSION_EPOCH, 0, []),
            Err(SessionProblem::Error(INVALID_FETCH_SESSION_EPOCH))
        );
        let again = s.build(parts(&[(0, 5)]));
        assert!(again.is_full());
        assert_eq!((again.session_id, again.to_send.len()), (42, 1));
        s.handle_response(&again, 0, 43, []).unwrap();
        // An unknown session: a full fetch asking for a new one.
        let inc = s.build(parts(&[(0, 6)]));
        assert!(s
            .handle_response(&inc, FETCH_SESSION_ID_NOT_FOUND, 0, [])
            .is_err());
        let again = s.build(parts(&[(0, 6)]));
        assert!(again.is_full());
        assert_eq!(again.session_id, INVALID_SESSION_ID);
        // A broken connection closes the session.
        s.handle_response(&again, 0, 44, []).unwrap();
        s.build(parts(&[(0, 6)]));
        s.handle_error();
        let again = s.build(parts(&[(0, 6)]));
        assert!(again.is_full() && again.session_id == 44);
    }

    #[test]
    fn an_answer_naming_other_partitions_is_refused() {
        let mut s = FetchSession::new();
        let full = s.build(parts(&[(0, 0)]));
        assert_eq!(
            s.handle_response(&full, 0, 42, [key(9)]),
            Err(SessionProblem::UnexpectedPartition(key(9)))
        );
        assert!(s.build(parts(&[(0, 0)])).is_full());
    }

    #[test]
    fn epochs_wrap_to_one() {
        let mut s = FetchSession::new();
        let full = s.build(parts(&[(0, 0)]));
        s.handle_response(&full, 0, 42, []).unwrap();
        s.epoch = i32::MAX;
        let inc = s.build(parts(&[(0, 0)]));
        s.handle_response(&inc, 0, 42, []).unwrap();
        assert_eq!(s.epoch(), 1);
    }
}

//! The JoinGroup and SyncGroup requests waiting for their group's
//! rebalance, keyed by group and member, and how they are answered.
//!
//! The group engine answers a waiting request through a
//! [`super::super::classic::Completion`]; nothing else does, except
//! [`Waiters::fail`]. So a request whose group leaves this coordinator's
//! memory would wait for good: no timer runs for a group that is no longer
//! in its partition's map (a reload from the log replaced it) or whose
//! partition another broker leads. Invariant: a waiter is registered while
//! its group's lock is held, and a group leaves memory only after it is
//! marked Dead under that lock and its waiters are failed, as Kafka's
//! `GroupMetadataManager.onGroupUnloaded` answers them NOT_COORDINATOR. A
//! request that locks the group afterwards sees it Dead and looks the
//! coordinator up again.
//!
//! Bounded: one waiter per (group, member); a newer request of a member
//! replaces its older one, whose client gets REBALANCE_IN_PROGRESS.

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::group::classic::{JoinResult, SyncResult};
use crate::group::GroupError;

type Key = (String, String);

#[derive(Default)]
pub(super) struct Waiters {
    joins: Mutex<HashMap<Key, oneshot::Sender<JoinResult>>>,
    syncs: Mutex<HashMap<Key, oneshot::Sender<SyncResult>>>,
}

impl Waiters {
    /// Registers `member`'s JoinGroup; call with the group's lock held.
    pub(super) fn join(&self, group_id: &str, member_id: String) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        self.joins
            .lock()
            .insert((group_id.to_owned(), member_id), tx);
        rx
    }

    /// Registers `member`'s SyncGroup; call with the group's lock held.
    pub(super) fn sync(&self, group_id: &str, member_id: String) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        self.syncs
            .lock()
            .insert((group_id.to_owned(), member_id), tx);
        rx
    }

    pub(super) fn answer_join(&self, group_id: &str, member_id: String, result: JoinResult) {
        if let Some(tx) = self.joins.lock().remove(&(group_id.to_owned(), member_id)) {
            let _ = tx.send(result);
        }
    }

    pub(super) fn answer_sync(&self, group_id: &str, member_id: String, result: SyncResult) {
        if let Some(tx) = self.syncs.lock().remove(&(group_id.to_owned(), member_id)) {
            let _ = tx.send(result);
        }
    }

    /// Answers every waiter of a group for which `which` holds with
    /// `error`; returns how many were answered.
    pub(super) fn fail(&self, which: impl Fn(&str) -> bool, error: GroupError) -> usize {
        let joins = take_matching(&self.joins, &which);
        let syncs = take_matching(&self.syncs, &which);
        let n = joins.len() + syncs.len();
        for ((_, member_id), tx) in joins {
            let _ = tx.send(JoinResult::error(&member_id, error));
        }
        for (_, tx) in syncs {
            let _ = tx.send(SyncResult::error(error));
        }
        n
    }

    /// Whether any request waits (cheap: the resignation sweep runs on
    /// every tick).
    pub(super) fn is_empty(&self) -> bool {
        self.joins.lock().is_empty() && self.syncs.lock().is_empty()
    }
}

fn take_matching<T>(
    map: &Mutex<HashMap<Key, oneshot::Sender<T>>>,
    which: &impl Fn(&str) -> bool,
) -> Vec<(Key, oneshot::Sender<T>)> {
    let mut map = map.lock();
    let keys: Vec<Key> = map.keys().filter(|(g, _)| which(g)).cloned().collect();
    keys.into_iter()
        .filter_map(|k| map.remove_entry(&k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_answers_only_the_chosen_groups() {
        let w = Waiters::default();
        let mut a = w.join("a", "m1".into());
        let mut b = w.join("b", "m2".into());
        let mut s = w.sync("a", "m3".into());
        assert_eq!(w.fail(|g| g == "a", GroupError::NotCoordinator), 2);
        let r = a.try_recv().expect("answered");
        assert_eq!(r.error, Some(GroupError::NotCoordinator));
        assert_eq!(r.member_id, "m1");
        assert_eq!(
            s.try_recv().expect("answered").error,
            Some(GroupError::NotCoordinator)
        );
        assert!(b.try_recv().is_err(), "group b still waits");
        assert!(!w.is_empty());
    }
}

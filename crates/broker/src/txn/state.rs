//! A transactional id's state, as Kafka's transaction coordinator keeps it
//! (`TransactionState`): the ids stored in `__transaction_state`, the names
//! DescribeTransactions and ListTransactions answer with, and which state
//! may follow which.

/// The state of one transactional id's current transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TransactionState {
    /// No transaction yet, or the last one ended and was forgotten.
    Empty,
    /// Partitions (or offsets) were added; records may be written.
    Ongoing,
    /// EndTxn(commit) was taken; markers are being written.
    PrepareCommit,
    /// EndTxn(abort) was taken (or the transaction timed out); markers are
    /// being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// Expired; about to be removed.
    Dead,
    /// A newer producer (InitProducerId) fences the epoch of an ongoing
    /// transaction, which is then aborted.
    PrepareEpochFence,
}

impl TransactionState {
    pub const ALL: [TransactionState; 8] = [
        Self::Empty,
        Self::Ongoing,
        Self::PrepareCommit,
        Self::PrepareAbort,
        Self::CompleteCommit,
        Self::CompleteAbort,
        Self::Dead,
        Self::PrepareEpochFence,
    ];

    /// The id stored in `TransactionLogValue.TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            Self::Empty => 0,
            Self::Ongoing => 1,
            Self::PrepareCommit => 2,
            Self::PrepareAbort => 3,
            Self::CompleteCommit => 4,
            Self::CompleteAbort => 5,
            Self::Dead => 6,
            Self::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The name the admin APIs use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
            Self::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the transactional id may expire in this state
    /// (`transactional.id.expiration.ms`): no transaction is in flight.
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            Self::Empty | Self::CompleteCommit | Self::CompleteAbort
        )
    }

    /// Whether `self` may follow `previous` (Kafka's
    /// `validPreviousStates`). With transaction version 2 (KIP-890) an
    /// abort may also follow a finished or empty transaction: a client
    /// unsure of the coordinator's state sends EndTxn(abort) anyway.
    pub fn may_follow(self, previous: TransactionState) -> bool {
        use TransactionState::*;
        let finished = matches!(previous, Empty | CompleteCommit | CompleteAbort);
        match self {
            Empty => finished,
            Ongoing => finished || previous == Ongoing,
            PrepareCommit => previous == Ongoing,
            PrepareAbort => finished || matches!(previous, Ongoing | PrepareEpochFence),
            CompleteCommit => previous == PrepareCommit,
            CompleteAbort => previous == PrepareAbort,
            Dead => finished,
            PrepareEpochFence => previous == Ongoing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TransactionState::{self, *};

    #[test]
    fn ids_and_names_round_trip() {
        for s in TransactionState::ALL {
            assert_eq!(TransactionState::from_id(s.id()), Some(s));
            assert_eq!(TransactionState::from_name(s.name()), Some(s));
        }
        assert_eq!(TransactionState::from_id(8), None);
        assert_eq!(TransactionState::from_id(-1), None);
    }

    /// Kafka 4.1's table of valid previous states, row by row.
    #[test]
    fn transitions_follow_kafkas_table() {
        let table: [(TransactionState, &[TransactionState]); 8] = [
            (Empty, &[Empty, CompleteCommit, CompleteAbort]),
            (Ongoing, &[Ongoing, Empty, CompleteCommit, CompleteAbort]),
            (PrepareCommit, &[Ongoing]),
            (
                PrepareAbort,
                &[
                    Ongoing,
                    PrepareEpochFence,
                    Empty,
                    CompleteCommit,
                    CompleteAbort,
                ],
            ),
            (CompleteCommit, &[PrepareCommit]),
            (CompleteAbort, &[PrepareAbort]),
            (Dead, &[Empty, CompleteAbort, CompleteCommit]),
            (PrepareEpochFence, &[Ongoing]),
        ];
        for (next, allowed) in table {
            for prev in TransactionState::ALL {
                assert_eq!(
                    next.may_follow(prev),
                    allowed.contains(&prev),
                    "{prev:?} -> {next:?}"
                );
            }
        }
    }
}

//! The coordinator's request rules, on `TransactionMetadata` directly.

use super::*;
use crate::txn::metadata::TxnPartitions;

fn fresh() -> TransactionMetadata {
    TransactionMetadata::new("t", ProducerId(7), 60_000, 0)
}

fn run(m: &mut TransactionMetadata, t: Result<Transition, Refusal>) {
    let t = t.expect("prepared");
    m.complete(&t).expect("completed");
}

fn init(m: &mut TransactionMetadata, expected: Option<(ProducerId, ProducerEpoch)>) -> InitStep {
    init_step(m, 60_000, expected, 1).unwrap_or_else(|r| panic!("refused: {r:?}"))
}

fn ongoing() -> TransactionMetadata {
    let mut m = fresh();
    let InitStep::Write(t) = init(&mut m, None) else {
        panic!("a first init writes")
    };
    m.complete(&t).unwrap();
    let added = TxnPartitions::from([("a".to_string(), [0].into())]);
    let t = m.prepare_add_partitions(&added, 2, TransactionVersion(0));
    run(&mut m, t);
    m
}

#[test]
fn init_bumps_the_epoch_and_fences_an_ongoing_transaction_first() {
    let mut m = fresh();
    assert!(
        matches!(init(&mut m, None), InitStep::Write(t) if t.value.producer_epoch == ProducerEpoch(0))
    );
    let mut m = ongoing();
    assert_eq!(m.producer_epoch, ProducerEpoch(0));
    let InitStep::Fence(fence) = init(&mut m, None) else {
        panic!("an ongoing transaction is fenced")
    };
    assert_eq!(fence.value.producer_epoch, ProducerEpoch(1));
    let abort = m
        .prepare_fenced_abort(&fence, 3, TransactionVersion(0))
        .expect("the abort");
    assert_eq!(abort.value.state, TransactionState::PrepareAbort);
    assert_eq!(abort.value.producer_epoch, ProducerEpoch(1));
    m.complete(&abort).unwrap();
    // While its markers are written the id refuses a new producer.
    assert!(matches!(
        init_step(&mut m, 60_000, None, 4),
        Err(Refusal::Pending(TransactionState::PrepareAbort))
    ));
}

#[test]
fn a_zombie_with_another_producer_id_is_fenced() {
    let mut m = ongoing();
    assert_eq!(
        init_step(&mut m, 60_000, Some((ProducerId(99), ProducerEpoch(0))), 1).err(),
        Some(Refusal::ProducerFenced)
    );
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut m = fresh();
    m.producer_epoch = ProducerEpoch(i16::MAX - 1);
    assert!(matches!(init(&mut m, None), InitStep::Rotate));
}

mod on_a_node {
    use std::sync::Arc;
    use std::time::Duration;

    use sluice_storage::SimFs;

    use crate::config::BrokerConfig;
    use crate::metadata::testing::{open_node, Node};
    use crate::txn::admin;
    use crate::txn::metadata::TxnPartitions;
    use crate::txn::{TransactionState, TransactionVersion, TxnError};
    use sluice_record::{ProducerEpoch, ProducerId};

    const V1: TransactionVersion = TransactionVersion(0);
    const V2: TransactionVersion = TransactionVersion(2);

    fn node(fs: &Arc<SimFs>) -> Node {
        open_node(
            BrokerConfig::with_overrides(&[("log.dirs", "/sim/data")]).unwrap(),
            fs,
        )
        .unwrap()
    }

    /// Retries `f` while the coordinator loads (or markers are written).
    async fn eventually<T>(mut f: impl AsyncFnMut() -> Result<T, TxnError>) -> Result<T, TxnError> {
        for _ in 0..600 {
            match f().await {
                Err(
                    TxnError::CoordinatorLoadInProgress
                    | TxnError::NotCoordinator
                    | TxnError::ConcurrentTransactions,
                ) => tokio::time::sleep(Duration::from_millis(20)).await,
                other => return other,
            }
        }
        f().await
    }

    fn describe(n: &Node, id: &str) -> crate::txn::TransactionMetadata {
        admin::describe(n.txns.state(), id).expect("described")
    }

    #[test]
    fn a_transaction_is_in_the_log_and_a_new_producer_aborts_it_before_its_epoch() {
        let fs = Arc::new(SimFs::new());
        let n = node(&fs);
        n.block_on(async {
            assert_eq!(n.txns.ensure_state_topic(false).await, Ok(true));
            n.controller
                .create_topic("t", 1, 1, Default::default())
                .await
                .unwrap();
            let (pid, epoch) =
                eventually(async || n.txns.init_producer_id("tx", 60_000, None).await)
                    .await
                    .unwrap();
            assert_eq!(epoch, ProducerEpoch(0));
            let added = TxnPartitions::from([("t".to_string(), [0].into())]);
            n.txns
                .add_partitions("tx", pid, epoch, &added, TransactionVersion(0))
                .await
                .unwrap();
            // A new coordinator epoch reloads the id from the log alone.
            let index = n.txns.state().partition_for("tx").unwrap();
            n.txns.state().begin_load(&n.replicas, index);
            let m = eventually(async || admin::describe(n.txns.state(), "tx"))
                .await
                .unwrap();
            assert_eq!(
                (m.state, m.partitions.clone()),
                (TransactionState::Ongoing, added)
            );
            // A zombie's end is refused; a new instance fences and aborts.
            assert_eq!(
                n.txns
                    .end_txn("tx", ProducerId(pid.0 + 1), epoch, true, V1)
                    .await,
                Err(TxnError::InvalidProducerIdMapping)
            );
            assert_eq!(
                n.txns.init_producer_id("tx", 60_000, None).await,
                Err(TxnError::ConcurrentTransactions)
            );
            // The cluster is at transaction version 2, so the fence's
            // abort was a version 2 abort (Kafka's coordinator takes the
            // cluster's level): the old epoch is the one before its bump,
            // and its commit is refused as Kafka 4.1 refuses it.
            assert_eq!(
                n.txns.end_txn("tx", pid, epoch, true, V1).await,
                Err(TxnError::InvalidTxnState),
                "the old epoch's commit"
            );
            // Once the abort's markers are written the new instance gets
            // the epoch after the fenced one.
            let (pid2, epoch2) =
                eventually(async || n.txns.init_producer_id("tx", 60_000, None).await)
                    .await
                    .unwrap();
            assert_eq!((pid2, epoch2), (pid, ProducerEpoch(2)));
            assert_eq!(describe(&n, "tx").state, TransactionState::Empty);
            let log = n
                .replicas
                .get_partition(&sluice_storage::TopicPartition::new("t", 0))
                .unwrap();
            assert_eq!(
                log.log().log_end_offset(),
                sluice_record::Offset(1),
                "the abort marker"
            );
        });
    }

    /// A version 2 transaction whose producer died (Kafka Streams with
    /// exactly_once_v2 after a kill -9): the timeout aborts it, its
    /// markers are written, and the id takes a new producer. Before the
    /// fix the abort's completion was refused after its write ("the
    /// prepared change no longer fits") and the id stayed pending: never
    /// aborted, the partitions' last stable offset stuck for good.
    #[test]
    fn a_timed_out_version_2_transaction_is_aborted() {
        let fs = Arc::new(SimFs::new());
        let clock = Arc::new(sluice_storage::ManualClock::new(1_700_000_000_000));
        let n = crate::metadata::testing::open_node_with_clock(
            BrokerConfig::with_overrides(&[("log.dirs", "/sim/data")]).unwrap(),
            &fs,
            clock.clone(),
        )
        .unwrap();
        n.block_on(async {
            assert_eq!(n.txns.ensure_state_topic(false).await, Ok(true));
            n.controller
                .create_topic("t", 1, 1, Default::default())
                .await
                .unwrap();
            let (pid, epoch) =
                eventually(async || n.txns.init_producer_id("tx", 1_000, None).await)
                    .await
                    .unwrap();
            let added = TxnPartitions::from([("t".to_string(), [0].into())]);
            n.txns
                .add_partitions("tx", pid, epoch, &added, V2)
                .await
                .unwrap();
            n.txns.abort_timed_out().await;
            assert_eq!(
                describe(&n, "tx").state,
                TransactionState::Ongoing,
                "not yet"
            );
            // The controller's broker sessions run on this clock too: a
            // jump short of broker.session.timeout.ms keeps the broker
            // (and so the coordinator's partitions) where they are.
            clock.advance(1_001);
            n.txns.abort_timed_out().await;
            let m = describe(&n, "tx");
            assert!(
                matches!(
                    m.state,
                    TransactionState::PrepareAbort | TransactionState::CompleteAbort
                ),
                "{m:?}"
            );
            assert_eq!(m.producer_epoch, ProducerEpoch(epoch.0 + 1), "one bump");
            assert_eq!(m.pending(), None);
            // The fenced producer's late commit is refused; a new instance
            // gets the next epoch once the abort marker is written.
            assert_eq!(
                eventually(async || n.txns.end_txn("tx", pid, epoch, true, V2).await).await,
                Err(TxnError::InvalidTxnState)
            );
            let (pid2, epoch2) =
                eventually(async || n.txns.init_producer_id("tx", 1_000, None).await)
                    .await
                    .unwrap();
            assert_eq!((pid2, epoch2), (pid, ProducerEpoch(epoch.0 + 2)));
            let log = n
                .replicas
                .get_partition(&sluice_storage::TopicPartition::new("t", 0))
                .unwrap();
            assert_eq!(
                log.log().log_end_offset(),
                sluice_record::Offset(1),
                "the abort marker"
            );
        });
    }

    /// A new instance of a version 2 producer fences and aborts the
    /// ongoing transaction of the one before (a Java producer restarted
    /// after a crash with the same transactional.id).
    #[test]
    fn a_new_producer_aborts_an_ongoing_version_2_transaction() {
        let fs = Arc::new(SimFs::new());
        let n = node(&fs);
        n.block_on(async {
            assert_eq!(n.txns.ensure_state_topic(false).await, Ok(true));
            n.controller
                .create_topic("t", 1, 1, Default::default())
                .await
                .unwrap();
            let (pid, epoch) =
                eventually(async || n.txns.init_producer_id("tx", 60_000, None).await)
                    .await
                    .unwrap();
            let added = TxnPartitions::from([("t".to_string(), [0].into())]);
            n.txns
                .add_partitions("tx", pid, epoch, &added, V2)
                .await
                .unwrap();
            assert_eq!(
                n.txns.init_producer_id("tx", 60_000, None).await,
                Err(TxnError::ConcurrentTransactions)
            );
            let (pid2, epoch2) =
                eventually(async || n.txns.init_producer_id("tx", 60_000, None).await)
                    .await
                    .unwrap();
            assert_eq!((pid2, epoch2), (pid, ProducerEpoch(epoch.0 + 2)));
            assert_eq!(describe(&n, "tx").state, TransactionState::Empty);
        });
    }

    /// A change whose completion is refused after its write (the bug of
    /// `4384bd4` made one) must not leave the id pending for good: the
    /// client's retry goes through.
    #[test]
    fn a_written_change_that_no_longer_fits_releases_the_id() {
        let fs = Arc::new(SimFs::new());
        let n = node(&fs);
        n.block_on(async {
            assert_eq!(n.txns.ensure_state_topic(false).await, Ok(true));
            n.controller
                .create_topic("t", 1, 1, Default::default())
                .await
                .unwrap();
            let (pid, epoch) =
                eventually(async || n.txns.init_producer_id("tx", 60_000, None).await)
                    .await
                    .unwrap();
            let added = TxnPartitions::from([("t".to_string(), [0].into())]);
            let (p, txn) = n.txns.existing("tx").unwrap();
            let mut t = txn
                .lock()
                .prepare_add_partitions(&added, n.txns.state.now(), V1)
                .unwrap();
            // Written as prepared, then no longer the change the id expects.
            t.value.timeout_ms += 1;
            assert_eq!(
                n.txns.write(&p, "tx", &txn, &t).await,
                Err(TxnError::CoordinatorNotAvailable)
            );
            assert_eq!(describe(&n, "tx").pending(), None, "released");
            n.txns
                .add_partitions("tx", pid, epoch, &added, V1)
                .await
                .expect("the client's retry");
            assert_eq!(describe(&n, "tx").state, TransactionState::Ongoing);
        });
    }

    /// The coordinator reads the cluster's `transaction.version` from its
    /// image for a fenced abort: after UpdateFeatures takes the cluster
    /// back to 0, a version 2 client's transaction is aborted as version 1
    /// aborts (the id's version becomes 1).
    #[test]
    fn a_fenced_abort_takes_the_clusters_transaction_version_from_the_image() {
        use sluice_controller::{FeatureUpdate, UpgradeType};
        let fs = Arc::new(SimFs::new());
        let n = node(&fs);
        n.block_on(async {
            assert_eq!(n.txns.ensure_state_topic(false).await, Ok(true));
            n.controller
                .create_topic("t", 1, 1, Default::default())
                .await
                .unwrap();
            let down = FeatureUpdate {
                feature: sluice_metadata::features::TRANSACTION_VERSION.into(),
                max_version_level: 0,
                upgrade_type: UpgradeType::SafeDowngrade,
            };
            n.controller
                .update_features(vec![down], false)
                .await
                .unwrap();
            let (pid, epoch) =
                eventually(async || n.txns.init_producer_id("tx", 60_000, None).await)
                    .await
                    .unwrap();
            let added = TxnPartitions::from([("t".to_string(), [0].into())]);
            n.txns
                .add_partitions("tx", pid, epoch, &added, V2)
                .await
                .unwrap();
            assert_eq!(describe(&n, "tx").client_version, V2);
            assert_eq!(
                n.txns.init_producer_id("tx", 60_000, None).await,
                Err(TxnError::ConcurrentTransactions)
            );
            let m = describe(&n, "tx");
            assert_eq!(
                (m.client_version, m.last_producer_epoch),
                (V1, ProducerEpoch(-1)),
                "aborted as version 1 aborts: {m:?}"
            );
        });
    }
}

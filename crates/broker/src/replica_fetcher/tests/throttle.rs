//! The follower side of the replication throttle against the fake leader:
//! a throttled partition that lags is left out of the fetches while the
//! quota is exceeded (and still copied byte for byte in the end), an
//! unthrottled one is not, and a caught-up replica is never held.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::replica::quota::{ReplicationQuota, Throttled};

/// 10 batches of 10 records (about 300 bytes each) in epoch 1.
fn many_batches() -> Vec<(i64, usize, i32)> {
    (0..10).map(|i| (i * 10, 10, 1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_throttled_partition_is_held_back_while_the_quota_is_exceeded() {
    let leader = FakeLeader::start(BTreeMap::from([
        (0, leader_partition(&many_batches(), 100)),
        (1, leader_partition(&many_batches(), 100)),
    ]))
    .await;
    let source = Arc::new(FakeSource::default());
    let (r0, r1) = (
        FakeReplica::new(Batches::default(), 1),
        FakeReplica::new(Batches::default(), 1),
    );
    source.0.lock().insert(tp(0), r0.clone());
    source.0.lock().insert(tp(1), r1.clone());
    // 500 B/s over two 1 s windows (two batches exceed it) on partition 0
    // only; one batch a fetch.
    let quota = Arc::new(ReplicationQuota::default());
    quota.set_windows(2, 1_000);
    quota.set_bound(500);
    quota.set_throttled("t", Some(Throttled::Partitions([0].into())));
    let m = ReplicaFetcherManager::new(
        ReplicaFetcherConfig {
            max_bytes: 1,
            ..config()
        },
        source,
        Arc::new(TcpConnector),
        tokio::runtime::Handle::current(),
    )
    .with_follower_quota(quota.clone());
    follow(&m, &leader, 0, &r0, 1);
    follow(&m, &leader, 1, &r1, 1);
    let want = leader.state.lock().partitions[&0].batches.bytes();
    eventually("partition 1 copied", || r1.bytes() == want).await;
    eventually("partition 0 copied despite the throttle", || {
        r0.bytes() == want
    })
    .await;
    // Only the throttle makes the session forget a partition here.
    let fetches = leader.state.lock().fetches.clone();
    assert!(
        fetches.iter().any(|f| f.3 > 0),
        "partition 0 was never left out of a fetch: {fetches:?}"
    );
    eventually("partition 0 caught up", || {
        m.fetch_state(&tp(0)).is_some_and(|s| s.is_in_sync())
    })
    .await;

    // Caught up: new data is fetched even while the quota stays exceeded
    // (two minute-long windows, far over the bound).
    quota.set_windows(2, 60_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    quota.record(1 << 30, now);
    assert!(quota.is_exceeded(now));
    {
        let mut st = leader.state.lock();
        let p = st.partitions.get_mut(&0).unwrap();
        p.batches.0.extend(Batches::of(&[(100, 2, 1)]).0);
        p.hw = 102;
    }
    let want = leader.state.lock().partitions[&0].batches.bytes();
    eventually("an in-sync replica is not held", || r0.bytes() == want).await;
    m.shutdown().await;
}

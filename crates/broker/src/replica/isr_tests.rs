use super::*;

const LAG: i64 = 30_000;
/// Wall-clock milliseconds (a follower never caught up has time 0).
const BASE: i64 = 1_700_000_000_000;

fn t(ms: i64) -> i64 {
    BASE + ms
}
const ME: BrokerId = BrokerId(1);
const B2: BrokerId = BrokerId(2);
const B3: BrokerId = BrokerId(3);

fn assignment(isr: &[i32], partition_epoch: i32) -> Assignment {
    Assignment {
        replicas: vec![ME, B2, B3],
        isr: isr.iter().map(|b| BrokerId(*b)).collect(),
        leader_epoch: LeaderEpoch(5),
        partition_epoch: PartitionEpoch(partition_epoch),
        unavailable: Vec::new(),
    }
}

/// Leader of [1, 2, 3] with the given ISR, LEO 10 and HW 10, min ISR `min`.
fn leader(isr: &[i32], min: i32) -> LeaderState {
    LeaderState::new(
        ME,
        &assignment(isr, 7),
        Offset(10),
        Offset(10),
        min,
        LAG,
        t(1_000),
    )
}

fn fetch(s: &mut LeaderState, b: BrokerId, at: i64, leo: i64, now: i64) -> FetchEffect {
    s.follower_fetched(b, Offset(at), Offset(0), 42, Offset(leo), t(now), true)
        .expect("a follower")
}

#[test]
fn high_watermark_is_the_minimum_leo_of_the_isr() {
    let mut s = leader(&[1, 2, 3], 1);
    // The leader appends up to 20: followers have nothing yet.
    assert_eq!(s.leader_appended(Offset(20), Offset(20), t(1_000)), None);
    assert_eq!(fetch(&mut s, B2, 15, 20, 1_001).high_watermark, None);
    assert_eq!(s.high_watermark(), Offset(10), "3 has not fetched");
    assert_eq!(
        fetch(&mut s, B3, 12, 20, 1_002).high_watermark,
        Some(Offset(12))
    );
    assert_eq!(
        fetch(&mut s, B3, 20, 20, 1_003).high_watermark,
        Some(Offset(15))
    );
    assert_eq!(
        fetch(&mut s, B2, 20, 20, 1_004).high_watermark,
        Some(Offset(20))
    );
    // Never past the leader's ready offset (an unflushed append).
    assert_eq!(fetch(&mut s, B2, 20, 25, 1_005).high_watermark, None);
    assert_eq!(s.leader_appended(Offset(25), Offset(25), t(1_006)), None);
    fetch(&mut s, B2, 25, 25, 1_007);
    assert_eq!(
        fetch(&mut s, B3, 25, 25, 1_008).high_watermark,
        Some(Offset(25))
    );
}

#[test]
fn high_watermark_never_moves_backwards() {
    let mut s = leader(&[1, 2, 3], 1);
    s.leader_appended(Offset(20), Offset(20), t(1_000));
    fetch(&mut s, B2, 20, 20, 1_001);
    fetch(&mut s, B3, 20, 20, 1_001);
    assert_eq!(s.high_watermark(), Offset(20));
    // A follower that truncated fetches from below the HW.
    assert_eq!(fetch(&mut s, B2, 12, 20, 1_002).high_watermark, None);
    assert_eq!(s.high_watermark(), Offset(20));
}

#[test]
fn strict_min_isr_holds_the_high_watermark() {
    // ISR {1, 2} with min.insync=3: nothing advances, though both have it.
    let mut s = leader(&[1, 2], 3);
    assert!(s.under_min_isr());
    s.leader_appended(Offset(20), Offset(20), t(1_000));
    fetch(&mut s, B2, 20, 20, 1_001);
    assert_eq!(s.high_watermark(), Offset(10));
    // min.insync=2: the same fetch advances it.
    let mut s = leader(&[1, 2], 2);
    assert!(!s.under_min_isr());
    s.leader_appended(Offset(20), Offset(20), t(1_000));
    assert_eq!(
        fetch(&mut s, B2, 20, 20, 1_001).high_watermark,
        Some(Offset(20))
    );
}

#[test]
fn effective_min_isr_is_capped_by_the_replication_factor() {
    let a = Assignment {
        replicas: vec![ME],
        isr: vec![ME],
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(0),
        unavailable: Vec::new(),
    };
    let mut s = LeaderState::new(ME, &a, Offset(0), Offset(0), 2, LAG, 0);
    assert!(s.is_solo());
    assert_eq!(s.effective_min_isr(), 1);
    assert_eq!(
        s.leader_appended(Offset(3), Offset(3), t(1)),
        Some(Offset(3))
    );
}

#[test]
fn non_replicas_are_not_followers() {
    let mut s = leader(&[1, 2, 3], 1);
    assert!(s
        .follower_fetched(BrokerId(9), Offset(0), Offset(0), 1, Offset(10), 1, true)
        .is_none());
    assert!(s
        .follower_fetched(ME, Offset(0), Offset(0), 1, Offset(10), 1, true)
        .is_none());
}

#[test]
fn a_caught_up_follower_joins_the_isr() {
    let mut s = leader(&[1, 2], 1);
    s.leader_appended(Offset(20), Offset(20), t(1_000));
    // 3 is behind the HW (10): not yet.
    assert_eq!(fetch(&mut s, B3, 5, 20, 1_001).expand, None);
    // 2 catches up: HW 20. 3 at 15 is below it: not yet.
    fetch(&mut s, B2, 20, 20, 1_002);
    assert_eq!(s.high_watermark(), Offset(20));
    assert_eq!(fetch(&mut s, B3, 15, 20, 1_003).expand, None);
    let p = fetch(&mut s, B3, 20, 20, 1_004).expand.expect("expansion");
    assert_eq!(p.new_isr, vec![(ME, -1), (B2, 42), (B3, 42)]);
    assert_eq!(p.partition_epoch, PartitionEpoch(7));
    assert_eq!(p.leader_epoch, LeaderEpoch(5));
    // One in flight: no second proposal; the maximal ISR counts 3 already.
    assert_eq!(fetch(&mut s, B3, 20, 20, 1_005).expand, None);
    assert_eq!(s.maximal_isr(), vec![ME, B2, B3]);
    assert_eq!(s.isr(), &[ME, B2]);
}

#[test]
fn a_follower_joins_only_after_reaching_the_epoch_start() {
    // Became leader at LEO 10 with HW 4 (the checkpoint).
    let mut s = LeaderState::new(
        ME,
        &assignment(&[1, 2], 7),
        Offset(10),
        Offset(4),
        1,
        LAG,
        t(0),
    );
    // 3 at 6 >= HW 4 but below the epoch start 10: not in sync.
    assert_eq!(fetch(&mut s, B3, 6, 10, 1).expand, None);
    assert!(fetch(&mut s, B3, 10, 10, 2).expand.is_some());
}

#[test]
fn an_ineligible_follower_does_not_join() {
    let mut s = leader(&[1, 2], 1);
    let e = s
        .follower_fetched(B3, Offset(10), Offset(0), 1, Offset(10), t(1_001), false)
        .unwrap();
    assert_eq!(e.expand, None);
}

#[test]
fn a_pending_expansion_holds_the_high_watermark_for_the_new_member() {
    let mut s = leader(&[1, 2], 1);
    s.leader_appended(Offset(20), Offset(20), t(1_000));
    fetch(&mut s, B2, 10, 20, 1_001);
    assert!(fetch(&mut s, B3, 10, 20, 1_002).expand.is_some());
    // 2 reaches 20; 3 (pending member) is at 10: HW stays 10.
    assert_eq!(fetch(&mut s, B2, 20, 20, 1_003).high_watermark, None);
    assert_eq!(
        fetch(&mut s, B3, 20, 20, 1_004).high_watermark,
        Some(Offset(20))
    );
}

#[test]
fn a_lagging_follower_leaves_the_isr_after_the_lag_time() {
    let mut s = leader(&[1, 2, 3], 1);
    s.leader_appended(Offset(20), Offset(20), t(1_000));
    fetch(&mut s, B2, 20, 20, 1_000);
    fetch(&mut s, B3, 10, 20, 1_000);
    // 3 was caught up at becoming leader (t=1000), and not since.
    assert_eq!(s.maybe_shrink(Offset(20), t(1_000 + LAG)), None);
    // 2 fetches the end regularly; 3 stays at 10.
    fetch(&mut s, B2, 20, 20, 1_000 + LAG);
    let p = s
        .maybe_shrink(Offset(20), t(1_001 + LAG))
        .expect("3 leaves the ISR");
    assert_eq!(p.brokers().collect::<Vec<_>>(), vec![ME, B2]);
    // While pending the old ISR still counts: HW held by 3.
    assert_eq!(s.maximal_isr(), vec![ME, B2, B3]);
    assert_eq!(s.high_watermark(), Offset(10));
    let committed = AlterAnswer::Committed {
        leader: ME,
        leader_epoch: LeaderEpoch(5),
        isr: vec![ME, B2],
        partition_epoch: PartitionEpoch(8),
    };
    assert_eq!(
        s.alter_answered(&p, committed, Offset(20), t(1_002 + LAG)),
        (AnswerEffect::Applied, Some(Offset(20)))
    );
    assert_eq!(s.isr(), &[ME, B2]);
    assert_eq!(s.partition_epoch(), PartitionEpoch(8));
}

#[test]
fn a_follower_that_keeps_pace_but_never_reaches_the_end_stays() {
    // Kafka's rule: caught up at the previous fetch if it now has what the
    // leader had then.
    let mut s = leader(&[1, 2, 3], 1);
    let mut leo = 10;
    fetch(&mut s, B3, 10, 10, 1_000);
    for step in 1..=10 {
        let now = 1_000 + step * 20_000;
        let follower_at = leo; // what the leader had at the last fetch
        leo += 100;
        s.leader_appended(Offset(leo), Offset(leo), t(now));
        fetch(&mut s, B3, follower_at, leo, now);
        fetch(&mut s, B2, leo, leo, now);
        assert_eq!(s.maybe_shrink(Offset(leo), t(now)), None, "step {step}");
    }
}

#[test]
fn answers_for_other_proposals_or_older_epochs_are_dropped() {
    let mut s = leader(&[1, 2], 1);
    let p = fetch(&mut s, B3, 10, 10, 1_001).expand.unwrap();
    let other = IsrProposal {
        new_isr: vec![(ME, -1)],
        ..p.clone()
    };
    assert_eq!(
        s.alter_answered(&other, AlterAnswer::Rejected, Offset(10), 1_002)
            .0,
        AnswerEffect::Dropped
    );
    // The image moved past the proposal (partition epoch 9): the late
    // answer (epoch 8) must not roll the ISR back.
    assert!(s.update(&assignment(&[1, 2, 3], 9), Offset(10), 1_003));
    assert_eq!(s.pending(), None);
    let late = AlterAnswer::Committed {
        leader: ME,
        leader_epoch: LeaderEpoch(5),
        isr: vec![ME, B2],
        partition_epoch: PartitionEpoch(8),
    };
    assert_eq!(
        s.alter_answered(&p, late, Offset(10), 1_004).0,
        AnswerEffect::Dropped
    );
    assert_eq!(s.isr(), &[ME, B2, B3]);
    // An older image does not roll back either.
    assert!(!s.update(&assignment(&[1, 2], 8), Offset(10), 1_005));
    assert_eq!(s.isr(), &[ME, B2, B3]);
}

#[test]
fn errors_clear_retry_or_wait() {
    let mut s = leader(&[1, 2], 1);
    let p = fetch(&mut s, B3, 10, 10, 1_001).expand.unwrap();
    assert_eq!(
        s.alter_answered(&p, AlterAnswer::Retry, Offset(10), 1).0,
        AnswerEffect::Resend
    );
    assert_eq!(s.pending(), Some(&p));
    assert_eq!(
        s.alter_answered(&p, AlterAnswer::AwaitMetadata, Offset(10), 1)
            .0,
        AnswerEffect::Waiting
    );
    assert_eq!(s.pending(), Some(&p));
    assert_eq!(
        s.alter_answered(&p, AlterAnswer::Rejected, Offset(10), 1).0,
        AnswerEffect::Cleared
    );
    assert_eq!(s.pending(), None);
    assert!(fetch(&mut s, B3, 10, 10, 1_002).expand.is_some());
}

#[test]
fn a_new_leader_epoch_restarts_the_epoch_start_and_keeps_follower_state() {
    let mut s = leader(&[1, 2, 3], 1);
    fetch(&mut s, B2, 10, 10, 1_001);
    let mut next = assignment(&[1, 2, 3], 8);
    next.leader_epoch = LeaderEpoch(6);
    assert!(s.update(&next, Offset(30), t(1_002)));
    assert_eq!(s.epoch_start_offset(), Offset(30));
    assert_eq!(s.follower(B2).unwrap().log_end_offset, Offset(10));
}

/// A reassignment as the leader sees it: the image adds replica 4 at the
/// same leader epoch; 4 fetches, never lets the high watermark pass an ISR
/// member's log end, joins once caught up; the completed reassignment
/// (new leader epoch, without 3) leaves 3 no follower.
#[test]
fn a_reassignment_adds_a_follower_that_joins_and_drops_the_removed_one() {
    let b4 = BrokerId(4);
    let mut s = leader(&[1, 2, 3], 2);
    s.leader_appended(Offset(20), Offset(20), t(1_000));
    fetch(&mut s, B2, 20, 20, 1_001);
    fetch(&mut s, B3, 20, 20, 1_002);
    assert_eq!(s.high_watermark(), Offset(20));
    // Started: replicas = target [1, 2, 4] + removing [3], ISR unchanged.
    let started = Assignment {
        replicas: vec![ME, B2, b4, B3],
        isr: vec![ME, B2, B3],
        leader_epoch: LeaderEpoch(5),
        partition_epoch: PartitionEpoch(8),
        unavailable: Vec::new(),
    };
    assert!(s.update(&started, Offset(20), t(1_003)));
    assert!(s.follower(b4).is_some(), "the adding replica may fetch");
    assert_eq!(s.isr(), &[ME, B2, B3]);
    s.leader_appended(Offset(30), Offset(30), t(1_004));
    // 4 starts from nothing: no ISR change, no high watermark move.
    assert_eq!(
        fetch(&mut s, b4, 0, 30, 1_005),
        FetchEffect {
            high_watermark: None,
            expand: None
        }
    );
    fetch(&mut s, B3, 30, 30, 1_006);
    // 4 at the end, 2 (ISR) at 25: the high watermark is 2's, not 4's.
    fetch(&mut s, B2, 25, 30, 1_007);
    let e = fetch(&mut s, b4, 30, 30, 1_008);
    assert_eq!(s.high_watermark(), Offset(25));
    let p = e.expand.expect("4 reached the high watermark: it joins");
    assert_eq!(p.brokers().collect::<Vec<_>>(), vec![ME, B2, B3, b4]);
    // Completed: replicas and ISR [1, 2, 4], the leader epoch bumped.
    let done = Assignment {
        replicas: vec![ME, B2, b4],
        isr: vec![ME, B2, b4],
        leader_epoch: LeaderEpoch(6),
        partition_epoch: PartitionEpoch(10),
        unavailable: Vec::new(),
    };
    assert!(s.update(&done, Offset(30), t(1_009)));
    assert!(s.follower(B3).is_none());
    assert!(s
        .follower_fetched(B3, Offset(30), Offset(0), 42, Offset(30), t(1_010), true)
        .is_none());
    fetch(&mut s, B2, 30, 30, 1_011);
    assert_eq!(s.high_watermark(), Offset(30));
}

#[test]
fn a_fenced_follower_taken_out_of_the_isr_does_not_hold_the_high_watermark() {
    // Kafka's isReplicaIsrEligible: follower 3 died with everything; the
    // controller fenced it and took it out of the ISR. Its caught-up time
    // has not run out, but the leader must not wait for it.
    let mut s = leader(&[1, 2, 3], 1);
    fetch(&mut s, B2, 10, 10, 1_001);
    fetch(&mut s, B3, 10, 10, 1_001);
    let mut fenced = assignment(&[1, 2], 8);
    fenced.unavailable = vec![B3];
    assert!(s.update(&fenced, Offset(10), t(1_002)));
    s.leader_appended(Offset(20), Offset(20), t(1_003));
    fetch(&mut s, B2, 20, 20, 1_004);
    assert_eq!(s.high_watermark(), Offset(20));
    // An unfenced one outside the ISR that is caught up still counts (it
    // is about to join), until its caught-up time runs out.
    let mut s = leader(&[1, 2, 3], 1);
    fetch(&mut s, B2, 10, 10, 1_001);
    fetch(&mut s, B3, 10, 10, 1_001);
    assert!(s.update(&assignment(&[1, 2], 8), Offset(10), t(1_002)));
    s.leader_appended(Offset(20), Offset(20), t(1_003));
    fetch(&mut s, B2, 20, 20, 1_004);
    assert_eq!(s.high_watermark(), Offset(10));
    // With nothing fetched or appended since, the periodic refresh moves
    // it once 3 stopped counting.
    assert_eq!(s.refresh(Offset(20), t(1_001 + LAG + 1)), Some(Offset(20)));
}

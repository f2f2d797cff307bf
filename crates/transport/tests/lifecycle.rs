//! The broker lifecycle over real loopback sockets: brokers register,
//! get unfenced, are fenced when they stop heartbeating, shut down under
//! control, restart with the same id, and re-register when their epoch goes
//! stale. The controller's clock is a manual one: fencing is driven by
//! advancing it, never by sleeping for a session timeout.

mod common;

use std::sync::Arc;

use common::*;
use sluice_metadata::BrokerId;
use sluice_protocol::kafka_protocol::messages::create_topics_request::CreatableTopic;
use sluice_protocol::kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use sluice_protocol::kafka_protocol::protocol::StrBytes;
use sluice_storage::Clock;
use sluice_transport::{BrokerLifecycleManager, BrokerState, ControllerChannel, TransportError};

async fn create_topic(ch: &ControllerChannel, name: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    let resp = ch.send(&req, LONG).await.unwrap();
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
}

async fn running(m: &BrokerLifecycleManager) {
    let mut rx = m.subscribe();
    tokio::time::timeout(LONG, rx.wait_for(|s| s.state == BrokerState::Running))
        .await
        .expect("broker never unfenced")
        .unwrap();
}

/// Advances the controller's clock by `total` ms in steps, letting the
/// `alive` brokers heartbeat after each step.
async fn advance_keeping_alive(
    ctl: &Controller,
    total: i64,
    alive: &[&Arc<BrokerLifecycleManager>],
) {
    let step = SESSION_TIMEOUT_MS / 6;
    let mut done = 0;
    while done < total {
        ctl.clock.advance(step);
        done += step;
        let now = ctl.clock.now_ms();
        until("live brokers heartbeat after the clock moved", || {
            alive
                .iter()
                .all(|m| m.status().last_heartbeat_ms.is_some_and(|t| t >= now))
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_register_unfence_and_a_silent_one_is_fenced() {
    let ctl = Controller::start(1).await;
    let brokers: Vec<_> = (1..=3).map(|id| ctl.broker(id)).collect();
    let mut epochs = Vec::new();
    for m in &brokers {
        epochs.push(m.register().await.unwrap());
    }
    for id in 1..=3 {
        assert!(ctl.fenced(id), "a new registration starts fenced");
    }
    assert!(epochs.windows(2).all(|w| w[0] < w[1]), "epochs {epochs:?}");
    for m in &brokers {
        m.start();
    }
    for m in &brokers {
        running(m).await;
    }
    for id in 1..=3 {
        assert!(!ctl.fenced(id));
    }
    let ch = ctl.channel(&ctl.voter(1));
    create_topic(&ch, "spread", 6).await;
    assert!(
        ctl.leaders_of(3) > 0,
        "placement gave broker 3 no leadership"
    );

    // Broker 3 goes silent; the others keep heartbeating while time passes.
    brokers[2].stop().await;
    advance_keeping_alive(&ctl, SESSION_TIMEOUT_MS + 1000, &[&brokers[0], &brokers[1]]).await;
    let fenced = ctl.c.fence_expired_brokers().await.unwrap();
    assert!(
        fenced.is_empty() || fenced == vec![BrokerId(3)],
        "{fenced:?}"
    );
    assert!(ctl.fenced(3));
    assert!(!ctl.fenced(1) && !ctl.fenced(2));
    assert_eq!(ctl.leaders_of(3), 0);
    ctl.assert_no_fenced_leader();
    for m in &brokers[..2] {
        m.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_moves_leaderships_then_says_should_shut_down() {
    let ctl = Controller::start(1).await;
    let b1 = ctl.broker(1);
    let b2 = ctl.broker(2);
    for m in [&b1, &b2] {
        m.start();
    }
    running(&b1).await;
    running(&b2).await;
    create_topic(&ctl.channel(&ctl.voter(1)), "moving", 4).await;
    assert!(ctl.leaders_of(2) > 0);

    b2.begin_controlled_shutdown();
    tokio::time::timeout(LONG, b2.wait_for_shutdown())
        .await
        .expect("controller never allowed the shutdown");
    let s = b2.status();
    assert_eq!(s.state, BrokerState::ShuttingDown);
    assert!(s.should_shutdown && s.fenced);
    let image = ctl.c.image();
    let reg = image.broker(BrokerId(2)).unwrap();
    assert!(reg.fenced && reg.in_controlled_shutdown);
    assert_eq!(ctl.leaders_of(2), 0);
    ctl.assert_no_fenced_leader();
    // Broker 1 is untouched.
    assert_eq!(b1.status().state, BrokerState::Running);
    b1.stop().await;
    b2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broker_keeps_its_id_once_the_old_session_expires() {
    let ctl = Controller::start(1).await;
    let old = ctl.broker(1);
    let old_epoch = old.register().await.unwrap();
    old.heartbeat().await.unwrap();
    // A new process (new incarnation) while the old session is alive.
    let new = ctl.broker(1);
    let before = ctl.log.batches().len();
    match new.register().await {
        Err(TransportError::Rejected { code: 101, .. }) => {}
        other => panic!("expected DUPLICATE_BROKER_REGISTRATION, got {other:?}"),
    }
    assert_eq!(
        ctl.log.batches().len(),
        before,
        "a refused registration wrote"
    );
    ctl.clock.advance(SESSION_TIMEOUT_MS + 1);
    let new_epoch = new.register().await.unwrap();
    assert!(new_epoch > old_epoch);
    new.start();
    running(&new).await;
    let image = ctl.c.image();
    let reg = image.broker(BrokerId(1)).unwrap();
    assert_eq!(reg.epoch.0, new_epoch);
    assert!(!reg.fenced);
    new.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_epoch_makes_the_broker_register_again() {
    let ctl = Controller::start(1).await;
    let m = ctl.broker(1);
    let first = m.register().await.unwrap();
    // Another incarnation takes over the id after the session expired.
    ctl.clock.advance(SESSION_TIMEOUT_MS + 1);
    let second = ctl.broker(1);
    let other_epoch = second.register().await.unwrap();
    assert!(other_epoch > first);
    match m.heartbeat().await {
        Err(TransportError::Rejected { code: 77, .. }) => {}
        other => panic!("expected STALE_BROKER_EPOCH, got {other:?}"),
    }
    assert_eq!(m.status().broker_epoch, None);
    ctl.clock.advance(SESSION_TIMEOUT_MS + 1);
    m.start();
    running(&m).await;
    assert!(m.status().broker_epoch.unwrap() > other_epoch);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_of_another_cluster_is_refused_and_nothing_is_written() {
    let ctl = Controller::start(1).await;
    let before = ctl.log.batches().len();
    let m = ctl.broker_in(1, "some-other-cluster-id");
    match m.register().await {
        Err(TransportError::Rejected { code: 104, .. }) => {}
        other => panic!("expected INCONSISTENT_CLUSTER_ID, got {other:?}"),
    }
    m.start();
    let mut rx = m.subscribe();
    tokio::time::timeout(LONG, rx.wait_for(|s| s.state == BrokerState::NotRunning))
        .await
        .expect("the lifecycle manager kept going")
        .unwrap();
    assert_eq!(ctl.log.batches().len(), before);
    assert!(ctl.c.image().broker(BrokerId(1)).is_none());
}

//! Group commit: concurrent operations share commits, answers planned
//! against a speculative image wait for its commit, and a group never
//! exceeds its record budget.

use std::sync::Arc;

use super::{fixture_with, three_brokers, topic};
use crate::controller::*;
use crate::error::ControllerError;
use crate::log::LogError;

/// Starts `n` CreateTopics at once (each queued before the controller
/// runs: the test runtime is single-threaded), returns their answers.
async fn concurrently(
    c: &Arc<QuorumController>,
    names: Vec<String>,
) -> Vec<Result<Vec<Result<CreatedTopic, ControllerError>>, ControllerError>> {
    let tasks: Vec<_> = names
        .into_iter()
        .map(|name| {
            let c = c.clone();
            tokio::spawn(async move { c.create_topics(vec![topic(&name, 3, 1)], false).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn concurrent_operations_share_commits() {
    let f = three_brokers().await;
    let before = f.log.batches().len();
    let names = (0..40).map(|i| format!("t{i}")).collect();
    for r in concurrently(&f.c, names).await {
        assert!(r.unwrap()[0].is_ok());
    }
    assert_eq!(f.c.image().topic_count(), 40);
    let commits = f.log.batches().len() - before;
    assert!(commits < 40, "{commits} commits for 40 operations");
}

#[tokio::test]
async fn answers_planned_on_speculation_wait_for_the_commit_and_share_its_failure() {
    let f = three_brokers().await;
    f.log.refuse_next_appends(1);
    // The second sees the first's topic in the speculative image: its
    // TOPIC_ALREADY_EXISTS would be a lie if the commit fails, so both get
    // the commit's error.
    let answers = concurrently(&f.c, vec!["x".into(), "x".into()]).await;
    for a in &answers {
        assert!(
            matches!(a, Err(ControllerError::Log(LogError::Uncertain))),
            "{a:?}"
        );
    }
    assert!(f.c.image().topic("x").is_none());
    // Next time the first creates it and the second finds it.
    let answers = concurrently(&f.c, vec!["x".into(), "x".into()]).await;
    assert!(answers[0].as_ref().unwrap()[0].is_ok());
    assert!(matches!(
        answers[1].as_ref().unwrap()[0],
        Err(ControllerError::TopicAlreadyExists(_))
    ));
}

#[tokio::test]
async fn a_group_commits_before_it_would_exceed_its_record_budget() {
    let config = ControllerConfig {
        max_records_per_batch: 9,
        ..ControllerConfig::default()
    };
    let f = fixture_with(&[(1, None)], Arc::new(PermissiveValidator), config).await;
    let before = f.log.batches().len();
    // Each topic is 4 records: at most two fit a batch.
    let names = (0..10).map(|i| format!("t{i}")).collect();
    for r in concurrently(&f.c, names).await {
        assert!(r.unwrap()[0].is_ok());
    }
    let batches = f.log.batches();
    assert!(batches[before..].iter().all(|b| b.records.len() <= 9));
    assert_eq!(f.c.image().topic_count(), 10);
}

#[tokio::test]
async fn an_operation_error_found_on_speculation_also_waits_for_the_commit() {
    let f = three_brokers().await;
    f.log.refuse_next_appends(1);
    let c1 = f.c.clone();
    let register = tokio::spawn(async move {
        c1.register_broker(BrokerRegistrationRequest {
            broker_id: sluice_metadata::BrokerId(4),
            incarnation_id: uuid::Uuid::from_u128(4),
            listeners: Vec::new(),
            features: Vec::new(),
            rack: None,
            log_dirs: Vec::new(),
            previous_broker_epoch: None,
        })
        .await
    });
    let c2 = f.c.clone();
    // Planned against the speculative registration: a stale epoch, which
    // is only true if the registration commits.
    let ids = tokio::spawn(async move {
        c2.allocate_producer_ids(
            sluice_metadata::BrokerId(4),
            sluice_metadata::BrokerEpoch(0),
        )
        .await
    });
    let register = register.await.unwrap();
    let ids = ids.await.unwrap();
    assert!(
        matches!(register, Err(ControllerError::Log(LogError::Uncertain))),
        "{register:?}"
    );
    assert!(
        matches!(ids, Err(ControllerError::Log(LogError::Uncertain))),
        "{ids:?}"
    );
}

//! Topic auto-creation answers as Apache Kafka 4.1 does: the Metadata
//! request that triggers the creation gets UNKNOWN_TOPIC_OR_PARTITION and no
//! partitions; the topic shows up on a later request. Compared field for
//! field with the pinned Kafka for every Metadata version both advertise
//! (that part is skipped when its jars are absent).

mod common;

use std::time::{Duration, Instant};

use common::{sb, start, RawClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use sluice_testkit::ReferenceKafka;

/// The Metadata versions the broker advertises.
fn metadata_versions(c: &mut RawClient) -> std::ops::RangeInclusive<i16> {
    let resp = c.send(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(sb("sluice-tests"))
            .with_client_software_version(sb("1")),
    );
    let k = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Metadata as i16)
        .expect("Metadata advertised");
    k.min_version..=k.max_version
}

fn metadata(c: &mut RawClient, version: i16, name: &str, allow: bool) -> MetadataResponse {
    c.send(
        version,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(sb(name))))
            ]))
            .with_allow_auto_topic_creation(allow),
    )
}

/// One topic of a Metadata answer as text, the id reduced to nil / set.
fn render(r: &MetadataResponse) -> String {
    assert_eq!(r.topics.len(), 1, "{r:?}");
    let t = &r.topics[0];
    format!(
        "error {} name {:?} id {} internal {} partitions {}",
        t.error_code,
        t.name.as_ref().map(|n| n.0.to_string()),
        if t.topic_id.is_nil() { "nil" } else { "set" },
        t.is_internal,
        t.partitions.len(),
    )
}

/// Asks until the topic has partitions (as a client retries on error 3);
/// returns that answer. Bounded by a generous deadline, not a timing claim.
fn until_created(c: &mut RawClient, version: i16, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = metadata(c, version, name, true);
        if r.topics[0].error_code == 0 {
            return render(&r);
        }
        assert!(Instant::now() < deadline, "never created: {}", render(&r));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Answers, in order, to: a triggering Metadata request in every advertised
/// version, the answer once the topic exists, a request that forbids
/// creation, and the delete-then-read sequence of a client's delete-topics
/// test.
fn scenario(bootstrap: &str) -> Vec<(String, String)> {
    let mut c = RawClient::connect(bootstrap);
    let mut out = Vec::new();
    for v in metadata_versions(&mut c) {
        // v0-v3 have no allow flag: a named unknown topic is always created.
        let name = format!("auto-v{v}");
        out.push((
            format!("v{v} first"),
            render(&metadata(&mut c, v, &name, true)),
        ));
        out.push((format!("v{v} later"), until_created(&mut c, v, &name)));
        if v >= 4 {
            let name = format!("forbidden-v{v}");
            out.push((
                format!("v{v} not allowed"),
                render(&metadata(&mut c, v, &name, false)),
            ));
        }
    }

    // A client's delete-topics test: create, delete, then read the
    // partitions with a request that allows auto-creation.
    let created = c.send(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(sb("deleted")))
                .with_num_partitions(3)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000),
    );
    out.push((
        "create".into(),
        format!("error {}", created.topics[0].error_code),
    ));
    until_created(&mut c, 12, "deleted");
    let deleted = c.send(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(TopicName(sb("deleted"))))
            ])
            .with_timeout_ms(30_000),
    );
    out.push((
        "delete".into(),
        format!("error {}", deleted.responses[0].error_code),
    ));
    // Kafka forgets a deleted topic asynchronously; wait until it is gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metadata(&mut c, 12, "deleted", false).topics[0].error_code == 0 {
        assert!(Instant::now() < deadline, "never deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    out.push((
        "after delete first".into(),
        render(&metadata(&mut c, 12, "deleted", true)),
    ));
    out.push((
        "after delete later".into(),
        until_created(&mut c, 12, "deleted"),
    ));
    out
}

/// Without the reference: the triggering request gets error 3 and no
/// partitions in every version, and the topic (with the broker's
/// num.partitions) is there on the next request.
#[test]
fn the_request_that_auto_creates_a_topic_answers_unknown_topic() {
    let sluice = start(&[("num.partitions", "2")]);
    let answers = scenario(sluice.bootstrap());
    for (label, answer) in &answers {
        eprintln!("{label}: {answer}");
        if label.ends_with(" first") || label.ends_with("not allowed") {
            assert!(
                answer.starts_with("error 3 ") && answer.ends_with("partitions 0"),
                "{label}: {answer}"
            );
        }
        if label.ends_with(" later") {
            assert!(
                answer.starts_with("error 0 ") && answer.ends_with("partitions 2"),
                "{label}: {answer}"
            );
        }
    }
}

#[test]
fn auto_creation_answers_match_reference_kafka() {
    let Some(kafka) =
        ReferenceKafka::start_with(&[("num.partitions", "2")]).expect("reference Kafka starts")
    else {
        eprintln!("skipped: reference Kafka not available");
        return;
    };
    let expected = scenario(&kafka.bootstrap());
    kafka.stop();
    let sluice = start(&[("num.partitions", "2")]);
    let actual = scenario(sluice.bootstrap());
    let mismatches: Vec<String> = expected
        .iter()
        .zip(&actual)
        .filter(|(e, a)| e != a)
        .map(|(e, a)| format!("{} / {}:\n   kafka  {}\n   sluice {}", e.0, a.0, e.1, a.1))
        .collect();
    for (e, a) in expected.iter().zip(&actual) {
        eprintln!("{}: kafka {} | sluice {}", e.0, e.1, a.1);
    }
    assert_eq!(expected.len(), actual.len(), "{expected:?}\n{actual:?}");
    assert!(
        mismatches.is_empty(),
        "differences from Apache Kafka 4.1.2:\n{}",
        mismatches.join("\n")
    );
}

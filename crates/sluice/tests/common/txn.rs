//! A raw transactional client for the tests: the coordinator's requests
//! (FindCoordinator, InitProducerId, AddPartitionsToTxn, EndTxn) and
//! transactional Produce, each answering its error code, so a test can
//! play a producer, its zombie, or bad input, against Sluice or Kafka.

use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest,
    ProduceRequest, ProducerId as WirePid, TopicName,
};
use sluice_record::{BatchBuilder, CompressionType, ProducerEpoch, ProducerId, Timestamp};

use super::{sb, RawClient};

/// Codes a transactional client retries while a coordinator or a
/// partition settles (NOT_ENOUGH_REPLICAS is what a verification the
/// coordinator cannot give yet answers; 51 CONCURRENT_TRANSACTIONS).
pub const RETRIABLE: [i16; 7] = [5, 6, 14, 15, 16, 19, 51];
const WAIT: Duration = Duration::from_secs(120);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Retries `call` while it answers a retriable code; its last answer.
pub fn retried(what: &str, mut call: impl FnMut() -> i16) -> i16 {
    let deadline = Instant::now() + WAIT;
    loop {
        let code = call();
        if !RETRIABLE.contains(&code) {
            return code;
        }
        assert!(Instant::now() < deadline, "{what}: still {code}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The transaction coordinator of `id`: (node id, address).
pub fn coordinator(bootstrap: &str, id: &str) -> (i32, String) {
    let mut c = RawClient::connect(bootstrap);
    let deadline = Instant::now() + WAIT;
    loop {
        let r = c.send(
            3,
            &FindCoordinatorRequest::default()
                .with_key(sb(id))
                .with_key_type(1),
        );
        if r.error_code == 0 {
            return (r.node_id.0, format!("{}:{}", r.host.as_str(), r.port));
        }
        assert!(Instant::now() < deadline, "no coordinator: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// InitProducerId for `id` (retried while the coordinator settles).
pub fn init_producer_id(c: &mut RawClient, id: &str) -> (i64, i16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(sb(id).into()))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(WirePid(-1))
            .with_producer_epoch(-1);
        let r = c.send(4, &req);
        if r.error_code == 0 {
            return (r.producer_id.0, r.producer_epoch);
        }
        assert!(
            Instant::now() < deadline && RETRIABLE.contains(&r.error_code),
            "InitProducerId: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One transactional batch of `value`.
pub fn txn_batch(pid: i64, epoch: i16, seq: i32, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None)
        .producer(ProducerId(pid), ProducerEpoch(epoch), seq)
        .transactional(true);
    b.append(Timestamp(now_ms()), None, Some(value.as_bytes()), &[])
        .unwrap();
    b.build().unwrap()
}

/// A transactional Produce (acks=all, `version`) of `id` to `partition`
/// of `topic`: (code, base offset).
pub fn produce(
    c: &mut RawClient,
    version: i16,
    (id, topic, partition): (&str, &str, i32),
    records: Vec<u8>,
) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_transactional_id(Some(sb(id).into()))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(bytes::Bytes::from(records)))])]);
    let r = c.send(version, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// AddPartitionsToTxn v3: the code of each partition, in order.
pub fn add_partitions(
    c: &mut RawClient,
    id: &str,
    (pid, epoch): (i64, i16),
    partitions: &[(&str, i32)],
) -> Vec<i16> {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in partitions {
        match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
            Some(x) => x.partitions.push(*p),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(sb(t)))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(sb(id).into())
        .with_v3_and_below_producer_id(WirePid(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let r = c.send(3, &req);
    partitions
        .iter()
        .map(|(t, p)| {
            r.results_by_topic_v3_and_below
                .iter()
                .find(|x| x.name.0.as_str() == *t)
                .and_then(|x| {
                    x.results_by_partition
                        .iter()
                        .find(|y| y.partition_index == *p)
                })
                .map_or(-100, |y| y.partition_error_code)
        })
        .collect()
}

/// EndTxn in `version`: (code, the epoch the answer says to go on with).
pub fn end_txn(
    c: &mut RawClient,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> (i16, i16) {
    let req = EndTxnRequest::default()
        .with_transactional_id(sb(id).into())
        .with_producer_id(WirePid(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let r = c.send(version, &req);
    (r.error_code, r.producer_epoch)
}

/// Runs `script` (named steps and the error code each got) on a Sluice
/// node and on the reference Kafka 4.1.2, both with `settings`, prints the
/// two side by side and requires them equal. Without the Kafka jars only
/// Sluice runs (and its answers are printed).
pub fn same_codes_as_kafka(
    settings: &[(&str, &str)],
    script: impl Fn(&str) -> Vec<(&'static str, i16)>,
) {
    let sluice = super::start(settings);
    let ours = script(sluice.bootstrap());
    drop(sluice);
    let Some(kafka) =
        sluice_testkit::ReferenceKafka::start_with(settings).expect("reference Kafka starts")
    else {
        eprintln!("reference Kafka not available; Sluice's answers: {ours:?}");
        return;
    };
    let theirs = script(&kafka.bootstrap());
    kafka.stop();
    for ((step, a), (_, b)) in ours.iter().zip(&theirs) {
        println!("{step:<45} sluice {a:>3}  kafka {b:>3}");
    }
    assert_eq!(ours, theirs);
}

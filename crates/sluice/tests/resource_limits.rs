//! The real binary at the edge of its resources (issue 15, "Repairs"):
//!
//! * a full disk (a small tmpfs: it honours `size=` with ENOSPC, and a map
//!   of a hole past its capacity raises SIGBUS, as the issue saw): creating
//!   topics and the offsets topic is refused with a Kafka error, the broker
//!   stays up, restarts on the full disk and serves fetches, and
//!   DeleteTopics frees the space new topics need. Needs root to mount;
//!   skipped with a message otherwise.
//! * the descriptor limit (a low `ulimit -n`): creating partitions until
//!   descriptors run out is refused with KAFKA_STORAGE_ERROR and a WARN
//!   line naming the limit and the count, and the broker keeps serving.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{sb, RawClient};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest, FindCoordinatorRequest,
    ProduceRequest, TopicName,
};
use sluice_record::{BatchBuilder, CompressionType, Timestamp};
use sluice_testkit::SluiceProcess;

const KAFKA_STORAGE_ERROR: i16 = 56;

fn create(c: &mut RawClient, name: &str, partitions: i32) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    let resp = c.send(7, &req);
    resp.topics[0].error_code
}

fn batch(records: usize, size: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(CompressionType::None);
    let value = vec![b'x'; size];
    // Now: an old timestamp would roll the segment (segment.ms).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for _ in 0..records {
        b.append(Timestamp(now), None, Some(&value), &[]).unwrap();
    }
    b.build().unwrap()
}

/// Produces one batch (acks=all) to partition 0, retrying while the new
/// partition is not led yet; the partition's error code.
fn produce(c: &mut RawClient, topic: &str, records: Vec<u8>) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(bytes::Bytes::from(records)))])]);
    for _ in 0..200 {
        let code = c.send(8, &req).responses[0].partition_responses[0].error_code;
        if code != 6 {
            return code;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    6
}

/// Bytes fetched from partition 0 at `offset` (error code, record bytes).
fn fetch(c: &mut RawClient, topic: &str, offset: i64) -> (i16, usize) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(4 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(sb(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(4 << 20)])]);
    let resp = c.send(12, &req);
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.records.as_ref().map_or(0, |r| r.len()))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("sluice-fulldisk-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("running mount");
        assert!(status.success(), "mount -t tmpfs failed: {status}");
        Tmpfs { path, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Writes a file until the file system is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut chunk = 1 << 20;
    while chunk >= 512 {
        match f.write_all(&vec![0xAB; chunk]) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => chunk /= 2,
            Err(e) => panic!("filling: {e}"),
        }
    }
    path
}

#[test]
fn a_full_disk_refuses_writes_restarts_serves_reads_and_deletes() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let disk = Tmpfs::mount("32m");
    let data = disk.path.join("data");
    let mut broker = SluiceProcess::start_in(
        env!("CARGO_BIN_EXE_sluice"),
        &data,
        &[("offsets.topic.num.partitions", "8")],
    )
    .expect("sluice starts");
    let mut c = RawClient::connect(broker.bootstrap());
    assert_eq!(create(&mut c, "keep", 1), 0);
    // ~6 MiB of data in "keep" that deleting it will free.
    for _ in 0..12 {
        assert_eq!(produce(&mut c, "keep", batch(8, 64 * 1024)), 0);
    }
    let filler = fill(&disk.path);

    // Refused with a Kafka error, not SIGBUS; the broker stays up.
    assert_eq!(create(&mut c, "eight", 8), KAFKA_STORAGE_ERROR);
    let fc = c.send(3, &FindCoordinatorRequest::default().with_key(sb("g")));
    assert_ne!(fc.error_code, 0, "no offsets topic on a full disk");
    assert_eq!(
        produce(&mut c, "keep", batch(4, 64 * 1024)),
        KAFKA_STORAGE_ERROR
    );
    assert!(broker.is_running(), "{}", broker.output());
    let (code, bytes) = fetch(&mut c, "keep", 0);
    assert_eq!(code, 0);
    assert!(bytes > 0);

    // Restarts on the full disk and serves what it has.
    drop(c);
    broker.terminate().expect("clean shutdown on a full disk");
    broker.restart().expect("starts on a full disk");
    let mut c = RawClient::connect(broker.bootstrap());
    let (code, bytes) = fetch(&mut c, "keep", 0);
    assert_eq!(code, 0, "{}", broker.output());
    assert!(bytes > 0);

    // DeleteTopics frees the space; creating works again.
    let del = c.send(
        4,
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(sb("keep"))])
            .with_timeout_ms(30_000),
    );
    assert_eq!(del.responses[0].error_code, 0, "{del:?}");
    assert_eq!(create(&mut c, "eight", 8), 0, "{}", broker.output());
    assert_eq!(produce(&mut c, "eight", batch(10, 100)), 0);
    // The request that creates __consumer_offsets answers 15 (as Kafka's
    // does); the next one finds the coordinator.
    let fc = c.send(3, &FindCoordinatorRequest::default().with_key(sb("g")));
    assert_eq!(fc.error_code, 15, "{fc:?}");
    let fc = c.send(3, &FindCoordinatorRequest::default().with_key(sb("g")));
    assert_eq!(fc.error_code, 0, "{fc:?}");
    assert!(broker.is_running());
    let out = broker.output();
    assert!(!out.contains("panicked"), "{out}");
    drop(c);
    drop(broker);
    std::fs::remove_file(filler).unwrap();
}

#[test]
fn running_out_of_descriptors_is_refused_with_a_warning_and_serving_goes_on() {
    // The binary under `ulimit -n 256` (soft and hard: it cannot raise it).
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("sluice-256");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nulimit -n 256 || exit 99\nexec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_sluice")
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    let broker = SluiceProcess::start(&wrapper, &[]).expect("sluice starts");
    let mut c = RawClient::connect(broker.bootstrap());
    assert_eq!(create(&mut c, "first", 1), 0);
    assert_eq!(produce(&mut c, "first", batch(5, 100)), 0);
    // One descriptor per partition: well over 150 fit in 256.
    let mut created = 0;
    let mut refused = None;
    for t in 0..64 {
        match create(&mut c, &format!("t{t}"), 8) {
            0 => created += 8,
            code => {
                refused = Some(code);
                break;
            }
        }
    }
    eprintln!("{created} partitions created under ulimit -n 256");
    assert_eq!(refused, Some(KAFKA_STORAGE_ERROR), "created {created}");
    assert!(
        created >= 150,
        "only {created} partitions in 256 descriptors"
    );
    let out = broker.output();
    let warn = out
        .lines()
        .find(|l| l.contains("WARN") && l.contains("out of file descriptors"))
        .unwrap_or_else(|| panic!("no WARN line:\n{out}"));
    assert!(warn.contains("limit=256"), "{warn}");
    assert!(warn.contains("open="), "{warn}");
    // Still serving: appends to and reads from an existing partition.
    assert_eq!(
        produce(&mut c, "first", batch(5, 100)),
        0,
        "{}",
        broker.output()
    );
    let (code, bytes) = fetch(&mut c, "first", 0);
    assert_eq!(code, 0);
    assert!(bytes > 0);
}

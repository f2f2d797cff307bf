//! The harness end to end against its own sink broker: a real librdkafka producer
//! creates a topic and gets every record acknowledged, and `sluice-bench run` in
//! quick mode produces a result file with the client ceiling and machine ceilings.
//! Nothing here asserts a speed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

struct Sink(Child, String);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink() -> Sink {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(["sink", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sink");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on PLAINTEXT://")
        .unwrap_or_else(|| panic!("unexpected sink output {line:?}"))
        .to_string();
    Sink(child, addr)
}

#[test]
fn librdkafka_creates_a_topic_and_gets_every_record_acknowledged_by_the_sink() {
    let sink = start_sink();
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &sink.1)
        .set("linger.ms", "1")
        .set("acks", "1");
    let admin: AdminClient<DefaultClientContext> = cfg.create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let topic = NewTopic::new("t", 4, TopicReplication::Fixed(1));
    let res = rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let again = rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .unwrap();
    assert!(
        again[0].is_err(),
        "second CreateTopics must report TOPIC_ALREADY_EXISTS"
    );

    let producer: BaseProducer = cfg.create().unwrap();
    let md = producer
        .client()
        .fetch_metadata(Some("t"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 4);
    let payload = vec![1u8; 1000];
    for i in 0..2000 {
        loop {
            match producer.send(
                BaseRecord::<(), [u8]>::to("t")
                    .partition(i % 4)
                    .payload(&payload),
            ) {
                Ok(()) => break,
                Err(_) => producer.poll(Duration::from_millis(5)),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("all records acknowledged");
    assert_eq!(producer.in_flight_count(), 0);
}

#[test]
fn quick_run_against_the_sink_writes_results_with_ceilings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(["run", "--quick", "--targets", "sink", "--work-dir"])
        .arg(dir.path().join("work"))
        .arg("--out-dir")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("latest-quick.json")).unwrap())
            .unwrap();
    let stats = &json["stats"];
    for m in ["loopback TCP", "disk write buffered+fdatasync"] {
        assert!(
            stats["ceiling"][m]["sink"]["median"].as_f64().unwrap() > 0.0,
            "{m}"
        );
    }
    let p = &stats["produce acks=1 1 KiB × 8p"]["throughput"]["sink"];
    assert!(p["median"].as_f64().unwrap() > 0.0, "{p}");
    assert_eq!(
        json["failures"].as_array().unwrap().len(),
        0,
        "{}",
        json["failures"]
    );
    assert!(std::fs::read_to_string(out.join("latest-quick.md"))
        .unwrap()
        .contains("| scenario |"));
}

mod common;
use common::{sb, RawClient};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::*;
use sluice_testkit::ReferenceKafka;

#[test]
fn scratch() {
    let kafka = ReferenceKafka::start().unwrap().unwrap();
    let mut c = RawClient::connect(&kafka.bootstrap());
    for _ in 0..100 {
        let r = c.send(4, &FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![sb("g")]));
        let code = r.coordinators[0].error_code;
        eprintln!("find coordinator code {code}");
        if code == 0 { break; }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let resp = c.send(6, &DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_name(Some(TopicName(sb("__consumer_offsets"))))]).with_timeout_ms(30000));
    eprintln!("DELETE internal: {:?}", resp.responses.iter().map(|r| (r.error_code, r.error_message.clone())).collect::<Vec<_>>());
}

//! Refusing invalid connection limits as Kafka's dynamic broker config
//! validation does (issue 21): `listener.name.<l>.max.connections` and
//! `listener.name.<l>.max.connection.creation.rate` below 1 are refused by
//! Kafka's `ListenerConnectionQuota.validateReconfiguration` ("Invalid
//! max.connections 0"), while a broker-wide `max.connections` of 0 passes
//! (its `SocketServer.validateReconfiguration` checks nothing), and
//! values that are not numbers or below the keys' minimum fail the type
//! check. Each change is sent with `validate_only`, per broker and as the
//! cluster default, and the answers (error code and message) are compared
//! with Kafka 4.1.2's, recorded in
//! `tests/fixtures/connection_limit_configs.txt` (Kafka runs again in the
//! full suite, see `common::transcript`).

mod common;

use common::{sb, transcript, RawClient};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use sluice_testkit::ReferenceKafka;

/// Kafka's `ConfigResource.Type.BROKER`.
const BROKER: i8 = 4;
/// `AlterConfigOp.OpType.SET`.
const SET: i8 = 0;

const CASES: &[(&str, &str)] = &[
    ("listener.name.plaintext.max.connections", "0"),
    ("listener.name.plaintext.max.connections", "-1"),
    ("listener.name.plaintext.max.connections", "many"),
    ("listener.name.plaintext.max.connections", "5"),
    ("listener.name.plaintext.max.connection.creation.rate", "0"),
    ("listener.name.plaintext.max.connection.creation.rate", "10"),
    ("max.connections", "0"),
    ("max.connections", "-1"),
    ("max.connection.creation.rate", "0"),
];

fn alter(c: &mut RawClient, broker: &str, key: &str, value: &str) -> String {
    let resp: IncrementalAlterConfigsResponse = c.send(
        1,
        &IncrementalAlterConfigsRequest::default()
            .with_validate_only(true)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(sb(broker))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(sb(key))
                    .with_config_operation(SET)
                    .with_value(Some(sb(value)))])]),
    );
    let r = &resp.responses[0];
    format!(
        "broker '{broker}' {key}={value}: code {} {:?}",
        r.error_code,
        r.error_message.as_deref()
    )
}

fn scenario(bootstrap: &str) -> Vec<String> {
    let mut c = RawClient::connect(bootstrap);
    let mut out = Vec::new();
    for broker in ["1", ""] {
        for (key, value) in CASES {
            out.push(alter(&mut c, broker, key, value));
        }
    }
    out
}

#[test]
fn invalid_connection_limits_are_refused_as_kafka_refuses_them() {
    let broker = common::start(&[]);
    let sluice = scenario(broker.bootstrap());
    drop(broker);
    let kafka = || {
        let kafka = ReferenceKafka::start()
            .expect("reference Kafka starts")
            .expect("java and the jars are here");
        let answers = scenario(&kafka.bootstrap());
        kafka.stop();
        transcript::lines(&answers)
    };
    transcript::same_as_kafka(
        "connection_limit_configs",
        &transcript::lines(&sluice),
        kafka,
    );
}

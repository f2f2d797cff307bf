//! Kafka's filter semantics over a fixed set of entities.

use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use sluice_metadata::delta::MetadataDelta;
use sluice_metadata::record::{ClientQuotaRecord, EntityData as RecordEntity};
use sluice_metadata::{MetadataImage, MetadataRecord};

use super::*;

/// user=alice; user=alice+client-id=app; user default; client-id=app;
/// client-id default; user default+client-id default; ip=1.2.3.4.
fn image() -> MetadataImage {
    let entities: &[&[(&str, Option<&str>)]] = &[
        &[("user", Some("alice"))],
        &[("user", Some("alice")), ("client-id", Some("app"))],
        &[("user", None)],
        &[("client-id", Some("app"))],
        &[("client-id", None)],
        &[("user", None), ("client-id", None)],
        &[("ip", Some("1.2.3.4"))],
    ];
    let mut d = MetadataDelta::new(MetadataImage::empty());
    for (i, e) in entities.iter().enumerate() {
        let key = if e[0].0 == "ip" {
            "connection_creation_rate"
        } else {
            "producer_byte_rate"
        };
        d.replay_record(&MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: e
                .iter()
                .map(|(t, n)| RecordEntity {
                    entity_type: (*t).into(),
                    entity_name: n.map(Into::into),
                })
                .collect(),
            key: key.into(),
            value: (i + 1) as f64,
            remove: false,
        }))
        .unwrap();
    }
    d.apply().0
}

fn component(t: &str, match_type: i8, name: Option<&str>) -> ComponentData {
    ComponentData::default()
        .with_entity_type(StrBytes::from_string(t.into()))
        .with_match_type(match_type)
        .with_match(name.map(|n| StrBytes::from_string(n.into())))
}

/// The values of the entries matched (each entity has one distinct value).
fn found(components: Vec<ComponentData>, strict: bool) -> Vec<f64> {
    let req = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(strict);
    let mut v: Vec<f64> = describe(&req, image().client_quotas())
        .unwrap()
        .iter()
        .map(|e| e.values[0].value)
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn refusal(components: Vec<ComponentData>) -> (i16, String) {
    let req = DescribeClientQuotasRequest::default().with_components(components);
    let (code, message) = describe(&req, image().client_quotas()).unwrap_err();
    (code.code(), message)
}

#[test]
fn exact_default_and_specified_matches() {
    // No component: everything, unless strict (then only the empty entity: none).
    assert_eq!(
        found(vec![], false),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    );
    assert!(found(vec![], true).is_empty());
    // kafka-configs --describe --entity-type users --entity-name alice.
    let alice = || component("user", MATCH_TYPE_EXACT, Some("alice"));
    assert_eq!(found(vec![alice()], true), vec![1.0]);
    assert_eq!(found(vec![alice()], false), vec![1.0, 2.0]);
    // --entity-default for users.
    let default_user = || component("user", MATCH_TYPE_DEFAULT, None);
    assert_eq!(found(vec![default_user()], true), vec![3.0]);
    assert_eq!(found(vec![default_user()], false), vec![3.0, 6.0]);
    // Any user (kafka-configs --describe --entity-type users).
    let any_user = || component("user", MATCH_TYPE_SPECIFIED, None);
    assert_eq!(found(vec![any_user()], true), vec![1.0, 3.0]);
    assert_eq!(found(vec![any_user()], false), vec![1.0, 2.0, 3.0, 6.0]);
    // user + client-id pairs.
    let any_client = || component("client-id", MATCH_TYPE_SPECIFIED, None);
    assert_eq!(found(vec![any_user(), any_client()], true), vec![2.0, 6.0]);
    assert_eq!(
        found(
            vec![
                alice(),
                component("client-id", MATCH_TYPE_EXACT, Some("app"))
            ],
            true
        ),
        vec![2.0]
    );
    assert_eq!(
        found(vec![component("ip", MATCH_TYPE_SPECIFIED, None)], true),
        vec![7.0]
    );
    assert!(found(
        vec![component("user", MATCH_TYPE_EXACT, Some("bob"))],
        false
    )
    .is_empty());
}

#[test]
fn malformed_filters_get_kafkas_errors() {
    assert_eq!(
        refusal(vec![component("", 0, Some("x"))]).1,
        "Invalid empty entity type."
    );
    assert_eq!(
        refusal(vec![component("user", 2, None), component("user", 1, None)]).1,
        "Entity type user cannot appear more than once in the filter."
    );
    let (code, message) = refusal(vec![component("group", 2, None)]);
    assert_eq!(
        (code, message.as_str()),
        (35, "Unsupported entity type group")
    );
    assert_eq!(
        refusal(vec![component("user", 0, None)]).1,
        "Request specified MATCH_TYPE_EXACT, but set match string to null."
    );
    assert_eq!(
        refusal(vec![component("user", 1, Some("a"))]).1,
        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
    );
    assert_eq!(
        refusal(vec![component("user", 2, Some("a"))]).1,
        "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
    );
    assert_eq!(
        refusal(vec![component("user", 7, None)]).1,
        "Unknown match type 7"
    );
    let (code, message) = refusal(vec![component("ip", 2, None), component("user", 2, None)]);
    assert_eq!(code, 42);
    assert!(message.starts_with("Invalid entity filter component combination."));
}

//! AlterClientQuotas: Kafka's `ClientQuotaControlManager` checks and
//! words, records only for changes, answers after commit.

use super::super::quotas::plan;
use super::*;
use sluice_metadata::image::{ClientQuotaEntity, ClientQuotas};

fn alteration(entity: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> QuotaAlteration {
    QuotaAlteration {
        entity: entity
            .iter()
            .map(|(t, n)| ((*t).to_owned(), n.map(str::to_owned)))
            .collect(),
        ops: ops.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    }
}

fn message(r: &Result<(), ControllerError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(ControllerError::InvalidRequest(m)) => m.clone(),
        Err(e) => panic!("not INVALID_REQUEST: {e:?}"),
    }
}

#[test]
fn kafkas_checks_and_messages() {
    let user = [("user", Some("alice"))];
    let cases: Vec<(QuotaAlteration, &str)> = vec![
        (alteration(&[], &[("producer_byte_rate", Some(1.0))]), "Invalid empty client quota entity"),
        (
            alteration(&[("group", Some("g"))], &[]),
            "Unhandled client quota entity type: group",
        ),
        (
            alteration(&[("ip", None), ("user", None)], &[]),
            "Invalid quota entity combination, IP entity should not be combined with User or ClientId",
        ),
        (
            alteration(&[("ip", Some("not an ip"))], &[]),
            "not an ip is not a valid IP or resolvable host.",
        ),
        (
            alteration(&[("client-id", Some(""))], &[]),
            "Empty client-id not supported",
        ),
        (alteration(&user, &[("bogus", Some(1.0))]), "Invalid configuration key bogus"),
        (
            alteration(&[("ip", Some("10.0.0.1"))], &[("producer_byte_rate", Some(1.0))]),
            "Invalid configuration key producer_byte_rate",
        ),
        (
            alteration(&[("user", None)], &[("producer_byte_rate", Some(0.0))]),
            "Quota producer_byte_rate must be greater than 0",
        ),
        (
            alteration(&[("client-id", None)], &[("consumer_byte_rate", Some(1.5))]),
            "consumer_byte_rate cannot be a fractional value.",
        ),
        (
            alteration(&[("ip", None)], &[("connection_creation_rate", Some(3e9))]),
            "Proposed value for connection_creation_rate is too large for an INT.",
        ),
        (
            alteration(&[("user", Some("b"))], &[("request_percentage", Some(f64::NAN))]),
            "Quota request_percentage must be greater than 0",
        ),
        (
            alteration(
                &[("user", Some("c"))],
                &[("request_percentage", Some(1.0)), ("request_percentage", None)],
            ),
            "Duplicate quota key request_percentage not updating quota for this entity {user=c}",
        ),
    ];
    for (a, want) in cases {
        let (records, results) = plan(std::slice::from_ref(&a), &ClientQuotas::default());
        assert!(records.is_empty(), "{a:?}");
        assert_eq!(results.len(), 1);
        assert_eq!(message(&results[0].1), want, "{a:?}");
    }
}

#[test]
fn duplicate_entities_are_refused_whole_and_others_commit() {
    let a = alteration(
        &[("user", Some("a")), ("client-id", Some("x"))],
        &[("producer_byte_rate", Some(100.0))],
    );
    let same = alteration(
        &[("client-id", Some("x")), ("user", Some("a"))],
        &[("consumer_byte_rate", Some(100.0))],
    );
    let other = alteration(
        &[("ip", Some("::1"))],
        &[("connection_creation_rate", Some(5.0))],
    );
    let (records, results) = plan(&[a, other, same], &ClientQuotas::default());
    assert_eq!(results.len(), 2);
    assert_eq!(
        message(&results[0].1),
        "Ignoring duplicate entity {user=a, client-id=x}"
    );
    assert_eq!(message(&results[1].1), "ok");
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn quotas_commit_change_only_what_differs_and_validate_only_writes_nothing() {
    let f = three_brokers().await;
    let alice = [("user", Some("alice"))];
    let entity = ClientQuotaEntity::from_pairs(alice.iter().copied()).unwrap();
    let set = alteration(
        &alice,
        &[
            ("producer_byte_rate", Some(1024.0)),
            ("request_percentage", Some(12.5)),
        ],
    );
    let before = f.log.batches().len();
    let res =
        f.c.alter_client_quotas(vec![set.clone()], true)
            .await
            .unwrap();
    assert_eq!(message(&res[0].1), "ok");
    assert_eq!(f.log.batches().len(), before);
    assert!(f.c.image().client_quotas().is_empty());

    let res =
        f.c.alter_client_quotas(vec![set.clone()], false)
            .await
            .unwrap();
    assert_eq!(message(&res[0].1), "ok");
    let image = f.c.image();
    assert_eq!(
        image.client_quotas().value(&entity, "producer_byte_rate"),
        Some(1024.0)
    );
    assert_eq!(
        image.client_quotas().value(&entity, "request_percentage"),
        Some(12.5)
    );
    let offset = image.provenance().last_offset;

    // The same values again: nothing to write.
    let (records, _) = plan(std::slice::from_ref(&set), image.client_quotas());
    assert!(records.is_empty());

    // A removal and a change commit together.
    let change = alteration(
        &alice,
        &[
            ("producer_byte_rate", None),
            ("request_percentage", Some(50.0)),
            ("consumer_byte_rate", None),
        ],
    );
    let (records, _) = plan(std::slice::from_ref(&change), image.client_quotas());
    assert_eq!(records.len(), 2);
    f.c.alter_client_quotas(vec![change], false).await.unwrap();
    let image = f.c.image();
    assert!(image.provenance().last_offset > offset);
    assert_eq!(image.client_quotas().get(&entity).map(|v| v.len()), Some(1));
}

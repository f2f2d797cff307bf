//! Kafka's precedence, checked against every subset of the eight levels.

use proptest::prelude::*;
use sluice_metadata::delta::MetadataDelta;
use sluice_metadata::record::{ClientQuotaRecord, EntityData};
use sluice_metadata::{MetadataImage, MetadataRecord};

use super::*;

const KEY: &str = "producer_byte_rate";

/// Level `i` (1-based, Kafka's order) for user "alice" and client "app".
fn level(i: usize) -> Vec<(&'static str, Option<&'static str>)> {
    let (user, default) = (Some("alice"), None);
    let (client, default_client) = (Some("app"), None);
    match i {
        1 => vec![("user", user), ("client-id", client)],
        2 => vec![("user", user), ("client-id", default_client)],
        3 => vec![("user", user)],
        4 => vec![("user", default), ("client-id", client)],
        5 => vec![("user", default), ("client-id", default_client)],
        6 => vec![("user", default)],
        7 => vec![("client-id", client)],
        8 => vec![("client-id", default_client)],
        _ => unreachable!(),
    }
}

fn image(levels: &[usize], others: bool) -> MetadataImage {
    let mut d = MetadataDelta::new(MetadataImage::empty());
    let mut set = |pairs: Vec<(&str, Option<&str>)>, key: &str, value: f64| {
        d.replay_record(&MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: pairs
                .into_iter()
                .map(|(t, n)| EntityData {
                    entity_type: t.into(),
                    entity_name: n.map(Into::into),
                })
                .collect(),
            key: key.into(),
            value,
            remove: false,
        }))
        .unwrap();
    };
    for &l in levels {
        set(level(l), KEY, l as f64 * 100.0);
        // Another key on the same entity never counts for KEY.
        set(level(l), "consumer_byte_rate", 1.0);
    }
    if others {
        // Quotas of other users and clients never apply.
        set(vec![("user", Some("bob"))], KEY, 1.0);
        set(vec![("client-id", Some("other"))], KEY, 1.0);
        set(
            vec![("user", Some("bob")), ("client-id", Some("app"))],
            KEY,
            1.0,
        );
        set(vec![("ip", None)], "connection_creation_rate", 1.0);
    }
    d.apply().0
}

fn group(user: &str, client_id: &str) -> QuotaGroup {
    QuotaGroup {
        user: user.into(),
        client_id: client_id.into(),
    }
}

#[test]
fn each_level_alone_and_its_group() {
    let want = [
        group("alice", "app"),
        group("alice", "app"),
        group("alice", ""),
        group("alice", "app"),
        group("alice", "app"),
        group("alice", ""),
        group("", "app"),
        group("", "app"),
    ];
    for (i, g) in want.into_iter().enumerate() {
        let img = image(&[i + 1], true);
        let r = resolve(img.client_quotas(), KEY, "alice", "app").unwrap();
        assert_eq!(r.limit, (i + 1) as f64 * 100.0, "level {}", i + 1);
        assert_eq!(r.group, g, "level {}", i + 1);
    }
    assert_eq!(
        resolve(image(&[], true).client_quotas(), KEY, "alice", "app"),
        None
    );
    assert_eq!(
        resolve(
            image(&[1, 2, 3], false).client_quotas(),
            "request_percentage",
            "alice",
            "app"
        ),
        None
    );
}

proptest! {
    /// With any set of levels configured, the first in Kafka's order wins.
    #[test]
    fn the_first_level_in_kafkas_order_wins(
        levels in proptest::sample::subsequence((1..=8).collect::<Vec<usize>>(), 0..=8),
        others in any::<bool>(),
    ) {
        let img = image(&levels, others);
        let got = resolve(img.client_quotas(), KEY, "alice", "app").map(|r| r.limit);
        let want = levels.iter().min().map(|&l| l as f64 * 100.0);
        prop_assert_eq!(got, want);
    }
}

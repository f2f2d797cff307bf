//! Replay of `ClientQuotaRecord` (Kafka's `ClientQuotasDelta`): the entity
//! must be one Kafka's controller accepts
//! ([`ClientQuotaEntity::from_pairs`]) and the key non-empty; a removal of
//! a key the entity does not have changes nothing, as in Kafka.

use super::MetadataDelta;
use crate::error::MetadataError;
use crate::image::ClientQuotaEntity;
use crate::record::ClientQuotaRecord;

impl MetadataDelta {
    pub(super) fn client_quota(&mut self, r: &ClientQuotaRecord) -> Result<(), MetadataError> {
        let entity = ClientQuotaEntity::from_pairs(
            r.entity
                .iter()
                .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
        )?;
        if r.key.is_empty() {
            return Err(MetadataError::Malformed("empty client quota key"));
        }
        let base = &self.base;
        let quotas = self.quotas.get_or_insert_with(|| (*base.quotas).clone());
        if r.remove {
            quotas.remove(&entity, &r.key);
        } else {
            quotas.set(entity, r.key.clone(), r.value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::delta::MetadataDelta;
    use crate::image::{ClientQuotaEntity, MetadataImage};
    use crate::record::{ClientQuotaRecord, EntityData, MetadataRecord};

    fn quota(entity: &[(&str, Option<&str>)], key: &str, value: Option<f64>) -> MetadataRecord {
        MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity: entity
                .iter()
                .map(|(t, n)| EntityData {
                    entity_type: (*t).into(),
                    entity_name: n.map(Into::into),
                })
                .collect(),
            key: key.into(),
            value: value.unwrap_or(0.0),
            remove: value.is_none(),
        })
    }

    #[test]
    fn quotas_are_set_removed_and_snapshotted() {
        let alice = [("user", Some("alice"))];
        let alice_app = [("client-id", Some("app")), ("user", Some("alice"))];
        let default_client = [("client-id", None)];
        let mut d = MetadataDelta::new(MetadataImage::empty());
        d.replay_record(&quota(&alice, "producer_byte_rate", Some(1024.0)))
            .unwrap();
        d.replay_record(&quota(&alice_app, "consumer_byte_rate", Some(2048.0)))
            .unwrap();
        d.replay_record(&quota(&default_client, "request_percentage", Some(50.0)))
            .unwrap();
        // Entities Kafka's controller refuses do not replay.
        assert!(d.replay_record(&quota(&[], "k", Some(1.0))).is_err());
        assert!(d
            .replay_record(&quota(&[("ip", None), ("user", None)], "k", Some(1.0)))
            .is_err());
        assert!(d.replay_record(&quota(&alice, "", Some(1.0))).is_err());
        let (image, changes) = d.apply();
        assert!(changes.quotas_changed);
        let q = image.client_quotas();
        assert_eq!(q.len(), 3);
        let e = |pairs: &[(&str, Option<&str>)]| {
            ClientQuotaEntity::from_pairs(pairs.iter().copied()).unwrap()
        };
        // The order of the pairs does not matter.
        assert_eq!(
            q.value(
                &e(&[("user", Some("alice")), ("client-id", Some("app"))]),
                "consumer_byte_rate"
            ),
            Some(2048.0)
        );

        let mut d = MetadataDelta::new(image.clone());
        d.replay_record(&quota(&alice, "producer_byte_rate", None))
            .unwrap();
        // Removing what is not there changes nothing.
        d.replay_record(&quota(&alice, "consumer_byte_rate", None))
            .unwrap();
        d.replay_record(&quota(&default_client, "request_percentage", Some(25.0)))
            .unwrap();
        let (next, _) = d.apply();
        assert!(next.client_quotas().get(&e(&alice)).is_none());
        assert_eq!(
            next.client_quotas()
                .value(&e(&default_client), "request_percentage"),
            Some(25.0)
        );
        // The base image is untouched, and a snapshot recreates the image.
        assert_eq!(
            image
                .client_quotas()
                .value(&e(&alice), "producer_byte_rate"),
            Some(1024.0)
        );
        let again =
            MetadataImage::from_snapshot(&next.write_snapshot(), next.provenance()).unwrap();
        assert_eq!(again, next);
        assert_ne!(next, image);
    }
}

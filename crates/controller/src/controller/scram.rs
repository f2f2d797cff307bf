//! AlterUserScramCredentials, as Kafka's `ScramControlManager` validates
//! and plans it: per user, at most one alteration in a request (else
//! DUPLICATE_RESOURCE for that user), a non-empty name, a known mechanism,
//! iterations in 4096..=16384, and deletions only of existing credentials.
//! An upsertion carries the client's salt and salted password; the record
//! keeps the derived StoredKey and ServerKey, never the salted password.
//! Valid alterations are committed together; every user gets one result.

use std::collections::BTreeMap;

use sluice_auth::sasl::{ScramCredential, ScramMechanism};
use sluice_metadata::record::{RemoveUserScramCredentialRecord, UserScramCredentialRecord};
use sluice_metadata::MetadataRecord;

use super::QuorumController;
use crate::error::ControllerError;

/// Kafka's `ScramControlManager.MAX_ITERATIONS`.
pub const MAX_SCRAM_ITERATIONS: i32 = 16384;

/// One credential to set.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramUpsertion {
    pub name: String,
    /// Kafka's mechanism id (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512).
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for ScramUpsertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramUpsertion")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// One credential to remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramDeletion {
    pub name: String,
    pub mechanism: i8,
}

/// The outcome for each user named in a request, in user-name order.
pub type ScramResults = Vec<(String, Result<(), ControllerError>)>;

const TWICE: &str = "A user credential cannot be altered twice in the same request";

fn check_name_and_mechanism(name: &str, mechanism: i8) -> Result<ScramMechanism, ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::UnacceptableCredential(
            "Username must not be empty".into(),
        ));
    }
    ScramMechanism::from_type_id(mechanism)
        .ok_or_else(|| ControllerError::UnsupportedSaslMechanism("Unknown SCRAM mechanism".into()))
}

/// The records and per-user results of one request against `exists`
/// (whether a credential is in the committed image).
pub(super) fn plan(
    upsertions: Vec<ScramUpsertion>,
    deletions: Vec<ScramDeletion>,
    exists: impl Fn(&str, i8) -> bool,
) -> (Vec<MetadataRecord>, ScramResults) {
    let mut errors: BTreeMap<String, ControllerError> = BTreeMap::new();
    let mut to_delete: BTreeMap<String, ScramDeletion> = BTreeMap::new();
    let mut to_upsert: BTreeMap<String, ScramUpsertion> = BTreeMap::new();
    for d in deletions {
        if errors.contains_key(&d.name) {
            continue;
        }
        if to_delete.remove(&d.name).is_some() {
            errors.insert(d.name, ControllerError::DuplicateResource(TWICE.into()));
            continue;
        }
        let checked = check_name_and_mechanism(&d.name, d.mechanism).and_then(|_| {
            if exists(&d.name, d.mechanism) {
                Ok(())
            } else {
                Err(ControllerError::ResourceNotFound(
                    "Attempt to delete a user credential that does not exist".into(),
                ))
            }
        });
        match checked {
            Ok(()) => {
                to_delete.insert(d.name.clone(), d);
            }
            Err(e) => {
                errors.insert(d.name, e);
            }
        }
    }
    for u in upsertions {
        if errors.contains_key(&u.name) {
            continue;
        }
        if to_delete.remove(&u.name).is_some() || to_upsert.remove(&u.name).is_some() {
            errors.insert(u.name, ControllerError::DuplicateResource(TWICE.into()));
            continue;
        }
        let checked = check_name_and_mechanism(&u.name, u.mechanism).and_then(|m| {
            if u.iterations < m.min_iterations() as i32 {
                Err(ControllerError::UnacceptableCredential(
                    "Too few iterations".into(),
                ))
            } else if u.iterations > MAX_SCRAM_ITERATIONS {
                Err(ControllerError::UnacceptableCredential(
                    "Too many iterations".into(),
                ))
            } else {
                Ok(())
            }
        });
        match checked {
            Ok(()) => {
                to_upsert.insert(u.name.clone(), u);
            }
            Err(e) => {
                errors.insert(u.name, e);
            }
        }
    }
    let mut records = Vec::new();
    let mut results: BTreeMap<String, Result<(), ControllerError>> = BTreeMap::new();
    for (name, d) in to_delete {
        records.push(MetadataRecord::RemoveUserScramCredential(
            RemoveUserScramCredentialRecord {
                name: name.clone(),
                mechanism: d.mechanism,
            },
        ));
        results.insert(name, Ok(()));
    }
    for (name, u) in to_upsert {
        let mechanism = ScramMechanism::from_type_id(u.mechanism).expect("checked above");
        let c = ScramCredential::from_salted_password(
            mechanism,
            &u.salt,
            &u.salted_password,
            u.iterations as u32,
        );
        records.push(MetadataRecord::UserScramCredential(
            UserScramCredentialRecord {
                name: name.clone(),
                mechanism: u.mechanism,
                salt: c.salt,
                stored_key: c.stored_key,
                server_key: c.server_key,
                iterations: u.iterations,
            },
        ));
        results.insert(name, Ok(()));
    }
    results.extend(errors.into_iter().map(|(n, e)| (n, Err(e))));
    (records, results.into_iter().collect())
}

impl QuorumController {
    /// AlterUserScramCredentials: the valid alterations are committed
    /// together, and each user named gets its result.
    pub async fn alter_user_scram_credentials(
        &self,
        upsertions: Vec<ScramUpsertion>,
        deletions: Vec<ScramDeletion>,
    ) -> Result<ScramResults, ControllerError> {
        self.submit(move |ctx| {
            let image = ctx.image;
            Ok(plan(upsertions, deletions, |name, m| {
                image.scram_credential(name, m).is_some()
            }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(name: &str, mechanism: i8, iterations: i32) -> ScramUpsertion {
        ScramUpsertion {
            name: name.into(),
            mechanism,
            iterations,
            salt: b"salt".to_vec(),
            salted_password: vec![9; 32],
        }
    }

    fn del(name: &str, mechanism: i8) -> ScramDeletion {
        ScramDeletion {
            name: name.into(),
            mechanism,
        }
    }

    #[test]
    fn kafkas_validation() {
        let (records, results) = plan(
            vec![
                up("alice", 1, 4096),
                up("few", 1, 4095),
                up("many", 2, 16385),
                up("", 1, 8192),
                up("mech", 3, 8192),
                up("twice", 1, 4096),
                up("twice", 2, 4096),
                up("both", 1, 4096),
            ],
            vec![del("bob", 1), del("ghost", 1), del("both", 1)],
            |name, m| name == "bob" && m == 1 || name == "both",
        );
        let by_name: BTreeMap<_, _> = results.into_iter().collect();
        assert!(by_name["alice"].is_ok());
        assert!(by_name["bob"].is_ok());
        let err = |n: &str| by_name[n].as_ref().unwrap_err().to_string();
        assert_eq!(err("few"), "Too few iterations");
        assert_eq!(err("many"), "Too many iterations");
        assert_eq!(err(""), "Username must not be empty");
        assert_eq!(err("mech"), "Unknown SCRAM mechanism");
        assert_eq!(err("twice"), TWICE);
        assert_eq!(err("both"), TWICE);
        assert_eq!(
            err("ghost"),
            "Attempt to delete a user credential that does not exist"
        );
        assert_eq!(records.len(), 2);
        let MetadataRecord::UserScramCredential(r) = &records[1] else {
            panic!("{records:?}")
        };
        // StoredKey and ServerKey derive from the salted password.
        let c =
            ScramCredential::from_salted_password(ScramMechanism::Sha256, b"salt", &[9; 32], 4096);
        assert_eq!(r.stored_key, c.stored_key);
        assert_eq!(r.server_key, c.server_key);
    }
}

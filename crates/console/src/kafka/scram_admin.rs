//! Setting and deleting a user's SCRAM credential
//! (AlterUserScramCredentials). The password is salted here with a fresh
//! random salt and only the salted password goes to the cluster, as
//! Kafka's admin client does; the console keeps nothing.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::AlterUserScramCredentialsRequest;
use sluice_auth::sasl::ScramMechanism;
use sluice_client::str_bytes;

use super::{kafka_error, Session};
use crate::ConsoleError;

const ALTER_SCRAM_VERSIONS: (i16, i16) = (0, 0);
/// Kafka's default and the least it accepts.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// The mechanism of a name (`SCRAM-SHA-256` or `SCRAM-SHA-512`).
pub fn mechanism(name: &str) -> Result<ScramMechanism, ConsoleError> {
    ScramMechanism::from_mechanism_name(name.trim())
        .ok_or_else(|| ConsoleError::BadRequest(format!("unknown SCRAM mechanism {name:?}")))
}

/// Sets (or replaces) `user`'s credential for `m`.
pub fn upsert(
    session: &mut Session,
    user: &str,
    m: ScramMechanism,
    password: &str,
    iterations: u32,
) -> Result<(), ConsoleError> {
    if !(m.min_iterations()..=m.max_iterations()).contains(&iterations) {
        return Err(ConsoleError::BadRequest(format!(
            "iterations: {} to {} for {}",
            m.min_iterations(),
            m.max_iterations(),
            m.mechanism_name()
        )));
    }
    let salt = sluice_runtime::random_bytes::<32>();
    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
    let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(str_bytes(user))
            .with_mechanism(m.type_id())
            .with_iterations(iterations as i32)
            .with_salt(Bytes::copy_from_slice(&salt))
            .with_salted_password(Bytes::from(salted)),
    ]);
    send(session, user, &req)
}

/// Deletes `user`'s credential for `m`.
pub fn delete(session: &mut Session, user: &str, m: ScramMechanism) -> Result<(), ConsoleError> {
    let req = AlterUserScramCredentialsRequest::default().with_deletions(vec![
        ScramCredentialDeletion::default()
            .with_name(str_bytes(user))
            .with_mechanism(m.type_id()),
    ]);
    send(session, user, &req)
}

fn send(
    session: &mut Session,
    user: &str,
    req: &AlterUserScramCredentialsRequest,
) -> Result<(), ConsoleError> {
    let (_, resp) = session.send(req, ALTER_SCRAM_VERSIONS)?;
    for r in resp.results {
        if r.error_code != 0 {
            return Err(kafka_error(
                format!("SCRAM credential of {user:?}"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

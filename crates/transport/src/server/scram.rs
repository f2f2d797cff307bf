//! AlterUserScramCredentials on the controller listener (a broker forwards
//! its clients' requests here, as Kafka's brokers do), and the conversions
//! both sides of the wire share.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_controller::{QuorumController, ScramDeletion, ScramResults, ScramUpsertion};
use sluice_protocol::kafka_protocol;

use super::check_active;
use crate::codes::{controller_error_code, controller_error_from_code};

/// The domain alterations of a request.
pub fn from_request(
    r: &AlterUserScramCredentialsRequest,
) -> (Vec<ScramUpsertion>, Vec<ScramDeletion>) {
    let upsertions = r
        .upsertions
        .iter()
        .map(|u| ScramUpsertion {
            name: u.name.to_string(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        })
        .collect();
    let deletions = r
        .deletions
        .iter()
        .map(|d| ScramDeletion {
            name: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    (upsertions, deletions)
}

/// The wire request of domain alterations.
pub fn to_request(
    upsertions: &[ScramUpsertion],
    deletions: &[ScramDeletion],
) -> AlterUserScramCredentialsRequest {
    AlterUserScramCredentialsRequest::default()
        .with_upsertions(
            upsertions
                .iter()
                .map(|u| {
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(u.name.clone()))
                        .with_mechanism(u.mechanism)
                        .with_iterations(u.iterations)
                        .with_salt(u.salt.clone().into())
                        .with_salted_password(u.salted_password.clone().into())
                })
                .collect(),
        )
        .with_deletions(
            deletions
                .iter()
                .map(|d| {
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(d.name.clone()))
                        .with_mechanism(d.mechanism)
                })
                .collect(),
        )
}

/// The wire response of per-user results.
pub fn to_response(results: &ScramResults) -> AlterUserScramCredentialsResponse {
    AlterUserScramCredentialsResponse::default().with_results(
        results
            .iter()
            .map(|(user, r)| {
                let (code, message) = match r {
                    Ok(()) => (0, None),
                    Err(e) => (
                        controller_error_code(e),
                        Some(StrBytes::from_string(e.to_string())),
                    ),
                };
                AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()))
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect(),
    )
}

/// Per-user results of a wire response.
pub fn from_response(resp: &AlterUserScramCredentialsResponse) -> ScramResults {
    resp.results
        .iter()
        .map(|r| {
            let result = match controller_error_from_code(
                r.error_code,
                r.error_message.as_deref(),
                &Default::default(),
            ) {
                None => Ok(()),
                Some(e) => Err(e),
            };
            (r.user.to_string(), result)
        })
        .collect()
}

pub(super) async fn alter(
    c: &QuorumController,
    r: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let (upsertions, deletions) = from_request(&r);
    let names: Vec<String> = upsertions
        .iter()
        .map(|u| u.name.clone())
        .chain(deletions.iter().map(|d| d.name.clone()))
        .collect();
    let result = match check_active(c) {
        Ok(()) => c.alter_user_scram_credentials(upsertions, deletions).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(results) => to_response(&results),
        Err(e) => refused(names, controller_error_code(&e), &e.to_string()),
    }
}

/// The answer when the controller refused the whole request: `code` and
/// `message` for every user named (each once, sorted).
pub fn refused(
    mut names: Vec<String>,
    code: i16,
    message: &str,
) -> AlterUserScramCredentialsResponse {
    names.sort();
    names.dedup();
    AlterUserScramCredentialsResponse::default().with_results(
        names
            .into_iter()
            .map(|n| {
                AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(n))
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message.to_string())))
            })
            .collect(),
    )
}

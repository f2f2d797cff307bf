//! DescribeUserScramCredentials (answered from this broker's image, as
//! Kafka's `ScramImage.describe`) and AlterUserScramCredentials (through
//! the controller, which validates as Kafka's `ScramControlManager`; the
//! answer comes once this broker's image holds the change, so a user
//! created here can log in here at once).
//!
//! Invariant: neither answer carries salts, keys or salted passwords; only
//! mechanisms and iteration counts are described.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_transport::server::scram::{self, from_request, to_response};

use crate::context::BrokerContext;

const DESCRIBE_DUPLICATE_USER: &str =
    "Cannot describe SCRAM credentials for the same user twice in a single request: ";
const DESCRIBE_USER_THAT_DOES_NOT_EXIST: &str =
    "Attempt to describe a user credential that does not exist: ";

pub async fn describe(
    ctx: &BrokerContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = ctx.image.image();
    let credentials = image.scram_credentials();
    // user -> named more than once
    let mut users: BTreeMap<String, bool> = BTreeMap::new();
    match &req.users {
        Some(list) if !list.is_empty() => {
            for u in list {
                users
                    .entry(u.name.to_string())
                    .and_modify(|twice| *twice = true)
                    .or_insert(false);
            }
        }
        _ => {
            for (user, _) in credentials.keys() {
                users.insert(user.clone(), false);
            }
        }
    }
    let results = users
        .into_iter()
        .map(|(user, twice)| {
            let result = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user.clone()));
            if twice {
                return result
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "{DESCRIBE_DUPLICATE_USER}{user}"
                    ))));
            }
            let infos: Vec<CredentialInfo> = credentials
                .range((user.clone(), i8::MIN)..=(user.clone(), i8::MAX))
                .map(|((_, mechanism), c)| {
                    CredentialInfo::default()
                        .with_mechanism(*mechanism)
                        .with_iterations(c.iterations)
                })
                .collect();
            if infos.is_empty() {
                result
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "{DESCRIBE_USER_THAT_DOES_NOT_EXIST}{user}"
                    ))))
            } else {
                result.with_credential_infos(infos)
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub async fn alter(
    ctx: &BrokerContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let (upsertions, deletions) = from_request(&req);
    let names: Vec<String> = upsertions
        .iter()
        .map(|u| u.name.clone())
        .chain(deletions.iter().map(|d| d.name.clone()))
        .collect();
    match ctx
        .controller
        .alter_user_scram_credentials(upsertions, deletions)
        .await
    {
        Ok(results) => to_response(&results),
        Err(e) => scram::refused(names, e.kafka_error_code(), &e.to_string()),
    }
}

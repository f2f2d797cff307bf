//! APIs Sluice does not implement, answered the way Apache Kafka 4.1.2
//! answers them when the feature is absent, instead of closing the
//! connection (`sluice_protocol::ANSWERED_WITH_ERROR` lists them with the
//! version ranges Kafka serves; they are never advertised in ApiVersions).
//!
//! - Sluice has only PLAINTEXT listeners and no authorizer, so SASL, ACL and
//!   delegation-token requests get exactly the answers the reference Kafka
//!   gives on a PLAINTEXT listener without an authorizer (measured):
//!   ILLEGAL_SASL_STATE, SECURITY_DISABLED ("No Authorizer is configured."),
//!   DELEGATION_TOKEN_REQUEST_NOT_ALLOWED.
//!
//! Anything else (an API Kafka's broker does not serve either) closes the
//! connection with a WARN, as Kafka does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    create_acls_response, delete_acls_response, CreateAclsResponse, CreateDelegationTokenResponse,
    DeleteAclsResponse, DescribeAclsResponse, DescribeDelegationTokenResponse,
    ExpireDelegationTokenResponse, RenewDelegationTokenResponse, RequestHeader, RequestKind,
    ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Response;

/// Kafka's messages, word for word (its `AclApis` has both forms).
const NO_AUTHORIZER: &str = "No Authorizer is configured.";
const NO_AUTHORIZER_ON_BROKER: &str = "No Authorizer is configured on the broker";
const SASL_AFTER_AUTHENTICATION: &str =
    "SaslAuthenticate request received after successful authentication";

fn text(s: &'static str) -> Option<StrBytes> {
    Some(StrBytes::from_static_str(s))
}

/// The answer to a request no handler implements.
pub fn answer(header: &RequestHeader, body: RequestKind) -> Response {
    match no_sasl_no_authorizer(&body) {
        Some(response) => Response::Message(response),
        None => Response::Close(format!(
            "no handler for API key {} v{} ({:?})",
            header.request_api_key,
            header.request_api_version,
            std::mem::discriminant(&body)
        )),
    }
}

/// Kafka's answers on a PLAINTEXT listener without an authorizer; `None` for any
/// other request.
fn no_sasl_no_authorizer(body: &RequestKind) -> Option<ResponseKind> {
    let security_disabled = ResponseError::SecurityDisabled.code();
    let token_not_allowed = ResponseError::DelegationTokenRequestNotAllowed.code();
    let illegal_sasl_state = ResponseError::IllegalSaslState.code();
    let response = match body {
        RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default().with_error_code(illegal_sasl_state),
        ),
        RequestKind::SaslAuthenticate(_) => ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(illegal_sasl_state)
                .with_error_message(text(SASL_AFTER_AUTHENTICATION)),
        ),
        RequestKind::DescribeAcls(_) => ResponseKind::DescribeAcls(
            DescribeAclsResponse::default()
                .with_error_code(security_disabled)
                .with_error_message(text(NO_AUTHORIZER_ON_BROKER)),
        ),
        RequestKind::CreateAcls(req) => ResponseKind::CreateAcls(
            CreateAclsResponse::default().with_results(
                req.creations
                    .iter()
                    .map(|_| {
                        create_acls_response::AclCreationResult::default()
                            .with_error_code(security_disabled)
                            .with_error_message(text(NO_AUTHORIZER))
                    })
                    .collect(),
            ),
        ),
        RequestKind::DeleteAcls(req) => ResponseKind::DeleteAcls(
            DeleteAclsResponse::default().with_filter_results(
                req.filters
                    .iter()
                    .map(|_| {
                        delete_acls_response::DeleteAclsFilterResult::default()
                            .with_error_code(security_disabled)
                            .with_error_message(text(NO_AUTHORIZER))
                    })
                    .collect(),
            ),
        ),
        RequestKind::CreateDelegationToken(_) => ResponseKind::CreateDelegationToken(
            // What Kafka fills in for an unauthenticated (ANONYMOUS) caller.
            CreateDelegationTokenResponse::default()
                .with_error_code(token_not_allowed)
                .with_principal_type(StrBytes::from_static_str("User"))
                .with_principal_name(StrBytes::from_static_str("ANONYMOUS"))
                .with_issue_timestamp_ms(-1)
                .with_expiry_timestamp_ms(-1)
                .with_max_timestamp_ms(-1),
        ),
        RequestKind::RenewDelegationToken(_) => ResponseKind::RenewDelegationToken(
            RenewDelegationTokenResponse::default()
                .with_error_code(token_not_allowed)
                .with_expiry_timestamp_ms(-1),
        ),
        RequestKind::ExpireDelegationToken(_) => ResponseKind::ExpireDelegationToken(
            ExpireDelegationTokenResponse::default()
                .with_error_code(token_not_allowed)
                .with_expiry_timestamp_ms(-1),
        ),
        RequestKind::DescribeDelegationToken(_) => ResponseKind::DescribeDelegationToken(
            DescribeDelegationTokenResponse::default().with_error_code(token_not_allowed),
        ),
        _ => return None,
    };
    Some(response)
}

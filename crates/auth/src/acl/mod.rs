//! ACL authorization with the semantics of Kafka's `StandardAuthorizer`
//! (issue 20): the vocabulary ([`types`]), the ACLs ordered so a PREFIXED
//! lookup is a range scan ([`AclIndex`], Kafka's `StandardAuthorizerData`
//! search), and the decision for one action ([`StandardAuthorizer`]).
//!
//! Pure: the cluster metadata stores the ACLs, the controller validates
//! changes with [`validate_new_binding`], and the broker builds a
//! [`StandardAuthorizer`] from each published image and asks it on every
//! request.

mod authorizer;
mod index;
pub mod types;

pub use authorizer::{
    find_result, AuthorizationResult, AuthorizerConfig, Decision, MatchingRule, StandardAuthorizer,
};
pub use index::{AclIndex, StandardAcl};
pub use types::*;

/// Kafka's `authorizer.class.name` that turns this authorizer on.
pub const STANDARD_AUTHORIZER_CLASS: &str =
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

#[cfg(test)]
mod tests;

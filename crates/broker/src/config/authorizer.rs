//! The authorizer settings, read with Kafka's keys: `authorizer.class.name`
//! (only Kafka's `org.apache.kafka.metadata.authorizer.StandardAuthorizer`
//! turns ACL authorization on; any other class is refused at start, since
//! Sluice cannot load Java classes), `super.users` (principals separated
//! by `;`) and `allow.everyone.if.no.acl.found`.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_auth::acl::{AuthorizerConfig, STANDARD_AUTHORIZER_CLASS};

use super::ConfigError;

/// `None` when no authorizer is configured (every request is allowed, and
/// the ACL APIs answer SECURITY_DISABLED, as Kafka's do).
pub fn resolve(
    explicit: &BTreeMap<String, String>,
) -> Result<Option<Arc<AuthorizerConfig>>, ConfigError> {
    let class = explicit
        .get("authorizer.class.name")
        .map(|s| s.trim())
        .unwrap_or("");
    if class.is_empty() {
        return Ok(None);
    }
    if class != STANDARD_AUTHORIZER_CLASS {
        return Err(ConfigError::Unsupported {
            key: "authorizer.class.name".into(),
            reason: format!(
                "{class} cannot be loaded: Sluice implements only \
                 {STANDARD_AUTHORIZER_CLASS} (ACLs in the cluster metadata)"
            ),
        });
    }
    let super_users = match explicit.get("super.users") {
        Some(v) => {
            AuthorizerConfig::parse_super_users(v).map_err(|e| ConfigError::InvalidValue {
                key: "super.users".into(),
                value: v.clone(),
                reason: e.to_string(),
            })?
        }
        None => Default::default(),
    };
    let allow_everyone_if_no_acl_found = match explicit.get("allow.everyone.if.no.acl.found") {
        Some(v) => v.trim().eq_ignore_ascii_case("true"),
        None => false,
    };
    Ok(Some(Arc::new(AuthorizerConfig {
        super_users,
        allow_everyone_if_no_acl_found,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_standard_authorizer_is_accepted() {
        assert_eq!(resolve(&map(&[])).unwrap(), None);
        let on = resolve(&map(&[
            ("authorizer.class.name", STANDARD_AUTHORIZER_CLASS),
            ("super.users", "User:admin;User:broker"),
            ("allow.everyone.if.no.acl.found", "true"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(on.super_users.len(), 2);
        assert!(on.allow_everyone_if_no_acl_found);
        let err = resolve(&map(&[(
            "authorizer.class.name",
            "kafka.security.authorizer.AclAuthorizer",
        )]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("Sluice implements only"), "{err}");
        assert!(resolve(&map(&[
            ("authorizer.class.name", STANDARD_AUTHORIZER_CLASS),
            ("super.users", "admin"),
        ]))
        .is_err());
    }
}

//! Which quota applies to a request, in the precedence order of Kafka's
//! `DefaultQuotaCallback` (pure; property-tested):
//!
//! 1. user + client-id, 2. user + default client-id, 3. user,
//! 4. default user + client-id, 5. default user + default client-id,
//! 6. default user, 7. client-id, 8. default client-id.
//!
//! The first entity in that order that has a value for the quota's key
//! gives the limit. It also names the *quota group* whose traffic is
//! measured together (Kafka's metric tags): `(user, client-id)` for 1, 2,
//! 4 and 5, `(user, "")` for 3 and 6, `("", client-id)` for 7 and 8, so
//! every client id of a user limited at level 3 shares the user's quota.

use sluice_metadata::image::{ClientQuotaEntity, ClientQuotas, EntityName};

/// The measured group of a request (Kafka's `user` and `client-id` metric
/// tags; an empty string is a part that is not measured separately).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaGroup {
    pub user: String,
    pub client_id: String,
}

/// The quota that applies and the group measured against it.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub group: QuotaGroup,
    /// The limit (bytes/s, or percent of one thread's time).
    pub limit: f64,
}

fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> ClientQuotaEntity {
    ClientQuotaEntity {
        user,
        client_id,
        ip: None,
    }
}

/// The quota for `key` of a request from principal name `user` with
/// client id `client_id`, or `None` when no entity sets one.
pub fn resolve(quotas: &ClientQuotas, key: &str, user: &str, client_id: &str) -> Option<Resolved> {
    use EntityName::{Default as D, Name};
    let u = || Some(Name(user.to_owned()));
    let c = || Some(Name(client_id.to_owned()));
    let both = (user, client_id);
    let user_only = (user, "");
    let client_only = ("", client_id);
    let order = [
        (entity(u(), c()), both),
        (entity(u(), Some(D)), both),
        (entity(u(), None), user_only),
        (entity(Some(D), c()), both),
        (entity(Some(D), Some(D)), both),
        (entity(Some(D), None), user_only),
        (entity(None, c()), client_only),
        (entity(None, Some(D)), client_only),
    ];
    order.into_iter().find_map(|(e, (user, client_id))| {
        quotas.value(&e, key).map(|limit| Resolved {
            group: QuotaGroup {
                user: user.to_owned(),
                client_id: client_id.to_owned(),
            },
            limit,
        })
    })
}

#[cfg(test)]
mod tests;

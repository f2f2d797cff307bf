//! CreateAcls and DeleteAcls, planned as Kafka's `AclControlManager` plans
//! them: each binding to create is validated on its own (INVALID_REQUEST
//! with Kafka's message), an ACL that already exists (or comes twice in
//! one request) succeeds without a record, and a new one gets a random
//! Uuid not in use. Each delete filter must not be UNKNOWN; it removes
//! every ACL it matches and reports them; an ACL matched by several
//! filters is removed once. All records of a request commit together.

use std::collections::{BTreeMap, BTreeSet};

use sluice_auth::acl::{validate_new_binding, AclBinding, AclBindingFilter, StandardAcl};
use sluice_metadata::image::acl_to_record;
use sluice_metadata::record::RemoveAccessControlEntryRecord;
use sluice_metadata::{MetadataImage, MetadataRecord};
use uuid::Uuid;

use super::QuorumController;
use crate::error::ControllerError;

/// Kafka's `QuorumController.MAX_RECORDS_PER_USER_OP`: the most ACLs one
/// request may create or delete.
pub const MAX_ACL_RECORDS_PER_REQUEST: usize = 10_000;

/// One result per binding of a CreateAcls request, in request order.
pub type AclCreateResults = Vec<Result<(), ControllerError>>;

/// The bindings each filter of a DeleteAcls request removed, in request
/// order.
pub type AclDeleteResults = Vec<Result<Vec<AclBinding>, ControllerError>>;

fn new_acl_id(image: &MetadataImage, taken: &BTreeMap<Uuid, StandardAcl>) -> Uuid {
    loop {
        let id = sluice_runtime::random_uuid();
        if !id.is_nil() && image.acls().get(id).is_none() && !taken.contains_key(&id) {
            return id;
        }
    }
}

/// The records and results of a CreateAcls request against `image`.
pub(super) fn plan_create(
    image: &MetadataImage,
    bindings: Vec<AclBinding>,
) -> (Vec<MetadataRecord>, AclCreateResults) {
    let existing: BTreeSet<&StandardAcl> = image.acls().by_id().values().collect();
    let mut added: BTreeMap<Uuid, StandardAcl> = BTreeMap::new();
    let mut added_set: BTreeSet<StandardAcl> = BTreeSet::new();
    let mut results = Vec::with_capacity(bindings.len());
    for b in bindings {
        if let Err(e) = validate_new_binding(&b) {
            results.push(Err(ControllerError::InvalidRequest(e.to_string())));
            continue;
        }
        let acl = StandardAcl::from_binding(&b);
        if !existing.contains(&acl) && !added_set.contains(&acl) {
            if added.len() >= MAX_ACL_RECORDS_PER_REQUEST {
                results.push(Err(ControllerError::InvalidRequest(format!(
                    "Cannot create more than {MAX_ACL_RECORDS_PER_REQUEST} ACLs in one request"
                ))));
                continue;
            }
            let id = new_acl_id(image, &added);
            added_set.insert(acl.clone());
            added.insert(id, acl);
        }
        results.push(Ok(()));
    }
    let records = added
        .iter()
        .map(|(&id, acl)| MetadataRecord::AccessControlEntry(acl_to_record(id, acl)))
        .collect();
    (records, results)
}

/// The records and results of a DeleteAcls request against `image`.
pub(super) fn plan_delete(
    image: &MetadataImage,
    filters: Vec<AclBindingFilter>,
) -> (Vec<MetadataRecord>, AclDeleteResults) {
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    let mut results = Vec::with_capacity(filters.len());
    for f in filters {
        if f.pattern.is_unknown() {
            results.push(Err(ControllerError::InvalidRequest(
                "Unknown patternFilter.".into(),
            )));
            continue;
        }
        if f.entry.is_unknown() {
            results.push(Err(ControllerError::InvalidRequest(
                "Unknown entryFilter.".into(),
            )));
            continue;
        }
        let matched: Vec<(Uuid, AclBinding)> = image
            .acls()
            .by_id()
            .iter()
            .map(|(&id, acl)| (id, acl.to_binding()))
            .filter(|(_, b)| f.matches(b))
            .collect();
        let new_ids = matched
            .iter()
            .filter(|(id, _)| !removed.contains(id))
            .count();
        if removed.len() + new_ids > MAX_ACL_RECORDS_PER_REQUEST {
            results.push(Err(ControllerError::Internal(format!(
                "Cannot remove more than {MAX_ACL_RECORDS_PER_REQUEST} acls in a single delete operation."
            ))));
            continue;
        }
        removed.extend(matched.iter().map(|(id, _)| *id));
        results.push(Ok(matched.into_iter().map(|(_, b)| b).collect()));
    }
    let records = removed
        .into_iter()
        .map(|id| MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id }))
        .collect();
    (records, results)
}

impl QuorumController {
    /// CreateAcls: the new ACLs commit together; one result per binding.
    pub async fn create_acls(
        &self,
        bindings: Vec<AclBinding>,
    ) -> Result<AclCreateResults, ControllerError> {
        self.submit(move |ctx| Ok(plan_create(ctx.image, bindings)))
            .await
    }

    /// DeleteAcls: every matched ACL is removed in one commit; one result
    /// per filter.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclBindingFilter>,
    ) -> Result<AclDeleteResults, ControllerError> {
        self.submit(move |ctx| Ok(plan_delete(ctx.image, filters)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use sluice_auth::acl::*;
    use sluice_metadata::MetadataDelta;

    use super::*;

    fn binding(name: &str, pt: PatternType, op: AclOperation) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::Topic,
                name: name.into(),
                pattern_type: pt,
            },
            entry: AccessControlEntry {
                principal: "User:alice".into(),
                host: "*".into(),
                operation: op,
                permission_type: AclPermissionType::Allow,
            },
        }
    }

    fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let mut d = MetadataDelta::new(image.clone());
        for r in records {
            d.replay_record(r).unwrap();
        }
        d.apply().0
    }

    #[test]
    fn create_validates_and_skips_existing() {
        let empty = MetadataImage::empty();
        let t = binding("t", PatternType::Literal, AclOperation::Read);
        let (records, results) = plan_create(
            &empty,
            vec![
                t.clone(),
                t.clone(),
                binding("t", PatternType::Match, AclOperation::Read),
                binding("t", PatternType::Literal, AclOperation::Any),
                binding("", PatternType::Prefixed, AclOperation::Read),
            ],
        );
        assert_eq!(records.len(), 1);
        let errs: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert_eq!(
            errs,
            [
                "Invalid patternType MATCH",
                "Invalid operation ANY",
                "Resource name should not be empty"
            ]
        );
        let image = apply(&empty, &records);
        let (again, results) = plan_create(&image, vec![t]);
        assert!(again.is_empty() && results[0].is_ok());
    }

    #[test]
    fn delete_reports_matches_and_removes_each_once() {
        let empty = MetadataImage::empty();
        let (records, _) = plan_create(
            &empty,
            vec![
                binding("t", PatternType::Literal, AclOperation::Read),
                binding("t", PatternType::Prefixed, AclOperation::Write),
                binding("u", PatternType::Literal, AclOperation::Read),
            ],
        );
        let image = apply(&empty, &records);
        let mut read = AclBindingFilter::any();
        read.entry.operation = AclOperation::Read;
        let mut t_match = AclBindingFilter::any();
        t_match.pattern.name = Some("t".into());
        t_match.pattern.pattern_type = PatternType::Match;
        let mut unknown = AclBindingFilter::any();
        unknown.entry.permission_type = AclPermissionType::Unknown;
        let (records, results) = plan_delete(&image, vec![read, t_match, unknown]);
        assert_eq!(records.len(), 3, "t/read counted once");
        assert_eq!(results[0].as_ref().unwrap().len(), 2);
        assert_eq!(results[1].as_ref().unwrap().len(), 2);
        assert_eq!(
            results[2].as_ref().unwrap_err().to_string(),
            "Unknown entryFilter."
        );
        assert!(apply(&image, &records).acls().is_empty());
    }
}

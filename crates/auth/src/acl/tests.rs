use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::KafkaPrincipal;

fn acl(
    rt: ResourceType,
    name: &str,
    pt: PatternType,
    principal: &str,
    host: &str,
    op: AclOperation,
    perm: AclPermissionType,
) -> StandardAcl {
    StandardAcl {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: pt,
        principal: principal.into(),
        host: host.into(),
        operation: op,
        permission_type: perm,
    }
}

fn topic_acl(name: &str, pt: PatternType, who: &str, op: AclOperation, allow: bool) -> StandardAcl {
    let perm = if allow {
        AclPermissionType::Allow
    } else {
        AclPermissionType::Deny
    };
    acl(ResourceType::Topic, name, pt, who, "*", op, perm)
}

fn authorizer(acls: Vec<StandardAcl>, supers: &[&str], allow_if_none: bool) -> StandardAuthorizer {
    StandardAuthorizer::new(
        AuthorizerConfig {
            super_users: supers.iter().map(|s| s.to_string()).collect(),
            allow_everyone_if_no_acl_found: allow_if_none,
        },
        Arc::new(acls.into_iter().collect()),
    )
}

fn allowed(a: &StandardAuthorizer, who: &str, op: AclOperation, topic: &str) -> bool {
    let p: KafkaPrincipal = who.parse().unwrap();
    a.authorize(&p, "10.0.0.1", op, ResourceType::Topic, topic)
        .allowed()
}

use AclOperation::*;
use PatternType::{Literal, Prefixed};

#[test]
fn deny_wins_over_allow() {
    let a = authorizer(
        vec![
            topic_acl("t", Literal, "User:alice", Read, true),
            topic_acl("t", Prefixed, "User:*", Read, false),
        ],
        &[],
        false,
    );
    assert!(!allowed(&a, "User:alice", Read, "t"));
    let d = a.authorize(
        &KafkaPrincipal::user("alice"),
        "1.1.1.1",
        Read,
        ResourceType::Topic,
        "t",
    );
    assert!(
        matches!(d.rule, MatchingRule::MatchingAcl(ref x) if x.permission_type == AclPermissionType::Deny)
    );
}

#[test]
fn wildcards_prefixes_and_hosts() {
    let a = authorizer(
        vec![
            topic_acl("*", Literal, "User:bob", Write, true),
            topic_acl("pay", Prefixed, "User:alice", Read, true),
            topic_acl("payments", Literal, "User:carol", Read, true),
            acl(
                ResourceType::Topic,
                "h",
                Literal,
                "User:dave",
                "10.0.0.2",
                Read,
                AclPermissionType::Allow,
            ),
        ],
        &["User:admin"],
        false,
    );
    assert!(allowed(&a, "User:bob", Write, "anything"));
    assert!(!allowed(&a, "User:bob", Read, "anything"));
    assert!(allowed(&a, "User:alice", Read, "payments"));
    assert!(allowed(&a, "User:alice", Read, "pay"));
    assert!(!allowed(&a, "User:alice", Read, "pa"));
    assert!(!allowed(&a, "User:carol", Read, "payments-2"));
    assert!(!allowed(&a, "User:dave", Read, "h"), "other host");
    assert!(allowed(&a, "User:admin", Delete, "x"), "super user");
}

#[test]
fn implied_operations_only_for_allow() {
    let a = authorizer(
        vec![
            topic_acl("r", Literal, "User:u", Read, true),
            topic_acl("c", Literal, "User:u", AlterConfigs, true),
            topic_acl("d", Literal, "User:u", Read, false),
            topic_acl("d", Literal, "User:u", Describe, true),
            topic_acl("all", Literal, "User:u", All, true),
        ],
        &[],
        false,
    );
    assert!(allowed(&a, "User:u", Describe, "r"));
    assert!(!allowed(&a, "User:u", Write, "r"));
    assert!(allowed(&a, "User:u", DescribeConfigs, "c"));
    assert!(!allowed(&a, "User:u", Describe, "c"));
    assert!(
        allowed(&a, "User:u", Describe, "d"),
        "DENY READ does not deny DESCRIBE"
    );
    assert!(allowed(&a, "User:u", Delete, "all"));
}

#[test]
fn allow_everyone_only_when_no_acl_covers_the_resource() {
    let acls = vec![topic_acl("t", Literal, "User:alice", Read, true)];
    let open = authorizer(acls.clone(), &[], true);
    assert!(allowed(&open, "User:bob", Read, "other"));
    assert!(!allowed(&open, "User:bob", Read, "t"));
    let closed = authorizer(acls, &[], false);
    assert!(!allowed(&closed, "User:bob", Read, "other"));
}

#[test]
fn super_users_parse_like_kafka() {
    let s = AuthorizerConfig::parse_super_users(" User:admin ;User:broker;").unwrap();
    assert_eq!(s.len(), 2);
    assert!(AuthorizerConfig::parse_super_users("admin").is_err());
}

#[test]
fn filters_match_like_kafka() {
    let b = |name: &str, pt| AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern_type: pt,
        },
        entry: AccessControlEntry {
            principal: "User:a".into(),
            host: "*".into(),
            operation: Read,
            permission_type: AclPermissionType::Allow,
        },
    };
    let mut f = AclBindingFilter::any();
    f.pattern.name = Some("foo".into());
    f.pattern.pattern_type = PatternType::Match;
    assert!(f.matches(&b("foo", Literal)));
    assert!(f.matches(&b("*", Literal)));
    assert!(f.matches(&b("fo", Prefixed)));
    assert!(!f.matches(&b("fo", Literal)));
    f.pattern.pattern_type = PatternType::Any;
    assert!(!f.matches(&b("*", Literal)));
    assert!(f.matches(&b("foo", Prefixed)));
    f.entry.operation = Write;
    assert!(!f.matches(&b("foo", Prefixed)));
    assert_eq!("read".parse::<AclOperation>().unwrap(), Read);
    assert_eq!(
        "transactional-id".parse::<ResourceType>().unwrap(),
        ResourceType::TransactionalId
    );
    assert_eq!(AclOperation::from_code(99), AclOperation::Unknown);
}

#[test]
fn new_bindings_are_validated_with_kafkas_messages() {
    let mut b = StandardAcl {
        resource_type: ResourceType::Topic,
        resource_name: "t".into(),
        pattern_type: Literal,
        principal: "User:a".into(),
        host: "*".into(),
        operation: Read,
        permission_type: AclPermissionType::Allow,
    }
    .to_binding();
    assert!(validate_new_binding(&b).is_ok());
    b.pattern.pattern_type = PatternType::Match;
    assert_eq!(
        validate_new_binding(&b).unwrap_err().to_string(),
        "Invalid patternType MATCH"
    );
    b.pattern.pattern_type = Literal;
    b.pattern.name.clear();
    assert_eq!(
        validate_new_binding(&b).unwrap_err().to_string(),
        "Resource name should not be empty"
    );
}

#[test]
fn authorized_operations_bits() {
    let a = authorizer(
        vec![topic_acl("t", Literal, "User:u", Read, true)],
        &[],
        false,
    );
    let ops = a.authorized_operations(&KafkaPrincipal::user("u"), "h", ResourceType::Topic, "t");
    assert_eq!(ops, vec![Read, Describe]);
    assert_eq!(operations_bit_field(ops), (1 << 3) | (1 << 8));
}

// ---- property test against a reference model that reads every ACL ----

/// One action to decide.
struct Request<'a> {
    who: &'a str,
    host: &'a str,
    op: AclOperation,
    rt: ResourceType,
    name: &'a str,
}

/// The rules written the obvious way: every ACL whose pattern covers the
/// resource counts; any matching DENY denies; else any matching ALLOW
/// allows; else the default applies only if no ACL covers the resource.
fn reference(acls: &[StandardAcl], supers: &[&str], allow_if_none: bool, req: Request<'_>) -> bool {
    let Request {
        who,
        host,
        op,
        rt,
        name,
    } = req;
    if supers.contains(&who) {
        return true;
    }
    let covering: Vec<&StandardAcl> = acls
        .iter()
        .filter(|a| a.resource_type == rt)
        .filter(|a| match a.pattern_type {
            Literal => a.resource_name == name || a.resource_name == "*",
            Prefixed => name.starts_with(&a.resource_name),
            _ => false,
        })
        .collect();
    let matches = |a: &&&StandardAcl| {
        (a.principal == who || a.principal == "User:*")
            && (a.host == "*" || a.host == host)
            && (a.operation == All
                || a.operation == op
                || (a.permission_type == AclPermissionType::Allow
                    && ((op == Describe && [Read, Write, Delete, Alter].contains(&a.operation))
                        || (op == DescribeConfigs && a.operation == AlterConfigs))))
    };
    let mut matching = covering.iter().filter(matches);
    if matching
        .clone()
        .any(|a| a.permission_type == AclPermissionType::Deny)
    {
        return false;
    }
    if matching.any(|a| a.permission_type == AclPermissionType::Allow) {
        return true;
    }
    covering.is_empty() && allow_if_none
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![Just("*".to_string()), Just(String::new()), "[ab*é]{1,4}",]
}

fn arb_acl() -> impl Strategy<Value = StandardAcl> {
    (
        prop::sample::select(vec![ResourceType::Topic, ResourceType::Group]),
        arb_name(),
        prop::sample::select(vec![Literal, Prefixed]),
        prop::sample::select(vec!["User:a", "User:b", "User:*", "Group:a"]),
        prop::sample::select(vec!["*", "1.1.1.1", "2.2.2.2"]),
        prop::sample::select(vec![
            All,
            Read,
            Write,
            Describe,
            AlterConfigs,
            DescribeConfigs,
        ]),
        any::<bool>(),
    )
        .prop_map(|(rt, name, pt, who, host, op, allow)| {
            acl(
                rt,
                &name,
                pt,
                who,
                host,
                op,
                if allow {
                    AclPermissionType::Allow
                } else {
                    AclPermissionType::Deny
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn agrees_with_the_reference_model(
        acls in prop::collection::vec(arb_acl(), 0..24),
        allow_if_none in any::<bool>(),
        who in prop::sample::select(vec!["User:a", "User:b", "User:admin", "Group:a"]),
        host in prop::sample::select(vec!["1.1.1.1", "2.2.2.2"]),
        op in prop::sample::select(vec![Read, Write, Describe, DescribeConfigs, Delete]),
        rt in prop::sample::select(vec![ResourceType::Topic, ResourceType::Group]),
        name in "[ab*é]{1,5}",
    ) {
        let supers = ["User:admin"];
        let a = authorizer(acls.clone(), &supers, allow_if_none);
        let p: KafkaPrincipal = who.parse().unwrap();
        let got = a.authorize(&p, host, op, rt, &name).allowed();
        let want = reference(&acls, &supers, allow_if_none, Request { who, host, op, rt, name: &name });
        prop_assert_eq!(got, want);
    }

    #[test]
    fn covering_scan_finds_exactly_the_covering_acls(
        acls in prop::collection::vec(arb_acl(), 0..24),
        name in "[ab*é]{1,5}",
    ) {
        let index: AclIndex = acls.iter().cloned().collect();
        let mut seen = std::collections::BTreeSet::new();
        index.for_each_covering(ResourceType::Topic, &name, |a| { seen.insert(a.clone()); true });
        let want: std::collections::BTreeSet<_> = index
            .iter()
            .filter(|a| a.resource_type == ResourceType::Topic && a.pattern_covers(&name))
            .cloned()
            .collect();
        prop_assert_eq!(seen, want);
    }
}

#[test]
fn authorize_by_resource_type_as_kafka() {
    let p = KafkaPrincipal::user("u");
    let by_type = |acls: Vec<StandardAcl>| {
        authorizer(acls, &[], false).authorize_by_resource_type(&p, "h", Write, ResourceType::Topic)
    };
    assert!(!by_type(vec![]));
    assert!(by_type(vec![topic_acl(
        "t", Literal, "User:u", Write, true
    )]));
    assert!(!by_type(vec![
        topic_acl("t", Literal, "User:u", Write, true),
        topic_acl("t", Literal, "User:u", Write, false),
    ]));
    assert!(!by_type(vec![
        topic_acl("tx", Prefixed, "User:u", Write, true),
        topic_acl("t", Prefixed, "User:*", All, false),
    ]));
    assert!(by_type(vec![topic_acl(
        "*", Literal, "User:*", Write, true
    )]));
    assert!(!by_type(vec![
        topic_acl("a", Literal, "User:u", Write, true),
        topic_acl("*", Literal, "User:u", Write, false),
    ]));
    assert!(!by_type(vec![topic_acl(
        "t", Literal, "User:u", Read, true
    )]));
}

//! `sluice acl` (Kafka's `kafka-acls`), against any Kafka-compatible
//! cluster with an authorizer:
//! - `create`: one ACL (CreateAcls);
//! - `list`: the ACLs a filter matches (DescribeAcls), one per line:
//!   resource type, name, pattern type, principal, host, operation,
//!   permission, tab-separated, sorted (brokers answer in any order);
//! - `delete`: the ACLs a filter matches (DeleteAcls), printed as removed.
//!
//! Names are Kafka's enum names in any case (`topic`, `TRANSACTIONAL_ID`,
//! `transactional-id`, `read`, `prefixed` ...). The connection is a plain
//! Kafka protocol connection (PLAINTEXT listeners), so the principal is
//! the listener's (`User:ANONYMOUS`), which must be allowed to alter the
//! cluster's ACLs (a super user).

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use sluice_auth::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};

use super::raw::{error_text, str_bytes};
use super::ConnectArgs;

#[derive(Args, Debug)]
pub struct AclArgs {
    #[command(subcommand)]
    command: AclCommand,
}

/// Which ACLs: every field narrows the match (default: any).
#[derive(Args, Debug)]
struct Filter {
    /// Resource type: topic, group, cluster, transactional-id, delegation-token, user, any.
    #[arg(long, default_value = "any")]
    resource_type: String,
    /// Resource name (default: any).
    #[arg(long)]
    name: Option<String>,
    /// Pattern type: literal, prefixed, match (every pattern that applies to --name), any.
    #[arg(long, default_value = "any")]
    pattern: String,
    /// Principal, such as User:alice (default: any).
    #[arg(long)]
    principal: Option<String>,
    /// Host (default: any).
    #[arg(long)]
    host: Option<String>,
    /// Operation (default: any).
    #[arg(long, default_value = "any")]
    operation: String,
    /// Permission: allow, deny, any.
    #[arg(long, default_value = "any")]
    permission: String,
}

#[derive(Subcommand, Debug)]
enum AclCommand {
    /// Create one ACL.
    Create {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Resource type: topic, group, cluster, transactional-id, delegation-token, user.
        #[arg(long)]
        resource_type: String,
        /// Resource name (`*` for every resource of the type; kafka-cluster for the cluster).
        #[arg(long)]
        name: String,
        /// Pattern type: literal or prefixed.
        #[arg(long, default_value = "literal")]
        pattern: String,
        /// Principal, such as User:alice or User:*.
        #[arg(long)]
        principal: String,
        /// Host the principal connects from, or `*`.
        #[arg(long, default_value = "*")]
        host: String,
        /// Operation: read, write, create, delete, alter, describe, cluster-action, describe-configs, alter-configs, idempotent-write, all.
        #[arg(long)]
        operation: String,
        /// Permission: allow or deny.
        #[arg(long, default_value = "allow")]
        permission: String,
    },
    /// List the ACLs a filter matches.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        filter: Filter,
    },
    /// Delete the ACLs a filter matches.
    Delete {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        filter: Filter,
    },
}

pub fn run(args: AclArgs) -> anyhow::Result<()> {
    match args.command {
        AclCommand::Create {
            connect,
            resource_type,
            name,
            pattern,
            principal,
            host,
            operation,
            permission,
        } => {
            let creation = AclCreation::default()
                .with_resource_type(resource_type.parse::<ResourceType>()?.code())
                .with_resource_name(str_bytes(&name))
                .with_resource_pattern_type(pattern.parse::<PatternType>()?.code())
                .with_principal(str_bytes(&principal))
                .with_host(str_bytes(&host))
                .with_operation(operation.parse::<AclOperation>()?.code())
                .with_permission_type(permission.parse::<AclPermissionType>()?.code());
            let mut c = connect.raw()?;
            let resp = c
                .send(
                    &CreateAclsRequest::default().with_creations(vec![creation]),
                    1,
                )
                .context("CreateAcls")?;
            match resp.results.first() {
                Some(r) if r.error_code != 0 => bail!(
                    "could not create the ACL: {}",
                    error_text(r.error_code, r.error_message.as_ref())
                ),
                Some(_) => Ok(()),
                None => bail!("the broker answered no result"),
            }
        }
        AclCommand::List { connect, filter } => {
            let f = wire_filter(&filter)?;
            let req = DescribeAclsRequest::default()
                .with_resource_type_filter(f.resource_type_filter)
                .with_resource_name_filter(f.resource_name_filter)
                .with_pattern_type_filter(f.pattern_type_filter)
                .with_principal_filter(f.principal_filter)
                .with_host_filter(f.host_filter)
                .with_operation(f.operation)
                .with_permission_type(f.permission_type);
            let resp = connect.raw()?.send(&req, 1).context("DescribeAcls")?;
            if resp.error_code != 0 {
                bail!(
                    "could not list ACLs: {}",
                    error_text(resp.error_code, resp.error_message.as_ref())
                );
            }
            let mut lines = Vec::new();
            for r in &resp.resources {
                for a in &r.acls {
                    lines.push(line(
                        r.resource_type,
                        r.resource_name.as_str(),
                        r.pattern_type,
                        a.principal.as_str(),
                        a.host.as_str(),
                        a.operation,
                        a.permission_type,
                    ));
                }
            }
            // Brokers answer in their own order; print a stable one.
            lines.sort();
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
        AclCommand::Delete { connect, filter } => {
            let f = wire_filter(&filter)?;
            let resp = connect
                .raw()?
                .send(&DeleteAclsRequest::default().with_filters(vec![f]), 1)
                .context("DeleteAcls")?;
            let Some(r) = resp.filter_results.first() else {
                bail!("the broker answered no result");
            };
            if r.error_code != 0 {
                bail!(
                    "could not delete ACLs: {}",
                    error_text(r.error_code, r.error_message.as_ref())
                );
            }
            let mut lines: Vec<String> = Vec::new();
            for m in &r.matching_acls {
                lines.push(format!(
                    "removed\t{}",
                    line(
                        m.resource_type,
                        m.resource_name.as_str(),
                        m.pattern_type,
                        m.principal.as_str(),
                        m.host.as_str(),
                        m.operation,
                        m.permission_type
                    )
                ));
            }
            lines.sort();
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
    }
}

fn wire_filter(f: &Filter) -> anyhow::Result<DeleteAclsFilter> {
    Ok(DeleteAclsFilter::default()
        .with_resource_type_filter(f.resource_type.parse::<ResourceType>()?.code())
        .with_resource_name_filter(f.name.as_deref().map(str_bytes))
        .with_pattern_type_filter(f.pattern.parse::<PatternType>()?.code())
        .with_principal_filter(f.principal.as_deref().map(str_bytes))
        .with_host_filter(f.host.as_deref().map(str_bytes))
        .with_operation(f.operation.parse::<AclOperation>()?.code())
        .with_permission_type(f.permission.parse::<AclPermissionType>()?.code()))
}

fn line(rt: i8, name: &str, pt: i8, principal: &str, host: &str, op: i8, perm: i8) -> String {
    format!(
        "{}\t{name}\t{}\t{principal}\t{host}\t{}\t{}",
        ResourceType::from_code(rt),
        PatternType::from_code(pt),
        AclOperation::from_code(op),
        AclPermissionType::from_code(perm)
    )
}

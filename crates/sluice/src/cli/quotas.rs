//! `sluice quotas` (Kafka's `kafka-configs --entity-type users|clients|ips`
//! for quotas), against any Kafka-compatible cluster:
//! - `describe`: DescribeClientQuotas; with no entity every quota, else
//!   exactly the entity named (strict), one line per entity as
//!   kafka-configs prints it ("Quota configs for user-principal 'alice'
//!   are producer_byte_rate=1048576.0");
//! - `alter`: AlterClientQuotas with `--add KEY=VALUE` and `--delete KEY`
//!   (repeatable), `--dry-run` validating only.
//!
//! An entity is `--user NAME` or `--user-default`, `--client-id NAME` or
//! `--client-id-default` (alone or with a user), or `--ip ADDR` /
//! `--ip-default`.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};

use super::raw::{error_text, str_bytes};
use super::ConnectArgs;

#[derive(Args, Debug)]
pub struct QuotasArgs {
    #[command(subcommand)]
    command: QuotasCommand,
}

/// The quota entity, as kafka-configs names it.
#[derive(Args, Debug, Default)]
struct Entity {
    #[arg(long, value_name = "NAME", conflicts_with = "user_default")]
    user: Option<String>,
    /// The default user entity.
    #[arg(long)]
    user_default: bool,
    #[arg(long, value_name = "NAME", conflicts_with = "client_id_default")]
    client_id: Option<String>,
    /// The default client-id entity.
    #[arg(long)]
    client_id_default: bool,
    #[arg(long, value_name = "ADDR", conflicts_with = "ip_default")]
    ip: Option<String>,
    /// The default ip entity.
    #[arg(long)]
    ip_default: bool,
}

impl Entity {
    /// (entity type, name; `None` = the default entity) pairs.
    fn pairs(&self) -> Vec<(&'static str, Option<&str>)> {
        [
            ("user", &self.user, self.user_default),
            ("client-id", &self.client_id, self.client_id_default),
            ("ip", &self.ip, self.ip_default),
        ]
        .into_iter()
        .filter_map(|(t, name, default)| match name {
            Some(n) => Some((t, Some(n.as_str()))),
            None if default => Some((t, None)),
            None => None,
        })
        .collect()
    }
}

#[derive(Subcommand, Debug)]
enum QuotasCommand {
    /// The quotas of one entity, or of every entity.
    Describe {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        entity: Entity,
    },
    /// Set or delete quotas of one entity.
    Alter {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        entity: Entity,
        /// A quota to set, KEY=VALUE (producer_byte_rate, consumer_byte_rate,
        /// request_percentage, controller_mutation_rate, connection_creation_rate).
        #[arg(long = "add", value_name = "KEY=VALUE")]
        add: Vec<String>,
        /// A quota to delete (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        /// Only validate the change; nothing is written.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: QuotasArgs) -> anyhow::Result<()> {
    match args.command {
        QuotasCommand::Describe { connect, entity } => describe(&connect, &entity),
        QuotasCommand::Alter {
            connect,
            entity,
            add,
            delete,
            dry_run,
        } => alter(&connect, &entity, &add, &delete, dry_run),
    }
}

/// kafka-configs' words for an entity: "user-principal 'alice', the
/// default client-id".
fn entity_text<'a>(pairs: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let mut parts: Vec<(usize, String)> = pairs
        .map(|(t, n)| {
            let (order, word) = match t {
                "user" => (0, "user-principal"),
                "client-id" => (1, "client-id"),
                _ => (2, "ip"),
            };
            let text = match n {
                Some(n) => format!("{word} '{n}'"),
                None => format!("the default {word}"),
            };
            (order, text)
        })
        .collect();
    parts.sort();
    parts
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A float64 as Java's `Double.toString` writes it (kafka-configs' output).
fn java_double(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        return format!("{v:?}");
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_owned()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exp}")
}

fn describe(connect: &ConnectArgs, entity: &Entity) -> anyhow::Result<()> {
    let pairs = entity.pairs();
    let components = pairs
        .iter()
        .map(|(t, n)| {
            ComponentData::default()
                .with_entity_type(str_bytes(t))
                .with_match_type(if n.is_some() { 0 } else { 1 })
                .with_match(n.map(str_bytes))
        })
        .collect();
    let req = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(!pairs.is_empty());
    let resp = connect.raw()?.send(&req, 0)?;
    if resp.error_code != 0 {
        bail!(error_text(resp.error_code, resp.error_message.as_ref()));
    }
    for e in resp.entries.iter().flatten() {
        let who = entity_text(
            e.entity
                .iter()
                .map(|d| (d.entity_type.as_str(), d.entity_name.as_deref())),
        );
        let values: Vec<String> = e
            .values
            .iter()
            .map(|v| format!("{}={}", v.key.as_str(), java_double(v.value)))
            .collect();
        println!("Quota configs for {who} are {}", values.join(", "));
    }
    Ok(())
}

fn alter(
    connect: &ConnectArgs,
    entity: &Entity,
    add: &[String],
    delete: &[String],
    dry_run: bool,
) -> anyhow::Result<()> {
    let pairs = entity.pairs();
    if pairs.is_empty() {
        bail!("name an entity: --user/--user-default, --client-id/--client-id-default or --ip/--ip-default");
    }
    let mut ops = Vec::new();
    for a in add {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| anyhow!("--add takes KEY=VALUE, not {a}"))?;
        let value: f64 = v
            .trim()
            .parse()
            .map_err(|_| anyhow!("the value of {k} is not a number: {v}"))?;
        ops.push(
            OpData::default()
                .with_key(str_bytes(k.trim()))
                .with_value(value),
        );
    }
    for k in delete {
        ops.push(OpData::default().with_key(str_bytes(k)).with_remove(true));
    }
    if ops.is_empty() {
        bail!("give at least one --add or --delete");
    }
    let req = AlterClientQuotasRequest::default()
        .with_validate_only(dry_run)
        .with_entries(vec![EntryData::default()
            .with_entity(
                pairs
                    .iter()
                    .map(|(t, n)| {
                        EntityData::default()
                            .with_entity_type(str_bytes(t))
                            .with_entity_name(n.map(str_bytes))
                    })
                    .collect(),
            )
            .with_ops(ops)]);
    let resp = connect.raw()?.send(&req, 0)?;
    let who = entity_text(pairs.iter().copied());
    match resp.entries.first() {
        Some(e) if e.error_code != 0 => {
            bail!(
                "Could not update quotas for {who}: {}",
                error_text(e.error_code, e.error_message.as_ref())
            )
        }
        Some(_) if dry_run => println!("Quotas for {who} can be updated."),
        Some(_) => println!("Completed updating quotas for {who}."),
        None => bail!("the broker answered no result for {who}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(java_double(1048576.0), "1048576.0");
        assert_eq!(java_double(12.5), "12.5");
        assert_eq!(java_double(10485760.0), "1.048576E7");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(0.0001), "1.0E-4");
    }

    #[test]
    fn entities_read_as_kafka_configs_writes_them() {
        assert_eq!(
            entity_text([("client-id", None), ("user", Some("alice"))].into_iter()),
            "user-principal 'alice', the default client-id"
        );
    }
}

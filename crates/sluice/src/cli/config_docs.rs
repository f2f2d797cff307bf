//! `sluice config docs`: renders docs/configuration.md from the broker's one
//! config table (`sluice_broker::config::CONFIG_TABLE`), so the reference
//! cannot drift from what the broker accepts. A test in tests/cli.rs fails
//! when the committed file is stale.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use sluice_broker::config::dynamic::is_dynamic_in_sluice;
use sluice_broker::config::{ConfigKey, Scope, Validator, CONFIG_TABLE};

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the configuration reference (Markdown) generated from the config table.
    Docs,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Docs => {
            use std::io::Write as _;
            std::io::stdout().lock().write_all(render().as_bytes())?;
            Ok(())
        }
    }
}

/// The whole docs/configuration.md.
pub fn render() -> String {
    let mut s = String::new();
    s.push_str("# Configuration reference\n\n");
    s.push_str(
        "<!-- Generated from crates/broker/src/config/table.rs by `sluice config docs`; do not edit.\n     \
         Regenerate: cargo run -p sluice -- config docs > docs/configuration.md -->\n\n",
    );
    s.push_str(
        "Broker keys go in `server.properties` or `--override key=value`; topic keys are set with \
         `sluice topic create --config key=value` / `sluice topic alter-config` (or any Kafka tool). \
         Names, units and defaults are Kafka's unless the description says otherwise; Sluice-only keys \
         start with `sluice.`. Keys marked *accepted, no effect* are stored and reported but do not \
         change Sluice's behaviour. Kafka keys Sluice does not implement are accepted with one warning; \
         unknown keys and invalid values refuse start, naming the key.\n\n",
    );
    section(&mut s, "Broker configuration", Scope::Broker);
    section(&mut s, "Topic configuration", Scope::Topic);
    s
}

fn section(s: &mut String, title: &str, scope: Scope) {
    let _ = writeln!(s, "## {title}\n");
    s.push_str("| Key | Type | Default | Valid values | Description |\n");
    s.push_str("|---|---|---|---|---|\n");
    for k in CONFIG_TABLE.iter().filter(|k| k.scope == scope) {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} |",
            k.name,
            format!("{:?}", k.ty).to_lowercase(),
            k.default
                .map_or("*(none)*".to_string(), |d| format!("`{}`", cell(d))),
            cell(&valid(k)),
            cell(&description(k)),
        );
    }
    s.push('\n');
}

fn description(k: &ConfigKey) -> String {
    let mut d = k.doc.to_string();
    if k.no_effect {
        d.push_str(" *Accepted, no effect.*");
    }
    if !k.synonyms.is_empty() {
        let names: Vec<String> = k.synonyms.iter().map(|(n, _)| format!("`{n}`")).collect();
        let _ = write!(d, " Broker default from: {}.", names.join(", "));
    }
    if k.scope == Scope::Broker {
        // What DescribeConfigs reports: a broker key is read-only unless
        // AlterConfigs accepts it at runtime.
        if is_dynamic_in_sluice(k.name) {
            d.push_str(" Dynamic (per broker or cluster-wide).");
        } else {
            d.push_str(" Read-only (restart to change).");
        }
    }
    if k.sensitive {
        d.push_str(" Sensitive: never shown.");
    }
    d
}

fn valid(k: &ConfigKey) -> String {
    match k.validator {
        Validator::Any => String::new(),
        Validator::AtLeast(n) => format!("≥ {n}"),
        Validator::Between(a, b) if a == b => format!("{a}"),
        Validator::Between(a, b) => format!("{a} … {b}"),
        Validator::BetweenF(a, b) => format!("{a} … {b}"),
        Validator::OneOf(v) => v.join(", "),
        Validator::ListOf(v) => format!("list of: {}", v.join(", ")),
        Validator::Listeners => "NAME://host:port[,…]".into(),
        Validator::NonEmptyList => "non-empty list".into(),
        Validator::ThrottledReplicas => "*, or partition:broker[,…]".into(),
    }
}

/// Escapes what would break a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

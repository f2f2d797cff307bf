//! `sluice features` (Kafka's `kafka-features`), against any
//! Kafka-compatible cluster:
//! - `describe`: the supported range and finalized level of every feature
//!   the broker asked lists (ApiVersions v3), with the features' epoch;
//! - `upgrade` / `downgrade`: UpdateFeatures (to any broker, which forwards
//!   it to the controller), with `--dry-run` (validate only).
//!
//! Output and exit status follow Kafka's tool line for line ("X was
//! upgraded to N.", "Could not upgrade X to N. <why>", then "k out of n
//! operation(s) failed." and a failure), so scripts written for
//! `kafka-features` read it. `metadata.version` levels print by Kafka's
//! names ("4.1-IV1").

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::UpdateFeaturesRequest;
use sluice_metadata::features::{metadata_version_level, metadata_version_name, METADATA_VERSION};

use super::raw::str_bytes;
use super::ConnectArgs;

#[derive(Args, Debug)]
pub struct FeaturesArgs {
    #[command(subcommand)]
    command: FeaturesCommand,
}

/// What to change, as `kafka-features` takes it.
#[derive(Args, Debug)]
struct Changes {
    /// A feature and its new level, NAME=LEVEL (repeatable).
    #[arg(long = "feature", value_name = "NAME=LEVEL")]
    features: Vec<String>,
    /// The metadata.version to go to, by name ("4.1-IV1", or a release "4.1").
    #[arg(long, value_name = "VERSION")]
    metadata: Option<String>,
    /// Only check the change (validate only); nothing is written.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand, Debug)]
enum FeaturesCommand {
    /// The supported and finalized levels of the cluster's features.
    Describe {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Raise finalized feature levels.
    Upgrade {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        changes: Changes,
    },
    /// Lower finalized feature levels (level 0 removes a feature).
    Downgrade {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        changes: Changes,
        /// An unsafe downgrade (the controller may refuse it, as Kafka's does).
        #[arg(long = "unsafe")]
        unsafe_: bool,
    },
}

pub fn run(args: FeaturesArgs) -> anyhow::Result<()> {
    match args.command {
        FeaturesCommand::Describe { connect } => describe(&connect),
        FeaturesCommand::Upgrade { connect, changes } => update(&connect, &changes, 1),
        FeaturesCommand::Downgrade {
            connect,
            changes,
            unsafe_,
        } => update(&connect, &changes, if unsafe_ { 3 } else { 2 }),
    }
}

/// A level as Kafka's tool prints it.
fn level_text(feature: &str, level: i16) -> String {
    match metadata_version_name(level) {
        Some(name) if feature == METADATA_VERSION => name.to_owned(),
        _ => level.to_string(),
    }
}

fn describe(connect: &ConnectArgs) -> anyhow::Result<()> {
    let c = connect.raw()?;
    let av = &c.api_versions;
    let mut supported: Vec<_> = av.supported_features.iter().collect();
    supported.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    for f in supported {
        let name = f.name.as_str();
        let finalized = av
            .finalized_features
            .iter()
            .find(|x| x.name.as_str() == name)
            .map_or(0, |x| x.max_version_level);
        println!(
            "Feature: {name}\tSupportedMinVersion: {}\tSupportedMaxVersion: {}\tFinalizedVersionLevel: {}\tEpoch: {}",
            level_text(name, f.min_version),
            level_text(name, f.max_version),
            level_text(name, finalized),
            av.finalized_features_epoch
        );
    }
    Ok(())
}

/// The (feature, level) pairs of `changes`, in order.
fn wanted(changes: &Changes) -> anyhow::Result<Vec<(String, i16)>> {
    let mut out = Vec::new();
    if let Some(v) = &changes.metadata {
        let level =
            metadata_version_level(v).ok_or_else(|| anyhow!("unknown metadata.version {v}"))?;
        out.push((METADATA_VERSION.to_owned(), level));
    }
    for f in &changes.features {
        let (name, level) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("--feature takes NAME=LEVEL, not {f}"))?;
        let level: i16 = level
            .trim()
            .parse()
            .map_err(|_| anyhow!("the level of {name} is not a number: {level}"))?;
        out.push((name.trim().to_owned(), level));
    }
    if out.is_empty() {
        bail!("give at least one --feature or --metadata");
    }
    Ok(out)
}

/// UpdateFeatures with `upgrade_type` (1 upgrade, 2 safe, 3 unsafe
/// downgrade); prints one line per feature, Kafka's.
fn update(connect: &ConnectArgs, changes: &Changes, upgrade_type: i8) -> anyhow::Result<()> {
    let wanted = wanted(changes)?;
    let mut c = connect.raw()?;
    let version = c
        .version_for::<UpdateFeaturesRequest>(0)
        .ok_or_else(|| anyhow!("the broker does not support UpdateFeatures"))?;
    if version == 0 && (changes.dry_run || upgrade_type == 3) {
        bail!("the broker's UpdateFeatures v0 has no dry run and no unsafe downgrade");
    }
    // v0 says AllowDowngrade, v1+ the UpgradeType (each only in its versions).
    let keys = wanted
        .iter()
        .map(|(name, level)| {
            let key = FeatureUpdateKey::default()
                .with_feature(str_bytes(name))
                .with_max_version_level(*level);
            if version == 0 {
                key.with_allow_downgrade(upgrade_type != 1)
            } else {
                key.with_upgrade_type(upgrade_type)
            }
        })
        .collect();
    let req = UpdateFeaturesRequest::default()
        .with_timeout_ms(connect.timeout_ms())
        .with_feature_updates(keys)
        .with_validate_only(changes.dry_run);
    let resp = c.send_at(version, &req)?;
    let verb = if upgrade_type == 1 {
        "upgrade"
    } else {
        "downgrade"
    };
    let mut failed = 0;
    for (name, level) in &wanted {
        let shown = level_text(name, *level);
        let own = resp
            .results
            .iter()
            .find(|r| r.feature.as_str() == name)
            .filter(|r| r.error_code != 0);
        let error = match own {
            Some(r) => Some(r.error_message.as_ref().map(|m| m.to_string())),
            None if resp.error_code != 0 => {
                Some(resp.error_message.as_ref().map(|m| m.to_string()))
            }
            None => None,
        };
        match error {
            None if changes.dry_run => println!("{name} can be {verb}d to {shown}."),
            None => println!("{name} was {verb}d to {shown}."),
            Some(message) => {
                failed += 1;
                println!(
                    "Could not {verb} {name} to {}. {}",
                    level,
                    message.unwrap_or_default()
                );
            }
        }
    }
    if failed > 0 {
        bail!("{failed} out of {} operation(s) failed.", wanted.len());
    }
    Ok(())
}

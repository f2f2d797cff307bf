//! `sluice storage`, like `kafka-storage`: `random-uuid`, `format` (writes
//! `meta.properties` into every log dir and the metadata log dir of a node)
//! and `info`. The logic is `sluice_storage::meta_properties`; this module
//! only reads the node's config and prints. Also the start-up check of a
//! node with `process.roles` ([`check_before_serve`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use sluice_auth::sasl::{ScramCredential, ScramMechanism};
use sluice_broker::BrokerConfig;
use sluice_metadata::record::{FeatureLevelRecord, MetadataRecord, UserScramCredentialRecord};
use sluice_storage::meta_properties::{self, MetaProperties};
use sluice_storage::{Clock as _, RealFs, SystemClock};

#[derive(Args, Debug)]
pub struct StorageArgs {
    #[command(subcommand)]
    command: StorageCommand,
}

#[derive(Subcommand, Debug)]
enum StorageCommand {
    /// Print a new random cluster id (Kafka's UUID form, never a reserved one).
    RandomUuid,
    /// Write meta.properties (cluster id, node id, directory id) into every log dir and the metadata log dir.
    Format {
        #[command(flatten)]
        node: NodeConfigArgs,
        /// The cluster id, e.g. from `sluice storage random-uuid`; every node of a cluster gets the same.
        #[arg(long, short = 't', value_name = "ID")]
        cluster_id: String,
        /// Leave already formatted dirs alone and format the others (they must name the same cluster and node).
        #[arg(long, short = 'g')]
        ignore_formatted: bool,
        /// A SCRAM credential the cluster starts with, as Kafka's:
        /// 'SCRAM-SHA-256=[name=admin,password=admin-secret]' (also iterations=N); repeatable.
        #[arg(long = "add-scram", short = 'S', value_name = "CREDENTIAL")]
        add_scram: Vec<String>,
        /// The release the new cluster starts at, e.g. 3.9 or 4.0-IV3 (its
        /// `metadata.version` and the default levels of the other features).
        #[arg(long = "release-version", short = 'r', value_name = "VERSION")]
        release_version: Option<String>,
        /// A feature's level for the new cluster, e.g. transaction.version=0; repeatable.
        #[arg(long = "feature", short = 'f', value_name = "NAME=LEVEL")]
        features: Vec<String>,
    },
    /// Show what meta.properties the node's dirs hold.
    Info {
        #[command(flatten)]
        node: NodeConfigArgs,
    },
}

/// The node's config, as `sluice serve` reads it.
#[derive(Args, Debug)]
struct NodeConfigArgs {
    /// The node's server.properties (optional: --override alone works too).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a config key, overriding the file (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

impl NodeConfigArgs {
    fn load(&self) -> anyhow::Result<BrokerConfig> {
        let overrides = self
            .overrides
            .iter()
            .map(|o| BrokerConfig::parse_override(o))
            .collect::<Result<Vec<_>, _>>()?;
        BrokerConfig::from_properties(self.config.as_deref(), &overrides).with_context(|| {
            match &self.config {
                Some(file) => format!("invalid configuration in {}", file.display()),
                None => "invalid configuration".to_string(),
            }
        })
    }
}

/// The metadata log dir of a node: `metadata.log.dir`, else the first log dir.
pub fn metadata_log_dir(config: &BrokerConfig) -> PathBuf {
    match &config.kraft {
        Some(k) => k.metadata_log_dir.clone(),
        None => config.log_dirs.first().cloned().unwrap_or_default(),
    }
}

pub fn run(args: StorageArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        StorageCommand::RandomUuid => {
            let id = meta_properties::random_uuid();
            writeln!(out, "{}", meta_properties::uuid_to_base64(id))?;
        }
        StorageCommand::Format {
            node,
            cluster_id,
            ignore_formatted,
            add_scram,
            release_version,
            features,
        } => {
            let config = node.load()?;
            let bootstrap = bootstrap_records(release_version.as_deref(), &features, &add_scram)?;
            let (lines, metadata_dir_formatted) =
                format_node(&config, &cluster_id, ignore_formatted)?;
            for line in lines {
                writeln!(out, "{line}")?;
            }
            if metadata_dir_formatted {
                write_bootstrap_file(&config, &bootstrap)?;
                writeln!(out, "{}", describe_levels(&bootstrap))?;
            }
        }
        StorageCommand::Info { node } => {
            let config = node.load()?;
            let (text, ok) = info(&config)?;
            out.write_all(text.as_bytes())?;
            if !ok {
                anyhow::bail!(
                    "the node's directories are not all formatted consistently (see above)"
                );
            }
        }
    }
    Ok(())
}

/// Formats a node's dirs; returns the lines to print and whether the
/// metadata log dir was among the dirs formatted now.
pub fn format_node(
    config: &BrokerConfig,
    cluster_id: &str,
    ignore_formatted: bool,
) -> anyhow::Result<(Vec<String>, bool)> {
    let meta_dir = metadata_log_dir(config);
    let dirs = meta_properties::node_dirs(&config.log_dirs, &meta_dir);
    let outcome = meta_properties::format(
        &RealFs,
        &dirs,
        cluster_id,
        config.node_id,
        ignore_formatted,
        SystemClock.now_ms(),
    )?;
    if outcome.formatted.is_empty() {
        return Ok((
            vec!["All of the log directories are already formatted.".to_string()],
            false,
        ));
    }
    let metadata_dir_formatted = outcome.formatted.iter().any(|(dir, _)| *dir == meta_dir);
    let lines = outcome
        .formatted
        .iter()
        .map(|(dir, id)| {
            let kind = if *dir == meta_dir { "metadata" } else { "data" };
            format!(
                "Formatting {kind} directory {} (cluster id {cluster_id}, node id {}, directory id {}).",
                dir.display(),
                config.node_id,
                meta_properties::uuid_to_base64(*id)
            )
        })
        .collect();
    Ok((lines, metadata_dir_formatted))
}

/// The bootstrap batch `storage format` leaves for a new cluster: the
/// finalized levels of `--release-version` and `--feature` (Kafka's
/// `Formatter` rules, `sluice_metadata::features::bootstrap_levels`; a
/// level of 0 is no record) and the `--add-scram` credentials.
fn bootstrap_records(
    release: Option<&str>,
    features: &[String],
    add_scram: &[String],
) -> anyhow::Result<Vec<MetadataRecord>> {
    use sluice_metadata::features::{bootstrap_levels, SCRAM_METADATA_VERSION_LEVEL};
    let features = features
        .iter()
        .map(|f| parse_feature(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let levels = bootstrap_levels(release, &features).map_err(anyhow::Error::msg)?;
    let mv = levels[sluice_metadata::features::METADATA_VERSION];
    if !add_scram.is_empty() && mv < SCRAM_METADATA_VERSION_LEVEL {
        anyhow::bail!("SCRAM is only supported in metadata.version 3.5-IV2 or later.");
    }
    // metadata.version first: the controller reads it before the others.
    let mut levels: Vec<_> = levels.into_iter().filter(|(_, l)| *l > 0).collect();
    levels.sort_by_key(|(name, _)| name != sluice_metadata::features::METADATA_VERSION);
    let mut records: Vec<MetadataRecord> = levels
        .into_iter()
        .map(|(name, feature_level)| {
            MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name,
                feature_level,
            })
        })
        .collect();
    for a in add_scram {
        records.push(MetadataRecord::UserScramCredential(parse_add_scram(a)?));
    }
    Ok(records)
}

/// "The new cluster starts at metadata.version 3.9-IV0, transaction.version 0."
fn describe_levels(bootstrap: &[MetadataRecord]) -> String {
    use sluice_metadata::features::{metadata_version_name, METADATA_VERSION, TRANSACTION_VERSION};
    let level = |name: &str| {
        bootstrap
            .iter()
            .find_map(|r| match r {
                MetadataRecord::FeatureLevel(f) if f.name == name => Some(f.feature_level),
                _ => None,
            })
            .unwrap_or(0)
    };
    let mv = level(METADATA_VERSION);
    format!(
        "The new cluster starts at {METADATA_VERSION} {}, {TRANSACTION_VERSION} {}.",
        metadata_version_name(mv).unwrap_or("?"),
        level(TRANSACTION_VERSION)
    )
}

/// One `--feature NAME=LEVEL` argument (Kafka's messages when it is not).
fn parse_feature(arg: &str) -> anyhow::Result<(String, i16)> {
    let Some((name, level)) = arg.split_once('=') else {
        anyhow::bail!("Can't parse feature=level string {arg}: equals sign not found.");
    };
    let level = level.trim().parse::<i16>().map_err(|_| {
        anyhow::anyhow!(
            "Can't parse feature=level string {arg}: unable to parse {} as a short.",
            level.trim()
        )
    })?;
    Ok((name.trim().to_owned(), level))
}

/// One `--add-scram` argument, Kafka's `MECHANISM=[name=N,password=P]`
/// (optionally `iterations=I`, default 4096, within Kafka's 4096..=16384),
/// as the credential record with a fresh random salt.
fn parse_add_scram(arg: &str) -> anyhow::Result<UserScramCredentialRecord> {
    let bad = || {
        anyhow::anyhow!(
            "--add-scram {arg:?}: expected e.g. 'SCRAM-SHA-256=[name=alice,password=alice-secret]'"
        )
    };
    let (mechanism, rest) = arg.split_once('=').ok_or_else(bad)?;
    let mechanism = ScramMechanism::from_mechanism_name(mechanism.trim()).ok_or_else(|| {
        anyhow::anyhow!("--add-scram {arg:?}: unknown SCRAM mechanism {mechanism:?}")
    })?;
    let body = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(bad)?;
    let (mut name, mut password, mut iterations) = (None, None, 4096i32);
    for kv in body.split(',') {
        match kv.split_once('=').ok_or_else(bad)? {
            ("name", v) => name = Some(v.trim_matches('"').to_string()),
            ("password", v) => password = Some(v.trim_matches('"').to_string()),
            ("iterations", v) => iterations = v.parse().map_err(|_| bad())?,
            _ => return Err(bad()),
        }
    }
    let (Some(name), Some(password)) = (name, password) else {
        return Err(bad());
    };
    if name.is_empty() {
        anyhow::bail!("--add-scram {arg:?}: Username must not be empty");
    }
    if !(mechanism.min_iterations() as i32..=sluice_controller::MAX_SCRAM_ITERATIONS)
        .contains(&iterations)
    {
        anyhow::bail!(
            "--add-scram {arg:?}: iterations must be between {} and {}",
            mechanism.min_iterations(),
            sluice_controller::MAX_SCRAM_ITERATIONS
        );
    }
    let mut salt = Vec::with_capacity(32);
    for _ in 0..4 {
        salt.extend_from_slice(&sluice_runtime::random_u64().to_le_bytes());
    }
    let c =
        ScramCredential::from_password(mechanism, password.as_bytes(), &salt, iterations as u32);
    Ok(UserScramCredentialRecord {
        name,
        mechanism: mechanism.type_id(),
        salt: c.salt,
        stored_key: c.stored_key,
        server_key: c.server_key,
        iterations,
    })
}

/// Leaves the bootstrap batch in the metadata log dir for the first start
/// (`sluice_broker::metadata::records::BOOTSTRAP_FILE`).
fn write_bootstrap_file(config: &BrokerConfig, records: &[MetadataRecord]) -> anyhow::Result<()> {
    use sluice_broker::metadata::records::{encode_bootstrap_file, BOOTSTRAP_FILE};
    let path = metadata_log_dir(config).join(BOOTSTRAP_FILE);
    let text = encode_bootstrap_file(records)?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `storage info`: one line per dir, then the start-up check's verdict.
fn info(config: &BrokerConfig) -> anyhow::Result<(String, bool)> {
    let meta_dir = metadata_log_dir(config);
    let mut rows = vec![vec![
        "DIRECTORY".to_string(),
        "KIND".into(),
        "CLUSTER-ID".into(),
        "NODE-ID".into(),
        "DIRECTORY-ID".into(),
    ]];
    for dir in meta_properties::node_dirs(&config.log_dirs, &meta_dir) {
        let kind = if dir == meta_dir { "metadata" } else { "data" }.to_string();
        let row = match meta_properties::read(&RealFs, &dir) {
            Ok(Some(MetaProperties {
                cluster_id,
                node_id,
                directory_id,
            })) => vec![
                cluster_id,
                node_id.to_string(),
                directory_id.map_or("-".into(), meta_properties::uuid_to_base64),
            ],
            Ok(None) => vec!["not formatted".to_string()],
            Err(e) => vec![format!("error: {e}")],
        };
        rows.push([vec![dir.display().to_string(), kind], row].concat());
    }
    let mut buf = Vec::new();
    super::print_table(&mut buf, &rows)?;
    let verdict =
        meta_properties::check_formatted(&RealFs, &config.log_dirs, &meta_dir, config.node_id);
    let ok = verdict.is_ok();
    match verdict {
        Ok(cluster) => writeln!(
            buf,
            "\nnode {} of cluster {cluster}: ready to start",
            config.node_id
        )?,
        Err(e) => writeln!(buf, "\nproblem: {e}")?,
    }
    Ok((String::from_utf8(buf)?, ok))
}

/// Before a node with `process.roles` serves: its dirs must have been
/// formatted for this node (see `meta_properties::check_formatted`). A node
/// without `process.roles` formats its data dir itself on first start, as
/// before. No node serves from a `sluice cluster start` dir. Returns the
/// cluster id when checked.
pub fn check_before_serve(config: &BrokerConfig) -> anyhow::Result<Option<String>> {
    // A log dir holding `sluice cluster start`'s node-N dirs would take them
    // for partitions of a topic "node" and delete them as strays.
    let marker = super::cluster_start::CLUSTER_DIR_MARKER;
    if let Some(dir) = config.log_dirs.iter().find(|d| d.join(marker).exists()) {
        anyhow::bail!(
            "log dir {} holds the nodes of `sluice cluster start` ({marker}); serving from it would delete them as stray partitions. Use another log.dir, e.g. {}",
            dir.display(),
            dir.join("single").display()
        );
    }
    let Some(kraft) = &config.kraft else {
        return Ok(None);
    };
    let cluster = check_dirs(&config.log_dirs, &kraft.metadata_log_dir, kraft.node_id)?;
    Ok(Some(cluster))
}

fn check_dirs(log_dirs: &[PathBuf], meta_dir: &Path, node_id: i32) -> anyhow::Result<String> {
    meta_properties::check_formatted(&RealFs, log_dirs, meta_dir, node_id)
        .context("the node's storage does not match its configuration; the node was not started")
}

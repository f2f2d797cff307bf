//! `sluice cluster info`: brokers, controller, cluster id, API versions and
//! features of the broker the tool is connected to.

use std::io::Write as _;

use clap::{Args, Subcommand};
use kafka_protocol::messages::{ApiKey, MetadataRequest};

use super::raw::RawConnection;
use super::topic::metadata;
use super::{print_table, ConnectArgs};

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Brokers, controller, cluster id, supported API versions and features.
    Info {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Also list every API with its version range.
        #[arg(long, short = 'v')]
        versions: bool,
    },
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Info { connect, versions } => info(&connect, versions),
    }
}

fn info(connect: &ConnectArgs, versions: bool) -> anyhow::Result<()> {
    let md = metadata(connect, None)?;
    let mut raw = RawConnection::connect(&connect.brokers, connect.timeout())
        .map_err(|e| connect.unreachable(format!("{e:#}")))?;
    let raw_md = raw
        .send(&MetadataRequest::default().with_topics(Some(Vec::new())), 1)
        .ok();
    let mut out = std::io::stdout().lock();
    if let Some(m) = &raw_md {
        writeln!(
            out,
            "CLUSTER-ID  {}",
            m.cluster_id
                .as_ref()
                .map_or("-".to_string(), |c| c.to_string())
        )?;
        writeln!(out, "CONTROLLER  {}", m.controller_id.0)?;
    }
    writeln!(out)?;
    let mut rows = vec![vec!["BROKER".to_string(), "HOST".into(), "PORT".into()]];
    let mut brokers: Vec<_> = md.brokers().iter().collect();
    brokers.sort_by_key(|b| b.id());
    for b in brokers {
        rows.push(vec![
            b.id().to_string(),
            b.host().to_string(),
            b.port().to_string(),
        ]);
    }
    print_table(&mut out, &rows)?;
    let av = &raw.api_versions;
    writeln!(out)?;
    writeln!(
        out,
        "APIS        {} supported (--versions lists them)",
        av.api_keys.len()
    )?;
    if !av.finalized_features.is_empty() || !av.supported_features.is_empty() {
        writeln!(out)?;
        let mut rows = vec![vec![
            "FEATURE".to_string(),
            "SUPPORTED".into(),
            "FINALIZED".into(),
        ]];
        for f in &av.supported_features {
            let fin = av
                .finalized_features
                .iter()
                .find(|x| x.name == f.name)
                .map_or("-".to_string(), |x| x.max_version_level.to_string());
            rows.push(vec![
                f.name.to_string(),
                format!("{}-{}", f.min_version, f.max_version),
                fin,
            ]);
        }
        print_table(&mut out, &rows)?;
    }
    if versions {
        writeln!(out)?;
        let mut rows = vec![vec!["API".to_string(), "KEY".into(), "VERSIONS".into()]];
        for k in &av.api_keys {
            let name =
                ApiKey::try_from(k.api_key).map_or_else(|_| "?".to_string(), |a| format!("{a:?}"));
            rows.push(vec![
                name,
                k.api_key.to_string(),
                format!("{}-{}", k.min_version, k.max_version),
            ]);
        }
        print_table(&mut out, &rows)?;
    }
    Ok(())
}

//! `meta.properties` of every log dir (Kafka's format: `cluster.id`,
//! `directory.id`, `node.id`, `version`): read and checked at start,
//! written when missing. The cluster id and the metadata log dir's
//! directory id come from here.

use std::sync::Arc;

use sluice_storage::Fs;
use uuid::Uuid;

use super::files::{io_err, parse_meta_properties, read_file, write_durably, META_PROPERTIES};
use super::names::{new_kafka_uuid, uuid_from_base64, uuid_to_base64};
use super::MetadataError;
use crate::config::BrokerConfig;

/// This node's identity as its log dirs record it.
#[derive(Clone, Debug)]
pub struct MetaProperties {
    /// Kafka-style (base64) cluster id.
    pub cluster_id: String,
    /// `directory.id` of the metadata log dir (nil if its file has none).
    pub directory_id: Uuid,
}

/// Reads (or, on first start, creates) `meta.properties` in every log
/// dir; every file must name this node and one cluster.
pub fn open(config: &BrokerConfig, fs: &Arc<dyn Fs>) -> Result<MetaProperties, MetadataError> {
    let mut cluster_id: Option<String> = None;
    for d in &config.log_dirs {
        fs.create_dir_all(d).map_err(io_err("create dir", d))?;
        let path = d.join(META_PROPERTIES);
        let Some(text) = read_file(fs.as_ref(), &path)? else {
            continue;
        };
        let props = parse_meta_properties(&text);
        let node: i32 = props
            .get("node.id")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| MetadataError::Corrupt {
                path: path.clone(),
                reason: "no valid node.id".into(),
            })?;
        if node != config.node_id {
            return Err(MetadataError::NodeIdMismatch {
                path,
                found: node,
                configured: config.node_id,
            });
        }
        let cid = props
            .get("cluster.id")
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| MetadataError::Corrupt {
                path: path.clone(),
                reason: "no cluster.id".into(),
            })?;
        match &cluster_id {
            Some(existing) if *existing != cid => {
                return Err(MetadataError::Corrupt {
                    path,
                    reason: format!("cluster.id {cid} differs from {existing} in another log dir"),
                })
            }
            _ => cluster_id = Some(cid),
        }
    }
    let cluster_id = cluster_id.unwrap_or_else(|| uuid_to_base64(new_kafka_uuid()));
    for d in &config.log_dirs {
        if !fs.exists(&d.join(META_PROPERTIES)) {
            let text = format!(
                "#\n#Written by Sluice\ncluster.id={cluster_id}\ndirectory.id={}\nnode.id={}\nversion=1\n",
                uuid_to_base64(new_kafka_uuid()),
                config.node_id
            );
            write_durably(
                fs.as_ref(),
                d,
                "meta.properties.tmp",
                META_PROPERTIES,
                text.as_bytes(),
            )?;
        }
    }
    let meta_path = super::metadata_log_dir(config).join(META_PROPERTIES);
    let directory_id = read_file(fs.as_ref(), &meta_path)?
        .map(|text| parse_meta_properties(&text))
        .and_then(|props| props.get("directory.id").map(|d| d.trim().to_string()))
        .and_then(|d| uuid_from_base64(&d))
        .unwrap_or(Uuid::nil());
    Ok(MetaProperties {
        cluster_id,
        directory_id,
    })
}

//! The single-node release's metadata files (format version 1 and 2):
//! `topics.meta` and `group_configs.meta`, read once to bootstrap the
//! metadata log on an in-place upgrade and never written again; and
//! `meta.properties` plus the durable-write helper it uses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sluice_record::Offset;
use sluice_storage::{Fs, OpenOptions};
use uuid::Uuid;

use super::names::validate_topic_name;
use super::{MetadataError, TopicMetadata};

/// File names inside the first log dir.
pub(crate) const META_PROPERTIES: &str = "meta.properties";
pub(crate) const TOPICS_FILE: &str = "topics.meta";
pub(crate) const GROUP_CONFIGS_FILE: &str = "group_configs.meta";
/// Most groups that may have config overrides (clients grow this map).
pub const MAX_GROUPS_WITH_CONFIGS: usize = 10_000;
/// Our own metadata files are small; refuse absurd sizes instead of allocating them.
pub(crate) const MAX_METADATA_FILE_BYTES: u64 = 256 * 1024 * 1024;

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> MetadataError + 'a {
    move |source| MetadataError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn read_file(fs: &dyn Fs, path: &Path) -> Result<Option<String>, MetadataError> {
    if !fs.exists(path) {
        return Ok(None);
    }
    let file = fs
        .open(path, &OpenOptions::read())
        .map_err(io_err("open", path))?;
    let len = file.len().map_err(io_err("stat", path))?;
    if len > MAX_METADATA_FILE_BYTES {
        return Err(MetadataError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{len} bytes is larger than any metadata file Sluice writes"),
        });
    }
    let mut buf = vec![0u8; len as usize];
    sluice_storage::fs::read_exact_at(file.as_ref(), &mut buf, 0).map_err(io_err("read", path))?;
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| MetadataError::Corrupt {
            path: path.to_path_buf(),
            reason: "not UTF-8".into(),
        })
}

/// Writes `contents` durably: temp file, fsync, rename, directory fsync.
/// On a full disk the write uses the log dir's metadata headroom
/// (`sluice_storage::headroom`), so deletions can still be recorded.
pub(crate) fn write_durably(
    fs: &dyn Fs,
    dir: &Path,
    tmp_name: &str,
    name: &str,
    contents: &[u8],
) -> Result<(), MetadataError> {
    sluice_storage::headroom::retry_on_no_space(
        fs,
        dir,
        || write_durably_once(fs, dir, tmp_name, name, contents),
        MetadataError::is_no_space,
    )
}

pub(crate) fn write_durably_once(
    fs: &dyn Fs,
    dir: &Path,
    tmp_name: &str,
    name: &str,
    contents: &[u8],
) -> Result<(), MetadataError> {
    let tmp = dir.join(tmp_name);
    let dst = dir.join(name);
    let file = fs
        .open(&tmp, &OpenOptions::create_truncate())
        .map_err(io_err("create", &tmp))?;
    sluice_storage::fs::write_all_at(file.as_ref(), contents, 0)
        .map_err(|(_, e)| io_err("write", &tmp)(e))?;
    file.sync_data().map_err(io_err("fsync", &tmp))?;
    drop(file);
    fs.rename(&tmp, &dst).map_err(io_err("rename", &dst))?;
    fs.sync_dir(dir).map_err(io_err("fsync dir", dir))?;
    Ok(())
}

/// Escapes a key or value for the line formats of the metadata files (also
/// the dynamic broker config file): anything but `[A-Za-z0-9._-,:/]` as `%XX`.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"._-,:/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The inverse of [`percent_encode`]; `None` for a malformed escape or non-UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The first lines of a metadata file: `version=2` and the metadata offset
/// of the last change written to it (tests write old files with it).
#[cfg(test)]
pub(crate) fn encode_header(offset: Offset) -> String {
    format!("version=2\noffset {offset}\n")
}

/// Reads what [`encode_header`] wrote. A `version=1` file (written before
/// metadata offsets existed) has no offset line and counts as offset 0.
pub(crate) fn decode_header<'a>(
    lines: &mut impl Iterator<Item = &'a str>,
    corrupt: impl Fn(String) -> MetadataError,
) -> Result<(Offset, usize), MetadataError> {
    match lines.next() {
        Some("version=1") => Ok((Offset::ZERO, 1)),
        Some("version=2") => {
            let line = lines.next().unwrap_or_default();
            line.strip_prefix("offset ")
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .map(|n| (Offset(n), 2))
                .ok_or_else(|| corrupt(format!("line 2: bad offset line {line:?}")))
        }
        _ => Err(corrupt("missing or unknown version line".into())),
    }
}

/// Serializes the topic registry (one line per topic / config entry).
#[cfg(test)]
pub(crate) fn encode_topics(topics: &BTreeMap<String, TopicMetadata>, offset: Offset) -> String {
    let mut out = encode_header(offset);
    for t in topics.values() {
        let _ = writeln!(
            out,
            "topic {} {} {}",
            t.name,
            t.topic_id.hyphenated(),
            t.partitions
        );
        for (k, v) in &t.configs {
            let _ = writeln!(out, "config {} {}", percent_encode(k), percent_encode(v));
        }
    }
    let _ = writeln!(out, "end {}", topics.len());
    out
}

pub(crate) fn decode_topics(
    path: &Path,
    text: &str,
) -> Result<(BTreeMap<String, TopicMetadata>, Offset), MetadataError> {
    let corrupt = |reason: String| MetadataError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    let (offset, header_lines) = decode_header(&mut lines, corrupt)?;
    let mut topics = BTreeMap::new();
    let mut current: Option<TopicMetadata> = None;
    let mut ended = false;
    for (n, line) in lines.enumerate() {
        let bad = || corrupt(format!("line {}: {line:?}", n + 1 + header_lines));
        if ended {
            return Err(bad());
        }
        let mut parts = line.split(' ');
        match parts.next() {
            Some("topic") => {
                let (Some(name), Some(id), Some(p), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad());
                };
                validate_topic_name(name).map_err(|_| bad())?;
                let topic_id = Uuid::parse_str(id).map_err(|_| bad())?;
                let partitions: i32 = p.parse().map_err(|_| bad())?;
                if partitions < 1 {
                    return Err(bad());
                }
                if let Some(t) = current.take() {
                    topics.insert(t.name.clone(), t);
                }
                current = Some(TopicMetadata {
                    name: name.to_string(),
                    topic_id,
                    partitions,
                    configs: BTreeMap::new(),
                });
            }
            Some("config") => {
                let (Some(k), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(bad());
                };
                let t = current.as_mut().ok_or_else(bad)?;
                let k = percent_decode(k).ok_or_else(bad)?;
                let v = percent_decode(v).ok_or_else(bad)?;
                t.configs.insert(k, v);
            }
            Some("end") => {
                if let Some(t) = current.take() {
                    topics.insert(t.name.clone(), t);
                }
                let count: usize = parts.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
                if count != topics.len() {
                    return Err(corrupt(format!(
                        "end line says {count} topics, found {}",
                        topics.len()
                    )));
                }
                ended = true;
            }
            _ => return Err(bad()),
        }
    }
    if !ended {
        return Err(corrupt("truncated (no end line)".into()));
    }
    Ok((topics, offset))
}

/// Serializes the group config overrides (one line per group / entry).
#[cfg(test)]
pub(crate) fn encode_group_configs(
    groups: &BTreeMap<String, BTreeMap<String, String>>,
    offset: Offset,
) -> String {
    let mut out = encode_header(offset);
    for (g, configs) in groups {
        let _ = writeln!(out, "group {}", percent_encode(g));
        for (k, v) in configs {
            let _ = writeln!(out, "config {} {}", percent_encode(k), percent_encode(v));
        }
    }
    let _ = writeln!(out, "end {}", groups.len());
    out
}

/// The group config overrides and the metadata offset of their last change.
pub(crate) type GroupConfigsFile = (BTreeMap<String, BTreeMap<String, String>>, Offset);

pub(crate) fn decode_group_configs(
    path: &Path,
    text: &str,
) -> Result<GroupConfigsFile, MetadataError> {
    let corrupt = |reason: String| MetadataError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    let (offset, header_lines) = decode_header(&mut lines, corrupt)?;
    let mut groups: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut ended = false;
    for (n, line) in lines.enumerate() {
        let bad = || corrupt(format!("line {}: {line:?}", n + 1 + header_lines));
        if ended {
            return Err(bad());
        }
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["group", g] => {
                let g = percent_decode(g).ok_or_else(bad)?;
                groups.entry(g.clone()).or_default();
                current = Some(g);
            }
            ["config", k, v] => {
                let g = current.as_ref().ok_or_else(bad)?;
                let k = percent_decode(k).ok_or_else(bad)?;
                let v = percent_decode(v).ok_or_else(bad)?;
                groups.entry(g.clone()).or_default().insert(k, v);
            }
            ["end", count] => {
                if count.parse::<usize>().ok() != Some(groups.len()) {
                    return Err(bad());
                }
                ended = true;
            }
            _ => return Err(bad()),
        }
    }
    if !ended {
        return Err(corrupt("truncated (no end line)".into()));
    }
    Ok((groups, offset))
}

pub(crate) fn parse_meta_properties(text: &str) -> BTreeMap<String, String> {
    crate::config::parse_properties(text).into_iter().collect()
}

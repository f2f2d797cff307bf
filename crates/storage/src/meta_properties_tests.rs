use proptest::prelude::*;

use super::*;
use crate::fs::RealFs;

const CLUSTER: &str = "VXIvN_VIRm-xZfpThfl7mA";

/// What Kafka 4.1.2's `kafka-storage format -t VXIvN_VIRm-xZfpThfl7mA` wrote
/// into a log dir of node 1 on 2026-12-04 23:33:21 UTC (od -c of the file).
const KAFKA_FILE: &str = "#\n#Fri Dec 04 23:33:21 UTC 2026\nnode.id=1\ndirectory.id=g8rdJdYNDbXapk4iVLuD4g\nversion=1\ncluster.id=VXIvN_VIRm-xZfpThfl7mA\n";

#[test]
fn encodes_byte_for_byte_as_kafka() {
    let meta = MetaProperties {
        cluster_id: CLUSTER.into(),
        node_id: 1,
        directory_id: uuid_from_base64("g8rdJdYNDbXapk4iVLuD4g"),
    };
    assert_eq!(meta.encode(1_796_427_201_000), KAFKA_FILE);
    let parsed = MetaProperties::parse(Path::new("m"), KAFKA_FILE).unwrap();
    assert_eq!(parsed, meta);
}

#[test]
fn java_dates() {
    assert_eq!(
        java_date_utc(1_709_164_805_000),
        "Thu Feb 29 00:00:05 UTC 2024"
    );
    assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
    assert_eq!(java_date_utc(-1000), "Wed Dec 31 23:59:59 UTC 1969");
}

#[test]
fn kafka_uuid_text_form() {
    let id = uuid_from_base64(CLUSTER).unwrap();
    assert_eq!(id.to_string(), "55722f37-f548-466f-b165-fa5385f97b98");
    assert_eq!(uuid_to_base64(METADATA_TOPIC_ID), "AAAAAAAAAAAAAAAAAAAAAQ");
    // Wrong length, padding, alphabet, or non-zero unused bits.
    for bad in [
        "",
        "VXIvN_VIRm-xZfpThfl7m",
        "VXIvN_VIRm-xZfpThfl7mA==",
        "VXIvN+VIRm-xZfpThfl7mA",
        "VXIvN_VIRm-xZfpThfl7mB",
    ] {
        assert_eq!(uuid_from_base64(bad), None, "{bad}");
    }
    // Reserved or malformed cluster ids are refused, naming the id.
    for bad in [
        "notauuid",
        "AAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAQ",
    ] {
        let e = parse_uuid(bad).unwrap_err();
        assert!(
            matches!(e, StorageError::InvalidClusterId { ref id, .. } if id == bad),
            "{e}"
        );
    }
    assert_eq!(parse_uuid(CLUSTER).unwrap(), id);
}

#[test]
fn random_uuids_are_never_reserved_nor_dash_led() {
    for _ in 0..10_000 {
        let id = random_uuid();
        let s = uuid_to_base64(id);
        assert!(!s.starts_with('-') && s.len() == 22, "{s}");
        assert_eq!(parse_uuid(&s).unwrap(), id);
    }
}

proptest! {
    #[test]
    fn base64_round_trips(v in any::<u128>()) {
        let id = Uuid::from_u128(v);
        prop_assert_eq!(uuid_from_base64(&uuid_to_base64(id)), Some(id));
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,200}") {
        let _ = MetaProperties::parse(Path::new("x"), &text);
        let _ = uuid_from_base64(&text);
    }
}

#[test]
fn parse_refuses_what_it_cannot_trust() {
    let p = Path::new("d/meta.properties");
    for (text, fragment) in [
        (
            "version=0\nbroker.id=1\ncluster.id=x\n",
            "version 0 is not supported",
        ),
        ("cluster.id=x\nnode.id=1\n", "no version"),
        ("version=1\nnode.id=1\n", "no cluster.id"),
        ("version=1\ncluster.id=x\nnode.id=-3\n", "no valid node.id"),
        (
            "version=1\ncluster.id=x\nnode.id=1\ndirectory.id=zz\n",
            "directory.id zz is not a UUID",
        ),
    ] {
        let e = MetaProperties::parse(p, text).unwrap_err();
        assert!(e.to_string().contains(fragment), "{text:?}: {e}");
    }
    // Today's single-node file (another key order, its own header) reads.
    let old = "#\n#Written by Sluice\ncluster.id=abc\ndirectory.id=g8rdJdYNDbXapk4iVLuD4g\nnode.id=7\nversion=1\n";
    let m = MetaProperties::parse(p, old).unwrap();
    assert_eq!((m.cluster_id.as_str(), m.node_id), ("abc", 7));
}

fn dirs(root: &Path, names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| root.join(n)).collect()
}

#[test]
fn format_writes_every_dir_and_refuses_a_second_time() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = RealFs;
    let all = node_dirs(&dirs(tmp.path(), &["a", "b"]), &tmp.path().join("meta"));
    assert_eq!(all.len(), 3);
    let out = format(&fs, &all, CLUSTER, 2, false, 0).unwrap();
    assert_eq!(out.formatted.len(), 3);
    assert!(out.skipped.is_empty());
    let mut ids = Vec::new();
    for (dir, id) in &out.formatted {
        let m = read(&fs, dir).unwrap().unwrap();
        assert_eq!(m.cluster_id, CLUSTER);
        assert_eq!(m.node_id, 2);
        assert_eq!(m.directory_id, Some(*id));
        assert!(!dir.join(TMP).exists());
        ids.push(*id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "each dir has its own directory id");

    // Kafka: "Log directory .../a is already formatted. Use --ignore-formatted ..."
    let e = format(&fs, &all, CLUSTER, 2, false, 0).unwrap_err();
    assert!(
        matches!(e, StorageError::AlreadyFormatted { ref dir } if *dir == all[0]),
        "{e}"
    );
    assert!(e.to_string().contains("--ignore-formatted"));
    // --ignore-formatted leaves formatted dirs alone and formats a new one.
    let before = std::fs::read(all[0].join(META_PROPERTIES)).unwrap();
    let more = [all.clone(), dirs(tmp.path(), &["c"])].concat();
    let out = format(&fs, &more, CLUSTER, 2, true, 0).unwrap();
    assert_eq!(out.skipped, all);
    assert_eq!(out.formatted.len(), 1);
    assert_eq!(std::fs::read(all[0].join(META_PROPERTIES)).unwrap(), before);

    // Another cluster or node id: Kafka's "Invalid cluster.id in: ... Expected X, but read Y".
    let other = uuid_to_base64(random_uuid());
    let e = format(&fs, &more, &other, 2, true, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Invalid cluster.id in: {}. Expected {other}, but read {CLUSTER}",
            all[0].join(META_PROPERTIES).display()
        )
    );
    let e = format(&fs, &more, CLUSTER, 3, true, 0).unwrap_err();
    assert!(e.to_string().starts_with("Invalid node.id in: "), "{e}");
    // A bad cluster id writes nothing.
    let fresh = dirs(tmp.path(), &["fresh"]);
    assert!(format(&fs, &fresh, "notauuid", 1, false, 0).is_err());
    assert!(!fresh[0].exists());
}

#[test]
fn start_up_check() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = RealFs;
    let logs = dirs(tmp.path(), &["a", "b"]);
    let meta_dir = tmp.path().join("meta");
    // Nothing formatted: the metadata dir is named.
    let e = check_formatted(&fs, &logs, &meta_dir, 1).unwrap_err();
    assert!(
        matches!(e, StorageError::NotFormatted { ref dir } if *dir == meta_dir),
        "{e}"
    );
    assert!(e.to_string().contains("sluice storage format"));

    format(
        &fs,
        &[meta_dir.clone(), logs[0].clone()],
        CLUSTER,
        1,
        false,
        0,
    )
    .unwrap();
    // An unformatted log dir is fine (the node formats it at start, as Kafka).
    assert_eq!(check_formatted(&fs, &logs, &meta_dir, 1).unwrap(), CLUSTER);
    // Another node id in the config.
    let e = check_formatted(&fs, &logs, &meta_dir, 5).unwrap_err();
    assert!(
        e.to_string().contains("Invalid node.id")
            && e.to_string().contains("Expected 5, but read 1"),
        "{e}"
    );
    // A log dir of another cluster.
    let other = uuid_to_base64(random_uuid());
    format(&fs, &logs[1..], &other, 1, false, 0).unwrap();
    let e = check_formatted(&fs, &logs, &meta_dir, 1).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("Expected {CLUSTER}, but read {other}")),
        "{e}"
    );
    // A copied dir (same directory id twice).
    std::fs::copy(logs[0].join(META_PROPERTIES), logs[1].join(META_PROPERTIES)).unwrap();
    let e = check_formatted(&fs, &logs, &meta_dir, 1).unwrap_err();
    assert!(e.to_string().contains("is also the id of"), "{e}");
    // The metadata dir may be one of the log dirs.
    assert_eq!(
        check_formatted(&fs, &logs[..1], &logs[0], 1).unwrap(),
        CLUSTER
    );
}

#[test]
fn the_header_date_reads_as_javas_date_to_string() {
    assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
    // 2024-02-29T23:59:58.500Z, a Thursday.
    assert_eq!(
        java_date_utc(1_709_251_198_500),
        "Thu Feb 29 23:59:58 UTC 2024"
    );
}

//! `sluice storage` (random-uuid, format, info) and the start-up check of a
//! node with `process.roles`, driving the real binary; and, with the pinned
//! Kafka 4.1.2 jars, that Kafka's `kafka-storage info` reads what Sluice
//! formats and `sluice storage info` reads what Kafka formats.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sluice")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> String {
    let out = sluice(args);
    assert!(
        out.status.success(),
        "sluice {args:?}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Exit 1 with `fragment` on stderr.
fn fails(args: &[&str], fragment: &str) {
    let out = sluice(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "sluice {args:?}: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains(fragment),
        "sluice {args:?}: '{}' lacks '{fragment}'",
        text(&out.stderr)
    );
}

/// A combined node's server.properties under `dir` (two log dirs, a separate metadata dir).
fn write_config(dir: &Path, node: i32, port: u16) -> String {
    let path = dir.join(format!("node-{node}.properties"));
    std::fs::write(
        &path,
        format!(
            "process.roles=broker,controller\nnode.id={node}\n\
             controller.quorum.voters={node}@127.0.0.1:{}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{}\n\
             controller.listener.names=CONTROLLER\n\
             log.dirs={d}/a,{d}/b\nmetadata.log.dir={d}/meta\nsluice.metrics.listener=\n",
            port + 1,
            port + 1,
            d = dir.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn random_uuid_format_info_and_the_start_up_check() {
    let first = ok(&["storage", "random-uuid"]);
    let id = first.trim();
    assert_eq!(id.len(), 22, "{id:?}");
    assert!(!id.starts_with('-'));
    assert_ne!(ok(&["storage", "random-uuid"]).trim(), id);

    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), 1, 0);
    // Not a UUID, or a reserved one: refused, nothing written.
    fails(
        &["storage", "format", "-t", "notauuid", "-c", &config],
        "invalid cluster id 'notauuid'",
    );
    fails(
        &[
            "storage",
            "format",
            "-t",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "-c",
            &config,
        ],
        "reserved",
    );
    assert!(!tmp.path().join("a").exists());
    // Unformatted: a node with process.roles refuses to start.
    fails(
        &["serve", "-c", &config],
        "have you run `sluice storage format`",
    );
    fails(&["storage", "info", "-c", &config], "not all formatted");

    let out = ok(&["storage", "format", "--cluster-id", id, "--config", &config]);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.ends_with(
            "The new cluster starts at metadata.version 4.1-IV1, transaction.version 2.\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Formatting metadata directory {}/meta",
            tmp.path().display()
        )),
        "{out}"
    );
    for d in ["a", "b", "meta"] {
        let meta = std::fs::read_to_string(tmp.path().join(d).join("meta.properties")).unwrap();
        let lines: Vec<&str> = meta.lines().collect();
        assert_eq!(lines[0], "#");
        assert!(
            lines[1].starts_with('#') && lines[1].contains(" UTC "),
            "{meta}"
        );
        assert_eq!(lines[2], "node.id=1");
        assert!(
            lines[3].starts_with("directory.id=") && lines[3].len() == 13 + 22,
            "{meta}"
        );
        assert_eq!(&lines[4..], ["version=1", &format!("cluster.id={id}")]);
    }
    fails(
        &["storage", "format", "-t", id, "-c", &config],
        "is already formatted. Use --ignore-formatted",
    );
    assert_eq!(
        ok(&[
            "storage",
            "format",
            "-t",
            id,
            "-c",
            &config,
            "--ignore-formatted"
        ])
        .trim(),
        "All of the log directories are already formatted."
    );
    let info = ok(&["storage", "info", "-c", &config]);
    assert!(
        info.contains(&format!("node 1 of cluster {id}: ready to start")),
        "{info}"
    );
    assert_eq!(info.matches(id).count(), 4, "{info}");

    // The same dirs under another node id, or for another cluster: refused with Kafka's message.
    fails(
        &[
            "serve",
            "-c",
            &config,
            "--override",
            "node.id=2",
            "--override",
            "controller.quorum.voters=2@127.0.0.1:1",
        ],
        "Invalid node.id in: ",
    );
    let other = ok(&["storage", "random-uuid"]);
    fails(
        &["storage", "format", "-t", other.trim(), "-c", &config, "-g"],
        &format!(
            "Invalid cluster.id in: {}/a/meta.properties. Expected {}, but read {id}",
            tmp.path().display(),
            other.trim()
        ),
    );

    // A controller-only node whose controller listener is not its voter
    // address is refused: the other voters could not reach it.
    fails(
        &[
            "serve",
            "-c",
            &config,
            "--override",
            "process.roles=controller",
            "--override",
            "listeners=CONTROLLER://127.0.0.1:0",
        ],
        "is not this node's voter address",
    );

    // Formatted: it starts as a one-voter cluster (its controller listener
    // on a free port, announced first, then the client listener) and stops
    // on SIGTERM.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args(["serve", "-c", &config, "--override"])
        .arg(format!("controller.quorum.voters=1@127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!(
            "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        lines.push(line);
    }
    assert_eq!(
        lines[0].trim(),
        format!("listening on CONTROLLER://127.0.0.1:{port}"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("listening on PLAINTEXT://127.0.0.1:"),
        "{lines:?}"
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    // It ran both roles: a voter of its own quorum, and a broker that
    // registered with it.
    assert!(
        err.contains("controller started") && err.contains("broker registered and unfenced"),
        "{err}"
    );
    // The cluster id it served with is the formatted one.
    let props = std::fs::read_to_string(tmp.path().join("a/meta.properties")).unwrap();
    assert!(props.contains(&format!("cluster.id={id}")));
}

fn kafka_lib() -> Option<std::path::PathBuf> {
    let lib = common::root().join(".cache/kafka/lib");
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if lib.join(".complete").exists() && java {
        return Some(lib);
    }
    if common::env_on("SLUICE_REQUIRE_CLIENTS") {
        panic!(
            "java and {} are required (SLUICE_REQUIRE_CLIENTS is set)",
            lib.display()
        );
    }
    eprintln!(
        "\n\n!!! SKIPPED Kafka storage interop: needs java and {}; run scripts/setup !!!\n",
        lib.display()
    );
    None
}

fn storage_tool(lib: &Path, args: &[&str]) -> Output {
    Command::new("java")
        .args(["-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(lib.join("*"))
        .arg("kafka.tools.StorageTool")
        .args(args)
        .output()
        .expect("run java")
}

#[test]
fn kafka_and_sluice_read_each_others_format() {
    let Some(lib) = kafka_lib() else { return };
    let id = ok(&["storage", "random-uuid"]);
    let id = id.trim();

    // Sluice formats, Kafka reads.
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), 3, 0);
    ok(&["storage", "format", "-t", id, "-c", &config]);
    let out = storage_tool(&lib, &["info", "-c", &config]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("cluster.id={id}")) && stdout.contains("node.id=3, version=1"),
        "{stdout}"
    );
    assert!(!stdout.contains("problem"), "{stdout}");

    // Kafka formats, Sluice reads (and a node would start on it).
    let kafka = tempfile::tempdir().unwrap();
    let config = write_config(kafka.path(), 2, 0);
    let out = storage_tool(&lib, &["format", "-t", id, "-c", &config]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let info = ok(&["storage", "info", "-c", &config]);
    assert!(
        info.contains(&format!("node 2 of cluster {id}: ready to start")),
        "{info}"
    );
    // Both wrote the same layout: "#", a date line, then the keys in the
    // same order (values differ only in node.id and directory.id).
    let shape = |p: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#", "{text}");
        assert!(lines[1].starts_with('#') && lines[1].len() == 29, "{text}");
        lines[2..]
            .iter()
            .map(|l| l.split('=').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        shape(&kafka.path().join("a/meta.properties")),
        shape(&tmp.path().join("a/meta.properties"))
    );
}

/// `--release-version` and `--feature` as `kafka-storage format` takes
/// them: Kafka's refusals (checked against Kafka's own tool when its jars
/// are here), and the levels a new node then serves: a single node
/// formatted at 3.9 finalizes metadata.version 3.9-IV0 and leaves
/// transaction.version at 0; one formatted with transaction.version=1 at
/// the latest release finalizes 27 and 1.
#[test]
fn format_feature_levels_as_kafka() {
    let id = ok(&["storage", "random-uuid"]);
    let id = id.trim();
    let refusals: [(&[&str], &str); 6] = [
        (
            &[
                "--release-version",
                "4.1",
                "--feature",
                "metadata.version=27",
            ],
            "Use --release-version instead of --feature metadata.version=X to avoid ambiguity.",
        ),
        (
            &["--feature", "transaction.version=3"],
            "No feature:transaction.version with feature level 3",
        ),
        (
            &["--feature", "no.such=1"],
            "Unsupported feature: no.such. Supported features are: ",
        ),
        (
            &["--release-version", "3.2"],
            "Version 3.2 is not a valid version. The minimum version is 3.3-IV3",
        ),
        (
            &["--feature", "transaction.version"],
            "Can't parse feature=level string transaction.version: equals sign not found.",
        ),
        (
            &[
                "--release-version",
                "3.4",
                "--add-scram",
                "SCRAM-SHA-256=[name=a,password=b]",
            ],
            "SCRAM is only supported in metadata.version 3.5-IV2 or later.",
        ),
    ];
    let lib = kafka_lib();
    for (extra, fragment) in refusals {
        let tmp = tempfile::tempdir().unwrap();
        let config = write_config(tmp.path(), 1, 0);
        let args = [&["storage", "format", "-t", id, "-c", &config], extra].concat();
        fails(&args, fragment);
        // Nothing was formatted.
        assert!(!tmp.path().join("meta/meta.properties").exists());
        if let Some(lib) = &lib {
            let out = storage_tool(lib, &[&["format", "-t", id, "-c", &config], extra].concat());
            let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert!(all.contains(fragment), "Kafka {extra:?}: {all}");
        }
    }

    for (extra, mv, tv) in [
        (&["--release-version", "3.9"][..], 21, 0),
        (&["--feature", "transaction.version=1"][..], 27, 1),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let dirs = format!("log.dirs={}", data.display());
        let args = [&["storage", "format", "-t", id, "--override", &dirs], extra].concat();
        let out = ok(&args);
        assert!(out.contains("metadata.version"), "{out}");
        let broker = sluice_testkit::SluiceProcess::start_in(BIN, &data, &[]).unwrap();
        let described = ok(&[
            "features",
            "describe",
            "--bootstrap-server",
            broker.bootstrap(),
        ]);
        let finalized = |name: &str| -> i64 {
            let line = described
                .lines()
                .find(|l| l.starts_with(&format!("Feature: {name}\t")))
                .unwrap_or_else(|| panic!("{name} missing:\n{described}"));
            let level = line
                .split('\t')
                .find_map(|f| f.strip_prefix("FinalizedVersionLevel: "))
                .unwrap_or_else(|| panic!("{line}"));
            match level {
                "3.9-IV0" => 21,
                "4.1-IV1" => 27,
                n => n.parse().unwrap_or_else(|_| panic!("{line}")),
            }
        };
        assert_eq!(finalized("metadata.version"), mv, "{extra:?}: {described}");
        assert_eq!(
            finalized("transaction.version"),
            tv,
            "{extra:?}: {described}"
        );
    }
}

//! `sluice-check`: exit 0 and "valid" on a clean history, exit 1 with counts
//! and examples on anomalies, exit 2 naming the line of a malformed one.

use std::io::Write;
use std::process::{Command, Output};

use sluice_checker::faults::{inject, Fault};
use sluice_checker::history::write_jsonl;
use sluice_checker::sim::{generate, SimConfig};

fn run(history: &[u8], args: &[&str]) -> Output {
    let mut file = tempfile_in_target();
    file.1.write_all(history).unwrap();
    Command::new(env!("CARGO_BIN_EXE_sluice-check"))
        .args(args)
        .arg(&file.0)
        .output()
        .unwrap()
}

/// A scratch file under the target dir (no tempfile dependency needed).
fn tempfile_in_target() -> (std::path::PathBuf, std::fs::File) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!(
        "history-{}-{}.jsonl",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}

fn jsonl(ops: &[sluice_checker::Op]) -> Vec<u8> {
    let mut buf = Vec::new();
    write_jsonl(&mut buf, ops).unwrap();
    buf
}

#[test]
fn a_valid_history_exits_zero() {
    let out = run(&jsonl(&generate(&SimConfig::default())), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("valid: no anomalies"), "{stdout}");
}

#[test]
fn anomalies_exit_one_with_counts_and_examples() {
    let mut ops = generate(&SimConfig::default());
    assert!(inject(&mut ops, Fault::DropAcked, 3));
    let out = run(&jsonl(&ops), &["--examples", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("LostWrite: 1\n  LostWrite: value "),
        "{stdout}"
    );

    let out = run(&jsonl(&ops), &["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        report["anomalies"][0]["LostWrite"]["value"].is_u64(),
        "{report}"
    );
}

#[test]
fn a_malformed_history_exits_two_naming_the_line() {
    let out = run(
        b"{\"process\":1,\"type\":\"info\",\"f\":\"crash\"}\nnot json\n",
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

//! Kafka's answers, recorded once: a test that compares Sluice with Apache
//! Kafka 4.1.2 runs Kafka's half (a JVM broker or three, and its tools:
//! often a minute or more on 2 cores) only in the full suite, and
//! otherwise compares Sluice with the transcript Kafka gave.
//!
//! - Default (CI's bounded run): Sluice's transcript must equal the file.
//! - `SLUICE_TEST_FULL=1`: Kafka runs the same steps too, and must still give
//!   the recorded file (so a recorded transcript cannot silently go stale).
//! - `SLUICE_RECORD_TRANSCRIPTS=1`: Kafka runs and its transcript is written.
//!
//! The files live in `tests/fixtures/<name>.txt`.

use std::path::PathBuf;

/// `tests/fixtures/<name>.txt`.
pub fn recorded_path(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.txt"))
}

/// Asserts that `ours` is the transcript Kafka 4.1.2 gave for `name`. In
/// the full suite, or to record, `kafka` runs the same steps on Kafka
/// first and must give the recorded transcript.
pub fn same_as_kafka(name: &str, ours: &str, kafka: impl FnOnce() -> String) {
    let path = recorded_path(name);
    let recorded = kafkas(name, kafka);
    if ours != recorded {
        for (i, (s, k)) in ours.lines().zip(recorded.lines()).enumerate() {
            if s != k {
                println!("line {}:\n  kafka:  {k}\n  sluice: {s}", i + 1);
            }
        }
    }
    assert_eq!(
        ours,
        recorded,
        "Sluice differs from Kafka 4.1.2's transcript ({})",
        path.display()
    );
}

/// Kafka 4.1.2's transcript for `name`, for a test that compares it with
/// Sluice's its own way: the recorded file; in the full suite, or to
/// record, `kafka` runs the same steps on Kafka first and must give it.
pub fn kafkas(name: &str, kafka: impl FnOnce() -> String) -> String {
    let path = recorded_path(name);
    if super::env_on("SLUICE_RECORD_TRANSCRIPTS") {
        std::fs::write(&path, kafka()).expect("write the recorded transcript");
    } else if super::env_on("SLUICE_TEST_FULL") {
        let recorded = std::fs::read_to_string(&path).expect("a recorded transcript");
        let theirs = kafka();
        assert_eq!(
            theirs,
            recorded,
            "Kafka 4.1.2 no longer gives the transcript recorded in {}",
            path.display()
        );
    }
    std::fs::read_to_string(&path).expect("a recorded transcript")
}

/// Lines as one transcript text, each ending in a newline.
pub fn lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `(label, answer)` pairs as transcript lines: `label<TAB>answer`.
pub fn pairs_text(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
}

/// [`pairs_text`] read back.
pub fn text_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').expect("label<TAB>answer");
            (k.to_string(), v.to_string())
        })
        .collect()
}

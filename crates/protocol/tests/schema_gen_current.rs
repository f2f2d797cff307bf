//! The committed schema table matches what the generator makes from Kafka's specs.
//! Runs the generator when python3 and the kafka-clients jar are present; says so and
//! passes otherwise (CI machines fetch the jar with tools/kafka/fetch).

use std::path::Path;
use std::process::Command;

#[test]
fn schema_gen_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = crate_dir.join("../..");
    let jar = repo.join(".cache/kafka/lib/kafka-clients-4.1.2.jar");
    if !jar.exists() {
        eprintln!(
            "skipping: {} not present (run tools/kafka/fetch)",
            jar.display()
        );
        return;
    }
    let out = match Command::new("python3")
        .arg(crate_dir.join("gen/gen_schema.py"))
        .arg("--jar")
        .arg(&jar)
        .arg("--check")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping: cannot run python3: {e}");
            return;
        }
    };
    assert!(
        out.status.success(),
        "src/schema_gen.rs is stale; run python3 crates/protocol/gen/gen_schema.py\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

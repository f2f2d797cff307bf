//! The `sluice` binary: broker and command-line tool.
fn main() -> anyhow::Result<()> {
    Ok(())
}

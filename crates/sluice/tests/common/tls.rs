//! Helpers of the TLS process tests (`tests/tls.rs`, `tests/sasl_ssl.rs`):
//! the certificates of `sluice tls init`.

use std::path::Path;
use std::process::Command;

use sluice_testkit::locate_sluice_binary;

/// Runs `sluice tls init --dir <dir>`.
pub fn tls_init(dir: &Path) {
    let out = Command::new(locate_sluice_binary().unwrap())
        .args(["tls", "init", "--dir"])
        .arg(dir)
        .output()
        .expect("run sluice tls init");
    assert!(
        out.status.success(),
        "tls init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("ssl.keystore.type=PEM"), "{printed}");
}

pub fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

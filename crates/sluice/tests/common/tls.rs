//! Helpers of the TLS process tests (`tests/tls.rs`, `tests/sasl_ssl.rs`):
//! the certificates of `sluice tls init`, and new broker certificates
//! from its CA (a renewed keystore for a KIP-226 reload).

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

/// A new broker certificate from `dir`'s test CA (`sluice tls init`):
/// a new key and serial number, subject `O=Sluice test, OU=brokers, CN=<cn>`,
/// for server and client authentication,
/// SANs `localhost` and `127.0.0.1`; key and certificate written to `dir/<file>`.
pub fn issue_broker_pem(dir: &Path, cn: &str, file: &str) -> std::path::PathBuf {
    issue_broker_pem_for(dir, cn, &["localhost", "127.0.0.1"], file)
}

/// [`issue_broker_pem`] with the SubjectAltNames `sans`.
pub fn issue_broker_pem_for(dir: &Path, cn: &str, sans: &[&str], file: &str) -> std::path::PathBuf {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
    };
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca-key.pem")).unwrap()).unwrap();
    // The CA as an issuer: its subject and key are what the new
    // certificate names and is signed with.
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::OrganizationName, "Sluice test");
    ca.distinguished_name
        .push(DnType::CommonName, "Sluice test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let sans = sans.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut params = CertificateParams::new(sans).unwrap();
    params.serial_number = Some(SerialNumber::from(4242u64));
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Sluice test");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "brokers");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Both: a node shows it to clients and to the peers it dials.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, key.serialize_pem() + &cert.pem()).unwrap();
    path
}

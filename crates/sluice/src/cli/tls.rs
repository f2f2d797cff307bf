//! `sluice tls init --dir D`: a test CA, a broker certificate and a client
//! certificate in PEM (with `rcgen`), and the `server.properties` and
//! client settings that use them, for Sluice or Kafka alike.
//!
//! Files written (private keys readable by the owner only):
//! `ca.pem` (the CA certificate: both sides' truststore), `ca-key.pem`,
//! `broker.pem` (the broker's key and certificate: `ssl.keystore.location`
//! with `ssl.keystore.type=PEM`; SANs localhost, 127.0.0.1 and every
//! `--host`), `client.pem` (the same for the client, Java's PEM keystore),
//! `client-cert.pem` and `client-key.pem` (librdkafka's), and three
//! property files: `server-ssl.properties`, `client-ssl.properties` (Java
//! clients and Kafka's tools, `--command-config`) and
//! `client-librdkafka.properties` (kcat `-F`, confluent-kafka).
//! Nothing is overwritten unless `--force`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

#[derive(Args, Debug)]
pub struct TlsArgs {
    #[command(subcommand)]
    command: TlsCommand,
}

#[derive(Subcommand, Debug)]
enum TlsCommand {
    /// Generate a test CA, a broker and a client certificate (PEM) and print the settings that use them.
    Init {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Another name or IP address the broker certificate is valid for (repeatable); localhost and 127.0.0.1 always are.
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        /// The client certificate's common name; its principal is User:CN=<name>,OU=clients,O=Sluice test.
        #[arg(long, default_value = "sluice-client")]
        client_name: String,
        /// Replace files that already exist.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(args: TlsArgs) -> anyhow::Result<()> {
    match args.command {
        TlsCommand::Init {
            dir,
            hosts,
            client_name,
            force,
        } => init(&dir, &hosts, &client_name, force),
    }
}

/// What `init` made, as PEM text.
struct Material {
    ca_cert: String,
    ca_key: String,
    broker_cert: String,
    broker_key: String,
    client_cert: String,
    client_key: String,
    /// The client certificate, DER (its subject names the principal).
    #[cfg_attr(not(test), allow(dead_code))]
    client_der: Vec<u8>,
}

fn generate(hosts: &[String], client_name: &str) -> anyhow::Result<Material> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // rcgen's default subject holds a CN first; start empty so the
    // attributes keep this order (the DN prints most specific first).
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::OrganizationName, "Sluice test");
    ca.distinguished_name
        .push(DnType::CommonName, "Sluice test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for h in hosts {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let broker_key = KeyPair::generate()?;
    let mut broker = CertificateParams::new(names).context("invalid --host")?;
    // rcgen's default subject holds a CN first; start empty so the
    // attributes keep this order (the DN prints most specific first).
    broker.distinguished_name = DistinguishedName::new();
    broker
        .distinguished_name
        .push(DnType::OrganizationName, "Sluice test");
    broker
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "brokers");
    broker
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    broker.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    broker.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let broker_cert = broker.signed_by(&broker_key, &ca_cert, &ca_key)?;

    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    // rcgen's default subject holds a CN first; start empty so the
    // attributes keep this order (the DN prints most specific first).
    client.distinguished_name = DistinguishedName::new();
    client
        .distinguished_name
        .push(DnType::OrganizationName, "Sluice test");
    client
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "clients");
    client
        .distinguished_name
        .push(DnType::CommonName, client_name);
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &ca_cert, &ca_key)?;

    Ok(Material {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        broker_cert: broker_cert.pem(),
        broker_key: broker_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_der: client_cert.der().to_vec(),
        client_key: client_key.serialize_pem(),
    })
}

fn init(dir: &Path, hosts: &[String], client_name: &str, force: bool) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let m = generate(hosts, client_name)?;
    let path = |name: &str| dir.join(name).display().to_string();
    let server = format!(
        "# Sluice or Kafka: an SSL listener beside PLAINTEXT (ssl.client.auth=required for mutual TLS).\n\
         listeners=PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL\n\
         ssl.keystore.type=PEM\n\
         ssl.keystore.location={}\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={}\n\
         ssl.client.auth=required\n",
        path("broker.pem"),
        path("ca.pem"),
    );
    let java = format!(
        "# Java clients and Kafka's tools (--command-config).\n\
         security.protocol=SSL\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={}\n\
         ssl.keystore.type=PEM\n\
         ssl.keystore.location={}\n",
        path("ca.pem"),
        path("client.pem"),
    );
    let librdkafka = format!(
        "# librdkafka: kcat -F <this file>, confluent-kafka.\n\
         security.protocol=ssl\n\
         ssl.ca.location={}\n\
         ssl.certificate.location={}\n\
         ssl.key.location={}\n",
        path("ca.pem"),
        path("client-cert.pem"),
        path("client-key.pem"),
    );
    let files: [(&str, String, bool); 9] = [
        ("ca.pem", m.ca_cert.clone(), false),
        ("ca-key.pem", m.ca_key, true),
        (
            "broker.pem",
            format!("{}{}", m.broker_key, m.broker_cert),
            true,
        ),
        (
            "client.pem",
            format!("{}{}", m.client_key, m.client_cert),
            true,
        ),
        ("client-cert.pem", m.client_cert, false),
        ("client-key.pem", m.client_key, true),
        ("server-ssl.properties", server.clone(), false),
        ("client-ssl.properties", java.clone(), false),
        ("client-librdkafka.properties", librdkafka.clone(), false),
    ];
    if !force {
        if let Some((name, ..)) = files.iter().find(|(name, ..)| dir.join(name).exists()) {
            bail!(
                "{} already exists; pass --force to replace the files in {}",
                dir.join(name).display(),
                dir.display()
            );
        }
    }
    for (name, text, private) in &files {
        write_file(&dir.join(name), text, *private)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Wrote a test CA, a broker and a client certificate to {}\n",
        dir.display()
    )?;
    writeln!(out, "{server}\n{java}\n{librdkafka}")?;
    writeln!(
        out,
        "The client's principal under ssl.client.auth=required: User:CN={client_name},OU=clients,O=Sluice test"
    )?;
    Ok(())
}

fn write_file(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_principal_is_the_one_printed() {
        let m = generate(&[], "alice").unwrap();
        assert_eq!(
            sluice_auth::dn::subject_dn(&m.client_der).unwrap(),
            "CN=alice,OU=clients,O=Sluice test"
        );
    }

    #[test]
    fn init_writes_every_file_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &["broker.example".into()], "alice", false).unwrap();
        for f in [
            "ca.pem",
            "broker.pem",
            "client.pem",
            "client-key.pem",
            "server-ssl.properties",
        ] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        let broker = fs::read_to_string(dir.path().join("broker.pem")).unwrap();
        assert!(broker.contains("PRIVATE KEY") && broker.contains("CERTIFICATE"));
        assert!(init(dir.path(), &[], "alice", false).is_err());
        init(dir.path(), &[], "alice", true).unwrap();
    }
}

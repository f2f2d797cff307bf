//! A certificate's SubjectAltNames, as Java's
//! `X509Certificate.getSubjectAlternativeNames()` lists them: the pairs
//! `[type, value]` that Kafka's `SslFactory` compares when a keystore is
//! reloaded (KIP-226, `ssl.allow.san.changes`).
//!
//! Owns reading the `subjectAltName` extension (OID 2.5.29.17) out of a
//! DER certificate with the bounded reader of [`crate::dn`], and each
//! GeneralName's value in Java's form: the text of DNS names, e-mail
//! addresses and URIs, dotted or colon-separated IP addresses, the dotted
//! OID of a registered id, the RFC 2253 name of a directory name, and the
//! DER bytes of the other kinds.
//!
//! Invariant: as in [`crate::dn`], every length is checked against the
//! bytes that remain: any input gives an answer or an error, never a panic.

use std::collections::BTreeSet;
use std::fmt;

use crate::dn::{bad, expect, name_rfc2253, oid_string, read_tlv, OID, SEQUENCE};
use crate::AuthError;

/// One GeneralName; its `type` number is Java's (`GeneralName` tag).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubjectAltName {
    /// 0: `otherName`, DER bytes of its content.
    Other(Vec<u8>),
    /// 1: `rfc822Name`.
    Email(String),
    /// 2: `dNSName`.
    Dns(String),
    /// 3: `x400Address`, DER bytes.
    X400(Vec<u8>),
    /// 4: `directoryName`, RFC 2253.
    Directory(String),
    /// 5: `ediPartyName`, DER bytes.
    EdiParty(Vec<u8>),
    /// 6: `uniformResourceIdentifier`.
    Uri(String),
    /// 7: `iPAddress`, as Java's `InetAddress.getHostAddress()` writes it.
    Ip(String),
    /// 8: `registeredID`, dotted.
    RegisteredId(String),
}

impl SubjectAltName {
    /// Java's type number of this name.
    pub fn type_number(&self) -> u8 {
        match self {
            Self::Other(_) => 0,
            Self::Email(_) => 1,
            Self::Dns(_) => 2,
            Self::X400(_) => 3,
            Self::Directory(_) => 4,
            Self::EdiParty(_) => 5,
            Self::Uri(_) => 6,
            Self::Ip(_) => 7,
            Self::RegisteredId(_) => 8,
        }
    }
}

/// `[type, value]`, as Java prints one entry of the list.
impl fmt::Display for SubjectAltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.type_number();
        match self {
            Self::Other(b) | Self::X400(b) | Self::EdiParty(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                write!(f, "[{n}, #{hex}]")
            }
            Self::Email(s)
            | Self::Dns(s)
            | Self::Directory(s)
            | Self::Uri(s)
            | Self::Ip(s)
            | Self::RegisteredId(s) => write!(f, "[{n}, {s}]"),
        }
    }
}

/// Prints a set of names as Java prints a set of lists.
pub fn display_set(names: &BTreeSet<SubjectAltName>) -> String {
    let items: Vec<String> = names.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

const SUBJECT_ALT_NAME: &str = "2.5.29.17";
const EXTENSIONS: u8 = 0xa3;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;

/// The SubjectAltNames of a DER-encoded X.509 certificate; empty when it
/// has none.
pub fn subject_alt_names(certificate_der: &[u8]) -> Result<BTreeSet<SubjectAltName>, AuthError> {
    let (cert, _) = expect(certificate_der, SEQUENCE, "certificate is not a SEQUENCE")?;
    let (tbs, _) = expect(cert.content, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let mut rest = tbs.content;
    let (first, after) = read_tlv(rest)?;
    if first.tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    for _ in 0..6 {
        rest = read_tlv(rest)?.1;
    }
    // issuerUniqueID [1], subjectUniqueID [2], extensions [3]: in order,
    // each optional.
    while !rest.is_empty() {
        let (field, after) = read_tlv(rest)?;
        rest = after;
        if field.tag == EXTENSIONS {
            return from_extensions(field.content);
        }
    }
    Ok(BTreeSet::new())
}

/// The names of the `subjectAltName` extension among `extensions` (the
/// content of `[3] EXPLICIT Extensions`).
fn from_extensions(content: &[u8]) -> Result<BTreeSet<SubjectAltName>, AuthError> {
    let (list, _) = expect(content, SEQUENCE, "extensions are not a SEQUENCE")?;
    let mut rest = list.content;
    while !rest.is_empty() {
        let (extension, after) = expect(rest, SEQUENCE, "extension is not a SEQUENCE")?;
        rest = after;
        let (oid, mut fields) = expect(extension.content, OID, "extension id is not an OID")?;
        if oid_string(oid.content)? != SUBJECT_ALT_NAME {
            continue;
        }
        let (maybe_critical, after) = read_tlv(fields)?;
        if maybe_critical.tag == BOOLEAN {
            fields = after;
        }
        let (value, _) = expect(
            fields,
            OCTET_STRING,
            "extension value is not an OCTET STRING",
        )?;
        return general_names(value.content);
    }
    Ok(BTreeSet::new())
}

/// The entries of a DER `GeneralNames`.
fn general_names(der: &[u8]) -> Result<BTreeSet<SubjectAltName>, AuthError> {
    let (names, _) = expect(der, SEQUENCE, "GeneralNames is not a SEQUENCE")?;
    let mut rest = names.content;
    let mut out = BTreeSet::new();
    while !rest.is_empty() {
        let (name, after) = read_tlv(rest)?;
        rest = after;
        let text = || {
            std::str::from_utf8(name.content)
                .map(str::to_string)
                .map_err(|_| bad("SubjectAltName is not text"))
        };
        let bytes = || name.content.to_vec();
        out.insert(match name.tag & 0x1f {
            0 => SubjectAltName::Other(bytes()),
            1 => SubjectAltName::Email(text()?),
            2 => SubjectAltName::Dns(text()?),
            3 => SubjectAltName::X400(bytes()),
            4 => {
                let (dn, _) = expect(name.content, SEQUENCE, "directoryName is not a Name")?;
                SubjectAltName::Directory(name_rfc2253(dn.content)?)
            }
            5 => SubjectAltName::EdiParty(bytes()),
            6 => SubjectAltName::Uri(text()?),
            7 => SubjectAltName::Ip(ip_text(name.content)?),
            8 => SubjectAltName::RegisteredId(oid_string(name.content)?),
            _ => return Err(bad("unknown GeneralName type")),
        });
    }
    Ok(out)
}

/// An IPv4 address dotted, an IPv6 one as eight hex groups without
/// leading zeros and without `::` (Java's `Inet6Address` form).
fn ip_text(octets: &[u8]) -> Result<String, AuthError> {
    match octets.len() {
        4 => Ok(octets
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(".")),
        16 => Ok(octets
            .chunks_exact(2)
            .map(|g| format!("{:x}", u16::from_be_bytes([g[0], g[1]])))
            .collect::<Vec<_>>()
            .join(":")),
        _ => Err(bad("iPAddress is neither 4 nor 16 bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert(sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn every_kind_reads_as_java_lists_it() {
        let der = cert(vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
            SanType::IpAddress("::1".parse().unwrap()),
            SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
            SanType::URI("spiffe://sluice/broker".try_into().unwrap()),
        ]);
        let names = subject_alt_names(&der).unwrap();
        assert_eq!(
            display_set(&names),
            "[[1, ops@example.com], [2, localhost], [6, spiffe://sluice/broker], [7, 0:0:0:0:0:0:0:1], [7, 127.0.0.1]]"
        );
    }

    #[test]
    fn a_certificate_without_the_extension_has_none() {
        assert!(subject_alt_names(&cert(vec![])).unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(subject_alt_names(&[]).is_err());
        assert!(subject_alt_names(&[0x30, 0x03, 0x30, 0x01]).is_err());
        assert!(general_names(&[0x30, 0x03, 0x87, 0x01, 0x00]).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_give_an_answer_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = subject_alt_names(&bytes);
            let _ = general_names(&bytes);
        }

        #[test]
        fn dns_names_round_trip(names in proptest::collection::btree_set("[a-z]{1,10}(\\.[a-z]{1,10}){0,2}", 0..5)) {
            let sans = names.iter().map(|n| SanType::DnsName(n.as_str().try_into().unwrap())).collect();
            let read = subject_alt_names(&cert(sans)).unwrap();
            let want: BTreeSet<_> = names.into_iter().map(SubjectAltName::Dns).collect();
            prop_assert_eq!(read, want);
        }
    }
}

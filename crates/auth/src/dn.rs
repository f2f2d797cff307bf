//! A certificate's subject as Kafka names it: the distinguished name in
//! RFC 2253 form, exactly as Java's `X500Principal.getName()` writes it
//! (what Kafka's `DefaultKafkaPrincipalBuilder` feeds to
//! `ssl.principal.mapping.rules`).
//!
//! Owns a bounded DER reader of just enough of X.509 to reach the subject
//! (`Certificate → TBSCertificate → subject`) and the formatting rules:
//! RDNs in reverse order of the encoding (most specific first), the
//! multi-valued ones joined by `+`; the keywords `CN C L ST O OU STREET DC
//! UID`, any other attribute as its dotted OID; string values escaped as
//! Java escapes them (`, = + < > # ; " \` anywhere, spaces at either end);
//! values of other OIDs or of non-string types as `#` and the lowercase
//! hex of their DER encoding.
//!
//! Invariant: every length is checked against the bytes that remain, so
//! any input (the certificate was already verified by rustls, but this
//! module does not rely on it) gives an answer or an error, never a panic.

use crate::AuthError;

/// One DER element: its tag, its content, and its whole encoding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) content: &'a [u8],
    pub(crate) encoded: &'a [u8],
}

pub(crate) const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
pub(crate) const OID: u8 = 0x06;

pub(crate) fn bad(what: &str) -> AuthError {
    AuthError::InvalidCertificate(what.to_string())
}

/// Reads the element at the start of `input`; returns it and the rest.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), AuthError> {
    let (&tag, rest) = input
        .split_first()
        .ok_or_else(|| bad("truncated element"))?;
    if tag & 0x1f == 0x1f {
        return Err(bad("multi-byte tag"));
    }
    let (&first, mut rest) = rest.split_first().ok_or_else(|| bad("truncated length"))?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad("unsupported or truncated length"));
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(bad("element longer than its container"));
    }
    let header = input.len() - rest.len();
    let tlv = Tlv {
        tag,
        content: &rest[..len],
        encoded: &input[..header + len],
    };
    Ok((tlv, &rest[len..]))
}

pub(crate) fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &str,
) -> Result<(Tlv<'a>, &'a [u8]), AuthError> {
    let (tlv, rest) = read_tlv(input)?;
    if tlv.tag != tag {
        return Err(bad(what));
    }
    Ok((tlv, rest))
}

/// The subject of a DER-encoded X.509 certificate in RFC 2253 form.
pub fn subject_dn(certificate_der: &[u8]) -> Result<String, AuthError> {
    let (cert, _) = expect(certificate_der, SEQUENCE, "certificate is not a SEQUENCE")?;
    let (tbs, _) = expect(cert.content, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let mut rest = tbs.content;
    // version [0] EXPLICIT, optional
    let (first, after) = read_tlv(rest)?;
    if first.tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..4 {
        rest = read_tlv(rest)?.1;
    }
    let (subject, _) = expect(rest, SEQUENCE, "subject is not a SEQUENCE")?;
    name_rfc2253(subject.content)
}

/// Formats the content of a DER `Name` (a SEQUENCE of RDN SETs).
pub(crate) fn name_rfc2253(mut rdns: &[u8]) -> Result<String, AuthError> {
    let mut formatted = Vec::new();
    while !rdns.is_empty() {
        let (rdn, rest) = expect(rdns, SET, "RDN is not a SET")?;
        rdns = rest;
        let mut atvs = rdn.content;
        let mut parts = Vec::new();
        while !atvs.is_empty() {
            let (atv, rest) = expect(atvs, SEQUENCE, "attribute is not a SEQUENCE")?;
            atvs = rest;
            let (oid, value) = expect(atv.content, OID, "attribute type is not an OID")?;
            let (value, _) = read_tlv(value)?;
            parts.push(attribute(&oid_string(oid.content)?, value));
        }
        formatted.push(parts.join("+"));
    }
    formatted.reverse();
    Ok(formatted.join(","))
}

/// The dotted form of an OID's content octets.
pub(crate) fn oid_string(content: &[u8]) -> Result<String, AuthError> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in content.iter().enumerate() {
        value = value
            .checked_mul(128)
            .ok_or_else(|| bad("OID arc too large"))?
            | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let (a, b) = match value {
                    v if v < 40 => (0, v),
                    v if v < 80 => (1, v - 40),
                    v => (2, v - 80),
                };
                arcs.extend([a, b]);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i + 1 == content.len() {
            return Err(bad("truncated OID"));
        }
    }
    if arcs.is_empty() {
        return Err(bad("empty OID"));
    }
    Ok(arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

/// The RFC 2253 keyword Java uses for an attribute type, if any.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The text of a DER string value of the types Java prints as text.
fn string_value(value: &Tlv<'_>) -> Option<String> {
    match value.tag {
        // UTF8String
        0x0c => std::str::from_utf8(value.content).ok().map(str::to_string),
        // PrintableString, IA5String: ASCII; T61String, GeneralString: as
        // Java reads them, one byte a character.
        0x13 | 0x16 | 0x14 | 0x1b => Some(value.content.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16BE
        0x1e if value.content.len() % 2 == 0 => {
            let units: Vec<u16> = value
                .content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

fn attribute(oid: &str, value: Tlv<'_>) -> String {
    match (keyword(oid), string_value(&value)) {
        (Some(k), Some(s)) => format!("{k}={}", escape(&s)),
        (k, _) => {
            let hex: String = value.encoded.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}=#{hex}", k.unwrap_or(oid))
        }
    }
}

/// Escapes a value as Java's `AVA.toRFC2253String` does.
pub fn escape(value: &str) -> String {
    const ESCAPEES: &str = ",=+<>#;\"\\";
    let mut chars: Vec<(bool, char)> = Vec::with_capacity(value.len());
    for c in value.chars() {
        if c == '\0' {
            chars.push((true, '0'));
            chars.push((false, '0'));
        } else {
            chars.push((ESCAPEES.contains(c), c));
        }
    }
    let blank = |c: char| c == ' ' || c == '\r';
    let lead = chars.iter().take_while(|(e, c)| !e && blank(*c)).count();
    let trail = chars.len()
        - chars
            .iter()
            .rev()
            .take_while(|(e, c)| !e && blank(*c))
            .count();
    let mut out = String::with_capacity(value.len() + 4);
    for (i, (escaped, c)) in chars.into_iter().enumerate() {
        if escaped || i < lead || i >= trail.max(lead) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cert_with(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subjects_print_most_specific_first_with_java_keywords() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::StateOrProvinceName, "CA");
        dn.push(rcgen::DnType::LocalityName, "Palo Alto");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::OrganizationalUnitName, "Eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        assert_eq!(
            subject_dn(&cert_with(dn)).unwrap(),
            "CN=alice,OU=Eng,O=Acme\\, Inc.,L=Palo Alto,ST=CA,C=US"
        );
    }

    #[test]
    fn unknown_attribute_types_print_as_oid_and_hex() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            rcgen::DnValue::Ia5String("a@b".try_into().unwrap()),
        );
        dn.push(rcgen::DnType::CommonName, "x");
        assert_eq!(
            subject_dn(&cert_with(dn)).unwrap(),
            "CN=x,1.2.840.113549.1.9.1=#1603614062"
        );
    }

    #[test]
    fn values_are_escaped_as_java_does() {
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape("a=b#c"), "a\\=b\\#c");
        assert_eq!(escape(" x "), "\\ x\\ ");
        assert_eq!(escape("\"q\"\\"), "\\\"q\\\"\\\\");
        assert_eq!(escape("plain text"), "plain text");
        assert_eq!(escape("  "), "\\ \\ ");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(subject_dn(&[]).is_err());
        assert!(subject_dn(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(subject_dn(&[0x30, 0x03, 0x30, 0x01]).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_give_an_answer_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = subject_dn(&bytes);
        }

        #[test]
        fn common_names_round_trip_through_unescaping(cn in "[ -~]{1,24}") {
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::CommonName, cn.as_str());
            let printed = subject_dn(&cert_with(dn)).unwrap();
            let value = printed.strip_prefix("CN=").unwrap();
            // Removing each escaping backslash gives the value back.
            let mut unescaped = String::new();
            let mut chars = value.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    unescaped.push(chars.next().unwrap());
                } else {
                    unescaped.push(c);
                }
            }
            prop_assert_eq!(unescaped, cn);
        }
    }
}

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::json;

use super::*;
use crate::sasl::{
    ClientInitialResponse, Credentials, SaslMechanism, SaslServer, SaslStep, ScramCredential,
    ScramMechanism,
};

const NOW: i64 = 1_800_000_000_000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unsigned(header: serde_json::Value, claims: serde_json::Value) -> String {
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn claims(sub: &str, exp_s: i64) -> serde_json::Value {
    json!({"sub": sub, "exp": exp_s, "iat": NOW / 1000 - 10, "scope": "read write"})
}

/// An ES256 key: its JWK and a signer.
struct EcKey {
    pair: EcdsaKeyPair,
    kid: &'static str,
}

impl EcKey {
    fn new(kid: &'static str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        EcKey { pair, kid }
    }

    fn jwk(&self) -> serde_json::Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
               "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    }

    fn sign(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }

    fn token(&self, claims: serde_json::Value) -> String {
        self.sign(
            json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }
}

fn validator(keys: &[serde_json::Value], config: JwksValidatorConfig) -> JwksValidator {
    let doc = json!({ "keys": keys }).to_string();
    JwksValidator {
        keys: JsonWebKeySet::parse(doc.as_bytes()).unwrap(),
        config,
    }
}

#[test]
fn unsecured_tokens_as_kafkas_default_validator() {
    let v = UnsecuredValidator::default();
    let none = json!({"alg": "none"});
    let t = v
        .validate(
            &unsigned(none.clone(), claims("alice", NOW / 1000 + 60)),
            NOW,
        )
        .unwrap();
    assert_eq!(t.principal, "alice");
    assert_eq!(t.expires_at_ms, NOW + 60_000);
    assert_eq!(t.scope, ["read", "write"]);
    // Expired, issued in the future, no subject, a signed-looking token.
    let expired = unsigned(none.clone(), claims("alice", NOW / 1000 - 1));
    assert_eq!(
        v.validate(&expired, NOW).unwrap_err().status,
        "invalid_token"
    );
    let future = unsigned(
        none.clone(),
        json!({"sub": "a", "exp": NOW / 1000 + 60, "iat": NOW / 1000 + 30}),
    );
    assert!(v.validate(&future, NOW).is_err());
    let skewed = UnsecuredValidator {
        clock_skew_ms: 60_000,
        ..UnsecuredValidator::default()
    };
    assert!(skewed.validate(&future, NOW).is_ok());
    assert!(skewed.validate(&expired, NOW).is_ok());
    assert!(v
        .validate(
            &unsigned(none.clone(), json!({"exp": NOW / 1000 + 60})),
            NOW
        )
        .is_err());
    let hs = unsigned(json!({"alg": "HS256"}), claims("alice", NOW / 1000 + 60));
    assert!(v.validate(&hs, NOW).is_err());
    let with_sig = format!(
        "{}c2ln",
        unsigned(none.clone(), claims("a", NOW / 1000 + 60))
    );
    assert!(v.validate(&with_sig, NOW).is_err());
    // Required scope.
    let options = [
        ("unsecuredValidatorRequiredScope", "read admin"),
        ("unsecuredValidatorPrincipalClaimName", "client_id"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let scoped = UnsecuredValidator::from_jaas_options(&options).unwrap();
    let token = unsigned(
        none,
        json!({"client_id": "svc", "exp": NOW / 1000 + 60, "scope": ["read", "admin"]}),
    );
    assert_eq!(scoped.validate(&token, NOW).unwrap().principal, "svc");
    let e = scoped
        .validate(
            &unsigned(
                json!({"alg": "none"}),
                json!({"client_id": "svc", "exp": NOW / 1000 + 60, "scope": "read"}),
            ),
            NOW,
        )
        .unwrap_err();
    assert_eq!(e.status, "insufficient_scope");
    assert_eq!(
        e.challenge(),
        r#"{"status":"insufficient_scope", "scope":"read admin"}"#
    );
}

#[test]
fn signed_tokens_verify_only_with_the_jwks_key() {
    let key = EcKey::new("k1");
    let other = EcKey::new("k2");
    let v = validator(&[key.jwk()], JwksValidatorConfig::default());
    let good = key.token(claims("alice", NOW / 1000 + 60));
    assert_eq!(v.validate(&good, NOW).unwrap().principal, "alice");
    // Signed by a key not in the set (same kid, or its own).
    let forged = other.sign(
        json!({"alg": "ES256", "kid": "k1"}),
        claims("alice", NOW / 1000 + 60),
    );
    assert!(v.validate(&forged, NOW).is_err());
    assert!(v
        .validate(&other.token(claims("alice", NOW / 1000 + 60)), NOW)
        .is_err());
    // A payload changed after signing.
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims("admin", NOW / 1000 + 60).to_string().as_bytes()),
        parts[2]
    );
    assert!(v.validate(&tampered, NOW).is_err());
    // alg none is never accepted by the signed validator.
    assert!(v
        .validate(
            &unsigned(json!({"alg": "none"}), claims("alice", NOW / 1000 + 60)),
            NOW
        )
        .is_err());
    // Without a kid, the fitting keys are tried.
    let no_kid = key.sign(json!({"alg": "ES256"}), claims("bob", NOW / 1000 + 60));
    let both = validator(&[other.jwk(), key.jwk()], JwksValidatorConfig::default());
    assert_eq!(both.validate(&no_kid, NOW).unwrap().principal, "bob");
    // Expiry within the 30 s default skew, and beyond it.
    let just_expired = key.token(claims("alice", NOW / 1000 - 10));
    assert!(v.validate(&just_expired, NOW).is_ok());
    let expired = key.token(claims("alice", NOW / 1000 - 31));
    assert!(v.validate(&expired, NOW).is_err());
}

#[test]
fn audience_issuer_and_subject_claim_are_checked() {
    let key = EcKey::new("k1");
    let v = validator(
        &[key.jwk()],
        JwksValidatorConfig {
            expected_audience: vec!["kafka".into(), "sluice".into()],
            expected_issuer: Some("https://idp.example".into()),
            sub_claim_name: "azp".into(),
            ..JwksValidatorConfig::default()
        },
    );
    let exp = NOW / 1000 + 60;
    let ok = key.token(
        json!({"azp": "svc", "exp": exp, "aud": ["other", "kafka"], "iss": "https://idp.example"}),
    );
    assert_eq!(v.validate(&ok, NOW).unwrap().principal, "svc");
    for bad in [
        json!({"azp": "svc", "exp": exp, "aud": "other", "iss": "https://idp.example"}),
        json!({"azp": "svc", "exp": exp, "aud": "kafka", "iss": "https://evil.example"}),
        json!({"azp": "svc", "exp": exp, "aud": "kafka"}),
        json!({"sub": "svc", "exp": exp, "aud": "kafka", "iss": "https://idp.example"}),
        json!({"azp": "svc", "aud": "kafka", "iss": "https://idp.example"}),
        json!({"azp": "svc", "exp": "soon", "aud": "kafka", "iss": "https://idp.example"}),
    ] {
        assert!(v.validate(&key.token(bad.clone()), NOW).is_err(), "{bad}");
    }
}

#[test]
fn rsa_keys_verify_rs256_and_ps256() {
    // A test key made for this test (`openssl genpkey`, PKCS#1 DER).
    let der = include_bytes!("test-rsa-2048.der");
    let pair = RsaKeyPair::from_der(der).unwrap();
    let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
    let jwk = json!({"kty": "RSA", "kid": "r1", "n": b64(&public.n), "e": b64(&public.e)});
    let v = validator(&[jwk], JwksValidatorConfig::default());
    for (alg, padding) in [
        (
            "RS256",
            &signature::RSA_PKCS1_SHA256 as &dyn signature::RsaEncoding,
        ),
        ("PS256", &signature::RSA_PSS_SHA256),
        ("RS512", &signature::RSA_PKCS1_SHA512),
    ] {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": alg, "kid": "r1"}).to_string().as_bytes()),
            b64(claims("carol", NOW / 1000 + 60).to_string().as_bytes())
        );
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(padding, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .unwrap();
        let token = format!("{input}.{}", b64(&sig));
        assert_eq!(v.validate(&token, NOW).unwrap().principal, "carol", "{alg}");
        // The same signature under another algorithm's name fails.
        let renamed = token.replacen(
            &b64(json!({"alg": alg, "kid": "r1"}).to_string().as_bytes()),
            &b64(json!({"alg": "RS384", "kid": "r1"}).to_string().as_bytes()),
            1,
        );
        assert!(v.validate(&renamed, NOW).is_err(), "{alg}");
    }
}

#[test]
fn jwks_documents_are_bounded_and_need_a_signing_key() {
    assert!(JsonWebKeySet::parse(b"{}").is_err());
    assert!(JsonWebKeySet::parse(b"not json").is_err());
    let enc_only = json!({"keys": [{"kty": "EC", "crv": "P-256", "use": "enc",
        "x": b64(&[1; 32]), "y": b64(&[2; 32])}]});
    assert!(JsonWebKeySet::parse(enc_only.to_string().as_bytes()).is_err());
    let big = vec![b' '; jwks::MAX_JWKS_BYTES + 1];
    assert!(JsonWebKeySet::parse(&big).is_err());
    let odd = json!({"keys": [{"kty": "oct", "k": "AAAA"}, {"kty": "EC", "crv": "P-521"},
        {"kty": "EC", "crv": "P-256", "x": b64(&[1; 31]), "y": b64(&[2; 32])},
        EcKey::new("ok").jwk()]});
    assert_eq!(
        JsonWebKeySet::parse(odd.to_string().as_bytes())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn client_first_messages_as_kafka_reads_them() {
    let m = ClientInitialResponse::parse(b"n,,\x01auth=Bearer abc.def.\x01\x01").unwrap();
    assert_eq!(m.token, "abc.def.");
    assert_eq!(m.authorization_id, None);
    let m = ClientInitialResponse::parse(
        b"n,a=alice,\x01host=broker\x01auth=bearer a.b.c\x01traceId=42\x01\x01",
    )
    .unwrap();
    assert_eq!((m.authorization_id, m.token), (Some("alice"), "a.b.c"));
    for bad in [
        &b""[..],
        b"n,,",
        b"y,,\x01auth=Bearer a.b.c\x01\x01",
        b"n,,\x01auth=Basic a.b.c\x01\x01",
        b"n,,\x01auth=Bearer a b\x01\x01",
        b"n,,\x01host=x\x01\x01",
        b"n,,\x01auth=Bearer a.b.c\x01",
        b"n,,\x011x=y\x01auth=Bearer a.b.c\x01\x01",
        b"n,b=alice,\x01auth=Bearer a.b.c\x01\x01",
    ] {
        assert!(
            ClientInitialResponse::parse(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// The broker's side of the seam: one validator.
struct Bearer(UnsecuredValidator);

impl Credentials for Bearer {
    fn plain_password(&self, _: &str) -> Option<String> {
        None
    }
    fn scram_credential(&self, _: ScramMechanism, _: &str) -> Option<ScramCredential> {
        None
    }
    fn validate_bearer(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        self.0.validate(token, NOW)
    }
}

#[test]
fn the_sasl_exchange_completes_or_fails_as_kafkas() {
    let creds = Bearer(UnsecuredValidator::default());
    let token = unsigned(json!({"alg": "none"}), claims("alice", NOW / 1000 + 60));
    let first = |authzid: &str, token: &str| format!("n,{authzid},\x01auth=Bearer {token}\x01\x01");
    let mut s = SaslServer::new(SaslMechanism::OAuthBearer, String::new());
    assert_eq!(
        s.evaluate(first("", &token).as_bytes(), &creds).unwrap(),
        SaslStep::Complete {
            response: Vec::new(),
            authorization_id: "alice".into(),
            credential_expires_at_ms: Some((NOW / 1000 + 60) * 1000),
        }
    );
    assert!(
        s.evaluate(b"\x01", &creds).is_err(),
        "no token after the end"
    );
    // An invalid token: Kafka's JSON challenge, then the failure on %x01.
    let expired = unsigned(json!({"alg": "none"}), claims("alice", NOW / 1000 - 60));
    let mut s = SaslServer::new(SaslMechanism::OAuthBearer, String::new());
    let step = s.evaluate(first("", &expired).as_bytes(), &creds).unwrap();
    assert_eq!(
        step,
        SaslStep::Continue(br#"{"status":"invalid_token"}"#.to_vec())
    );
    assert_eq!(
        s.evaluate(b"\x01", &creds).unwrap_err(),
        crate::AuthError::SaslAuthentication(r#"{"status":"invalid_token"}"#.into())
    );
    // An authorization id other than the token's principal.
    let mut s = SaslServer::new(SaslMechanism::OAuthBearer, String::new());
    let e = s
        .evaluate(first("a=bob", &token).as_bytes(), &creds)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("different from the token's principal name (alice)"),
        "{e}"
    );
}

proptest::proptest! {
    /// No bytes make the parsers panic.
    #[test]
    fn arbitrary_messages_and_tokens_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = ClientInitialResponse::parse(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = UnsecuredValidator::default().validate(s, NOW);
            let _ = JsonWebKeySet::parse(s.as_bytes());
        }
    }

    /// Tokens with any claims either validate or are refused, never panic;
    /// those that validate carry the subject given.
    #[test]
    fn unsecured_claims_round_trip(sub in "[a-zA-Z0-9@._-]{1,20}", exp in -1_000_000_000i64..5_000_000_000) {
        let token = unsigned(json!({"alg": "none"}), json!({"sub": sub, "exp": exp}));
        match UnsecuredValidator::default().validate(&token, NOW) {
            Ok(t) => proptest::prop_assert_eq!(t.principal, sub),
            Err(e) => proptest::prop_assert!(exp * 1000 < NOW, "{:?}", e),
        }
    }
}

//! Kafka's inline JAAS syntax (`sasl.jaas.config` and its
//! `listener.name.<listener>.<mechanism>.sasl.jaas.config` forms), read as
//! Kafka's `JaasConfig` reads it with a `java.io.StreamTokenizer`:
//!
//! ```text
//! <LoginModuleClass> <flag> (<key>=<value>)* ;
//! ```
//!
//! Words are letters, digits, `.`, `-`, `_`, `$` (and non-ASCII), starting
//! with a letter, `-`, `_`, `$` or non-ASCII; values may be quoted with
//! `"` or `'` (backslash escapes as Java's tokenizer knows them); `//`,
//! `/* */` and a lone `/` start comments. A bare number is not a value, as
//! in Kafka ("Value not specified for key"). Flags are `required`,
//! `requisite`, `sufficient` or `optional` in any case.
//!
//! Invariant: parsing never panics and is linear in the input.

use std::collections::BTreeMap;

use crate::AuthError;

/// One login module entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JaasEntry {
    /// The login module class, e.g.
    /// `org.apache.kafka.common.security.plain.PlainLoginModule`.
    pub login_module: String,
    /// The control flag, lower case.
    pub flag: String,
    /// The options, in key order (a repeated key keeps its last value).
    pub options: BTreeMap<String, String>,
}

impl JaasEntry {
    /// PLAIN's users as Kafka's `PlainServerCallbackHandler` finds them:
    /// each `user_<name>="<password>"` option.
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("user_").map(|u| (u.to_string(), v.clone())))
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// A word or a quoted string.
    Word(String),
    /// A number (no string value in Java's tokenizer).
    Number,
    Char(char),
}

struct Tokenizer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '-' | '_' | '$') || (c as u32) >= 160
}

fn is_word_part(c: char) -> bool {
    is_word_start(c) || c.is_ascii_digit() || c == '.'
}

impl<'a> Tokenizer<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            chars: s.chars().peekable(),
        }
    }

    fn next_token(&mut self) -> Result<Option<Token>, AuthError> {
        loop {
            let Some(c) = self.chars.next() else {
                return Ok(None);
            };
            if (c as u32) <= 32 {
                continue;
            }
            if c == '/' {
                match self.chars.peek() {
                    Some('*') => {
                        self.chars.next();
                        let mut prev = '\0';
                        loop {
                            match self.chars.next() {
                                None => return Ok(None),
                                Some('/') if prev == '*' => break,
                                Some(x) => prev = x,
                            }
                        }
                    }
                    // `//` and a lone `/` (the default comment char): to end of line.
                    _ => {
                        for x in self.chars.by_ref() {
                            if x == '\n' || x == '\r' {
                                break;
                            }
                        }
                    }
                }
                continue;
            }
            if c == '"' || c == '\'' {
                return self.quoted(c).map(|s| Some(Token::Word(s)));
            }
            if is_word_start(c) {
                let mut word = String::from(c);
                while let Some(&x) = self.chars.peek() {
                    if !is_word_part(x) {
                        break;
                    }
                    word.push(x);
                    self.chars.next();
                }
                return Ok(Some(Token::Word(word)));
            }
            if c.is_ascii_digit() || c == '.' {
                while let Some(&x) = self.chars.peek() {
                    if !(x.is_ascii_digit() || x == '.') {
                        break;
                    }
                    self.chars.next();
                }
                return Ok(Some(Token::Number));
            }
            return Ok(Some(Token::Char(c)));
        }
    }

    /// A quoted string after its opening quote. Like Java's tokenizer, an
    /// end of line or of input also ends it.
    fn quoted(&mut self, quote: char) -> Result<String, AuthError> {
        let mut out = String::new();
        while let Some(c) = self.chars.next() {
            match c {
                c if c == quote => return Ok(out),
                '\n' | '\r' => return Ok(out),
                '\\' => match self.chars.next() {
                    None => break,
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('a') => out.push('\u{7}'),
                    Some('v') => out.push('\u{b}'),
                    Some(d @ '0'..='7') => {
                        let mut v = d as u32 - '0' as u32;
                        let max_digits = if d <= '3' { 2 } else { 1 };
                        for _ in 0..max_digits {
                            match self.chars.peek() {
                                Some(&e @ '0'..='7') => {
                                    v = v * 8 + (e as u32 - '0' as u32);
                                    self.chars.next();
                                }
                                _ => break,
                            }
                        }
                        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                    Some(other) => out.push(other),
                },
                c => out.push(c),
            }
        }
        Ok(out)
    }
}

fn jaas_error(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidJaasConfig(reason.into())
}

/// Parses a JAAS config string into its entries (at least one).
pub fn parse_jaas_config(s: &str) -> Result<Vec<JaasEntry>, AuthError> {
    let mut tokens = Tokenizer::new(s);
    let mut entries = Vec::new();
    while let Some(first) = tokens.next_token()? {
        let Token::Word(login_module) = first else {
            return Err(jaas_error("login module class name expected"));
        };
        let flag = match tokens.next_token()? {
            None => {
                return Err(jaas_error(
                    "Login module control flag not specified in JAAS config",
                ))
            }
            Some(Token::Word(f)) => f.to_ascii_lowercase(),
            Some(_) => {
                return Err(jaas_error(
                    "Login module control flag is not available in the JAAS config",
                ))
            }
        };
        if !matches!(
            flag.as_str(),
            "required" | "requisite" | "sufficient" | "optional"
        ) {
            return Err(jaas_error(format!(
                "Invalid login module control flag '{flag}' in JAAS config"
            )));
        }
        let mut options = BTreeMap::new();
        let mut terminated = false;
        while let Some(t) = tokens.next_token()? {
            let key = match t {
                Token::Char(';') => {
                    terminated = true;
                    break;
                }
                Token::Word(k) => k,
                _ => return Err(jaas_error("option name expected in JAAS config")),
            };
            match (tokens.next_token()?, tokens.next_token()?) {
                (Some(Token::Char('=')), Some(Token::Word(v))) => {
                    options.insert(key, v);
                }
                _ => {
                    return Err(jaas_error(format!(
                        "Value not specified for key '{key}' in JAAS config"
                    )))
                }
            }
        }
        if !terminated {
            return Err(jaas_error("JAAS config entry not terminated by semi-colon"));
        }
        entries.push(JaasEntry {
            login_module,
            flag,
            options,
        });
    }
    if entries.is_empty() {
        return Err(jaas_error("Login module not specified in JAAS config"));
    }
    Ok(entries)
}

/// The one entry a listener's `<mechanism>.sasl.jaas.config` must hold, as
/// Kafka's `JaasContext` requires.
pub fn parse_single_entry(s: &str) -> Result<JaasEntry, AuthError> {
    let mut entries = parse_jaas_config(s)?;
    if entries.len() != 1 {
        return Err(jaas_error(format!(
            "JAAS config property contains {} login modules, should be 1 module",
            entries.len()
        )));
    }
    Ok(entries.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kafka_documentation_example() {
        let e = parse_single_entry(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
                username="admin"
                password="admin-secret"
                user_admin="admin-secret"
                user_alice="alice-secret";"#,
        )
        .unwrap();
        assert_eq!(
            e.login_module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(e.flag, "required");
        let users = e.plain_users();
        assert_eq!(users.len(), 2);
        assert_eq!(users["admin"], "admin-secret");
        assert_eq!(users["alice"], "alice-secret");
        assert_eq!(e.options["username"], "admin");
    }

    #[test]
    fn quoting_escapes_comments_and_bare_words() {
        let e = parse_single_entry(
            "// leading comment\n x.Y REQUIRED /* inline */ user_bob='it' user_c=\"a\\\"b;c\" k=word-1.2;",
        )
        .unwrap();
        assert_eq!(e.flag, "required");
        assert_eq!(e.options["user_bob"], "it");
        // After 'it' comes a second quoted token 's' with no '=': refused.
        assert!(parse_single_entry("m required a='it''s';").is_err());
        assert_eq!(e.options["user_c"], "a\"b;c");
        assert_eq!(e.options["k"], "word-1.2");
    }

    #[test]
    fn kafka_errors() {
        assert!(parse_jaas_config("").is_err());
        assert!(parse_jaas_config("m").is_err());
        assert!(parse_jaas_config("m maybe;").is_err());
        assert!(parse_jaas_config("m required a=\"b\"").is_err());
        assert!(parse_jaas_config("m required a=;").is_err());
        assert!(parse_jaas_config("m required a=123;").is_err());
        assert!(parse_jaas_config("m required a;").is_err());
        assert!(parse_single_entry("m required; n optional;").is_err());
        assert_eq!(
            parse_jaas_config("m required; n optional;").unwrap().len(),
            2
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse_jaas_config(&s);
        }

        #[test]
        fn quoted_values_round_trip(
            users in proptest::collection::btree_map("[a-z][a-z0-9]{0,8}", "[ -~]{1,20}", 0..5)
        ) {
            let mut text = String::from("org.apache.kafka.common.security.plain.PlainLoginModule required");
            for (u, p) in &users {
                let quoted = p.replace('\\', "\\\\").replace('"', "\\\"");
                text.push_str(&format!(" user_{u}=\"{quoted}\""));
            }
            text.push(';');
            let e = parse_single_entry(&text).unwrap();
            prop_assert_eq!(e.plain_users(), users);
        }
    }
}

//! `ssl.principal.mapping.rules`: from a client certificate's subject (in
//! RFC 2253 form, [`crate::dn`]) to the name of its `User:` principal, with
//! the rule language of Kafka's `SslPrincipalMapper`.
//!
//! A rule list is comma-separated; each rule is `DEFAULT` (the whole DN)
//! or `RULE:pattern/replacement/` with an optional `L` or `U` after the
//! last slash to lower- or upper-case the result. Inside the pattern and
//! the replacement `\` escapes the next character (so `\/` is a slash and
//! a comma needs no escape). The first rule whose pattern matches the
//! whole DN decides: the DN is rewritten with Java's `replaceAll`
//! semantics (`$1` is a group, `\x` a literal `x`). When no rule matches,
//! the connection has no principal and is refused, as in Kafka.
//!
//! Invariant: a mapper exists only for a rule list that parsed completely;
//! mapping never panics.

use regex::Regex;

use crate::AuthError;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        whole: Regex,
        pattern: Regex,
        /// The replacement in the regex crate's syntax.
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Maps certificate subjects to principal names.
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
}

impl Default for SslPrincipalMapper {
    /// `DEFAULT`: the principal name is the DN itself.
    fn default() -> Self {
        Self {
            rules: vec![Rule::Default],
        }
    }
}

impl SslPrincipalMapper {
    /// Parses an `ssl.principal.mapping.rules` value.
    pub fn from_rules(rules: &str) -> Result<Self, AuthError> {
        let invalid = |reason: String| AuthError::InvalidMappingRule {
            rules: rules.to_string(),
            reason,
        };
        let mut parsed = Vec::new();
        let mut rest = rules.trim_start();
        while !rest.is_empty() {
            let (rule, after) = if let Some(after) = rest.strip_prefix("DEFAULT") {
                (Rule::Default, after)
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| invalid("a RULE needs pattern/replacement/".into()))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| invalid("a RULE needs pattern/replacement/".into()))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let pattern = unescape_pattern(&pattern);
                let compile = |p: &str| {
                    Regex::new(p).map_err(|e| invalid(format!("bad pattern {pattern:?}: {e}")))
                };
                (
                    Rule::Replace {
                        whole: compile(&format!("^(?:{pattern})$"))?,
                        pattern: compile(&pattern)?,
                        replacement: java_replacement(&replacement),
                        case,
                    },
                    after,
                )
            } else {
                let end = rest.find(',').unwrap_or(rest.len());
                return Err(invalid(format!(
                    "unknown rule {:?}: expected DEFAULT or RULE:pattern/replacement/[LU]",
                    rest[..end].trim()
                )));
            };
            let after = after.trim_start();
            rest = match after.strip_prefix(',') {
                Some(next) => next.trim_start(),
                None if after.is_empty() => after,
                None => {
                    let end = after.find(',').unwrap_or(after.len());
                    return Err(invalid(format!(
                        "unmatched text {:?} after a rule",
                        &after[..end]
                    )));
                }
            };
            parsed.push(rule);
        }
        if parsed.is_empty() {
            return Err(invalid("no rule given".into()));
        }
        Ok(Self { rules: parsed })
    }

    /// The principal name for `dn`, or `None` when no rule applies.
    pub fn map(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                whole,
                pattern,
                replacement,
                case,
            } => {
                if !whole.is_match(dn) {
                    return None;
                }
                let out = pattern.replace_all(dn, replacement.as_str()).into_owned();
                Some(match case {
                    Case::Keep => out,
                    Case::Lower => out.to_lowercase(),
                    Case::Upper => out.to_uppercase(),
                })
            }
        })
    }
}

/// Text up to the first unescaped `/` (escapes kept), and what follows it.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                let (_, next) = chars.next()?;
                out.push(next);
            }
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// The pattern with `\/` as a plain slash (the regex crate needs no escape).
fn unescape_pattern(p: &str) -> String {
    p.replace("\\/", "/")
}

/// Translates a Java `replaceAll` replacement (`$n` groups, `\x` literal)
/// to the regex crate's syntax (`${n}` groups, `$$` a dollar).
fn java_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(x) => out.push(x),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The example rules of Kafka's documentation for ssl.principal.mapping.rules.
    const DOC_RULES: &str = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
        RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
        RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\
        DEFAULT";

    #[test]
    fn the_documented_rules_map_as_kafka_does() {
        let m = SslPrincipalMapper::from_rules(DOC_RULES).unwrap();
        assert_eq!(
            m.map("CN=kafka-server1,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("kafka-server1")
        );
        assert_eq!(
            m.map("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("adminuser@admin")
        );
        assert_eq!(
            m.map("OU=x,CN=Duke.Ellington,O=y").as_deref(),
            Some("duke.ellington")
        );
        assert_eq!(m.map("OU=only").as_deref(), Some("OU=only"));
    }

    #[test]
    fn no_matching_rule_gives_no_principal_and_upper_case_works() {
        let m = SslPrincipalMapper::from_rules("RULE:^CN=([a-z]+)$/$1/U").unwrap();
        assert_eq!(m.map("CN=alice").as_deref(), Some("ALICE"));
        assert_eq!(m.map("CN=alice,O=x"), None);
        let d = SslPrincipalMapper::from_rules(" DEFAULT ").unwrap();
        assert_eq!(d.map("CN=a,O=b").as_deref(), Some("CN=a,O=b"));
    }

    #[test]
    fn escapes_in_rules() {
        let m = SslPrincipalMapper::from_rules(r"RULE:^CN=(.*)\/(.*)$/$2\/$1\$/").unwrap();
        assert_eq!(m.map("CN=a/b").as_deref(), Some("b/a$"));
        let m = SslPrincipalMapper::from_rules("RULE:^CN=(.*)$/$1x/").unwrap();
        assert_eq!(m.map("CN=a").as_deref(), Some("ax"));
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "",
            "DEFAULTX",
            "RULE:a/b",
            "RULE:a/b/Lx",
            "rule:a/b/",
            "DEFAULT,junk",
            "RULE:(/x/",
        ] {
            assert!(
                SslPrincipalMapper::from_rules(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    proptest! {
        #[test]
        fn parsing_and_mapping_never_panic(rules in "[ -~]{0,40}", dn in "[ -~]{0,40}") {
            if let Ok(m) = SslPrincipalMapper::from_rules(&rules) {
                let _ = m.map(&dn);
            }
        }

        #[test]
        fn a_capture_all_rule_is_the_identity(dn in "[ -~]{0,40}") {
            let m = SslPrincipalMapper::from_rules("RULE:^(.*)$/$1/").unwrap();
            prop_assert_eq!(m.map(&dn), Some(dn.clone()));
        }
    }
}

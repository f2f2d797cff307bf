//! Java `.properties` parsing (the format of Kafka's `server.properties`).

/// Parses properties text into `(key, value)` pairs in file order.
///
/// Supports `#`/`!` comments, `=`, `:` or whitespace separators, backslash
/// line continuation and the Java escapes (`\t \n \r \f \uXXXX`, `\x` = `x`).
/// Never fails: every line yields a key (possibly with an empty value).
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(first) = lines.next() {
        let first = first.trim_start_matches([' ', '\t', '\x0c']);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = String::from(first);
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some(next) => logical.push_str(next.trim_start_matches([' ', '\t', '\x0c'])),
                None => break,
            }
        }
        out.push(split_key_value(&logical));
    }
    out
}

fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (String, String) {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut key_end = chars.len();
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '=' | ':' | ' ' | '\t' | '\x0c' => {
                key_end = i;
                break;
            }
            _ => i += 1,
        }
    }
    let key_end = key_end.min(chars.len());
    let mut j = key_end;
    while j < chars.len() && matches!(chars[j], ' ' | '\t' | '\x0c') {
        j += 1;
    }
    if j < chars.len() && matches!(chars[j], '=' | ':') {
        j += 1;
        while j < chars.len() && matches!(chars[j], ' ' | '\t' | '\x0c') {
            j += 1;
        }
    }
    let key: String = chars[..key_end].iter().collect();
    let value: String = chars[j..].iter().collect();
    (unescape(&key), unescape(&value))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = (0..4).filter_map(|_| it.next()).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) if hex.len() == 4 => out.push(ch),
                    _ => {
                        out.push('u');
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators_comments_and_continuations() {
        let text = "# comment\n! bang\n\n  a=1\nb : two words \nc 3\nd=\\\n   continued\ne\nf=x\\=y\\:z\\u0041\n";
        assert_eq!(
            parse_properties(text),
            vec![
                kv("a", "1"),
                kv("b", "two words "),
                kv("c", "3"),
                kv("d", "continued"),
                kv("e", ""),
                kv("f", "x=y:zA"),
            ]
        );
    }

    #[test]
    fn escaped_separator_in_key() {
        assert_eq!(parse_properties("a\\=b=c"), vec![kv("a=b", "c")]);
        assert_eq!(
            parse_properties("x\\\\\ny=1"),
            vec![kv("x\\", ""), kv("y", "1")]
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_properties(&s);
        }

        #[test]
        fn simple_pairs_round_trip(pairs in proptest::collection::vec(("[a-z][a-z0-9.]{0,20}", "[a-zA-Z0-9/.,:_-]{0,30}"), 0..10)) {
            let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            let parsed = parse_properties(&text);
            let expected: Vec<(String, String)> = pairs.clone();
            proptest::prop_assert_eq!(parsed, expected);
        }
    }
}

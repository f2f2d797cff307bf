//! kcat-like output format strings for `sluice consume --format`.
//!
//! `%t` topic, `%p` partition, `%o` offset, `%k` key, `%v` value, `%h`
//! headers as `k=v,k2=v2`, `%T` timestamp (ms), `%K` key length, `%S` value
//! length, `%%` a percent sign; `\n`, `\t`, `\r`, `\\` escapes. A missing
//! key or value prints nothing (its length prints -1).

use std::io::Write;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Headers,
    Timestamp,
    KeyLen,
    ValueLen,
}

/// What one record offers to a format.
pub struct Fields<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    pub timestamp: Option<i64>,
}

/// A parsed format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format(Vec<Token>);

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        let mut tokens = Vec::new();
        let mut lit = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let tok = match chars.next() {
                        Some('t') => Token::Topic,
                        Some('p') => Token::Partition,
                        Some('o') => Token::Offset,
                        Some('k') => Token::Key,
                        Some('v') => Token::Value,
                        Some('h') => Token::Headers,
                        Some('T') => Token::Timestamp,
                        Some('K') => Token::KeyLen,
                        Some('S') => Token::ValueLen,
                        Some('%') => {
                            lit.push(b'%');
                            continue;
                        }
                        Some(o) => {
                            return Err(format!(
                                "unknown format token %{o} (known: %t %p %o %k %v %h %T %K %S %%)"
                            ))
                        }
                        None => return Err("format string ends with a lone %".into()),
                    };
                    if !lit.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut lit)));
                    }
                    tokens.push(tok);
                }
                '\\' => match chars.next() {
                    Some('n') => lit.push(b'\n'),
                    Some('t') => lit.push(b'\t'),
                    Some('r') => lit.push(b'\r'),
                    Some('\\') => lit.push(b'\\'),
                    Some(o) => {
                        lit.push(b'\\');
                        let mut buf = [0u8; 4];
                        lit.extend_from_slice(o.encode_utf8(&mut buf).as_bytes());
                    }
                    None => lit.push(b'\\'),
                },
                c => {
                    let mut buf = [0u8; 4];
                    lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !lit.is_empty() {
            tokens.push(Token::Literal(lit));
        }
        Ok(Format(tokens))
    }

    pub fn write(&self, out: &mut impl Write, f: &Fields<'_>) -> std::io::Result<()> {
        for t in &self.0 {
            match t {
                Token::Literal(b) => out.write_all(b)?,
                Token::Topic => out.write_all(f.topic.as_bytes())?,
                Token::Partition => write!(out, "{}", f.partition)?,
                Token::Offset => write!(out, "{}", f.offset)?,
                Token::Key => out.write_all(f.key.unwrap_or_default())?,
                Token::Value => out.write_all(f.value.unwrap_or_default())?,
                Token::Headers => {
                    for (i, (k, v)) in f.headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(k.as_bytes())?;
                        out.write_all(b"=")?;
                        out.write_all(v.unwrap_or_default())?;
                    }
                }
                Token::Timestamp => write!(out, "{}", f.timestamp.unwrap_or(-1))?,
                Token::KeyLen => write!(out, "{}", f.key.map_or(-1, |k| k.len() as i64))?,
                Token::ValueLen => write!(out, "{}", f.value.map_or(-1, |v| v.len() as i64))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(fmt: &str, f: &Fields<'_>) -> String {
        let mut out = Vec::new();
        Format::parse(fmt).unwrap().write(&mut out, f).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn rec<'a>() -> Fields<'a> {
        Fields {
            topic: "orders",
            partition: 2,
            offset: 41,
            key: Some(b"k1"),
            value: Some(b"hello"),
            headers: vec![("a", Some(b"1")), ("b", None)],
            timestamp: Some(1700000000000),
        }
    }

    #[test]
    fn every_token_and_escape() {
        assert_eq!(
            render("%t %p %o %k %v %h %T %K %S 100%%\\n\\tx\\\\", &rec()),
            "orders 2 41 k1 hello a=1,b= 1700000000000 2 5 100%\n\tx\\"
        );
    }

    #[test]
    fn null_key_prints_nothing_and_length_minus_one() {
        let mut f = rec();
        f.key = None;
        f.headers.clear();
        assert_eq!(render("[%k][%K][%h]", &f), "[][-1][]");
    }

    #[test]
    fn unknown_token_is_refused() {
        assert!(Format::parse("%x").unwrap_err().contains("%x"));
        assert!(Format::parse("abc%").is_err());
    }

    proptest::proptest! {
        /// Text without % or \\ is printed exactly as written.
        #[test]
        fn plain_text_is_literal(text in "[^%\\\\]{0,64}") {
            proptest::prop_assert_eq!(render(&text, &rec()), text);
        }

        /// Any format string either parses or is refused; never a panic,
        /// and a parsed one always renders.
        #[test]
        fn any_format_string_is_handled(text in "\\PC{0,64}") {
            if let Ok(f) = Format::parse(&text) {
                let mut out = Vec::new();
                proptest::prop_assert!(f.write(&mut out, &rec()).is_ok());
            }
        }

        /// %v reproduces arbitrary value bytes exactly.
        #[test]
        fn values_are_printed_byte_for_byte(value in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut f = rec();
            f.value = Some(&value);
            let mut out = Vec::new();
            Format::parse("%v").unwrap().write(&mut out, &f).unwrap();
            proptest::prop_assert_eq!(out, value);
        }
    }
}

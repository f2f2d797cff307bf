//! HTML output: escaping of every untrusted string and URL component, and
//! the page shell (head, navigation, footer) every page shares.

use std::fmt::{self, Display, Write as _};

/// Displays a string with `& < > " '` escaped, for element text and
/// quoted attribute values alike.
pub struct E<'a>(pub &'a str);

impl Display for E<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(rep)?;
            last = i + 1;
        }
        f.write_str(&self.0[last..])
    }
}

/// Escapes `s` into a new string.
pub fn esc(s: &str) -> String {
    E(s).to_string()
}

/// Percent-encodes a path segment or query value (everything but RFC 3986's
/// unreserved characters).
pub struct U<'a>(pub &'a str);

impl Display for U<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                f.write_char(b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// What the shell shows around every page.
#[derive(Clone, Debug)]
pub struct Shell {
    pub brokers: String,
    pub allow_writes: bool,
}

/// The navigation entries: (path, label, key shortcut).
const NAV: [(&str, &str, &str); 7] = [
    ("/", "Overview", "o"),
    ("/topics", "Topics", "t"),
    ("/groups", "Consumer groups", "g"),
    ("/throughput", "Throughput", "l"),
    ("/acls", "ACLs", "a"),
    ("/users", "Users", "u"),
    ("/quotas", "Quotas", "q"),
];

/// The whole document: `body` is trusted HTML built by a page module.
pub fn document(shell: &Shell, title: &str, active: &str, body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 2048);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · Sluice console</title>\
<link rel=\"icon\" href=\"data:,\">\
<link rel=\"stylesheet\" href=\"/assets/console.css\">\
<script src=\"/assets/console.js\" defer></script></head><body>\
<header class=\"top\"><a class=\"brand\" href=\"/\">Sluice console</a><nav>",
        E(title)
    );
    for (path, label, key) in NAV {
        let cls = if path == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(
            s,
            "<a href=\"{path}\"{cls} data-key=\"{key}\" title=\"{label} (g then {key})\">{label}</a>"
        );
    }
    let mode = if shell.allow_writes {
        "<span class=\"badge warn\">writes enabled</span>"
    } else {
        "<span class=\"badge\">read-only</span>"
    };
    let _ = writeln!(
        s,
        "</nav><span class=\"cluster\">{} {mode}</span></header><main>{body}</main>\
<footer>Sluice console · keys: <kbd>/</kbd> search, <kbd>g</kbd> <kbd>o</kbd>/<kbd>t</kbd>/<kbd>g</kbd>/<kbd>l</kbd>/<kbd>a</kbd>/<kbd>u</kbd>/<kbd>q</kbd> go to a page</footer>\
</body></html>",
        E(&shell.brokers)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("plain ünïcode"), "plain ünïcode");
        assert_eq!(U("a b/c?d&é").to_string(), "a%20b%2Fc%3Fd%26%C3%A9");
    }
}

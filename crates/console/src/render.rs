//! How a key, value or header is shown: as text, pretty JSON or hex. Pure;
//! the result is plain text that the pages escape.

use std::fmt::Write as _;

/// The display mode the user picked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    /// JSON when the bytes parse as JSON, text when UTF-8, else hex.
    #[default]
    Auto,
    Text,
    Json,
    Hex,
}

impl View {
    pub fn parse(s: &str) -> View {
        match s {
            "text" => View::Text,
            "json" => View::Json,
            "hex" => View::Hex,
            _ => View::Auto,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            View::Auto => "auto",
            View::Text => "text",
            View::Json => "json",
            View::Hex => "hex",
        }
    }
}

/// The text shown for `bytes` and what it is (`json`, `text`, `hex`).
pub fn show(bytes: &[u8], view: View) -> (&'static str, String) {
    match view {
        View::Hex => ("hex", hex(bytes)),
        View::Text => ("text", String::from_utf8_lossy(bytes).into_owned()),
        View::Json => match pretty_json(bytes) {
            Some(j) => ("json", j),
            None => show(bytes, View::Auto),
        },
        View::Auto => {
            if let Some(j) = pretty_json(bytes).filter(|_| looks_structured(bytes)) {
                ("json", j)
            } else if let Ok(s) = std::str::from_utf8(bytes) {
                ("text", s.to_string())
            } else {
                ("hex", hex(bytes))
            }
        }
    }
}

/// Only objects and arrays count as JSON in auto mode (`42` or `"x"` stay text).
fn looks_structured(bytes: &[u8]) -> bool {
    matches!(
        bytes.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

fn pretty_json(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    serde_json::to_string_pretty(&v).ok()
}

/// Sixteen bytes per line: offset, hex, printable ASCII.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 4 + 16);
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(s, "{:08x}  ", i * 16);
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(s, "{b:02x} ");
                }
                None => s.push_str("   "),
            }
        }
        s.push(' ');
        s.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        s.push('\n');
    }
    s
}

/// A millisecond timestamp as UTC `YYYY-MM-DD HH:MM:SS.mmm`.
pub fn timestamp(ms: i64) -> String {
    if ms < 0 {
        return "-".into();
    }
    let t = sluice_record::UtcDateTime::from_unix_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM[:SS]` (or with a
/// space, read as UTC), or of a plain millisecond count.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return (ms >= 0).then_some(ms);
    }
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time
        .trim_end_matches('Z')
        .splitn(3, ':')
        .map(|x| x.parse::<f64>().ok());
    let (hh, mm) = (t.next()??, t.next()??);
    let ss = t.next().flatten().unwrap_or(0.0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh >= 24.0 || mm >= 60.0 || ss >= 61.0
    {
        return None;
    }
    // Howard Hinnant's civil date -> days.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = days * 86_400_000 + ((hh * 3600.0 + mm * 60.0 + ss) * 1000.0).round() as i64;
    (ms >= 0).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_json_then_text_then_hex() {
        let (k, s) = show(br#"{"a":1,"b":[true]}"#, View::Auto);
        assert_eq!(k, "json");
        assert!(s.contains("\n  \"a\": 1"), "{s}");
        assert_eq!(show(b"42", View::Auto), ("text", "42".into()));
        assert_eq!(show(b"hello", View::Auto), ("text", "hello".into()));
        let (k, s) = show(&[0xff, 0x00, 0x41], View::Auto);
        assert_eq!(k, "hex");
        assert!(s.starts_with("00000000  ff 00 41"), "{s}");
        assert!(s.trim_end().ends_with("..A"), "{s}");
        assert_eq!(show(b"not json", View::Json).0, "text");
        assert_eq!(show(b"{}", View::Text), ("text", "{}".into()));
    }

    #[test]
    fn times_parse_back() {
        for ms in [0, 1_700_000_000_000, 951_782_400_000] {
            let shown = timestamp(ms).replace(' ', "T");
            assert_eq!(parse_time(&shown), Some(ms), "{shown}");
        }
        assert_eq!(parse_time("2023-11-14T22:13"), Some(1_699_999_980_000));
        assert_eq!(parse_time("12345"), Some(12345));
        assert_eq!(parse_time("2023-13-01T00:00"), None);
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14 22:13:20.123");
        assert_eq!(timestamp(-1), "-");
    }
}

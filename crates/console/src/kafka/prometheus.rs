//! A reader of the Prometheus text format a Sluice broker serves at
//! `/metrics`, for the few series the throughput page charts. The text
//! comes from the network, so it is treated as untrusted: lines that do not
//! parse are skipped, label values are unescaped, and only the series asked
//! for are kept. Pure; the fetching is in [`super::broker_metrics`].

/// One sample line: `name{label="value",...} number`.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Line {
    /// The value of label `key`, if the line has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The sample lines of `text` whose metric name is one of `names`
/// (comments, other series and malformed lines are skipped).
pub fn parse(text: &str, names: &[&str]) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| names.iter().any(|n| l.starts_with(n)))
        .filter_map(parse_line)
        .filter(|l| names.contains(&l.name.as_str()))
        .collect()
}

/// One sample line, or `None` when it is not one.
pub fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim();
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    if name_end == 0 {
        return None;
    }
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    // The value, then an optional timestamp.
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Line {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `key="value",...}` (after the opening brace): the labels and what
/// follows the closing brace.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(tail) = s.strip_prefix('}') {
            return Some((labels, tail));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let body = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = &body[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_series_asked_for() {
        let text = "# HELP sluice_topic_bytes_in_total Record batch bytes appended.\n\
# TYPE sluice_topic_bytes_in_total counter\n\
sluice_topic_bytes_in_total{topic=\"orders\"} 1234\n\
sluice_topic_bytes_in_total{topic=\"we\\\"ird\\\\na\\nme\"} 5\n\
sluice_topic_bytes_in_total_more{topic=\"x\"} 9\n\
sluice_requests_total{api=\"Produce\"} 3\n\
sluice_broker_info{cluster_id=\"abc\",node_id=\"2\"} 1\n\
sluice_topic_bytes_in_total{topic=\"broken\" 7\n\
sluice_topic_bytes_in_total{topic=\"nan\"} many\n";
        let got = parse(text, &["sluice_topic_bytes_in_total", "sluice_broker_info"]);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].label("topic"), Some("orders"));
        assert_eq!(got[0].value, 1234.0);
        assert_eq!(got[1].label("topic"), Some("we\"ird\\na\nme"));
        assert_eq!(got[2].name, "sluice_broker_info");
        assert_eq!(got[2].label("cluster_id"), Some("abc"));
        assert_eq!(got[2].label("node_id"), Some("2"));
        assert_eq!(
            parse_line("up 1 1700000000000"),
            Some(Line {
                name: "up".into(),
                labels: vec![],
                value: 1.0
            })
        );
        assert_eq!(parse_line("{a=\"b\"} 1"), None);
    }

    proptest::proptest! {
        /// A label value written with the broker's escaping reads back as it was.
        #[test]
        fn escaped_label_values_round_trip(v in "\\PC{0,20}", n in 0u64..u64::MAX / 2) {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let line = format!("m{{topic=\"{escaped}\",b=\"x\"}} {n}");
            let got = parse_line(&line).expect("parses");
            proptest::prop_assert_eq!(got.label("topic"), Some(v.as_str()));
            proptest::prop_assert_eq!(got.label("b"), Some("x"));
            proptest::prop_assert_eq!(got.value, n as f64);
        }

        /// Any text: no panic, and only the names asked for come back.
        #[test]
        fn any_text_parses_without_panic(text in "\\PC{0,200}") {
            for l in parse(&text, &["m"]) {
                proptest::prop_assert_eq!(l.name.as_str(), "m");
            }
        }
    }
}

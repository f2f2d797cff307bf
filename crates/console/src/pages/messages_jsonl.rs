//! The message browser's download: the shown page as JSON lines, one
//! record per line, in the page's order. Keys, values and header values
//! are JSON strings when they are UTF-8 and `{"hex": "..."}` otherwise;
//! serde_json escapes every string, and the response is served as
//! `application/x-ndjson` (never HTML) for the browser to save.

use serde_json::{json, Value};

use crate::kafka::model::{Message, MessagePage};

/// The page as JSON lines.
pub fn render(p: &MessagePage) -> String {
    let mut out = String::new();
    for m in &p.messages {
        out.push_str(&line(&p.topic, m).to_string());
        out.push('\n');
    }
    out
}

/// The file name offered: the topic (only characters safe in a header and
/// a file name), the partition and the offsets shown.
pub fn file_name(p: &MessagePage) -> String {
    let topic: String = p
        .topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let offsets = p.messages.iter().map(|m| m.offset);
    match (offsets.clone().min(), offsets.max()) {
        (Some(lo), Some(hi)) => format!("{topic}-{}-{lo}-{hi}.jsonl", p.partition),
        _ => format!("{topic}-{}-empty.jsonl", p.partition),
    }
}

fn line(topic: &str, m: &Message) -> Value {
    let mut v = json!({
        "topic": topic,
        "partition": m.partition,
        "offset": m.offset,
        "timestamp": m.timestamp,
        "key": bytes(m.key.as_deref()),
        "value": bytes(m.value.as_deref()),
        "headers": m.headers.iter().map(|(k, v)| json!({"key": k, "value": bytes(v.as_deref())})).collect::<Vec<_>>(),
    });
    // Shown bytes are bounded; say when a key or value was cut.
    for (name, shown, size) in [
        ("key_size", m.key.as_ref().map_or(0, Vec::len), m.key_size),
        (
            "value_size",
            m.value.as_ref().map_or(0, Vec::len),
            m.value_size,
        ),
    ] {
        if size > shown {
            v[name] = json!(size);
        }
    }
    v
}

fn bytes(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::model::OffsetRange;

    #[test]
    fn lines_are_json_with_text_or_hex() {
        let m = Message {
            partition: 2,
            offset: 7,
            timestamp: 1000,
            key: Some(b"<script>\"k\"".to_vec()),
            key_size: 11,
            value: Some(vec![0xff, 0x00]),
            value_size: 5,
            headers: vec![("h".into(), None)],
        };
        let p = MessagePage {
            topic: "a/b c".into(),
            partition: 2,
            partitions: 3,
            range: OffsetRange { start: 0, end: 8 },
            messages: vec![m.clone(), Message { offset: 5, ..m }],
            newest_first: true,
            next: None,
            anchor: 8,
            filter: None,
            scanned: None,
        };
        let text = render(&p);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["key"], "<script>\"k\"");
        assert_eq!(lines[0]["value"]["hex"], "ff00");
        assert_eq!(lines[0]["value_size"], 5);
        assert!(lines[0].get("key_size").is_none());
        assert_eq!(lines[0]["headers"][0]["value"], Value::Null);
        assert_eq!(lines[1]["offset"], 5);
        assert_eq!(file_name(&p), "a_b_c-2-5-7.jsonl");
    }
}

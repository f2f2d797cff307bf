//! The topics list, with a search box (server-side `?q=`, and a live filter
//! in the page script).

use std::fmt::Write as _;

use super::num;
use crate::html::{document, Shell, E, U};
use crate::kafka::model::TopicSummary;

pub fn render(shell: &Shell, search: &str, topics: &[TopicSummary]) -> String {
    let mut b = String::new();
    b.push_str("<div class=\"titlebar\"><h1>Topics</h1>");
    if shell.allow_writes {
        b.push_str("<a class=\"button\" href=\"/topics/new\">Create topic</a>");
    }
    let _ = write!(
        b,
        "</div><form class=\"search\" method=\"get\" action=\"/topics\">\
<input type=\"search\" name=\"q\" id=\"search\" value=\"{}\" placeholder=\"Search topics (press /)\" autocomplete=\"off\" data-filter=\"topics-table\">\
<button type=\"submit\">Search</button></form>",
        E(search)
    );
    let partitions: usize = topics.iter().map(|t| t.partitions).sum();
    let _ = write!(
        b,
        "<p class=\"summary\" id=\"topics-summary\">{} topics, {} partitions</p>",
        num(topics.len() as i64),
        num(partitions as i64)
    );
    b.push_str("<table id=\"topics-table\" class=\"filterable\"><thead><tr><th>Topic</th><th class=\"num\">Partitions</th><th class=\"num\">Replication</th><th class=\"num\">Messages</th><th class=\"num\">Under-replicated</th><th class=\"num\">Offline</th></tr></thead><tbody>");
    for t in topics {
        let mut internal = if t.internal {
            " <span class=\"tag\">internal</span>".to_string()
        } else {
            String::new()
        };
        if let Some(e) = &t.error {
            internal.push_str(&format!(" <span class=\"tag bad\">{}</span>", E(e)));
        }
        let bad = |n: usize| if n > 0 { " bad" } else { "" };
        let _ = write!(
            b,
            "<tr data-name=\"{}\"><td><a href=\"/topics/{}\">{}</a>{internal}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num{}\">{}</td><td class=\"num{}\">{}</td></tr>",
            E(&t.name),
            U(&t.name),
            E(&t.name),
            t.partitions,
            t.replication_factor,
            t.messages.map_or("-".into(), num),
            bad(t.under_replicated),
            t.under_replicated,
            bad(t.offline),
            t.offline
        );
    }
    b.push_str("</tbody></table>");
    if topics.is_empty() {
        b.push_str("<p class=\"empty\">No topics match.</p>");
    }
    document(shell, "Topics", "/topics", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_with_an_error_is_listed_with_it() {
        let shell = Shell {
            brokers: "b:9092".into(),
            allow_writes: false,
        };
        let t = TopicSummary {
            name: "being-made".into(),
            internal: false,
            partitions: 0,
            replication_factor: 0,
            under_replicated: 0,
            offline: 0,
            messages: None,
            error: Some("LeaderNotAvailable".into()),
        };
        let html = render(&shell, "", &[t]);
        assert!(html.contains("href=\"/topics/being-made\""), "{html}");
        assert!(
            html.contains("<span class=\"tag bad\">LeaderNotAvailable</span>"),
            "{html}"
        );
        assert!(!html.contains("/topics/new"), "read-only: no create button");
    }
}

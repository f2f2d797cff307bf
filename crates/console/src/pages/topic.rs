//! One topic: partitions with leader, replicas, ISR and offsets, and its
//! configs with their sources.

use std::fmt::Write as _;

use super::{bytes, ids, num};
use crate::html::{document, Shell, E, U};
use crate::kafka::model::TopicDetail;

pub fn render(shell: &Shell, t: &TopicDetail) -> String {
    let mut b = String::new();
    let total: i64 = t
        .partitions
        .iter()
        .filter_map(|(_, r)| r.map(|r| r.messages()))
        .sum();
    let _ = write!(
        b,
        "<div class=\"titlebar\"><h1>Topic <span id=\"topic-name\">{}</span></h1>\
<a class=\"button\" href=\"/topics/{}/messages\">Browse messages</a>{}</div>\
<p class=\"summary\">Topic id <code>{}</code> · {} partitions · <span id=\"topic-messages\">{}</span> messages{}{}</p>",
        E(&t.name),
        U(&t.name),
        if shell.allow_writes {
            format!(
                "<a class=\"button\" id=\"edit-topic\" href=\"/topics/{0}/edit\">Edit</a>\
<a class=\"button danger\" id=\"delete-topic\" href=\"/topics/{0}/delete\">Delete</a>",
                U(&t.name)
            )
        } else {
            String::new()
        },
        E(&t.topic_id),
        t.partitions.len(),
        num(total),
        if t.sizes.is_empty() {
            String::new()
        } else {
            format!(" · {} on disk", bytes(t.sizes.values().sum()))
        },
        if t.internal { " · internal" } else { "" }
    );
    b.push_str("<h2>Partitions</h2><table id=\"partitions-table\"><thead><tr><th class=\"num\">Partition</th><th class=\"num\">Leader</th><th>Replicas</th><th>ISR</th><th class=\"num\">Start offset</th><th class=\"num\">End offset</th><th class=\"num\">Messages</th><th class=\"num\">Size</th><th>Status</th></tr></thead><tbody>");
    for (p, r) in &t.partitions {
        let status = if p.is_offline() {
            "<span class=\"bad\">offline</span>"
        } else if p.is_under_replicated() {
            "<span class=\"bad\">under-replicated</span>"
        } else {
            "ok"
        };
        let (start, end, count) = match r {
            Some(r) => (num(r.start), num(r.end), num(r.messages())),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let _ = write!(
            b,
            "<tr data-partition=\"{}\"><td class=\"num\"><a href=\"/topics/{}/messages?partition={}\">{}</a></td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{start}</td><td class=\"num\">{end}</td><td class=\"num\">{count}</td><td class=\"num\">{}</td><td>{status}</td></tr>",
            p.partition,
            U(&t.name),
            p.partition,
            p.partition,
            p.leader,
            ids(&p.replicas),
            ids(&p.isr),
            t.sizes.get(&p.partition).map_or("-".into(), |&b| bytes(b))
        );
    }
    b.push_str("</tbody></table><h2>Configs</h2>");
    if let Some(e) = &t.configs_error {
        let _ = write!(
            b,
            "<p class=\"bad\">Configs could not be read: {}</p>",
            E(e)
        );
    }
    super::configs::table(
        &mut b,
        &t.configs,
        "DYNAMIC_TOPIC_CONFIG",
        "only values set on the topic",
    );
    document(shell, &t.name, "/topics", &b)
}

//! Deleting a consumer group, or its committed offsets on one topic: a
//! confirmation page listing exactly the offsets that go.

use std::fmt::Write as _;

use super::num;
use crate::html::{document, Shell, E, U};
use crate::kafka::model::GroupDetail;

/// Deleting the whole group.
pub fn confirm_group(shell: &Shell, g: &GroupDetail) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Delete group <a href=\"/groups/{}\">{}</a></h1>\
<p class=\"warn\" id=\"delete-plan\">Deleting group <strong>{}</strong> (state {}, {} members) drops all {} of its committed offsets below. \
Kafka refuses while the group has members. Consumers that join it again start from their <code>auto.offset.reset</code> position.</p>",
        U(&g.group_id),
        E(&g.group_id),
        E(&g.group_id),
        E(&g.state),
        g.members.len(),
        g.offsets.len()
    );
    offsets_table(
        &mut b,
        g.offsets
            .iter()
            .filter_map(|o| o.committed.map(|c| (o.topic.as_str(), o.partition, c))),
    );
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/groups/{}/delete\">\
<button type=\"submit\" class=\"danger\" id=\"confirm\">Confirm: delete the group</button> <a href=\"/groups/{}\">Cancel</a></form>",
        U(&g.group_id),
        U(&g.group_id)
    );
    document(shell, &format!("Delete {}", g.group_id), "/groups", &b)
}

/// Deleting the group's offsets on one topic.
pub fn confirm_offsets(shell: &Shell, group: &str, topic: &str, rows: &[(i32, i64)]) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Delete offsets of <a href=\"/groups/{}\">{}</a> on {}</h1>\
<p class=\"warn\" id=\"delete-plan\">Deletes the {} committed offsets of group <strong>{}</strong> on topic <strong>{}</strong> below; its other offsets stay. \
Kafka refuses while members of the group consume the topic.</p>",
        U(group),
        E(group),
        E(topic),
        rows.len(),
        E(group),
        E(topic)
    );
    offsets_table(&mut b, rows.iter().map(|&(p, o)| (topic, p, o)));
    if !rows.is_empty() {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/groups/{}/offsets/delete\"><input type=\"hidden\" name=\"topic\" value=\"{}\">\
<button type=\"submit\" class=\"danger\" id=\"confirm\">Confirm: delete these offsets</button> <a href=\"/groups/{}\">Cancel</a></form>",
            U(group),
            E(topic),
            U(group)
        );
    }
    document(shell, &format!("Delete offsets of {group}"), "/groups", &b)
}

fn offsets_table<'a>(b: &mut String, rows: impl Iterator<Item = (&'a str, i32, i64)>) {
    b.push_str("<table id=\"offsets-table\"><thead><tr><th>Topic</th><th class=\"num\">Partition</th><th class=\"num\">Committed offset</th></tr></thead><tbody>");
    for (t, p, o) in rows {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"num\">{p}</td><td class=\"num\">{}</td></tr>",
            E(t),
            num(o)
        );
    }
    b.push_str("</tbody></table>");
}

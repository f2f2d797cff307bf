//! The consumer groups list.

use std::fmt::Write as _;

use crate::html::{document, Shell, E, U};
use crate::kafka::model::GroupSummary;

pub fn render(shell: &Shell, groups: &[GroupSummary]) -> String {
    let mut b = String::new();
    b.push_str("<div class=\"titlebar\"><h1>Consumer groups</h1></div>\
<form class=\"search\"><input type=\"search\" id=\"search\" placeholder=\"Filter groups (press /)\" autocomplete=\"off\" data-filter=\"groups-table\"></form>");
    let _ = write!(b, "<p class=\"summary\">{} groups</p>", groups.len());
    b.push_str("<table id=\"groups-table\" class=\"filterable\"><thead><tr><th>Group</th><th>State</th><th>Protocol type</th><th>Type</th></tr></thead><tbody>");
    for g in groups {
        let _ = write!(
            b,
            "<tr data-name=\"{}\"><td><a href=\"/groups/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            E(&g.group_id),
            U(&g.group_id),
            E(&g.group_id),
            E(&g.state),
            E(&g.protocol_type),
            E(if g.group_type.is_empty() { "-" } else { &g.group_type })
        );
    }
    b.push_str("</tbody></table>");
    if groups.is_empty() {
        b.push_str("<p class=\"empty\">No consumer groups.</p>");
    }
    document(shell, "Consumer groups", "/groups", &b)
}

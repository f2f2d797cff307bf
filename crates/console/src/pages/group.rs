//! One consumer group: state, members and their assignments, committed
//! offsets with the lag per partition and in total.

use std::fmt::Write as _;

use super::num;
use crate::html::{document, Shell, E, U};
use crate::kafka::model::GroupDetail;

pub fn render(shell: &Shell, g: &GroupDetail) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<div class=\"titlebar\"><h1>Group <span id=\"group-id\">{}</span></h1>",
        E(&g.group_id)
    );
    if shell.allow_writes {
        let _ = write!(
            b,
            "<a class=\"button\" href=\"/groups/{}/reset\">Reset offsets</a>\
<a class=\"button danger\" id=\"delete-group\" href=\"/groups/{}/delete\">Delete group</a>",
            U(&g.group_id),
            U(&g.group_id)
        );
    }
    let _ = write!(
        b,
        "</div><div class=\"cards\">\
<div class=\"card\"><div class=\"label\">State</div><div class=\"value\" id=\"group-state\">{}</div></div>\
<div class=\"card\"><div class=\"label\">Protocol</div><div class=\"value\" id=\"group-protocol\">{} <small>{} · {}</small></div></div>\
<div class=\"card\"><div class=\"label\">Coordinator</div><div class=\"value\">{}</div></div>\
<div class=\"card\"><div class=\"label\">Members</div><div class=\"value\">{}</div></div>\
<div class=\"card\"><div class=\"label\">Total lag</div><div class=\"value\" id=\"total-lag\">{}</div></div></div>",
        E(&g.state),
        E(if g.protocol_type.is_empty() { "-" } else { &g.protocol_type }),
        E(&g.protocol),
        g.kind,
        g.coordinator,
        g.members.len(),
        num(g.total_lag)
    );
    b.push_str("<h2>Members</h2>");
    if g.members.is_empty() {
        b.push_str("<p class=\"empty\">No active members.</p>");
    } else {
        b.push_str("<table id=\"members-table\"><thead><tr><th>Member id</th><th>Instance id</th><th>Client id</th><th>Host</th><th>Assignment</th></tr></thead><tbody>");
        for m in &g.members {
            let assignment: Vec<String> = m
                .assignment
                .iter()
                .map(|(t, ps)| format!("{}: {}", E(t), super::ids(ps)))
                .collect();
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                E(&m.member_id),
                E(m.instance_id.as_deref().unwrap_or("-")),
                E(&m.client_id),
                E(&m.host),
                assignment.join("<br>")
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("<h2>Offsets and lag</h2><table id=\"lag-table\"><thead><tr><th>Topic</th><th class=\"num\">Partition</th><th class=\"num\">Committed offset</th><th class=\"num\">Log end offset</th><th class=\"num\">Lag</th></tr></thead><tbody>");
    for o in &g.offsets {
        let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = write!(
            b,
            "<tr data-topic=\"{}\" data-partition=\"{}\" data-lag=\"{}\"><td><a href=\"/topics/{}\">{}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            E(&o.topic),
            o.partition,
            opt(o.lag),
            U(&o.topic),
            E(&o.topic),
            o.partition,
            opt(o.committed),
            opt(o.end),
            opt(o.lag)
        );
    }
    b.push_str("</tbody></table>");
    if shell.allow_writes {
        let mut topics: Vec<&str> = g.offsets.iter().map(|o| o.topic.as_str()).collect();
        topics.dedup();
        if !topics.is_empty() {
            b.push_str("<p class=\"actions\">Delete committed offsets on: ");
            for t in topics {
                let _ = write!(
                    b,
                    "<a class=\"delete-offsets\" href=\"/groups/{}/offsets/delete?topic={}\">{}</a> ",
                    U(&g.group_id),
                    U(t),
                    E(t)
                );
            }
            b.push_str("</p>");
        }
    }
    document(shell, &g.group_id, "/groups", &b)
}

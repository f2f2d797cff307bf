//! The cluster overview: id, controller, brokers, topic and partition health.

use std::fmt::Write as _;

use super::num;
use crate::html::{document, Shell, E};
use crate::kafka::model::ClusterOverview;

pub fn render(shell: &Shell, o: &ClusterOverview) -> String {
    let mut b = String::new();
    b.push_str("<h1>Cluster overview</h1><div class=\"cards\">");
    let health = |n: usize| if n == 0 { "ok" } else { "bad" };
    let cards = [
        (
            "Cluster id",
            E(o.cluster_id.as_deref().unwrap_or("-")).to_string(),
            "",
            "cluster-id",
        ),
        ("Controller", o.controller_id.to_string(), "", "controller"),
        ("Brokers", o.brokers.len().to_string(), "", "brokers"),
        (
            "Topics",
            format!(
                "{} <small>+{} internal</small>",
                num(o.topics as i64),
                o.internal_topics
            ),
            "",
            "topics",
        ),
        ("Partitions", num(o.partitions as i64), "", "partitions"),
        (
            "Under-replicated",
            num(o.under_replicated as i64),
            health(o.under_replicated),
            "under-replicated",
        ),
        (
            "Offline",
            num(o.offline as i64),
            health(o.offline),
            "offline",
        ),
    ];
    for (label, value, class, id) in cards {
        let _ = write!(
            b,
            "<div class=\"card {class}\"><div class=\"label\">{label}</div><div class=\"value\" id=\"{id}\">{value}</div></div>"
        );
    }
    b.push_str("</div><h2>Brokers</h2><table id=\"brokers-table\"><thead><tr><th>Id</th><th>Host</th><th>Port</th><th>Rack</th><th class=\"num\">Leaders</th><th class=\"num\">Replicas</th><th>Role</th></tr></thead><tbody>");
    for br in &o.brokers {
        let load = o.load.get(&br.id).copied().unwrap_or_default();
        let role = if br.id == o.controller_id {
            "controller"
        } else {
            ""
        };
        let _ = write!(
            b,
            "<tr data-id=\"{}\"><td class=\"num\"><a href=\"/brokers/{}\">{}</a></td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{role}</td></tr>",
            br.id,
            br.id,
            br.id,
            E(&br.host),
            br.port,
            E(br.rack.as_deref().unwrap_or("-")),
            num(load.leaders as i64),
            num(load.replicas as i64)
        );
    }
    b.push_str("</tbody></table>");
    document(shell, "Overview", "/", &b)
}

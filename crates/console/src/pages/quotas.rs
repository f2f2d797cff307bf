//! Client quotas: each entity (user, client id, IP, or their defaults)
//! with its quota values.

use std::fmt::Write as _;

use crate::html::{document, Shell, E};
use crate::kafka::security::QuotaRow;

pub fn render(shell: &Shell, rows: &[QuotaRow]) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Client quotas</h1><p class=\"summary\" id=\"quotas-summary\">{} entities with quotas</p>\
<table id=\"quotas-table\"><thead><tr><th>Entity</th><th>Quotas</th></tr></thead><tbody>",
        rows.len()
    );
    for r in rows {
        let entity: Vec<String> = r
            .entity
            .iter()
            .map(|(t, n)| match n {
                Some(n) => format!("{t}={n}"),
                None => format!("{t} (default)"),
            })
            .collect();
        let values: Vec<String> = r.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let entity = entity.join(", ");
        let _ = write!(
            b,
            "<tr data-name=\"{}\"><td><code>{}</code></td><td><code>{}</code></td></tr>",
            E(&entity),
            E(&entity),
            E(&values.join(", "))
        );
    }
    b.push_str("</tbody></table>");
    if rows.is_empty() {
        b.push_str("<p class=\"empty\">No client quotas are set.</p>");
    }
    if shell.allow_writes {
        super::quota_edit::form(&mut b);
    }
    document(shell, "Client quotas", "/quotas", &b)
}

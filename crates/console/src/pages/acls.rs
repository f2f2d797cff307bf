//! The cluster's ACLs, one row per binding, or a clear notice when the
//! cluster has no authorizer.

use std::fmt::Write as _;

use crate::html::{document, Shell, E};
use crate::kafka::security::Acls;

pub fn render(shell: &Shell, acls: &Acls) -> String {
    let mut b = String::from("<h1>ACLs</h1>");
    match acls {
        Acls::Disabled => b.push_str(
            "<p class=\"warn\" id=\"acls-disabled\">ACLs are not enabled on this cluster: it has no authorizer \
(<code>authorizer.class.name</code> is not set), so every client may do everything its listener lets it.</p>",
        ),
        Acls::Bindings(rows) => {
            let _ = write!(
                b,
                "<p class=\"summary\" id=\"acls-summary\">{} bindings</p><form class=\"search\" action=\"\"><input type=\"search\" id=\"search\" placeholder=\"Filter by resource or principal (/)\" data-filter=\"acls-table\"></form>\
<table id=\"acls-table\"><thead><tr><th>Resource type</th><th>Resource</th><th>Pattern</th><th>Principal</th><th>Host</th><th>Operation</th><th>Permission</th>{}</tr></thead><tbody>",
                rows.len(),
                if shell.allow_writes { "<th></th>" } else { "" }
            );
            for r in rows {
                let _ = write!(
                    b,
                    "<tr data-name=\"{} {}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"{}\">{}</td>{}</tr>",
                    E(&r.resource_name),
                    E(&r.principal),
                    r.resource_type,
                    E(&r.resource_name),
                    r.pattern_type,
                    E(&r.principal),
                    E(&r.host),
                    r.operation,
                    if r.permission == "DENY" { "bad" } else { "" },
                    r.permission,
                    if shell.allow_writes {
                        format!(
                            "<td><a class=\"delete-acl\" href=\"/acls/delete?{}\">Delete</a></td>",
                            super::acl_edit::delete_query(r)
                        )
                    } else {
                        String::new()
                    }
                );
            }
            b.push_str("</tbody></table>");
            if rows.is_empty() {
                b.push_str("<p class=\"empty\">No ACLs: only super users may do anything (unless <code>allow.everyone.if.no.acl.found</code> is set).</p>");
            }
            if shell.allow_writes {
                super::acl_edit::add_form(&mut b);
            }
        }
    }
    document(shell, "ACLs", "/acls", &b)
}

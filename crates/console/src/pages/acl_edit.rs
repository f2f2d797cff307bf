//! Adding and deleting one ACL binding: the add form (on the ACL page
//! when writes are enabled), and the confirmation page that shows exactly
//! the binding that will be created or deleted.

use std::fmt::Write as _;

use crate::html::{document, Shell, E, U};
use crate::kafka::security::AclRow;

/// The binding as form fields (hidden, for the confirm button).
fn hidden(b: &mut String, r: &AclRow) {
    for (k, v) in fields(r) {
        let _ = write!(b, "<input type=\"hidden\" name=\"{k}\" value=\"{}\">", E(v));
    }
}

fn fields(r: &AclRow) -> [(&'static str, &str); 7] {
    [
        ("resource_type", r.resource_type),
        ("resource_name", &r.resource_name),
        ("pattern_type", r.pattern_type),
        ("principal", &r.principal),
        ("host", &r.host),
        ("operation", r.operation),
        ("permission", r.permission),
    ]
}

/// The query string of a row's delete link.
pub fn delete_query(r: &AclRow) -> String {
    fields(r)
        .iter()
        .map(|(k, v)| format!("{k}={}", U(v)))
        .collect::<Vec<_>>()
        .join("&amp;")
}

/// The add form.
pub fn add_form(b: &mut String) {
    let select = |b: &mut String, name: &str, options: &[&str]| {
        let _ = write!(b, "<select name=\"{name}\">");
        for o in options {
            let _ = write!(b, "<option value=\"{o}\">{o}</option>");
        }
        b.push_str("</select>");
    };
    b.push_str("<h2>Add an ACL</h2><form class=\"controls\" method=\"post\" action=\"/acls/create\"><input type=\"hidden\" name=\"step\" value=\"preview\"><label>Resource type ");
    select(
        b,
        "resource_type",
        &[
            "TOPIC",
            "GROUP",
            "CLUSTER",
            "TRANSACTIONAL_ID",
            "DELEGATION_TOKEN",
            "USER",
        ],
    );
    b.push_str("</label><label>Resource name <input type=\"text\" name=\"resource_name\" required placeholder=\"kafka-cluster for CLUSTER\"></label><label>Pattern ");
    select(b, "pattern_type", &["LITERAL", "PREFIXED"]);
    b.push_str("</label><label>Principal <input type=\"text\" name=\"principal\" required placeholder=\"User:alice\"></label>\
<label>Host <input type=\"text\" name=\"host\" value=\"*\"></label><label>Operation ");
    select(
        b,
        "operation",
        &[
            "READ",
            "WRITE",
            "CREATE",
            "DELETE",
            "ALTER",
            "DESCRIBE",
            "CLUSTER_ACTION",
            "DESCRIBE_CONFIGS",
            "ALTER_CONFIGS",
            "IDEMPOTENT_WRITE",
            "CREATE_TOKENS",
            "DESCRIBE_TOKENS",
            "TWO_PHASE_COMMIT",
            "ALL",
        ],
    );
    b.push_str("</label><label>Permission ");
    select(b, "permission", &["ALLOW", "DENY"]);
    b.push_str("</label><button type=\"submit\" id=\"acl-preview\">Preview</button></form>");
}

/// The confirmation of creating (`create`) or deleting the binding.
pub fn confirm(shell: &Shell, r: &AclRow, create: bool) -> String {
    let (verb, action, button) = if create {
        ("creates", "/acls/create", "Confirm: create this ACL")
    } else {
        ("deletes", "/acls/delete", "Confirm: delete this ACL")
    };
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>{} an ACL</h1><p class=\"warn\" id=\"acl-plan\">Nothing has changed yet. Confirming {verb} exactly this binding: \
<strong>{}</strong> {} <strong>{}</strong> on {} <code>{}</code> ({}) from host <code>{}</code>.</p>",
        if create { "Create" } else { "Delete" },
        r.permission,
        E(&r.principal),
        r.operation,
        r.resource_type,
        E(&r.resource_name),
        r.pattern_type,
        E(&r.host)
    );
    let _ = write!(b, "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"step\" value=\"execute\">");
    hidden(&mut b, r);
    let _ = write!(
        b,
        "<button type=\"submit\" class=\"danger\" id=\"confirm\">{button}</button> <a href=\"/acls\">Cancel</a></form>"
    );
    document(shell, "ACL", "/acls", &b)
}

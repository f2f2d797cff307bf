//! Setting or removing one client quota: the form (on the quotas page
//! when writes are enabled) and the plan the cluster validated, which says
//! the value now and after, with a confirm button.

use std::fmt::Write as _;

use crate::html::{document, Shell, E};
use crate::kafka::quota_admin::{QuotaChange, ENTITY_TYPES};

/// Kafka's client quota keys, offered in the form.
const KEYS: [&str; 5] = [
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
    "connection_creation_rate",
];

pub fn form(b: &mut String) {
    b.push_str("<h2>Set or remove a quota</h2><form class=\"controls\" method=\"post\" action=\"/quotas/alter\"><input type=\"hidden\" name=\"step\" value=\"preview\"><label>Entity type <select name=\"entity_type\">");
    for t in ENTITY_TYPES {
        let _ = write!(b, "<option value=\"{t}\">{t}</option>");
    }
    b.push_str("</select></label><label>Name <input type=\"text\" name=\"entity_name\" placeholder=\"(default)\"></label><label>Quota <select name=\"key\">");
    for k in KEYS {
        let _ = write!(b, "<option value=\"{k}\">{k}</option>");
    }
    b.push_str("</select></label><label>Value <input type=\"number\" name=\"value\" step=\"any\" min=\"0\" placeholder=\"empty: remove\"></label><button type=\"submit\" id=\"quota-preview\">Preview</button></form>");
}

pub fn plan(shell: &Shell, c: &QuotaChange, now: Option<f64>) -> String {
    let mut b = String::new();
    let now_text = now.map_or("not set".to_string(), |v| v.to_string());
    let after = c.value.map_or("removed".to_string(), |v| v.to_string());
    let _ = write!(
        b,
        "<h1>Client quota</h1><p class=\"warn\" id=\"quota-plan\">Dry run, validated by the cluster: nothing has changed yet. Confirming sets \
<code>{}</code> of <strong>{}</strong> from <strong>{}</strong> to <strong>{}</strong>.</p>\
<form method=\"post\" action=\"/quotas/alter\"><input type=\"hidden\" name=\"step\" value=\"execute\">\
<input type=\"hidden\" name=\"entity_type\" value=\"{}\"><input type=\"hidden\" name=\"entity_name\" value=\"{}\">\
<input type=\"hidden\" name=\"key\" value=\"{}\"><input type=\"hidden\" name=\"value\" value=\"{}\">\
<button type=\"submit\" class=\"danger\" id=\"confirm\">Confirm: change the quota</button> <a href=\"/quotas\">Cancel</a></form>",
        E(&c.key),
        E(&c.entity()),
        E(&now_text),
        E(&after),
        E(&c.entity_type),
        E(c.entity_name.as_deref().unwrap_or("")),
        E(&c.key),
        c.value.map_or(String::new(), |v| v.to_string())
    );
    document(shell, "Client quota", "/quotas", &b)
}

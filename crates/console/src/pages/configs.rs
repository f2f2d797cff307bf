//! The configs table shared by the topic and broker pages: every config
//! with its value and source, overrides highlighted, and a toggle (in the
//! page script) to show only the overrides.

use std::fmt::Write as _;

use crate::html::E;
use crate::kafka::model::ConfigEntry;

/// Appends the table; rows whose source is `override_source` are the
/// resource's own values.
pub fn table(b: &mut String, configs: &[ConfigEntry], override_source: &str, toggle: &str) {
    let _ = write!(
        b,
        "<label class=\"toggle\"><input type=\"checkbox\" id=\"overrides-only\"> {toggle}</label>\
<table id=\"configs-table\"><thead><tr><th>Name</th><th>Value</th><th>Source</th></tr></thead><tbody>"
    );
    for c in configs {
        let value = if c.sensitive {
            "(sensitive)".to_string()
        } else {
            E(c.value.as_deref().unwrap_or("null")).to_string()
        };
        let cls = if c.source == override_source {
            " class=\"override\""
        } else {
            ""
        };
        let _ = write!(
            b,
            "<tr{cls}><td><code>{}</code></td><td><code>{value}</code></td><td>{}{}</td></tr>",
            E(&c.name),
            c.source,
            if c.read_only { " (read-only)" } else { "" }
        );
    }
    b.push_str("</tbody></table>");
}

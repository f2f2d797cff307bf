//! Offset reset of a group: the form, the dry-run preview with a
//! confirmation step that says exactly what will change, and the result.

use std::fmt::Write as _;

use crate::html::{document, Shell, E, U};
use crate::kafka::model::ResetRow;

/// What the form asked for, echoed into the confirmation.
#[derive(Clone, Debug, Default)]
pub struct ResetForm {
    pub topic: String,
    pub partition: String,
    pub target: String,
    pub offset: String,
}

/// The form, with the group's topics to choose from.
pub fn form(shell: &Shell, group: &str, topics: &[String]) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Reset offsets of <a href=\"/groups/{}\">{}</a></h1>\
<p>The group must have no active members. Nothing changes until you confirm the preview.</p>\
<form class=\"stacked\" method=\"post\" action=\"/groups/{}/reset\"><input type=\"hidden\" name=\"step\" value=\"preview\">\
<label>Topic <input type=\"text\" name=\"topic\" list=\"topics\" required></label><datalist id=\"topics\">",
        U(group),
        E(group),
        U(group)
    );
    for t in topics {
        let _ = write!(b, "<option value=\"{}\">", E(t));
    }
    b.push_str("</datalist><label>Partition <input type=\"number\" name=\"partition\" min=\"0\" placeholder=\"all\"></label>\
<label>To <select name=\"target\"><option value=\"earliest\">earliest (log start)</option><option value=\"latest\">latest (log end)</option><option value=\"offset\">offset…</option></select></label>\
<label>Offset <input type=\"number\" name=\"offset\" min=\"0\" placeholder=\"for offset…\"></label>\
<button type=\"submit\" id=\"preview\">Preview (dry run)</button></form>");
    document(shell, "Reset offsets", "/groups", &b)
}

/// The plan: a dry run, with a confirm button unless `done`.
pub fn plan(shell: &Shell, group: &str, f: &ResetForm, rows: &[ResetRow], done: bool) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Reset offsets of <a href=\"/groups/{}\">{}</a></h1>",
        U(group),
        E(group)
    );
    if done {
        b.push_str("<p class=\"notice\" id=\"reset-done\">Committed. The group's offsets are now as below.</p>");
    } else {
        let _ = write!(
            b,
            "<p class=\"warn\" id=\"dry-run\">Dry run: nothing has changed yet. Confirming commits these offsets for group <strong>{}</strong> on topic <strong>{}</strong>.</p>",
            E(group),
            E(&f.topic)
        );
    }
    b.push_str("<table id=\"reset-table\"><thead><tr><th class=\"num\">Partition</th><th class=\"num\">Current offset</th><th class=\"num\">New offset</th><th class=\"num\">Log start</th><th class=\"num\">Log end</th></tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            b,
            "<tr data-partition=\"{}\" data-new=\"{}\"><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            r.partition,
            r.new,
            r.partition,
            r.current.map_or("-".into(), |c| c.to_string()),
            r.new,
            r.range.start,
            r.range.end
        );
    }
    b.push_str("</tbody></table>");
    if !done {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/groups/{}/reset\"><input type=\"hidden\" name=\"step\" value=\"execute\">\
<input type=\"hidden\" name=\"topic\" value=\"{}\"><input type=\"hidden\" name=\"partition\" value=\"{}\">\
<input type=\"hidden\" name=\"target\" value=\"{}\"><input type=\"hidden\" name=\"offset\" value=\"{}\">\
<button type=\"submit\" class=\"danger\" id=\"confirm\">Confirm: commit these offsets</button> <a href=\"/groups/{}\">Cancel</a></form>",
            U(group),
            E(&f.topic),
            E(&f.partition),
            E(&f.target),
            E(&f.offset),
            U(group)
        );
    }
    document(shell, "Reset offsets", "/groups", &b)
}

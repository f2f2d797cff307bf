//! Editing a topic: the form (configs to set or remove, a new partition
//! count), then the plan the cluster validated, which says exactly what
//! will change, with a confirm button; then the same plan, done.

use std::fmt::Write as _;

use crate::html::{document, Shell, E, U};
use crate::kafka::admin::EditPlan;
use crate::kafka::model::TopicDetail;

/// What the form asked for, echoed into the confirmation.
#[derive(Clone, Debug, Default)]
pub struct EditForm {
    pub set: String,
    pub remove: String,
    pub partitions: String,
}

/// The form, listing the topic's own config values.
pub fn form(shell: &Shell, t: &TopicDetail) -> String {
    let mut b = String::new();
    let own: Vec<String> = t
        .configs
        .iter()
        .filter(|c| c.source == "DYNAMIC_TOPIC_CONFIG")
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
        .collect();
    let _ = write!(
        b,
        "<h1>Edit topic <a href=\"/topics/{}\">{}</a></h1>\
<p>Nothing changes until you confirm the preview. Values set on the topic now: <code id=\"own-configs\">{}</code></p>\
<form class=\"stacked\" method=\"post\" action=\"/topics/{}/edit\"><input type=\"hidden\" name=\"step\" value=\"preview\">\
<label>Set configs <textarea name=\"set\" rows=\"4\" placeholder=\"one key=value per line, e.g. retention.ms=86400000\"></textarea></label>\
<label>Remove configs (back to the broker's value) <textarea name=\"remove\" rows=\"2\" placeholder=\"one name per line\"></textarea></label>\
<label>Partitions (now {}; only more) <input type=\"number\" name=\"partitions\" min=\"{}\" placeholder=\"unchanged\"></label>\
<button type=\"submit\" id=\"preview\">Preview (dry run)</button></form>",
        U(&t.name),
        E(&t.name),
        if own.is_empty() {
            "none".to_string()
        } else {
            E(&own.join(", ")).to_string()
        },
        U(&t.name),
        t.partitions.len(),
        t.partitions.len() + 1
    );
    document(shell, &format!("Edit {}", t.name), "/topics", &b)
}

/// The plan: a dry run the cluster validated, with a confirm button unless
/// `done`.
pub fn plan(shell: &Shell, topic: &str, f: &EditForm, p: &EditPlan, done: bool) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Edit topic <a href=\"/topics/{}\">{}</a></h1>",
        U(topic),
        E(topic)
    );
    let nothing = p.changes.is_empty() && p.partitions.1.is_none();
    if done {
        b.push_str(
            "<p class=\"notice\" id=\"edit-done\">Done. The topic was changed as below.</p>",
        );
    } else if nothing {
        b.push_str("<p class=\"warn\" id=\"dry-run\">Nothing to change: every value asked for is already the topic's own.</p>");
    } else {
        let _ = write!(
            b,
            "<p class=\"warn\" id=\"dry-run\">Dry run, validated by the cluster: nothing has changed yet. Confirming changes topic <strong>{}</strong> as below.</p>",
            E(topic)
        );
    }
    b.push_str("<table id=\"edit-table\"><thead><tr><th>Change</th><th>Now</th><th>After</th></tr></thead><tbody>");
    for c in &p.changes {
        let now = match (&c.from, c.from_override) {
            (Some(v), true) => format!("<code>{}</code> (set on the topic)", E(v)),
            (Some(v), false) => format!("<code>{}</code> (inherited)", E(v)),
            (None, _) => "-".into(),
        };
        let after = match &c.to {
            Some(v) => format!("<code>{}</code>", E(v)),
            None => "removed: the broker's or the default value applies".into(),
        };
        let _ = write!(
            b,
            "<tr data-name=\"{}\"><td>config <code>{}</code></td><td>{now}</td><td>{after}</td></tr>",
            E(&c.name),
            E(&c.name)
        );
    }
    if let (now, Some(n)) = p.partitions {
        let _ = write!(
            b,
            "<tr data-name=\"partitions\"><td>partitions</td><td>{now}</td><td>{n} (the new ones start empty; keyed records may now go to other partitions)</td></tr>"
        );
    }
    b.push_str("</tbody></table>");
    if !done && !nothing {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/topics/{}/edit\"><input type=\"hidden\" name=\"step\" value=\"execute\">\
<input type=\"hidden\" name=\"set\" value=\"{}\"><input type=\"hidden\" name=\"remove\" value=\"{}\">\
<input type=\"hidden\" name=\"partitions\" value=\"{}\">\
<button type=\"submit\" class=\"danger\" id=\"confirm\">Confirm: change the topic</button> <a href=\"/topics/{}\">Cancel</a></form>",
            U(topic),
            E(&f.set),
            E(&f.remove),
            E(&f.partitions),
            U(topic)
        );
    }
    document(shell, &format!("Edit {topic}"), "/topics", &b)
}

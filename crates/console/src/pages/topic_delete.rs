//! Deleting a topic: a confirmation page that says what goes (its
//! partitions, messages and bytes on disk) and asks for the topic's name to
//! be typed before the delete button does anything.

use std::fmt::Write as _;

use super::{bytes, num};
use crate::html::{document, Shell, E, U};
use crate::kafka::model::TopicDetail;

pub fn confirm(shell: &Shell, t: &TopicDetail) -> String {
    let mut b = String::new();
    let messages: i64 = t
        .partitions
        .iter()
        .filter_map(|(_, r)| r.map(|r| r.messages()))
        .sum();
    let size = if t.sizes.is_empty() {
        String::new()
    } else {
        format!(", {} on disk", bytes(t.sizes.values().sum()))
    };
    let _ = write!(
        b,
        "<h1>Delete topic <a href=\"/topics/{}\">{}</a></h1>\
<p class=\"warn\" id=\"delete-plan\">Deleting topic <strong>{}</strong> removes its {} partition{} and their {} messages{size}, for good. \
Producers and consumers of it get errors (or re-create it, when the cluster auto-creates topics); groups' committed offsets on it are dropped.</p>\
<form class=\"stacked\" method=\"post\" action=\"/topics/{}/delete\">\
<label>Type the topic's name to confirm <input type=\"text\" name=\"confirm\" autocomplete=\"off\" required></label>\
<div><button type=\"submit\" class=\"danger\" id=\"confirm\">Delete topic</button> <a href=\"/topics/{}\">Cancel</a></div></form>",
        U(&t.name),
        E(&t.name),
        E(&t.name),
        t.partitions.len(),
        if t.partitions.len() == 1 { "" } else { "s" },
        num(messages),
        U(&t.name),
        U(&t.name)
    );
    document(shell, &format!("Delete {}", t.name), "/topics", &b)
}

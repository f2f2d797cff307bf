//! The create-topic form (only with writes enabled).

use crate::html::{document, Shell};

pub fn render(shell: &Shell) -> String {
    let b = "<h1>Create topic</h1><form class=\"stacked\" method=\"post\" action=\"/topics/new\">\
<label>Name <input type=\"text\" name=\"name\" required pattern=\"[a-zA-Z0-9._\\-]{1,249}\" autofocus></label>\
<label>Partitions <input type=\"number\" name=\"partitions\" min=\"1\" placeholder=\"broker default\"></label>\
<label>Replication factor <input type=\"number\" name=\"replication_factor\" min=\"1\" placeholder=\"broker default\"></label>\
<label>Configs <textarea name=\"configs\" rows=\"4\" placeholder=\"one key=value per line, e.g. retention.ms=86400000\"></textarea></label>\
<button type=\"submit\" id=\"create\">Create topic</button></form>";
    document(shell, "Create topic", "/topics", b)
}

//! The users with SCRAM credentials: their mechanisms and iteration
//! counts (Kafka never reveals salts or keys).

use std::fmt::Write as _;

use crate::html::{document, Shell, E};
use crate::kafka::security::ScramUser;

pub fn render(shell: &Shell, users: &[ScramUser]) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>SCRAM users</h1><p class=\"summary\" id=\"users-summary\">{} users with SCRAM credentials</p>\
<table id=\"users-table\"><thead><tr><th>User</th><th>Mechanisms (iterations)</th></tr></thead><tbody>",
        users.len()
    );
    for u in users {
        let creds: Vec<String> = u
            .credentials
            .iter()
            .map(|(m, i)| format!("{m} ({i})"))
            .collect();
        let _ = write!(
            b,
            "<tr data-name=\"{}\"><td><code>{}</code></td><td>{}</td></tr>",
            E(&u.name),
            E(&u.name),
            E(&creds.join(", "))
        );
    }
    b.push_str("</tbody></table>");
    if users.is_empty() {
        b.push_str("<p class=\"empty\">No SCRAM users. Users of SASL PLAIN or of other mechanisms are configured on the brokers, not here.</p>");
    }
    document(shell, "SCRAM users", "/users", &b)
}

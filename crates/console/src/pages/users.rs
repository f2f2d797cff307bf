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
            .map(|(m, i)| {
                let delete = if shell.allow_writes {
                    format!(" {}", super::user_edit::delete_link(&u.name, m))
                } else {
                    String::new()
                };
                format!("{} ({i}){delete}", E(m))
            })
            .collect();
        let _ = write!(
            b,
            "<tr data-name=\"{}\"><td><code>{}</code></td><td>{}</td></tr>",
            E(&u.name),
            E(&u.name),
            creds.join(", ")
        );
    }
    b.push_str("</tbody></table>");
    if users.is_empty() {
        b.push_str("<p class=\"empty\">No SCRAM users. Users of SASL PLAIN or of other mechanisms are configured on the brokers, not here.</p>");
    }
    if shell.allow_writes {
        super::user_edit::form(&mut b);
    }
    document(shell, "SCRAM users", "/users", &b)
}

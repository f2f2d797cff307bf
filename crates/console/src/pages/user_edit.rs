//! SCRAM credentials: the form that sets one (on the users page when
//! writes are enabled) and the confirmation of deleting one.

use std::fmt::Write as _;

use crate::html::{document, Shell, E, U};
use crate::kafka::scram_admin::DEFAULT_ITERATIONS;

pub fn form(b: &mut String) {
    let _ = write!(
        b,
        "<h2>Set a SCRAM credential</h2><p class=\"summary\">Sets the user's password for the mechanism, replacing the one it has: clients that log in with the old password are refused from then on.</p>\
<form class=\"controls\" method=\"post\" action=\"/users/alter\">\
<label>User <input type=\"text\" name=\"user\" required autocomplete=\"off\"></label>\
<label>Mechanism <select name=\"mechanism\"><option value=\"SCRAM-SHA-512\">SCRAM-SHA-512</option><option value=\"SCRAM-SHA-256\">SCRAM-SHA-256</option></select></label>\
<label>Iterations <input type=\"number\" name=\"iterations\" min=\"{DEFAULT_ITERATIONS}\" value=\"{DEFAULT_ITERATIONS}\"></label>\
<label>Password <input type=\"password\" name=\"password\" required autocomplete=\"new-password\"></label>\
<button type=\"submit\" id=\"user-set\">Set</button></form>"
    );
}

/// A row's delete link.
pub fn delete_link(user: &str, mechanism: &str) -> String {
    format!(
        "<a class=\"delete-credential\" href=\"/users/delete?user={}&amp;mechanism={}\">delete {}</a>",
        U(user),
        U(mechanism),
        E(mechanism)
    )
}

pub fn confirm_delete(shell: &Shell, user: &str, mechanism: &str) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Delete a SCRAM credential</h1><p class=\"warn\" id=\"user-plan\">Nothing has changed yet. Confirming deletes the <strong>{}</strong> credential of user <strong>{}</strong>: \
it can no longer log in with {} (its other credentials, ACLs and quotas stay).</p>\
<form method=\"post\" action=\"/users/delete\"><input type=\"hidden\" name=\"user\" value=\"{}\"><input type=\"hidden\" name=\"mechanism\" value=\"{}\">\
<button type=\"submit\" class=\"danger\" id=\"confirm\">Confirm: delete the credential</button> <a href=\"/users\">Cancel</a></form>",
        E(mechanism),
        E(user),
        E(mechanism),
        E(user),
        E(mechanism)
    );
    document(shell, "Delete a SCRAM credential", "/users", &b)
}

//! The error page: what went wrong, and for an unreachable cluster what to check.

use std::fmt::Write as _;

use crate::html::{document, Shell, E};
use crate::ConsoleError;

pub fn render(shell: &Shell, e: &ConsoleError) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<section class=\"error\" id=\"error\"><h1>{}</h1><p class=\"message\">{}</p>",
        E(e.title()),
        E(&e.to_string())
    );
    if matches!(
        e,
        ConsoleError::Unreachable { .. } | ConsoleError::Client { .. }
    ) {
        let _ = write!(
            b,
            "<p>The console could not talk to the cluster at <code>{}</code>. Check that the brokers \
are running and that this address (and each broker's advertised listener) is reachable from \
this machine. <a href=\"\">Retry</a></p>",
            E(&shell.brokers)
        );
    }
    b.push_str("</section>");
    document(shell, e.title(), "", &b)
}

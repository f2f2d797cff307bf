//! The message browser of one topic: a page of one partition's records
//! (newest first or from an offset), each key, value and header shown as
//! text, pretty JSON or hex; a filter on their text (searching a bounded
//! window, which the summary names), a link that downloads the page as JSON
//! lines; with writes enabled, a form to produce one.

use std::fmt::Write as _;

use super::num;
use crate::html::{document, Shell, E, U};
use crate::kafka::filter::{MAX_FILTER_LEN, MAX_SCAN_FETCHES, MAX_SCAN_OFFSETS};
use crate::kafka::messages::{MAX_PAGE, MAX_SHOWN_BYTES};
use crate::kafka::model::{Message, MessagePage};
use crate::render::{self, View};

/// The page's display settings, echoed into its links.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub limit: usize,
    pub view: View,
    /// The offset a record was just produced at (a notice).
    pub produced: Option<i64>,
}

pub fn render(shell: &Shell, p: &MessagePage, s: &Settings) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<div class=\"titlebar\"><h1>Messages of <a href=\"/topics/{}\">{}</a></h1></div>",
        U(&p.topic),
        E(&p.topic)
    );
    if let Some(o) = s.produced {
        let _ = write!(
            b,
            "<p class=\"notice\" id=\"produced\">Produced at offset {o}.</p>"
        );
    }
    controls(&mut b, p, s);
    summary(&mut b, p);
    scan_stopped(&mut b, p, s.limit);
    b.push_str("<div id=\"messages\">");
    for m in &p.messages {
        message(&mut b, m, s.view);
    }
    b.push_str("</div>");
    if p.messages.is_empty() {
        b.push_str("<p class=\"empty\">No messages in this range.</p>");
    }
    b.push_str("<p class=\"actions\">");
    if let Some(next) = p.next {
        let label = match (p.newest_first, p.filter.is_some()) {
            (true, false) => "Older messages",
            (false, false) => "Later messages",
            (true, true) => "Search older messages",
            (false, true) => "Search later messages",
        };
        let _ = write!(
            b,
            "<a class=\"button\" id=\"next-page\" href=\"/topics/{}/messages?{}\">{label} →</a> ",
            U(&p.topic),
            query(p, s, next)
        );
    }
    let _ = write!(
        b,
        "<a class=\"button\" id=\"download\" href=\"/topics/{}/messages/download?{}\" download>Download this page (JSON lines)</a></p>",
        U(&p.topic),
        query(p, s, p.anchor)
    );
    if shell.allow_writes {
        produce_form(&mut b, p);
    }
    document(shell, &format!("Messages of {}", p.topic), "/topics", &b)
}

/// The query string of this page's settings from `offset` (escaped for an
/// attribute).
fn query(p: &MessagePage, s: &Settings, offset: i64) -> String {
    let mut q = format!(
        "partition={}&amp;offset={offset}&amp;order={}&amp;limit={}&amp;view={}",
        p.partition,
        if p.newest_first { "newest" } else { "oldest" },
        s.limit,
        s.view.name()
    );
    if let Some(f) = &p.filter {
        let _ = write!(q, "&amp;filter={}", U(f));
    }
    q
}

/// A filtered page that found fewer matches than asked for but did not
/// reach the end of the partition stopped at its bound: say so, and where.
fn scan_stopped(b: &mut String, p: &MessagePage, limit: usize) {
    let (Some(r), Some(next)) = (p.scanned, p.next) else {
        return;
    };
    if p.filter.is_none() || p.messages.len() >= limit.clamp(1, MAX_PAGE) {
        return;
    }
    let (left, button) = if p.newest_first {
        (
            format!("offsets before {}", num(next)),
            "Search older messages",
        )
    } else {
        (
            format!("offsets from {} on", num(next)),
            "Search later messages",
        )
    };
    let _ = write!(
        b,
        "<p class=\"warn\" id=\"scan-stopped\" data-stopped-at=\"{next}\">The search stopped at offset {} after {} offsets \
(one page searches at most {} offsets in at most {MAX_SCAN_FETCHES} fetches): {left} were not searched. “{button}” carries on from offset {}.</p>",
        num(next),
        num(r.end - r.start),
        num(MAX_SCAN_OFFSETS),
        num(next)
    );
}

fn summary(b: &mut String, p: &MessagePage) {
    let order = if p.newest_first {
        "newest first"
    } else {
        "oldest first"
    };
    let _ = write!(
        b,
        "<p class=\"summary\" id=\"messages-summary\">Partition {} holds offsets {} to {} · ",
        p.partition,
        num(p.range.start),
        num(p.range.end),
    );
    match (&p.filter, p.scanned) {
        (Some(f), Some(r)) => {
            let _ = write!(
                b,
                "<span id=\"filter-summary\">{} matching “{}” in offsets {} to {}</span> ({order}; a page searches at most {} offsets)</p>",
                p.messages.len(),
                E(f),
                num(r.start),
                num(r.end),
                num(MAX_SCAN_OFFSETS)
            );
        }
        _ => {
            let _ = write!(b, "showing {} ({order})</p>", p.messages.len());
        }
    }
}

fn controls(b: &mut String, p: &MessagePage, s: &Settings) {
    let _ = write!(
        b,
        "<form class=\"controls\" method=\"get\" action=\"/topics/{}/messages\"><label>Partition <select name=\"partition\">",
        U(&p.topic)
    );
    for i in 0..p.partitions {
        let sel = if i as i32 == p.partition {
            " selected"
        } else {
            ""
        };
        let _ = write!(b, "<option value=\"{i}\"{sel}>{i}</option>");
    }
    b.push_str("</select></label><label>Order <select name=\"order\">");
    for (v, label) in [("newest", "newest first"), ("oldest", "from offset")] {
        let sel = if (v == "newest") == p.newest_first {
            " selected"
        } else {
            ""
        };
        let _ = write!(b, "<option value=\"{v}\"{sel}>{label}</option>");
    }
    let _ = write!(
        b,
        "</select></label><label>Offset <input type=\"number\" name=\"offset\" min=\"0\" placeholder=\"end\"></label>\
<label>or from time (UTC) <input type=\"datetime-local\" name=\"time\" step=\"1\"></label>\
<label>Filter <input type=\"search\" name=\"filter\" maxlength=\"{MAX_FILTER_LEN}\" value=\"{}\" placeholder=\"text in key, value or headers\"></label>\
<label>Page size <input type=\"number\" name=\"limit\" min=\"1\" max=\"{MAX_PAGE}\" value=\"{}\"></label><label>Show as <select name=\"view\">",
        E(p.filter.as_deref().unwrap_or("")),
        s.limit
    );
    for v in [View::Auto, View::Text, View::Json, View::Hex] {
        let sel = if v == s.view { " selected" } else { "" };
        let _ = write!(
            b,
            "<option value=\"{}\"{sel}>{}</option>",
            v.name(),
            v.name()
        );
    }
    b.push_str("</select></label><button type=\"submit\">Show</button></form>");
}

fn message(b: &mut String, m: &Message, view: View) {
    let _ = write!(
        b,
        "<article class=\"message\" data-offset=\"{}\"><div class=\"meta\"><span class=\"offset\">offset {}</span> <span class=\"ts\">{}</span>",
        m.offset,
        m.offset,
        render::timestamp(m.timestamp)
    );
    b.push_str("</div><dl>");
    field(b, "Key", "key", m.key.as_deref(), m.key_size, view);
    for (k, v) in &m.headers {
        let _ = write!(b, "<dt>Header <code>{}</code></dt>", E(k));
        bytes(
            b,
            "header",
            v.as_deref(),
            v.as_ref().map_or(0, Vec::len),
            view,
        );
    }
    field(b, "Value", "value", m.value.as_deref(), m.value_size, view);
    b.push_str("</dl></article>");
}

fn field(b: &mut String, label: &str, class: &str, v: Option<&[u8]>, size: usize, view: View) {
    let _ = write!(b, "<dt>{label}</dt>");
    bytes(b, class, v, size, view);
}

fn bytes(b: &mut String, class: &str, v: Option<&[u8]>, size: usize, view: View) {
    match v {
        None => {
            let _ = write!(b, "<dd class=\"{class} null\">null</dd>");
        }
        Some(v) => {
            let (kind, text) = render::show(v, view);
            let more = if size > MAX_SHOWN_BYTES {
                format!(" <span class=\"tag\">first {MAX_SHOWN_BYTES} of {size} bytes</span>")
            } else {
                String::new()
            };
            let _ = write!(
                b,
                "<dd><span class=\"tag\">{kind}</span>{more}<pre class=\"{class}\">{}</pre></dd>",
                E(&text)
            );
        }
    }
}

fn produce_form(b: &mut String, p: &MessagePage) {
    let _ = write!(
        b,
        "<h2>Produce a message</h2><form class=\"produce\" method=\"post\" action=\"/topics/{}/produce\">\
<label>Partition <input type=\"number\" name=\"partition\" min=\"0\" max=\"{}\" value=\"{}\"></label>\
<label>Key <input type=\"text\" name=\"key\" placeholder=\"(none)\"></label>\
<label>Headers <textarea name=\"headers\" rows=\"2\" placeholder=\"one key=value per line\"></textarea></label>\
<label>Value <textarea name=\"value\" rows=\"5\"></textarea></label>\
<button type=\"submit\" id=\"produce\">Produce</button></form>",
        U(&p.topic),
        p.partitions.saturating_sub(1),
        p.partition
    );
}

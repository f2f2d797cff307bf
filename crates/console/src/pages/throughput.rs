//! Live throughput: records produced per second per broker (to the
//! partitions it leads) and per topic, as small SVG charts. The page is a
//! frame; the console's script polls `/throughput.json` (a
//! [`crate::kafka::throughput::Sample`]), keeps the last samples in the
//! browser (a bounded ring) and draws the rates between them. Names go
//! into the charts as DOM text, never as markup.

use crate::html::{document, Shell};

/// Seconds between samples.
pub const INTERVAL_SECS: u32 = 5;
/// Samples the script keeps (and charts) at most.
pub const MAX_SAMPLES: u32 = 60;
/// Topics charted at most (the busiest).
pub const MAX_TOPICS: u32 = 8;

pub fn render(shell: &Shell) -> String {
    let b = format!(
        "<h1>Live throughput</h1>\
<p class=\"summary\">Records produced per second, from end offsets the console samples every {INTERVAL_SECS} s while this page is open \
(the last {MAX_SAMPLES} samples are kept in the page). <span id=\"throughput-status\">Waiting for the second sample…</span></p>\
<div id=\"throughput\" data-source=\"/throughput.json\" data-interval=\"{}\" data-max-samples=\"{MAX_SAMPLES}\" data-max-topics=\"{MAX_TOPICS}\">\
<h2>Per broker (partitions it leads)</h2><div class=\"chart\" id=\"chart-brokers\"></div>\
<h2>Per topic (the {MAX_TOPICS} busiest)</h2><div class=\"chart\" id=\"chart-topics\"></div>\
<table id=\"rates-table\"><thead><tr><th>Topic</th><th class=\"num\">Records/s now</th><th class=\"num\">End offsets (sum)</th></tr></thead><tbody></tbody></table></div>",
        INTERVAL_SECS * 1000
    );
    document(shell, "Live throughput", "/throughput", &b)
}

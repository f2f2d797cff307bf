//! Live throughput: records and bytes in per broker (to the partitions it
//! leads) and per topic, and what consumer groups consume, as small SVG
//! charts. The page is a frame; the console's script polls
//! `/throughput.json` (a [`crate::kafka::throughput::Sample`]), keeps the
//! last samples in the browser (a bounded ring) and draws the rates between
//! them. The page says where each figure comes from; the script only shows
//! the sentence that applies. Names go into the charts as DOM text, never
//! as markup.

use crate::html::{document, Shell};
use crate::kafka::consumption::MAX_GROUPS;

/// Seconds between samples.
pub const INTERVAL_SECS: u32 = 5;
/// Samples the script keeps (and charts) at most.
pub const MAX_SAMPLES: u32 = 60;
/// Topics (and groups) charted at most (the busiest).
pub const MAX_TOPICS: u32 = 8;

pub fn render(shell: &Shell) -> String {
    let b = format!(
        "<h1>Live throughput</h1>\
<p class=\"summary\">Sampled every {INTERVAL_SECS} s while this page is open (the last {MAX_SAMPLES} samples are kept in the page). \
<span id=\"throughput-status\">Waiting for the second sample…</span></p>\
<div id=\"throughput\" data-source=\"/throughput.json\" data-interval=\"{}\" data-max-samples=\"{MAX_SAMPLES}\" data-max-topics=\"{MAX_TOPICS}\">\
<fieldset class=\"unit\"><legend>Show</legend>\
<label><input type=\"radio\" name=\"unit\" value=\"records\" id=\"unit-records\" checked> records/s</label> \
<label><input type=\"radio\" name=\"unit\" value=\"bytes\" id=\"unit-bytes\"> bytes/s</label></fieldset>\
<ul class=\"sources\">\
<li>Records in: the partitions' end offsets.</li>\
<li id=\"bytes-source\">Bytes in: \
<span data-source=\"broker-metrics\" hidden>counted by each Sluice broker itself (<code>sluice_topic_bytes_in_total</code> at its metrics endpoint).</span>\
<span data-source=\"log-size\" hidden><strong>estimated</strong> from the growth of the partition leaders' log sizes (DescribeLogDirs), \
as this cluster's brokers export no counters the console can read; retention and compaction make it read low.</span> \
<span id=\"bytes-note\"></span></li>\
<li id=\"consumption-source\">Consumed: the consumer groups' committed offsets over time (a group shows progress only when it commits; \
at most {MAX_GROUPS} groups are sampled<span id=\"groups-left-out\"></span>); bytes consumed are <strong>estimated</strong> as records \
times the topic's mean record size on disk.</li></ul>\
<h2>In, per broker (partitions it leads)</h2><div class=\"chart\" id=\"chart-brokers\"></div>\
<h2>In, per topic (the {MAX_TOPICS} busiest)</h2><div class=\"chart\" id=\"chart-topics\"></div>\
<h2>Consumed, per group (the {MAX_TOPICS} busiest)</h2><div class=\"chart\" id=\"chart-groups\"></div>\
<table id=\"rates-table\"><thead><tr><th>Topic</th><th class=\"num\">Records/s in</th><th class=\"num\">Bytes/s in</th>\
<th class=\"num\">Records/s consumed</th><th class=\"num\">Bytes/s consumed (est.)</th><th class=\"num\">End offsets (sum)</th></tr></thead><tbody></tbody></table></div>",
        INTERVAL_SECS * 1000
    );
    document(shell, "Live throughput", "/throughput", &b)
}

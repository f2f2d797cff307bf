//! The console checks of the pages added for issue 22's second round: the
//! message filter and download, live throughput and the security pages
//! (run against Sluice and the reference Kafka), and the writes behind confirmations (topic edit and delete,
//! offset and group delete, client quotas). Included by tests/console.rs.

use super::common::console::{get_with_head, rows, ConsoleProcess};
use super::{kcat, sluice, SCRIPT_KEY};

/// The `data-offset`s of a message page, in page order.
pub fn offsets_of(page: &str) -> Vec<String> {
    page.split("data-offset=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

/// The message browser's filter (key, value, header; paging through a
/// bounded window in both orders; the text echoed escaped) and the page's
/// download as JSON lines.
pub fn check_filter_and_download(c: &ConsoleProcess) {
    let base = "/topics/orders/messages";
    let key = c.page(&format!("{base}?partition=1&filter=SCRIPT"));
    assert_eq!(offsets_of(&key), vec!["0"], "filter on the key:\n{key}");
    let value = c.page(&format!("{base}?partition=1&filter=widget"));
    assert_eq!(offsets_of(&value), vec!["0"], "on the value:\n{value}");
    let header = c.page(&format!("{base}?partition=1&filter=abc-1"));
    assert_eq!(offsets_of(&header), vec!["0"], "on a header:\n{header}");
    let none = c.page(&format!("{base}?partition=1&filter=gadget"));
    assert!(offsets_of(&none).is_empty(), "{none}");
    assert!(
        none.contains("id=\"filter-summary\">0 matching"),
        "the summary says what was searched:\n{none}"
    );
    // Newest first: the newest matches, and a link that carries the filter on.
    let p0 = c.page(&format!("{base}?partition=0&filter=PLAIN&limit=3"));
    assert_eq!(offsets_of(&p0), vec!["9", "8", "7"], "{p0}");
    assert!(
        p0.contains("offset=7&amp;order=newest&amp;limit=3&amp;view=auto&amp;filter=PLAIN"),
        "the older page keeps the filter:\n{p0}"
    );
    let older = c.page(&format!("{base}?partition=0&filter=PLAIN&limit=3&offset=7"));
    assert_eq!(offsets_of(&older), vec!["6", "5", "4"], "{older}");
    let one = c.page(&format!("{base}?partition=0&filter=plain-3"));
    assert_eq!(offsets_of(&one), vec!["3"], "{one}");
    // Oldest first, from an offset.
    let from = c.page(&format!(
        "{base}?partition=0&order=oldest&offset=2&filter=plain-&limit=4"
    ));
    assert_eq!(offsets_of(&from), vec!["2", "3", "4", "5"], "{from}");
    assert!(from.contains("offset=6&amp;order=oldest"), "{from}");
    // The filter text is shown escaped, never as markup.
    let odd = c.page(&format!("{base}?partition=0&filter=%3Cb%3E%22x"));
    assert!(odd.contains("&lt;b&gt;&quot;x"), "{odd}");
    assert!(!odd.contains("<b>\"x"), "{odd}");

    // Download: the page shown, as JSON lines.
    let (head, body) = get_with_head(
        &c.addr,
        &format!("{base}/download?partition=1&filter=widget"),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-ndjson"),
        "{head}"
    );
    assert!(
        head.contains("attachment; filename=\"orders-1-0-0.jsonl\""),
        "{head}"
    );
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["key"], SCRIPT_KEY);
    assert_eq!(lines[0]["value"], "{\"id\":7,\"name\":\"widget\"}");
    assert_eq!(lines[0]["headers"][0]["key"], "trace");
    assert_eq!(lines[0]["offset"], 0);
    // The page's own download link names this page's offsets.
    let shown = c.page(&format!("{base}?partition=0&limit=3"));
    let link = shown
        .split("id=\"download\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a download link")
        .replace("&amp;", "&");
    let (_, body) = get_with_head(&c.addr, &link);
    let offsets: Vec<i64> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["offset"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(offsets, vec![9, 8, 7], "{link}: {body}");
}

/// The filter over a partition of 12,000 records whose only match is at
/// offset 0: one page searches exactly 10,000 offsets (the bound), says
/// that it stopped and where, and the next page carries on and finds it.
pub fn check_filter_bound(c: &ConsoleProcess, bootstrap: &str) {
    sluice(&[
        "topic", "create", "-b", bootstrap, "deep", "-p", "1", "-r", "1",
    ]);
    let mut lines = String::from("needle-0\n");
    for i in 1..12_000 {
        lines.push_str(&format!("hay-{i}\n"));
    }
    kcat(&["-b", bootstrap, "-P", "-t", "deep", "-p", "0"], &lines);
    let base = "/topics/deep/messages?partition=0&filter=needle";
    let stopped_at = |page: &str| -> Option<i64> {
        page.split("id=\"scan-stopped\" data-stopped-at=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(|s| s.parse().unwrap())
    };
    // Newest first: offsets 2,000 to 12,000 searched, nothing found.
    let newest = c.page(base);
    assert!(offsets_of(&newest).is_empty(), "{newest}");
    assert!(
        newest.contains("id=\"filter-summary\">0 matching “needle” in offsets 2,000 to 12,000<"),
        "exactly 10,000 offsets searched:\n{newest}"
    );
    assert_eq!(stopped_at(&newest), Some(2000), "{newest}");
    assert!(
        newest.contains("offsets before 2,000 were not searched"),
        "{newest}"
    );
    assert!(newest.contains("offset=2000&amp;order=newest"), "{newest}");
    let older = c.page(&format!("{base}&offset=2000"));
    assert_eq!(
        offsets_of(&older),
        vec!["0"],
        "the next page finds it:\n{older}"
    );
    assert_eq!(
        stopped_at(&older),
        None,
        "it reached the log start:\n{older}"
    );
    // Oldest first from offset 1: 1 to 10,001, stopped there.
    let oldest = c.page(&format!("{base}&order=oldest&offset=1"));
    assert!(offsets_of(&oldest).is_empty(), "{oldest}");
    assert!(
        oldest.contains("in offsets 1 to 10,001<"),
        "exactly 10,000 offsets searched:\n{oldest}"
    );
    assert_eq!(stopped_at(&oldest), Some(10_001), "{oldest}");
    assert!(
        oldest.contains("offsets from 10,001 on were not searched"),
        "{oldest}"
    );
    // A page that fills up does not claim to have stopped at the bound.
    let hay = c.page("/topics/deep/messages?partition=0&filter=hay&limit=5");
    assert_eq!(offsets_of(&hay).len(), 5, "{hay}");
    assert_eq!(stopped_at(&hay), None, "{hay}");
}

/// Set a client quota and remove it again, each previewed (validated by
/// the cluster) before it is confirmed; the CLI sees the result.
pub fn check_quota_alter(c: &ConsoleProcess, bootstrap: &str) {
    assert!(c.page("/quotas").contains("action=\"/quotas/alter\""));
    let form = |step: &'static str, value: &'static str| {
        vec![
            ("step", step),
            ("entity_type", "user"),
            ("entity_name", "alice"),
            ("key", "producer_byte_rate"),
            ("value", value),
        ]
    };
    let described = || sluice(&["quotas", "describe", "-b", bootstrap]);
    let (status, plan) = c.post("/quotas/alter", &form("preview", "2048"));
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan.contains("from <strong>not set</strong> to <strong>2048</strong>"),
        "{plan}"
    );
    assert!(
        !described().contains("producer_byte_rate"),
        "the preview set nothing"
    );
    let (status, location) = c.post("/quotas/alter", &form("execute", "2048"));
    assert_eq!((status, location.as_str()), (303, "/quotas"));
    // Kafka's brokers learn a quota from the metadata log a moment after
    // the controller commits it.
    assert!(
        eventually(|| described().contains("producer_byte_rate=2048")),
        "{}",
        described()
    );
    let (status, plan) = c.post("/quotas/alter", &form("preview", ""));
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan.contains("from <strong>2048</strong> to <strong>removed</strong>"),
        "{plan}"
    );
    let (status, _) = c.post("/quotas/alter", &form("execute", ""));
    assert_eq!(status, 303);
    assert!(
        eventually(|| !described().contains("producer_byte_rate")),
        "{}",
        described()
    );
}

/// Whether `cond` holds within 30 s (checked every 200 ms).
fn eventually(cond: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Edit a topic (configs, partitions: a validated dry run first, then
/// what the CLI shows), then delete it behind a typed confirmation.
pub fn check_topic_edit_and_delete(c: &ConsoleProcess, bootstrap: &str) {
    let page = c.page("/topics/made-here");
    assert!(page.contains("href=\"/topics/made-here/edit\""), "{page}");
    let form = c.page("/topics/made-here/edit");
    assert!(
        form.contains("retention.ms=3600000"),
        "own configs listed:\n{form}"
    );
    let edit = |step: &str, set: &str, remove: &str, partitions: &str| {
        c.post(
            "/topics/made-here/edit",
            &[
                ("step", step),
                ("set", set),
                ("remove", remove),
                ("partitions", partitions),
            ],
        )
    };
    let (status, plan) = edit(
        "preview",
        "retention.ms=7200000\nmax.message.bytes=50000",
        "",
        "3",
    );
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan.contains("id=\"dry-run\"") && plan.contains("id=\"confirm\""),
        "{plan}"
    );
    let names: Vec<String> = rows(&plan, "edit-table")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec!["retention.ms", "max.message.bytes", "partitions"],
        "{plan}"
    );
    assert!(
        plan.contains("<code>3600000</code> (set on the topic)"),
        "{plan}"
    );
    let describe = || sluice(&["topic", "describe", "-b", bootstrap, "made-here"]);
    let before = describe();
    assert!(
        before.contains("PARTITIONS  2") && before.contains("retention.ms=3600000"),
        "the dry run changed nothing:\n{before}"
    );
    // The cluster validates the dry run: a bad value is refused before any confirmation.
    let (status, bad) = edit("preview", "retention.ms=soon", "", "");
    assert_eq!(status, 502, "{bad}");
    let (status, fewer) = edit("preview", "", "", "1");
    assert_eq!(status, 400, "{fewer}");
    let (status, done) = edit(
        "execute",
        "retention.ms=7200000\nmax.message.bytes=50000",
        "",
        "3",
    );
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("id=\"edit-done\""), "{done}");
    let after = describe();
    assert!(after.contains("PARTITIONS  3"), "{after}");
    assert!(
        after.contains("retention.ms=7200000") && after.contains("max.message.bytes=50000"),
        "{after}"
    );
    let (status, removed) = edit("execute", "", "max.message.bytes", "");
    assert_eq!(status, 200, "{removed}");
    assert!(
        !describe().contains("max.message.bytes"),
        "the override is gone"
    );

    // Delete: the confirmation says what goes; a wrong name deletes nothing.
    let confirm = c.page("/topics/made-here/delete");
    assert!(
        confirm.contains("id=\"delete-plan\"") && confirm.contains("3 partitions"),
        "{confirm}"
    );
    let (status, _) = c.post("/topics/made-here/delete", &[("confirm", "made")]);
    assert_eq!(status, 400);
    assert!(sluice(&["topic", "list", "-b", bootstrap]).contains("made-here"));
    let (status, location) = c.post("/topics/made-here/delete", &[("confirm", "made-here")]);
    assert_eq!((status, location.as_str()), (303, "/topics"));
    assert!(!sluice(&["topic", "list", "-b", bootstrap]).contains("made-here"));
}

/// Delete a group's offsets on one topic, then the group, each after a
/// confirmation page that lists the offsets; the CLI sees both.
pub fn check_group_deletes(c: &ConsoleProcess, bootstrap: &str) {
    sluice(&[
        "topic", "create", "-b", bootstrap, "kept", "-p", "1", "-r", "1",
    ]);
    sluice(&[
        "topic", "create", "-b", bootstrap, "dropped", "-p", "2", "-r", "1",
    ]);
    kcat(&["-b", bootstrap, "-P", "-t", "kept"], "a\nb\n");
    kcat(
        &["-b", bootstrap, "-P", "-t", "dropped", "-p", "0"],
        "c\nd\n",
    );
    kcat(&["-b", bootstrap, "-P", "-t", "dropped", "-p", "1"], "e\n");
    sluice(&[
        "consume", "-b", bootstrap, "kept", "--group", "g2", "-n", "2",
    ]);
    sluice(&[
        "consume", "-b", bootstrap, "dropped", "--group", "g2", "-n", "3",
    ]);
    let group = c.page("/groups/g2");
    assert!(
        group.contains("href=\"/groups/g2/offsets/delete?topic=dropped\""),
        "{group}"
    );
    let confirm = c.page("/groups/g2/offsets/delete?topic=dropped");
    assert_eq!(rows_text(&confirm, "offsets-table"), 2, "{confirm}");
    assert!(
        confirm.contains("Deletes the 2 committed offsets"),
        "{confirm}"
    );
    let (status, location) = c.post("/groups/g2/offsets/delete", &[("topic", "dropped")]);
    assert_eq!((status, location.as_str()), (303, "/groups/g2"));
    let described = sluice(&["group", "describe", "-b", bootstrap, "g2"]);
    assert!(
        described.contains("kept") && !described.contains("dropped"),
        "{described}"
    );

    let confirm = c.page("/groups/g2/delete");
    assert!(
        confirm.contains("id=\"delete-plan\"")
            && confirm.contains("all 1 of its committed offsets"),
        "{confirm}"
    );
    let (status, location) = c.post("/groups/g2/delete", &[]);
    assert_eq!((status, location.as_str()), (303, "/groups"));
    let listed = sluice(&["group", "list", "-b", bootstrap]);
    assert!(!listed.contains("g2"), "{listed}");
}

/// The number of body rows of table `id`.
fn rows_text(html: &str, id: &str) -> usize {
    let start = html.find(&format!("id=\"{id}\"")).expect("the table");
    let end = html[start..].find("</table>").unwrap() + start;
    html[start..end].matches("<tr><td>").count()
}

/// On a cluster with the StandardAuthorizer: add an ACL in the console (a
/// preview first) and delete it from its row's confirmation, each checked
/// with Kafka's own `kafka-acls --list`.
pub fn check_acl_writes_with_kafka_acls(c: &ConsoleProcess, bootstrap: &str) {
    let form = [
        ("resource_type", "topic"),
        ("resource_name", "orders"),
        ("pattern_type", "literal"),
        ("principal", "User:carol"),
        ("host", "*"),
        ("operation", "read"),
        ("permission", "allow"),
    ];
    let with_step = |step: &'static str| {
        let mut f = vec![("step", step)];
        f.extend(form);
        f
    };
    const CAROL: &str = "principal=User:carol, host=*, operation=READ, permissionType=ALLOW";
    let listed = || {
        super::common::kafka_tool(
            "org.apache.kafka.tools.AclCommand",
            &[
                "--bootstrap-server",
                bootstrap,
                "--list",
                "--topic",
                "orders",
            ],
        )
    };
    // Kafka's brokers apply what the controller committed a moment later.
    let eventually_listed = |want: bool| eventually(|| listed().contains(CAROL) == want);
    let (status, plan) = c.post("/acls/create", &with_step("preview"));
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan.contains("id=\"acl-plan\"") && plan.contains("User:carol"),
        "{plan}"
    );
    assert!(!listed().contains(CAROL), "the preview created nothing");
    let (status, location) = c.post("/acls/create", &with_step("execute"));
    assert_eq!((status, location.as_str()), (303, "/acls"));
    assert!(eventually_listed(true), "{}", listed());
    assert!(eventually(|| c
        .page("/acls")
        .contains("<code>User:carol</code>")));
    let confirm = c.page(
        "/acls/delete?resource_type=TOPIC&resource_name=orders&pattern_type=LITERAL\
&principal=User%3Acarol&host=*&operation=READ&permission=ALLOW",
    );
    assert!(confirm.contains("id=\"acl-plan\""), "{confirm}");
    assert!(
        listed().contains(CAROL),
        "the confirmation page deleted nothing"
    );
    let (status, location) = c.post("/acls/delete", &with_step("execute"));
    assert_eq!((status, location.as_str()), (303, "/acls"));
    assert!(eventually_listed(false), "{}", listed());
}

/// One `/throughput.json` sample.
fn throughput_sample(c: &ConsoleProcess) -> serde_json::Value {
    let (head, body) = get_with_head(&c.addr, "/throughput.json");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    serde_json::from_str(&body).expect("a JSON sample")
}

/// The live throughput page and its JSON samples (records in, bytes in
/// from `bytes_source`, what group `billing` consumed), and the security
/// pages of a cluster without an authorizer.
pub fn check_throughput_and_security(
    c: &ConsoleProcess,
    bootstrap: &str,
    bytes_source: &str,
    authorizer: bool,
) {
    // Live throughput: the page is a frame for the script; its samples are
    // end offsets summed per topic and per leader.
    let frame = c.page("/throughput");
    assert!(
        frame.contains("data-source=\"/throughput.json\""),
        "{frame}"
    );
    // Both sources are explained; the script shows the one that applies.
    assert!(
        frame.contains("data-source=\"broker-metrics\"")
            && frame.contains("data-source=\"log-size\""),
        "{frame}"
    );
    let sample = throughput_sample(c);
    let body = sample.to_string();
    assert_eq!(sample["topics"]["orders"], 11, "{body}");
    let sum = |v: &serde_json::Value| -> i64 {
        v.as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum()
    };
    assert_eq!(sum(&sample["brokers"]), sum(&sample["topics"]), "{body}");
    assert!(sample["at_ms"].as_i64().unwrap() > 0);
    // Bytes in: the broker's counters on Sluice, log sizes elsewhere.
    assert_eq!(sample["bytes_in"]["source"], bytes_source, "{body}");
    let orders_bytes = sample["bytes_in"]["topics"]["orders"].as_i64().unwrap_or(0);
    assert!(orders_bytes > 11, "{body}");
    assert_eq!(
        sum(&sample["bytes_in"]["brokers"]),
        sum(&sample["bytes_in"]["topics"]),
        "{body}"
    );
    let mean = sample["record_bytes"]["orders"].as_f64().unwrap_or(0.0);
    assert!(mean > 1.0, "{body}");
    // Consumption: billing's committed offsets move by what it consumes.
    let committed =
        |s: &serde_json::Value| s["consumption"]["groups"]["billing"]["orders"]["offsets"].as_i64();
    let before = committed(&sample).unwrap_or_else(|| panic!("billing's offsets: {body}"));
    sluice(&[
        "consume", "-b", bootstrap, "orders", "--group", "billing", "-n", "3",
    ]);
    let after = throughput_sample(c);
    assert_eq!(committed(&after), Some(before + 3), "{after}");

    // Without an authorizer the ACL page says so; no SCRAM users or quotas.
    let acls = c.page("/acls");
    let id = if authorizer {
        "acls-table"
    } else {
        "acls-disabled"
    };
    assert!(acls.contains(&format!("id=\"{id}\"")), "{acls}");
    let users = c.page("/users");
    assert!(users.contains("id=\"users-summary\">0 users"), "{users}");
    let quotas = c.page("/quotas");
    assert!(quotas.contains("id=\"quotas-summary\""), "{quotas}");
}

"""Drives the Sluice web console in headless Chromium (Debian's, through
Playwright): every page loads without console errors, the message browser
shows a produced JSON message and an escaped <script> key (no dialog may
open), keyboard search works, and with writes enabled a topic is created,
a message produced and a group's offsets reset (preview, then confirm) from
the forms. Screenshots at 1440x900 go to --screenshots. Prints the topics
page's load time as measured by the browser (a figure, not an assertion).

Run by scripts/console-browser, which starts the broker and the console."""

import argparse
import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

failures = []


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    failures.append(msg)


def check(cond, msg):
    if cond:
        print(f"ok   {msg}", flush=True)
    else:
        fail(msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="console with writes enabled")
    ap.add_argument("--unreachable-url", help="console of a cluster that is down")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--screenshots", help="directory for the 1440x900 screenshots")
    ap.add_argument("--timing-only", action="store_true", help="only time the topics page")
    ap.add_argument("--topic", default="orders", help="3 partitions, a JSON record with a <script> key in partition 1")
    ap.add_argument("--group", default="billing", help="a group with committed offsets on --topic")
    ap.add_argument("--new-topic", default="browser-made", help="the topic the browser creates")
    ap.add_argument("--live-topic", help="a topic produced to while the throughput page samples")
    ap.add_argument("--old-group", help="a group without members the browser deletes (offsets, then the group)")
    args = ap.parse_args()
    if args.screenshots:
        os.makedirs(args.screenshots, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        page = ctx.new_page()
        errors = []
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("dialog", lambda d: (errors.append(f"dialog opened: {d.message}"), d.dismiss()))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))

        def visit(name, path, expect_status=200):
            errors.clear()
            resp = page.goto(args.url + path, wait_until="load")
            status = resp.status if resp else None
            check(status == expect_status, f"{name}: GET {path} -> {status}")
            check(not errors, f"{name}: no console errors {errors if errors else ''}")
            return resp

        def submit(selector):
            with page.expect_navigation(wait_until="load"):
                page.click(selector)

        def shot(name):
            if args.screenshots:
                page.screenshot(path=os.path.join(args.screenshots, f"{name}.png"))

        # The topics page's load time, in the browser.
        times = []
        for _ in range(3):
            page.goto(args.url + "/topics", wait_until="load")
            nav = page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return [n.responseStart - n.requestStart, n.domContentLoadedEventEnd - n.startTime, n.loadEventEnd - n.startTime]; }"
            )
            times.append(nav)
        rows = page.locator("#topics-table tbody tr").count()
        partitions = page.locator("#topics-summary").inner_text()
        best = min(times, key=lambda t: t[2])
        print(
            f"topics page ({partitions}, {rows} rows): server {best[0]:.0f} ms, "
            f"DOMContentLoaded {best[1]:.0f} ms, load {best[2]:.0f} ms (best of 3)",
            flush=True,
        )
        if args.timing_only:
            browser.close()
            return

        visit("overview", "/")
        check(page.locator("#brokers-table tbody tr").count() >= 1, "overview lists brokers")
        shot("overview")

        first = page.locator("#brokers-table tbody tr a").first.get_attribute("href")
        visit("broker", first)
        check(page.locator("#configs-table tbody tr").count() > 10, "broker page lists its configs")
        shot("broker")

        visit("topics", "/topics")
        page.keyboard.press("/")
        check(page.evaluate("document.activeElement.id") == "search", "'/' focuses the search box")
        page.keyboard.type(args.topic[:3])
        visible = page.locator("#topics-table tbody tr:visible").count()
        check(visible >= 1, f"typing filters the topics table ({visible} shown)")
        page.keyboard.press("Escape")
        page.goto(args.url + "/topics", wait_until="load")
        shot("topics")

        visit("topic", f"/topics/{args.topic}")
        check(page.locator("#partitions-table tbody tr").count() == 3, "topic page shows 3 partitions")
        shot("topic")
        page.check("#overrides-only")
        shown = page.locator("#configs-table tbody tr:visible").count()
        overrides = page.locator("#configs-table tbody tr.override").count()
        check(shown == overrides >= 1, f"the toggle shows only the topic's own configs ({shown} of them)")

        visit("messages", f"/topics/{args.topic}/messages?partition=1")
        value = page.locator("pre.value").first.inner_text()
        check('"name": "widget"' in value, f"message browser shows the JSON pretty ({value!r})")
        key = page.locator("pre.key").first.inner_text()
        check(key == "<script>alert(1)</script>", f"the <script> key is shown as text ({key!r})")
        check(page.locator("main script").count() == 0, "no script element came from the message")
        shot("messages")

        # The filter, then the shown page downloaded as JSON lines.
        page.fill("input[name=filter]", "WIDGET")
        submit("form.controls button[type=submit]")
        check(page.locator("article.message").count() == 1, "the filter finds the widget message")
        check("matching" in page.locator("#filter-summary").inner_text(), "the summary names the searched offsets")
        shot("messages-filter")
        with page.expect_download() as dl:
            page.click("#download")
        path = dl.value.path()
        with open(path, encoding="utf-8") as fh:
            lines = [json.loads(l) for l in fh if l.strip()]
        check(
            len(lines) == 1 and lines[0]["key"] == "<script>alert(1)</script>",
            f"the download holds the shown message ({dl.value.suggested_filename}: {lines!r})",
        )

        visit("groups", "/groups")
        check(page.locator(f"a[href='/groups/{args.group}']").count() == 1, f"groups list shows {args.group}")
        shot("groups")

        visit("group", f"/groups/{args.group}")
        lag = page.locator("#total-lag").inner_text()
        check(lag.strip() != "", f"group page shows total lag {lag}")
        shot("group")

        # Live throughput: the script samples every 5 s and draws once it has two.
        visit("throughput", "/throughput")
        try:
            page.wait_for_selector("#chart-topics polyline", timeout=60000)
        except Exception as e:  # noqa: BLE001 - reported as a check
            fail(f"no throughput chart drawn: {e}")
        check(page.locator("#chart-brokers polyline").count() >= 1, "the per-broker chart has a line")
        check(page.locator("#rates-table tbody tr").count() >= 1, "the rates table lists topics")
        if args.live_topic:
            # Some interval shows the trickle (the producer batches, so not every one).
            cell = page.locator(f"#rates-table tbody tr[data-name='{args.live_topic}'] td").nth(1)
            rate = "0"
            for _ in range(60):
                rate = cell.inner_text() if cell.count() else "0"
                if float(rate) > 0:
                    break
                page.wait_for_timeout(1000)
            check(float(rate) > 0, f"{args.live_topic}, produced to meanwhile, has a rate ({rate}/s)")
        check(not errors, f"throughput: no console errors {errors if errors else ''}")
        shot("throughput")

        # Security pages: this broker has no authorizer.
        visit("acls", "/acls")
        check(page.locator("#acls-disabled").count() + page.locator("#acls-table").count() == 1, "the ACL page shows ACLs or says they are off")
        shot("acls")
        visit("users", "/users")
        check(page.locator("#users-table").count() == 1, "the SCRAM users page lists users")
        visit("quotas", "/quotas")
        check(page.locator("#quotas-table").count() == 1, "the quotas page lists quotas")
        # A quota and a SCRAM credential, through the forms.
        quota_user = f"browser-{args.new_topic}"
        page.fill("input[name=entity_name]", quota_user)
        page.fill("input[name=value]", "1048576")
        submit("#quota-preview")
        check(page.locator("#quota-plan").count() == 1, "the quota preview says what changes")
        shot("quota-edit")
        submit("#confirm")
        # Kafka's brokers apply a quota a moment after the controller commits it.
        listed = page.locator(f"#quotas-table tr[data-name='user={quota_user}']")
        for _ in range(30):
            if listed.count() == 1:
                break
            page.wait_for_timeout(1000)
            page.goto(args.url + "/quotas", wait_until="load")
        check(listed.count() == 1, "the quota is listed")
        shot("quotas")
        visit("users", "/users")
        page.fill("input[name=user]", quota_user)
        page.fill("input[name=password]", "browser-secret")
        submit("#user-set")
        check(page.locator(f"#users-table tr[data-name='{quota_user}']").count() == 1, "the SCRAM user is listed")
        shot("users")
        check(not errors, f"security forms: no console errors {errors if errors else ''}")

        # Writes, through the forms.
        visit("create topic form", "/topics/new")
        page.fill("input[name=name]", args.new_topic)
        page.fill("input[name=partitions]", "2")
        page.fill("textarea[name=configs]", "retention.ms=7200000")
        shot("create-topic")
        submit("#create")
        check(
            page.url.endswith(f"/topics/{args.new_topic}"),
            f"create topic lands on the topic ({page.url}: {page.locator('h1').first.inner_text()})",
        )
        check(page.locator("#partitions-table tbody tr").count() == 2, "the new topic has 2 partitions")

        visit("produce form", f"/topics/{args.new_topic}/messages?partition=0")
        page.fill("input[name=key]", "from-browser")
        page.fill("textarea[name=value]", '{"hello":"browser"}')
        submit("#produce")
        check(page.locator("#produced").count() == 1, "produce shows its offset")
        check('"hello": "browser"' in page.locator("pre.value").first.inner_text(), "the produced message is listed")

        # Edit the new topic: a dry run the cluster validated, then confirm.
        visit("topic page with write controls", f"/topics/{args.new_topic}")
        submit("#edit-topic")
        page.fill("textarea[name=set]", "retention.ms=3600000")
        page.fill("input[name=partitions]", "3")
        submit("#preview")
        check(page.locator("#dry-run").count() == 1, "topic edit preview says it is a dry run")
        check(page.locator("#edit-table tbody tr").count() == 2, "the preview lists the config and the partitions")
        shot("topic-edit")
        submit("#confirm")
        check(page.locator("#edit-done").count() == 1, "topic edit confirmed")

        # Delete a topic: its name must be typed.
        gone = args.new_topic + "-gone"
        visit("create another topic", "/topics/new")
        page.fill("input[name=name]", gone)
        submit("#create")
        submit("#delete-topic")
        check(page.locator("#delete-plan").count() == 1, "the delete page says what goes")
        page.fill("input[name=confirm]", gone)
        shot("topic-delete")
        submit("#confirm")
        check(page.url.endswith("/topics"), f"delete lands on the topics list ({page.url})")
        check(page.locator(f"a[href='/topics/{gone}']").count() == 0, "the deleted topic is gone from the list")

        visit("reset form", f"/groups/{args.group}/reset")
        page.fill("input[name=topic]", args.topic)
        page.select_option("select[name=target]", "earliest")
        submit("#preview")
        check(page.locator("#dry-run").count() == 1, "reset preview says it is a dry run")
        check(page.locator("#reset-table tbody tr").count() >= 1, "reset preview lists partitions")
        shot("reset-offsets")
        submit("#confirm")
        check(page.locator("#reset-done").count() == 1, "reset confirmed")
        check(not errors, f"no console errors on the pages the forms led to {errors if errors else ''}")
        errors.clear()

        if args.old_group:
            visit("group to delete", f"/groups/{args.old_group}")
            submit("a.delete-offsets")
            check(page.locator("#offsets-table tbody tr").count() >= 1, "the offsets to delete are listed")
            shot("delete-offsets")
            submit("#confirm")
            check(page.url.endswith(f"/groups/{args.old_group}"), "offset delete lands on the group")
            submit("#delete-group")
            check(page.locator("#delete-plan").count() == 1, "the group delete page says what goes")
            shot("group-delete")
            submit("#confirm")
            check(page.locator(f"a[href='/groups/{args.old_group}']").count() == 0, "the deleted group is gone from the list")
            check(not errors, f"no console errors on the delete pages {errors if errors else ''}")

        if args.unreachable_url:
            resp = page.goto(args.unreachable_url + "/", wait_until="load")
            check(resp.status == 502, f"unreachable cluster -> {resp.status}")
            check("Cluster unreachable" in page.locator("h1").inner_text(), "error page says the cluster is unreachable")
            shot("unreachable")

        browser.close()
    if failures:
        print(f"{len(failures)} browser check(s) failed", flush=True)
        sys.exit(1)
    print("all browser checks passed", flush=True)


if __name__ == "__main__":
    main()

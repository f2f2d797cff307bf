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


def settle(page, url, locator, want):
    """Reloads url until locator counts want (Kafka's brokers apply what the
    controller committed a moment later); the last count."""
    for _ in range(30):
        if locator.count() == want:
            break
        page.wait_for_timeout(1000)
        page.goto(url, wait_until="load")
    return locator.count()


def acl_add_and_delete(page, args, submit, shot):
    """With an authorizer: add an ACL through the form (preview, confirm),
    then delete another from its row (confirmation first). The script
    checks both with kafka-acls --list afterwards."""
    check(page.locator("#acls-table").count() == 1, "the cluster has an authorizer: ACLs are listed")
    page.select_option("select[name=resource_type]", "TOPIC")
    page.fill("input[name=resource_name]", args.topic)
    page.select_option("select[name=pattern_type]", "LITERAL")
    page.fill("input[name=principal]", args.acl_principal)
    page.select_option("select[name=operation]", "READ")
    page.select_option("select[name=permission]", "ALLOW")
    submit("#acl-preview")
    plan = page.locator("#acl-plan").inner_text() if page.locator("#acl-plan").count() else ""
    check(args.acl_principal in plan and "Nothing has changed yet" in plan, f"the ACL preview names the binding ({plan!r})")
    shot("acl-create")
    submit("#confirm")
    row = page.locator(f"#acls-table tr[data-name='{args.topic} {args.acl_principal}']")
    check(settle(page, args.url + "/acls", row, 1) == 1, f"the new ACL for {args.acl_principal} is listed")
    if args.acl_doomed:
        doomed = page.locator(f"#acls-table tr[data-name='{args.topic} {args.acl_doomed}'] a.delete-acl")
        check(doomed.count() == 1, f"{args.acl_doomed}'s ACL has a delete link")
        if doomed.count() == 1:
            with page.expect_navigation(wait_until="load"):
                doomed.click()
            plan = page.locator("#acl-plan").inner_text() if page.locator("#acl-plan").count() else ""
            check(args.acl_doomed in plan and "deletes" in plan, f"the delete page names the binding ({plan!r})")
            shot("acl-delete")
            submit("#confirm")
            left = page.locator(f"#acls-table tr[data-name='{args.topic} {args.acl_doomed}']")
            gone = settle(page, args.url + "/acls", left, 0)
            check(gone == 0, f"{args.acl_doomed}'s ACL is gone from the list")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="console with writes enabled")
    ap.add_argument("--unreachable-url", help="console of a cluster that is down")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--screenshots", help="directory for the 1440x900 screenshots")
    ap.add_argument("--timing-only", action="store_true", help="only time the topics page")
    ap.add_argument("--label", default="", help="what the cluster is, for the timing line")
    ap.add_argument("--topic", default="orders", help="3 partitions, a JSON record with a <script> key in partition 1")
    ap.add_argument("--group", default="billing", help="a group with committed offsets on --topic")
    ap.add_argument("--new-topic", default="browser-made", help="the topic the browser creates")
    ap.add_argument("--live-topic", help="a topic produced to while the throughput page samples")
    ap.add_argument("--live-group", help="a group consuming --live-topic while the throughput page samples")
    ap.add_argument("--bytes-source", help="where the page must say bytes in come from: broker-metrics or log-size")
    ap.add_argument("--acl-principal", help="the cluster has an authorizer: add an ACL for this principal on --topic")
    ap.add_argument("--acl-doomed", help="a principal with an ACL on --topic that the browser deletes")
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
            f"{args.label + ': ' if args.label else ''}topics page ({partitions}, {rows} rows): server {best[0]:.0f} ms, "
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
        live_row = f"#rates-table tbody tr[data-name='{args.live_topic}'] td"

        def eventually_cell(col, ok, what):
            # Some interval shows it (producers batch, groups commit every 5 s).
            cell = page.locator(live_row).nth(col)
            text = ""
            for _ in range(60):
                text = cell.inner_text() if cell.count() else ""
                if ok(text):
                    break
                page.wait_for_timeout(1000)
            check(ok(text), f"{args.live_topic}: {what} ({text!r})")

        def positive(text):
            try:
                return float(text.split()[0]) > 0
            except (ValueError, IndexError):
                return False

        if args.live_topic:
            eventually_cell(1, positive, "produced to meanwhile, has a records/s in")
        if args.live_topic and args.live_group:
            eventually_cell(3, positive, f"consumed meanwhile by {args.live_group}, has a records/s consumed")
            check(
                page.locator(f"#chart-groups polyline[data-key='{args.live_group}']").count() == 1,
                f"the consumption chart has a line for {args.live_group}",
            )
        if args.bytes_source:
            shown = page.locator(f"#bytes-source [data-source='{args.bytes_source}']")
            check(shown.is_visible(), f"the page says bytes in come from {args.bytes_source}: {shown.inner_text()!r}")
            others = page.locator("#bytes-source [data-source]:visible").count()
            check(others == 1, f"and only that ({others} explanations shown)")
        page.check("#unit-bytes")
        check("bytes/s" in (page.locator("#chart-topics svg text").last.text_content() or ""), "the charts switch to bytes/s")
        if args.live_topic:
            eventually_cell(2, lambda t: t.endswith("B") and positive(t), "has a bytes/s in")
        if args.live_topic and args.live_group:
            eventually_cell(4, lambda t: t.endswith("B") and positive(t), "has an estimated bytes/s consumed")
        check(not errors, f"throughput: no console errors {errors if errors else ''}")
        shot("throughput")
        page.check("#unit-records")

        # Security pages.
        visit("acls", "/acls")
        check(page.locator("#acls-disabled").count() + page.locator("#acls-table").count() == 1, "the ACL page shows ACLs or says they are off")
        if args.acl_principal:
            acl_add_and_delete(page, args, submit, shot)
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

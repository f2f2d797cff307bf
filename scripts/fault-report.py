#!/usr/bin/env python3
"""Renders RELIABILITY.md from one scripts/fault run directory.

usage: fault-report.py <run dir> <elapsed seconds> <full 0|1> [<command>]
       fault-report.py --add <RELIABILITY.md> <run dir> <elapsed seconds> [<command> [<nodes> [<faults>]]]
<command> is the scripts/fault command line that reproduces the run.
The first form renders the whole file from one run (Kafka, Sluice, unsafe
Kafka, single-node tests). The second (scripts/fault --sluice-only) adds
the run's Sluice row to an existing RELIABILITY.md, marked as a separate
run with its own command, dates and seed in a section of its own (a row
of the same system from an earlier --add is replaced), keeps every other
row as it was, and rewrites "Not covered yet"; it prints the new file.
Exits 3 when a safe run (not --unsafe) found anomalies or did not finish.
"""
import json
import os
import platform
import re
import statistics
import sys
from datetime import datetime, timezone

KINDS = ["LostWrite", "Duplicate", "InconsistentOffset", "AbortedRead",
         "NonMonotonicPoll", "InternalSkip", "Unseen", "Phantom"]
FAULTS = [
    ("kill", "`kill -9` of a random node; healed by starting it again"),
    ("kill-leader", "`kill -9` of the leader of a workload partition (found by Metadata)"),
    ("kill-controller", "`kill -9` of the active controller (the quorum leader, found by DescribeQuorum)"),
    ("pause", "SIGSTOP of a random node; healed by SIGCONT"),
    ("pause-leader", "SIGSTOP of a partition leader"),
    ("restart", "clean stop (SIGTERM, waited for up to 60 s), then start"),
    ("partition-halves", "nodes split into a minority and a majority, both ways (nftables drop rules inside each node's namespace)"),
    ("partition-leader", "a partition leader cut off from the other nodes, both ways"),
    ("partition-one-way", "one node receives nothing from the others; they still receive from it"),
    ("isolate-clients", "a node drops every packet from the workload's clients"),
    ("disk-full", "a node's data disk (a tmpfs of its own) filled to the last byte; healed by freeing it and starting the node if it stopped"),
    ("reassign", "every workload partition reassigned (AlterPartitionReassignments, KIP-455) under the workload: "
     "with more nodes than replicas one replica of each moves to a node that has none; with as many, "
     "each drops a replica and healing adds it back, so it copies the whole log again"),
    ("delay", "the traffic between a random node and every other node delayed by 50-500 ms plus up to "
     "half as much jitter, to the node, from it or both ways, by the nemesis's TCP proxy between "
     "the nodes (`crates/nemesis/src/proxy.rs`; nftables redirects inside the nodes' namespaces "
     "send every node-to-node connection through it); jitter reorders messages across "
     "connections, never within one"),
    ("delay-leader", "the same for a partition leader"),
    ("pause-controller", "SIGSTOP of the active controller"),
    ("partition-controller", "the active controller cut off from the other nodes, both ways"),
    ("hold", "the proxy holds all traffic between a random node and the others (the node keeps "
     "running), then releases it at once"),
]


def load(run_dir, name):
    path = os.path.join(run_dir, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def minutes(s):
    return f"{s / 60:.1f} min"


def machine():
    """CPU model, cores and memory of this machine, as /proc tells them."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        mem = f", {kib / (1 << 20):.0f} GiB of memory"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({model}){mem}, Linux {platform.release()}"


# "NOT healthy (going on)" may be followed by why (": node 2 lists brokers [1, 3]").
HEAL = re.compile(r"heal: .*?; (healthy|NOT healthy \(going on\))(?:: .*)? after ([0-9.]+)s")


def heal_times(r):
    """Seconds from each heal to a healthy cluster, from the run's schedule."""
    return [float(m.group(2)) for line in r.get("schedule", [])
            if (m := HEAL.search(line))]


def log_tail(run_dir, name, lines=15):
    path = os.path.join(run_dir, name + ".log")
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return f"(no {name}.log)"


def exit_of(run_dir, name):
    try:
        with open(os.path.join(run_dir, "exits")) as f:
            for line in f:
                if line.startswith(name + ": exit "):
                    return line.split("exit ", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def sluice_label(r):
    """The Sluice row's label, from the system the run reports."""
    system = (r or {}).get("system", "Sluice")
    if system.startswith("Sluice, 1 node") or r is None:
        return system
    split = re.search(r"(\d+) controllers \+ (\d+) brokers", system)
    if split:
        brokers = int(split.group(2))
        return (f"{system} (controller-only quorum voters, broker-only observers; RF "
                f"{min(brokers, 3)}, min ISR 2, ISR replication; Sluice's default broker timeouts; "
                "acks=all, idempotent producers)")
    nodes = int(re.search(r"(\d+) nodes", system).group(1))
    return (f"{system} (combined broker+controller nodes, one metadata quorum; RF {min(nodes, 3)}, "
            "min ISR 2, ISR replication; Sluice's default broker timeouts; acks=all, idempotent "
            "producers)")


def sends_total(r):
    return r["sends_ok"] + r["sends_failed"] + r["sends_indeterminate"]


def run_notes(w, label, r):
    """The bullet (and its continuation lines) for one finished run."""
    if r["valid"]:
        w(f"- {label}: **no anomalies** in {r['ops']} operations.")
    else:
        w(f"- {label}: **anomalies**:")
        w("")
        w("```")
        w(r["summary"].strip())
        w("```")
    heals = heal_times(r)
    if heals:
        w(f"  From a heal to a healthy cluster (every node up, every partition led with a full "
          f"ISR): median {statistics.median(heals):.1f} s, max {max(heals):.1f} s over "
          f"{len(heals)} heals; {r.get('slow_heals', 0)} took longer than 30 s (the next "
          "fault came anyway).")
    total = sends_total(r)
    if total and not (r["sends_failed"] or r["sends_indeterminate"]):
        w(f"  Availability: all {total} sends acknowledged (none failed, none indeterminate).")
    elif total:
        w(f"  Availability: {r['sends_ok']} of {total} sends acknowledged "
          f"({100 * r['sends_ok'] / total:.2f}%); {r['sends_failed']} failed and "
          f"{r['sends_indeterminate']} indeterminate (a timeout or error after which the write "
          "may or may not have happened; the checker accepts either).")
    if r.get("sends_ok_without_offset"):
        w(f"  {r['sends_ok_without_offset']} sends were acknowledged without an offset "
          "(librdkafka reports a retried idempotent batch the broker already had, "
          "DUPLICATE_SEQUENCE_NUMBER, at offset -1001); the checker counts them as written at "
          "an unknown offset, and each was read back (else it would show as Unseen).")
    if r.get("producer_fatal_errors"):
        w(f"  {r['producer_fatal_errors']} idempotent producers raised a fatal error and were "
          "replaced (their open sends stay indeterminate).")
    if r.get("consumer_closes_stuck"):
        w(f"  Consumers whose close did not return within 30 s and were left behind: "
          f"{r['consumer_closes_stuck']} (rust-rdkafka's consumer drop can hang in a rebalance "
          "callback while the group coordinator churns).")
    if r.get("proxy_connections") is not None:
        w(f"  Delay proxy: {r['proxy_connections']} node-to-node connections through it, "
          f"{r['proxy_bytes'] / 1e6:.1f} MB forwarded.")
    for d in r.get("replica_differences", []):
        w(f"  Replicas differ after healing: `{d}`")
    exits = r.get("node_exits", [])
    if exits:
        w(f"  {len(exits)} node exits the nemesis did not cause (each restarted by the heal):")
        for e in exits:
            w(f"  - `{e.splitlines()[0]}`")


def run_row(label, r):
    if r is None:
        # Label, the verdict, and an empty cell for each of the other columns.
        return f"| {label} | did not finish (see below) |" + " |" * (7 + len(KINDS) + 2)
    a = r["anomalies"]
    faults = ", ".join(f"{k} {v}" for k, v in sorted(r["faults"].items()))
    cells = [label, str(r["seed"]), minutes(r["seconds"]), str(r["cycles"]), faults,
             str(r["sends_ok"]), str(r["sends_indeterminate"]), str(r["sends_failed"]),
             str(r["records_polled"])]
    cells += [str(a.get(k, 0)) for k in KINDS]
    cells.append("yes" if r["final_read_complete"] else "**no**")
    same = r.get("replicas_identical", "unchecked")
    cells.append({True: "yes", False: "**no**", None: "n/a (1 node)"}.get(same, "not checked"))
    return "| " + " | ".join(cells) + " |"


OLD_DELAY_NOTE = ("A single node takes the faults that need no peers (kill, pause, restart, "
                  "isolate-clients, disk-full). Delay is not injected yet (this kernel has no "
                  "`tc netem`; it needs a proxy).")
DELAY_NOTE = ("A single node takes the faults that need no peers (kill, pause, restart, "
              "isolate-clients, disk-full). This kernel has no `tc netem`, so delay comes from the "
              "nemesis's own proxy; a run whose faults include `delay`, `delay-leader` or `hold` "
              "sends every node-to-node connection through it for the whole run (the clients "
              "connect directly).")

# The sections this script writes itself in a full report; every other
# "## " section of the current RELIABILITY.md (the simulations' from
# `scripts/sim --report`, the accounts of bugs found) is carried over.
GENERATED_HEADINGS = ["## How", "## Results", "## Single-node figures", "## Not covered yet"]
NEWER_FAULTS = ["delay", "delay-leader", "hold", "pause-controller", "partition-controller"]


def current_doc():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "RELIABILITY.md")
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def kept_sections(doc):
    """The current document's "## " sections that a full report does not
    write itself, in their order."""
    sections = []
    for m in re.finditer(r"^## [^\n]*$", doc, re.M):
        if any(m.group(0).startswith(h) for h in GENERATED_HEADINGS):
            continue
        end = doc.find("\n## ", m.end())
        sections.append(doc[m.start():end if end >= 0 else len(doc)].rstrip("\n"))
    return sections


def separate_runs(doc):
    """The rows and "### ...: a separate run" sections of earlier
    `scripts/fault --sluice-only` runs (`--add`), carried over by a full
    report: a full run replaces the rows it reruns, not earlier runs of
    other shapes (5 nodes, split roles) or their accounts of bugs found."""
    rows = [l for l in doc.split("\n")
            if l.startswith("| ") and "separate run, see below" in l]
    start = doc.find(" a separate run\n")
    start = doc.rfind("\n### ", 0, start) + 1 if start >= 0 else -1
    end = doc.find("### The checker must be able to fail")
    sections = doc[start:end].rstrip("\n") if 0 <= start < end else ""
    return rows, sections


def not_covered(w, newer_faults_run=False):
    w("## Not covered yet")
    w("")
    w("- **Split roles in a long run.** Controller-only and broker-only nodes run under the "
      "nemesis (`sluice-nemesis --split`, `scripts/fault --split`) in shorter runs (see their "
      "section), not yet for the 30 minutes of the combined rows.")
    if not newer_faults_run:
        w("- **The newer faults against Kafka and in the long runs.** `delay`, `delay-leader`, "
          "`hold`, `pause-controller` and `partition-controller` came after the run named at the "
          "top and after the 30-minute Sluice runs: only the separate runs that list them in "
          "their row had them.")
    w("- **Delay of the clients' traffic, and packet-level reordering or loss.** The proxy delays "
      "and holds traffic between nodes only, per TCP connection (bytes in order within one); "
      "lost or reordered packets exist only in the deterministic simulation.")
    w("- **Clock jumps, power cuts and slow disks** are injected only in the deterministic "
      "simulations (the whole cluster in `crates/sim`, the controller quorum in "
      "`crates/controller/tests/controller_sim.rs`; slow and stalled disks in the cluster "
      "simulation only), not against real processes. The held-commit trial catches a reverted "
      "order of the fencing check but not a reverted `Sessions::answered`, which only a broker "
      "heartbeating its own controller in-process (the single node, not simulated) can reach: "
      "see \"A held-commit trial catches the reverted fencing-check order\". The cluster "
      "simulation stalls nodes (their traffic held), fills disks, fails fsyncs and writes with "
      "EIO and reassigns partitions; a failed directory while another stays online (KIP-858's "
      "report to the controller) is not built or simulated.")
    w("- **Transactions in the long runs.** The tables above come from the idempotent workload. "
      "The transactional one (`sluice-nemesis --transactional`: transactional producers, "
      "read_committed consumers, the checker's AbortedRead) runs in the tests "
      "(`crates/nemesis/tests/sigkill_txn_workload.rs`, and against 3 nodes in `ci.rs` with "
      "`SLUICE_TEST_FULL=1`) and by hand, not yet in a published long run.")
    w("")


def separate_heading(system):
    return f"### {system}: a separate run"


def add_run(doc_path, run_dir, elapsed, command, nodes, faults=""):
    """--add: the Sluice run of `run_dir` merged into the existing document."""
    with open(doc_path) as f:
        doc = f.read()
    r = load(run_dir, "sluice")
    system = r["system"] if r else f"Sluice, {nodes} nodes"
    split = re.search(r"(\d+) controllers \+ (\d+) brokers", system)
    if faults:
        # A run of some faults only is a row (and section) of its own.
        system += f" under {faults.replace(',', ', ')} only"
    label = sluice_label(r)
    if r:
        label = label.replace(r["system"], system, 1)
    label += " — **separate run, see below**"
    row = run_row(label, r)
    lines = doc.split("\n")
    # The results table: replace an earlier separate-run row, else append.
    header = next(i for i, l in enumerate(lines) if l.startswith("| System |"))
    end = header + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    rows = [i for i in range(header + 2, end)
            if "separate run, see below" in lines[i] and lines[i].startswith(f"| {system} (")]
    if rows:
        lines[rows[0]] = row
    else:
        lines.insert(end, row)
    # Faults added since the document was generated join its list.
    bullets = [i for i, l in enumerate(lines) if re.match(r"- `[a-z-]+`: ", l)]
    if bullets:
        listed = {re.match(r"- `([a-z-]+)`", lines[i]).group(1) for i in bullets}
        new = [f"- `{name}`: {what}. (New since the run named at the top: only the separate runs "
               "below that name it have it.)" for name, what in FAULTS if name not in listed]
        lines[bullets[-1] + 1:bullets[-1] + 1] = new
    doc = "\n".join(lines)
    doc = doc.replace(OLD_DELAY_NOTE, DELAY_NOTE)
    doc = doc.replace(
        "Every row below comes from this one run;",
        "Every row below comes from this one run, except the one marked *separate run* (its "
        "command, dates and seed are in its own section below);")
    total = re.search(r"^Total: [^\n]*?\.(?= Duration counts)", doc, re.M)
    if total and "separate Sluice run" not in total.group(0):
        doc = doc.replace(total.group(0),
                          total.group(0)[:-2] + "; the separate Sluice run is not counted here).")
    # The separate run's own section, before "The checker must be able to fail".
    began = datetime.strptime(os.path.basename(run_dir.rstrip("/")), "%Y%m%dT%H%M%SZ")
    began = began.replace(tzinfo=timezone.utc)
    ended = datetime.fromtimestamp(began.timestamp() + elapsed, timezone.utc)
    out = []
    w = out.append
    w(separate_heading(system))
    w("")
    w(f"The row of {system} marked *separate run* does not come from the run named at the top: it was "
      f"generated by `{command}` (as root), run {began:%Y-%m-%d %H:%M} to {ended:%H:%M} UTC "
      f"({minutes(elapsed)} of wall time, run directory "
      f"`{os.path.basename(run_dir.rstrip('/'))}`), on {machine()}, shared with other work. That "
      "command reproduces it (same seed, same schedule). Only Sluice ran in it: the other rows "
      "were not rerun (only one Kafka may run on this machine at a time).")
    w("")
    if r is None:
        w(f"- The run did not finish (exit {exit_of(run_dir, 'sluice')}); the end of `sluice.log`:")
        w("")
        w("```")
        w(log_tail(run_dir, "sluice"))
        w("```")
        bad = True
    elif split:
        controllers, brokers = int(split.group(1)), int(split.group(2))
        w(f"{controllers} controller-only nodes (`process.roles=controller`, the voters of the "
          f"metadata quorum) and {brokers} broker-only nodes (`process.roles=broker`, observers of "
          "the metadata log that reach the active controller over the controller listener), each "
          "formatted with `sluice storage format` and in its own namespace; "
          f"`default.replication.factor` {min(brokers, 3)} and `min.insync.replicas` 2. Faults "
          "pick any node, controller or broker (`kill-controller`, `pause-controller` and "
          "`partition-controller` the active controller, the leader faults a broker that leads a "
          "partition, `isolate-clients` a broker). Healthy means every node up (each controller answering on "
          "its controller listener), every broker answering and listing every broker (registered "
          "and unfenced), all brokers naming the same active controller, which answers "
          "DescribeQuorum as the leader, and every workload partition led with its full ISR. "
          "After the final read, the replicas' segment files must be byte-identical.")
        w("")
        run_notes(w, system, r)
        bad = (not r["valid"] or not r["final_read_complete"]
               or r.get("replicas_identical") is False)
        open_bug = False
    else:
        w(f"{nodes} combined `broker,controller` nodes (all of them voters of one metadata "
          "quorum), each formatted with `sluice storage format` and in its own namespace, the "
          f"voters on the namespace addresses; `default.replication.factor` {min(nodes, 3)} and "
          "`min.insync.replicas` 2, so every partition is replicated by Kafka's ISR protocol "
          "(issue 17) and a leader's death moves it to an in-sync follower. The brokers run with "
          "Sluice's default `broker.session.timeout.ms` (1200) and `broker.heartbeat.interval.ms` "
          "(200), so a pause of the 2-6 s a fault lasts fences the paused broker. Healthy means "
          "every node up and answering, listing every broker (registered and unfenced), all naming "
          "the same active controller (DescribeQuorum), and every workload partition led with its "
          "full ISR. After the final read, the workload partitions' segment files are compared "
          "across replicas (concatenated in offset order): they must be byte-identical.")
        w("")
        run_notes(w, system, r)
        bad = (not r["valid"] or not r["final_read_complete"]
               or r.get("replicas_identical") is False)
        repro = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "nemesis",
                             "tests", "restart_keeps_data.rs")
        try:
            with open(repro) as f:
                open_bug = "#[ignore" in f.read()
        except OSError:
            open_bug = False
        if bad and open_bug:
            w("")
            w("  A known Sluice bug explains lost and replaced records here, until "
              "`crates/nemesis/tests/restart_keeps_data.rs` (which reproduces it on loopback) is no "
              "longer ignored: a node of a cluster that restarts publishes its first metadata image "
              "before it has caught up with the quorum (its catch-up target is what its own state "
              "machine has applied, not the quorum's commit), so its partitions publisher deletes "
              "as strays the logs of every topic that image lacks yet (\"deleting log of a "
              "partition that no longer exists\" in its log); when it leads those partitions again "
              "they restart empty at offset 0, and `__consumer_offsets` loses the groups' offsets.")
    if faults:
        w("")
        w(f"Only these faults were drawn: {faults.replace(',', ', ')}.")
    if r is not None and r.get("proxy_connections") is not None:
        w("")
        w("Every node-to-node connection (client and controller ports) went through the "
          "nemesis's delay proxy (`crates/nemesis/src/proxy.rs`) for the whole run, faults or "
          "not; `crates/nemesis/tests/delay_proxy.rs` shows that the delay it sets is real (a "
          "round trip between two node namespaces through it takes at least the delays set on "
          "its two directions), that held bytes arrive only when released, and that a refused "
          "connect stays refused through it.")
    w("")
    section = "\n".join(out)
    start = doc.find(separate_heading(system))
    checker = doc.find("### The checker must be able to fail")
    if start >= 0:
        after = doc.find("\n### ", start + 1)
        # Hand-written accounts of bugs earlier runs found stay.
        kept = [l for l in doc[start:after].split("\n") if l.startswith("  A bug this bed found")]
        if kept:
            section = section.rstrip("\n") + "\n\n" + "\n".join(kept) + "\n"
        doc = doc[:start] + section + "\n" + doc[after + 1:]
    else:
        doc = doc[:checker] + section + "\n" + doc[checker:]
    # "Not covered yet" to the end is rewritten.
    cut = doc.find("## Not covered yet")
    out = []
    kafka_row = next((l for l in doc.split("\n") if l.startswith("| Apache Kafka 4.1.2, 3 nodes")), "")
    not_covered(out.append, all(re.search(rf"[ ,]{f} \d", kafka_row) for f in NEWER_FAULTS))
    doc = doc[:cut] + "\n".join(out) + "\n"
    print(doc, end="")
    sys.exit(3 if bad else 0)


def main():
    if sys.argv[1] == "--add":
        doc, run_dir, elapsed = sys.argv[2], sys.argv[3], int(sys.argv[4])
        command = sys.argv[5] if len(sys.argv) > 5 else "scripts/fault --sluice-only"
        nodes = int(sys.argv[6]) if len(sys.argv) > 6 else 3
        faults = sys.argv[7] if len(sys.argv) > 7 else ""
        add_run(doc, run_dir, elapsed, command, nodes, faults)
    run_dir, elapsed, full = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    command = sys.argv[4] if len(sys.argv) > 4 else "scripts/fault" + (" --full" if full else "")
    kafka, sluice, unsafe = (load(run_dir, n) for n in ("kafka", "sluice", "kafka-unsafe"))
    earlier = current_doc()
    separate_rows, separate_sections = separate_runs(earlier)
    # The run's own start (its directory is named after it) and end, so
    # rendering a kept run directory again gives the same dates.
    try:
        began = datetime.strptime(os.path.basename(run_dir.rstrip("/")), "%Y%m%dT%H%M%SZ")
        began = began.replace(tzinfo=timezone.utc)
    except ValueError:
        began = datetime.fromtimestamp(datetime.now(timezone.utc).timestamp() - elapsed, timezone.utc)
    ended = datetime.fromtimestamp(began.timestamp() + elapsed, timezone.utc)
    when = f"{began:%Y-%m-%d %H:%M} to {ended:%H:%M} UTC"
    fault_minutes = re.search(r"--minutes (\d+)", command)
    out = []
    w = out.append
    w("# Reliability")
    w("")
    w(f"Generated by `{command}` (as root), run {when} ({minutes(elapsed)} of wall time, "
      f"run directory `{os.path.basename(run_dir.rstrip('/'))}`), on {machine()}, shared with other work. "
      "That command reproduces it: a seed fixes its run's schedule (which fault, for how long, and "
      "on which node, except that leader and controller faults hit whichever node leads then), "
      "though not the timing of the processes under it. Every row below comes from "
      "this one run" + ("" if not separate_rows else ", except those marked *separate run* "
                        "(earlier runs of other shapes; each one's command, dates and seed are "
                        "in its own section below)") + "; the runs print their whole schedules "
      "as they go.")
    if full and fault_minutes and int(fault_minutes.group(1)) < 30:
        w("")
        w(f"This run had {fault_minutes.group(1)} minutes of faults per system (then on to 100 "
          "fault cycles), shorter than the 30 minutes `scripts/fault --full` runs by default and "
          "issue 18 asks for.")
    w("")
    w("## How")
    w("")
    w("The nemesis (`crates/nemesis`, binary `sluice-nemesis`) starts each broker node in a Linux "
      "network namespace of its own, with a veth pair to a bridge in a test-owned hub namespace "
      "(private addresses 10.77.0.0/24), and the workload's clients in another. Network faults are "
      "nftables rules inside the nodes' own namespaces: the host's interfaces and ruleset are never "
      "touched (`crates/nemesis/tests/namespaces.rs` checks that), and every namespace, mount and "
      "process is removed at the end, after a panic or Ctrl-C too, and stale ones of a killed run "
      "at the next start.")
    w("")
    w("The workload is Jepsen's Kafka workload with librdkafka (the `rdkafka` crate): two idempotent "
      "`acks=all` producers send unique values to 3 partitions; one consumer assigned every "
      "partition and two in a consumer group poll, each recreated every 5 s. Every call and "
      "completion is written to a JSON-lines history with its time. Faults alternate with healing "
      "(1-3 s quiet, 2-6 s of fault, then up to 30 s for the cluster to be healthy again: every node "
      "up, every partition led with a full ISR). At the end everything is healed, the producers "
      "flush, a final consumer reads every partition from the start to its end, and "
      "`sluice-checker` checks the history (`sluice-check` checks a kept history file).")
    w("")
    w("Faults:")
    w("")
    for name, what in FAULTS:
        w(f"- `{name}`: {what}.")
    w("")
    w(DELAY_NOTE)
    w("")
    w("## Results")
    w("")
    cols = ["System", "Seed", "Duration", "Fault cycles", "Faults", "Sends ok", "Indeterminate",
            "Failed", "Records polled"] + KINDS + ["Final read complete",
                                                  "Replicas byte-identical"]
    w("| " + " | ".join(cols) + " |")
    w("|" + "---|" * len(cols))
    w(run_row("Apache Kafka 4.1.2, 3 nodes (RF 3, min ISR 2, acks=all, idempotent producers)", kafka))
    w(run_row(sluice_label(sluice), sluice))
    if unsafe is not None:
        w(run_row("Kafka **unsafe**: acks=1, no idempotence, unclean election, min ISR 1; kill-leader only", unsafe))
    for row in separate_rows:
        w(row)
    w("")
    runs = [r for r in (kafka, sluice, unsafe) if r]
    hours = sum(r["seconds"] for r in runs) / 3600
    cycles = sum(r["cycles"] for r in runs)
    w(f"Total: {len(runs)} runs, {cycles} fault cycles, {hours:.2f} hours of runs (Kafka and "
      "Sluice side by side; the unsafe Kafka run after the safe one, never two Kafkas at once"
      + ("; the separate runs are not counted here" if separate_rows else "") + "). "
      "Duration counts from the start of the nodes to the end of the check.")
    w("")
    bad = False
    for label, name, r in (("Apache Kafka", "kafka", kafka), ("Sluice", "sluice", sluice)):
        if r is None:
            bad = True
            w(f"- {label}: the run did not finish (exit {exit_of(run_dir, name)}); the end of "
              f"`{name}.log`:")
            w("")
            w("```")
            w(log_tail(run_dir, name))
            w("```")
            continue
        run_notes(w, label, r)
    w("")
    if separate_sections:
        w(separate_sections)
        w("")
    w("### The checker must be able to fail")
    w("")
    w("The checker's own tests feed it histories with each anomaly injected (lost, duplicated and "
      "inconsistent writes, aborted reads, non-monotonic polls, skips, unseen and phantom values) "
      "and see each flagged (`crates/checker/tests/anomalies.rs`, `properties.rs`; rerun below). "
      "`crates/nemesis/tests/sigkill_workload.rs` (rerun below) also injects every kind into a real history (the nemesis workload against a single Sluice killed with SIGKILL).")
    if unsafe is not None:
        if unsafe["valid"]:
            w("")
            w("The deliberately unsafe Kafka run above found **no** anomaly this time: the kill -9 loop "
              "did not land between an acks=1 acknowledgement and its replication.")
        else:
            w("")
            w("A real run with a deliberately unsafe setup (the last row) was flagged:")
            w("")
            w("```")
            w(unsafe["summary"].strip())
            w("```")
    w("")
    single = os.path.join(run_dir, "single.tsv")
    if os.path.exists(single):
        w("## Single-node figures (the project's own fault tests, rerun by this command)")
        w("")
        w("| What | Test | Result | Time |")
        w("|---|---|---|---|")
        with open(single) as f:
            for line in f:
                group, crate, test, rc, secs, result = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
                result = result.replace("test result: ", "") or "no result line"
                status = result if rc == "0" else f"**FAILED (exit {rc})**: {result}"
                if rc != "0" and crate != "sluice-checker":
                    pass
                w(f"| {group} | `cargo test -p {crate} --test {test}` | {status} | {secs} s |")
        w("")
    for section in kept_sections(earlier):
        w(section)
        w("")
    drawn = set()
    for r in (kafka, sluice):
        if r:
            drawn |= {k for k, v in r["faults"].items() if v}
    not_covered(w, all(f in drawn for f in NEWER_FAULTS))
    print("\n".join(out))
    sys.exit(3 if bad else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Lists the franz-go kgo tests that reach a broker: Test functions whose body
(directly or through package helpers) uses the seed brokers (newTestClient,
adm, tmpTopic, getSeedBrokers, testClientOpts, tmpGroup). Prints a -run regex."""
import re, sys, pathlib
d = pathlib.Path(sys.argv[1])
funcs = {}
for f in d.glob("*_test.go"):
    src = f.read_text()
    for m in re.finditer(r"^func (?:\([^)]*\) )?(\w+)\(.*?^}", src, re.S | re.M):
        funcs.setdefault(m.group(1), "")
        funcs[m.group(1)] += m.group(0)
seeds = {"newTestClient", "adm", "tmpTopic", "getSeedBrokers", "testClientOpts", "tmpGroup", "tmpTopicPartitions"}
reach = set(seeds)
changed = True
while changed:
    changed = False
    for name, body in funcs.items():
        if name in reach:
            continue
        body = body.split("\n", 1)[1] if "\n" in body else ""
        if any(re.search(r"\b%s\(" % re.escape(s), body) for s in reach):
            reach.add(name); changed = True
tests = sorted(n for n in reach if n.startswith("Test"))
print("\n".join(tests))

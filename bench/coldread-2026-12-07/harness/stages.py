#!/usr/bin/env python3
"""stages.py LOG FROM TO: p50/p99/max of the cold-path stage timings in lines FROM..TO of a Sluice log."""
import re, sys
lines = open(sys.argv[1], errors="replace").read().splitlines()[int(sys.argv[2]):int(sys.argv[3])]
vals = {}
for l in lines:
    for k in ("queued_us", "ran_us", "waited_us", "hop_us", "read_us", "handler_us"):
        m = re.search(k + r"=(\d+)", l)
        if m: vals.setdefault(k, []).append(int(m.group(1)))
def pct(v, q): return v[min(len(v) - 1, int(q * len(v)))]
out = []
for k in ("handler_us", "hop_us", "read_us", "waited_us", "queued_us", "ran_us"):
    v = sorted(vals.get(k, []))
    if v: out.append(f"{k} n={len(v)} p50={pct(v,.5)/1e3:.1f}ms p99={pct(v,.99)/1e3:.1f}ms max={v[-1]/1e3:.1f}ms")
print("; ".join(out) or "no cold-path events")

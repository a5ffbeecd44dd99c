"""Prints the stiff benchmark table from JSON lines on stdin (ndec, diffsol, scipy)."""
import json
import sys

rows = [json.loads(l) for l in sys.stdin if l.strip().startswith("{")]
print(f"{'tool':8s} {'problem':9s} {'method':13s} {'min us':>10s} {'median us':>10s} {'steps':>6s} {'compile ms':>10s}  ratio ndec/peer (min)")
best = {}
for d in rows:
    if d["tool"] == "ndec":
        best[d["problem"]] = min(best.get(d["problem"], float("inf")), d["solve_us_min"])
for d in rows:
    ratio = ""
    if d["tool"] != "ndec" and d["problem"] in best:
        ratio = f"{best[d['problem']] / d['solve_us_min']:.2f}"
    steps = d.get("steps", "-")
    comp = d.get("compile_ms")
    comp = f"{comp:.2f}" if isinstance(comp, (int, float)) else "-"
    print(f"{d['tool']:8s} {d['problem']:9s} {d['method']:13s} {d['solve_us_min']:10.1f} {d['solve_us_median']:10.1f} {str(steps):>6s} {comp:>10s}  {ratio}")
print("ratio: the best ndec method's minimum time over the peer's minimum time (below 1 means ndec is faster)")

#!/usr/bin/env python3
"""The table of bench/run_spiral.sh: reads its results.jsonl (one JSON object per tool) and
machine.txt. Gradient agreement is max|g_ndec - g_peer| / max|g_peer| over the 252 entries,
an independent check of ndec's gradient. Plain python3 (no numpy)."""
import json
import os
import sys

import spiral_io as io

res_path, machine = sys.argv[1:3]
rows = []
for line in open(res_path):
    if line.strip().startswith("{"):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass


def f(v, fmt):
    """format v, or a '-' as wide as fmt's width when v is missing"""
    return format("-", ">" + fmt.split(".")[0]) if v is None else format(v, fmt)


print(open(machine).read().rstrip())
print("problem: spiral u' = nn(u^3), nn 2->50(tanh)->2 (252 params), u0=[2,0], t in [0,25], "
      "1000 data points, MSE, rtol 1e-7, atol 1e-9, f64, from bench/spiral/w0.json")
print()
nd = next((r for r in rows if r.get("tool") == "ndec"), None)
nd_grad = nd.get("grad_ms_median") if nd else None
nd_gfile = nd.get("gradient_file") if nd else None
ref = next((r for r in rows if r.get("tool") == "reference" and r.get("gradient_file")), None)


def gdiff(a, b):
    """rel. difference of gradient files a and b, as text; '-' if either is missing."""
    if not a or not b or a == b or not os.path.exists(a) or not os.path.exists(b):
        return "-"
    d = io.rel_diff(a, b)
    return "shape differs" if d is None else f"{d:.2e}"


hdr = (f"{'tool':12} {'method':22} {'grad ms':>9} {'1st grad ms':>11} {'ndec/peer':>9} {'loss(w0)':>13}"
       f" {'steps':>6} {'Adam iters':>10} {'wall s':>8} {'final loss':>11} {'g: vs ndec':>10} {'vs ref':>9}")
print(hdr)
print("-" * len(hdr))
for r in rows:
    tool = r.get("tool", "?")
    meth = r.get("method", "") + ("/" + r["sensitivity"] if r.get("sensitivity") else "")
    if "error" in r:
        err = r["error"].strip().splitlines()
        print(f"{tool:12} {meth:22} FAILED: {err[-1] if err else 'error'}")
        continue
    g = r.get("grad_ms_median")
    ratio = f"{nd_grad / g:9.3f}" if (nd_grad and g and tool != "ndec") else f"{'-':>9}"
    diff = f"{gdiff(nd_gfile, r.get('gradient_file')):>10} {gdiff(r.get('gradient_file'), ref and ref['gradient_file']):>9}"
    wall = r.get("train_wall_s")
    iters = r.get("iters")
    print(f"{tool:12} {meth:22} {f(g, '9.3f')} {f(r.get('first_gradient_ms'), '11.1f')} {ratio}"
          f" {f(r.get('loss_w0'), '13.8g')} {str(r.get('steps') or '-'):>6} {str(iters if iters is not None else '-'):>10}"
          f" {f(wall, '8.2f')} {f(r.get('final_loss'), '11.4e')} {diff}")
    for k in ("grad_error", "repeat_error", "train_error", "eval_error"):
        if r.get(k):
            print(f"{'':12}   {k}: {r[k].strip().splitlines()[-1] if r[k].strip() else '?'}")
    if r.get("note"):
        print(f"{'':12}   note: {r['note']}")
    if r.get("train_wall_s_extrapolated"):
        print(f"{'':12}   EXTRAPOLATED {r['train_wall_s_extrapolated']:.0f} s for the full run "
              f"({r['train_s_per_iter']:.3f} s/iter)")
    if r.get("adjoint_grad_ms") is not None:
        adf = r.get("adjoint_gradient_file")
        ad = f"{gdiff(nd_gfile, adf):>10} {gdiff(adf, ref and ref['gradient_file']):>9}"
        aratio = f"{nd_grad / r['adjoint_grad_ms']:9.5f}" if nd_grad else f"{'-':>9}"
        print(f"{tool:12} {'dopri5/odeint_adjoint':22} {r['adjoint_grad_ms']:9.1f} {'(once)':>11} {aratio}"
              f" {f(r.get('adjoint_loss_w0'), '13.8g')} {'':6} {'':10} {'':8} {'':11} {ad}")
print()
print("grad ms = median wall time of one loss+gradient at w0 (diffrax: jitted, after the compiling first")
print("call; torchdiffeq: backprop through dopri5 -- it has no tsit5); 1st grad ms = the first one")
print("(ndec: process start to gradient in hand, compile included; diffrax: trace+compile+run).")
print("ndec/peer = ndec grad ms / peer grad ms. wall s = whole Adam run (lr 0.01, full batch), compile")
print("included; final loss = loss at the final params. g: vs ndec = max|g_ndec - g| / max|g| over the")
print("252 gradient entries at w0; vs ref = max|g - g_ref| / max|g_ref|, g_ref from diffrax Dopri8 at")
print("rtol 1e-12, atol 1e-14 (the converged gradient of the continuous problem).")
extra = []
for r in rows:
    if r.get("adam_impl"):
        extra.append(f"diffrax Adam: {r['adam_impl']}")
    if r.get("eval_loss") is not None:
        extra.append(f"ndec's final params re-evaluated by diffrax: loss {r['eval_loss']:.6e}"
                     + (f" (ndec says {nd['final_loss']:.6e})" if nd and nd.get("final_loss") is not None else ""))
    if r.get("threads"):
        extra.append(f"torch threads: {r['threads']}; torch {r['versions']['torch']}, "
                     f"torchdiffeq {r['versions']['torchdiffeq']}")
    if r.get("adjoint_vs_backprop_rel_diff") is not None:
        extra.append(f"torchdiffeq adjoint vs backprop gradient: {r['adjoint_vs_backprop_rel_diff']:.2e}")
    if r.get("accepted") is not None:
        extra.append(f"{r['tool']} steps at w0: {r['accepted']} accepted + {r['rejected']} rejected")
    if r.get("nfe_forward") is not None:
        extra.append(f"torchdiffeq f evaluations at w0: {r['nfe_forward']} forward")
    if r.get("compile_ms") is not None:
        extra.append(f"ndec compile_ms {r['compile_ms']:.1f}")
if extra:
    print()
    for e in extra:
        print(e)

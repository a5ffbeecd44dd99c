#!/usr/bin/env python3
"""torchdiffeq peer of the spiral benchmark (issue 5). Run with bench/peers/.venv/bin/python.

Same problem as diffrax_spiral.py (u' = W2 tanh(W1 u^3 + b1) + b2, weights from w0.json, MSE
over data.csv), torch float64 on the CPU with torch.set_num_threads(os.cpu_count()).
torchdiffeq has no Tsit5: its dopri5 (the other 5(4) FSAL pair) is used, rtol 1e-7, atol 1e-9;
it too reads the data times off its dense interpolant.

Measures:
* backprop gradient (autograd through odeint's operations): the first call and the median/min of
  REPEAT (default 5) further calls; writes it to OUT/grad_torchdiffeq.json.
* odeint_adjoint gradient (continuous adjoint, same tolerances for the backward solve), once;
  ~10+ s. SKIP_ADJOINT=1 skips it. Writes OUT/grad_torchdiffeq_adjoint.json.
* training: ITERS (default 500) torch.optim.Adam steps (lr 0.01, betas 0.9/0.999, eps 1e-8) with
  backprop gradients, wall time to the loss at the final params in hand. If the run passes
  TRAIN_BUDGET_S (default 900 s) it stops there and reports the iterations done, the time per
  iteration and "train_wall_s_extrapolated" for ITERS (marked as an extrapolation).
Prints one JSON line.
"""
import json
import os
import statistics
import time

import torch
import torchdiffeq
from torchdiffeq import odeint, odeint_adjoint

import spiral_io as io

OUT = os.environ.get("OUT_DIR", os.path.join(io.HERE, "out"))
REPEAT = int(os.environ.get("REPEAT", 5))
ITERS = int(os.environ.get("ITERS", 500))
BUDGET = float(os.environ.get("TRAIN_BUDGET_S", 900))
NTHREADS = os.cpu_count() or 1
torch.set_num_threads(NTHREADS)
torch.set_default_dtype(torch.float64)

ts_list, vals = io.load_data()
TS = torch.tensor(ts_list)
DATA = torch.tensor(vals)
Y0 = torch.tensor(io.U0)


class Field(torch.nn.Module):
    def __init__(self, path):
        super().__init__()
        w1, b1, w2, b2 = io.load_params(path)
        self.w1, self.b1 = torch.nn.Parameter(torch.tensor(w1)), torch.nn.Parameter(torch.tensor(b1))
        self.w2, self.b2 = torch.nn.Parameter(torch.tensor(w2)), torch.nn.Parameter(torch.tensor(b2))
        self.nfe = 0

    def forward(self, t, u):
        self.nfe += 1
        return self.w2 @ torch.tanh(self.w1 @ u ** 3 + self.b1) + self.b2


def loss_of(f, integrator=odeint):
    ys = integrator(f, Y0, TS, rtol=io.RTOL, atol=io.ATOL, method="dopri5")
    return torch.mean((ys - DATA) ** 2)


def gradient(f, integrator=odeint):
    f.zero_grad()
    l = loss_of(f, integrator)
    l.backward()
    return l.item()


def dump(f, name):
    g = [p.grad.tolist() for p in (f.w1, f.b1, f.w2, f.b2)]
    path = os.path.join(OUT, name)
    io.write_params(path, *g)
    return path


res = {"tool": "torchdiffeq", "method": "dopri5", "threads": NTHREADS,
       "versions": {"torch": torch.__version__, "torchdiffeq": torchdiffeq.__version__}}
W0 = os.path.join(io.HERE, "w0.json")
f = Field(W0)

# ---- backprop gradient at w0
t = time.perf_counter()
res["loss_w0"] = gradient(f)
res["first_gradient_ms"] = (time.perf_counter() - t) * 1e3
res["nfe_forward_backward"] = f.nfe
with torch.no_grad():
    f.nfe = 0
    loss_of(f)
    res["nfe_forward"] = f.nfe
times = []
for _ in range(REPEAT):
    t = time.perf_counter()
    gradient(f)
    times.append((time.perf_counter() - t) * 1e3)
res.update(repeat=REPEAT, grad_ms_median=statistics.median(times), grad_ms_min=min(times))
res["gradient_file"] = dump(f, "grad_torchdiffeq.json")

# ---- continuous adjoint, once
if os.environ.get("SKIP_ADJOINT", "0") != "1":
    fa = Field(W0)
    t = time.perf_counter()
    res["adjoint_loss_w0"] = gradient(fa, odeint_adjoint)
    res["adjoint_grad_ms"] = (time.perf_counter() - t) * 1e3
    res["adjoint_nfe"] = fa.nfe
    res["adjoint_gradient_file"] = dump(fa, "grad_torchdiffeq_adjoint.json")
    res["adjoint_vs_backprop_rel_diff"] = io.rel_diff(res["adjoint_gradient_file"], res["gradient_file"])

# ---- Adam with backprop gradients
if ITERS > 0:
    ft = Field(W0)
    opt = torch.optim.Adam(ft.parameters(), lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    try:
        t = time.perf_counter()
        done = 0
        for done in range(1, ITERS + 1):
            gradient(ft)
            opt.step()
            if time.perf_counter() - t > BUDGET:
                break
        with torch.no_grad():
            final = loss_of(ft).item()
        wall = time.perf_counter() - t
        res.update(iters=done, final_loss=final, train_wall_s=wall, train_s_per_iter=wall / done)
        if done < ITERS:
            res["train_wall_s_extrapolated"] = wall / done * ITERS
            res["note"] = f"stopped after {done} of {ITERS} iterations (TRAIN_BUDGET_S={BUDGET:g}); " \
                          f"train_wall_s_extrapolated is an extrapolation, final_loss is after {done}"
        io.write_params(os.path.join(OUT, "params_torchdiffeq.json"),
                        *[p.detach().tolist() for p in (ft.w1, ft.b1, ft.w2, ft.b2)])
    except Exception as e:  # noqa: BLE001  (e.g. dopri5 underflow at some iterate)
        res["train_error"] = f"{type(e).__name__}: {str(e)[:300]}"

print(json.dumps(res), flush=True)

#!/usr/bin/env python3
"""torchdiffeq peer of the minibatch benchmark (issue 12): the spiral demo's recipe.

torchdiffeq's examples/ode_demo.py trains on minibatches of `batch_size` windows of
`batch_time` consecutive observations: the windows' start states form one batched state
(M, D), solved over t[:batch_time] by one odeint call (dopri5, rtol 1e-7, atol 1e-9, the
library defaults) and differentiated by backprop — the fastest formulation a torchdiffeq user
writes for this. Same field and weights as torchdiffeq_spiral.py (u' = W2 tanh(W1 u^3 + b1) +
b2 from w0.json), same data.csv, float64 on the CPU with torch.set_num_threads(os.cpu_count()).

Measures:
* minibatch gradient at w0: the median/min of REPEAT (default 50) gradients of the MSE over a
  batch (forward + backward, optimiser step excluded), windows drawn as the demo draws them;
* training: ITERS (default 2000) iterations of Adam (lr LR, default 0.002, the recipe of
  docs/training.md) on the minibatch MSE (the loss and optimiser ndec train uses): the median
  gradient time over the iterations, the wall time end to end, and the full-trajectory MSE
  (u0 = [2, 0] over all 1000 observations) at the final params;
* the demo's own recipe (RMSprop lr 1e-3, mean |error|), ITERS iterations, when DEMO=1;
* EVAL_PARAMS=FILE: the full-trajectory MSE of that params file (ndec's final params), by this
  script's solver — an independent check of the loss ndec reports.
Prints one JSON line.
"""
import json
import os
import statistics
import time

import numpy as np
import torch
import torchdiffeq
from torchdiffeq import odeint

import spiral_io as io

REPEAT = int(os.environ.get("REPEAT", 50))
ITERS = int(os.environ.get("ITERS", 2000))
LR = float(os.environ.get("LR", 0.002))
BATCH_TIME = int(os.environ.get("BATCH_TIME", 10))
BATCH_SIZE = int(os.environ.get("BATCH_SIZE", 20))
NTHREADS = os.cpu_count() or 1
torch.set_num_threads(NTHREADS)
torch.set_default_dtype(torch.float64)

ts_list, vals = io.load_data()
TS = torch.tensor(ts_list)
DATA = torch.tensor(vals)
Y0 = torch.tensor(io.U0)
RNG = np.random.default_rng(0)


class Field(torch.nn.Module):
    def __init__(self, path):
        super().__init__()
        w1, b1, w2, b2 = io.load_params(path)
        self.w1, self.b1 = torch.nn.Parameter(torch.tensor(w1)), torch.nn.Parameter(torch.tensor(b1))
        self.w2, self.b2 = torch.nn.Parameter(torch.tensor(w2)), torch.nn.Parameter(torch.tensor(b2))

    def forward(self, t, u):
        # u: (M, 2) -> (M, 2); the batched form of W2 tanh(W1 u^3 + b1) + b2.
        return torch.tanh(u ** 3 @ self.w1.T + self.b1) @ self.w2.T + self.b2


def get_batch():
    """The demo's draw: M distinct starts, windows over t[:batch_time]."""
    s = torch.from_numpy(RNG.choice(np.arange(len(ts_list) - BATCH_TIME, dtype=np.int64),
                                    BATCH_SIZE, replace=False))
    y0 = DATA[s]
    t = TS[:BATCH_TIME]
    y = torch.stack([DATA[s + i] for i in range(BATCH_TIME)], dim=0)  # (T, M, D)
    return y0, t, y


def minibatch_loss(f, batch, l1=False):
    y0, t, y = batch
    pred = odeint(f, y0, t, rtol=io.RTOL, atol=io.ATOL, method="dopri5")
    return torch.mean(torch.abs(pred - y)) if l1 else torch.mean((pred - y) ** 2)


def full_mse(f):
    with torch.no_grad():
        ys = odeint(f, Y0.unsqueeze(0), TS, rtol=io.RTOL, atol=io.ATOL, method="dopri5")[:, 0]
        return torch.mean((ys - DATA) ** 2).item()


def train(f, opt, l1=False):
    """-> (wall s, full-trajectory MSE after, each iteration's gradient ms)."""
    grad_ms = []
    t = time.perf_counter()
    for _ in range(ITERS):
        batch = get_batch()
        g = time.perf_counter()
        opt.zero_grad()
        loss = minibatch_loss(f, batch, l1)
        loss.backward()
        grad_ms.append((time.perf_counter() - g) * 1e3)
        opt.step()
    wall = time.perf_counter() - t
    return wall, full_mse(f), grad_ms


res = {"tool": "torchdiffeq", "method": "dopri5", "threads": NTHREADS,
       "batch_time": BATCH_TIME, "batch_size": BATCH_SIZE,
       "versions": {"torch": torch.__version__, "torchdiffeq": torchdiffeq.__version__}}
W0 = os.path.join(io.HERE, "w0.json")

f = Field(W0)
res["full_mse_w0"] = full_mse(f)
times = []
for k in range(REPEAT + 1):
    batch = get_batch()
    t = time.perf_counter()
    f.zero_grad()
    minibatch_loss(f, batch).backward()
    if k:  # the first call warms torch up
        times.append((time.perf_counter() - t) * 1e3)
res.update(repeat=REPEAT, minibatch_grad_ms_median=statistics.median(times),
           minibatch_grad_ms_min=min(times))

if ITERS > 0:
    ft = Field(W0)
    wall, mse, grad_ms = train(ft, torch.optim.Adam(ft.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8))
    res.update(iters=ITERS, lr=LR, train_wall_s=wall, final_full_mse=mse,
               train_grad_ms_median=statistics.median(grad_ms))
    if os.environ.get("DEMO", "0") == "1":
        fd = Field(W0)
        wall, mse, _ = train(fd, torch.optim.RMSprop(fd.parameters(), lr=1e-3), l1=True)
        res.update(demo_recipe_train_wall_s=wall, demo_recipe_final_full_mse=mse)

if os.environ.get("EVAL_PARAMS"):
    res["eval_params_full_mse"] = full_mse(Field(os.environ["EVAL_PARAMS"]))

print(json.dumps(res), flush=True)

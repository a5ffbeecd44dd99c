#!/usr/bin/env python3
"""Peers of the width sweep (issue 13): one gradient of a neural ODE's MSE, diffrax and
torchdiffeq, from the same params file and data as ndec.

    python peers.py MODEL_DIR [--repeat R]

MODEL_DIR holds w0.json (ndec's params layout: {"nn": {"layers": [{"weight", "bias"}...]}})
and data.csv (header t,u[0],…,u[n-1]; the first row is t = 0, the start state). The model is
u' = 0.2·nn(u) − 0.1·u, nn a tanh MLP of those layers (tanh between layers, none after the
last), f64 on the CPU, rtol 1e-6, atol 1e-8, saved at the data times, MSE over every cell.

* diffrax: Tsit5, PIDController, SaveAt(ts), RecursiveCheckpointAdjoint,
  jit(value_and_grad) — the fastest formulation for one trajectory; median of R calls after
  the compiling one.
* torchdiffeq: dopri5 (it has no Tsit5), backprop through the solver; median of R calls.
Prints one JSON line with both (ms) and the losses.
"""
import argparse
import json
import os
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchdiffeq import odeint  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--repeat", type=int, default=20)
args = ap.parse_args()
RTOL, ATOL = 1e-6, 1e-8

layers = json.load(open(os.path.join(args.dir, "w0.json")))["nn"]["layers"]
raw = np.loadtxt(os.path.join(args.dir, "data.csv"), delimiter=",", skiprows=1)
TS, DATA = raw[:, 0], raw[:, 1:]
Y0 = DATA[0]


def timed(f, repeat):
    f()  # compile / warm up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), out


# ---- diffrax
P = [(jnp.array(l["weight"]), jnp.array(l["bias"])) for l in layers]


def field(t, u, p):
    h = u
    for k, (w, b) in enumerate(p):
        h = w @ h + b
        if k + 1 < len(p):
            h = jnp.tanh(h)
    return 0.2 * h - 0.1 * u


def jloss(p):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), t0=TS[0], t1=TS[-1], dt0=None,
        y0=jnp.array(Y0), args=p, saveat=diffrax.SaveAt(ts=jnp.array(TS)),
        stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
        adjoint=diffrax.RecursiveCheckpointAdjoint(), max_steps=100000)
    return jnp.mean((sol.ys - jnp.array(DATA)) ** 2)


vg = jax.jit(jax.value_and_grad(jloss))


def dx():
    l, g = vg(P)
    jax.block_until_ready(g)
    return float(l)


diffrax_ms, diffrax_loss = timed(dx, args.repeat)

# ---- torchdiffeq
torch.set_default_dtype(torch.float64)
TP = [(torch.tensor(l["weight"], requires_grad=True), torch.tensor(l["bias"], requires_grad=True))
      for l in layers]
TT, TD, TY0 = torch.tensor(TS), torch.tensor(DATA), torch.tensor(Y0)


def tfield(t, u):
    h = u
    for k, (w, b) in enumerate(TP):
        h = w @ h + b
        if k + 1 < len(TP):
            h = torch.tanh(h)
    return 0.2 * h - 0.1 * u


def td():
    for w, b in TP:
        w.grad = b.grad = None
    ys = odeint(tfield, TY0, TT, rtol=RTOL, atol=ATOL, method="dopri5")
    loss = torch.mean((ys - TD) ** 2)
    loss.backward()
    return loss.item()


torch_ms, torch_loss = timed(td, max(3, args.repeat // 4))
print(json.dumps({"diffrax_ms": diffrax_ms, "diffrax_loss": diffrax_loss,
                  "torchdiffeq_ms": torch_ms, "torchdiffeq_loss": torch_loss,
                  "threads": torch.get_num_threads(),
                  "versions": {"jax": jax.__version__, "diffrax": diffrax.__version__,
                               "torch": torch.__version__}}))

#!/usr/bin/env python3
"""diffrax peer of the spiral benchmark (issue 5). Run with bench/peers/.venv/bin/python.

Model u' = W2 tanh(W1 u^3 + b1) + b2 (252 params), u0 = [2, 0], t in [0, 25], loss = MSE over
the 1000 x 2 cells of data.csv, weights from w0.json. jax float64 on the CPU; diffrax Tsit5,
PIDController(rtol=1e-7, atol=1e-9), SaveAt(ts=data times) (dense output, as ndec does),
RecursiveCheckpointAdjoint (backprop through the solver's steps with checkpointing: what ndec's
`--sensitivity discrete` computes). The MLP is hand-written so the weights are exactly w0.json's.

Measures:
* gradient: jit(value_and_grad(loss)) at w0: the first call (trace + compile + run) and the
  median/min of REPEAT (default 100) further calls; writes the gradient to OUT/grad_diffrax.json.
* training: ITERS (default 500) full-batch Adam steps, lr 0.01, b1 0.9, b2 0.999, eps 1e-8
  (optax.adam when importable, else a hand-written Adam with bias correction: "adam_impl" says
  which), wall time from the start (compile included) to the loss at the final params in hand.
* --eval-params FILE: also the loss at FILE's params (to check another tool's final loss).
* --reference: also a reference gradient at w0, Dopri8 at rtol 1e-12, atol 1e-14 (converged:
  it agrees with rtol 1e-13 to ~1e-9), to OUT/grad_reference.json, as a second JSON line with
  "tool": "reference". At rtol 1e-7 the discrete gradients of the tools differ from it, and
  from each other, by ~1e-3 relative, far more than the loss does (~1e-6): this is the yardstick.
Prints one JSON line (two with --reference).
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

import spiral_io as io  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--out", default=os.environ.get("OUT_DIR", os.path.join(io.HERE, "out")))
ap.add_argument("--repeat", type=int, default=int(os.environ.get("REPEAT", 100)))
ap.add_argument("--iters", type=int, default=int(os.environ.get("ITERS", 500)))
ap.add_argument("--max-steps", type=int, default=16384)
ap.add_argument("--eval-params", default=None)
ap.add_argument("--reference", action="store_true")
args = ap.parse_args()

ts_list, vals = io.load_data()
TS = jnp.array(ts_list)
DATA = jnp.array(vals)
Y0 = jnp.array(io.U0)


def to_tree(path):
    w1, b1, w2, b2 = io.load_params(path)
    return {"w1": jnp.array(w1), "b1": jnp.array(b1), "w2": jnp.array(w2), "b2": jnp.array(b2)}


def field(t, u, p):
    return p["w2"] @ jnp.tanh(p["w1"] @ u ** 3 + p["b1"]) + p["b2"]


def solve(p, solver=diffrax.Tsit5(), rtol=io.RTOL, atol=io.ATOL):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(field), solver, t0=io.T0, t1=io.T1, dt0=None, y0=Y0, args=p,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        saveat=diffrax.SaveAt(ts=TS), adjoint=diffrax.RecursiveCheckpointAdjoint(),
        max_steps=args.max_steps)


def loss(p, **kw):
    return jnp.mean((solve(p, **kw).ys - DATA) ** 2)


res = {"tool": "diffrax", "method": "Tsit5", "adjoint": "RecursiveCheckpointAdjoint",
       "versions": {"jax": jax.__version__, "diffrax": diffrax.__version__}}
p0 = to_tree(os.path.join(io.HERE, "w0.json"))
vg = jax.jit(jax.value_and_grad(loss))

# ---- one gradient at w0
t = time.perf_counter()
l0, g = vg(p0)
jax.block_until_ready(g)
res["first_gradient_ms"] = (time.perf_counter() - t) * 1e3
times = []
for _ in range(args.repeat):
    t = time.perf_counter()
    jax.block_until_ready(vg(p0))
    times.append((time.perf_counter() - t) * 1e3)
res.update(repeat=args.repeat, grad_ms_median=statistics.median(times), grad_ms_min=min(times),
           loss_w0=float(l0))
stats = jax.jit(lambda p: solve(p).stats)(p0)
res["steps"] = int(stats["num_steps"])  # attempted: accepted + rejected
res["accepted"] = int(stats["num_accepted_steps"])
res["rejected"] = int(stats["num_rejected_steps"])
gpath = os.path.join(args.out, "grad_diffrax.json")
io.write_params(gpath, g["w1"].tolist(), g["b1"].tolist(), g["w2"].tolist(), g["b2"].tolist())
res["gradient_file"] = gpath

# ---- Adam, full batch, timed from scratch (compile included)
if args.iters > 0:
    try:
        import optax
        res["adam_impl"] = f"optax {optax.__version__} adam"
        opt = optax.adam(0.01, b1=0.9, b2=0.999, eps=1e-8)
        init, update = opt.init, opt.update
    except ImportError:
        res["adam_impl"] = "hand-written Adam (bias-corrected)"

        def init(p):
            z = jax.tree_util.tree_map(jnp.zeros_like, p)
            return (z, z, jnp.zeros((), jnp.int64))

        def update(g, s, p=None):
            m, v, k = s
            k = k + 1
            m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
            v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
            c1, c2 = 1 - 0.9 ** k, 1 - 0.999 ** k
            u = jax.tree_util.tree_map(lambda m, v: -0.01 * (m / c1) / (jnp.sqrt(v / c2) + 1e-8), m, v)
            return u, (m, v, k)

    # a fresh jit of the training step, so its compile is inside the timed region
    @jax.jit
    def step(p, s):
        l, g = jax.value_and_grad(loss)(p)
        u, s = update(g, s, p)
        return jax.tree_util.tree_map(lambda a, b: a + b, p, u), s, l

    try:
        t = time.perf_counter()
        p, s = p0, init(p0)
        for _ in range(args.iters):
            p, s, _l = step(p, s)
        final = float(jax.jit(loss)(p))
        res["train_wall_s"] = time.perf_counter() - t
        res.update(iters=args.iters, final_loss=final)
        io.write_params(os.path.join(args.out, "params_diffrax.json"), p["w1"].tolist(),
                        p["b1"].tolist(), p["w2"].tolist(), p["b2"].tolist())
    except Exception as e:  # noqa: BLE001  (e.g. max_steps hit at some iterate)
        res["train_error"] = f"{type(e).__name__}: {str(e)[:300]}"

if args.eval_params:
    try:
        res["eval_params"] = args.eval_params
        res["eval_loss"] = float(jax.jit(loss)(to_tree(args.eval_params)))
    except Exception as e:  # noqa: BLE001
        res["eval_error"] = f"{type(e).__name__}: {str(e)[:300]}"

print(json.dumps(res), flush=True)

if args.reference:
    ref = {"tool": "reference", "method": "Dopri8 tol 1e-12/1e-14"}
    l, g = jax.value_and_grad(loss)(p0, solver=diffrax.Dopri8(), rtol=1e-12, atol=1e-14)
    ref["loss_w0"] = float(l)
    ref["gradient_file"] = os.path.join(args.out, "grad_reference.json")
    io.write_params(ref["gradient_file"], g["w1"].tolist(), g["b1"].tolist(), g["w2"].tolist(),
                    g["b2"].tolist())
    print(json.dumps(ref), flush=True)

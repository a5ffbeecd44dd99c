#!/usr/bin/env python3
"""ndec as a PyTorch / JAX layer against the peers a user of those frameworks would use, all
measured in this one process (issue 11). Run by bench/run_python.sh.

The spiral neural ODE of the issue-5 benchmark (bench/spiral: u' = W2 tanh(W1 u^3 + b1) + b2,
2 -> 50 -> 2, 252 params, u0 = [2, 0], t in [0, 25], MSE over the 1000 x 2 cells of data.csv,
weights w0.json, rtol 1e-7, atol 1e-9, f64, one CPU thread per framework where it has a knob):

* torch:  one loss + gradient through ``ndec.torch.solve`` (autograd Function; backward = the
          discrete adjoint) vs torchdiffeq ``odeint`` dopri5 with backprop through the solver
          (the issue-5 torchdiffeq setup).
* jax:    ``jit(value_and_grad(loss))`` through ``ndec.jax.solve`` vs diffrax Tsit5 with
          RecursiveCheckpointAdjoint under jit (the issue-5 diffrax setup).
* batch:  256 trajectories from u0 = [2, 0] + 0.1*N(0, 1) (seeded), shared weights: the solve at
          the 1000 times and the pullback of a fixed cotangent (forward + VJP), ndec via
          ``Model.solve_vjp`` (all cores) vs diffrax under jit: ``vmap`` of the single solve, and
          the batched-state formulation (one (256, 2) state, the MLP applied row-wise: what a
          diffrax user writes for speed; one step size for the whole batch).
* crossing: the cost of one call on a 2-state model over one rk4 step (nothing to solve):
          ``Model.solve`` from NumPy, ``ndec.torch.solve`` forward + backward, and
          ``ndec.jax.solve`` under jit, forward and value_and_grad.

Prints one JSON object per measurement (medians in ms over REPEAT calls after a warm-up).
"""
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SPIRAL = os.path.join(HERE, "..", "spiral")
sys.path.insert(0, SPIRAL)
import spiral_io as io  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(1)
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import ndec  # noqa: E402
import ndec.jax  # noqa: E402
import ndec.torch  # noqa: E402

REPEAT = int(os.environ.get("REPEAT", 30))
REPEAT_TORCHDIFFEQ = int(os.environ.get("REPEAT_TORCHDIFFEQ", 3))
BATCH = int(os.environ.get("BATCH", 256))
ONLY = set(filter(None, os.environ.get("ONLY", "").split(",")))

ts_list, vals = io.load_data()
TS = np.array(ts_list)
DATA = np.array(vals)
W1, B1, W2, B2 = (np.array(x, dtype=np.float64) for x in io.load_params(os.path.join(SPIRAL, "w0.json")))
MODEL = ndec.compile(os.path.join(HERE, "..", "models", "spiral_train.nde"))
THETA0 = MODEL.load_params(os.path.join(SPIRAL, "w0.json"))
OPTS = dict(method="tsit5", rtol=io.RTOL, atol=io.ATOL)


def timed(f, repeat=REPEAT, warmup=1):
    for _ in range(warmup):
        f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times)


def emit(**r):
    print(json.dumps(r), flush=True)


def bench_torch():
    from torchdiffeq import odeint

    data = torch.tensor(DATA, dtype=torch.float64)
    theta = torch.tensor(THETA0, requires_grad=True)
    u0 = torch.tensor(io.U0, dtype=torch.float64)

    def ndec_grad():
        theta.grad = None
        y = ndec.torch.solve(MODEL, TS, theta, u0, sensitivity="discrete", **OPTS)
        loss = torch.mean((y - data) ** 2)
        loss.backward()
        return loss.item()

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w1, self.b1 = torch.nn.Parameter(torch.tensor(W1)), torch.nn.Parameter(torch.tensor(B1))
            self.w2, self.b2 = torch.nn.Parameter(torch.tensor(W2)), torch.nn.Parameter(torch.tensor(B2))

        def forward(self, t, u):
            return self.w2 @ torch.tanh(self.w1 @ u**3 + self.b1) + self.b2

    f = Field()
    ts = torch.tensor(TS, dtype=torch.float64)

    def tdq_grad():
        f.zero_grad()
        ys = odeint(f, u0, ts, rtol=io.RTOL, atol=io.ATOL, method="dopri5")
        loss = torch.mean((ys - data) ** 2)
        loss.backward()
        return loss.item()

    l_ndec, l_tdq = ndec_grad(), tdq_grad()
    g_ndec = theta.grad.numpy().copy()
    g_tdq = np.concatenate([p.grad.numpy().ravel() for p in (f.w1, f.b1, f.w2, f.b2)])
    med_n, min_n = timed(ndec_grad)
    med_t, min_t = timed(tdq_grad, repeat=REPEAT_TORCHDIFFEQ)
    emit(bench="torch_gradient", ndec_ms=med_n, ndec_min_ms=min_n, torchdiffeq_ms=med_t,
         torchdiffeq_min_ms=min_t, ratio=med_n / med_t, loss_ndec=l_ndec, loss_torchdiffeq=l_tdq,
         grad_rel_diff=float(np.max(np.abs(g_ndec - g_tdq)) / np.max(np.abs(g_tdq))),
         peer="torchdiffeq odeint dopri5, backprop through the solver")


def field_jax(t, u, p):
    return p["w2"] @ jnp.tanh(p["w1"] @ u**3 + p["b1"]) + p["b2"]


def diffrax_solve(p, y0, field=field_jax):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), t0=io.T0, t1=io.T1, dt0=None, y0=y0, args=p,
        stepsize_controller=diffrax.PIDController(rtol=io.RTOL, atol=io.ATOL),
        saveat=diffrax.SaveAt(ts=jnp.array(TS)), adjoint=diffrax.RecursiveCheckpointAdjoint(),
        max_steps=16384).ys


P0 = {"w1": jnp.array(W1), "b1": jnp.array(B1), "w2": jnp.array(W2), "b2": jnp.array(B2)}


def bench_jax():
    data = jnp.array(DATA)
    u0 = jnp.array(io.U0)
    ts = jnp.array(TS)

    def loss_ndec(theta):
        y = ndec.jax.solve(MODEL, ts, theta, u0, sensitivity="discrete", **OPTS)
        return jnp.mean((y - data) ** 2)

    def loss_diffrax(p):
        return jnp.mean((diffrax_solve(p, u0) - data) ** 2)

    vg_n = jax.jit(jax.value_and_grad(loss_ndec))
    vg_d = jax.jit(jax.value_and_grad(loss_diffrax))
    th = jnp.array(THETA0)
    (l_n, g_n), (l_d, g_d) = vg_n(th), vg_d(P0)
    g_d = np.concatenate([np.asarray(g_d[k]).ravel() for k in ("w1", "b1", "w2", "b2")])
    med_n, min_n = timed(lambda: jax.block_until_ready(vg_n(th)))
    med_d, min_d = timed(lambda: jax.block_until_ready(vg_d(P0)))
    emit(bench="jax_gradient", ndec_ms=med_n, ndec_min_ms=min_n, diffrax_ms=med_d, diffrax_min_ms=min_d,
         ratio=med_n / med_d, loss_ndec=float(l_n), loss_diffrax=float(l_d),
         grad_rel_diff=float(np.max(np.abs(np.asarray(g_n) - g_d)) / np.max(np.abs(g_d))),
         peer="diffrax Tsit5, RecursiveCheckpointAdjoint, jit(value_and_grad)")


def bench_batch():
    rng = np.random.default_rng(0)
    u0s = np.array(io.U0) + 0.1 * rng.standard_normal((BATCH, 2))
    ybar = rng.standard_normal((BATCH, len(TS), 2)) / (BATCH * len(TS))

    def ndec_fwd_vjp():
        _, pb = MODEL.solve_vjp(TS, THETA0, u0s, sensitivity="discrete", **OPTS)
        return pb(ybar)

    g_u0_n, g_th_n = ndec_fwd_vjp()
    med_n, min_n = timed(ndec_fwd_vjp, repeat=max(3, REPEAT // 3))

    U0S, YBAR = jnp.array(u0s), jnp.array(ybar)

    def vmapped(p, u0s):
        return jax.vmap(lambda u: diffrax_solve(p, u))(u0s)

    @jax.jit
    def vjp_vmap(p, u0s, ybar):
        y, pb = jax.vjp(vmapped, p, u0s)
        return y, pb(ybar)

    def field_batched(t, u, p):  # u: (B, 2); the MLP row-wise
        return jnp.tanh(u**3 @ p["w1"].T + p["b1"]) @ p["w2"].T + p["b2"]

    @jax.jit
    def vjp_batched(p, u0s, ybar):
        y, pb = jax.vjp(lambda p, u: diffrax_solve(p, u, field_batched), p, u0s)
        return y, pb(jnp.swapaxes(ybar, 0, 1))

    _, (gp_v, gu_v) = vjp_vmap(P0, U0S, YBAR)
    jax.block_until_ready(vjp_batched(P0, U0S, YBAR))
    med_v, min_v = timed(lambda: jax.block_until_ready(vjp_vmap(P0, U0S, YBAR)), repeat=max(3, REPEAT // 3))
    med_b, min_b = timed(lambda: jax.block_until_ready(vjp_batched(P0, U0S, YBAR)), repeat=max(3, REPEAT // 3))
    g_th_v = np.concatenate([np.asarray(gp_v[k]).ravel() for k in ("w1", "b1", "w2", "b2")])
    emit(bench="batch_forward_pullback", batch=BATCH, ndec_ms=med_n, ndec_min_ms=min_n,
         diffrax_vmap_ms=med_v, diffrax_vmap_min_ms=min_v, diffrax_batched_state_ms=med_b,
         diffrax_batched_state_min_ms=min_b, ratio_vs_vmap=med_n / med_v,
         ratio_vs_batched_state=med_n / med_b, threads=os.cpu_count(),
         grad_theta_rel_diff_vs_vmap=float(np.max(np.abs(g_th_n - g_th_v)) / np.max(np.abs(g_th_v))),
         grad_u0_rel_diff_vs_vmap=float(np.max(np.abs(g_u0_n - np.asarray(gu_v))) / np.max(np.abs(np.asarray(gu_v)))))


def bench_crossing():
    m = ndec.compile(source="param k = 0.5\nstate x[2] = [1, 2]\nx' = -k*x\n", name="tiny")
    ts = np.array([0.0, 0.1])
    theta = m.default_params()
    opts = dict(method="rk4", dt=0.1)
    numpy_ms, _ = timed(lambda: m.solve(ts, theta, **opts), repeat=2000, warmup=50)
    ybar = np.ones((2, 2))

    def vjp():
        _, pb = m.solve_vjp(ts, theta, **opts)
        return pb(ybar)

    vjp_ms, _ = timed(vjp, repeat=2000, warmup=50)
    th = torch.tensor(theta, requires_grad=True)

    def torch_fb():
        th.grad = None
        ndec.torch.solve(m, ts, th, **opts).sum().backward()

    torch_ms, _ = timed(torch_fb, repeat=2000, warmup=50)
    jts, jth = jnp.array(ts), jnp.array(theta)
    fwd = jax.jit(lambda th: ndec.jax.solve(m, jts, th, **opts))
    vg = jax.jit(jax.value_and_grad(lambda th: ndec.jax.solve(m, jts, th, **opts).sum()))
    jax_fwd_ms, _ = timed(lambda: jax.block_until_ready(fwd(jth)), repeat=2000, warmup=50)
    jax_vg_ms, _ = timed(lambda: jax.block_until_ready(vg(jth)), repeat=2000, warmup=50)
    # What the frameworks themselves cost for the same round trips: a trivial autograd.Function
    # forward + backward, and a trivial jitted pure_callback (forward; value_and_grad through a
    # custom_vjp of two callbacks).
    class Twice(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    def torch_base():
        th.grad = None
        Twice.apply(th).sum().backward()

    torch_base_ms, _ = timed(torch_base, repeat=2000, warmup=50)

    def host(x):
        return np.asarray(x) * 2

    @jax.custom_vjp
    def cb(x):
        return jax.pure_callback(host, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    cb.defvjp(lambda x: (cb(x), None), lambda _, g: (jax.pure_callback(host, jax.ShapeDtypeStruct(g.shape, g.dtype), g),))
    base_fwd = jax.jit(cb)
    base_vg = jax.jit(jax.value_and_grad(lambda x: cb(x).sum()))
    jax_base_fwd_ms, _ = timed(lambda: jax.block_until_ready(base_fwd(jth)), repeat=2000, warmup=50)
    jax_base_vg_ms, _ = timed(lambda: jax.block_until_ready(base_vg(jth)), repeat=2000, warmup=50)
    emit(bench="crossing", model="2 states, 1 param, one rk4 step", numpy_solve_us=numpy_ms * 1e3,
         numpy_solve_vjp_and_pullback_us=vjp_ms * 1e3, torch_forward_backward_us=torch_ms * 1e3,
         torch_trivial_function_us=torch_base_ms * 1e3,
         jax_jit_forward_us=jax_fwd_ms * 1e3, jax_jit_value_and_grad_us=jax_vg_ms * 1e3,
         jax_trivial_callback_forward_us=jax_base_fwd_ms * 1e3,
         jax_trivial_callback_value_and_grad_us=jax_base_vg_ms * 1e3)


if __name__ == "__main__":
    emit(bench="versions", ndec=ndec.__version__, torch=torch.__version__, jax=jax.__version__,
         diffrax=diffrax.__version__, numpy=np.__version__, repeat=REPEAT)
    for name, f in [("crossing", bench_crossing), ("torch", bench_torch), ("jax", bench_jax), ("batch", bench_batch)]:
        if not ONLY or name in ONLY:
            f()

"""diffrax peer for bench/run_sde.sh: 10,000-path GBM and OU ensembles, Euler–Maruyama with
dt = 1e-3 from t = 0 to 1 (1000 steps), end state only, float64, jit + vmap over paths.

Brownian path: diffrax.UnsafeBrownianPath (independent increments per step: the cheapest
path diffrax offers, and what a fixed-step Euler–Maruyama needs, with adjoint=ForwardMode as
diffrax requires for it; like ndec's step-keyed
grid path). Threads: XLA's CPU defaults (every core available to its thread pool); the
process CPU time over the wall time of each call is reported as cores_used. Prints one JSON
line per problem: compile_ms (first call), solve_ms_min and solve_ms_median over REPEAT calls,
cores_used, and the sample mean/variance of the end state.

usage: python sde.py [PATHS] [REPEAT]
"""
import json
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

PATHS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
REPEAT = int(sys.argv[2]) if len(sys.argv) > 2 else 5
DT = 1e-3

PROBLEMS = {
    # x' = mu x + sigma x W, x0 = 1
    "gbm": (lambda t, y, a: 0.05 * y, lambda t, y, a: 0.2 * y, 1.0),
    # x' = theta (m - x) + s W, x0 = 0
    "ou": (lambda t, y, a: 1.0 * (0.5 - y), lambda t, y, a: 0.3 + 0.0 * y, 0.0),
}


def make(drift, diffusion, y0):
    def one(key):
        bm = diffrax.UnsafeBrownianPath(shape=(), key=key)
        terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm))
        sol = diffrax.diffeqsolve(
            terms,
            diffrax.Euler(),
            t0=0.0,
            t1=1.0,
            dt0=DT,
            y0=jnp.asarray(y0, dtype=jnp.float64),
            saveat=diffrax.SaveAt(t1=True),
            max_steps=1100,
            adjoint=diffrax.ForwardMode(),
        )
        return sol.ys[-1]

    return jax.jit(jax.vmap(one))


for name, (drift, diffusion, y0) in PROBLEMS.items():
    f = make(drift, diffusion, y0)
    keys = jax.random.split(jax.random.PRNGKey(0), PATHS)
    t = time.perf_counter()
    ys = f(keys).block_until_ready()
    compile_ms = (time.perf_counter() - t) * 1e3
    times, cpu = [], []
    for r in range(REPEAT):
        keys = jax.random.split(jax.random.PRNGKey(r + 1), PATHS)
        t, c = time.perf_counter(), time.process_time()
        ys = f(keys).block_until_ready()
        times.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    times.sort()
    cpu.sort()
    print(json.dumps({
        "tool": "diffrax",
        "problem": name,
        "paths": PATHS,
        "dt": DT,
        "compile_ms": compile_ms,
        "solve_ms_min": times[0],
        "solve_ms_median": times[len(times) // 2],
        # CPU time over wall time: how many cores XLA actually kept busy.
        "cores_used": cpu[len(cpu) // 2] / times[len(times) // 2],
        "mean": float(jnp.mean(ys)),
        "var": float(jnp.var(ys)),
        "jax": jax.__version__,
        "diffrax": diffrax.__version__,
    }), flush=True)

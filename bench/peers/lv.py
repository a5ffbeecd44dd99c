#!/usr/bin/env python3
"""Python peers for ndec's Lotka-Volterra benchmark (issue 3).

    x' = a x - b x y,   y' = c x y - d y,   a=1.5, b=1, c=3, d=1,   x0 = y0 = 1,
    t in [0, 10], rtol = atol = 1e-6, end state only.

* scipy.integrate.solve_ivp, RK45 and DOP853, with a plain Python right-hand side
  (reports nfev and steps).
* diffrax Tsit5 with PIDController(rtol, atol), float64, jax.jit, SaveAt(t1=True); the
  first (compiling) call is a warm-up and is excluded (its time is reported as compile_ms).

Each peer prints one JSON line on stdout; a peer that cannot be imported prints a line
with "error" and the script goes on. Run it with bench/peers/.venv/bin/python (see setup.sh).
"""
import argparse
import json
import sys
import time

A, B, C, D = 1.5, 1.0, 3.0, 1.0
T0, T1 = 0.0, 10.0
Y0 = [1.0, 1.0]
RTOL = ATOL = 1e-6


def stats_us(times_s):
    v = sorted(t * 1e6 for t in times_s)
    return {
        "repeat": len(v),
        "solve_us_min": round(v[0], 3),
        "solve_us_median": round(v[len(v) // 2], 3),
        "solve_us_mean": round(sum(v) / len(v), 3),
    }


def emit(d):
    print(json.dumps(d), flush=True)


def bench_scipy(repeat, warmup):
    try:
        import numpy as np
        import scipy
        from scipy.integrate import solve_ivp
    except Exception as e:  # noqa: BLE001
        emit({"tool": "scipy", "error": f"import failed: {type(e).__name__}: {e}"})
        return

    def rhs(t, u):
        x, y = u
        return [A * x - B * x * y, C * x * y - D * y]

    y0 = np.array(Y0)
    for method in ("RK45", "DOP853"):
        try:
            def once():
                return solve_ivp(rhs, (T0, T1), y0, method=method, rtol=RTOL, atol=ATOL)

            for _ in range(warmup):
                once()
            times = []
            sol = None
            for _ in range(repeat):
                t = time.perf_counter()
                sol = once()
                times.append(time.perf_counter() - t)
            if not sol.success:
                raise RuntimeError(sol.message)
            emit({
                "tool": "scipy",
                "version": scipy.__version__,
                "method": method,
                "rhs": "python",
                "t1": T1, "rtol": RTOL, "atol": ATOL,
                **stats_us(times),
                "steps": int(len(sol.t) - 1),
                "rhs_evals": int(sol.nfev),
                "end_state": [float(v) for v in sol.y[:, -1]],
            })
        except Exception as e:  # noqa: BLE001
            emit({"tool": "scipy", "method": method, "error": f"{type(e).__name__}: {e}"})


def bench_diffrax(repeat, warmup):
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_platform_name", "cpu")
        import jax.numpy as jnp
        import diffrax
    except Exception as e:  # noqa: BLE001
        emit({"tool": "diffrax", "error": f"import failed: {type(e).__name__}: {e}"})
        return
    try:
        def vf(t, u, p):
            a, b, c, d = p[0], p[1], p[2], p[3]
            x, y = u[0], u[1]
            return jnp.stack([a * x - b * x * y, c * x * y - d * y])

        term = diffrax.ODETerm(vf)
        solver = diffrax.Tsit5()
        ctrl = diffrax.PIDController(rtol=RTOL, atol=ATOL)
        saveat = diffrax.SaveAt(t1=True)

        @jax.jit
        def solve(y0, p):
            return diffrax.diffeqsolve(term, solver, t0=T0, t1=T1, dt0=None, y0=y0, args=p,
                                       saveat=saveat, stepsize_controller=ctrl,
                                       max_steps=100_000)

        y0 = jnp.array(Y0, dtype=jnp.float64)
        p = jnp.array([A, B, C, D], dtype=jnp.float64)
        t = time.perf_counter()
        sol = jax.block_until_ready(solve(y0, p))
        compile_ms = (time.perf_counter() - t) * 1e3
        for _ in range(warmup):
            jax.block_until_ready(solve(y0, p))
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            sol = jax.block_until_ready(solve(y0, p))
            times.append(time.perf_counter() - t)
        st = {k: int(v) for k, v in sol.stats.items()}
        emit({
            "tool": "diffrax",
            "version": diffrax.__version__,
            "jax": jax.__version__,
            "method": "Tsit5",
            "jit": True,
            "dtype": str(sol.ys.dtype),
            "device": str(jax.devices()[0]),
            "t1": T1, "rtol": RTOL, "atol": ATOL,
            **stats_us(times),
            "steps": st.get("num_steps"),
            "accepted": st.get("num_accepted_steps"),
            "rejected": st.get("num_rejected_steps"),
            "compile_ms": round(compile_ms, 3),
            "end_state": [float(v) for v in sol.ys[-1]],
        })
    except Exception as e:  # noqa: BLE001
        emit({"tool": "diffrax", "method": "Tsit5", "error": f"{type(e).__name__}: {e}"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["scipy", "diffrax"], help="run one peer")
    ap.add_argument("--repeat-scipy", type=int, default=100)
    ap.add_argument("--repeat-diffrax", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    if a.only in (None, "scipy"):
        bench_scipy(a.repeat_scipy, a.warmup)
    if a.only in (None, "diffrax"):
        bench_diffrax(a.repeat_diffrax, max(a.warmup, 10))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""scipy solve_ivp on the stiff benchmarks (ROBER, heat N=1000) with analytic Jacobians.

Prints one JSON line per (problem, method): min/median wall time over repetitions.
"""
import argparse
import json
import time

import numpy as np
from scipy.integrate import solve_ivp
from scipy.sparse import diags


def timeit(fn, repeat):
    ts = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[0] * 1e6, ts[len(ts) // 2] * 1e6, out


def rober(repeat):
    k1, k2, k3 = 0.04, 3e7, 1e4

    def f(t, y):
        return [-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k2 * y[1] ** 2 - k3 * y[1] * y[2], k2 * y[1] ** 2]

    def jac(t, y):
        return [
            [-k1, k3 * y[2], k3 * y[1]],
            [k1, -2 * k2 * y[1] - k3 * y[2], -k3 * y[1]],
            [0.0, 2 * k2 * y[1], 0.0],
        ]

    for method in ["BDF", "Radau", "LSODA"]:
        run = lambda: solve_ivp(f, (0.0, 1e5), [1.0, 0.0, 0.0], method=method, jac=jac, rtol=1e-6, atol=1e-10)
        mn, md, sol = timeit(run, repeat)
        print(json.dumps({"tool": "scipy", "problem": "rober", "method": method, "solve_us_min": mn,
                          "solve_us_median": md, "nfev": int(sol.nfev), "end": sol.y[:, -1].tolist()}), flush=True)


def heat(repeat, n=1000):
    D, dx = 0.01, 1.0 / (n + 1)
    x = (np.arange(n) + 1) * dx
    u0 = np.sin(3.14159 * x)
    c = D / dx**2
    A = diags([c * np.ones(n - 1), -2 * c * np.ones(n), c * np.ones(n - 1)], [-1, 0, 1], format="csc")

    def f(t, u):
        return A @ u

    for method in ["BDF", "Radau"]:
        run = lambda: solve_ivp(f, (0.0, 10.0), u0, method=method, jac=A, rtol=1e-6, atol=1e-8)
        mn, md, sol = timeit(run, repeat)
        print(json.dumps({"tool": "scipy", "problem": "heat1000", "method": method, "solve_us_min": mn,
                          "solve_us_median": md, "nfev": int(sol.nfev), "mid": float(sol.y[n // 2, -1])}), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    rober(a.repeat)
    heat(a.repeat)

"""torchsde peer for bench/run_sde.sh: 10,000-path GBM and OU ensembles, Euler–Maruyama
(torchsde's `euler`, Itô) with dt = 1e-3 from t = 0 to 1 (1000 steps), end state only,
float64, the whole ensemble as one batch of shape (PATHS, 1).

Brownian motion: torchsde's default for sdeint, a BrownianInterval over [0, 1] with one
independent Wiener process per path (noise_type "diagonal"). Threads: torch's intra-op pool
set to THREADS (default: every core). Prints one JSON line per problem: the first call's time
(compile_ms, for the table's column: there is no compilation, it is the warm-up), solve_ms_min
and solve_ms_median over REPEAT calls, cores_used (process CPU time over wall time), and the
sample mean/variance of the end state.

usage: python sde_torchsde.py [PATHS] [REPEAT] [THREADS]
"""
import json
import os
import sys
import time

import torch
import torchsde

PATHS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
REPEAT = int(sys.argv[2]) if len(sys.argv) > 2 else 5
THREADS = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
DT = 1e-3
torch.set_num_threads(THREADS)
torch.set_default_dtype(torch.float64)


class Gbm(torch.nn.Module):
    """x' = mu x + sigma x W, x0 = 1."""

    noise_type = "diagonal"
    sde_type = "ito"

    def f(self, t, y):
        return 0.05 * y

    def g(self, t, y):
        return 0.2 * y


class Ou(torch.nn.Module):
    """x' = theta (m - x) + s W, x0 = 0."""

    noise_type = "diagonal"
    sde_type = "ito"

    def f(self, t, y):
        return 1.0 * (0.5 - y)

    def g(self, t, y):
        return torch.full_like(y, 0.3)


def solve(sde, x0, seed):
    torch.manual_seed(seed)
    y0 = torch.full((PATHS, 1), x0)
    ts = torch.tensor([0.0, 1.0])
    with torch.no_grad():
        ys = torchsde.sdeint(sde, y0, ts, method="euler", dt=DT)
    return ys[-1, :, 0]


for name, sde, x0 in [("gbm", Gbm(), 1.0), ("ou", Ou(), 0.0)]:
    t = time.perf_counter()
    solve(sde, x0, 0)
    first_ms = (time.perf_counter() - t) * 1e3
    times, cpu = [], []
    for r in range(REPEAT):
        t, c = time.perf_counter(), time.process_time()
        ys = solve(sde, x0, r + 1)
        times.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    times.sort()
    cpu.sort()
    print(json.dumps({
        "tool": "torchsde",
        "problem": name,
        "paths": PATHS,
        "dt": DT,
        "threads": torch.get_num_threads(),
        "compile_ms": first_ms,
        "solve_ms_min": times[0],
        "solve_ms_median": times[len(times) // 2],
        "cores_used": cpu[len(cpu) // 2] / times[len(times) // 2],
        "mean": float(ys.mean()),
        "var": float(ys.var(unbiased=False)),
        "torch": torch.__version__,
        "torchsde": torchsde.__version__,
    }), flush=True)

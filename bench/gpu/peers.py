"""Peers of bench/gpu_lorenz.sh: the Lorenz ensemble (rho uniform in [0, 21], sigma = 10,
beta = 8/3, u0 = (1, 0, 0), t in [0, 1], end state only) with tsit5 in diffrax (vmap + jit)
and torchdiffeq (one batched solve: torchdiffeq has no per-trajectory step control, the
batch shares its steps), on the GPU or the CPU.

    python3 bench/gpu/peers.py diffrax|torchdiffeq N fixed|adaptive f64|f32 gpu|cpu [REPEAT]

Prints one JSON line with the best and median wall time of REPEAT solves after a warm-up
(compilation excluded), or {"error": ...} when the peer cannot run here.
"""
import json
import sys
import time


def diffrax_run(n, adaptive, f64, device, repeat):
    import jax
    if f64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import diffrax

    dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
    dt = jnp.float64 if f64 else jnp.float32

    def f(t, u, rho):
        x, y, z = u
        return jnp.stack([10.0 * (y - x), x * (rho - z) - y, x * y - (8.0 / 3.0) * z])

    term = diffrax.ODETerm(f)
    if adaptive:
        ctrl, dt0 = diffrax.PIDController(rtol=1e-8, atol=1e-8), None
    else:
        ctrl, dt0 = diffrax.ConstantStepSize(), 1e-3

    def one(rho):
        sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, 1.0, dt0,
                                  jnp.array([1.0, 0.0, 0.0], dtype=dt), args=rho,
                                  stepsize_controller=ctrl, max_steps=100000,
                                  saveat=diffrax.SaveAt(t1=True))
        return sol.ys[-1]

    solve = jax.jit(jax.vmap(one))
    rhos = jax.device_put(jnp.linspace(0.0, 21.0, n, dtype=dt), dev)
    solve(rhos).block_until_ready()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        solve(rhos).block_until_ready()
        times.append(time.perf_counter() - t)
    return times


def torchdiffeq_run(n, adaptive, f64, device, repeat):
    import torch
    from torchdiffeq import odeint

    dev = torch.device("cuda" if device == "gpu" else "cpu")
    dt = torch.float64 if f64 else torch.float32
    rho = torch.linspace(0.0, 21.0, n, dtype=dt, device=dev)

    def f(t, u):
        x, y, z = u[:, 0], u[:, 1], u[:, 2]
        return torch.stack([10.0 * (y - x), x * (rho - z) - y, x * y - (8.0 / 3.0) * z], 1)

    u0 = torch.zeros(n, 3, dtype=dt, device=dev)
    u0[:, 0] = 1.0
    ts = torch.tensor([0.0, 1.0], dtype=dt, device=dev)
    kw = dict(method="dopri5", rtol=1e-8, atol=1e-8) if adaptive else \
        dict(method="rk4", options=dict(step_size=1e-3))
    # torchdiffeq has no tsit5; its adaptive default (dopri5, same order and stages) and its
    # fixed rk4 stand in, as in the DiffEqGPU paper's comparison.
    with torch.no_grad():
        odeint(f, u0, ts, **kw)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            odeint(f, u0, ts, **kw)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    return times


def main():
    peer, n, mode, prec, device = sys.argv[1:6]
    repeat = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    n = int(n)
    run = {"diffrax": diffrax_run, "torchdiffeq": torchdiffeq_run}[peer]
    try:
        times = sorted(run(n, mode == "adaptive", prec == "f64", device, repeat))
        print(json.dumps({"peer": peer, "n": n, "mode": mode, "precision": prec, "device": device,
                          "ms_min": times[0] * 1e3, "ms_median": times[len(times) // 2] * 1e3}))
    except Exception as e:  # noqa: BLE001 -- any failure is reported, not fatal to the table
        print(json.dumps({"peer": peer, "n": n, "error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main()

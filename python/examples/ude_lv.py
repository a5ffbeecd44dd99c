"""The universal Lotka–Volterra of docs/training.md, trained from PyTorch.

The truth (``examples/ude_lv/truth.nde``) is x' = αx − βxy, y' = γxy − δy; the UDE
(``examples/ude_lv/ude.nde``) keeps the known growth αx and death −δy and lets a
2 → 16 → 16 → 2 tanh MLP learn the interactions. It sees data on [0, 6] only (every 0.1),
and is then run to t = 15, 2.5 periods it never saw.

The training is the CLI demo's (``bash examples/ude_lv/run.sh``), written with torch:

1. Adam (lr 0.01) on minibatches of 10 windows of 10 rows; a window starts from the observed
   state at its first row. The model is autonomous, so every window is solved on the same
   save times 0, 0.1, …, 0.9 and a minibatch is ONE batched ndec solve: u0 of shape (10, 2),
   θ shared (an ``nn.Parameter``), the loss the MSE over the windows' cells.
2. L-BFGS (``torch.optim.LBFGS``, strong Wolfe line search) on the whole of [0, 6] from the
   model's own initial state.

Windows are drawn by NumPy's generator (the CLI draws them with Philox), so the two runs do
not see the same minibatches; they reach the same quality of fit. Run from the repository root:

    python python/examples/ude_lv.py [--adam N] [--lbfgs N]

``main(...)`` returns the measured results; ``python/tests/test_demos.py`` runs it quickly.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import ndec
import ndec.torch

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "examples" / "ude_lv"


def data(t_seen: float = 6.0, t_end: float = 15.0, step: float = 0.1):
    """(times, truth at the times, rows seen): the truth solved by ndec at its own solve
    block's tolerances (rtol 1e-10, atol 1e-12), as `ndec run truth.nde --saveat 0.1`."""
    truth = ndec.compile(MODELS / "truth.nde")
    times = np.arange(round(t_end / step) + 1) * step
    y = truth.solve(times)
    seen = int(np.sum(times <= t_seen + 1e-9))
    return times, y, seen


def mse(model, theta, times, target, **options) -> torch.Tensor:
    """The MSE of the model's trajectory from its initial state at `times` against `target`."""
    return ((ndec.torch.solve(model, times, theta, **options) - target) ** 2).mean()


def main(adam_iters: int = 3000, lbfgs_iters: int = 2000, lr: float = 0.01, window: int = 10,
         windows: int = 10, seed: int = 0, sensitivity: str = "auto", verbose: bool = False) -> dict:
    """Fits the UDE; returns the losses before/after each stage and the extrapolation error."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    times, truth, seen = data()
    model = ndec.compile(MODELS / "ude.nde")
    opts = {"sensitivity": sensitivity}       # method and tolerances: ude.nde's solve block
    target = torch.from_numpy(truth[:seen])
    theta = torch.nn.Parameter(torch.from_numpy(model.default_params()))

    with torch.no_grad():
        untrained_fit = float(mse(model, theta, times[:seen], target, **opts))
        untrained_all = model.solve(times, theta.detach().numpy())
    untrained_rms = float(np.sqrt(np.mean((untrained_all[seen:] - truth[seen:]) ** 2)))

    # 1. Adam on minibatches of windows: one batched solve per iteration.
    rng = np.random.default_rng(seed)
    starts_allowed = seen - window + 1
    wts = times[:window]                     # every window's save times, shifted to t0 = 0
    opt = torch.optim.Adam([theta], lr=lr)
    t_adam = time.perf_counter()
    for it in range(adam_iters):
        s = rng.integers(0, starts_allowed, size=windows)
        rows = torch.from_numpy(truth[s[:, None] + np.arange(window)])   # (windows, window, 2)
        y = ndec.torch.solve(model, wts, theta, rows[:, 0, :], **opts)
        loss = ((y - rows) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if verbose and (it + 1) % 500 == 0:
            with torch.no_grad():
                print(f"adam {it + 1:5d}: minibatch MSE {loss.item():.3e}, "
                      f"fit MSE {float(mse(model, theta, times[:seen], target, **opts)):.3e}")
    t_adam = time.perf_counter() - t_adam
    with torch.no_grad():
        adam_fit = float(mse(model, theta, times[:seen], target, **opts))

    # 2. L-BFGS on all the data from the model's initial state.
    lbfgs = torch.optim.LBFGS([theta], lr=1.0, max_iter=lbfgs_iters, max_eval=2 * lbfgs_iters,
                              history_size=20, tolerance_grad=1e-12, tolerance_change=1e-16,
                              line_search_fn="strong_wolfe")
    evals = 0

    def closure():
        nonlocal evals
        evals += 1
        lbfgs.zero_grad()
        loss = mse(model, theta, times[:seen], target, **opts)
        loss.backward()
        return loss

    t_lbfgs = time.perf_counter()
    if lbfgs_iters > 0:
        lbfgs.step(closure)
    t_lbfgs = time.perf_counter() - t_lbfgs
    with torch.no_grad():
        fit = float(mse(model, theta, times[:seen], target, **opts))
        full = model.solve(times, theta.detach().numpy())
    state = lbfgs.state[lbfgs._params[0]]
    return {
        "untrained_fit_mse": untrained_fit,
        "adam_fit_mse": adam_fit,
        "fit_mse": fit,
        "lbfgs_iters": int(state.get("n_iter", 0)),
        "lbfgs_evals": evals,
        "mse_0_15": float(np.mean((full - truth) ** 2)),
        "extrapolation_rms": float(np.sqrt(np.mean((full[seen:] - truth[seen:]) ** 2))),
        "untrained_extrapolation_rms": untrained_rms,
        "theta": theta.detach().numpy().copy(),
        "seconds": {"adam": t_adam, "lbfgs": t_lbfgs, "total": time.perf_counter() - start},
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adam", type=int, default=3000)
    ap.add_argument("--lbfgs", type=int, default=2000)
    ap.add_argument("--sensitivity", default="auto")
    args = ap.parse_args()
    r = main(args.adam, args.lbfgs, sensitivity=args.sensitivity, verbose=True)
    print(f"fit MSE on [0, 6]: {r['untrained_fit_mse']:.3e} untrained → {r['adam_fit_mse']:.3e} after Adam "
          f"→ {r['fit_mse']:.3e} after L-BFGS ({r['lbfgs_iters']} iterations, {r['lbfgs_evals']} evaluations)")
    print(f"MSE on [0, 15]: {r['mse_0_15']:.3e}; RMS error on (6, 15]: {r['extrapolation_rms']:.3e} "
          f"(untrained: {r['untrained_extrapolation_rms']:.3e})")
    s = r["seconds"]
    print(f"{s['adam']:.1f} s Adam, {s['lbfgs']:.1f} s L-BFGS, {s['total']:.1f} s in all")

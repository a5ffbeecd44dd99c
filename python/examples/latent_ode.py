"""A latent ODE on irregularly sampled time series (Rubanova et al. 2019; torchdiffeq's
latent_ode example, scaled down), with an ndec model as the decoder's dynamics.

Data: sinusoids x(t) = a·sin(ωt + φ) + noise (std 0.02) with a random amplitude a ∈ [0.5, 1.5],
frequency ω ∈ [1.8, 2.2] and phase φ per series; each series is observed at its OWN random
times in [0, 5] (10 to 20 of them, uniform, not on a grid). The model:

- encoder (torch): a GRU run backward in time over a series' observed points (x_k, t_k) up to
  t_enc = 2.5, giving q(z0) = N(μ, diag σ²);
- z0 = μ + σ·ε (reparameterised);
- decoder dynamics (ndec, ``latent_ode.nde``): z' = f(z), f an L → 32 → L tanh MLP (L = 4),
  solved from z0 at the UNION of the minibatch's observation times: one batched ndec solve with
  u0 of shape (B, L) and the net's weights θ (an ``nn.Parameter``) shared by the batch;
- a torch MLP z(t) → x(t), and the ELBO: the Gaussian log-likelihood (std 0.1) of each series'
  own observations on all of [0, 5] (the union's other times are masked out), minus
  KL(q(z0) ‖ N(0, I)). The encoder sees the first half, the likelihood both halves
  (Rubanova et al.'s extrapolation setting), so the ODE learns to forecast.

Everything (GRU, MLPs, θ) trains under one Adam optimiser. Reported, on the training set and on
held-out series, before and after training: the negative ELBO per series, and from z0 = μ the
MSE at the observed points the encoder read (reconstruction, t ≤ 2.5), at the observed points
after them (forecast, 2.5 < t ≤ 5) and on a grid of (5, 8] that no training loss covers
(extrapolation), each beside the MSE of predicting 0. Run from the repository root:

    python python/examples/latent_ode.py [--iters N]

``main(...)`` returns the measured results; ``python/tests/test_demos.py`` runs it quickly.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

import ndec
import ndec.torch

HERE = Path(__file__).resolve().parent


def sinusoids(n: int, rng: np.random.Generator, omega=(1.8, 2.2), t_obs: float = 5.0,
              t_end: float = 8.0, k_min: int = 10, k_max: int = 20, noise: float = 0.02,
              extrap: int = 30):
    """n series: observed times (n, K) padded with t_obs, values (n, K), mask (n, K); and the
    noiseless series on an extrapolation grid of `extrap` times in (t_obs, t_end]."""
    a = rng.uniform(0.5, 1.5, n)
    w = rng.uniform(omega[0], omega[1], n)
    phi = rng.uniform(0.0, 2 * math.pi, n)
    counts = rng.integers(k_min, k_max + 1, n)
    t = np.full((n, k_max), t_obs)
    mask = np.zeros((n, k_max), dtype=bool)
    for i, k in enumerate(counts):
        t[i, :k] = np.sort(rng.uniform(0.0, t_obs, k))
        mask[i, :k] = True
    x = a[:, None] * np.sin(w[:, None] * t + phi[:, None]) + noise * rng.standard_normal(t.shape)
    x = np.where(mask, x, 0.0)
    grid = np.linspace(t_obs, t_end, extrap + 1)[1:]
    x_ext = a[:, None] * np.sin(w[:, None] * grid + phi[:, None])
    return {"t": t, "x": x, "mask": mask, "grid": grid, "x_ext": x_ext}


class Encoder(torch.nn.Module):
    """A GRU run backward over each series' observed points; → (μ, log σ²) of z0."""

    def __init__(self, latent: int, hidden: int = 32):
        super().__init__()
        self.cell = torch.nn.GRUCell(2, hidden, dtype=torch.float64)
        self.head = torch.nn.Linear(hidden, 2 * latent, dtype=torch.float64)
        self.hidden = hidden

    def forward(self, t, x, mask):
        h = torch.zeros(t.shape[0], self.hidden, dtype=torch.float64)
        for k in reversed(range(t.shape[1])):          # padding (mask False) leaves h as is
            step = self.cell(torch.stack([x[:, k], t[:, k]], dim=1), h)
            h = torch.where(mask[:, k:k + 1], step, h)
        mu, logvar = self.head(h).chunk(2, dim=1)
        return mu, logvar


class LatentODE(torch.nn.Module):
    def __init__(self, model: ndec.Model, latent: int, obs_std: float = 0.1, **solve_options):
        super().__init__()
        self.model = model
        self.options = solve_options
        self.encoder = Encoder(latent)
        # The decoder ODE's θ: an nn.Parameter (as ndec.torch.Layer registers it); the save
        # times change with every minibatch, so ndec.torch.solve is called with them.
        self.theta = torch.nn.Parameter(torch.from_numpy(model.default_params()))
        self.readout = torch.nn.Sequential(
            torch.nn.Linear(latent, 32, dtype=torch.float64), torch.nn.Tanh(),
            torch.nn.Linear(32, 1, dtype=torch.float64))
        self.obs_std = obs_std

    def decode(self, z0, times):
        """x at `times` (increasing, times[0] = 0) from z0 (B, L): (B, len(times))."""
        z = ndec.torch.solve(self.model, times, self.theta, z0, **self.options)   # (B, T, L)
        return self.readout(z)[..., 0]

    def elbo(self, t, x, mask, seen, sample: bool = True):
        """Per-series ELBO (B,) of a minibatch: the encoder reads the points `seen`, the
        likelihood covers every observed point (`mask`); one batched solve at the union of
        the minibatch's times."""
        mu, logvar = self.encoder(t, x, seen)
        z0 = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
        union, idx = union_times(t, mask)
        pred = self.decode(z0, union).gather(1, idx)              # (B, K) at each own time
        var = self.obs_std ** 2
        loglik = -0.5 * ((x - pred) ** 2 / var + math.log(2 * math.pi * var))
        loglik = (loglik * mask).sum(dim=1)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return loglik - kl


def union_times(t: torch.Tensor, mask: torch.Tensor):
    """The sorted union of the observed times with t0 = 0 first, and each observation's index
    in it (padding points to index 0; they are masked)."""
    tn, mn = t.numpy(), mask.numpy()
    union = np.unique(np.concatenate([[0.0], tn[mn]]))
    idx = np.where(mn, np.searchsorted(union, tn), 0)
    return union, torch.from_numpy(idx)


def evaluate(net: LatentODE, d: dict, t_enc: float, chunk: int = 32) -> dict:
    """On a data set: -ELBO per series (at z0 = μ); from z0 = μ of the points up to t_enc, the
    MSE at those points (reconstruction), at the observed points after t_enc (forecast) and on
    the grid beyond t_obs (extrapolation); and each MSE of predicting 0. In chunks of `chunk`
    series (a solve's save times are the union of its series' times)."""
    neg_elbo, at_obs, ext = [], [], []
    for c in range(0, len(d["t"]), chunk):
        t, x, mask = (torch.from_numpy(d[k][c:c + chunk]) for k in ("t", "x", "mask"))
        seen = mask & (t <= t_enc)
        with torch.no_grad():
            neg_elbo.append(-net.elbo(t, x, mask, seen, sample=False))
            mu, _ = net.encoder(t, x, seen)
            union, idx = union_times(t, mask)
            pred = net.decode(mu, np.concatenate([union, d["grid"]]))
            at_obs.append(pred[:, : len(union)].gather(1, idx).numpy())
            ext.append(pred[:, len(union):].numpy())
    at_obs, ext = np.concatenate(at_obs), np.concatenate(ext)
    m, xn = d["mask"], d["x"]
    s = m & (d["t"] <= t_enc)
    later = m & ~s
    return {
        "neg_elbo": float(torch.cat(neg_elbo).mean()),
        "recon_mse": float(((at_obs - xn) ** 2)[s].mean()),
        "forecast_mse": float(((at_obs - xn) ** 2)[later].mean()),
        "extrap_mse": float(((ext - d["x_ext"]) ** 2).mean()),
        "zero_recon_mse": float((xn ** 2)[s].mean()),
        "zero_forecast_mse": float((xn ** 2)[later].mean()),
        "zero_extrap_mse": float((d["x_ext"] ** 2).mean()),
    }


def main(iters: int = 1500, batch: int = 32, n_train: int = 1024, n_test: int = 128,
         latent: int = 4, lr: float = 1e-2, t_enc: float = 2.5, omega=(1.8, 2.2), seed: int = 0,
         verbose: bool = False) -> dict:
    """Trains the latent ODE; returns -ELBO and MSEs on the training and test sets before and
    after training, and the training curve (-ELBO per series, per iteration)."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    train, test = sinusoids(n_train, rng, omega), sinusoids(n_test, rng, omega)
    torch.manual_seed(seed)
    text = (HERE / "latent_ode.nde").read_text().replace("const L = 4", f"const L = {latent}")
    model = ndec.compile(source=text, name="latent_ode")
    net = LatentODE(model, latent)
    before = {"train": evaluate(net, train, t_enc), "test": evaluate(net, test, t_enc)}
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(iters, 1))
    t, x, mask = (torch.from_numpy(train[k]) for k in ("t", "x", "mask"))
    seen = mask & (t <= t_enc)
    curve = []
    for it in range(iters):
        b = torch.from_numpy(rng.choice(n_train, batch, replace=False))
        loss = -net.elbo(t[b], x[b], mask[b], seen[b]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        curve.append(loss.item())
        if verbose and (it + 1) % 100 == 0:
            print(f"iter {it + 1:5d}: -ELBO {np.mean(curve[-100:]):9.2f} (mean of the last 100 minibatches)")
    after = {"train": evaluate(net, train, t_enc), "test": evaluate(net, test, t_enc)}
    return {"before": before, "after": after, "curve": curve,
            "seconds": time.perf_counter() - start}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    r = main(iters=args.iters, seed=args.seed, verbose=True)
    for when in ("before", "after"):
        for split in ("train", "test"):
            e = r[when][split]
            print(f"{when:6s} {split:5s}: -ELBO {e['neg_elbo']:8.2f}; MSE: reconstruction {e['recon_mse']:.4f} "
                  f"(0: {e['zero_recon_mse']:.4f}), forecast {e['forecast_mse']:.4f} (0: {e['zero_forecast_mse']:.4f}), "
                  f"extrapolation {e['extrap_mse']:.4f} (0: {e['zero_extrap_mse']:.4f})")
    print(f"{r['seconds']:.1f} s")

"""An ODE-Net classifier on scikit-learn's digits: a torch network around an ndec ODE block.

    x (64 pixels) → Linear(64 → d) → h(0) ─ ndec ODE h' = f(h), t ∈ [0, 1] ─ h(1) → Linear(d → 10)

``f`` is a ``d → H → d`` tanh MLP written in the .nde model (``odenet_block.nde``); its weights
are the ndec layer's θ (``layer.theta``, an ``nn.Parameter``) and train with the two torch
linear layers under one Adam optimiser (lr 0.01, cosine decay) and a cross-entropy loss. Every
minibatch is one batched ndec solve: u0 of shape (B, d), one θ shared by the batch, the B
trajectories solved in parallel (tsit5, rtol 1e-4: a classifier needs no more) and
differentiated by the discrete adjoint (the exact gradient of the computed solution).

The data is ``sklearn.datasets.load_digits`` (1797 8×8 images, bundled with scikit-learn: no
download), split 75/25 with a fixed seed. Run from the repository root:

    python python/examples/odenet_digits.py [--epochs N]

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

HERE = Path(__file__).resolve().parent


def block_model(d: int = 16, hidden: int = 32) -> ndec.Model:
    """The ODE block: h' = f(h) with f a d → hidden → d tanh MLP (odenet_block.nde's form)."""
    text = (HERE / "odenet_block.nde").read_text()
    text = text.replace("const D = 16, H = 32", f"const D = {d}, H = {hidden}")
    return ndec.compile(source=text, name="odenet_block")


def digits(seed: int = 0):
    """(x_train, x_test, y_train, y_test): pixels scaled to [0, 1], float64; 75/25 split."""
    from sklearn.datasets import load_digits               # imported here: it is slow to import
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


class ODENet(torch.nn.Module):
    def __init__(self, model: ndec.Model, d: int, classes: int = 10, **solve_options):
        super().__init__()
        self.inp = torch.nn.Linear(64, d, dtype=torch.float64)
        # Save times [0, 1]: the solution at t = 1 is the block's output.
        self.ode = ndec.torch.Layer(model, [0.0, 1.0], **solve_options)
        self.out = torch.nn.Linear(d, classes, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = self.inp(x)                   # (B, d)
        h1 = self.ode(h0)[:, -1, :]        # (B, 2, d) → the state at t = 1
        return self.out(h1)


def build(seed: int = 0, d: int = 16, hidden: int = 32, **solve_options) -> ODENet:
    torch.manual_seed(seed)
    return ODENet(block_model(d, hidden), d, **solve_options)


def accuracy(net: ODENet, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(dim=1) == y).double().mean())


def main(epochs: int = 15, batch: int = 64, lr: float = 1e-2, d: int = 16, hidden: int = 32,
         seed: int = 0, rtol: float = 1e-4, atol: float = 1e-6, verbose: bool = False) -> dict:
    """Trains the ODE-Net and returns its test accuracy (and the training curve)."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    xtr, xte, ytr, yte = digits(seed)
    xtr, xte = torch.from_numpy(xtr), torch.from_numpy(xte)
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    net = build(seed, d, hidden, rtol=rtol, atol=atol)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * -(-len(xtr) // batch)
    # Cosine decay of the learning rate to 0 over the run: no late loss spikes.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(seed)
    initial = accuracy(net, xte, yte)
    losses = []
    for epoch in range(epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for k in range(0, len(xtr), batch):
            idx = perm[k:k + batch]
            loss = torch.nn.functional.cross_entropy(net(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        losses.append(total / len(xtr))
        if verbose:
            print(f"epoch {epoch + 1:3d}: train loss {losses[-1]:.4f}, test accuracy {accuracy(net, xte, yte):.4f}")
    return {
        "initial_test_accuracy": initial,
        "train_accuracy": accuracy(net, xtr, ytr),
        "test_accuracy": accuracy(net, xte, yte),
        "train_loss": losses,
        "params": {"ndec": net.ode.theta.numel(), "torch": sum(p.numel() for n, p in net.named_parameters() if not n.startswith("ode."))},
        "seconds": time.perf_counter() - start,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    r = main(epochs=args.epochs, batch=args.batch, seed=args.seed, verbose=True)
    print(f"test accuracy {r['initial_test_accuracy']:.4f} untrained → {r['test_accuracy']:.4f} "
          f"(train {r['train_accuracy']:.4f}); params: {r['params']['ndec']} in the ODE block, "
          f"{r['params']['torch']} in torch; {r['seconds']:.1f} s")

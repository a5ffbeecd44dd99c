"""Data-parallel training of the ODE-Net (odenet_digits.py) with DistributedDataParallel.

Two CPU processes (``torch.multiprocessing.spawn``, backend gloo, MASTER_ADDR 127.0.0.1 and a
free port) each hold the whole network — torch layers and the ndec ODE block, whose θ is an
``nn.Parameter`` like any other — and take half of every global minibatch. Each rank's loss is
the mean cross-entropy over its half, and DDP all-reduces the gradients and divides by the world
size, so every rank steps with the gradient of the mean loss over the global batch: exactly the
single-process update on the same batches. The demo trains both ways from the same initial
weights on the same batch sequence and compares the final parameters. The optimiser is SGD with
momentum, whose step is proportional to the gradient: Adam's step hardly depends on the
gradient's scale, so it would hide a data-parallel run that summed where it should average.

They agree to rounding, not bit for bit. The scalings agree exactly (a rank's mean over B/2
examples and the global mean over B differ by a factor of 2, as does DDP's division by the
world size), but the sums are not the same sums: single-process training adds the per-example
gradients of the global batch in one order (ndec sums θ's per-trajectory cotangents in batch
order, torch's matrix products sum over the batch in their own blocking), DDP adds each half's
and then the two halves (the all-reduce). The ~1e-16 relative differences pass through the
optimiser's steps: after 5 iterations the parameters differ by ~2e-16 where training moved
them by up to 0.3. The two replicas are bit-identical: the all-reduce gives both the same sum.

Run from the repository root:

    python python/examples/ddp_odenet.py [--iters N] [--batch B]

``main(...)`` returns the measured results; ``python/tests/test_demos.py`` runs it.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import odenet_digits  # noqa: E402  (the network, the data and the ODE block)

WORLD = 2


def batches(n: int, iters: int, batch: int, seed: int) -> list[np.ndarray]:
    """The global minibatches: `iters` draws of `batch` training rows, from `seed`."""
    rng = np.random.default_rng(seed)
    return [rng.choice(n, batch, replace=False) for _ in range(iters)]


def training_set(seed: int):
    xtr, _, ytr, _ = odenet_digits.digits(seed)
    return torch.from_numpy(xtr), torch.from_numpy(ytr)


def network(seed: int):
    torch.set_num_threads(1)
    return odenet_digits.build(seed)          # same seed → same initial weights everywhere


def params_of(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in net.named_parameters()}


def optimizer(params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def train_single(iters: int = 5, batch: int = 64, seed: int = 0, lr: float = 0.5):
    """One process, the whole global batch per step: (final parameters, losses)."""
    x, y = training_set(seed)
    net = network(seed)
    opt = optimizer(net.parameters(), lr)
    losses = []
    for idx in batches(len(x), iters, batch, seed):
        idx = torch.from_numpy(idx)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return params_of(net), losses


def _worker(rank: int, port: int, out: str, x, y, iters: int, batch: int, seed: int, lr: float):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        net = network(seed)
        ddp = torch.nn.parallel.DistributedDataParallel(net)
        opt = optimizer(ddp.parameters(), lr)
        half = batch // WORLD
        losses = []
        for idx in batches(len(x), iters, batch, seed):
            mine = torch.from_numpy(idx[rank * half:(rank + 1) * half])
            loss = torch.nn.functional.cross_entropy(ddp(x[mine]), y[mine])
            opt.zero_grad()
            loss.backward()                   # DDP all-reduces (averages) the gradients here
            opt.step()
            losses.append(loss.item())
        np.savez(Path(out) / f"rank{rank}.npz", losses=np.array(losses), **params_of(net))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_ddp(iters: int = 5, batch: int = 64, seed: int = 0, lr: float = 0.5):
    """Two gloo CPU processes, half of each global batch each: (parameters of rank 0, of rank
    1, each rank's losses)."""
    if batch % WORLD:
        raise ValueError(f"the global batch ({batch}) must split evenly over {WORLD} ranks")
    x, y = training_set(seed)               # loaded here and sent: the workers skip sklearn
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(free_port(), out, x.numpy(), y.numpy(), iters, batch, seed, lr), nprocs=WORLD, join=True)
        ranks = [dict(np.load(Path(out) / f"rank{r}.npz")) for r in range(WORLD)]
    losses = [r.pop("losses") for r in ranks]
    return ranks[0], ranks[1], losses


def main(iters: int = 5, batch: int = 64, seed: int = 0, lr: float = 0.5) -> dict:
    """Trains single-process and with DDP; returns the largest parameter differences."""
    start = time.perf_counter()
    initial = params_of(network(seed))
    single, losses = train_single(iters, batch, seed, lr)
    t_single = time.perf_counter() - start
    r0, r1, ddp_losses = train_ddp(iters, batch, seed, lr)

    def max_diff(a, b):
        return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)

    return {
        # DDP against single-process training, largest |Δ| over all parameters (θ included),
        # and the ndec block's θ alone
        "max_abs_diff": max_diff(single, r0),
        "theta_max_abs_diff": float(np.max(np.abs(single["ode.theta"] - r0["ode.theta"]))),
        "ranks_max_abs_diff": max_diff(r0, r1),           # the two replicas
        "max_abs_change": max_diff(single, initial),      # how far training moved them
        "theta_max_abs_change": float(np.max(np.abs(single["ode.theta"] - initial["ode.theta"]))),
        "losses_single": losses,
        # the mean of the ranks' half-batch losses is the global batch's mean loss
        "losses_ddp": [float(v) for v in (ddp_losses[0] + ddp_losses[1]) / 2],
        "seconds": {"single": t_single, "total": time.perf_counter() - start},
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    r = main(args.iters, args.batch)
    print(f"losses, single process: {' '.join(f'{v:.6f}' for v in r['losses_single'])}")
    print(f"losses, DDP (rank mean): {' '.join(f'{v:.6f}' for v in r['losses_ddp'])}")
    print(f"parameters moved by up to {r['max_abs_change']:.3e}; DDP − single: max |Δ| {r['max_abs_diff']:.3e} "
          f"(θ of the ndec block: {r['theta_max_abs_diff']:.3e}); rank 0 − rank 1: {r['ranks_max_abs_diff']:.3e}")
    print(f"{r['seconds']['single']:.1f} s single process, {r['seconds']['total']:.1f} s in all")

"""ndec models as differentiable PyTorch operations.

``solve(model, ts, theta, u0, **options)`` is differentiable in ``theta`` and ``u0`` (a
``torch.autograd.Function`` whose backward pass is the model's pullback), and ``Layer`` is an
``nn.Module`` that owns θ as a parameter, so an ndec model trains with the rest of a network
(``torch.optim``, ``DistributedDataParallel``).

Solves run on the CPU in float64. Tensors of another floating dtype (float32) are computed in
float64 and results are returned in the input's dtype; tensors on another device are copied
to the CPU and results copied back.
"""

from __future__ import annotations

import numpy as np
import torch

from . import Model as _Model

__all__ = ["solve", "Layer"]


def _to_numpy(x: torch.Tensor, what: str) -> np.ndarray:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"{what} must be a real floating-point tensor, got dtype {x.dtype}")
    return x.detach().to(device="cpu", dtype=torch.float64).contiguous().numpy()


class _Solve(torch.autograd.Function):
    """y = solve(θ, u0); backward: (θ̄, ū0) = pullback(ȳ)."""

    @staticmethod
    def forward(ctx, model, ts, options, grad_enabled, theta, u0):
        th = _to_numpy(theta, "theta")
        u = None if u0 is None else _to_numpy(u0, "u0")
        ref = u0 if u0 is not None else theta
        # Inside forward grad mode is always off: whether the caller records a graph
        # (torch.no_grad, inference_mode) is passed in, so an inference solve is a plain solve.
        wants_grad = grad_enabled and any(ctx.needs_input_grad[4:])
        if wants_grad:
            y, pullback = model.solve_vjp(ts, th, u, **options)
            ctx.pullback = pullback
        else:
            y = model.solve(ts, th, u, **_solve_options(options))
            ctx.pullback = None
        ctx.theta_meta = (theta.dtype, theta.device)
        ctx.u0_meta = None if u0 is None else (u0.dtype, u0.device)
        return torch.from_numpy(y).to(dtype=ref.dtype, device=ref.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, y_bar):
        if ctx.pullback is None:
            return None, None, None, None, None, None
        g_u0, g_theta = ctx.pullback(_to_numpy(y_bar, "the cotangent"))
        dtype, device = ctx.theta_meta
        grad_theta = torch.from_numpy(g_theta).to(dtype=dtype, device=device)
        grad_u0 = None
        if ctx.u0_meta is not None and g_u0 is not None:
            dtype, device = ctx.u0_meta
            grad_u0 = torch.from_numpy(g_u0).to(dtype=dtype, device=device)
        return (
            None,
            None,
            None,
            None,
            grad_theta if ctx.needs_input_grad[4] else None,
            grad_u0 if ctx.needs_input_grad[5] else None,
        )


def _solve_options(options: dict) -> dict:
    """The options of a plain solve: those of ``solve_vjp`` less the gradient's own."""
    return {k: v for k, v in options.items() if k not in _GRADIENT_ONLY}


_GRADIENT_ONLY = ("sensitivity", "checkpoints")


def _check_model(model) -> None:
    if not isinstance(model, _Model):
        raise TypeError(f"model must be an ndec.Model (from ndec.compile), got {type(model).__name__}")


def solve(model, ts, theta=None, u0=None, **options) -> torch.Tensor:
    """Solve ``model`` at the save times ``ts``, differentiably in ``theta`` and ``u0``.

    ``theta``: ``(P,)`` or ``(B, P)`` tensor, or ``None`` for ``model.default_params()`` (then
    not differentiated). ``u0``: ``(n,)``, ``(B, n)`` or ``None`` for the model's initial state
    at θ (then differentiated through θ). Returns ``(len(ts), n)``, or ``(B, len(ts), n)`` when
    either has a batch axis. ``options`` are those of ``Model.solve`` plus ``sensitivity``.
    """
    _check_model(model)
    ts = np.ascontiguousarray(_ts(ts), dtype=np.float64)
    if theta is None:
        theta = torch.from_numpy(model.default_params())
    return _Solve.apply(model, ts, dict(options), torch.is_grad_enabled(), theta, u0)


def _ts(ts):
    if isinstance(ts, torch.Tensor):
        return ts.detach().cpu().to(torch.float64).numpy()
    return ts


class Layer(torch.nn.Module):
    """An ndec model as a layer: ``layer(u0)`` solves from ``u0`` at the fixed save times.

    ``layer.theta`` is an ``nn.Parameter`` initialised from ``model.default_params()``, so the
    model's params and nets train with the rest of the network. ``(n,) → (len(ts), n)``;
    ``(B, n) → (B, len(ts), n)``; ``layer()`` solves from the model's initial state.
    """

    def __init__(self, model, ts, **options):
        super().__init__()
        _check_model(model)
        self.model = model
        # The save times are a float64 NumPy array, not a buffer: `.float()`, `.half()` or
        # `.to(dtype)` on the network would round them (a buffer is cast with the parameters).
        self.ts = np.array(_ts(ts), dtype=np.float64)
        self.ts.flags.writeable = False
        self.options = dict(options)
        self.theta = torch.nn.Parameter(torch.from_numpy(model.default_params()))

    def forward(self, u0: torch.Tensor | None = None) -> torch.Tensor:
        return solve(self.model, self.ts, self.theta, u0, **self.options)

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"model={self.model.name!r}, times={len(self.ts)}, params={self.model.num_params}" + (
            f", {opts}" if opts else ""
        )

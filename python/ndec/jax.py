"""ndec models as differentiable JAX functions.

``solve(model, ts, theta, u0, **options)`` is a ``jax.custom_vjp`` function over a host call
(``jax.pure_callback``): it works under ``jax.jit``, ``jax.grad``/``jax.vjp`` and ``jax.vmap``.
Under ``vmap`` the host sees the whole batch at once (one batched solve on all cores, not a
Python loop). The backward pass is the model's pullback, run on the host.

Computation is in float64; enable ``jax_enable_x64`` for float64 results (otherwise results
come back in JAX's default float dtype). ``ts`` is not differentiated; options are static.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import Model as _Model

__all__ = ["solve"]


class _Static:
    """The model and options of one solve: hashable, so JAX treats them as static."""

    def __init__(self, model, options):
        self.model = model
        self.options = tuple(sorted(options.items()))

    def _key(self):
        return (id(self.model), tuple((k, _hashable(v)) for k, v in self.options))

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return isinstance(other, _Static) and self.model is other.model and self._key() == other._key()

    @property
    def solve_options(self):
        return {k: v for k, v in self.options if k != "sensitivity"}

    @property
    def vjp_options(self):
        return dict(self.options)


def _hashable(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return tuple(np.asarray(v, dtype=float).ravel().tolist())
    return v


def _lead(shape, k):
    """The batch (leading) dims of an array whose last ``k`` dims are the row."""
    return tuple(shape[: len(shape) - k])


def _batch_shape(theta_shape, u0_shape):
    a = _lead(theta_shape, 1)
    b = () if u0_shape is None else _lead(u0_shape, 1)
    return tuple(np.broadcast_shapes(a, b))


def _host_ts(ts):
    """Save times of a host call: vmap may have given them leading dims of size 1 (or a batch
    of identical rows)."""
    ts = np.asarray(ts, dtype=np.float64)
    rows = ts.reshape(-1, ts.shape[-1])
    if not (rows == rows[:1]).all():
        raise ValueError("ndec.jax.solve: ts must be the same for every trajectory of a batch")
    return np.ascontiguousarray(rows[0])


def _flat(x, batch, width):
    """``x`` broadcast to the batch and flattened to ``(B, width)``, or one row when it is not
    batched at all (so the pullback sums its cotangent over the batch)."""
    lead = _lead(x.shape, 1)
    if int(np.prod(lead, dtype=np.int64)) == 1 and len(batch) > 0:
        return np.ascontiguousarray(x.reshape(width))
    if not batch:
        return np.ascontiguousarray(x.reshape(width))
    full = np.broadcast_to(x, batch + (width,))
    return np.ascontiguousarray(full.reshape(-1, width))


def _sum_to(g, shape, batch):
    """A cotangent computed for the full batch, summed back to the input's shape."""
    g = np.asarray(g, dtype=np.float64)
    width = shape[-1]
    if g.ndim == 1:
        return g.reshape(shape)
    g = g.reshape(batch + (width,))
    lead = _lead(shape, 1)
    pad = (1,) * (len(batch) - len(lead)) + tuple(lead)
    axes = tuple(i for i, (have, want) in enumerate(zip(batch, pad)) if want == 1 and have != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _host_solve(static, ts, theta, u0):
    m = static.model
    batch = _batch_shape(theta.shape, None if u0 is None else u0.shape)
    th = _flat(np.asarray(theta, np.float64), batch, m.num_params)
    u = None if u0 is None else _flat(np.asarray(u0, np.float64), batch, len(m.states))
    y = m.solve(_host_ts(ts), th, u, **static.solve_options)
    return y.reshape(batch + y.shape[-2:])


def _host_vjp(static, ts, theta, u0, y_bar):
    m = static.model
    batch = _batch_shape(theta.shape, None if u0 is None else u0.shape)
    th = _flat(np.asarray(theta, np.float64), batch, m.num_params)
    u = None if u0 is None else _flat(np.asarray(u0, np.float64), batch, len(m.states))
    _, pullback = m.solve_vjp(_host_ts(ts), th, u, **static.vjp_options)
    y_bar = np.asarray(y_bar, np.float64)
    g_u0, g_theta = pullback(y_bar.reshape((-1,) + y_bar.shape[-2:]) if batch else y_bar)
    g_theta = _sum_to(g_theta, theta.shape, batch)
    if u0 is None:
        return (g_theta,)
    return g_theta, _sum_to(g_u0, u0.shape, batch)


def _dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _out_shape(static, ts, theta, u0):
    batch = _batch_shape(theta.shape, None if u0 is None else u0.shape)
    return jax.ShapeDtypeStruct(batch + (ts.shape[-1], len(static.model.states)), _dtype())


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _solve(static, ts, theta, u0):
    return _call_solve(static, ts, theta, u0)


def _call_solve(static, ts, theta, u0):
    def cb(ts, theta, u0=None):
        return _host_solve(static, ts, theta, u0).astype(_dtype())

    args = (ts, theta) if u0 is None else (ts, theta, u0)
    return jax.pure_callback(cb, _out_shape(static, ts, theta, u0), *args, vmap_method="expand_dims")


def _solve_fwd(static, ts, theta, u0):
    return _call_solve(static, ts, theta, u0), (ts, theta, u0)


def _solve_bwd(static, res, y_bar):
    ts, theta, u0 = res
    shapes = [jax.ShapeDtypeStruct(theta.shape, _dtype())]
    if u0 is not None:
        shapes.append(jax.ShapeDtypeStruct(u0.shape, _dtype()))

    def cb(ts, theta, y_bar, u0=None):
        return tuple(g.astype(_dtype()) for g in _host_vjp(static, ts, theta, u0, y_bar))

    args = (ts, theta, y_bar) if u0 is None else (ts, theta, y_bar, u0)
    grads = jax.pure_callback(cb, tuple(shapes), *args, vmap_method="expand_dims")
    g_u0 = None if u0 is None else grads[1]
    return jnp.zeros_like(ts), grads[0], g_u0


_solve.defvjp(_solve_fwd, _solve_bwd)


def solve(model, ts, theta=None, u0=None, **options):
    """Solve ``model`` at the save times ``ts``; differentiable in ``theta`` and ``u0``.

    ``theta``: ``(P,)`` (``None``: the model's defaults) and ``u0``: ``(n,)`` or ``None`` (the
    model's initial state at θ); either may carry leading batch axes, explicitly or through
    ``jax.vmap``. Returns ``batch + (len(ts), n)``. ``options`` are those of ``Model.solve``
    plus ``sensitivity``, as static Python values.
    """
    if not isinstance(model, _Model):
        raise TypeError(f"model must be an ndec.Model (from ndec.compile), got {type(model).__name__}")
    static = _Static(model, options)
    ts = jnp.asarray(ts, dtype=_dtype())
    if ts.ndim != 1:
        raise ValueError(f"ts must be one-dimensional, got shape {ts.shape}")
    theta = jnp.asarray(model.default_params() if theta is None else theta, dtype=_dtype())
    if theta.ndim < 1 or theta.shape[-1] != model.num_params:
        raise ValueError(
            f"theta must have shape (..., {model.num_params}) for this model, got {theta.shape}"
        )
    if u0 is not None:
        u0 = jnp.asarray(u0, dtype=_dtype())
        if u0.ndim < 1 or u0.shape[-1] != len(model.states):
            raise ValueError(f"u0 must have shape (..., {len(model.states)}) for this model, got {u0.shape}")
    return _solve(static, ts, theta, u0)

"""ndec models as differentiable JAX functions.

``solve(model, ts, theta, u0, **options)`` is a ``jax.custom_vjp`` function over a host call
(``jax.pure_callback``): it works under ``jax.jit``, ``jax.grad``/``jax.vjp`` and ``jax.vmap``.
Under ``vmap`` the host sees the whole batch at once (one batched solve on all cores, not a
Python loop). The backward pass is the model's pullback, run on the host.

Computation is in float64; enable ``jax_enable_x64`` for float64 results (otherwise results
come back in JAX's default float dtype). ``ts`` is not differentiated; options are static.
"""

from __future__ import annotations

import collections
import functools
import itertools
import threading

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
        return {k: v for k, v in self.options if k not in ("sensitivity", "checkpoints")}

    @property
    def vjp_options(self):
        return dict(self.options)


def _hashable(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return tuple(np.asarray(v, dtype=float).ravel().tolist())
    return v


def _host_ts(ts):
    """Save times of a host call: vmap may have given them leading dims (of size 1, or a batch
    of identical rows)."""
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim == 1:
        return ts
    rows = ts.reshape(-1, ts.shape[-1])
    if not (rows == rows[:1]).all():
        raise ValueError("ndec.jax.solve: ts must be the same for every trajectory of a batch")
    return np.ascontiguousarray(rows[0])


class _Batch:
    """How a host call's arrays are batched. Each argument arrives as ``vmap dims + its own
    (declared) shape``: the leading dims ``vmap`` added (size 1 where that argument is not
    mapped), then the user's explicit batch axes, then the row. The batch of the call is the
    vmap dims ``V`` followed by the user's batch dims ``U`` (NumPy broadcasting within each)."""

    def __init__(self, args, extra=()):
        # args: (array, declared shape) for theta and (when given) u0; extra: other operands of
        # the call (the cotangent) whose vmap dims count too: under jax.jacrev only the
        # cotangent is mapped.
        self.k = args[0][0].ndim - len(args[0][1])
        vmapped = [a.shape[: self.k] for a, _ in args] + [np.shape(e)[: self.k] for e in extra]
        users = [tuple(d[:-1]) for _, d in args]
        # (Under jit without vmap or batch axes every shape here is (): skip the broadcasting.)
        self.V = tuple(np.broadcast_shapes(*vmapped)) if any(vmapped) else ()
        self.U = tuple(np.broadcast_shapes(*users)) if any(users) else ()

    @property
    def shape(self):
        return self.V + self.U

    def shared(self, decl):
        """An argument that is one row for the whole call (no vmap, no batch axis of its own):
        the facade shares it, and sums its cotangent over the batch."""
        return not self.V and len(decl) == 1

    def rows(self, a, decl):
        """``a`` broadcast to the call's batch, as ``(B, width)`` rows (or one row when shared)."""
        a = np.asarray(a, dtype=np.float64)
        width = decl[-1]
        if self.shared(decl):
            return np.ascontiguousarray(a.reshape(width))
        user = tuple(decl[:-1])
        a = a.reshape(a.shape[: self.k] + (1,) * (len(self.U) - len(user)) + user + (width,))
        full = np.broadcast_to(a, self.shape + (width,))
        return np.ascontiguousarray(full.reshape(-1, width))

    def cotangent(self, g, decl):
        """A cotangent from the facade, back in the argument's shape: per vmap element, and
        summed over the user batch axes the argument did not have."""
        g = np.asarray(g, dtype=np.float64)
        if self.shared(decl):
            return g.reshape(decl)
        g = g.reshape(self.shape + (decl[-1],))
        user = tuple(decl[:-1])
        pad = (1,) * (len(self.U) - len(user)) + user
        axes = tuple(len(self.V) + i for i, (have, want) in enumerate(zip(self.U, pad)) if want == 1 and have != 1)
        if axes:
            g = g.sum(axis=axes, keepdims=True)
        return g.reshape(self.V + tuple(decl))


def _host_solve(static, decl, ts, theta, u0):
    m = static.model
    args = [(theta, decl[0])] + ([] if u0 is None else [(u0, decl[1])])
    batch = _Batch(args)
    th = batch.rows(theta, decl[0])
    u = None if u0 is None else batch.rows(u0, decl[1])
    y = m.solve(_host_ts(ts), th, u, **static.solve_options)
    return y.reshape(batch.shape + y.shape[-2:])


class _Pullbacks:
    """Pullbacks of recent forward passes, by token. The forward pass of a differentiated solve
    keeps its pullback here (the discrete adjoint's holds the recorded steps) and hands JAX a
    token as a residual, so the backward pass reverses that solve instead of solving again.
    Bounded: a token whose entry is gone (or whose batch layout differs, as under ``jacrev``)
    makes the backward pass solve again — the same result."""

    def __init__(self, keep=16):
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()
        self._next = itertools.count(1)
        self._keep = keep

    def put(self, pullback, shape) -> int:
        with self._lock:
            token = next(self._next) % (2**31 - 1) or 1
            self._entries[token] = (pullback, shape)
            while len(self._entries) > self._keep:
                self._entries.popitem(last=False)
            return token

    def get(self, token, shape):
        with self._lock:
            entry = self._entries.get(token)
        return entry[0] if entry is not None and entry[1] == shape else None


_PULLBACKS = _Pullbacks()


def _host_solve_vjp(static, decl, ts, theta, u0):
    """The forward pass of a differentiated solve: y, and a token for its pullback."""
    m = static.model
    args = [(theta, decl[0])] + ([] if u0 is None else [(u0, decl[1])])
    batch = _Batch(args)
    th = batch.rows(theta, decl[0])
    u = None if u0 is None else batch.rows(u0, decl[1])
    y, pullback = m.solve_vjp(_host_ts(ts), th, u, **static.vjp_options)
    token = _PULLBACKS.put(pullback, batch.shape)
    return y.reshape(batch.shape + y.shape[-2:]), np.full(batch.V, token, dtype=_token_dtype())


def _host_vjp(static, decl, ts, theta, u0, y_bar, token=None):
    m = static.model
    args = [(theta, decl[0])] + ([] if u0 is None else [(u0, decl[1])])
    batch = _Batch(args, extra=(y_bar,))
    pullback = None
    if token is not None and np.size(token) > 0:
        pullback = _PULLBACKS.get(int(np.ravel(token)[0]), batch.shape)
    if pullback is None:
        # Cotangents go back per vmap element: under vmap nothing is shared.
        th = batch.rows(theta, decl[0])
        u = None if u0 is None else batch.rows(u0, decl[1])
        _, pullback = m.solve_vjp(_host_ts(ts), th, u, **static.vjp_options)
    # An unbatched cotangent arrives with leading dims of size 1: broadcast it.
    y_bar = np.asarray(y_bar, np.float64)
    y_bar = np.broadcast_to(y_bar, batch.shape + y_bar.shape[-2:])
    flat = y_bar.reshape((-1,) + y_bar.shape[-2:]) if batch.shape else y_bar
    g_u0, g_theta = pullback(np.ascontiguousarray(flat))
    g_theta = batch.cotangent(g_theta, decl[0])
    if u0 is None:
        return (g_theta,)
    return g_theta, batch.cotangent(g_u0, decl[1])


def _token_dtype():
    return np.int64 if jax.config.jax_enable_x64 else np.int32


def _dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _out_shape(static, ts, theta, u0):
    users = [theta.shape[:-1]] + ([] if u0 is None else [u0.shape[:-1]])
    batch = tuple(np.broadcast_shapes(*users))
    return jax.ShapeDtypeStruct(batch + (ts.shape[-1], len(static.model.states)), _dtype())


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _solve(static, ts, theta, u0):
    return _call_solve(static, ts, theta, u0)


def _call_solve(static, ts, theta, u0):
    decl = (theta.shape, None if u0 is None else u0.shape)

    def cb(ts, theta, u0=None):
        return _host_solve(static, decl, ts, theta, u0).astype(_dtype())

    args = (ts, theta) if u0 is None else (ts, theta, u0)
    return jax.pure_callback(cb, _out_shape(static, ts, theta, u0), *args, vmap_method="expand_dims")


def _solve_fwd(static, ts, theta, u0):
    decl = (theta.shape, None if u0 is None else u0.shape)

    def cb(ts, theta, u0=None):
        y, token = _host_solve_vjp(static, decl, ts, theta, u0)
        return y.astype(_dtype()), token

    args = (ts, theta) if u0 is None else (ts, theta, u0)
    shapes = (_out_shape(static, ts, theta, u0), jax.ShapeDtypeStruct((), _token_dtype()))
    y, token = jax.pure_callback(cb, shapes, *args, vmap_method="expand_dims")
    return y, (ts, theta, u0, token)


def _solve_bwd(static, res, y_bar):
    ts, theta, u0, token = res
    shapes = [jax.ShapeDtypeStruct(theta.shape, _dtype())]
    if u0 is not None:
        shapes.append(jax.ShapeDtypeStruct(u0.shape, _dtype()))

    decl = (theta.shape, None if u0 is None else u0.shape)

    def cb(ts, theta, y_bar, token, u0=None):
        return tuple(g.astype(_dtype()) for g in _host_vjp(static, decl, ts, theta, u0, y_bar, token))

    args = (ts, theta, y_bar, token) if u0 is None else (ts, theta, y_bar, token, u0)
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

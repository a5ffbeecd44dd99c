"""ndec.jax: gradients through the custom_vjp against independent diffrax / JAX references on
four models (a UDE with an MLP, a stiff model, an SDE on a fixed Brownian path, a DDE), and the
transformations: jit, grad, vjp, jacrev, vmap as one batched host call (nested, with explicit
batch axes, of grad and under grad), and float32 without jax_enable_x64."""

from __future__ import annotations

import numpy as np
import pytest

import jax  # noqa: E402
import diffrax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import ndec  # noqa: E402
import ndec.jax  # noqa: E402
import references as R  # noqa: E402
from conftest import LV, NEURAL, rel  # noqa: E402


def ndec_grad(m, ts, theta, u0, w, **options):
    """(g_theta, g_u0, y) of sum(w * y) through ndec.jax.solve, under jax.grad."""

    def loss(th, u):
        y = ndec.jax.solve(m, ts, th, u, **options)
        return jnp.sum(y * w), y

    (g_theta, g_u0), y = jax.grad(loss, argnums=(0, 1), has_aux=True)(jnp.asarray(theta), jnp.asarray(u0))
    assert y.dtype == jnp.float64
    return np.asarray(g_theta), np.asarray(g_u0), np.asarray(y)


def diffeqsolve(f, solver, t1, y0, args, save, rtol=1e-12, atol=1e-12, dt0=None):
    """diffrax from 0 to t1, stepping onto every save time (the interpolants are not what is
    tested here)."""
    save = jnp.asarray(save)
    controller = diffrax.ClipStepSizeController(diffrax.PIDController(rtol=rtol, atol=atol), step_ts=save)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(f), solver, 0.0, t1, dt0, y0, args=args, saveat=diffrax.SaveAt(ts=save),
        stepsize_controller=controller, max_steps=100_000,
    )
    return sol.ys


def reference_grad(loss, theta, u0):
    """(g_theta, g_u0, y) of a JAX loss returning (value, y), by jax.grad under jit."""
    (g_theta, g_u0), y = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(jnp.asarray(theta), jnp.asarray(u0))
    return np.asarray(g_theta), np.asarray(g_u0), np.asarray(y)


# --- (a) a UDE: Lotka–Volterra with an MLP correction ------------------------------------------


@pytest.fixture(scope="module")
def ude():
    return ndec.compile(source=R.UDE, name="ude")


@pytest.fixture(scope="module")
def ude_reference(ude):
    layers = ude.param_layout["nn"]
    ia, idd = ude.param_layout["a"][0], ude.param_layout["d"][0]

    def f(t, u, theta):
        # The net's weights from θ by param_layout: each layer's weight row-major OUT×IN, then bias.
        h = u
        for i, (wo, (n_out, n_in), bo, _) in enumerate(layers):
            h = theta[wo : wo + n_out * n_in].reshape(n_out, n_in) @ h + theta[bo : bo + n_out]
            if i < len(layers) - 1:
                h = jnp.tanh(h)
        x, y = u[0], u[1]
        return jnp.stack([theta[ia] * x - 0.9 * x * y + h[0], 0.8 * x * y - theta[idd] * y + h[1]])

    w = R.weights((len(R.UDE_TS), 2), 0)

    def loss(theta, u0):
        ys = jnp.concatenate([u0[None], diffeqsolve(f, diffrax.Tsit5(), R.UDE_TS[-1], u0, theta, R.UDE_TS[1:])])
        return jnp.sum(ys * w), ys

    return (*reference_grad(loss, ude.default_params(), R.UDE_U0), w)


@pytest.mark.parametrize("method, sensitivity", [("tsit5", "auto"), ("tsit5", "forward"), ("dopri5", "discrete")])
def test_ude_gradient_matches_diffrax(ude, ude_reference, method, sensitivity):
    g_theta_ref, g_u0_ref, y_ref, w = ude_reference
    g_theta, g_u0, y = ndec_grad(
        ude, R.UDE_TS, ude.default_params(), R.UDE_U0, w, method=method, rtol=1e-12, atol=1e-12, sensitivity=sensitivity
    )
    assert rel(y, y_ref) < 1e-10
    assert rel(g_theta, g_theta_ref) < 1e-6
    assert rel(g_u0, g_u0_ref) < 1e-6
    assert np.abs(g_theta_ref[2:]).max() > 0.05 * np.abs(g_theta_ref[:2]).max()


# --- (b) stiff: Robertson, against diffrax's Kvaerno5 (ESDIRK, order 5) ------------------------


def test_stiff_robertson_gradient_matches_kvaerno5():
    """The reference gradient is that of the exact solution, by forward sensitivities
    S = ∂y/∂(θ, u0): S' = f_y S + [f_θ, 0], S(0) = [0, I], with f_y and f_θ by jax.jacfwd, all
    integrated by Kvaerno5 at rtol 1e-12. (jax.grad through Kvaerno5 gives the same to 1e-9 but
    takes twice as long to compile.)"""
    m = ndec.compile(source=R.ROBER, name="rober")
    theta = m.default_params()
    w = R.weights((len(R.ROBER_TS), 3), 1, R.ROBER_SCALE)

    def f(y, lk):
        k1, k2, k3 = jnp.exp(lk)
        return jnp.stack([-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k2 * y[1] ** 2 - k3 * y[1] * y[2], k2 * y[1] ** 2])

    def augmented(t, z, lk):
        y, s = z[:3], z[3:].reshape(3, 6)
        fy, fp = jax.jacfwd(f, argnums=(0, 1))(y, lk)
        return jnp.concatenate([f(y, lk), (fy @ s + jnp.concatenate([fp, jnp.zeros((3, 3))], 1)).ravel()])

    @jax.jit
    def reference(lk, u0):
        z0 = jnp.concatenate([u0, jnp.hstack([jnp.zeros((3, 3)), jnp.eye(3)]).ravel()])
        zs = diffeqsolve(augmented, diffrax.Kvaerno5(), R.ROBER_TS[-1], z0, lk, R.ROBER_TS, atol=1e-14, dt0=1e-6)
        g = jnp.einsum("ti,tij->j", w, zs[:, 3:].reshape(-1, 3, 6))
        return g[:3], g[3:], zs[:, :3]

    g_theta_ref, g_u0_ref, y_ref = (np.asarray(a) for a in reference(jnp.asarray(theta), jnp.asarray(R.ROBER_U0)))
    for sensitivity in ["auto", "forward"]:
        g_theta, g_u0, y = ndec_grad(
            m, R.ROBER_TS, theta, R.ROBER_U0, w, method="rodas5", rtol=1e-12, atol=1e-14, sensitivity=sensitivity
        )
        assert rel(y, y_ref) < 1e-10
        # Entry by entry: the rates span 12 orders of magnitude, the gradients do not.
        assert R.rel_each(g_theta, g_theta_ref) < 1e-6
        assert R.rel_each(g_u0, g_u0_ref) < 1e-6


# --- (c) an SDE on a fixed Brownian path ------------------------------------------------------


def sde_path_jax(theta, u0, dw, method):
    """Euler–Maruyama (Itô) or reversible Heun (Stratonovich drift f − ½ s_i² u_i) with the
    given increments, as a lax.scan."""
    a, b, c, d, s1, s2 = theta[0], theta[1], theta[2], theta[3], theta[4], theta[5]
    s = jnp.stack([s1, s2])
    h = R.SDE_DT

    def f_ito(u):
        return jnp.stack([a * u[0] - b * u[0] * u[1], c * u[0] * u[1] - d * u[1]])

    def f_strat(u):
        return f_ito(u) - 0.5 * s**2 * u

    if method == "euler_maruyama":

        def step(u, dwk):
            u = u + f_ito(u) * h + s * u * dwk
            return u, u

        _, ys = jax.lax.scan(step, u0, dw)
    else:

        def step(carry, dwk):
            u, u_hat = carry
            u_hat_next = 2 * u - u_hat + f_strat(u_hat) * h + s * u_hat * dwk
            u = u + 0.5 * (f_strat(u_hat) + f_strat(u_hat_next)) * h + 0.5 * s * (u_hat + u_hat_next) * dwk
            return (u, u_hat_next), u

        _, ys = jax.lax.scan(step, (u0, u0), dw)
    return jnp.concatenate([u0[None], ys])


@pytest.mark.parametrize("method, sensitivities", [("euler_maruyama", ["auto", "discrete"]),
                                                  ("reversible_heun", ["discrete", "reversible"])])
def test_sde_gradient_on_the_same_brownian_path(method, sensitivities):
    m = ndec.compile(source=R.SDE, name="sde")
    theta = m.default_params()
    opts = dict(dt=R.SDE_DT, seed=R.SDE_SEED)
    # ndec's increments, read back from its Euler–Maruyama path saved at every step.
    dw = R.sde_increments(m.solve(R.SDE_TS, theta, R.SDE_U0, method="euler_maruyama", **opts), theta)
    assert 0.7 < dw.std() / np.sqrt(R.SDE_DT) < 1.3
    w = R.weights((len(R.SDE_TS), 2), 3)

    def loss(th, u):
        ys = sde_path_jax(th, u, jnp.asarray(dw), method)
        return jnp.sum(ys * w), ys

    g_theta_ref, g_u0_ref, y_ref = reference_grad(loss, theta, R.SDE_U0)
    for sensitivity in sensitivities:
        g_theta, g_u0, y = ndec_grad(m, R.SDE_TS, theta, R.SDE_U0, w, method=method, sensitivity=sensitivity, **opts)
        assert rel(y, y_ref) < 1e-13
        assert R.rel_each(g_theta, g_theta_ref) < 1e-11
        assert R.rel_each(g_u0, g_u0_ref) < 1e-11


# --- (d) a DDE by the method of steps ---------------------------------------------------------


def test_dde_gradient_matches_the_method_of_steps():
    m = ndec.compile(source=R.DDE, name="dde")
    theta = m.default_params()
    w = R.weights((len(R.DDE_TS), 1), 5)
    J = R.DDE_PIECES

    def f(s, ys, th):
        k, a, c = th[0], th[1], th[2]
        lag = jnp.concatenate([(c + 0.5 * (s - 1))[None], ys[:-1]])
        return -k * lag / (1 + lag**2) + a * ys

    def loss(th, u0):
        # Piece j solves the copies y_i(s) = x(s + i) for s in [0, 1] jointly, from y_i(0) =
        # x(i) (known for i <= j; the copies above j start anywhere and are not read: y_i only
        # reads y_{i-1}). One system of J copies for every piece, so one compiled solve.
        def piece(starts, j):
            ys = diffeqsolve(f, diffrax.Tsit5(), 1.0, starts, th, R.DDE_OFFSETS)
            col = ys[:, j]
            return starts.at[jnp.minimum(j + 1, J - 1)].set(jnp.where(j + 1 < J, col[-1], starts[J - 1])), col

        starts = jnp.zeros(J).at[0].set(u0[0])
        _, cols = jax.lax.scan(piece, starts, jnp.arange(J))
        ys = jnp.concatenate([u0, cols.ravel()])[:, None]
        return jnp.sum(ys * w), ys

    g_theta_ref, g_u0_ref, y_ref = reference_grad(loss, theta, R.DDE_U0)
    for method, sensitivity in [("tsit5", "discrete"), ("tsit5", "forward"), ("rodas5", "auto")]:
        g_theta, g_u0, y = ndec_grad(
            m, R.DDE_TS, theta, R.DDE_U0, w, method=method, rtol=1e-12, atol=1e-12, sensitivity=sensitivity
        )
        assert rel(y, y_ref) < 1e-10
        assert R.rel_each(g_theta, g_theta_ref) < 1e-6
        assert R.rel_each(g_u0, g_u0_ref) < 1e-6


# --- the transformations ----------------------------------------------------------------------

TS = np.array([0.0, 0.5, 1.0, 2.0])


@pytest.fixture(scope="module")
def neural():
    return ndec.compile(source=NEURAL, name="neural")


@pytest.fixture(scope="module")
def lv():
    return ndec.compile(source=LV, name="lv")


@pytest.fixture
def host_calls(monkeypatch):
    """Every host call of ndec.jax, with the shapes it received (the callbacks look the
    module's functions up when they run)."""
    calls = []
    solve, solve_vjp, vjp = ndec.jax._host_solve, ndec.jax._host_solve_vjp, ndec.jax._host_vjp

    def counted_solve(static, decl, ts, theta, u0):
        calls.append(("solve", np.shape(theta), None if u0 is None else np.shape(u0)))
        return solve(static, decl, ts, theta, u0)

    # The forward pass of a differentiated solve (it keeps the pullback for the backward pass).
    def counted_solve_vjp(static, decl, ts, theta, u0):
        calls.append(("solve", np.shape(theta), None if u0 is None else np.shape(u0)))
        return solve_vjp(static, decl, ts, theta, u0)

    def counted_vjp(static, decl, ts, theta, u0, y_bar, token=None):
        calls.append(("vjp", np.shape(theta), None if u0 is None else np.shape(u0), np.shape(y_bar)))
        return vjp(static, decl, ts, theta, u0, y_bar, token)

    monkeypatch.setattr(ndec.jax, "_host_solve", counted_solve)
    monkeypatch.setattr(ndec.jax, "_host_solve_vjp", counted_solve_vjp)
    monkeypatch.setattr(ndec.jax, "_host_vjp", counted_vjp)
    return calls


def test_jit_grad_vjp_equal_the_numpy_api(neural, host_calls):
    theta, u0 = neural.default_params(), np.array([0.8, -0.3])
    y_np, pullback = neural.solve_vjp(TS, theta, u0)
    y_eager = ndec.jax.solve(neural, TS, theta, u0)
    y_jit = jax.jit(lambda th, u: ndec.jax.solve(neural, TS, th, u))(theta, u0)
    assert isinstance(y_jit, jax.Array) and y_jit.dtype == jnp.float64 and y_jit.shape == (4, 2)
    np.testing.assert_array_equal(y_eager, y_np)
    np.testing.assert_array_equal(y_jit, y_np)

    ybar = R.weights((4, 2), 10)
    g_u0, g_theta = pullback(ybar)
    y, vjp = jax.vjp(lambda th, u: ndec.jax.solve(neural, TS, th, u), jnp.asarray(theta), jnp.asarray(u0))
    gt, gu = vjp(jnp.asarray(ybar))
    np.testing.assert_array_equal(gt, g_theta)
    np.testing.assert_array_equal(gu, g_u0)
    # The pullback twice: linear in the cotangent.
    gt2, _ = vjp(jnp.asarray(2 * ybar))
    np.testing.assert_allclose(gt2, 2 * g_theta, rtol=1e-13, atol=1e-15)

    grad = jax.jit(jax.grad(lambda th, u: jnp.sum(ndec.jax.solve(neural, TS, th, u) * ybar), argnums=(0, 1)))
    gt, gu = grad(theta, u0)
    np.testing.assert_array_equal(gt, g_theta)
    np.testing.assert_array_equal(gu, g_u0)
    # Save times traced too, and options that are lists (static, hashed by value).
    y_ts = jax.jit(lambda t, th: ndec.jax.solve(neural, t, th, u0, atol=[1e-8, 1e-9]))(jnp.asarray(TS), theta)
    np.testing.assert_array_equal(y_ts, neural.solve(TS, theta, u0, atol=[1e-8, 1e-9]))
    # Every host call was one unbatched solve or pullback.
    assert {c[0] for c in host_calls} == {"solve", "vjp"}
    assert all(c[1] == (neural.num_params,) for c in host_calls)

    # No u0: the initial state is differentiated through θ, as the NumPy pullback does.
    _, pb = neural.solve_vjp(TS, theta)
    g = jax.grad(lambda th: jnp.sum(ndec.jax.solve(neural, TS, th) * ybar))(theta)
    np.testing.assert_array_equal(g, pb(ybar)[1])


def test_jacrev(lv):
    theta = jnp.asarray(lv.default_params())
    jac = jax.jacrev(lambda th: ndec.jax.solve(lv, TS, th))(theta)
    assert jac.shape == (4, 2, 4)
    _, pb = lv.solve_vjp(TS, np.asarray(theta))
    for i in range(4):
        for j in range(2):
            e = np.zeros((4, 2))
            e[i, j] = 1
            np.testing.assert_array_equal(jac[i, j], pb(e)[1])


def test_vmap_is_one_batched_host_call(neural, host_calls):
    rng = np.random.default_rng(11)
    B, P = 6, neural.num_params
    thetas = neural.default_params() * (1 + 0.05 * rng.standard_normal((B, P)))
    u0s = rng.standard_normal((B, 2))
    u0 = np.array([0.8, -0.3])

    y = jax.vmap(lambda th: ndec.jax.solve(neural, TS, th, u0))(thetas)
    assert y.shape == (B, 4, 2)
    assert host_calls == [("solve", (B, P), (1, 2))]
    for b in range(B):
        np.testing.assert_array_equal(y[b], neural.solve(TS, thetas[b], u0))

    host_calls.clear()
    y = jax.jit(jax.vmap(lambda th, u: ndec.jax.solve(neural, TS, th, u)))(thetas, u0s)
    assert len(host_calls) == 1 and host_calls[0][1:] == ((B, P), (B, 2))
    np.testing.assert_array_equal(y, neural.solve(TS, thetas, u0s))

    host_calls.clear()
    y = jax.vmap(lambda u: ndec.jax.solve(neural, TS, None, u))(u0s)
    assert len(host_calls) == 1
    for b in range(B):
        np.testing.assert_array_equal(y[b], neural.solve(TS, None, u0s[b]))


def test_vmap_of_grad_gives_per_example_gradients_in_one_call(neural, host_calls):
    rng = np.random.default_rng(12)
    B, P = 5, neural.num_params
    thetas = neural.default_params() * (1 + 0.05 * rng.standard_normal((B, P)))
    u0s = rng.standard_normal((B, 2))
    ybars = rng.standard_normal((B, 4, 2))

    def loss(th, u, ybar):
        return jnp.sum(ndec.jax.solve(neural, TS, th, u) * ybar)

    gt, gu = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1))))(thetas, u0s, ybars)
    assert gt.shape == (B, P) and gu.shape == (B, 2)
    # One batched pullback (under jit the unused forward solve is dropped).
    vjps = [c for c in host_calls if c[0] == "vjp"]
    assert vjps == [("vjp", (B, P), (B, 2), (B, 4, 2))]
    assert all(c[1] == (B, P) for c in host_calls) and len(host_calls) <= 2
    for b in range(B):
        g_u0, g_theta = neural.solve_vjp(TS, thetas[b], u0s[b])[1](ybars[b])
        np.testing.assert_array_equal(gt[b], g_theta)
        np.testing.assert_array_equal(gu[b], g_u0)

    # θ shared, u0 mapped: per-example θ gradients too (vmap of grad).
    gt = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(thetas[0], u0s, ybars)
    assert gt.shape == (B, P)
    for b in range(B):
        np.testing.assert_array_equal(gt[b], neural.solve_vjp(TS, thetas[0], u0s[b])[1](ybars[b])[1])


def test_grad_of_vmap_sums_a_shared_theta(neural, host_calls):
    rng = np.random.default_rng(13)
    B = 7
    theta = neural.default_params()
    u0s = rng.standard_normal((B, 2))
    ybars = rng.standard_normal((B, 4, 2))

    def loss(th, us):
        return jnp.sum(jax.vmap(lambda u: ndec.jax.solve(neural, TS, th, u))(us) * ybars)

    gt, gu = jax.grad(loss, argnums=(0, 1))(theta, u0s)
    assert [c[0] for c in host_calls] == ["solve", "vjp"]
    g_u0, g_theta = neural.solve_vjp(TS, theta, u0s)[1](ybars)  # one batched pullback, θ summed
    np.testing.assert_allclose(gt, g_theta, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(gu, g_u0)


def test_nested_vmap_and_explicit_batch_axes(neural, host_calls):
    rng = np.random.default_rng(14)
    P = neural.num_params
    A, B, C = 3, 4, 2
    thetas = neural.default_params() * (1 + 0.05 * rng.standard_normal((A, P)))
    u0s = rng.standard_normal((B, 2))

    # vmap over θ outside, over u0 inside: (A, B, T, n) in one host call.
    f = jax.vmap(lambda th: jax.vmap(lambda u: ndec.jax.solve(neural, TS, th, u))(u0s))
    y = f(thetas)
    assert y.shape == (A, B, 4, 2)
    assert len(host_calls) == 1 and host_calls[0][0] == "solve"
    for a in range(A):
        for b in range(B):
            np.testing.assert_array_equal(y[a, b], neural.solve(TS, thetas[a], u0s[b]))

    # An explicit batch axis of u0 (B, n) inside a vmap over θ: (A, B, T, n).
    host_calls.clear()
    y2 = jax.vmap(lambda th: ndec.jax.solve(neural, TS, th, u0s))(thetas)
    assert y2.shape == (A, B, 4, 2) and len(host_calls) == 1
    np.testing.assert_array_equal(y2, y)

    # An explicit batch axis of θ (C, P) inside a vmap over u0, and its gradients.
    th_c = thetas[:C]
    ybars = rng.standard_normal((B, C, 4, 2))

    def loss(th, us):
        return jnp.sum(jax.vmap(lambda u: ndec.jax.solve(neural, TS, th, u))(us) * ybars)

    host_calls.clear()
    gt, gu = jax.grad(loss, argnums=(0, 1))(th_c, u0s)
    assert gt.shape == (C, P) and gu.shape == (B, 2)
    assert [c[0] for c in host_calls] == ["solve", "vjp"]
    gt_ref, gu_ref = np.zeros((C, P)), np.zeros((B, 2))
    for b in range(B):
        for c in range(C):
            g_u0, g_theta = neural.solve_vjp(TS, th_c[c], u0s[b])[1](ybars[b, c])
            gt_ref[c] += g_theta
            gu_ref[b] += g_u0
    np.testing.assert_allclose(gt, gt_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gu, gu_ref, rtol=1e-12, atol=1e-14)


def test_float32_without_x64(lv):
    theta = lv.default_params()
    with jax.enable_x64(False):
        y = ndec.jax.solve(lv, TS, theta)
        assert y.dtype == jnp.float32
        g = jax.grad(lambda th: jnp.sum(ndec.jax.solve(lv, TS, th) ** 2))(jnp.asarray(theta, jnp.float32))
        assert g.dtype == jnp.float32
        yj = jax.jit(lambda th: ndec.jax.solve(lv, TS, th))(theta)
        assert yj.dtype == jnp.float32
    # Computed in float64 from θ's float32 numbers (TS is exact in float32), rounded once.
    y64, pb = lv.solve_vjp(TS, theta.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(y, y64.astype(np.float32))
    np.testing.assert_array_equal(yj, y)
    np.testing.assert_allclose(g, pb(2 * y64)[1], rtol=1e-6)


def test_errors(lv):
    with pytest.raises(ValueError, match="theta must have shape"):
        ndec.jax.solve(lv, TS, np.ones(3))
    with pytest.raises(ValueError, match="u0 must have shape"):
        ndec.jax.solve(lv, TS, None, np.ones(3))
    with pytest.raises(ValueError, match="one-dimensional"):
        ndec.jax.solve(lv, TS[None], None)
    with pytest.raises(TypeError, match="ndec.Model"):
        ndec.jax.solve("lv.nde", TS)
    # A failed solve inside the host call surfaces as an exception naming it, not a crash.
    m = ndec.compile(source="param k = 1\nstate x = 1\nx' = k*x^2\n", name="blowup")
    # (JAX wraps a host callback's exception in its JaxRuntimeError, a RuntimeError, whose
    # message carries ndec's; the typed fields of ndec.SolveError do not cross XLA.)
    with pytest.raises(RuntimeError, match=r"SolveError: solver failed at t = 1\.0"):
        jax.block_until_ready(jax.jit(lambda th: ndec.jax.solve(m, [0.0, 2.0], th))(np.ones(1)))
    # And the next call works.
    assert np.isfinite(np.asarray(ndec.jax.solve(m, [0.0, 0.5], np.ones(1)))).all()


def test_backward_reverses_the_forward_solve(neural, monkeypatch):
    """Under grad the forward pass keeps its pullback and the backward pass reverses it (no
    second solve); a cotangent batched differently (jacrev) solves again, with equal results."""
    hits, misses = [], []
    get = ndec.jax._PULLBACKS.get

    def counted_get(token, shape):
        p = get(token, shape)
        (hits if p is not None else misses).append(token)
        return p

    monkeypatch.setattr(ndec.jax._PULLBACKS, "get", counted_get)
    theta, u0 = neural.default_params(), np.array([0.8, -0.3])
    ybar = R.weights((4, 2), 11)
    g = jax.jit(jax.grad(lambda th: jnp.sum(ndec.jax.solve(neural, TS, th, u0) * ybar)))(theta)
    assert len(hits) == 1 and not misses
    _, pb = neural.solve_vjp(TS, theta, u0)
    np.testing.assert_array_equal(g, pb(ybar)[1])
    jac = jax.jacrev(lambda th: ndec.jax.solve(neural, TS, th, u0))(jnp.asarray(theta))
    assert misses, "jacrev's batched cotangent cannot reuse the unbatched forward's pullback"
    np.testing.assert_array_equal(jac[1, 0], pb(np.eye(8)[2].reshape(4, 2))[1])


def test_gradient_options_do_not_reach_a_plain_solve(lv):
    y = ndec.jax.solve(lv, TS, checkpoints=3, sensitivity="discrete")
    np.testing.assert_array_equal(y, lv.solve(TS))
    g = jax.grad(lambda th: ndec.jax.solve(lv, TS, th, checkpoints=3, sensitivity="discrete").sum())(
        jnp.asarray(lv.default_params()))
    assert np.all(np.isfinite(g))

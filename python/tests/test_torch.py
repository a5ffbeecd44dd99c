"""ndec.torch: gradients through the autograd Function against independent references on four
models (a UDE with an MLP, a stiff model, an SDE on a fixed Brownian path, a DDE), gradcheck,
and the Layer, dtypes, batches, requires_grad, retain_graph, errors."""

from __future__ import annotations

import numpy as np
import pytest

import torch  # noqa: E402
import torchdiffeq  # noqa: E402,F401

import ndec  # noqa: E402
import ndec.torch  # noqa: E402
import references as R  # noqa: E402
from conftest import GBM, rel  # noqa: E402

F64 = torch.float64


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=float), dtype=F64, requires_grad=grad)


def ndec_grad(m, ts, theta, u0, w, **options):
    """(g_theta, g_u0, y) of sum(w * y) through ndec.torch.solve."""
    th, u = t64(theta, True), t64(u0, True)
    y = ndec.torch.solve(m, ts, th, u, **options)
    assert y.dtype == F64 and y.requires_grad
    (y * t64(w)).sum().backward()
    return th.grad.numpy(), u.grad.numpy(), y.detach().numpy()


def torch_grad(loss, theta, u0):
    th, u = t64(theta, True), t64(u0, True)
    value, y = loss(th, u)
    value.backward()
    return th.grad.numpy(), u.grad.numpy(), y.detach().numpy()


# torchdiffeq's dense output is far less accurate than its steps at rtol 1e-12 (7e-8 off on the
# UDE below, against scipy's DOP853 and ndec): `step_t` makes it step onto every save time.
def odeint(f, u0, ts, save):
    ts = torch.as_tensor(ts, dtype=F64)
    return torchdiffeq.odeint(
        f, u0, ts, rtol=1e-12, atol=1e-12, method="dopri8", options=dict(step_t=torch.as_tensor(save, dtype=F64))
    )


# --- (a) a UDE: Lotka–Volterra with an MLP correction ------------------------------------------


@pytest.fixture(scope="module")
def ude():
    return ndec.compile(source=R.UDE, name="ude")


def ude_field(m, theta):
    """The UDE's vector field in torch, reading the net's weights from θ through param_layout
    (each layer's weight row-major OUT×IN, then its bias)."""
    layers = m.param_layout["nn"]
    ia, idd = m.param_layout["a"][0], m.param_layout["d"][0]

    def f(t, u):
        h = u
        for i, (wo, (n_out, n_in), bo, _) in enumerate(layers):
            h = theta[wo : wo + n_out * n_in].reshape(n_out, n_in) @ h + theta[bo : bo + n_out]
            if i < len(layers) - 1:
                h = torch.tanh(h)
        x, y = u[0], u[1]
        return torch.stack([theta[ia] * x - 0.9 * x * y + h[0], 0.8 * x * y - theta[idd] * y + h[1]])

    return f


@pytest.fixture(scope="module")
def ude_reference(ude):
    w = R.weights((len(R.UDE_TS), 2), 0)

    def loss(th, u):
        y = odeint(ude_field(ude, th), u, R.UDE_TS, R.UDE_TS)
        return (y * t64(w)).sum(), y

    return (*torch_grad(loss, ude.default_params(), R.UDE_U0), w)


@pytest.mark.parametrize(
    "method, sensitivity",
    [("tsit5", "auto"), ("tsit5", "forward"), ("dopri5", "discrete"), ("tsit5", "interpolating")],
)
def test_ude_gradient_matches_torchdiffeq(ude, ude_reference, method, sensitivity):
    g_theta_ref, g_u0_ref, y_ref, w = ude_reference
    assert ude.num_params == 2 + (8 * 2 + 8) + (2 * 8 + 2)
    g_theta, g_u0, y = ndec_grad(
        ude, R.UDE_TS, ude.default_params(), R.UDE_U0, w, method=method, rtol=1e-12, atol=1e-12, sensitivity=sensitivity
    )
    assert rel(y, y_ref) < 1e-10
    assert rel(g_theta, g_theta_ref) < 1e-6
    assert rel(g_u0, g_u0_ref) < 1e-6
    # The net's weights matter: their gradient is not negligible next to the scalar params'.
    assert np.abs(g_theta_ref[2:]).max() > 0.05 * np.abs(g_theta_ref[:2]).max()


# --- (b) stiff: Robertson -------------------------------------------------------------------


def test_robertson_partials_are_those_of_the_torch_field():
    """The hand-written ∂f/∂y, ∂f/∂θ of the SciPy reference against autograd."""
    theta = t64(np.log([0.04, 3e7, 1e4]))
    y = t64([0.8, 3e-5, 0.2])

    def f(y, lk):
        k1, k2, k3 = torch.exp(lk)
        return torch.stack([-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k2 * y[1] ** 2 - k3 * y[1] * y[2], k2 * y[1] ** 2])

    fy, fp = torch.autograd.functional.jacobian(f, (y, theta))
    fy_hand, fp_hand = R.rober_jacobians(np.exp(theta.numpy()), y.numpy())
    assert rel(fy_hand, fy.numpy()) < 1e-14 and rel(fp_hand, fp.numpy()) < 1e-14


@pytest.fixture(scope="module")
def rober():
    m = ndec.compile(source=R.ROBER, name="rober")
    theta = m.default_params()
    np.testing.assert_allclose(np.exp(theta), [0.04, 3e7, 1e4], rtol=1e-14)
    w = R.weights((len(R.ROBER_TS), 3), 1, R.ROBER_SCALE)
    return m, theta, w, R.rober_reference(theta, R.ROBER_U0, w)


@pytest.mark.parametrize("sensitivity", ["auto", "forward"])
def test_stiff_robertson_gradient_matches_radau_sensitivities(rober, sensitivity):
    m, theta, w, (g_theta_ref, g_u0_ref, y_ref) = rober
    g_theta, g_u0, y = ndec_grad(
        m, R.ROBER_TS, theta, R.ROBER_U0, w, method="rodas5", rtol=1e-12, atol=1e-14, sensitivity=sensitivity
    )
    assert rel(y, y_ref) < 1e-10
    # Entry by entry: the rates span 12 orders of magnitude, the gradients do not.
    assert R.rel_each(g_theta, g_theta_ref) < 1e-6
    assert R.rel_each(g_u0, g_u0_ref) < 1e-6


# --- (c) an SDE on a fixed Brownian path ------------------------------------------------------


def sde_path_torch(theta, u0, dw, method):
    """Euler–Maruyama (Itô) or reversible Heun (Stratonovich drift f − ½ Σ_j (∂g_j/∂u) g_j,
    here f − ½ s_i² u_i) with the given increments, in torch."""
    a, b, c, d, s1, s2 = theta

    def f_ito(u):
        x, y = u[0], u[1]
        return torch.stack([a * x - b * x * y, c * x * y - d * y])

    def g(u):
        return torch.stack([s1 * u[0], s2 * u[1]])

    def f_strat(u):
        return f_ito(u) - 0.5 * torch.stack([s1**2 * u[0], s2**2 * u[1]])

    h = R.SDE_DT
    out, u = [u0], u0
    if method == "euler_maruyama":
        for k in range(R.SDE_STEPS):
            u = u + f_ito(u) * h + g(u) * dw[k]
            out.append(u)
    else:
        u_hat = u0
        for k in range(R.SDE_STEPS):
            u_hat_next = 2 * u - u_hat + f_strat(u_hat) * h + g(u_hat) * dw[k]
            u = u + 0.5 * (f_strat(u_hat) + f_strat(u_hat_next)) * h + 0.5 * (g(u_hat) + g(u_hat_next)) * dw[k]
            u_hat = u_hat_next
            out.append(u)
    return torch.stack(out)


@pytest.fixture(scope="module")
def sde_setup():
    m = ndec.compile(source=R.SDE, name="sde")
    theta = m.default_params()
    opts = dict(method="euler_maruyama", dt=R.SDE_DT, seed=R.SDE_SEED)
    path = m.solve(R.SDE_TS, theta, R.SDE_U0, **opts)
    dw = R.sde_increments(path, theta)
    # They are N(0, dt) draws, not rounding noise.
    assert dw.shape == (R.SDE_STEPS, 2) and 0.7 < dw.std() / np.sqrt(R.SDE_DT) < 1.3
    return m, theta, dw


@pytest.mark.parametrize(
    "method, sensitivity",
    [("euler_maruyama", "auto"), ("euler_maruyama", "discrete"), ("reversible_heun", "discrete"),
     ("reversible_heun", "reversible")],
)
def test_sde_gradient_on_the_same_brownian_path(sde_setup, method, sensitivity):
    m, theta, dw = sde_setup
    w = R.weights((len(R.SDE_TS), 2), 3)

    def loss(th, u):
        y = sde_path_torch(th, u, t64(dw), method)
        return (y * t64(w)).sum(), y

    g_theta_ref, g_u0_ref, y_ref = torch_grad(loss, theta, R.SDE_U0)
    g_theta, g_u0, y = ndec_grad(
        m, R.SDE_TS, theta, R.SDE_U0, w, method=method, dt=R.SDE_DT, seed=R.SDE_SEED, sensitivity=sensitivity
    )
    # The same increments give the same path (reversible Heun uses the step-keyed increments
    # of Euler–Maruyama too) ...
    assert rel(y, y_ref) < 1e-13
    # ... and both gradients are exact derivatives of that discrete map.
    assert R.rel_each(g_theta, g_theta_ref) < 1e-11
    assert R.rel_each(g_u0, g_u0_ref) < 1e-11
    # Another seed is another path.
    other = m.solve(R.SDE_TS, theta, R.SDE_U0, method=method, dt=R.SDE_DT, seed=R.SDE_SEED + 1)
    assert rel(other, y) > 1e-3


# --- (d) a DDE by the method of steps ---------------------------------------------------------


def dde_reference_torch(th, u0):
    """x(t) on DDE_TS by the method of steps: on piece j the copies y_i(s) = x(s + i),
    i = 0..j, are solved jointly for s in [0, 1] (y_0 reads the history, y_i reads y_{i-1}),
    from y_i(0) = x(i) known from the earlier pieces."""
    k, a, c = th[0], th[1], th[2]
    starts, out = [u0[0]], [u0[0]]
    for j in range(R.DDE_PIECES):

        def rhs(s, ys):
            lag = torch.cat([(c + 0.5 * (s - 1)).reshape(1), ys[:-1]])
            return -k * lag / (1 + lag**2) + a * ys

        ys = odeint(rhs, torch.stack(starts), np.concatenate([[0.0], R.DDE_OFFSETS]), R.DDE_OFFSETS)
        out.extend(ys[1:, j])
        starts.append(ys[-1, j])
    return torch.stack(out)[:, None]


@pytest.mark.parametrize(
    "method, sensitivity", [("tsit5", "discrete"), ("tsit5", "forward"), ("dopri5", "auto"), ("rodas5", "forward")]
)
def test_dde_gradient_matches_the_method_of_steps(method, sensitivity):
    m = ndec.compile(source=R.DDE, name="dde")
    theta = m.default_params()
    w = R.weights((len(R.DDE_TS), 1), 5)

    def loss(th, u):
        y = dde_reference_torch(th, u)
        return (y * t64(w)).sum(), y

    g_theta_ref, g_u0_ref, y_ref = torch_grad(loss, theta, R.DDE_U0)
    g_theta, g_u0, y = ndec_grad(
        m, R.DDE_TS, theta, R.DDE_U0, w, method=method, rtol=1e-12, atol=1e-12, sensitivity=sensitivity
    )
    assert rel(y, y_ref) < 1e-10
    assert R.rel_each(g_theta, g_theta_ref) < 1e-6  # c enters through the history only
    assert R.rel_each(g_u0, g_u0_ref) < 1e-6


# --- gradcheck --------------------------------------------------------------------------------

SMALL = """param k = 0.7, x0 = 1.2
state x = x0
state v = 0.3
x' = v
v' = -k*x - 0.2*v^3 + 0.1*x*v
"""


@pytest.mark.parametrize("given_u0", [True, False])
def test_gradcheck_fixed_step(given_u0):
    m = ndec.compile(source=SMALL, name="small")
    ts = np.array([0.0, 0.3, 0.65, 1.0])  # save times between steps: dense output
    theta = t64([0.7, 1.2], True)
    u0 = t64([1.1, -0.4], True) if given_u0 else None
    opts = dict(method="rk4", dt=0.05)

    if given_u0:
        assert torch.autograd.gradcheck(lambda th, u: ndec.torch.solve(m, ts, th, u, **opts), (theta, u0))
    else:
        # u0 = the model's initial state at θ: x0 is differentiated through it.
        assert torch.autograd.gradcheck(lambda th: ndec.torch.solve(m, ts, th, None, **opts), (theta,))
    # A batch, both ways.
    thetas = t64([[0.7, 1.2], [0.5, 0.9], [1.1, 1.0]], True)
    assert torch.autograd.gradcheck(lambda th, u: ndec.torch.solve(m, ts, th, u, **opts), (thetas, t64([1.1, -0.4], True)))


# --- the Layer and the operation --------------------------------------------------------------


TS = np.array([0.0, 0.5, 1.0, 2.0])


def test_layer_owns_theta_and_trains_with_torch_optim(lv):
    torch.manual_seed(0)
    ts = np.linspace(0, 2, 9)
    target = torch.from_numpy(lv.solve(ts, [1.3, 0.9, 3.2, 1.1], np.array([[1.0, 1.0], [0.5, 1.5]])))
    layer = ndec.torch.Layer(lv, ts)
    params = dict(layer.named_parameters())
    assert list(params) == ["theta"] and isinstance(layer.theta, torch.nn.Parameter)
    np.testing.assert_array_equal(layer.theta.detach().numpy(), lv.default_params())
    assert "lv" in repr(layer)

    # A network around the equation: an encoder gives the initial states.
    enc = torch.nn.Linear(2, 2).double()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)
    with torch.no_grad():
        enc.weight.copy_(torch.tensor([[1.0, 0.5], [1.0, 1.5]]) + 0.1 * torch.randn(2, 2))
        enc.bias.zero_()
    model = torch.nn.Sequential(enc, layer)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((model(x) - target) ** 2).mean()
        loss.backward()
        assert layer.theta.grad is not None and enc.weight.grad is not None
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    assert not np.array_equal(layer.theta.detach().numpy(), lv.default_params())


def test_upstream_graph_gets_the_chain_rule(neural):
    """u0 = A x: A.grad is the outer product of the pullback's ū0 and x."""
    A = torch.tensor([[0.5, -0.2], [0.3, 0.8]], dtype=F64, requires_grad=True)
    xin = t64([1.0, -0.5])
    ybar = R.weights((4, 2), 6)
    y = ndec.torch.solve(neural, TS, None, A @ xin)
    (y * t64(ybar)).sum().backward()
    u0 = (A @ xin).detach().numpy()
    _, pb = neural.solve_vjp(TS, neural.default_params(), u0)
    g_u0, _ = pb(ybar)
    np.testing.assert_allclose(A.grad.numpy(), np.outer(g_u0, xin.numpy()), rtol=1e-14)


def test_float32_in_float32_out_computed_in_float64(neural):
    theta32 = torch.from_numpy(neural.default_params()).float().requires_grad_()
    u32 = torch.tensor([0.8, -0.3], dtype=torch.float32, requires_grad=True)
    y32 = ndec.torch.solve(neural, TS, theta32, u32)
    assert y32.dtype == torch.float32
    # The float64 solve of the same (float32-rounded) inputs, rounded once at the end.
    theta64 = theta32.detach().double().requires_grad_()
    u64 = u32.detach().double().requires_grad_()
    y64 = ndec.torch.solve(neural, TS, theta64, u64)
    assert torch.equal(y32, y64.float())
    w = torch.from_numpy(R.weights((4, 2), 7))
    (y32 * w.float()).sum().backward()
    (y64 * w).sum().backward()
    assert theta32.grad.dtype == torch.float32 and u32.grad.dtype == torch.float32
    # The cotangent arrived in float32; the pullback ran in float64.
    np.testing.assert_allclose(theta32.grad.numpy(), theta64.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(u32.grad.numpy(), u64.grad.numpy(), rtol=1e-5)
    # Mixed: the result takes u0's dtype, each gradient its input's.
    th = torch.from_numpy(neural.default_params()).requires_grad_()
    y = ndec.torch.solve(neural, TS, th, u32)
    assert y.dtype == torch.float32
    y.sum().backward()
    assert th.grad.dtype == F64
    # Without u0, θ's dtype.
    assert ndec.torch.solve(neural, TS, theta32.detach()).dtype == torch.float32


def test_casting_a_layer_keeps_its_save_times(lv):
    """`.half()` on a network casts θ, but the save times stay float64 (10.7 is 10.703 in
    float16): the result is the float64 solve of the rounded θ, rounded once."""
    ts = [0.0, 0.1, 1.3, 10.7]
    layer = ndec.torch.Layer(lv, ts).half()
    assert layer.theta.dtype == torch.float16
    with torch.no_grad():
        y = layer(torch.ones(2, dtype=torch.float16))
    assert y.dtype == torch.float16
    theta = layer.theta.detach().double().numpy()
    expected = torch.from_numpy(lv.solve(ts, theta, np.ones(2))).half()
    assert torch.equal(y, expected)


def test_batches(neural):
    rng = np.random.default_rng(8)
    B, P = 5, neural.num_params
    layer = ndec.torch.Layer(neural, TS)
    u0 = t64(rng.standard_normal((B, 2)), True)
    y = layer(u0)
    assert y.shape == (B, 4, 2)
    for b in range(B):
        np.testing.assert_array_equal(y[b].detach().numpy(), neural.solve(TS, neural.default_params(), u0[b].detach().numpy()))
    assert layer().shape == (4, 2) and layer(u0[0]).shape == (4, 2)
    ybar = rng.standard_normal((B, 4, 2))
    (y * t64(ybar)).sum().backward()
    assert u0.grad.shape == (B, 2) and layer.theta.grad.shape == (P,)
    # The shared θ's gradient is the sum of the rows'.
    total = np.zeros(P)
    for b in range(B):
        g_u0, g_theta = neural.solve_vjp(TS, neural.default_params(), u0[b].detach().numpy())[1](ybar[b])
        np.testing.assert_allclose(u0.grad[b].numpy(), g_u0, rtol=1e-13, atol=1e-15)
        total += g_theta
    np.testing.assert_allclose(layer.theta.grad.numpy(), total, rtol=1e-12, atol=1e-14)

    # θ with a batch axis, u0 shared.
    thetas = t64(neural.default_params() * (1 + 0.1 * rng.standard_normal((B, P))), True)
    u = t64([0.8, -0.3], True)
    y = ndec.torch.solve(neural, TS, thetas, u)
    assert y.shape == (B, 4, 2)
    (y * t64(ybar)).sum().backward()
    assert thetas.grad.shape == (B, P) and u.grad.shape == (2,)
    for b in range(B):
        g_u0, g_theta = neural.solve_vjp(TS, thetas[b].detach().numpy(), [0.8, -0.3])[1](ybar[b])
        np.testing.assert_array_equal(thetas.grad[b].numpy(), g_theta)


def test_gradients_only_for_inputs_that_require_them(neural):
    theta = torch.from_numpy(neural.default_params())
    u0 = t64([0.8, -0.3], True)
    y = ndec.torch.solve(neural, TS, theta, u0)
    y.sum().backward()
    assert theta.grad is None and u0.grad is not None

    theta = torch.from_numpy(neural.default_params()).requires_grad_()
    u0 = t64([0.8, -0.3])
    ndec.torch.solve(neural, TS, theta, u0).sum().backward()
    assert theta.grad is not None and u0.grad is None

    y = ndec.torch.solve(neural, TS, torch.from_numpy(neural.default_params()), t64([0.8, -0.3]))
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_is_a_plain_solve():
    """Under torch.no_grad (inference) the Layer solves without preparing a gradient, so a
    method that has none (sde_adaptive) runs, and gives the plain solve."""
    m = ndec.compile(source=GBM, name="gbm")
    ts = np.linspace(0, 1, 5)
    layer = ndec.torch.Layer(m, ts, method="sde_adaptive", rtol=1e-3, atol=1e-3, seed=4)
    with torch.no_grad():
        y = layer(torch.ones(3, 1, dtype=F64))
    assert y.grad_fn is None
    np.testing.assert_array_equal(y.numpy(), m.solve(ts, None, np.ones((3, 1)), method="sde_adaptive", rtol=1e-3, atol=1e-3, seed=4))
    with torch.inference_mode():
        assert layer(torch.ones(1, dtype=F64)).shape == (5, 1)
    # With the graph recorded the gradient is refused, as the NumPy API does.
    with pytest.raises(ndec.UnsupportedError):
        layer(torch.ones(1, dtype=F64))


def test_backward_twice_with_retain_graph(neural):
    theta = torch.from_numpy(neural.default_params()).requires_grad_()
    u0 = t64([0.8, -0.3], True)
    y = ndec.torch.solve(neural, TS, theta, u0)
    loss = (y * t64(R.weights((4, 2), 9))).sum()
    loss.backward(retain_graph=True)
    g1, u1 = theta.grad.clone(), u0.grad.clone()
    loss.backward()
    assert torch.equal(theta.grad, 2 * g1) and torch.equal(u0.grad, 2 * u1)
    # A second cotangent through the same forward solve: linearity.
    theta.grad = None
    y2 = ndec.torch.solve(neural, TS, theta, u0)
    (3 * y2).sum().backward(retain_graph=True)
    g3 = theta.grad.clone()
    theta.grad = None
    y2.sum().backward()
    np.testing.assert_allclose(g3.numpy(), 3 * theta.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_solve_error_propagates_as_ndec_solve_error():
    m = ndec.compile(source="param k = 1\nstate x = 1\nx' = k*x^2\n", name="blowup")
    theta = t64([1.0], True)
    for th in (theta, theta.detach()):
        with pytest.raises(ndec.SolveError) as info:
            ndec.torch.solve(m, [0.0, 0.5, 2.0], th)
        assert isinstance(info.value, RuntimeError) and 0.9 < info.value.t < 1.01
    thetas = t64(np.full((4, 1), 0.1), True)
    with torch.no_grad():
        thetas[2] = 1.0
    with pytest.raises(ndec.SolveError) as info:
        ndec.torch.solve(m, [0.0, 2.0], thetas)
    assert info.value.trajectory == 2
    # The failure left nothing behind: the next solve and backward work.
    y = ndec.torch.solve(m, [0.0, 0.5], theta)
    y.sum().backward()
    assert np.isfinite(theta.grad.numpy()).all()


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda m: ndec.torch.solve(m, TS, torch.ones(4, dtype=torch.int64)), TypeError, "real floating-point"),
        (lambda m: ndec.torch.solve(m, TS, torch.ones(4, dtype=torch.complex128)), TypeError, "real floating-point"),
        (lambda m: ndec.torch.solve(m, TS, np.ones(4)), TypeError, "torch.Tensor"),
        (lambda m: ndec.torch.solve(m, TS, None, [1.0, 1.0]), TypeError, "torch.Tensor"),
        (lambda m: ndec.torch.solve(m, TS, torch.ones(3, dtype=F64)), ValueError, r"theta must have shape \(4,\)"),
        (lambda m: ndec.torch.solve(m, TS, None, torch.ones(3, dtype=F64)), ValueError, r"u0 must have shape \(2,\)"),
        (lambda m: ndec.torch.solve(m, TS, torch.ones(2, 3, 4, dtype=F64)), ValueError, "theta must have shape"),
        (lambda m: ndec.torch.solve(m, TS, torch.ones(3, 4, dtype=F64), torch.ones(2, 2, dtype=F64)), ValueError,
         "batch axes must agree"),
        (lambda m: ndec.torch.solve(m, TS, t64([1.5, np.nan, 3, 1], True)), ValueError, r"theta\[1\]"),
        (lambda m: ndec.torch.solve(m, [1.0, 0.0]), ValueError, "strictly increasing"),
        (lambda m: ndec.torch.solve("lv.nde", TS), TypeError, "ndec.Model"),
        (lambda m: ndec.torch.Layer(object(), TS), TypeError, "ndec.Model"),
        (lambda m: ndec.torch.solve(m, TS, method="rk45"), ValueError, "unknown method"),
    ],
)
def test_bad_input_raises(lv, call, exc, match):
    with pytest.raises(exc, match=match):
        call(lv)


def test_gradient_options_do_not_reach_a_plain_solve():
    """`sensitivity` and `checkpoints` are options of the gradient: a solve that needs none
    (no input requires grad, or torch.no_grad) ignores them instead of failing."""
    import ndec

    m = ndec.compile(source="param k = 0.5\nstate x = 1\nx' = -k*x\n", name="d")
    th = torch.tensor([0.5], dtype=torch.float64)
    y = ndec.torch.solve(m, [0.0, 1.0], th, checkpoints=4, sensitivity="discrete")
    assert abs(y[-1, 0].item() - np.exp(-0.5)) < 1e-6
    layer = ndec.torch.Layer(m, [0.0, 1.0], checkpoints=4)
    with torch.no_grad():
        assert layer().shape == (2, 1)
    layer().sum().backward()
    assert layer.theta.grad is not None

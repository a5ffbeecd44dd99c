"""Model.solve and Model.solve_vjp on NumPy arrays: shapes, batches against single solves bit
for bit, the pullback against central differences, SDE paths, and every error."""

import subprocess

import numpy as np
import pytest

import ndec
from conftest import cli_binary, rel

TS = np.array([0.0, 0.5, 1.0, 2.0])


def test_solve_shapes_and_values(lv):
    y = lv.solve(TS)
    assert y.shape == (4, 2) and y.dtype == np.float64
    np.testing.assert_array_equal(y[0], [1.0, 1.0])
    theta = np.tile(lv.default_params(), (3, 1))
    assert lv.solve(TS, theta).shape == (3, 4, 2)
    assert lv.solve(TS, None, np.ones((5, 2))).shape == (5, 4, 2)
    # Lists and float32/int arrays are read as float64.
    np.testing.assert_array_equal(lv.solve([0, 0.5, 1, 2], [1.5, 1, 3, 1], [1, 1]), y)


def test_lotka_volterra_against_a_tight_reference(lv):
    from scipy.integrate import solve_ivp

    def f(t, u):
        x, y = u
        return [1.5 * x - x * y, 3 * x * y - y]

    ref = solve_ivp(f, (0, 2), [1, 1], t_eval=TS, rtol=1e-12, atol=1e-12, method="DOP853")
    y = lv.solve(TS, rtol=1e-10, atol=1e-12)
    assert rel(y, ref.y.T) < 1e-8


def test_batch_of_64_equals_64_single_solves(neural):
    rng = np.random.default_rng(0)
    theta = neural.default_params() * (1 + 0.05 * rng.standard_normal((64, neural.num_params)))
    u0 = rng.standard_normal((64, 2))
    y = neural.solve(TS, theta, u0)
    for b in range(64):
        np.testing.assert_array_equal(y[b], neural.solve(TS, theta[b], u0[b]))
    ybar = rng.standard_normal(y.shape)
    yb, pb = neural.solve_vjp(TS, theta, u0, sensitivity="discrete")
    np.testing.assert_array_equal(yb, y)
    g_u0, g_theta = pb(ybar)
    assert g_u0.shape == (64, 2) and g_theta.shape == (64, neural.num_params)
    for b in range(0, 64, 7):
        _, pb1 = neural.solve_vjp(TS, theta[b], u0[b], sensitivity="discrete")
        gu, gt = pb1(ybar[b])
        np.testing.assert_array_equal(gu, g_u0[b])
        np.testing.assert_array_equal(gt, g_theta[b])


def test_shared_theta_gradient_is_summed_over_the_batch(neural):
    u0 = np.random.default_rng(1).standard_normal((8, 2))
    theta = neural.default_params()
    ybar = np.ones((8, 4, 2))
    _, pb = neural.solve_vjp(TS, theta, u0)
    _, g = pb(ybar)
    assert g.shape == (neural.num_params,)
    total = sum(neural.solve_vjp(TS, theta, u0[b])[1](ybar[b])[1] for b in range(8))
    np.testing.assert_array_equal(g, total)


def central(m, ts, theta, u0, ybar, h=1e-6, **opts):
    def pairing(th, u):
        return float(np.sum(m.solve(ts, th, u, **opts) * ybar))

    g = []
    for base, which in ((theta, 0), (u0, 1)):
        for k in range(len(base)):
            step = h * max(abs(base[k]), 0.1)
            plus, minus = base.copy(), base.copy()
            plus[k] += step
            minus[k] -= step
            args = (plus, u0) if which == 0 else (theta, plus)
            args_m = (minus, u0) if which == 0 else (theta, minus)
            g.append((pairing(*args) - pairing(*args_m)) / (2 * step))
    return np.array(g)


@pytest.mark.parametrize("sensitivity", ["auto", "forward", "discrete", "backsolve", "interpolating", "quadrature"])
def test_pullback_matches_central_differences(neural, sensitivity):
    theta = neural.default_params()
    u0 = np.array([0.8, -0.3])
    ybar = np.random.default_rng(2).standard_normal((4, 2))
    opts = dict(rtol=1e-10, atol=1e-12)
    fd = central(neural, TS, theta, u0, ybar, **opts)
    _, pb = neural.solve_vjp(TS, theta, u0, sensitivity=sensitivity, **opts)
    g_u0, g_theta = pb(ybar)
    assert rel(np.concatenate([g_theta, g_u0]), fd) < 1e-6


def test_pullback_twice_is_consistent(neural):
    _, pb = neural.solve_vjp(TS, None, [1.0, 0.0])
    a = np.random.default_rng(3).standard_normal((4, 2))
    first, again = pb(a), pb(a)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    # Linear in the cotangent.
    b = np.random.default_rng(4).standard_normal((4, 2))
    ga, gb, gab = pb(a)[1], pb(b)[1], pb(2 * a + b)[1]
    assert rel(gab, 2 * ga + gb) < 1e-12


def test_no_u0_gives_no_u0_cotangent(lv):
    y, pb = lv.solve_vjp(TS)
    g_u0, g_theta = pb(np.ones_like(y))
    assert g_u0 is None and g_theta.shape == (4,)


def test_sde_batch_row_b_is_noise_stream_b(gbm, tmp_path):
    ts = np.linspace(0, 1, 11)
    y = gbm.solve(ts, None, np.ones((6, 1)), method="euler_maruyama", dt=0.01, seed=5)
    assert y.shape == (6, 11, 1)
    assert not np.array_equal(y[0], y[1])
    # Unbatched is stream (seed, 0); a row replays alone with the same seed.
    np.testing.assert_array_equal(gbm.solve(ts, dt=0.01, seed=5, method="euler_maruyama"), y[0])
    binary = cli_binary()
    path = tmp_path / "gbm.nde"
    from conftest import GBM

    path.write_text(GBM)
    out = subprocess.run(
        [binary, "run", path, "--t1", "1", "--dt", "0.01", "--saveat", "0.1", "--ensemble", "6",
         "--seed", "5", "--traj", "4", "--method", "euler_maruyama"],
        capture_output=True, text=True, check=True,
    )
    rows = [line.split(",") for line in out.stdout.strip().splitlines()[1:]]
    x = np.array([float(r[-1]) for r in rows])
    assert rel(y[4, :, 0], x) < 1e-14


def test_sde_gradient_on_a_fixed_path(gbm):
    ts = np.linspace(0, 1, 5)
    theta, u0 = gbm.default_params(), np.array([1.2])
    ybar = np.array([[0.0], [1.0], [-0.5], [2.0], [1.0]])
    for method in ["euler_maruyama", "reversible_heun"]:
        opts = dict(method=method, dt=0.01, seed=9)
        _, pb = gbm.solve_vjp(ts, theta, u0, **opts)
        g_u0, g_theta = pb(ybar)
        fd = central(gbm, ts, theta, u0, ybar, **opts)
        assert rel(np.concatenate([g_theta, g_u0]), fd) < 1e-6


def test_dde_gradient(delay):
    ts = np.array([0.0, 0.7, 1.5, 3.2])
    theta, u0 = delay.default_params(), np.array([1.3])
    ybar = np.array([[1.0], [0.5], [-1.0], [2.0]])
    opts = dict(rtol=1e-10, atol=1e-12)
    fd = central(delay, ts, theta, u0, ybar, **opts)
    for s in ["forward", "discrete"]:
        _, pb = delay.solve_vjp(ts, theta, u0, sensitivity=s, **opts)
        g_u0, g_theta = pb(ybar)
        assert rel(np.concatenate([g_theta, g_u0]), fd) < 1e-6


def test_failed_trajectory_17_raises_solve_error():
    m = ndec.compile(source="param k = 1\nstate x = 1\nx' = k*x^2\n")
    theta = np.full((32, 1), 0.1)
    theta[17] = 1.0
    with pytest.raises(ndec.SolveError) as info:
        m.solve([0.0, 0.5, 2.0], theta)
    e = info.value
    assert isinstance(e, RuntimeError)
    assert e.trajectory == 17 and 0.9 < e.t < 1.01
    assert isinstance(e.reason, str) and e.kind in {"step_size_underflow", "non_finite_state", "max_steps"}
    assert "trajectory 17" in str(e)
    with pytest.raises(ndec.SolveError) as info:
        m.solve([0.0, 2.0], [1.0], max_steps=5)
    assert info.value.kind == "max_steps" and info.value.trajectory is None


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda m: m.solve([0, 1], np.zeros(3)), ValueError, r"theta must have shape \(4,\)"),
        (lambda m: m.solve([0, 1], np.zeros((2, 2, 4))), ValueError, "theta must have shape"),
        (lambda m: m.solve([0, 1], None, np.zeros(3)), ValueError, r"u0 must have shape \(2,\)"),
        (lambda m: m.solve([0, 1], np.zeros((3, 4)), np.zeros((2, 2))), ValueError, "batch axes must agree"),
        (lambda m: m.solve([0, 1], [1.5, np.nan, 3, 1]), ValueError, r"theta\[1\]"),
        (lambda m: m.solve([0, 1], None, [1, np.inf]), ValueError, r"u0\[1\]"),
        (lambda m: m.solve([0, 1], np.ones(4, dtype=complex)), TypeError, "real numbers"),
        (lambda m: m.solve([0, 1], ["a", "b", "c", "d"]), TypeError, "real numbers"),
        (lambda m: m.solve([[0, 1]]), ValueError, "one-dimensional"),
        (lambda m: m.solve([1, 0]), ValueError, "strictly increasing"),
        (lambda m: m.solve([0]), ValueError, "at least two"),
        (lambda m: m.solve([0, 1], method="rk45"), ValueError, "unknown method `rk45`"),
        (lambda m: m.solve([0, 1], method="euler_maruyama"), ndec.UnsupportedError, "SDE method"),
        (lambda m: m.solve([0, 1], method="rk4"), ValueError, "needs a step"),
        (lambda m: m.solve([0, 1], rtol=-1), ValueError, "rtol"),
        (lambda m: m.solve([0, 1], atol=[1, 2, 3]), ValueError, "atol"),
        (lambda m: m.solve([0, 1], max_steps=0), ValueError, "max_steps"),
        (lambda m: m.solve([0, 1], seed=-1), ValueError, "seed"),
        (lambda m: m.solve_vjp([0, 1], sensitivity="magic"), ValueError, "unknown sensitivity"),
        (lambda m: m.solve_vjp([0, 1], sensitivity="reversible"), ndec.UnsupportedError, "SDE"),
        (lambda m: m.solve_vjp([0, 1])[1](np.ones((3, 2))), ValueError, r"shape \[2, 2\]"),
    ],
)
def test_bad_input_raises_the_documented_exception(lv, call, exc, match):
    with pytest.raises(exc, match=match):
        call(lv)


def test_sde_without_a_gradient_method_is_unsupported(gbm):
    with pytest.raises(ndec.UnsupportedError):
        gbm.solve_vjp([0, 1], method="sde_adaptive")
    with pytest.raises(ndec.UnsupportedError):
        gbm.solve_vjp([0, 1], method="euler_maruyama", dt=0.1, sensitivity="forward")


def test_non_contiguous_and_read_only_inputs(neural):
    theta = np.tile(neural.default_params(), (4, 2))[:, ::2]  # non-contiguous view
    assert not theta.flags.c_contiguous
    y = neural.solve(TS, theta)
    np.testing.assert_array_equal(y[1], neural.solve(TS, np.ascontiguousarray(theta[1])))
    ro = neural.default_params()
    ro.flags.writeable = False
    neural.solve(TS, ro)

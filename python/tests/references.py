"""The four models whose gradients test_torch.py and test_jax.py check against independent
references, and the framework-free parts of those references (NumPy and SciPy only).

- UDE: Lotka–Volterra whose interactions are corrected by a tanh MLP (44 params).
- ROBER: Robertson's stiff kinetics, rates as log-params so every gradient entry is O(1).
- SDE: a stochastic Lotka–Volterra with diagonal multiplicative (Itô) noise.
- DDE: a nonlinear delay equation whose history depends on a param.
"""

from __future__ import annotations

import numpy as np

UDE = """param a = 1.3, d = 1.8
net nn = mlp(2 -> 8 -> 2, tanh, init = glorot(seed = 2))
state x = 1.0
state y = 0.8
let z = nn([x, y])
x' = a*x - 0.9*x*y + z[0]
y' = 0.8*x*y - d*y + z[1]
"""
UDE_TS = np.linspace(0.0, 3.0, 7)
UDE_U0 = np.array([1.1, 0.7])

# k1 = 0.04, k2 = 3e7, k3 = 1e4.
ROBER = """param l1 = -3.2188758248682006, l2 = 17.216707939626428, l3 = 9.210340371976184
state y1 = 1.0
state y2 = 0.0
state y3 = 0.0
let k1 = exp(l1)
let k2 = exp(l2)
let k3 = exp(l3)
y1' = -k1*y1 + k3*y2*y3
y2' = k1*y1 - k2*y2^2 - k3*y2*y3
y3' = k2*y2^2
"""
ROBER_TS = np.array([0.0, 0.1, 1.0, 3.0, 10.0])
ROBER_U0 = np.array([1.0, 0.0, 0.0])
# y2 is O(1e-5): weight it up so that its entries count in the loss.
ROBER_SCALE = np.array([1.0, 1e4, 1.0])

SDE = """param a = 1.0, b = 0.6, c = 0.8, d = 0.5, s1 = 0.3, s2 = 0.2
state x = 1.0
state y = 0.8
brownian W1, W2
x' = a*x - b*x*y + s1*x*W1
y' = c*x*y - d*y + s2*y*W2
"""
SDE_DT = 2.0**-6
SDE_STEPS = 128
SDE_TS = np.arange(SDE_STEPS + 1) * SDE_DT  # every step's end: exact binary fractions
SDE_U0 = np.array([1.1, 0.7])
SDE_SEED = 7

DDE = """param k = 1.2, a = 0.4, c = 0.9
state x = 1.0
history x = c + 0.5*t
x' = -k*x(t - 1)/(1 + x(t - 1)^2) + a*x
"""
DDE_PIECES = 4  # [0, 1], [1, 2], [2, 3], [3, 4]: the delay is 1
DDE_OFFSETS = np.array([0.3, 0.7, 1.0])  # save times within each piece
DDE_TS = np.concatenate([[0.0]] + [j + DDE_OFFSETS for j in range(DDE_PIECES)])
DDE_U0 = np.array([1.3])  # differs from the history's 0.9 at t = 0: a jump


def weights(shape, seed, scale=None):
    """Fixed random cotangent weights w of the loss sum(w * y)."""
    w = np.random.default_rng(seed).standard_normal(shape)
    return w if scale is None else w * scale


def sde_drift(theta, u):
    a, b, c, d = theta[:4]
    x, y = u[..., 0], u[..., 1]
    return np.stack([a * x - b * x * y, c * x * y - d * y], -1)


def sde_diffusion(theta, u):
    """The diagonal of G."""
    return np.stack([theta[4] * u[..., 0], theta[5] * u[..., 1]], -1)


def sde_increments(path, theta):
    """The Brownian increments ΔW_k (one row per step) of an Euler–Maruyama path saved at every
    step: u_{k+1} = u_k + f(u_k) dt + g(u_k) ΔW_k with diagonal g, solved for ΔW_k."""
    u = path[:-1]
    return (path[1:] - u - sde_drift(theta, u) * SDE_DT) / sde_diffusion(theta, u)


def rober_rates(theta):
    return np.exp(np.asarray(theta, dtype=float))


def rober_f(k, y):
    k1, k2, k3 = k
    return np.array([-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k2 * y[1] ** 2 - k3 * y[1] * y[2], k2 * y[1] ** 2])


def rober_jacobians(k, y):
    """(∂f/∂y, ∂f/∂θ) with θ the log-rates (∂/∂l_i = k_i ∂/∂k_i)."""
    k1, k2, k3 = k
    fy = np.array(
        [[-k1, k3 * y[2], k3 * y[1]], [k1, -2 * k2 * y[1] - k3 * y[2], -k3 * y[1]], [0.0, 2 * k2 * y[1], 0.0]]
    )
    fp = np.array(
        [
            [-k1 * y[0], 0.0, k3 * y[1] * y[2]],
            [k1 * y[0], -k2 * y[1] ** 2, -k3 * y[1] * y[2]],
            [0.0, k2 * y[1] ** 2, 0.0],
        ]
    )
    return fy, fp


def rober_reference(theta, u0, w, rtol=1e-12):
    """The gradient of sum(w * y(ts)) in (θ, u0) from forward sensitivities S = ∂y/∂(θ, u0),
    S' = f_y S + [f_θ, 0], S(0) = [0, I], integrated with y by SciPy's Radau (order 5, implicit)
    at rtol 1e-12. Returns (g_theta, g_u0, y)."""
    from scipy.integrate import solve_ivp

    k = rober_rates(theta)

    def rhs(t, z):
        y, s = z[:3], z[3:].reshape(3, 6)
        fy, fp = rober_jacobians(k, y)
        ds = fy @ s
        ds[:, :3] += fp
        return np.concatenate([rober_f(k, y), ds.ravel()])

    z0 = np.concatenate([u0, np.hstack([np.zeros((3, 3)), np.eye(3)]).ravel()])
    sol = solve_ivp(rhs, (ROBER_TS[0], ROBER_TS[-1]), z0, method="Radau", t_eval=ROBER_TS, rtol=rtol, atol=rtol * 1e-2)
    assert sol.status == 0, sol.message
    z = sol.y.T
    g = np.einsum("ti,tij->j", w, z[:, 3:].reshape(len(ROBER_TS), 3, 6))
    return g[:3], g[3:], z[:, :3]


def rel_each(a, b) -> float:
    """The largest entrywise relative error max_i |a_i − b_i| / |b_i|."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))

"""Shared fixtures: models used across the tests, and the CLI binary when one is built."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ndec

ROOT = Path(__file__).resolve().parents[2]

LV = """param a = 1.5, b = 1.0, c = 3.0, d = 1.0
state x = 1.0
state y = 1.0
x' = a*x - b*x*y
y' = c*x*y - d*y
"""

# A neural ODE: tanh MLP plus a decay rate (1 + 15 + 12 = 28 params).
NEURAL = """param k = 0.3
state u[2] = [1.0, -0.5]
net f = mlp(2 -> 5 -> 2, tanh, init = glorot(seed = 3))
u' = f(u) - k*u
"""

GBM = """param mu = 0.4, sigma = 0.3
state x = 1.0
brownian W
x' = mu*x + sigma*x*W
"""

DELAY = """param k = 1.2, a = 0.4
state x = 1.0
history x = 1.0 + 0.5*t
x' = -k*x(t - 1) + a*x
"""


def cli_binary() -> Path | None:
    """The `ndec` binary `cargo test`/`cargo build` left behind, newest first."""
    found = [ROOT / "target" / p / "ndec" for p in ("release", "debug")]
    found = [p for p in found if p.exists()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@pytest.fixture
def lv():
    return ndec.compile(source=LV, name="lv")


@pytest.fixture
def neural():
    return ndec.compile(source=NEURAL, name="neural")


@pytest.fixture
def gbm():
    return ndec.compile(source=GBM, name="gbm")


@pytest.fixture
def delay():
    return ndec.compile(source=DELAY, name="delay")


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))

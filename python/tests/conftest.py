"""Shared fixtures: models used across the tests, and the CLI binary when one is built."""

from __future__ import annotations

import os
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


def cli_binary() -> Path:
    """The `ndec` binary to compare with: $NDEC_BIN (python/run-tests.sh builds and sets it),
    else the newest one `cargo build` left in target/."""
    env = os.environ.get("NDEC_BIN")
    found = [Path(env)] if env else [ROOT / "target" / p / "ndec" for p in ("release", "debug")]
    found = [p for p in found if p.exists()]
    assert found, "no ndec binary: run `cargo build --bin ndec` (python/run-tests.sh does) or set NDEC_BIN"
    return max(found, key=lambda p: p.stat().st_mtime)


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

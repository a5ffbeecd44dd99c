#!/usr/bin/env python3
"""Inputs shared by every tool in the spiral benchmark (issue 5).

Writes, next to this file:
* data.csv  header `t,u[0],u[1]`, 1000 rows at t = linspace(0, 25, 1000) (t = 0 included):
            the true spiral u' = A @ u**3, A = [[-0.1, 2], [-2, -0.1]], u0 = [2, 0], solved with
            scipy solve_ivp DOP853 at rtol = atol = 1e-12 (so the data's own error is far below
            the 1e-7 tolerance the tools are run at). Floats are written with repr(), which
            reads back to the same f64.
* w0.json   the starting weights of the net 2 -> 50 (tanh) -> 2, in ndec's params-file layout
            ({"nn": {"layers": [{"weight": OUTxIN rows, "bias": [...]}, ...]}}): weights
            normal(0, 0.1) from numpy default_rng(0) (W1 drawn first, then W2), biases zero.

Both are deterministic; the peers read them instead of drawing their own, so every tool starts
from the same point and fits the same numbers.
"""
import json
import os

import numpy as np
from scipy.integrate import solve_ivp

HERE = os.path.dirname(os.path.abspath(__file__))
A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
U0 = [2.0, 0.0]
T = np.linspace(0.0, 25.0, 1000)
HIDDEN = 50


def main():
    sol = solve_ivp(lambda t, u: A @ (u ** 3), (0.0, 25.0), U0, method="DOP853",
                    t_eval=T, rtol=1e-12, atol=1e-12)
    assert sol.success, sol.message
    with open(os.path.join(HERE, "data.csv"), "w") as f:
        f.write("t,u[0],u[1]\n")
        for i, t in enumerate(T):
            f.write(f"{float(t)!r},{float(sol.y[0, i])!r},{float(sol.y[1, i])!r}\n")

    rng = np.random.default_rng(0)
    w1 = rng.normal(0.0, 0.1, size=(HIDDEN, 2))
    w2 = rng.normal(0.0, 0.1, size=(2, HIDDEN))
    params = {"nn": {"layers": [
        {"weight": w1.tolist(), "bias": [0.0] * HIDDEN},
        {"weight": w2.tolist(), "bias": [0.0] * 2},
    ]}}
    # json writes floats with repr(), so the weights round-trip exactly too
    with open(os.path.join(HERE, "w0.json"), "w") as f:
        json.dump(params, f)
        f.write("\n")
    print(f"make_data: wrote data.csv ({len(T)} rows, u(25) = {sol.y[:, -1].tolist()}) and w0.json "
          f"({w1.size + HIDDEN + w2.size + 2} params)")


if __name__ == "__main__":
    main()

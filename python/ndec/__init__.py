"""ndec: a compiler for neural differential equations, from Python.

``ndec.compile`` turns a ``.nde`` model into a :class:`Model` whose ``solve`` and ``solve_vjp``
run compiled solvers and their adjoints on NumPy arrays. ``ndec.torch`` and ``ndec.jax`` make
those differentiable operations of PyTorch and JAX; ``import ndec`` needs numpy only and
imports neither.
"""

from __future__ import annotations

import os

from ._errors import Diagnostic, ModelError, SolveError, UnsupportedError
from ._ndec import Model, Pullback, version
from . import _ndec

__version__ = version()

__all__ = [
    "Diagnostic",
    "Model",
    "ModelError",
    "Pullback",
    "SolveError",
    "UnsupportedError",
    "__version__",
    "compile",
    "version",
]


def compile(path: str | os.PathLike | None = None, *, source: str | None = None, name: str | None = None) -> Model:
    """Compile a model: ``compile("model.nde")`` from a file, or ``compile(source=TEXT,
    name="m")`` from a string (``name`` is what diagnostics call it; default ``"model"``).

    Raises :class:`ModelError` (a ``ValueError``) with the rendered diagnostics when the model
    has errors, and ``OSError`` (``FileNotFoundError``, …) when the file cannot be read.
    """
    if (path is None) == (source is None):
        raise TypeError("ndec.compile takes a path or source=TEXT (exactly one)")
    if source is not None:
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, got {type(source).__name__}")
        label = "model" if name is None else str(name)
        if not label.endswith(".nde"):
            label = label + ".nde"
        return _ndec.compile_source(source, label)
    if name is not None:
        raise TypeError("name= is for source=; a file's model is named by its file")
    return _ndec.compile_file(os.fspath(path))

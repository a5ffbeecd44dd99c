"""The exceptions ndec raises (the native extension constructs these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic of a model, as ``ndec check`` reports it."""

    severity: str
    """``"error"`` or ``"warning"``."""
    code: str
    """A stable code, e.g. ``"E0101"``."""
    message: str
    file: str
    line: int
    """1-based."""
    column: int
    """1-based."""
    label: str
    """What the caret points at."""
    hint: str | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}[{self.code}]: {self.message}"


class ModelError(ValueError):
    """The model does not compile. ``str(e)`` is the rendered diagnostic text of ``ndec check``
    (``file:line:col``, the source line, a caret, the hint); ``e.diagnostics`` lists them."""

    def __init__(self, message: str, diagnostics: list[Diagnostic]):
        super().__init__(message)
        self.diagnostics = diagnostics


class SolveError(RuntimeError):
    """A solve failed. ``e.t``: the last time reached; ``e.reason``: why, in words;
    ``e.kind``: a stable name of the reason (``"max_steps"``, ``"step_size_underflow"``,
    ``"non_finite_state"``, ``"singular_matrix"``, ``"newton_failure"``); ``e.trajectory``:
    the failed trajectory of a batch (the first, when several failed), else ``None``."""

    def __init__(self, message: str, t: float, reason: str, kind: str, trajectory: int | None):
        super().__init__(message)
        self.t = t
        self.reason = reason
        self.kind = kind
        self.trajectory = trajectory


class UnsupportedError(ValueError, NotImplementedError):
    """Something this version does not offer for this model or method (the message names what
    to use instead): the CLI's exit status 4."""

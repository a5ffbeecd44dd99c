#!/usr/bin/env bash
# Create bench/peers/.venv and install the Python peers (CPU only):
# scipy, numpy, jax (CPU jaxlib), diffrax, equinox, optax; torch, torchdiffeq and torchsde.
# Idempotent: re-running reuses the venv and skips what is installed.
# Exit code: 0 if everything installed; 1 if scipy/numpy failed; 2 if jax/diffrax failed
# (so a caller can still run the scipy half). optax and torch/torchdiffeq are optional:
# their failure is reported but changes no exit code (spiral.py falls back to a hand-written
# Adam without optax; run_spiral.sh records torchdiffeq as failed when torch cannot import).
# SKIP_TORCH=1 skips the torch install (it is several GB from PyPI, see below).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating venv at $VENV with $($PY --version 2>&1)" >&2
    if ! "$PY" -m venv "$VENV"; then
        echo "setup: FAILED to create a venv with $PY (is python3-venv installed?)" >&2
        exit 1
    fi
fi
VPY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

"$VPY" -m pip install -q --upgrade pip >&2 || true

if ! "$VPY" -c 'import scipy, numpy' 2>/dev/null; then
    echo "setup: installing numpy, scipy" >&2
    if ! "$VPY" -m pip install -q numpy scipy >&2; then
        echo "setup: FAILED to install numpy/scipy" >&2
        exit 1
    fi
fi

rc=0
if ! "$VPY" -c 'import jax, diffrax, equinox' 2>/dev/null; then
    echo "setup: installing jax (CPU), equinox, diffrax" >&2
    # plain `jax` pulls the CPU jaxlib wheel; no CUDA extras.
    if ! "$VPY" -m pip install -q jax equinox diffrax >&2; then
        echo "setup: FAILED to install jax/equinox/diffrax" >&2
        rc=2
    fi
fi

# optax: Adam for the diffrax side of the spiral benchmark (optional).
if [ "$rc" = 0 ] && ! "$VPY" -c 'import optax' 2>/dev/null; then
    echo "setup: installing optax" >&2
    "$VPY" -m pip install -q optax >&2 || echo "setup: FAILED to install optax (optional)" >&2
fi

# torch (CPU) + torchdiffeq for the spiral benchmark (optional). The CPU-only wheel index is
# tried first (a ~200 MB wheel); where it cannot be reached (this workplace reaches PyPI only)
# plain PyPI torch is installed, whose Linux wheel pulls the CUDA runtime packages (~3-4 GB)
# even though only the CPU is used. The timeout/retries keep an unreachable index from hanging.
if [ "${SKIP_TORCH:-0}" != 1 ] && ! "$VPY" -c 'import torch, torchdiffeq' 2>/dev/null; then
    if ! "$VPY" -c 'import torch' 2>/dev/null; then
        echo "setup: installing torch (CPU wheel index first)" >&2
        if ! "$VPY" -m pip install -q --timeout 15 --retries 0 torch \
                --index-url https://download.pytorch.org/whl/cpu >&2; then
            echo "setup: CPU wheel index unavailable; installing torch from PyPI (large)" >&2
            "$VPY" -m pip install -q torch >&2 || echo "setup: FAILED to install torch (optional)" >&2
        fi
    fi
    if "$VPY" -c 'import torch' 2>/dev/null; then
        # --no-deps: torchdiffeq's only other dependency is scipy, already here; this keeps
        # pip from re-resolving torch against PyPI.
        "$VPY" -m pip install -q --no-deps torchdiffeq >&2 \
            || echo "setup: FAILED to install torchdiffeq (optional)" >&2
    fi
fi
# torchsde for the SDE benchmark (optional; needs torch). --no-deps for the same reason; its
# one dependency not already here is trampoline.
if [ "${SKIP_TORCH:-0}" != 1 ] && "$VPY" -c 'import torch' 2>/dev/null \
        && ! "$VPY" -c 'import torchsde' 2>/dev/null; then
    echo "setup: installing torchsde" >&2
    "$VPY" -m pip install -q --no-deps torchsde trampoline >&2 \
        || echo "setup: FAILED to install torchsde (optional)" >&2
fi

"$VPY" - <<'PY' >&2
import importlib
for m in ["numpy", "scipy", "jax", "jaxlib", "equinox", "diffrax", "optax", "torch", "torchdiffeq", "torchsde"]:
    try:
        mod = importlib.import_module(m)
        print(f"setup: {m} {getattr(mod, '__version__', '?')}")
    except Exception as e:
        print(f"setup: {m} NOT AVAILABLE ({type(e).__name__}: {e})")
PY
exit $rc

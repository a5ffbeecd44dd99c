#!/usr/bin/env bash
# Create bench/peers/.venv and install the Python peers (CPU only):
# scipy, numpy, jax (CPU jaxlib), diffrax, equinox.
# Idempotent: re-running reuses the venv and skips what is installed.
# Exit code: 0 if everything installed; 1 if scipy/numpy failed; 2 if only jax/diffrax failed
# (so a caller can still run the scipy half).
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

"$VPY" - <<'PY' >&2
import importlib
for m in ["numpy", "scipy", "jax", "jaxlib", "equinox", "diffrax"]:
    try:
        mod = importlib.import_module(m)
        print(f"setup: {m} {getattr(mod, '__version__', '?')}")
    except Exception as e:
        print(f"setup: {m} NOT AVAILABLE ({type(e).__name__}: {e})")
PY
exit $rc

#!/usr/bin/env bash
# Creates (or reuses) the Python environment for ndec's Python package, its tests and demos,
# and prints the path of that environment's python as the LAST line of stdout (everything
# else goes to stderr), so callers can write
#
#   PY=$(bash scripts/python-env.sh)
#
# The venv lives outside the repository, at ${NDEC_PYENV:-$HOME/.cache/ndec/pyenv}, and is
# created with ${NDEC_PYTHON:-python3} (CPython >= 3.10). It gets: numpy, pytest, maturin,
# scipy, scikit-learn, torch, torchdiffeq, torchsde (+ trampoline), jax (CPU jaxlib),
# diffrax, equinox — all from PyPI.
#
# Idempotent and quick when everything is there: a stamp file records the last complete
# check, and while the installed distributions are the same as then, no import is attempted.
# Otherwise every module is imported; only the missing ones are installed, in one pip call
# so that the resolver keeps them consistent with what is installed already.
#
# torch: plain PyPI torch on Linux pulls NVIDIA's CUDA runtime wheels (~3 GB) even though
# only the CPU is used; a `--no-deps` torch does not import. Set NDEC_TORCH_INDEX_URL (e.g.
# https://download.pytorch.org/whl/cpu) to install torch from another index instead.
#
# Exit status: 0 when every module imports; 1 (with the failing modules named) otherwise.
set -euo pipefail

venv=${NDEC_PYENV:-$HOME/.cache/ndec/pyenv}
base_py=${NDEC_PYTHON:-python3}
vpy="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

say() { echo "python-env: $*" >&2; }
die() { echo "python-env: ERROR: $*" >&2; exit 1; }

# One per line: the module to import, then the pip requirement (no spaces) it must satisfy.
# maturin >= 1.9.4 sets PYO3_BUILD_EXTENSION_MODULE (python/Cargo.toml relies on it).
modules='numpy numpy
pytest pytest
maturin maturin>=1.9.4,<2
scipy scipy
sklearn scikit-learn
torch torch
torchdiffeq torchdiffeq
trampoline trampoline
torchsde torchsde
jaxlib jaxlib
jax jax
equinox equinox
diffrax diffrax'

# One run at a time per venv (a second waits for the first's install instead of racing it).
mkdir -p "$(dirname "$venv")"
if [ -n "$(command -v flock || true)" ]; then
    exec 9>"$venv.lock"
    flock 9
fi

if [ ! -x "$vpy" ]; then
    base_path=$(command -v "$base_py") || die "no '$base_py' on PATH (set NDEC_PYTHON to a CPython >= 3.10)"
    "$base_py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "$base_py is $("$base_py" --version 2>&1); CPython >= 3.10 is needed (set NDEC_PYTHON)"
    say "creating venv at $venv with $base_path ($("$base_py" --version 2>&1))"
    "$base_py" -m venv "$venv" >&2 || die "could not create a venv at $venv (is the venv module installed?)"
    "$vpy" -m pip install --quiet --upgrade pip >&2 || say "warning: could not upgrade pip; continuing"
fi
"$vpy" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$vpy is $("$vpy" --version 2>&1); CPython >= 3.10 is needed (remove $venv, set NDEC_PYTHON)"

# Fast path: the last complete check passed for these requirements, and the installed
# distributions (pip renames a *.dist-info for every install, upgrade and uninstall) are the
# same now. ndec itself is left out: run-tests.sh reinstalls it on every run.
site=$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
stamp="$venv/.ndec-env-ok"
installed() { (cd "$site" && ls -d -- *.dist-info) | grep -v '^ndec-' || true; }
want_stamp=$(printf '%s\n%s\n%s\n' "$modules" "${NDEC_TORCH_INDEX_URL:-}" "$(installed)")
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ]; then
    echo "$vpy"
    exit 0
fi

# Prints the requirements whose modules do not import (or whose installed version is outside
# the requirement), one a line; says why on stderr unless the module is simply not installed.
missing() {
    "$vpy" - "$modules" <<'PY'
import importlib, sys
from importlib.metadata import version
from pip._vendor.packaging.requirements import Requirement
for line in sys.argv[1].splitlines():
    mod, spec = line.split()
    try:
        importlib.import_module(mod)
    except Exception as e:  # not only ImportError: a broken install can raise anything
        print(spec)
        if not (isinstance(e, ModuleNotFoundError) and e.name == mod):
            msg = str(e).splitlines()[0] if str(e) else ""
            print(f"python-env: {mod} is installed but does not import: {type(e).__name__}: {msg}",
                  file=sys.stderr)
        continue
    req = Requirement(spec)
    if req.specifier and not req.specifier.contains(version(req.name), prereleases=True):
        print(spec)
        print(f"python-env: {req.name} {version(req.name)} is installed; {spec} is needed",
              file=sys.stderr)
PY
}

todo=$(missing) || die "$vpy could not run the import check"
if [ -n "$todo" ]; then
    # shellcheck disable=SC2086 # one requirement a word
    set -- $todo
    say "installing into $venv: $*"
    if printf '%s\n' "$@" | grep -qx torch && [ -z "${NDEC_TORCH_INDEX_URL:-}" ]; then
        say "(torch from PyPI pulls ~3 GB of NVIDIA CUDA wheels: a few minutes)"
    fi
    start=$SECONDS
    if [ -n "${NDEC_TORCH_INDEX_URL:-}" ] && printf '%s\n' "$@" | grep -qx torch; then
        "$vpy" -m pip install --quiet --index-url "$NDEC_TORCH_INDEX_URL" torch >&2 \
            || die "pip could not install torch from $NDEC_TORCH_INDEX_URL"
    fi
    "$vpy" -m pip install --quiet "$@" >&2 || die "pip could not install: $*"
    todo=$(missing) || die "$vpy could not run the import check"
    [ -z "$todo" ] || die "installed, but these still do not import: $(echo $todo)" \
        "(remove $venv to start over)"
    say "installed in $((SECONDS - start)) s"
fi

"$vpy" - >&2 <<'PY'
from importlib.metadata import version
names = ["numpy", "pytest", "maturin", "scipy", "scikit-learn", "torch", "torchdiffeq",
         "torchsde", "trampoline", "jax", "jaxlib", "equinox", "diffrax"]
print("python-env: " + ", ".join(f"{n} {version(n)}" for n in names))
PY
want_stamp=$(printf '%s\n%s\n%s\n' "$modules" "${NDEC_TORCH_INDEX_URL:-}" "$(installed)")
printf '%s\n' "$want_stamp" >"$stamp"
echo "$vpy"

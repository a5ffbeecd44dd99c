#!/usr/bin/env bash
# Builds the Python package (python/) into ndec's Python environment and runs its tests:
#
#   python/run-tests.sh [PYTEST ARGS...]        (from any directory)
#
# The environment is scripts/python-env.sh's venv (created on first use; torch and jax are
# large). The extension is built by maturin through pip, into the workspace's target/
# (CARGO_TARGET_DIR is honoured); an unchanged tree rebuilds nothing. It is built with
# cargo's dev profile (optimised dependencies, as `cargo test` built them just before, so
# CI compiles only the binding itself); NDEC_PY_PROFILE=release builds the release wheel
# (bench/run_python.sh measures that one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# cargo's rustc probe reads /dev/null; where it is a regular file (see .ci/run), empty it.
if [ ! -c /dev/null ]; then
    echo "run-tests: /dev/null is not the null device; emptying it" >&2
    : >/dev/null || true
fi

PY=$(bash scripts/python-env.sh)
PY=${PY##*$'\n'}
# maturin's build backend runs the `maturin` command: the venv's, with --no-build-isolation.
PATH="$(dirname "$PY"):$PATH"

# --no-build-isolation: use the venv's maturin (no download per build); --no-deps and
# --force-reinstall: always install the wheel just built, never touch numpy.
PROFILE="${NDEC_PY_PROFILE:-dev}"
echo "run-tests: building ($PROFILE profile) and installing ./python" >&2
MATURIN_PEP517_ARGS="--profile $PROFILE" \
    "$PY" -m pip install --quiet --no-build-isolation --no-deps --force-reinstall ./python >&2

# The tests compare with the CLI (`ndec check`'s diagnostics, `ndec run`'s SDE paths).
cargo build --quiet --bin ndec
export NDEC_BIN="$PWD/target/debug/ndec"

exec "$PY" -m pytest python/tests -q "$@"

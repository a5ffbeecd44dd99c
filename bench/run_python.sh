#!/usr/bin/env bash
# ndec as a PyTorch / JAX layer (issue 11) against torchdiffeq and diffrax, in one run:
#
#   bash bench/run_python.sh            # REPEAT=30 BATCH=256 ONLY=crossing,torch,jax,batch
#
# The peers and the package come from the project's Python environment (scripts/python-env.sh:
# a venv outside the repository; torch, torchdiffeq, jax, diffrax from PyPI); the package is
# built into it in release mode first. What is measured is described in
# bench/python/layer_bench.py; results go to bench/results/python-STAMP/ and a table is printed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/bench/results/python-$STAMP"
mkdir -p "$OUT"

PY=$(bash scripts/python-env.sh)
PY=${PY##*$'\n'}
PATH="$(dirname "$PY"):$PATH"
echo "== building ./python into $(dirname "$(dirname "$PY")")" >&2
"$PY" -m pip install --quiet --no-build-isolation --no-deps --force-reinstall ./python >&2

{
    echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores, $(uname -sr)"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) at start (the machine is shared: times move)"
    echo "ndec:    $(git log -1 --format='%h %s' 2>/dev/null | cut -c1-100)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

echo "== bench/python/layer_bench.py" >&2
"$PY" bench/python/layer_bench.py | tee "$OUT/results.jsonl"

"$PY" - "$OUT/results.jsonl" <<'PY'
import json, sys
rows = {r["bench"]: r for r in map(json.loads, open(sys.argv[1]))}
print()
if "torch_gradient" in rows:
    r = rows["torch_gradient"]
    print(f"spiral gradient, torch: ndec.torch {r['ndec_ms']:.2f} ms vs torchdiffeq {r['torchdiffeq_ms']:.1f} ms "
          f"= {r['ratio']:.4f}x (target <= 0.01x); gradients differ by {r['grad_rel_diff']:.1e} (rtol 1e-7 solves)")
if "jax_gradient" in rows:
    r = rows["jax_gradient"]
    print(f"spiral gradient, jax:   ndec.jax {r['ndec_ms']:.2f} ms vs diffrax {r['diffrax_ms']:.2f} ms "
          f"= {r['ratio']:.3f}x (target <= 0.3x); gradients differ by {r['grad_rel_diff']:.1e}")
if "batch_forward_pullback" in rows:
    r = rows["batch_forward_pullback"]
    print(f"batch {r['batch']} forward+pullback: ndec {r['ndec_ms']:.1f} ms vs diffrax vmap {r['diffrax_vmap_ms']:.1f} ms "
          f"= {r['ratio_vs_vmap']:.3f}x (target <= 0.3x); vs diffrax batched state {r['diffrax_batched_state_ms']:.1f} ms "
          f"= {r['ratio_vs_batched_state']:.3f}x")
if "crossing" in rows:
    r = rows["crossing"]
    print(f"crossing (2 states, one rk4 step): numpy solve {r['numpy_solve_us']:.1f} us, solve_vjp+pullback "
          f"{r['numpy_solve_vjp_and_pullback_us']:.1f} us; torch fwd+bwd {r['torch_forward_backward_us']:.0f} us "
          f"(a trivial autograd.Function: {r['torch_trivial_function_us']:.0f} us); jax jit fwd "
          f"{r['jax_jit_forward_us']:.0f} us / value_and_grad {r['jax_jit_value_and_grad_us']:.0f} us (trivial "
          f"pure_callback: {r['jax_trivial_callback_forward_us']:.0f} / {r['jax_trivial_callback_value_and_grad_us']:.0f} us)")
PY
echo "raw results: ${OUT#$ROOT/}/results.jsonl" >&2

#!/usr/bin/env bash
# Width sweep (issue 13): one gradient of the MSE of a neural ODE u' = 0.2·nn(u) − 0.1·u with
# tanh MLPs 2→50→2, 8→64→64→8, 64→256→256→64 and 128→512→512→128 (tsit5, rtol 1e-6, atol
# 1e-8, t ∈ [0, 1], 101 save points), ndec (discrete adjoint) against diffrax (Tsit5,
# RecursiveCheckpointAdjoint, jit) and torchdiffeq (dopri5, backprop), the same weights and data
# for every tool, measured in this one run. Also one vector-field call and one VJP call of each
# width against faer's three matrix–vector products (criterion: `cargo bench --bench
# vector_field -- mlp_`), for GFLOP/s.
#
#   bash bench/run_widths.sh [--build]      (peers from scripts/python-env.sh)
#
# Each width's model, weights (ndec's glorot init, seed 1, saved by `ndec train --iters 0
# --save-params`) and data (the same architecture with seed 7, solved by `ndec run`) are written
# to bench/results/widths-STAMP/N/. Env: REPEAT (gradients per tool, default 20).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/bench/results/widths-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
NDEC="${NDEC:-target/release/ndec}"
REPEAT="${REPEAT:-20}"
[ "${1:-}" = --build ] && { cargo build --release --bin ndec >&2 || exit 1; }
[ -x "$NDEC" ] || { echo "no ndec binary at $NDEC (build it, or pass --build)" >&2; exit 1; }
PY=$(bash scripts/python-env.sh) || exit 1
PY=${PY##*$'\n'}
{
    echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) at start"
    echo "ndec:    $(git log -1 --format='%h %s' | cut -c1-90)"
} | tee "$OUT/machine.txt" >&2
printf '%-22s %10s %10s %12s %10s %12s\n' net ndec_ms diffrax_ms torchdiffeq_ms ndec/dfx ndec/torch | tee "$OUT/table.txt"
for spec in "2 50 1" "8 64 2" "64 256 2" "128 512 2"; do
    set -- $spec
    n=$1; h=$2
    arch="$n -> $h -> $n"; [ "$3" = 2 ] && arch="$n -> $h -> $h -> $n"
    dir="$OUT/$n"; mkdir -p "$dir"
    model() {
        printf 'net nn = mlp(%s, tanh, init = glorot(seed = %s))\nstate u[%s] = 0.5\nu'"'"' = 0.2*nn(u) - 0.1*u\nsolve { t = 0 .. 1, method = tsit5, rtol = 1e-6, atol = 1e-8 }\n' "$arch" "$1" "$n"
    }
    model 1 > "$dir/model.nde"
    model 7 > "$dir/truth.nde"
    "$NDEC" run "$dir/truth.nde" --saveat 0.01 --out "$dir/data.csv" || exit 1
    "$NDEC" train "$dir/model.nde" --data "$dir/data.csv" --iters 0 --save-params "$dir/w0.json" 2> /dev/null || exit 1
    "$NDEC" train "$dir/model.nde" --data "$dir/data.csv" --params "$dir/w0.json" --iters 0 \
        --repeat "$REPEAT" --sensitivity discrete --stats > "$dir/ndec.json" 2> "$dir/ndec.err" || exit 1
    "$PY" bench/widths/peers.py "$dir" --repeat "$REPEAT" > "$dir/peers.json" 2> "$dir/peers.err" \
        || { echo "peers failed for $arch: $(tail -2 "$dir/peers.err")" >&2; exit 1; }
    python3 - "$dir" "$arch" <<'PY' | tee -a "$OUT/table.txt"
import json, sys
d, arch = sys.argv[1:]
nd = json.loads(open(f"{d}/ndec.json").read().splitlines()[-1])
pe = json.loads(open(f"{d}/peers.json").read())
a, b, c = nd["grad_ms_median"], pe["diffrax_ms"], pe["torchdiffeq_ms"]
print(f"{arch:22} {a:10.3f} {b:10.3f} {c:12.3f} {a / b:10.3f} {a / c:12.4f}   "
      f"(losses: ndec {nd['final_loss']:.6g}, diffrax {pe['diffrax_loss']:.6g}, torchdiffeq {pe['torchdiffeq_loss']:.6g})")
PY
done
echo "raw results: ${OUT#$ROOT/}" >&2

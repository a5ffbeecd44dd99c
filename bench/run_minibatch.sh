#!/usr/bin/env bash
# Minibatch benchmark (issue 12): the spiral neural ODE trained on torchdiffeq's demo recipe —
# minibatches of BATCH_SIZE (20) windows of BATCH_TIME (10) observations — ndec train against
# torchdiffeq (one batched (20, 2) state through odeint, dopri5, backprop), both measured in
# this one run on this machine.
#
#   bash bench/run_minibatch.sh           # ndec from ${NDEC:-target/release/ndec}, as built
#   bash bench/run_minibatch.sh --build   # cargo build --release first
#
# Problem: bench/models/spiral_train.nde (u' = nn(u^3), 2 -> 50 -> 2 tanh, 252 params), the
# 1000 observations of bench/spiral/data.csv, weights from bench/spiral/w0.json, rtol 1e-7,
# atol 1e-9, f64. Measures ITERS (2000) Adam iterations (lr 0.002, MSE; docs/training.md's
# recipe): the median minibatch gradient over them, the wall time end to end and the
# full-trajectory MSE each reaches (ndec's final params are also scored by torchdiffeq's
# solver). DEMO=1 adds torchdiffeq's own
# demo recipe (RMSprop 1e-3, L1 loss). The per-solve fixed cost is `cargo bench --bench
# fixed_cost` (criterion), not this script.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/bench/results/minibatch-$STAMP"
mkdir -p "$OUT"
NDEC="${NDEC:-target/release/ndec}"
ITERS="${ITERS:-2000}"
BATCH_TIME="${BATCH_TIME:-10}"
BATCH_SIZE="${BATCH_SIZE:-20}"
for arg in "$@"; do
    case "$arg" in
        --build) cargo build --release --bin ndec >&2 || exit 1 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "run_minibatch.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done
[ -x "$NDEC" ] || { echo "no ndec binary at $NDEC (build it, or pass --build)" >&2; exit 1; }
PY=$(bash scripts/python-env.sh) || { echo "scripts/python-env.sh failed" >&2; exit 1; }
PY=${PY##*$'\n'}
{
    echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) at start"
    echo "ndec:    $(git log -1 --format='%h %s' | cut -c1-90)"
} | tee "$OUT/machine.txt" >&2

TRAIN=(train bench/models/spiral_train.nde --data bench/spiral/data.csv
       --params bench/spiral/w0.json --batch-time "$BATCH_TIME" --batch-size "$BATCH_SIZE"
       --optimizer adam --lr 0.002 --stats)
echo "== ndec: $ITERS iterations end to end" >&2
s=$(date +%s%N)
"$NDEC" "${TRAIN[@]}" --iters "$ITERS" --save-params "$OUT/params_ndec.json" \
    > "$OUT/ndec-train.out" 2> "$OUT/ndec-train.err" \
    || { echo "ndec failed: $(tail -1 "$OUT/ndec-train.err")" >&2; exit 1; }
e=$(date +%s%N)
echo $(( (e - s) / 1000000 )) > "$OUT/ndec-train.ms"
echo "== torchdiffeq: minibatch gradients, $ITERS iterations (minutes)" >&2
OUT_DIR="$OUT" ITERS="$ITERS" BATCH_TIME="$BATCH_TIME" BATCH_SIZE="$BATCH_SIZE" \
    EVAL_PARAMS="$OUT/params_ndec.json" PYTHONPATH="bench/spiral" \
    "$PY" bench/spiral/torchdiffeq_minibatch.py > "$OUT/torchdiffeq.json" 2> "$OUT/torchdiffeq.err" \
    || { echo "torchdiffeq failed: $(tail -2 "$OUT/torchdiffeq.err")" >&2; exit 1; }

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
last = lambda name: json.loads([l for l in open(f"{out}/{name}").read().splitlines() if l.startswith("{")][-1])
tr, td = last("ndec-train.out"), last("torchdiffeq.json")
wall = int(open(f"{out}/ndec-train.ms").read()) / 1e3
rows = [
    ("minibatch gradient, ms (training median)", tr["grad_ms_median"], td["train_grad_ms_median"]),
    (f"{tr['iters']} Adam iterations end to end, s", wall, td["train_wall_s"]),
    ("full-trajectory MSE after training", tr["final_loss"], td["final_full_mse"]),
]
print(open(f"{out}/machine.txt").read().strip())
print(f"{'':40} {'ndec':>12} {'torchdiffeq':>12} {'ratio':>8}")
for name, a, b in rows:
    print(f"{name:40} {a:12.4g} {b:12.4g} {a / b:8.4f}")
print(f"ndec's final params scored by torchdiffeq's dopri5: full MSE {td.get('eval_params_full_mse')}")
print(f"full MSE at w0 (torchdiffeq): {td['full_mse_w0']:.6g}; torchdiffeq's minibatch gradient at w0: "
      f"median {td['minibatch_grad_ms_median']:.4g} ms, min {td['minibatch_grad_ms_min']:.4g} ms")
json.dump({"ndec_train": tr, "ndec_train_wall_s": wall, "torchdiffeq": td},
          open(f"{out}/results.json", "w"))
PY
echo "raw results: ${OUT#$ROOT/}" >&2

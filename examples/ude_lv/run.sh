#!/usr/bin/env bash
# The universal Lotka–Volterra demo with the command line (docs/training.md):
# data from the truth on [0, 6], Adam on minibatch windows then L-BFGS on all the data,
# then the fitted model against the truth on [0, 15] (plot: docs/img/ude_extrapolation.svg).
#   bash examples/ude_lv/run.sh [OUT_DIR]      (uses target/release/ndec; builds it if missing)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$(mktemp -d)}"
NDEC="${NDEC:-$ROOT/target/release/ndec}"
[ -x "$NDEC" ] || (cd "$ROOT" && cargo build --release)
HERE="$ROOT/examples/ude_lv"
mkdir -p "$OUT"
"$NDEC" run "$HERE/truth.nde" --saveat 0.1 --out "$OUT/truth.csv"
awk -F, 'NR == 1 || $1 <= 6.0000001' "$OUT/truth.csv" > "$OUT/data.csv"
"$NDEC" train "$HERE/ude.nde" --data "$OUT/data.csv" --iters 3000 --lr 0.01 \
    --batch-time 10 --batch-size 10 --save-params "$OUT/adam.json"
"$NDEC" train "$HERE/ude.nde" --data "$OUT/data.csv" --params "$OUT/adam.json" \
    --optimizer lbfgs --iters 2000 --save-params "$OUT/fitted.json" --stats
# Evaluate (no iterations) against the whole truth: the plot's right panel shows the model
# (lines) and the truth (points) on [0, 15]; only [0, 6] was seen in training.
"$NDEC" train "$HERE/ude.nde" --data "$OUT/truth.csv" --params "$OUT/fitted.json" \
    --iters 0 --plot "$OUT/ude_extrapolation.svg" --stats
echo "outputs in $OUT"

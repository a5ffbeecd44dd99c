#!/usr/bin/env bash
# The neural DDE demo with the command line (docs/training.md): data from truth.nde on
# [0, 8], Adam then L-BFGS fit model.nde's MLP (of the state one time unit ago) and decay
# rate, then the fitted model against the truth on [0, 12] (plot: docs/img/neural_dde.svg).
#   bash examples/neural_dde/run.sh [OUT_DIR]      (uses target/release/ndec; builds it if missing)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$(mktemp -d)}"
NDEC="${NDEC:-$ROOT/target/release/ndec}"
[ -x "$NDEC" ] || (cd "$ROOT" && cargo build --release)
HERE="$ROOT/examples/neural_dde"
mkdir -p "$OUT"
"$NDEC" run "$HERE/truth.nde" --out "$OUT/truth.csv"
awk -F, 'NR == 1 || $1 <= 8.0000001' "$OUT/truth.csv" > "$OUT/data.csv"
"$NDEC" train "$HERE/model.nde" --data "$OUT/data.csv" --iters 300 --lr 0.02 \
    --save-params "$OUT/adam.json"
"$NDEC" train "$HERE/model.nde" --data "$OUT/data.csv" --params "$OUT/adam.json" \
    --optimizer lbfgs --iters 300 --save-params "$OUT/fitted.json" --stats
# Evaluate (no iterations) against the whole truth: only [0, 8] was seen in training.
"$NDEC" train "$HERE/model.nde" --data "$OUT/truth.csv" --params "$OUT/fitted.json" \
    --iters 0 --plot "$OUT/neural_dde.svg" --stats
echo "outputs in $OUT"

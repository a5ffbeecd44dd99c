#!/usr/bin/env bash
# Spiral neural-ODE benchmark (issue 5): one loss+gradient and a 500-iteration Adam fit,
# ndec against diffrax (Tsit5, RecursiveCheckpointAdjoint, jit) and torchdiffeq (dopri5,
# backprop; its odeint_adjoint gradient once), all measured in this one run on this machine.
#
#   bash bench/run_spiral.sh           # ndec from ${NDEC:-target/release/ndec}, as built
#   bash bench/run_spiral.sh --build   # cargo build --release first
#
# Problem: u' = nn(u^3), nn = 2 -> 50 (tanh) -> 2 (252 params), u0 = [2, 0], t in [0, 25],
# MSE over data.csv (1000 points of the true spiral u' = A u^3), rtol 1e-7, atol 1e-9, f64,
# every tool starting from bench/spiral/w0.json (bench/spiral/make_data.py makes both files).
# Env: NDEC (binary), NDEC_SENS (ndec --sensitivity, default discrete), NDEC_REPEAT (gradient
# evaluations for ndec's median, default 200), REPEAT_DIFFRAX (100), REPEAT_TORCH (5), ITERS
# (500), SKIP_ADJOINT=1 (skip torchdiffeq's ~10 s adjoint), SKIP_TORCH=1 (no torchdiffeq),
# TRAIN_BUDGET_S (torchdiffeq's training stops and extrapolates past this, default 900).
# A step that fails is reported and the script goes on. Runs one tool at a time (2 cores).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH="$ROOT/bench"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/spiral-$STAMP"
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
: > "$RES"
NDEC="${NDEC:-target/release/ndec}"
NDEC_SENS="${NDEC_SENS:-discrete}"
NDEC_REPEAT="${NDEC_REPEAT:-200}"
ITERS="${ITERS:-500}"
BUILD=0
for arg in "$@"; do
    case "$arg" in
        --build) BUILD=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "run_spiral.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

FAILED=()
note_fail() { FAILED+=("$1"); echo "!! $1" >&2; }
# the first error line of a log, else its last line
first_err() { grep -m1 -iE 'error' "$1" || tail -n 1 "$1"; }
record_error() { printf '{"tool":"%s","method":"%s","error":%s}\n' "$1" "$2" \
    "$(printf '%s' "$3" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()[-400:]))')" >> "$RES"; }
# timed NAME CMD...: stdout/stderr to $OUT/NAME.{out,err}, whole-process wall ms to $OUT/NAME.ms
timed() {
    local name=$1 s e rc; shift
    s=$(date +%s%N); "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"; rc=$?; e=$(date +%s%N)
    echo $(( (e - s) / 1000000 )) > "$OUT/$name.ms"; echo "$rc" > "$OUT/$name.rc"; return "$rc"
}

echo "== bench/run_spiral.sh  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  results: ${OUT#$ROOT/}" >&2
if [ "$BUILD" = 1 ]; then
    echo "== cargo build --release (ndec; may wait on the cargo lock)" >&2
    cargo build --release --bin ndec > "$OUT/build-ndec.log" 2>&1 \
        || note_fail "ndec build failed (see ${OUT#$ROOT/}/build-ndec.log)"
fi

# ---------------------------------------------------------------- machine
{
    echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores, $(uname -sr)"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) at start (the machine is shared: times move)"
    echo "ndec:    $(git log -1 --format='%h %s' 2>/dev/null | cut -c1-100)$( [ "$(git status --porcelain -- src Cargo.toml Cargo.lock grammar 2>/dev/null | wc -l)" != 0 ] && echo " (+uncommitted changes in src/Cargo/grammar)")"
    [ -x "$NDEC" ] && echo "         $NDEC built $(stat -c '%y' "$NDEC" | cut -c1-19)"
} > "$OUT/machine.txt"

# ---------------------------------------------------------------- inputs and peers
echo "== bench/peers/setup.sh (venv at bench/peers/.venv)" >&2
bash "$BENCH/peers/setup.sh" > "$OUT/setup.log" 2>&1
SETUP_RC=$?
PY="$BENCH/peers/.venv/bin/python"
[ "$SETUP_RC" = 0 ] || note_fail "setup.sh exited $SETUP_RC (see ${OUT#$ROOT/}/setup.log)"
echo "== bench/spiral/make_data.py" >&2
"$PY" "$BENCH/spiral/make_data.py" >&2 || note_fail "make_data.py failed"
if [ ! -s "$BENCH/spiral/data.csv" ] || [ ! -s "$BENCH/spiral/w0.json" ]; then
    note_fail "no bench/spiral/data.csv or w0.json: nothing to run"; exit 1
fi

# ---------------------------------------------------------------- ndec
TRAIN=(train "$BENCH/models/spiral_train.nde" --data "$BENCH/spiral/data.csv"
       --params "$BENCH/spiral/w0.json" --sensitivity "$NDEC_SENS" --stats)
if [ -x "$NDEC" ]; then
    echo "== ndec: gradient at w0 (--sensitivity $NDEC_SENS --dump-gradient)" >&2
    timed ndec-grad "$NDEC" "${TRAIN[@]}" --iters 0 --dump-gradient "$OUT/grad_ndec.json" \
        || note_fail "ndec gradient run exited $(cat "$OUT/ndec-grad.rc"): $(first_err "$OUT/ndec-grad.err")"
    echo "== ndec: $NDEC_REPEAT gradient evaluations (--repeat)" >&2
    timed ndec-repeat "$NDEC" "${TRAIN[@]}" --iters 0 --repeat "$NDEC_REPEAT" \
        || note_fail "ndec --repeat run exited $(cat "$OUT/ndec-repeat.rc"): $(first_err "$OUT/ndec-repeat.err")"
    echo "== ndec: $ITERS Adam iterations" >&2
    timed ndec-train "$NDEC" "${TRAIN[@]}" --iters "$ITERS" --lr 0.01 --optimizer adam \
        --save-params "$OUT/params_ndec.json" \
        || note_fail "ndec training exited $(cat "$OUT/ndec-train.rc"): $(first_err "$OUT/ndec-train.err")"
    # one record from the three runs' --stats lines (a failed run leaves its error instead)
    python3 - "$OUT" "$NDEC_SENS" >> "$RES" <<'PY'
import json, os, sys
out, sens = sys.argv[1:3]
def run(name):
    rc = int(open(f"{out}/{name}.rc").read())
    lines = [l for l in open(f"{out}/{name}.out").read().splitlines() if l.startswith("{")]
    if rc != 0 or not lines:
        err = open(f"{out}/{name}.err").read().strip().splitlines() or ["(no stderr)"]
        err = next((l for l in err if "error" in l.lower()), err[-1])[:300]
        return None, f"exit {rc}: {err}" if rc else "no --stats line"
    return json.loads(lines[-1]), None
r = {"tool": "ndec", "method": "tsit5", "sensitivity": sens}
g, e = run("ndec-grad")
if g:
    r.update(compile_ms=g.get("compile_ms"), first_gradient_ms=g.get("first_gradient_ms"),
             loss_w0=g.get("final_loss"), grad_ms_single=g.get("grad_ms_median"),
             steps=g.get("steps"), process_ms=int(open(f"{out}/ndec-grad.ms").read()))
    if os.path.exists(f"{out}/grad_ndec.json"):
        r["gradient_file"] = f"{out}/grad_ndec.json"
else:
    r["grad_error"] = e
g, e = run("ndec-repeat")
if g:
    r.update(grad_ms_median=g.get("grad_ms_median"), repeat=g.get("repeat"),
             grad_ms_min=g.get("grad_ms_min"))
else:
    r["repeat_error"] = e
    if r.get("grad_ms_single") is not None:  # fall back on the one evaluation of the --iters 0 run
        r["grad_ms_median"] = r["grad_ms_single"]
        r["note"] = "grad ms is from ONE evaluation (the --repeat run failed)"
g, e = run("ndec-train")
if g:
    r.update(iters=g.get("iters"), final_loss=g.get("final_loss"),
             train_wall_s=int(open(f"{out}/ndec-train.ms").read()) / 1e3)
else:
    r["train_error"] = e
print(json.dumps(r))
PY
else
    note_fail "no ndec binary at $NDEC (build it, or pass --build)"
    record_error ndec tsit5 "no binary at $NDEC"
fi

# ---------------------------------------------------------------- diffrax
EVAL=()
[ -s "$OUT/params_ndec.json" ] && EVAL=(--eval-params "$OUT/params_ndec.json")  # checks ndec's final loss
echo "== diffrax (first call compiles, ~10 s; then ${REPEAT_DIFFRAX:-100} gradients; $ITERS Adam steps; a Dopri8 reference gradient)" >&2
if ! OUT_DIR="$OUT" "$PY" "$BENCH/spiral/diffrax_spiral.py" --repeat "${REPEAT_DIFFRAX:-100}" \
        --iters "$ITERS" --reference "${EVAL[@]}" >> "$RES" 2> "$OUT/diffrax.err"; then
    note_fail "diffrax_spiral.py failed: $(tail -n 2 "$OUT/diffrax.err" | tr '\n' ' ')"
    record_error diffrax Tsit5 "$(cat "$OUT/diffrax.err")"
fi

# ---------------------------------------------------------------- torchdiffeq
if [ "${SKIP_TORCH:-0}" = 1 ]; then
    echo "== torchdiffeq skipped (SKIP_TORCH=1)" >&2
elif ! "$PY" -c 'import torch, torchdiffeq' 2>/dev/null; then
    note_fail "torch/torchdiffeq not importable (see ${OUT#$ROOT/}/setup.log)"
    record_error torchdiffeq dopri5 "not installed: $(grep -iE 'torch' "$OUT/setup.log" | tail -2)"
else
    echo "== torchdiffeq (backprop gradients, one odeint_adjoint gradient, $ITERS Adam steps: minutes)" >&2
    if ! OUT_DIR="$OUT" REPEAT="${REPEAT_TORCH:-5}" ITERS="$ITERS" "$PY" "$BENCH/spiral/torchdiffeq_spiral.py" \
            >> "$RES" 2> "$OUT/torchdiffeq.err"; then
        note_fail "torchdiffeq_spiral.py failed: $(tail -n 2 "$OUT/torchdiffeq.err" | tr '\n' ' ')"
        record_error torchdiffeq dopri5 "$(cat "$OUT/torchdiffeq.err")"
    fi
fi

# ---------------------------------------------------------------- table
PYTHONPATH="$BENCH/spiral" python3 "$BENCH/spiral/table.py" "$RES" "$OUT/machine.txt" > "$OUT/table.txt"
cat "$OUT/table.txt"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo
    echo "failures:"
    for f in "${FAILED[@]}"; do echo "  - $f"; done
fi
echo
echo "raw results: ${OUT#$ROOT/}/results.jsonl"

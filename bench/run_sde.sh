#!/usr/bin/env bash
# SDE ensemble benchmark (issue 6): 10,000-path GBM and Ornstein–Uhlenbeck ensembles,
# Euler–Maruyama with dt = 1e-3 from t = 0 to 1 (1000 steps per path), end state only,
# float64: ndec vs diffrax (jit + vmap, UnsafeBrownianPath) vs torchsde (one batched sdeint,
# BrownianInterval), measured in this one run on this machine, with ratios per ensemble.
# Threads: ndec on every core (rayon) and on one (RAYON_NUM_THREADS=1); diffrax with XLA's CPU
# defaults; torchsde with torch's intra-op pool on every core. Each peer reports cores_used
# (process CPU time / wall time), so the table says how many cores each actually kept busy.
#
#   bash bench/run_sde.sh            # build ndec (release), install peers if needed, run, print the table
#   bash bench/run_sde.sh --no-build # use target/release/ndec as it is
#
# Env: PATHS (10000), REPEAT (5 timed repetitions each; the table uses the minimum and median).
# Models: bench/models/gbm_sde.nde (mu = 0.05, sigma = 0.2, x0 = 1) and ou_sde.nde (theta = 1,
# m = 0.5, s = 0.3, x0 = 0); the peers are bench/peers/sde.py (diffrax) and
# bench/peers/sde_torchsde.py (torchsde) with the same problems. bench/peers/setup.sh installs
# them (torch and torchsde from PyPI when missing).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH="$ROOT/bench"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/sde-$STAMP"
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
: > "$RES"
PATHS="${PATHS:-10000}"
REPEAT="${REPEAT:-5}"
BUILD=1
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "run_sde.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done
FAILED=()
note_fail() { FAILED+=("$1"); echo "!! $1" >&2; }

NDEC="${CARGO_TARGET_DIR:-$ROOT/target}/release/ndec"
if [ "$BUILD" = 1 ]; then
    echo "== cargo build --release --bin ndec" >&2
    cargo build --release --bin ndec > "$OUT/build-ndec.log" 2>&1 \
        || note_fail "ndec build failed (see ${OUT#$ROOT/}/build-ndec.log)"
fi
{
    echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "ndec:    $(git -C "$ROOT" log -1 --format='%h %s' | cut -c1-100)"
} > "$OUT/machine.txt"

# ---------------------------------------------------------------- ndec
# "ndec": every core (rayon's default); "ndec-1t": one thread.
for prob in gbm ou; do
    for threads in all 1; do
        if [ ! -x "$NDEC" ]; then note_fail "no ndec binary at $NDEC"; break 2; fi
        tool=ndec; env=()
        if [ "$threads" = 1 ]; then tool=ndec-1t; env=(RAYON_NUM_THREADS=1); fi
        echo "== $tool run bench/models/${prob}_sde.nde --ensemble $PATHS --dt 1e-3 --repeat $REPEAT" >&2
        if env "${env[@]}" "$NDEC" run "$BENCH/models/${prob}_sde.nde" --t1 1 --method euler_maruyama \
            --dt 1e-3 --ensemble "$PATHS" --seed 1 --repeat "$REPEAT" --stats --out "$OUT/$tool-$prob.csv" \
            > "$OUT/$tool-$prob.out" 2> "$OUT/$tool-$prob.err"; then
            python3 - "$tool" "$prob" "$OUT/$tool-$prob.out" "$OUT/$tool-$prob.csv" "$threads" >> "$RES" <<'PY'
import json, os, statistics, sys
tool, prob, stats_file, csv_file, threads = sys.argv[1:6]
s = json.loads(open(stats_file).read().splitlines()[-1])
ends = [float(l.split(",")[2]) for l in open(csv_file).read().splitlines()[1:] if l.split(",")[1] == "1.0"]
print(json.dumps({"tool": tool, "problem": prob, "paths": s["trajectories"],
    "threads": os.cpu_count() if threads == "all" else 1,
    "compile_ms": s["compile_ms"], "solve_ms_min": s["solve_ms_min"],
    "solve_ms_median": s["solve_ms_median"], "steps": s["steps"],
    "mean": statistics.fmean(ends), "var": statistics.pvariance(ends)}))
PY
        else
            note_fail "$tool $prob failed: $(tail -n 3 "$OUT/$tool-$prob.err" | tr '\n' ' ')"
        fi
    done
done

# ---------------------------------------------------------------- peers
PY="$BENCH/peers/.venv/bin/python"
if ! "$PY" -c 'import diffrax, torchsde' 2>/dev/null; then
    echo "== bench/peers/setup.sh (venv at bench/peers/.venv; torch and torchsde from PyPI)" >&2
    SKIP_TORCH=0 bash "$BENCH/peers/setup.sh" > "$OUT/setup.log" 2>&1 \
        || note_fail "peer setup exited non-zero (see ${OUT#$ROOT/}/setup.log)"
fi
"$PY" -c 'import jax, diffrax, torch, torchsde; print("peers:   jax", jax.__version__, "diffrax", diffrax.__version__, "torch", torch.__version__, "torchsde", torchsde.__version__)' \
    >> "$OUT/machine.txt" 2>/dev/null || true
echo "== bench/peers/sde.py $PATHS $REPEAT (diffrax)" >&2
"$PY" "$BENCH/peers/sde.py" "$PATHS" "$REPEAT" >> "$RES" 2> "$OUT/diffrax.err" \
    || note_fail "diffrax failed: $(tail -n 3 "$OUT/diffrax.err" | tr '\n' ' ')"
echo "== bench/peers/sde_torchsde.py $PATHS $REPEAT (torchsde)" >&2
"$PY" "$BENCH/peers/sde_torchsde.py" "$PATHS" "$REPEAT" "$(nproc)" >> "$RES" 2> "$OUT/torchsde.err" \
    || note_fail "torchsde failed: $(tail -n 3 "$OUT/torchsde.err" | tr '\n' ' ')"

# ---------------------------------------------------------------- table
python3 - "$RES" > "$OUT/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["tool"], r["problem"]): r for r in rows}
print("| problem | tool | threads / cores used | solve ms (min) | solve ms (median) | first call ms | mean x(1) | var x(1) | ÷ ndec (median) |")
print("|---|---|---|---|---|---|---|---|---|")
for prob in ["gbm", "ou"]:
    base = by.get(("ndec", prob))
    for tool in ["ndec", "ndec-1t", "diffrax", "torchsde"]:
        r = by.get((tool, prob))
        if r is None:
            continue
        cores = f"{r['threads']}" if "threads" in r else ""
        if "cores_used" in r:
            cores += ("" if not cores else " / ") + f"{r['cores_used']:.2f}"
        ratio = f"{r['solve_ms_median'] / base['solve_ms_median']:.1f}x" if base and r is not base else ""
        print(f"| {prob} | {tool} | {cores} | {r['solve_ms_min']:.1f} | {r['solve_ms_median']:.1f} | "
              f"{r['compile_ms']:.1f} | {r['mean']:.5f} | {r['var']:.5f} | {ratio} |")
PY
cat "$OUT/machine.txt" "$OUT/table.md"
if [ "${#FAILED[@]}" -gt 0 ]; then
    printf '!! %s\n' "${FAILED[@]}" >&2
    exit 1
fi

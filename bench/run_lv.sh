#!/usr/bin/env bash
# Side-by-side Lotka–Volterra benchmark (issue 3): ndec vs diffsol (DiffSL + Cranelift),
# scipy solve_ivp (RK45, DOP853) and diffrax Tsit5 (jit), all measured in this one run on
# this machine, with ratios.
#
#   bash bench/run_lv.sh            # build, install peers if needed, run, print the table
#   bash bench/run_lv.sh --stiff    # also run diffsol's ROBER and heat N=1000 variants (issue 4)
#   bash bench/run_lv.sh --no-build # skip both cargo builds (use the binaries as they are)
#
# Problem: x' = a x - b x y, y' = c x y - d y, a=1.5 b=1 c=3 d=1, x0=y0=1, t in [0,10],
# tsit5 (diffsol: tsit45, scipy: RK45/DOP853), rtol = atol = 1e-6, end state only.
# Env: REPEAT (ndec and diffsol repetitions, default 2000), REPEAT_SCIPY (100),
# REPEAT_DIFFRAX (1000). A step that fails is reported and the script goes on.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH="$ROOT/bench"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/lv-$STAMP"
mkdir -p "$OUT"
RES="$OUT/results.jsonl"
: > "$RES"
REPEAT="${REPEAT:-2000}"
REPEAT_SCIPY="${REPEAT_SCIPY:-100}"
REPEAT_DIFFRAX="${REPEAT_DIFFRAX:-1000}"
STIFF=0
BUILD=1
for arg in "$@"; do
    case "$arg" in
        --stiff) STIFF=1 ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "run_lv.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

FAILED=()
note_fail() { FAILED+=("$1"); echo "!! $1" >&2; }
# Append an error record for a tool so the table shows it.
record_error() { printf '{"tool":"%s","method":"%s","error":%s}\n' "$1" "$2" \
    "$(printf '%s' "$3" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()[-400:]))')" >> "$RES"; }

echo "== bench/run_lv.sh  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  results: ${OUT#$ROOT/}" >&2

# ---------------------------------------------------------------- builds
NDEC="$ROOT/target/release/ndec"
DSB="$BENCH/diffsol/target/release/diffsol-bench"
if [ "$BUILD" = 1 ]; then
    echo "== cargo build --release (ndec; may wait on the cargo lock)" >&2
    if ! cargo build --release --bin ndec > "$OUT/build-ndec.log" 2>&1; then
        note_fail "ndec build failed (see ${OUT#$ROOT/}/build-ndec.log): $(grep -m1 -E '^error' "$OUT/build-ndec.log")"
    fi
    echo "== cargo build --release (bench/diffsol: diffsol + DiffSL/Cranelift; first build is slow)" >&2
    if ! cargo build --release --manifest-path "$BENCH/diffsol/Cargo.toml" > "$OUT/build-diffsol.log" 2>&1; then
        note_fail "diffsol bench build failed (see ${OUT#$ROOT/}/build-diffsol.log): $(grep -m1 -E '^error' "$OUT/build-diffsol.log")"
    fi
fi

# ---------------------------------------------------------------- machine
NDEC_COMMIT="$(git -C "$ROOT" log -1 --format='%h %s' 2>/dev/null | cut -c1-100)"
NDEC_DIRTY="$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock build.rs grammar 2>/dev/null | wc -l)"
CPU="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
NCPU="$(nproc 2>/dev/null)"
{
    echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: ${CPU:-unknown CPU}, $NCPU cores ($(lscpu 2>/dev/null | sed -n 's/^CPU(s):[[:space:]]*//p') CPUs listed), $(uname -sr)"
    echo "rustc:   $(rustc --version 2>/dev/null)"
    echo "ndec:    $NDEC_COMMIT$( [ "$NDEC_DIRTY" != 0 ] && echo " (+$NDEC_DIRTY uncommitted changes in src/Cargo/grammar)")"
    [ -x "$NDEC" ] && echo "         binary $(stat -c '%y' "$NDEC" | cut -c1-19)"
} > "$OUT/machine.txt"

# ---------------------------------------------------------------- ndec
if [ -x "$NDEC" ]; then
    echo "== ndec run bench/models/lv.nde --repeat $REPEAT" >&2
    if "$NDEC" run "$BENCH/models/lv.nde" --t1 10 --rtol 1e-6 --atol 1e-6 --repeat "$REPEAT" --stats \
        > "$OUT/ndec.out" 2> "$OUT/ndec.err"; then
        tail -n 1 "$OUT/ndec.out" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
# the CSV before the JSON line holds the end state
rows = [l for l in open(sys.argv[1]).read().splitlines() if l and l[0].isdigit()]
end = [float(v) for v in rows[-1].split(",")[1:]] if rows else None
print(json.dumps({"tool": "ndec", "method": "tsit5", "repeat": s.get("repeat"),
    "solve_us_min": s["solve_ms_min"] * 1e3, "solve_us_median": s["solve_ms_median"] * 1e3,
    "steps": s.get("steps"), "rejected": s.get("rejected"), "rhs_evals": s.get("rhs_evals"),
    "compile_ms": s.get("compile_ms"), "end_state": end}))' "$OUT/ndec.out" >> "$RES" \
            || { note_fail "ndec: could not parse its --stats line"; record_error ndec tsit5 "unparsable --stats output"; }
    else
        note_fail "ndec run failed: $(tail -n 3 "$OUT/ndec.err" | tr '\n' ' ')"
        record_error ndec tsit5 "$(cat "$OUT/ndec.err")"
    fi
else
    note_fail "no ndec binary at ${NDEC#$ROOT/}"
    record_error ndec tsit5 "no binary"
fi

# ---------------------------------------------------------------- diffsol
if [ -x "$DSB" ]; then
    echo "== diffsol-bench lv --repeat $REPEAT" >&2
    # nalgebra (diffsol's documented default, the faster here) and faer containers
    for la in nalgebra faer; do
        if ! "$DSB" lv --la "$la" --repeat "$REPEAT" --warmup 200 >> "$RES" 2>> "$OUT/diffsol.err"; then
            note_fail "diffsol lv ($la) failed: $(tail -n 3 "$OUT/diffsol.err" | tr '\n' ' ')"
            record_error diffsol "tsit45/$la" "$(cat "$OUT/diffsol.err")"
        fi
    done
    if [ "$STIFF" = 1 ]; then
        echo "== diffsol-bench rober / heat (issue 4 variants)" >&2
        "$DSB" rober >> "$OUT/stiff.jsonl" 2>> "$OUT/diffsol.err" || note_fail "diffsol rober failed: $(tail -n 2 "$OUT/diffsol.err" | tr '\n' ' ')"
        "$DSB" heat --n 1000 >> "$OUT/stiff.jsonl" 2>> "$OUT/diffsol.err" || note_fail "diffsol heat failed: $(tail -n 2 "$OUT/diffsol.err" | tr '\n' ' ')"
    fi
else
    note_fail "no diffsol-bench binary at ${DSB#$ROOT/} (build failed?)"
    record_error diffsol tsit45 "no binary (build failed?)"
fi

# ---------------------------------------------------------------- Python peers
echo "== bench/peers/setup.sh (venv at bench/peers/.venv)" >&2
bash "$BENCH/peers/setup.sh" > "$OUT/setup.log" 2>&1
SETUP_RC=$?
PY="$BENCH/peers/.venv/bin/python"
case "$SETUP_RC" in
    0) ONLY="" ;;
    2) note_fail "jax/diffrax did not install (see ${OUT#$ROOT/}/setup.log): $(grep -m1 -iE 'error|FAILED' "$OUT/setup.log")"
       record_error diffrax Tsit5 "install failed: $(grep -iE 'error|FAILED' "$OUT/setup.log" | head -3)"
       ONLY="--only scipy" ;;
    *) note_fail "Python peers did not install (see ${OUT#$ROOT/}/setup.log): $(grep -m1 -iE 'error|FAILED' "$OUT/setup.log")"
       record_error scipy RK45 "install failed"; record_error diffrax Tsit5 "install failed"
       ONLY="skip" ;;
esac
if [ "$ONLY" != skip ]; then
    echo "== bench/peers/lv.py $ONLY" >&2
    # shellcheck disable=SC2086
    if ! "$PY" "$BENCH/peers/lv.py" $ONLY --repeat-scipy "$REPEAT_SCIPY" --repeat-diffrax "$REPEAT_DIFFRAX" \
        >> "$RES" 2> "$OUT/peers.err"; then
        note_fail "lv.py exited non-zero: $(tail -n 3 "$OUT/peers.err" | tr '\n' ' ')"
    fi
fi

# ---------------------------------------------------------------- table
python3 - "$RES" "$OUT/machine.txt" "$OUT/stiff.jsonl" > "$OUT/table.txt" <<'PY'
import json, os, sys
res, machine, stiff = sys.argv[1:4]
rows = []
for line in open(res):
    line = line.strip()
    if line.startswith("{"):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
print(open(machine).read().rstrip())
print("problem: Lotka-Volterra a=1.5 b=1 c=3 d=1, x0=y0=1, t in [0,10], rtol=atol=1e-6, end state only")
print()
nd = next((r for r in rows if r.get("tool") == "ndec" and "error" not in r), None)
targets = {"diffsol": ("ndec <= 0.5x diffsol", 2.0), "scipy": (">= 100x faster", 100.0),
           "diffrax": (">= 5x faster", 5.0)}
hdr = f"{'tool':8} {'method':15} {'min us':>10} {'median us':>10} {'steps':>6} {'rhs':>6} {'ndec/peer':>10} {'speedup':>8} {'(min)':>8}  target"
print(hdr)
print("-" * (len(hdr) + 22))
for r in rows:
    tool, meth = r.get("tool", "?"), r.get("method", "")
    if r.get("la"):
        meth += "/" + r["la"]
    if "error" in r:
        print(f"{tool:8} {meth:15} FAILED: {r['error'].strip().splitlines()[-1] if r['error'].strip() else 'error'}")
        continue
    mn, md = r["solve_us_min"], r["solve_us_median"]
    steps = r.get("steps"); rhs = r.get("rhs_evals")
    line = f"{tool:8} {meth:15} {mn:10.2f} {md:10.2f} {str(steps if steps is not None else '-'):>6} {str(rhs if rhs is not None else '-'):>6}"
    if nd is not None and tool != "ndec":
        ratio = nd["solve_us_median"] / md
        speed = md / nd["solve_us_median"]
        speed_min = mn / nd["solve_us_min"]
        t = targets.get(tool)
        verdict = ""
        if t:
            verdict = f"{t[0]}: {'MET' if speed >= t[1] else 'NOT MET'}"
        line += f" {ratio:10.3f} {speed:7.1f}x {speed_min:7.1f}x  {verdict}"
    print(line)
print()
print("ndec/peer = ndec median time / peer median time (lower is better for ndec);")
print("speedup = peer time / ndec time, on medians and (min) on minima.")
if nd and nd.get("end_state"):
    print()
    print("end state at t=10 (x, y), for checking that all solved the same problem:")
    for r in rows:
        if r.get("end_state"):
            print(f"  {r['tool']:8} {r.get('method','') + ('/' + r['la'] if r.get('la') else ''):15} " + ", ".join(f"{v:.8f}" for v in r["end_state"]))
extra = [r for r in rows if r.get("compile_ms") is not None]
if extra:
    print()
    print("compile/first-call time: " + "; ".join(f"{r['tool']} {r.get('la') or r.get('method','')} {r['compile_ms']:.2f} ms" for r in extra))
if os.path.exists(stiff):
    print()
    print("diffsol stiff variants (issue 4):")
    for line in open(stiff):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        print(f"  {r['model']:14} {r['method']} ({r['la']}) rtol={r['rtol']} atol={r['atol']} t1={r['t1']}"
              f"{' n='+str(r['n']) if 'n' in r else ''}: min {r['solve_us_min']/1e3:.3f} ms,"
              f" median {r['solve_us_median']/1e3:.3f} ms, steps {r['steps']}, compile {r['compile_ms']:.1f} ms")
PY
cat "$OUT/table.txt"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo
    echo "failures:"
    for f in "${FAILED[@]}"; do echo "  - $f"; done
fi
echo
echo "raw results: ${OUT#$ROOT/}/results.jsonl"

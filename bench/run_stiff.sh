#!/usr/bin/env bash
# Stiff benchmarks (issue 4), all measured in this one run on this machine:
#   ROBER t in [0, 1e5], rtol 1e-6, atol 1e-10      ndec (rodas5, bdf) vs diffsol BDF vs scipy BDF/Radau/LSODA
#   heat N = 1000 t in [0, 10], rtol 1e-6, atol 1e-8 ndec (bdf, rodas5) vs diffsol BDF (sparse) vs scipy BDF/Radau
# and compile times. Needs target/release/ndec and bench/diffsol (bash bench/run_lv.sh builds both and
# the Python venv). Usage: bash bench/run_stiff.sh
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NDEC="$ROOT/target/release/ndec"
DSB="$ROOT/bench/diffsol/target/release/diffsol-bench"
PY="$ROOT/bench/peers/.venv/bin/python"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "ndec:    $(git log -1 --format='%h %s' | cut -c1-70)"
echo
RES=$(mktemp)
ndec_row() { # problem model method t1 rtol atol
    "$NDEC" run "$2" --t1 "$4" --method "$3" --rtol "$5" --atol "$6" --repeat "${REPEAT:-20}" --stats --out /dev/null | tail -n 1 |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"tool":"ndec","problem":sys.argv[1],"method":sys.argv[2],"solve_us_min":d["solve_ms_min"]*1e3,"solve_us_median":d["solve_ms_median"]*1e3,"steps":d["steps"],"compile_ms":d["compile_ms"]}))' "$1" "$3" >> "$RES"
}
ndec_row rober bench/models/rober.nde rodas5 1e5 1e-6 1e-10
ndec_row rober bench/models/rober.nde bdf 1e5 1e-6 1e-10
ndec_row rober bench/models/rober.nde rosenbrock23 1e5 1e-6 1e-10
ndec_row rober bench/models/rober.nde auto 1e5 1e-6 1e-10
ndec_row heat1000 bench/models/heat1000.nde bdf 10 1e-6 1e-8
ndec_row heat1000 bench/models/heat1000.nde rodas5 10 1e-6 1e-8
if [ -x "$DSB" ]; then
    "$DSB" rober | python3 -c 'import json,sys; d=json.load(sys.stdin); d["problem"]="rober"; d["method"]="bdf (dense)"; print(json.dumps(d))' >> "$RES"
    "$DSB" heat --n 1000 | python3 -c 'import json,sys; d=json.load(sys.stdin); d["problem"]="heat1000"; d["method"]="bdf (sparse)"; print(json.dumps(d))' >> "$RES"
else
    echo "diffsol: no binary at $DSB (run bash bench/run_lv.sh once to build it)"
fi
if [ -x "$PY" ]; then
    "$PY" bench/peers/stiff.py --repeat 5 >> "$RES"
else
    echo "scipy: no venv at bench/peers/.venv (run bash bench/peers/setup.sh)"
fi
python3 bench/stiff_table.py < "$RES"
rm -f "$RES"

#!/usr/bin/env bash
# Growth of each compiler stage with model size: times `ndec check` (lex, parse, check) and
# `ndec compile --emit ir` (plus lowering, differentiation) and `ndec run` to t1 = 0.001 (plus
# the JIT) for models of size N and 4N, and prints the ratio: ~4 is linear, ~16 quadratic.
# Usage: bash bench/complexity.sh [N]   (default 1500). Results go in docs/limits.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin ndec >/dev/null 2>&1 || cargo build --bin ndec
NDEC=target/debug/ndec  # the dev profile (optimised); ratios are what count
N=${1:-1500}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gen() { # kind n file
    python3 - "$1" "$2" "$3" <<'PY'
import sys
kind, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "states":          # n scalar states, one equation each
    text = "".join(f"state x{i} = 1\n" for i in range(n)) + "".join(f"x{i}' = -x{i}\n" for i in range(n))
elif kind == "sum":           # one long sum of products
    text = "state x = 1\nparam k = 1\nx' = " + " + ".join(f"{i}*k*x" for i in range(n)) + "\n"
elif kind == "sum_calls":     # one long sum of calls (values live across calls in the JIT)
    text = "state x = 1\nx' = " + " + ".join(f"sin({i}*x)" for i in range(n)) + "\n"
elif kind == "deep":          # one expression n deep
    text = "state x = 1\nx' = " + "tanh(" * n + "x" + ")" * n + "\n"
elif kind == "broken":        # a statement that fails deep inside, then n more tokens
    text = "state x = 1\nx' = " + "(" * n + "1 1" + " 1" * n + "\n"
elif kind == "vector":        # one n-entry vector state with a stencil family
    text = f"state u[{n}] = 1\nu[0]' = -u[0]\nu[{n-1}]' = -u[{n-1}]\nu[i]' = u[i-1] - 2*u[i] + u[i+1] for i in 1..{n-1}\n"
open(path, "w").write(text)
PY
}

secs() { # command... -> seconds
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    e=$(date +%s.%N)
    python3 -c "print(f'{$e - $s:.3f}')"
}

printf '%-10s %-28s %9s %9s %6s\n' model stage "N=$N" "N=$((4 * N))" ratio
for kind in states sum sum_calls deep broken vector; do
    gen "$kind" "$N" "$tmp/a.nde"
    gen "$kind" "$((4 * N))" "$tmp/b.nde"
    for stage in check compile run run_rosenbrock; do
        case $stage in
            check) cmd=(check) ;;
            compile) cmd=(compile --emit ir) ;;
            run) cmd=(run --t1 0.001) ;;
            run_rosenbrock) cmd=(run --t1 0.001 --method rosenbrock23) ;;
        esac
        [ "$kind" = broken ] && [ "$stage" != check ] && continue
        a=$(secs "$NDEC" "${cmd[0]}" "$tmp/a.nde" "${cmd[@]:1}")
        b=$(secs "$NDEC" "${cmd[0]}" "$tmp/b.nde" "${cmd[@]:1}")
        r=$(python3 -c "print(f'{$b / max($a, 1e-3):.1f}')")
        printf '%-10s %-28s %9s %9s %6s\n' "$kind" "$stage" "$a" "$b" "$r"
    done
done

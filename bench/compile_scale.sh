#!/usr/bin/env bash
# Compile-time scale (issues 2 and 4): `ndec compile` on generated models, best of 5 wall-clock
# runs each (process start to exit, parse + check + lowering + what --emit asks for), and the
# size of the emitted IR (lines), for a 1-D heat stencil of N = 10^2 .. 10^5 states and for a
# model with a 64->256->256->64 MLP. Usage: bash bench/compile_scale.sh (needs target/release/ndec)
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NDEC="$ROOT/target/release/ndec"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
heat() {
    cat > "$W/heat$1.nde" <<M
const N = $1, D = 0.01, dx = 1/(N+1)
state u[N] = sin(3.14159*(i+1)*dx) for i in 0..N
u[0]' = D*(-2*u[0] + u[1])/dx^2
u[i]' = D*(u[i-1] - 2*u[i] + u[i+1])/dx^2 for i in 1..N-1
u[N-1]' = D*(u[N-2] - 2*u[N-1])/dx^2
M
}
printf 'net f = mlp(64 -> 256 -> 256 -> 64, tanh)\nstate u[64] = 0.1\nu\x27 = f(u) - u\n' > "$W/mlp.nde"
best_ms() { # command...
    python3 - "$@" <<'P'
import subprocess, sys, time
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    best = min(best, time.perf_counter() - t)
    assert r.returncode == 0, r
print(f"{best*1e3:.2f}")
P
}
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "model            --emit ir ms   IR lines   --emit jacobian ms   run --t1 0 ms (IR + JIT + sparse J + JIT)"
for n in 100 1000 10000 100000; do
    heat $n
    f="$W/heat$n.nde"
    ir=$(best_ms "$NDEC" compile "$f" --emit ir)
    lines=$("$NDEC" compile "$f" --emit ir | wc -l)
    jac=$(best_ms "$NDEC" compile "$f" --emit jacobian)
    run=$("$NDEC" run "$f" --t1 1e-9 --method bdf --stats --out /dev/null | tail -1 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["compile_ms"],2))')
    printf 'heat N=%-8s %12s %10s %20s %12s\n' "$n" "$ir" "$lines" "$jac" "$run"
done
ir=$(best_ms "$NDEC" compile "$W/mlp.nde" --emit ir)
lines=$("$NDEC" compile "$W/mlp.nde" --emit ir | wc -l)
run=$("$NDEC" run "$W/mlp.nde" --t1 1e-9 --stats --out /dev/null | tail -1 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["compile_ms"],2))')
printf 'mlp 64-256-256-64 %10s %10s %20s %12s\n' "$ir" "$lines" "-" "$run"

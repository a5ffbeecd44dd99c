#!/usr/bin/env bash
# GPU Lorenz ensemble (issue 7), the DiffEqGPU paper's problem: rho uniform in [0, 21],
# sigma = 10, beta = 8/3, u0 = (1, 0, 0), t in [0, 1], end state only; tsit5 with fixed
# dt = 1e-3 and adaptive at rtol = atol = 1e-8; f32 and f64; N = 2^10 .. 2^23 (NMAX_POW).
# Columns, all measured in this one run on this GPU:
#   ndec      `ndec run --device cuda --ensemble N --stats`: solve_ms (median of --repeat 3;
#             host-side setup of the N parameter sets and the copies included)
#   hand      bench/gpu/lorenz_tsit5.cu, hand-written tsit5 (kernel time only), the limit
#   diffrax   vmap + jit Tsit5 on the GPU;   torchdiffeq  batched dopri5 / rk4 on the GPU
# then the CPU ensemble (ndec --device cpu, rayon) against diffrax vmap+jit on the CPU.
# Targets (issue 7): ndec >= 50x diffrax on the same GPU, within 1.2x of `hand`.
#
#   bash bench/gpu_lorenz.sh [--no-build]      (env: NMAX_POW=23, NMIN_POW=10, NDEC_NVRTC_DIR)
# Needs an NVIDIA GPU, its driver and libnvrtc (scripts/install-nvrtc.sh; the lent machines
# have no internet: carry target/nvrtc along).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "${1:-}" != "--no-build" ]; then
    cargo build --release --bin ndec --example gpu_lorenz_handwritten >&2 || exit 1
fi
NDEC="$ROOT/target/release/ndec"
HAND="$ROOT/target/release/examples/gpu_lorenz_handwritten"
MODEL="$ROOT/bench/gpu/lorenz.nde"
export NDEC_NVRTC_DIR="${NDEC_NVRTC_DIR:-$ROOT/target/nvrtc/nvidia/cuda_nvrtc/lib}"
lo=${NMIN_POW:-10}; hi=${NMAX_POW:-23}
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1); CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
ndec_ms() { # N mode prec device
    local flags
    if [ "$2" = fixed ]; then flags="--dt 1e-3"; else flags="--rtol 1e-8 --atol 1e-8"; fi
    # shellcheck disable=SC2086
    "$NDEC" run "$MODEL" --t1 1 --ensemble "$1" --vary 'rho=uniform(0,21)' $flags \
        --device "$4" --precision "$3" --stats --repeat 3 --out /dev/null 2>&1 | tail -1 |
        python3 -c 'import json,sys
try: print(round(json.loads(sys.stdin.read())["solve_ms"],2))
except Exception as e: print("fail")'
}
field() { python3 -c "import json,sys
d=json.loads(sys.stdin.read() or '{}'); print(round(d['$1'],2) if '$1' in d else 'fail')"; }
printf '%-9s %-8s %-4s %10s %10s %10s %12s %10s %10s\n' N mode prec ndec_ms hand_ms diffrax_ms torchdiffeq_ms vs_diffrax vs_hand
for p in $(seq "$lo" "$hi"); do
    n=$((1 << p))
    for mode in fixed adaptive; do
        for prec in f32 f64; do
            a=$(ndec_ms "$n" "$mode" "$prec" cuda)
            h=$("$HAND" "$n" "$mode" "$prec" 3 2>/dev/null | field kernel_ms_median)
            d=$(python3 bench/gpu/peers.py diffrax "$n" "$mode" "$prec" gpu 3 2>/dev/null | field ms_median)
            t=$(python3 bench/gpu/peers.py torchdiffeq "$n" "$mode" "$prec" gpu 3 2>/dev/null | field ms_median)
            r=$(python3 -c "a,d,h='$a','$d','$h'
f=lambda x,y: f'{float(x)/float(y):.1f}x' if 'fail' not in (x,y) else '-'
print(f(d,a), f(a,h))")
            printf '%-9s %-8s %-4s %10s %10s %10s %12s %10s %10s\n' "2^$p" "$mode" "$prec" "$a" "$h" "$d" "$t" $r
        done
    done
done
echo "CPU ensemble (f64):"
printf '%-9s %-8s %10s %12s\n' N mode ndec_cpu_ms diffrax_cpu_ms
for p in 10 14 18; do
    n=$((1 << p))
    for mode in fixed adaptive; do
        a=$(ndec_ms "$n" "$mode" f64 cpu)
        d=$(python3 bench/gpu/peers.py diffrax "$n" "$mode" f64 cpu 3 2>/dev/null | field ms_median)
        printf '%-9s %-8s %10s %12s\n' "2^$p" "$mode" "$a" "$d"
    done
done

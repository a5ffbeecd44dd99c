#!/bin/sh
# Installs NVIDIA's NVRTC (the run-time CUDA C compiler, no GPU or driver needed) from PyPI's
# `nvidia-cuda-nvrtc-cu12` wheel into a local directory, and prints the directory holding
# libnvrtc.so.12 (and its libnvrtc-builtins) as the last line of stdout.
#
#   scripts/install-nvrtc.sh [DIR]     (default DIR: target/nvrtc, which git ignores)
#
# Point tests at it with NDEC_NVRTC_DIR=<printed dir>; tests/cuda_nvrtc.rs runs this
# script itself when neither NDEC_NVRTC_DIR nor DIR holds the library. Needs python3 with
# pip and access to PyPI (~90 MB download). Idempotent: an existing install is reused.
set -eu
dir=${1:-target/nvrtc}
lib="$dir/nvidia/cuda_nvrtc/lib"
if [ ! -e "$lib/libnvrtc.so.12" ]; then
    mkdir -p "$dir"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$dir" 'nvidia-cuda-nvrtc-cu12>=12.9,<13' >&2
fi
if [ ! -e "$lib/libnvrtc.so.12" ]; then
    echo "install-nvrtc: libnvrtc.so.12 not found under $lib after installing" >&2
    exit 1
fi
cd "$lib" && pwd

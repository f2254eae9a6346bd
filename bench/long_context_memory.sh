#!/usr/bin/env bash
# Peak memory and time of a long forward pass on the CPU: the math attention path (a T x T score
# matrix per head) against the blockwise online-softmax path (lctrain's CPU default with
# LibTorch 1.13; from 4096 keys on with 2.2+). Model: the bundled data/tiny-llama (8 heads) with PI for the longer windows.
# Usage: bench/long_context_memory.sh [build_dir] [lengths, default "4096 8192 16384"]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
lengths=${2:-4096 8192 16384}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
printf "%8s %10s %14s %10s %14s %10s\n" tokens path "peak RSS MiB" seconds "" ""
for length in $lengths; do
  python3 -c "import random; random.seed(0); print(' '.join(str(random.randrange(3,4096)) for _ in range($length)))" > "$scratch/ids.txt"
  factor=$(( (length + 255) / 256 ))
  for path in math blockwise; do
    # The math path at 16K needs ~17 GB for one layer's scores and softmax: skip what won't fit.
    if [ "$path" = math ] && [ "$length" -gt "${MATH_MAX:-8192}" ]; then
      printf "%8s %10s %14s %10s\n" "$length" "$path" "(skipped)" ""
      continue
    fi
    /usr/bin/time -f "%M %e" -o "$scratch/time" env LCTRAIN_ATTENTION=$path \
      "$build/bin/lctrain" forward --model data/tiny-llama --ids "$scratch/ids.txt" \
      --out "$scratch/logits.safetensors" \
      --rope-scaling "{\"rope_type\":\"linear\",\"factor\":$factor}" > /dev/null 2>&1
    read -r kib seconds < "$scratch/time"
    printf "%8s %10s %14s %10s\n" "$length" "$path" "$((kib / 1024))" "$seconds"
  done
done

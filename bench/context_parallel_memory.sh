#!/usr/bin/env bash
# Context parallelism on the CPU: per-rank memory and time of one training forward + backward of
# TinyLlama's 1.1B shape cut to 2 layers (fp32, activation checkpointing, PI to the length), with
# each sequence split over C = 1, 2, 4 ranks (W = C, Gloo). Prints, per length and C, the largest
# rank's figures: resting RSS (its FSDP shards), the peak above it during the step (activations,
# attention, a gathered unit and its gradient) and the step's seconds.
# Usage: bench/context_parallel_memory.sh [build_dir] [lengths, default "8192 16384 32768"]
# Environment: CONTEXT_PARALLEL (default "1 2 4"), LAYERS (default 2), MODEL_CONFIG (default
# configs/models/llama-1.1b.json).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
lengths=${2:-8192 16384 32768}
export MALLOC_MMAP_THRESHOLD_=65536  # freed tensors leave the RSS at once
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
printf "%8s %3s %14s %12s %20s %12s\n" tokens C tokens/rank "resting GiB" "step peak-rest GiB" "step s"
for length in $lengths; do
  for c in ${CONTEXT_PARALLEL:-1 2 4}; do
    "$build/bin/lctrain" launch --nproc-per-node "$c" -- "$PWD/$build/bin/bench_context_parallel" \
      --tokens "$length" --layers "${LAYERS:-2}" \
      --config "${MODEL_CONFIG:-configs/models/llama-1.1b.json}" 2>&1 | grep -o "tokens .*step_seconds.*" |
      awk -v c="$c" '{ if ($12 > peak) peak = $12; if ($10 > rest) rest = $10; if ($14 > s) s = $14;
                       per = $8 }
                     END { printf "%8s %3s %14s %12.2f %20.2f %12.1f\n", $2, c, per, rest, peak, s }'
  done
done

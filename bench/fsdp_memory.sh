#!/usr/bin/env bash
# Per-rank fp32 parameter + AdamW bytes for W = 1, 2, 4 (FSDP should divide them by W).
# Trains a random ~20M-parameter LLaMA for one fp32 step per world size and prints what each rank
# reports. Usage: bench/fsdp_memory.sh [build_dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
/usr/bin/env python3 -c "import random; random.seed(0); print(' '.join(str(random.randrange(8000)) for _ in range(4000)))" > "$scratch/tokens.txt"
cat > "$scratch/run.yaml" <<YAML
model: {config: configs/models/tiny-20m.json}
context: {target_length: 64}
data: {path: $scratch/tokens.txt}
training: {steps: 1, precision: fp32, micro_batch_size: 1}
output: {dir: $scratch/out}
YAML
for world in 1 2 4; do
  echo "W=$world:"
  "$build/bin/lctrain" launch --nproc-per-node "$world" -- train --config "$scratch/run.yaml" \
      output.dir="$scratch/out$world" 2>&1 | grep -o "rank [0-9]* holds .*" | sort
done

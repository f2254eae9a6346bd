#!/usr/bin/env bash
# The main job on the bundled default: build lctrain, run the bundled tiny LLaMA beyond its window
# with and without Position Interpolation, then fine-tune a tiny model from a 64- to a 256-token
# window with PI on two local ranks (FSDP-style sharding over Gloo) and inspect the result.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
build_dir=${LCTRAIN_BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f "$build_dir/CMakeCache.txt" ] || cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$(nproc)" --target lctrain

lctrain="$build_dir/bin/lctrain"
model=tests/fixtures/tiny-llama-parity
out=${LCTRAIN_OUT:-out/demo}
mkdir -p "$out"
"$lctrain" inspect "$model"
"$lctrain" forward --model "$model" --ids "$model/ids.txt" --out "$out/logits-plain.safetensors"
"$lctrain" forward --model "$model" --ids "$model/ids.txt" --out "$out/logits-pi4.safetensors" \
  --rope-scaling '{"rope_type":"linear","factor":4.0}'
"$lctrain" launch --nproc-per-node 2 -- train --config configs/demo-tiny.yaml output.dir="$out/train"
"$lctrain" inspect "$out/train/final"
echo "demo: logits in $out/, training metrics in $out/train/metrics.jsonl, model in $out/train/final"

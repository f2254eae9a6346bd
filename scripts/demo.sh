#!/usr/bin/env bash
# The main job on the bundled default: build lctrain, describe the bundled tiny LLaMA, and run it
# on 100 tokens beyond its 32-token window with and without Position Interpolation.
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
echo "demo: logits written to $out/"

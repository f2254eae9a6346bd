#!/usr/bin/env bash
# The main job on the bundled default: build lctrain, run the bundled tiny LLaMA beyond its window
# with and without Position Interpolation, then fine-tune a tiny model from a 64- to a 256-token
# window with PI on two local ranks (FSDP-style sharding over Gloo): stop it halfway, resume it from
# its sharded checkpoint, and export the result as a Hugging Face folder.
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
rm -rf "$out/train"
train=("$lctrain" launch --nproc-per-node 2 -- train --config configs/demo-tiny.yaml output.dir="$out/train")
"${train[@]}" training.steps=10   # stops after the checkpoint of step 10
"${train[@]}"                     # the same command resumes from it and runs steps 11-20
"$lctrain" inspect "$out/train"
"$lctrain" export --checkpoint "$out/train" --out "$out/hf" --dtype f32
"$lctrain" inspect "$out/hf"
echo "demo: logits in $out/, training metrics in $out/train/metrics.jsonl, exported model in $out/hf"

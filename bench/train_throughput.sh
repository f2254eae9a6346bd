#!/usr/bin/env bash
# Training throughput of lctrain against the same step in PyTorch + transformers, side by side on
# one machine: tokens/s, MFU and peak memory per sequence length, and the ratio.
#   bench/train_throughput.sh [LENGTHS...]          (default 4096 8192 16384)
# Environment: LCTRAIN (binary, default build/bin/lctrain), PYTHON (with torch + transformers,
# default python3), MODEL_CONFIG (default configs/models/llama-1.1b.json), STEPS (default 8),
# LCTRAIN_PEAK_TFLOPS (MFU denominator; default: 989.4 on an H100/H200, else unknown),
# BENCH_WORK (scratch folder), EXTRA (more `lctrain train` overrides, e.g. training.device=cpu),
# BASELINE (the PyTorch step: hf_train_step.py with transformers, torch_llama_step.py without, or
# none for lctrain alone, e.g. EXTRA="training.activation_checkpointing_every=2").
# PROFILE=1: a second, profiled run of each side (LCTRAIN_PROFILE, hf_train_step.py --profile;
# the timed runs stay unprofiled) and both traces split by `lctrain profile-summary`.
# CPU: PYTHON=/usr/bin/python3 BASELINE=torch_llama_step.py HF_EXTRA="--dtype bf16"
#      MODEL_CONFIG=configs/models/tiny-base.json EXTRA="training.device=cpu" STEPS=5 bench/train_throughput.sh 256 1024
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lctrain=${LCTRAIN:-$root/build/bin/lctrain}
python=${PYTHON:-python3}
model_config=${MODEL_CONFIG:-$root/configs/models/llama-1.1b.json}
steps=${STEPS:-8}
work=${BENCH_WORK:-$(mktemp -d)}
lengths=("$@")
[ ${#lengths[@]} -gt 0 ] || lengths=(4096 8192 16384)
if [ -z "${LCTRAIN_PEAK_TFLOPS:-}" ] && command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=name --format=csv,noheader | grep -q "H100\|H200"; then
  export LCTRAIN_PEAK_TFLOPS=989.4
fi
mkdir -p "$work"
# Both sides get the same CPU threads (LibTorch's own default can be fewer than the CPUs; lctrain
# takes them all, util/cpu_threads.h), so the ratio compares the implementations.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
results=$work/results.jsonl
: >"$results"

max_length=$(printf '%s\n' "${lengths[@]}" | sort -n | tail -1)
"$python" - "$work/tokens.bin" "$max_length" "$steps" "$model_config" <<'PY'
import json, sys, random, struct
path, length, steps, config = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
vocab = json.load(open(config))["vocab_size"]
rng = random.Random(0)
count = (steps + 2) * (length + 1)
with open(path, "wb") as handle:
    handle.write(struct.pack(f"<{count}I", *(rng.randrange(vocab) for _ in range(count))))
PY

for length in "${lengths[@]}"; do
  echo "== seq $length: lctrain"
  out=$work/lctrain-$length
  rm -rf "$out"
  # shellcheck disable=SC2086
  "$lctrain" train --config "$root/bench/train_throughput.yaml" "model.config=$model_config" \
    "context.target_length=$length" "data.path=$work/tokens.bin" "training.steps=$steps" \
    "output.dir=$out" ${EXTRA:-} 2>&1 | grep -v "^\s*$" | tail -n 3 || true
  "$python" - "$out/metrics.jsonl" "$length" >>"$results" <<'PY' || echo "lctrain: no metrics"
import json, sys
records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
measured = records[2:] or records
seconds_per_token = sum(1.0 / r["tokens_per_second"] for r in measured)
result = {"impl": "lctrain", "seq": int(sys.argv[2]), "steps": len(records),
          "loss": records[-1]["loss"], "tokens_per_second": len(measured) / seconds_per_token}
for key in ("peak_gpu_allocated_gib", "peak_gpu_reserved_gib", "peak_rss_gib"):
    if key in records[-1]:
        result[key.replace("_gpu", "")] = records[-1][key]
print(json.dumps(result))
PY
  if [ -n "${PROFILE:-}" ]; then
    echo "== seq $length: lctrain, profiled"
    rm -rf "$out-profiled"
    # shellcheck disable=SC2086
    LCTRAIN_PROFILE=$work/lctrain-$length.trace.json "$lctrain" train \
      --config "$root/bench/train_throughput.yaml" "model.config=$model_config" \
      "context.target_length=$length" "data.path=$work/tokens.bin" \
      "training.steps=$((steps < 5 ? steps : 5))" "output.dir=$out-profiled" \
      "output.save_final=false" "output.checkpoint_every=-1" ${EXTRA:-} >/dev/null 2>&1 &&
      "$lctrain" profile-summary "$work/lctrain-$length.trace.json" || echo "lctrain: profile failed"
  fi
  [ "${BASELINE:-}" = none ] && continue
  echo "== seq $length: PyTorch (${BASELINE:-hf_train_step.py})"
  "$python" "$root/bench/${BASELINE:-hf_train_step.py}" --config "$model_config" --seq "$length" \
    --steps "$steps" ${HF_EXTRA:-} >>"$results" || echo "pytorch: failed at seq $length"
  if [ -n "${PROFILE:-}" ] && [ "${BASELINE:-hf_train_step.py}" = hf_train_step.py ]; then
    echo "== seq $length: PyTorch, profiled"
    "$python" "$root/bench/hf_train_step.py" --config "$model_config" --seq "$length" \
      --steps "$((steps < 5 ? steps : 5))" --profile "$work/hf-$length.trace.json" \
      ${HF_EXTRA:-} >/dev/null &&
      "$lctrain" profile-summary "$work/hf-$length.trace.json" || echo "pytorch: profile failed"
  fi
done
echo
"$python" "$root/bench/throughput_table.py" "$model_config" "$results"
echo "measurements: $results"

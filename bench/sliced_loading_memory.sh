#!/usr/bin/env bash
# Host memory of a run that never holds the whole model: a ~374M-parameter LLaMA (bf16 safetensors
# in 2 shards, untied head) trained one bf16 step at 128 tokens with activation checkpointing,
# final/ written, for W = 1, 2, 4 ranks on this machine's CPUs; then `lctrain export` of the W=4
# checkpoint. Prints the peak RSS of the largest rank (/usr/bin/time -f %M on the launcher: the
# largest descendant's peak; each rank's VmHWM is sampled too) against the ZeRO-3 share
# (16 bytes/param / W: fp32 shard, fp32 gradient, AdamW moments) + 0.6 GiB, and the export's peak
# against 1.5 x its largest unit in fp32 + 0.5 GiB. Heavy: ~10 GB of RAM at W = 1.
# Usage: bench/sliced_loading_memory.sh [build_dir] [scratch_dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
lctrain="$build/bin/lctrain"
scratch=${2:-$(mktemp -d)}
mkdir -p "$scratch"
[ -n "${2:-}" ] || trap 'rm -rf "$scratch"' EXIT

model="$scratch/model"
if [ ! -f "$model/model.safetensors.index.json" ]; then
  /usr/bin/python3 - "$model" <<'PY'
import json, os, struct, sys
import torch
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 1024,
          "intermediate_size": 2816, "num_attention_heads": 16, "num_key_value_heads": 16,
          "num_hidden_layers": 24, "vocab_size": 32000, "max_position_embeddings": 64,
          "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
          "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"}
json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
h, i, v, layers = 1024, 2816, 32000, 24
def layer(n):
    p = f"model.layers.{n}."
    return [(p + "input_layernorm.weight", [h]), (p + "self_attn.q_proj.weight", [h, h]),
            (p + "self_attn.k_proj.weight", [h, h]), (p + "self_attn.v_proj.weight", [h, h]),
            (p + "self_attn.o_proj.weight", [h, h]), (p + "post_attention_layernorm.weight", [h]),
            (p + "mlp.gate_proj.weight", [i, h]), (p + "mlp.up_proj.weight", [i, h]),
            (p + "mlp.down_proj.weight", [h, i])]
first = [("model.embed_tokens.weight", [v, h])] + sum((layer(n) for n in range(12)), [])
second = sum((layer(n) for n in range(12, layers)), []) + [("model.norm.weight", [h]),
                                                          ("lm_head.weight", [v, h])]
generator = torch.Generator().manual_seed(0)
weight_map, total = {}, 0
for index, tensors in enumerate([first, second]):
    name = f"model-{index + 1:05d}-of-00002.safetensors"
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for tensor, shape in tensors:
        size = 2
        for s in shape: size *= s
        header[tensor] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
        weight_map[tensor] = name
    total += offset
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(out, name), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for tensor, shape in tensors:  # one tensor at a time
            value = torch.ones(shape) if "norm" in tensor else torch.randn(shape, generator=generator) * 0.02
            f.write(value.to(torch.bfloat16).view(torch.int16).numpy().tobytes())
json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
          open(os.path.join(out, "model.safetensors.index.json"), "w"), indent=2)
PY
fi
params=$(/usr/bin/python3 -c "
h, i, v, n = 1024, 2816, 32000, 24
print(2 * v * h + n * (4 * h * h + 3 * h * i + 2 * h) + h)")
largest_unit=$((32000 * 1024))  # the embeddings (and the head: lm_head + norm)

/usr/bin/python3 -c "import random; random.seed(0); print(' '.join(str(random.randrange(32000)) for _ in range(2000)))" > "$scratch/tokens.txt"
cat > "$scratch/run.yaml" <<YAML
model: {path: $model}
context: {target_length: 128}
data: {path: $scratch/tokens.txt}
training: {steps: 1, precision: bf16, micro_batch_size: 1, activation_checkpointing: true, device: cpu}
optimizer: {lr: 0.0001}
distributed: {timeout_seconds: 600}
YAML

# Each rank's VmHWM, sampled every 0.2 s while the run lasts (a rank is a child of the launcher).
sample_ranks() {
  local launcher=$1 out=$2
  while kill -0 "$launcher" 2>/dev/null; do
    for pid in $(pgrep -P "$launcher" || true); do
      hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$hwm" ] && echo "$pid $hwm" >> "$out"
    done
    sleep 0.2
  done
}

gib() { /usr/bin/python3 -c "print(f'{($1) / 2**30:.2f}')"; }
echo "model: $params parameters, bf16 safetensors in 2 shards, untied; largest unit $largest_unit"
printf "| W | peak RSS, largest rank (GiB) | ranks' VmHWM (GiB) | ZeRO-3 share (GiB) | share + 0.6 GiB | 1.15 x share + 0.6 GiB |\n"
printf "|---|---|---|---|---|---|\n"
for world in 1 2 4; do
  rm -rf "$scratch/out$world" "$scratch/hwm$world"
  /usr/bin/time -f "%M" -o "$scratch/time$world" "$lctrain" launch --nproc-per-node "$world" -- \
      train --config "$scratch/run.yaml" output.dir="$scratch/out$world" \
      > "$scratch/log$world" 2>&1 &
  timer=$!
  sleep 1
  launcher=$(pgrep -P "$timer" | head -1)
  sample_ranks "$launcher" "$scratch/hwm$world" &
  sampler=$!
  wait "$timer" || { echo "W=$world failed:"; tail -20 "$scratch/log$world"; exit 1; }
  wait "$sampler" || true
  [ -f "$scratch/out$world/final/model.safetensors.index.json" ] || [ -f "$scratch/out$world/final/model.safetensors" ] \
      || { echo "W=$world wrote no final/"; exit 1; }
  peak_kib=$(tail -1 "$scratch/time$world")
  ranks=$(sort -k1,1 -k2,2n "$scratch/hwm$world" 2>/dev/null | awk '{last[$1]=$2} END {for (p in last) printf "%.2f ", last[p] / 1048576}')
  share=$((16 * params / world))
  printf "| %d | %s | %s| %s | %s | %s |\n" "$world" "$(gib "$peak_kib * 1024")" "$ranks" \
      "$(gib $share)" "$(gib "$share + 0.6 * 2**30")" "$(gib "1.15 * $share + 0.6 * 2**30")"
done

# Resume: the W=4 run's checkpoint continued on W=2 for one more step, gradient accumulation 2
# keeping the global batch (resharding: each rank reads the ranges of the rank files its slice
# covers).
rm -rf "$scratch/resume2"
mkdir -p "$scratch/resume2"
cp -r "$scratch/out4/checkpoints" "$scratch/resume2/"
/usr/bin/time -f "%M" -o "$scratch/time-resume" "$lctrain" launch --nproc-per-node 2 -- \
    train --config "$scratch/run.yaml" output.dir="$scratch/resume2" training.steps=2 \
    training.gradient_accumulation=2 \
    > "$scratch/log-resume" 2>&1 || { echo "resume failed:"; tail -20 "$scratch/log-resume"; exit 1; }
grep -q "loaded its shard" "$scratch/log-resume" || { echo "the resume run did not resume"; exit 1; }
echo
echo "resume of the W=4 checkpoint on W=2, one more step, final/ written: peak RSS" \
     "$(gib "$(tail -1 "$scratch/time-resume") * 1024") GiB (fresh W=2 run above)"
grep -o "rank [0-9]* loaded its shard.*" "$scratch/log-resume" | sed 's/^/  /'

checkpoint=$(ls -d "$scratch"/out4/checkpoints/step-* | tail -1)
/usr/bin/time -f "%M %e" -o "$scratch/time-export" "$lctrain" export --checkpoint "$checkpoint" \
    --out "$scratch/exported" --dtype bf16 > "$scratch/log-export" 2>&1 \
    || { echo "export failed:"; tail -20 "$scratch/log-export"; exit 1; }
read -r export_kib export_seconds < "$scratch/time-export"
echo
echo "lctrain export (W=4 checkpoint -> bf16): peak RSS $(gib "$export_kib * 1024") GiB in ${export_seconds} s;" \
     "1.5 x largest unit in fp32 + 0.5 GiB = $(gib "1.5 * 4 * $largest_unit + 0.5 * 2**30") GiB"

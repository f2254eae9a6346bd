#!/usr/bin/env bash
# Load time and peak memory (RSS) of one ~1 GB LLaMA checkpoint in each format lctrain reads:
# Hugging Face safetensors, Meta's consolidated.00.pth and Hugging Face's older pytorch_model.bin.
#   bench/checkpoint_formats.sh [LAYERS]     (default 8: ~542M parameters, ~1.08 GB in bf16)
# The same bf16 weights are written in the three layouts by Debian's python3-torch (torch.save),
# then `lctrain forward --dtype bf16` on one token loads each; /usr/bin/time reports wall time and
# peak RSS of the whole process (load dominates; the one-token forward and start-up are in the
# tiny-model line printed first for reference). Page caches are dropped before each cold run when
# this process may (root; BENCH_DROP_CACHES=0 skips it); a warm run follows.
# Environment: LCTRAIN (binary, default build/bin/lctrain), BENCH_WORK (scratch folder, removed
# unless given), PYTHON (default /usr/bin/python3, which must have torch).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lctrain=${LCTRAIN:-$root/build/bin/lctrain}
python=${PYTHON:-/usr/bin/python3}
layers=${1:-8}
if [ -n "${BENCH_WORK:-}" ]; then work=$BENCH_WORK; mkdir -p "$work"; else
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi

"$python" - "$work" "$layers" <<'PY'
import json, os, struct, sys
import torch

work, layers = sys.argv[1], int(sys.argv[2])
hidden, heads, inter, vocab = 2048, 16, 5632, 32000
torch.manual_seed(0)
def w(*shape):
    return (torch.randn(*shape) * 0.02).to(torch.bfloat16)
hf = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": torch.ones(hidden, dtype=torch.bfloat16),
      "lm_head.weight": w(vocab, hidden)}
meta = {"tok_embeddings.weight": hf["model.embed_tokens.weight"], "norm.weight": hf["model.norm.weight"],
        "output.weight": hf["lm_head.weight"]}
names = {"self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
         "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
         "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
         "mlp.up_proj": "feed_forward.w3", "input_layernorm": "attention_norm",
         "post_attention_layernorm": "ffn_norm"}
for i in range(layers):
    layer = {"self_attn.q_proj": w(hidden, hidden), "self_attn.k_proj": w(hidden, hidden),
             "self_attn.v_proj": w(hidden, hidden), "self_attn.o_proj": w(hidden, hidden),
             "mlp.gate_proj": w(inter, hidden), "mlp.up_proj": w(inter, hidden),
             "mlp.down_proj": w(hidden, inter),
             "input_layernorm": torch.ones(hidden, dtype=torch.bfloat16),
             "post_attention_layernorm": torch.ones(hidden, dtype=torch.bfloat16)}
    for name, tensor in layer.items():
        hf[f"model.layers.{i}.{name}.weight"] = tensor
        meta[f"layers.{i}.{names[name]}.weight"] = tensor  # row order is irrelevant for timing
config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
          "intermediate_size": inter, "num_attention_heads": heads, "num_hidden_layers": layers,
          "vocab_size": vocab, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
          "torch_dtype": "bfloat16"}
for name in ("safetensors", "bin"):
    os.makedirs(os.path.join(work, name), exist_ok=True)
    with open(os.path.join(work, name, "config.json"), "w") as f:
        json.dump(config, f)
# safetensors by hand (Debian has no python3-safetensors): u64 header size, JSON header, data.
header, offset = {}, 0
for name, tensor in hf.items():
    size = tensor.numel() * 2
    header[name] = {"dtype": "BF16", "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
    offset += size
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(os.path.join(work, "safetensors", "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for tensor in hf.values():
        f.write(tensor.view(torch.int16).numpy().tobytes())
torch.save(hf, os.path.join(work, "bin", "pytorch_model.bin"))
os.makedirs(os.path.join(work, "meta"), exist_ok=True)
torch.save(meta, os.path.join(work, "meta", "consolidated.00.pth"))
with open(os.path.join(work, "meta", "params.json"), "w") as f:
    json.dump({"dim": hidden, "n_layers": layers, "n_heads": heads, "vocab_size": vocab,
               "multiple_of": 256, "norm_eps": 1e-5}, f)
print(f"{sum(t.numel() for t in hf.values()) / 1e6:.0f}M parameters in bf16")
PY
echo 1 >"$work/ids.txt"

drop_caches() {
  sync
  if [ "${BENCH_DROP_CACHES:-1}" = 0 ]; then echo "warm (BENCH_DROP_CACHES=0)"; return; fi
  if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then echo cold; else echo "warm (cache not dropped)"; fi
}
measure() {  # label, model folder, cache state
  local output seconds_rss
  output=$(/usr/bin/time -f "%e %M" "$lctrain" forward --model "$2" --ids "$work/ids.txt" \
    --dtype bf16 --out "$work/logits.safetensors" 2>&1 >/dev/null) || {
    echo "$1: lctrain forward failed: $output" >&2
    exit 1
  }
  seconds_rss=$(echo "$output" | tail -1)
  printf "%-12s %-26s %6.1f MB  %7s s  %8.0f MB peak RSS\n" "$1" "$3" \
    "$(du -cb "$2" | tail -1 | awk '{print $1 / 1e6}')" "${seconds_rss% *}" \
    "$(echo "${seconds_rss#* }" | awk '{print $1 / 1024}')"
}
printf "%-12s %-26s %9s  %9s  %s\n" format cache size load+1-token peak
measure tiny-ref "$root/tests/fixtures/tiny-llama-parity" warm
for format in safetensors meta bin; do
  measure "$format" "$work/$format" "$(drop_caches)"
  measure "$format" "$work/$format" warm
done

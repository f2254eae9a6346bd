#!/usr/bin/env bash
# Checkpoint write and read speed against the disk's own (dd), side by side on one machine.
#   bench/checkpoint_io.sh [RANKS]      (default 1)
# A ~97M-parameter LLaMA (fp32 master weights + two AdamW moments: ~1.2 GB of checkpoint) takes
# one training step and saves; each round then resumes from the newest checkpoint (load), takes a
# step and saves, and dd writes (fsync) and reads the same number of random bytes. Page caches are
# dropped before each read when this process may (root); otherwise reads may come from memory,
# for both alike.
# Environment: LCTRAIN (binary, default build/bin/lctrain), BENCH_WORK (scratch folder).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lctrain=${LCTRAIN:-$root/build/bin/lctrain}
ranks=${1:-1}
work=${BENCH_WORK:-$(mktemp -d)}
mkdir -p "$work"

drop_caches() {
  sync
  if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then echo "(page cache dropped)"; else
    echo "(page cache NOT dropped: reads may be served from memory)"; fi
}

cat >"$work/model.json" <<'JSON'
{"vocab_size": 8000, "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12,
 "num_attention_heads": 12, "max_position_embeddings": 16, "tie_word_embeddings": false}
JSON
seq 0 7 7999 | tr '\n' ' ' >"$work/tokens.txt"
cat >"$work/run.yaml" <<YAML
model: {config: $work/model.json}
context: {target_length: 16}
data: {path: $work/tokens.txt}
training: {steps: 1, micro_batch_size: 1, precision: fp32, device: cpu}
output: {dir: $work/run, checkpoint_every: 1, keep_checkpoints: 1, save_final: false}
YAML
train=("$lctrain" launch --nproc-per-node "$ranks" -- train --config "$work/run.yaml")
rm -rf "$work/run"
"${train[@]}" >/dev/null 2>&1  # step 1 and its checkpoint: what the rounds below resume from
bytes=$(du -cb "$work"/run/checkpoints/step-*/rank-*.safetensors | tail -1 | cut -f1)
count=$(((bytes + 4194303) / 4194304))
# dd copies random bytes (from memory), as a checkpoint holds: this disk writes zeros faster.
random=/dev/shm/lctrain-bench-random.bin
[ -d /dev/shm ] || random=$work/random.bin
head -c $((count * 4194304)) /dev/urandom >"$random"
trap 'rm -f "$random" "$work/dd.bin"' EXIT

# Alternate lctrain and dd, twice: this disk's speed drifts by a factor of several.
rounds=${ROUNDS:-3}
for round in $(seq 1 "$rounds"); do
  echo "== round $round: lctrain, $ranks rank(s): load (resume), one step, save"
  drop_caches
  "${train[@]}" training.steps=$((round + 1)) 2>&1 | grep -o "loaded its shard.*\|saved checkpoint.*"
  echo "== round $round: dd, $count x 4 MiB: write with fsync, then read"
  dd if="$random" of="$work/dd.bin" bs=4M conv=fsync 2>&1 | tail -1
  drop_caches
  dd if="$work/dd.bin" of=/dev/null bs=4M 2>&1 | tail -1
  rm -f "$work/dd.bin"
done

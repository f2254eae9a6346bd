#!/usr/bin/env bash
# Regenerates the bundled base model, data/tiny-llama, from nothing but Debian packages:
#   1. the sample corpus (scripts/make_sample_pile.sh);
#   2. a LLaMA-style SentencePiece tokenizer (BPE, byte fallback, split digits, vocab 4096) trained
#      on the train split;
#   3. token shards of both splits (lctrain prepare-data);
#   4. pretraining stage 1 from random init by lctrain, configs/pretrain-tiny-induction.yaml:
#      random token runs written three times (scripts/make_induction_tokens.py), where the model
#      learns to copy (window 256; about 45 minutes on 2 cores);
#   5. stage 2, configs/pretrain-tiny.yaml: the train split with recall made common
#      (scripts/make_recall_corpus.py), about 70 minutes;
#   6. stage 3, configs/pretrain-tiny-passkey.yaml: the same split with many more passkey
#      documents (the key at every depth of the window), so that the base retrieves the key from
#      every prompt that fits its window (issue 20), about 15 minutes;
#   7. the bf16 Hugging Face export with the tokenizer, and the stages' metrics logs.
# Usage: scripts/pretrain_tiny.sh [section.key=value overrides for every stage's config]
# LCTRAIN_BIN=path/to/lctrain skips set-up and build (as scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${LCTRAIN_BIN:-}" ]; then
  scripts/setup.sh
  scripts/build.sh --target lctrain
fi
lctrain=${LCTRAIN_BIN:-${LCTRAIN_BUILD_DIR:-build}/bin/lctrain}
data=out/tiny-data
induction_run=out/pretrain-tiny-induction
run=out/pretrain-tiny
passkey_run=out/pretrain-tiny-passkey
model=data/tiny-llama

scripts/check_sample_pile.sh out/sample-pile data/sample-pile-manifest.json >/dev/null 2>&1 ||
  scripts/make_sample_pile.sh out/sample-pile
mkdir -p "$data"
if [ ! -f "$data/tokenizer.model" ]; then
  # SentencePiece trains on lines; newlines inside documents are encoded by byte fallback, as
  # LLaMA's tokenizer does. LLaMA's settings: no normalization, whitespace kept, digits split.
  zstdcat out/sample-pile/train/*.jsonl.zst |
    python3 -c 'import json, sys
for line in sys.stdin:
    for part in json.loads(line)["text"].split("\n"):
        if part.strip():
            print(part)' > "$data/tokenizer-train.txt"
  spm_train --input="$data/tokenizer-train.txt" --model_prefix="$data/tokenizer" \
    --vocab_size=4096 --model_type=bpe --byte_fallback=true --split_digits=true \
    --character_coverage=0.9995 --normalization_rule_name=identity \
    --remove_extra_whitespaces=false --allow_whitespace_only_pieces=true \
    --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --max_sentence_length=8192 \
    --input_sentence_size=2000000 --shuffle_input_sentence=true --num_threads="$(nproc)" \
    --minloglevel=1
  rm "$data/tokenizer-train.txt"
fi
for split in train test; do
  [ -f "$data/$split/manifest.json" ] ||
    "$lctrain" prepare-data --input out/sample-pile/$split/*.jsonl.zst \
      --tokenizer "$data/tokenizer.model" --out "$data/$split"
done
[ -f "$data/induction.bin" ] ||
  scripts/make_induction_tokens.py "$data/induction.bin" --vocab-size 4096
if [ ! -f "$data/recall/manifest.json" ]; then
  scripts/make_recall_corpus.py out/sample-pile/train/*.jsonl.zst "$data/recall.jsonl"
  "$lctrain" prepare-data --input "$data/recall.jsonl" --tokenizer "$data/tokenizer.model" \
    --out "$data/recall"
  rm "$data/recall.jsonl"
fi
if [ ! -f "$data/passkey-mix/manifest.json" ]; then
  scripts/make_recall_corpus.py out/sample-pile/train/*.jsonl.zst "$data/passkey-mix.jsonl" \
    --seed 3 --passkeys 20000 --max-fillers 5 --copies 2000
  "$lctrain" prepare-data --input "$data/passkey-mix.jsonl" --tokenizer "$data/tokenizer.model" \
    --out "$data/passkey-mix"
  rm "$data/passkey-mix.jsonl"
fi

"$lctrain" train --config configs/pretrain-tiny-induction.yaml output.dir="$induction_run" "$@"
"$lctrain" train --config configs/pretrain-tiny.yaml model.path="$induction_run/final" \
  output.dir="$run" "$@"
"$lctrain" train --config configs/pretrain-tiny-passkey.yaml model.path="$run/final" \
  output.dir="$passkey_run" "$@"

rm -rf "$model.new"
"$lctrain" export --checkpoint "$passkey_run" --out "$model.new" --dtype bf16
cp "$data/tokenizer.model" "$model.new/"
# The pretraining runs as a base model: its own window, no scaling to undo.
cp "$induction_run/metrics.jsonl" "$model.new/pretrain-induction-metrics.jsonl"
cp "$induction_run/config.yaml" "$model.new/pretrain-induction-config.yaml"
cp "$run/metrics.jsonl" "$model.new/pretrain-metrics.jsonl"
cp "$run/config.yaml" "$model.new/pretrain-config.yaml"
cp "$passkey_run/metrics.jsonl" "$model.new/pretrain-passkey-metrics.jsonl"
cp "$passkey_run/config.yaml" "$model.new/pretrain-passkey-config.yaml"
rm -rf "$model" && mv "$model.new" "$model"
"$lctrain" inspect "$model"
echo "pretrain_tiny: $model regenerated"

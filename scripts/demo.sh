#!/usr/bin/env bash
# The main job on the bundled default: Position Interpolation in miniature, about 12 minutes on a
# 2-core CPU after the build (713 s measured, 608 s of it the two fine-tunings side by side). The
# bundled base model (data/tiny-llama: 5.3M parameters,
# pretrained by lctrain at a window of L = 256) is extended to L' = 1024 (s = 4, the paper's
# 2048 -> 8192):
#   1. sliding-window perplexity of the base model at 256, 512, 1024: as it is (extrapolation),
#      and with PI but no fine-tuning;
#   2. fine-tuning with PI (configs/finetune-tiny-1024.yaml), checkpointing on the way;
#   3. the paper's control: the same fine-tuning without PI (direct extension);
#   4. perplexity and passkey retrieval of both;
#   5. the PI model exported as a Hugging Face folder, and `lctrain generate` on it;
#   6. one ~990-token passkey prompt asked of the base, the direct and the PI model;
#   7. the results table (out/demo/results.md), plot (out/demo/perplexity.png), and issue 20's
#      claims checked against the demo's JSON (scripts/demo_checks.py, out/demo/checks.md).
#
# Knobs (environment): DEMO_STEPS (fine-tuning steps; the config's 600), DEMO_DOCS (evaluation
# documents, 16), DEMO_TRIALS (passkey trials per distance, 10 as in the paper), DEMO_CORPUS (a
# folder with train/ and test/ .jsonl[.zst] files; default: make_sample_pile.sh's out/sample-pile),
# LCTRAIN_OUT (out/demo), LCTRAIN_BIN (an lctrain binary: skips set-up and build), DEMO_BASE (the
# base model, a Hugging Face folder with its tokenizer.model, trained at 256; data/tiny-llama).
set -euo pipefail
cd "$(dirname "$0")/.."
# The numeric knobs are checked before anything runs, not at the stage that first uses them.
for knob in DEMO_STEPS DEMO_DOCS DEMO_TRIALS; do
  if [ -n "${!knob:-}" ] && ! [[ ${!knob} =~ ^[1-9][0-9]*$ ]]; then
    echo "demo: $knob must be a positive whole number, got '${!knob}'" >&2
    exit 1
  fi
done
out=${LCTRAIN_OUT:-out/demo}
# One demo per output folder at a time: a second one would delete the first's files, and two
# would build the sample corpus and lctrain into the same folders.
mkdir -p "$(dirname "$out")"
exec 9>"${out%/}.lock"
if ! flock -n 9; then
  echo "demo: another demo is writing $out (${out%/}.lock is held);" \
    "wait for it or set LCTRAIN_OUT" >&2
  exit 1
fi

if [ -z "${LCTRAIN_BIN:-}" ]; then
  scripts/setup.sh
  scripts/build.sh --target lctrain
fi
lctrain=${LCTRAIN_BIN:-${LCTRAIN_BUILD_DIR:-build}/bin/lctrain}
base=${DEMO_BASE:-data/tiny-llama}
corpus=${DEMO_CORPUS:-out/sample-pile}
docs=${DEMO_DOCS:-16}
trials=${DEMO_TRIALS:-10}
steps=()
[ -n "${DEMO_STEPS:-}" ] && steps=(training.steps="$DEMO_STEPS")
started=$(date +%s)
stage() { echo; echo "=== demo [$(($(date +%s) - started)) s]: $*"; }

# The pinned sample corpus (data/sample-pile-manifest.json): built when missing or stale, and
# checked, so that a machine whose corpus differs says so instead of printing other numbers.
if [ -z "${DEMO_CORPUS:-}" ] &&
  ! scripts/check_sample_pile.sh "$corpus" data/sample-pile-manifest.json >/dev/null 2>&1; then
  stage "building the sample corpus (scripts/make_sample_pile.sh)"
  scripts/make_sample_pile.sh "$corpus"
fi
scripts/check_sample_pile.sh "$corpus" data/sample-pile-manifest.json ||
  echo "demo: this corpus is not the pinned one: the numbers will differ from README's"
rm -rf "$out"
mkdir -p "$out"
# The fine-tuning data: the base's last pretraining mix (the train split with recent lines
# repeated, copy documents, short passkey documents; scripts/pretrain_tiny.sh, stage 3), drawn
# again with another seed and twice its copy documents, plus passkeys whose key is anywhere in the
# new window: 10000 with running text of the train split between key and question (up to ~900
# tokens; every one of their tokens still teaches the language) and 5000 with the filler sentence
# of the evaluation's prompt, 12-25 sentences (430-900 tokens) back: a packed 1024-token row
# holds a whole far-keyed document rarely, so far keys are made common. The paper fine-tunes on
# the data its base was pretrained on; the passkeys give both fine-tunings the same chance to
# learn retrieval across 1024 tokens. Evaluation stays on the untouched test split.
stage "the fine-tuning data: the base's pretraining mix and passkeys across 1024 tokens" \
  "(make_recall_corpus.py)"
zstdcat -f "$corpus"/train/* >"$out/train.jsonl"
scripts/make_recall_corpus.py "$out/train.jsonl" "$out/finetune-mix.jsonl" --seed 4 \
  --copies 4000 --passkeys 20000 --max-fillers 5 --text-passkeys 10000 --long-passkeys 5000 \
  --long-min-fillers 12 --long-max-fillers 25
"$lctrain" prepare-data --input "$out/finetune-mix.jsonl" --tokenizer "$base/tokenizer.model" \
  --out "$out/train-shards"
rm "$out/train.jsonl" "$out/finetune-mix.jsonl"

# The paper's protocol (proof-pile): documents of at least L' tokens, truncated to L'.
evaluate() {  # name, model flags...
  local name=$1
  shift
  "$lctrain" eval ppl "$@" --data "$corpus/test" --context 256,512,1024 --stride 128 \
    --min-tokens 1024 --max-tokens 1024 --max-docs "$docs" --json "$out/ppl-$name.json" |
    head -n 2
}
# Key-to-question distances: the prompt is ~83 tokens longer than the distance (instruction and
# one filler sentence before the key) and distances step by one filler sentence (36 tokens).
# 43, 79, 115, 151 (prompts of 126 to 234 tokens) fit the base's 256; 511 and 907 (prompts of
# 594 and 990 tokens) fit 1024, 907 the longest that does.
passkey_lengths=44,80,116,152,512,940
passkey() {  # name, model flags...
  local name=$1
  shift
  "$lctrain" eval passkey "$@" --lengths "$passkey_lengths" --trials "$trials" --seed 0 \
    --json "$out/passkey-$name.json"
}
pi='{"rope_type":"linear","factor":4.0}'

# The independent jobs below run two or three at a time, one CPU thread each: on this 2-core
# machine two processes give ~2x the throughput of one, while two threads in one process give
# 1.44x. Each line of their output is prefixed with its job's name.
tagged() {  # tag, command...: one CPU thread unless OMP_NUM_THREADS says (util/cpu_threads.h)
  local tag=$1
  shift
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$@" 2>&1 | sed -u "s/^/[$tag] /"
}
wait_all() {  # pids: waits for every one, fails if any failed
  local failed=0
  for pid in "$@"; do wait "$pid" || failed=1; done
  return "$failed"
}

stage "base model at 256/512/1024: positions as they are (extrapolation), and with Position" \
  "Interpolation (factor 4) but no fine-tuning"
tagged base evaluate base --model "$base" &
jobs=($!)
tagged base+pi evaluate base-pi --model "$base" --rope-scaling "$pi" &
jobs+=($!)
wait_all "${jobs[@]}"
stage "passkey retrieval of the base model, inside its window (prompts of 126-234 tokens) and past it"
tagged base passkey base --model "$base"

finetune() {  # name, overrides...
  local name=$1
  shift
  "$lctrain" train --config configs/finetune-tiny-1024.yaml model.path="$base" \
    data.path="$out/train-shards" output.dir="$out/$name" output.resume=never "${steps[@]}" "$@"
}
stage "fine-tuning 256 -> 1024 with Position Interpolation, and the paper's control beside it:" \
  "the same fine-tuning without interpolation (direct extension)"
tagged pi finetune pi &
jobs=($!)
tagged direct finetune direct context.scaling=none &
jobs+=($!)
wait_all "${jobs[@]}"

stage "fine-tuned models at 256/512/1024, and passkey retrieval"
tagged direct evaluate direct --model "$out/direct/final" &
jobs=($!)
tagged pi evaluate pi --model "$out/pi/final" &
jobs+=($!)
wait_all "${jobs[@]}"
tagged direct passkey direct --model "$out/direct/final" &
jobs=($!)
tagged pi passkey pi --model "$out/pi/final" &
jobs+=($!)
wait_all "${jobs[@]}"

stage "exporting the PI model as a Hugging Face folder, and generating with it"
"$lctrain" export --checkpoint "$out/pi" --out "$out/tiny-llama-1024" --dtype bf16
"$lctrain" inspect "$out/tiny-llama-1024"
"$lctrain" generate --model "$out/tiny-llama-1024" --max-new-tokens 48 \
  --prompt "let REAL_LE_TRANS = prove"

# One passkey prompt of ~990 tokens (the key 907 tokens before the question, as the eval's
# longest distance), asked of the three models; each answer is printed after the question.
stage "one ~990-token passkey prompt (key 58031, 907 tokens before the question), three models"
filler="The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
prompt="There is an important info hidden inside a lot of irrelevant text. Find it and memorize"
prompt+=" them. I will quiz you about the important information there. $filler The pass key is"
prompt+=" 58031. Remember it. 58031 is the pass key."
for _ in $(seq 24); do prompt+=" $filler"; done
prompt+=" What is the pass key? The pass key is"
ask() {  # label, model flags...
  local label=$1
  shift
  local answer
  answer=$("$lctrain" generate "$@" --max-new-tokens 8 --prompt "$prompt" 2>/dev/null)
  printf '%-28s ...%s\n' "$label:" "${answer: -60}"
}
ask "base (L=256), no scaling" --model "$base"
ask "direct fine-tuning to 1024" --model "$out/direct/final"
ask "PI fine-tuning to 1024" --model "$out/tiny-llama-1024"

stage "results"
scripts/results_table.py "$out" base="base (L=256), no scaling" base-pi="base + PI, no fine-tuning" \
  direct="direct fine-tuning to 1024" pi="PI fine-tuning to 1024"
if command -v gnuplot >/dev/null; then
  gnuplot <<PLOT
set terminal png size 720,480
set output "$out/perplexity.png"
set title "Sliding-window perplexity vs evaluation window (base model trained at 256)"
set xlabel "evaluation window (tokens)"
set ylabel "perplexity"
set logscale xy
set xtics (256, 512, 1024)
set xrange [200:1300]
set key top left
set grid
plot for [col=2:5] "$out/results.tsv" using 1:col with linespoints lw 2 title columnhead(col)
PLOT
  echo "plot: $out/perplexity.png"
fi
stage "the paper's claims, checked against the figures above (scripts/demo_checks.py)"
scripts/demo_checks.py "$out"
echo "demo: finished in $(($(date +%s) - started)) s; results in $out/results.md"

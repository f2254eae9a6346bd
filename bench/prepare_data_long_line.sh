#!/usr/bin/env bash
# prepare-data on a .jsonl of ONE long line (a 50 MB document by default): wall time and peak
# resident memory (/usr/bin/time -f %M), beside the same text as ordinary 5 KB documents for the
# usual rate. Before long documents were tokenized in pieces, a 50 MB line took ~60 s and 3.9 GB.
#   bench/prepare_data_long_line.sh [MEGABYTES]      (default 50)
# The text: the plain-text files under /usr/share (licenses, documentation) joined and repeated
# up to MEGABYTES; the tokenizer: SentencePiece BPE (8000 pieces, byte fallback, LLaMA's
# settings: no normalization, dummy prefix) trained on its first 5 MB.
# Environment: LCTRAIN (binary, default build/bin/lctrain), BENCH_WORK (scratch folder, removed
# unless given), WORKERS (default: every core).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lctrain=${LCTRAIN:-$root/build/bin/lctrain}
megabytes=${1:-50}
if [ -n "${BENCH_WORK:-}" ]; then work=$BENCH_WORK; mkdir -p "$work"; else
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi

/usr/bin/python3 - "$work" "$megabytes" <<'PY'
import json, pathlib, sys
work, limit = sys.argv[1], int(sys.argv[2]) * 1_000_000
texts, size = [], 0
for base in ("/usr/share/common-licenses", "/usr/share/doc"):
    for path in sorted(pathlib.Path(base).rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix not in (".gz", ".html"):
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if len(text) > 200:
                texts.append(text)
text = "\n".join(texts)
text = (text * (limit // len(text) + 1))[:limit]
with open(f"{work}/long.jsonl", "w") as handle:
    handle.write(json.dumps({"text": text}) + "\n")
with open(f"{work}/short.jsonl", "w") as handle:
    for start in range(0, len(text), 5000):
        handle.write(json.dumps({"text": text[start:start + 5000]}) + "\n")
with open(f"{work}/sample.txt", "w") as handle:
    handle.write(text[:5_000_000])
PY
spm_train --input="$work/sample.txt" --model_prefix="$work/tokenizer" --vocab_size=8000 \
  --model_type=bpe --byte_fallback=true --add_dummy_prefix=true --remove_extra_whitespaces=false \
  --normalization_rule_name=identity --character_coverage=0.9995 --bos_id=1 --eos_id=2 \
  --unk_id=0 --pad_id=-1 --input_sentence_size=200000 --shuffle_input_sentence=true \
  --num_threads="$(nproc)" >/dev/null 2>&1

for corpus in long short; do
  echo "== $corpus.jsonl ($(stat -c %s "$work/$corpus.jsonl") bytes, $(wc -l <"$work/$corpus.jsonl") lines)"
  rm -rf "$work/shards-$corpus"
  /usr/bin/time -f "wall %e s, peak RSS %M KB" "$lctrain" prepare-data \
    --input "$work/$corpus.jsonl" --tokenizer "$work/tokenizer.model" \
    --out "$work/shards-$corpus" --workers "${WORKERS:-0}" 2>&1 |
    grep -E "documents,.*tokens/s|wall .* peak RSS"
done

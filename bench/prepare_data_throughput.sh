#!/usr/bin/env bash
# prepare-data throughput against Debian's python3-sentencepiece tokenizing the same documents in
# one process (what a simple Python preprocessing script does), as a ratio.
#   bench/prepare_data_throughput.sh [MEGABYTES]      (default 20)
# The corpus: the plain-text files under /usr/share (licenses, documentation) as JSON lines,
# repeated up to MEGABYTES; the tokenizer: SentencePiece BPE (8000 pieces, byte fallback) trained
# on its first 5 MB. Environment: LCTRAIN, BENCH_WORK, WORKERS (default: every core).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lctrain=${LCTRAIN:-$root/build/bin/lctrain}
megabytes=${1:-20}
work=${BENCH_WORK:-$(mktemp -d)}
mkdir -p "$work"

/usr/bin/python3 - "$work/corpus.jsonl" "$megabytes" <<'PY'
import json, pathlib, sys
out, limit = sys.argv[1], int(sys.argv[2]) * 1_000_000
texts = []
for base in ("/usr/share/common-licenses", "/usr/share/doc"):
    for path in sorted(pathlib.Path(base).rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix not in (".gz", ".html"):
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if len(text) > 200:
                texts.append(text)
written = 0
with open(out, "w") as handle:
    while written < limit:
        for text in texts:
            line = json.dumps({"text": text, "meta": {"pile_set_name": "DebianDocs"}})
            handle.write(line + "\n")
            written += len(text.encode())
            if written >= limit:
                break
PY
head -c 5000000 "$work/corpus.jsonl" >"$work/sample.txt"
spm_train --input="$work/sample.txt" --model_prefix="$work/tokenizer" --vocab_size=8000 \
  --model_type=bpe --byte_fallback=true --character_coverage=0.9995 --bos_id=1 --eos_id=2 \
  --unk_id=0 --pad_id=-1 --input_sentence_size=200000 --shuffle_input_sentence=true \
  --num_threads="$(nproc)" >/dev/null 2>&1

echo "== lctrain prepare-data (workers: ${WORKERS:-all cores})"
rm -rf "$work/shards"
"$lctrain" prepare-data --input "$work/corpus.jsonl" --tokenizer "$work/tokenizer.model" \
  --out "$work/shards" --workers "${WORKERS:-0}" 2>&1 | grep "documents,.*tokens/s" | head -1

echo "== python3-sentencepiece, one process"
/usr/bin/python3 - "$work/corpus.jsonl" "$work/tokenizer.model" <<'PY'
import json, sys, time
import sentencepiece as spm
processor = spm.SentencePieceProcessor(model_file=sys.argv[2])
started = time.perf_counter()
tokens = documents = text_bytes = 0
with open(sys.argv[1]) as handle:
    for line in handle:
        text = json.loads(line)["text"]
        ids = processor.encode(text)
        ids.append(processor.eos_id())
        tokens += len(ids)
        documents += 1
        text_bytes += len(text.encode())
seconds = time.perf_counter() - started
print(f"{documents} documents, {tokens} tokens, {text_bytes / 1e6:.1f} MB of text in {seconds:.2f} s: "
      f"{text_bytes / 1e6 / seconds:.2f} MB/s, {tokens / seconds:.0f} tokens/s")
PY

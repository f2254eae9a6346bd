#!/usr/bin/env bash
# Builds a small corpus in the Pile's format (jsonl.zst, {"text", "meta": {"pile_set_name"}})
# from real public text that Debian ships, split into train and test by document, since the Pile
# itself cannot be downloaded here. For the real Pile, point `lctrain prepare-data --input` at its
# train/*.jsonl.zst files instead.
#   scripts/make_sample_pile.sh [OUT_DIR] [MB_PER_SET]     (default out/sample-pile, 8)
# Sets: source code (C/C++ headers under /usr/include) as "Github"; HOL Light's formal proofs
# (hol-light, .ml) as "HOL Light"; LaTeX documentation sources (texlive-latex-base-doc) as
# "LaTeX docs"; English prose of licences and package documentation (/usr/share) as
# "DebianDocs"; quotations (fortunes) as "Fortunes". Every 10th document (by a hash of its
# path) goes to test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/out/sample-pile}
megabytes=${2:-8}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "make_sample_pile: downloading hol-light, texlive-latex-base-doc, fortunes-min (Debian)"
(cd "$work" && apt-get -o APT::Sandbox::User="$(id -un)" download hol-light \
  texlive-latex-base-doc fortunes-min >/dev/null 2>&1)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done

mkdir -p "$out/train" "$out/test"
/usr/bin/python3 - "$work/root" "$out" "$megabytes" <<'PY'
import hashlib, json, pathlib, random, sys
unpacked, out, limit = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3]) * 1_000_000

def texts(pattern_roots, suffixes, minimum=200):
    for base in pattern_roots:
        for path in sorted(pathlib.Path(base).rglob("*")):
            if path.is_file() and not path.is_symlink() and (not suffixes or path.suffix in suffixes):
                try:
                    text = path.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
                if len(text) >= minimum:
                    yield str(path), text

def fortunes():
    for path in sorted((unpacked / "usr/share/games/fortunes").glob("*")):
        if path.suffix == "" and path.is_file():
            for index, quote in enumerate(path.read_text(encoding="utf-8", errors="replace").split("\n%\n")):
                if len(quote.strip()) > 40:
                    yield f"{path}#{index}", quote.strip()

sets = {
    "Github": texts(["/usr/include"], {".h", ".hpp", ".hh"}),
    "HOL Light": texts([unpacked / "usr/share/hol-light"], {".ml"}),
    "LaTeX docs": texts([unpacked / "usr/share/doc/texlive-doc"], {".tex", ".dtx", ".txt", ".ltx"}),
    "DebianDocs": texts(["/usr/share/common-licenses", "/usr/share/doc"], set()),
    "Fortunes": fortunes(),
}
records = {"train": [], "test": []}
summary = {}
for name, documents in sets.items():
    size = 0
    counts = {"train": [0, 0], "test": [0, 0]}
    for key, text in documents:
        if size >= limit:
            break
        split = "test" if int(hashlib.sha1(key.encode()).hexdigest(), 16) % 10 == 0 else "train"
        records[split].append({"text": text, "meta": {"pile_set_name": name}})
        counts[split][0] += 1
        counts[split][1] += len(text.encode())
        size += len(text.encode())
    summary[name] = counts
for split, rows in records.items():
    random.Random(0).shuffle(rows)
    with open(out / split / f"{split}.jsonl", "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
print(f"{'set':<12} {'train docs':>10} {'train MB':>9} {'test docs':>9} {'test MB':>8}")
for name, counts in summary.items():
    print(f"{name:<12} {counts['train'][0]:>10} {counts['train'][1] / 1e6:>9.2f} "
          f"{counts['test'][0]:>9} {counts['test'][1] / 1e6:>8.2f}")
PY
for split in train test; do
  zstd -q -f --rm "$out/$split/$split.jsonl" -o "$out/$split/00.jsonl.zst"
done
ls -l "$out"/train "$out"/test

#!/usr/bin/env bash
# Says whether a sample corpus is the pinned one (byte for byte).
#   scripts/check_sample_pile.sh CORPUS_DIR EXPECTED_MANIFEST
# e.g. scripts/check_sample_pile.sh out/sample-pile data/sample-pile-manifest.json (the manifest of
# the pinned corpus that scripts/make_sample_pile.sh builds with its defaults). The bundled model
# data/tiny-llama was pre-trained on the earlier, machine-dependent corpus; until it is retrained
# on the pinned one (scripts/pretrain_tiny.sh), the demo's figures still vary across machines.
# The identity of a corpus is the SHA-256 of each split's uncompressed .jsonl, computed here from
# CORPUS_DIR/{train,test}/00.jsonl.zst themselves (so a corpus edited after it was made is seen);
# the .zst bytes may also differ by the zstd version alone, which is only noted. When they differ,
# CORPUS_DIR/manifest.json (written by make_sample_pile.sh) tells which packages, sets and
# splits differ. Prints one line "corpus matches ..." (exit 0) or "corpus differs from the pinned
# one: ..." followed by the differences (exit 1); exit 2 on a usage error.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: scripts/check_sample_pile.sh CORPUS_DIR EXPECTED_MANIFEST" >&2
  exit 2
fi
export LC_ALL=C
exec /usr/bin/python3 - "$1" "$2" <<'PY'
import hashlib, json, pathlib, subprocess, sys

corpus, expected_path = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
try:
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
except (OSError, ValueError) as error:
    print(f"check_sample_pile: cannot read the expected manifest {expected_path}: {error}",
          file=sys.stderr)
    sys.exit(2)
short = lambda digest: (digest or "none")[:12]
megabytes = lambda count: f"{count / 1e6:.2f} MB"

reasons, notes, changed = [], [], []
if not corpus.is_dir():
    print(f"corpus differs from the pinned one: there is no corpus at "
          f"{corpus} (scripts/make_sample_pile.sh {corpus} builds the expected one)")
    sys.exit(1)
for split, want in expected["splits"].items():
    folder = corpus / split
    files = sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []
    extra = [name for name in files if name != "00.jsonl.zst"]
    if extra:
        reasons.append(f"{split} split: extra files {', '.join(extra)} (the demo reads every file "
                       f"in {split}/)")
    path = folder / "00.jsonl.zst"
    if not path.is_file():
        reasons.append(f"{split} split: {path} is missing")
        continue
    zst = hashlib.sha256(path.read_bytes()).hexdigest()
    jsonl, size = hashlib.sha256(), 0
    with subprocess.Popen(["zstd", "-dcq", str(path)], stdout=subprocess.PIPE) as process:
        for block in iter(lambda: process.stdout.read(1 << 20), b""):
            jsonl.update(block)
            size += len(block)
    if process.returncode != 0:
        reasons.append(f"{split} split: {path} is not a readable .zst (zstd -d failed)")
        continue
    if jsonl.hexdigest() != want["jsonl_sha256"]:
        changed.append(split)
        reasons.append(f"{split} split: text sha256 {short(jsonl.hexdigest())} ({size} bytes), "
                       f"expected {short(want['jsonl_sha256'])} ({want['jsonl_bytes']} bytes)")
    elif zst != want["zst_sha256"]:
        notes.append(f"{split}/00.jsonl.zst differs from the expected .zst only in its compression "
                     "(another zstd version); the text is the same")

if reasons:
    # Which inputs differ, from the corpus's own manifest.
    try:
        made = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        made = None
        reasons.append(f"{corpus}/manifest.json is missing or unreadable: the corpus was not made "
                       "by this make_sample_pile.sh (an older one read the machine's own "
                       "/usr/include and /usr/share/doc)")
    if made is not None:
        for split in changed:
            said = made.get("splits", {}).get(split, {}).get("jsonl_sha256")
            if said == expected["splits"][split]["jsonl_sha256"]:
                reasons.append(f"{split} split: its manifest says it is the expected one, so the "
                               "file was changed after make_sample_pile.sh wrote it")
        if made.get("mb_per_set") != expected.get("mb_per_set"):
            reasons.append(f"MB_PER_SET {made.get('mb_per_set')}, expected "
                           f"{expected.get('mb_per_set')}")
        have = {deb["package"]: deb for deb in made.get("debs", [])}
        want_debs = {deb["package"]: deb for deb in expected.get("debs", [])}
        for name, deb in want_debs.items():
            got = have.get(name)
            if got is None:
                reasons.append(f"package {name} {deb['version']}: not used")
            elif (got["version"], got["sha256"]) != (deb["version"], deb["sha256"]):
                reasons.append(f"package {name}: {got['version']} (.deb sha256 "
                               f"{short(got['sha256'])}), expected {deb['version']} "
                               f"({short(deb['sha256'])})")
        for name in sorted(set(have) - set(want_debs)):
            reasons.append(f"package {name} {have[name]['version']}: not in the expected corpus")
        for table, label in (("sets", "set"), ("packages", "package")):
            mine, theirs = made.get(table, {}), expected.get(table, {})
            for name in sorted(set(mine) | set(theirs)):
                for split in ("train", "test"):
                    got = mine.get(name, {}).get(split, {"documents": 0, "bytes": 0})
                    want = theirs.get(name, {}).get(split, {"documents": 0, "bytes": 0})
                    if got != want:
                        reasons.append(f"{label} '{name}' {split}: {got['documents']} documents, "
                                       f"{megabytes(got['bytes'])}; expected {want['documents']}, "
                                       f"{megabytes(want['bytes'])}")
    print(f"corpus differs from the pinned one: {corpus} "
          f"(expected {expected_path})")
    shown = 16  # the splits, MB_PER_SET and the packages' versions come first, then the counts
    for reason in reasons[:shown]:
        print(f"  - {reason}")
    if len(reasons) > shown:
        print(f"  - ... and {len(reasons) - shown} more differences (compare {corpus}/manifest.json "
              f"with {expected_path})")
    print("  (scripts/make_sample_pile.sh OUT_DIR with its default MB_PER_SET builds the expected "
          "one)")
    sys.exit(1)
splits = ", ".join(f"{split} {short(want['jsonl_sha256'])}"
                   for split, want in expected["splits"].items())
print(f"corpus matches the pinned one: {corpus} (text sha256 {splits})")
for note in notes:
    print(f"  note: {note}")
PY

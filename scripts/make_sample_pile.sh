#!/usr/bin/env bash
# Builds a small corpus in the Pile's format (jsonl.zst, {"text", "meta": {"pile_set_name"}}) from
# real public text, the same bytes on every machine, since the Pile itself cannot be downloaded
# here. For the real Pile, point `lctrain prepare-data --input` at its train/*.jsonl.zst instead.
#   scripts/make_sample_pile.sh [OUT_DIR] [MB_PER_SET]     (default out/sample-pile, 8)
# Writes OUT_DIR/train/00.jsonl.zst, OUT_DIR/test/00.jsonl.zst and OUT_DIR/manifest.json; only
# when the run succeeds, and then any other *.jsonl* in OUT_DIR/train and OUT_DIR/test goes.
#
# Pinned: the text comes only from the fixed list of Debian 12 (bookworm) packages in PACKAGES
# below, each at an exact version, fetched with `apt-get download pkg=version` (no root needed)
# and unpacked with `dpkg-deb -x` into a temporary folder; nothing of the installed system is read.
# Each .deb is checked against the SHA-256 pinned here: a mismatch (the mirror changed the
# package) or a version the mirror no longer has stops the script with the package's name.
# SAMPLE_PILE_DEBS=DIR takes the .debs found in DIR first (e.g. fetched by hand from
# snapshot.debian.org on a machine whose mirror moved on); they are checked the same way.
#
# Sets (pile_set_name): "Github": C/C++ headers (Eigen, Asio, nlohmann/json, GLM, RapidJSON) and
# Python sources (NetworkX, Pygments, docutils); "HOL Light": HOL Light's formal proofs (.ml);
# "LaTeX docs": LaTeX sources of the LaTeX base and recommended packages' documentation (.tex,
# .dtx, .ltx); "DebianDocs": English prose (Debian Policy, Developer's Reference, Debian
# Reference, FAQ, New Maintainers' Guide, constitution and social contract, GNU coding standards,
# the Jargon File, Sphinx's manual, and every package's copyright/licence file); "Fortunes":
# quotations (fortunes-min). Files named *.gz are decompressed; files that are not UTF-8 or
# shorter than 200 characters are left out; exact duplicate texts are kept once. Texts over 64k
# characters are cut at blank lines into documents of about 32k, so that no single file lands
# wholly in one split. Each set takes documents in the order of a hash of their key until it
# holds MB_PER_SET megabytes of text; a document goes to test when another hash of its key is 0
# mod 10 (10%). The key is "package:path inside the package[#chunk]", never a local path.
# Files walk in sorted order, rows are ordered by hash, and nothing depends on locale, mtimes,
# the temporary folder or Python's random module: two runs give the same bytes (check with
# scripts/check_sample_pile.sh OUT data/sample-pile-manifest.json).
#
# The manifest records each .deb (name, version, architecture, SHA-256), each split's SHA-256 and
# size (uncompressed .jsonl: the corpus's identity; .zst: depends on the zstd version too), and
# document and byte counts per split, set and package. With the defaults: 24.2 MB of train text
# (2097 documents), 2.8 MB of test (268); it downloads ~150 MB (mostly the two texlive doc
# packages) and takes about a minute. All packages are Architecture: all except hol-light, pinned
# as amd64 (its .ml files are the same on every architecture, its .deb is not).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/out/sample-pile}
megabytes=${2:-8}
case $megabytes in
  '' | *[!0-9]*) echo "make_sample_pile: MB_PER_SET must be a whole number, got '$megabytes'" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/out/train" "$work/out/test"
export LC_ALL=C
/usr/bin/python3 - "$work" "$work/out" "$megabytes" "$out" <<'PY'
import fnmatch, gzip, hashlib, json, os, pathlib, pwd, subprocess, sys

# (package, version, architecture, SHA-256 of the .deb), all from Debian 12 bookworm main.
PACKAGES = [
    ("libeigen3-dev", "3.4.0-4", "all", "1a167bb381acb90c1d8450a8f3e66a09d216dbc64b33ac8a082a0912513ef939"),
    ("libasio-dev", "1:1.22.1-1", "all", "d55e7b0773dcd4385b366b888415908902a2b3483dcb1bb193d6565b38c03af0"),
    ("nlohmann-json3-dev", "3.11.2-2", "all", "ec57940def6b6186c30be0e0ee81d1e58f86d11a54a145b28686a1e3e4aae801"),
    ("libglm-dev", "0.9.9.8+ds-6", "all", "e2a2af0f14f24c07eb53de52b779c4557b6010d5fcc68128ed321c2bedf1ed3a"),
    ("rapidjson-dev", "1.1.0+dfsg2-7.1", "all", "37d2bd2dd97e3f8a25d9d27958ba22dfed13550a515852cc30434e538b9f47a3"),
    ("python3-networkx", "2.8.8-1", "all", "69888603d1b54696f5c3d02d05527628d2d18661d845109a62fe24aff241aa7b"),
    ("python3-pygments", "2.14.0+dfsg-1", "all", "405734a57b8d2722d10413c511d9b63ee78bbbdab8b2b689d7295260bc9618a2"),
    ("python3-docutils", "0.19+dfsg-6", "all", "ada9a80195375262c50dc0acf21a00a51166fee3fc96f6ca6d20a1a27868ba2c"),
    ("hol-light", "20230128-1+b1", "amd64", "9e908b3bf1e689769deee58f85df1cfc89b95aef00dcca087d65c89cd9020dfe"),
    ("texlive-latex-base-doc", "2022.20230122-3", "all", "122dbbe00bd22f872b1837eb86bd76fbac6ec84dd4f5f0c76cc9c18484485848"),
    ("texlive-latex-recommended-doc", "2022.20230122-3", "all", "8bea1f81bf50354fa4f3046c2dbb82efba9b8520aca0b2ab12eed18554a66c11"),
    ("debian-policy", "4.6.2.0", "all", "ef9d01b625c3b87c3a845c2cd1b66f1a16e9240b2b9e5bee53472a00e8457a39"),
    ("developers-reference", "12.18", "all", "0dba82f6fa16e373f2a84ad07e7971aa9264ad2e7d2ae46b37edbc9c5fd57e2e"),
    ("debian-reference-en", "2.100", "all", "9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f"),
    ("debian-faq", "11.1", "all", "427426e0cfa6888622fc1d72631071cb4b5a1f86ccde722e7820bcef284de5d0"),
    ("maint-guide", "1.2.53", "all", "762c8a400a36668d2eb814a3ba356b06488fd889dfce478eb11d5cfb189a47b5"),
    ("doc-debian", "11.3+nmu1", "all", "b9bff49f22b334cb6fedc071d81669e72cc2fa0dcd65e110785f69d9941f2773"),
    ("gnu-standards", "2022.03.23-0.1", "all", "2087dda531c69d8505856a45e0334746f3f25211a237c95d375eed13a7d8c201"),
    ("jargon-text", "4.4.7-4.1", "all", "17d05997e30eb3d5d6713929b8e2f81b63a5f50073858ad2a06701c71f54dcdb"),
    ("sphinx-doc", "5.3.0-4", "all", "1da3d08bb3a0bc82a4b8b8109410e223054bf5fb13904557ec8ea869046f65b4"),
    ("fortunes-min", "1:1.99.1-7.3", "all", "9eed5b45064e41133dae0967cf3a17588ad77c014fcc7bf1527fa3ea48e44d07"),
]
HEADERS = ["usr/include/*.h", "usr/include/*.hpp", "usr/include/*.hh", "usr/include/*.ipp",
           "usr/include/*.inl"]
PYTHON = ["usr/lib/python3/dist-packages/*.py"]
LATEX = ["usr/share/doc/texlive-doc/*.tex", "usr/share/doc/texlive-doc/*.dtx",
         "usr/share/doc/texlive-doc/*.ltx"]
# (pile_set_name, package, patterns, exclusions): fnmatch on the path inside the package with a
# trailing .gz removed ('*' crosses '/'). The sets' order is the order of this table.
SOURCES = [
    ("Github", "libeigen3-dev", HEADERS + ["usr/include/eigen3/Eigen/[A-Z]*",
                                           "usr/include/eigen3/unsupported/Eigen/[A-Z]*"], []),
    ("Github", "libasio-dev", HEADERS, []),
    ("Github", "nlohmann-json3-dev", HEADERS, []),
    ("Github", "libglm-dev", HEADERS, []),
    ("Github", "rapidjson-dev", HEADERS, []),
    ("Github", "python3-networkx", PYTHON, []),
    ("Github", "python3-pygments", PYTHON, []),
    ("Github", "python3-docutils", PYTHON, []),
    ("HOL Light", "hol-light", ["usr/share/hol-light/*.ml"], []),
    ("LaTeX docs", "texlive-latex-base-doc", LATEX, []),
    ("LaTeX docs", "texlive-latex-recommended-doc", LATEX, []),
    # One rendering of each manual (the plain-text one), not its HTML or reST twins.
    ("DebianDocs", "debian-policy", ["usr/share/doc/debian-policy/*.txt"], ["*/_sources/*"]),
    ("DebianDocs", "developers-reference",
     ["usr/share/developers-reference/developers-reference.txt"], []),
    ("DebianDocs", "debian-reference-en", ["usr/share/debian-reference/debian-reference.en.txt"], []),
    ("DebianDocs", "debian-faq", ["usr/share/doc/debian/FAQ/debian-faq.en.txt"], []),
    ("DebianDocs", "maint-guide", ["usr/share/doc/maint-guide/maint-guide.en.txt"], []),
    # The current constitution and social contract, not their older versions (near twins).
    ("DebianDocs", "doc-debian", ["usr/share/doc/debian/*.txt"], ["*.[0-9].[0-9].txt"]),
    ("DebianDocs", "gnu-standards", ["usr/share/doc/gnu-standards/*.text"], []),
    ("DebianDocs", "jargon-text", ["usr/share/doc/jargon-text/jargon.txt"], []),
    ("DebianDocs", "sphinx-doc", ["usr/share/doc/sphinx-doc/html/_sources/*.rst.txt"], []),
] + [("DebianDocs", name, ["usr/share/doc/*/copyright"], []) for name, *_ in PACKAGES] + [
    ("Fortunes", "fortunes-min", ["usr/share/games/fortunes/fortunes",
                                  "usr/share/games/fortunes/literature",
                                  "usr/share/games/fortunes/riddles"], []),
]
MINIMUM_CHARS = 200
CHUNK_ABOVE, CHUNK_TARGET, CHUNK_HARD, CHUNK_TAIL = 65536, 32768, 65536, 8192

work, out, megabytes = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
limit = megabytes * 1_000_000
environment = dict(os.environ, LC_ALL="C")


def fail(message):
    sys.exit(f"make_sample_pile: {message}")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def deb_fields(path):  # (package, version, architecture), or None for a file that is no .deb
    result = subprocess.run(["dpkg-deb", "-f", str(path), "Package", "Version", "Architecture"],
                            capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        return None
    fields = result.stdout
    values = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
    return values.get("Package"), values.get("Version"), values.get("Architecture")


# 1. The .debs: from SAMPLE_PILE_DEBS where found there, else `apt-get download`.
wanted = {(name, version, arch): sha for name, version, arch, sha in PACKAGES}
found = {}
cache = os.environ.get("SAMPLE_PILE_DEBS")
if cache:
    for path in sorted(pathlib.Path(cache).glob("*.deb")):
        fields = deb_fields(path)
        if fields in wanted and fields not in found:
            found[fields] = path
downloads = work / "debs"
downloads.mkdir()
missing = [spec for spec in wanted if spec not in found]
if missing:
    # An arch-specific package is asked for with its architecture, so that the script fetches the
    # pinned amd64 .deb (whose SHA-256 it knows) and says so plainly on another architecture.
    names = [f"{name}={version}" if arch == "all" else f"{name}:{arch}={version}"
             for name, version, arch in missing]
    print(f"make_sample_pile: downloading {len(names)} Debian packages (apt-get download)",
          flush=True)
    user = pwd.getpwuid(os.getuid()).pw_name  # no root needed: apt's sandbox user is us
    result = subprocess.run(["apt-get", "-q", "-o", f"APT::Sandbox::User={user}", "download",
                             *names], cwd=downloads, capture_output=True, text=True,
                            env=environment)
    if result.returncode != 0:
        errors = [line for line in (result.stderr + result.stdout).splitlines()
                  if line.startswith(("E:", "W:"))]
        fail("apt-get download failed:\n  " + "\n  ".join(errors or [result.stderr.strip()]) +
             "\nThe pinned versions are Debian 12 (bookworm)'s; a mirror that no longer has one "
             "(or an apt whose package lists are not bookworm's or are out of date: apt-get "
             "update) cannot give this corpus. Fetch the .deb named above from "
             "snapshot.debian.org and pass its folder as SAMPLE_PILE_DEBS=DIR.")
    for path in sorted(downloads.glob("*.deb")):
        fields = deb_fields(path)
        if fields in wanted and fields not in found:
            found[fields] = path
debs = []
for name, version, arch, pinned in PACKAGES:
    path = found.get((name, version, arch))
    if path is None:
        fail(f"{name} {version} ({arch}): no .deb came back from apt-get download")
    digest = sha256_file(path)
    if digest != pinned:
        fail(f"{name} {version} ({arch}): the .deb's SHA-256 is {digest}, the script pins "
             f"{pinned}: the Debian mirror (or SAMPLE_PILE_DEBS) changed this package, so the "
             "corpus would not be the pinned one")
    target = work / "root" / name
    target.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(path), str(target)], check=True, env=environment)
    debs.append({"package": name, "version": version, "architecture": arch, "sha256": digest,
                 "bytes": path.stat().st_size})

# 2. The documents: (set, package, key, text), sets in SOURCES order, files in sorted order.


def read_text(path):
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def chunks(text):
    if len(text) <= CHUNK_ABOVE:
        return [text]
    pieces, current, size = [], [], 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        size += len(line)
        if (size >= CHUNK_TARGET and not line.strip()) or size >= CHUNK_HARD:
            pieces.append("".join(current))
            current, size = [], 0
    if current:
        pieces.append("".join(current))
    if len(pieces) > 1 and len(pieces[-1]) < CHUNK_TAIL:
        pieces[-2] += pieces.pop()
    return pieces


def files(package, patterns, exclusions):
    base = work / "root" / package
    for path in sorted(base.rglob("*"), key=lambda p: p.relative_to(base).as_posix()):
        if path.is_symlink() or not path.is_file():
            continue
        inside = path.relative_to(base).as_posix()
        logical = inside[:-3] if inside.endswith(".gz") else inside
        if any(fnmatch.fnmatchcase(logical, p) for p in patterns) and \
                not any(fnmatch.fnmatchcase(logical, p) for p in exclusions):
            yield inside, path


documents = []
seen = set()
for set_name, package, patterns, exclusions in SOURCES:
    for inside, path in files(package, patterns, exclusions):
        text = read_text(path)
        if text is None:
            continue
        if set_name == "Fortunes":
            parts = [(f"#{index}", quote.strip())
                     for index, quote in enumerate(text.split("\n%\n")) if len(quote.strip()) > 40]
        else:
            pieces = chunks(text)
            parts = [("" if len(pieces) == 1 else f"#{index}", piece)
                     for index, piece in enumerate(pieces) if len(piece) >= MINIMUM_CHARS]
        for suffix, part in parts:
            fingerprint = hashlib.sha256(part.encode("utf-8")).digest()
            if fingerprint in seen:
                continue
            seen.add(fingerprint)
            documents.append((set_name, package, f"{package}:{inside}{suffix}", part))


def rank(salt, key):
    return hashlib.sha256(f"{salt}\0{key}".encode("utf-8")).hexdigest()


# 3. Per set, documents in hash order until MB_PER_SET megabytes; the split by another hash.
rows = {"train": [], "test": []}
set_names = list(dict.fromkeys(set_name for set_name, *_ in SOURCES))
counts = {"sets": {}, "packages": {}}
for set_name in set_names:
    members = sorted((d for d in documents if d[0] == set_name), key=lambda d: rank("order", d[2]))
    size = 0
    for _, package, key, text in members:
        if size >= limit:
            break
        split = "test" if int(rank("split", key), 16) % 10 == 0 else "train"
        nbytes = len(text.encode("utf-8"))
        rows[split].append((rank("row", key), {"text": text, "meta": {"pile_set_name": set_name}}))
        for table, name in (("sets", set_name), ("packages", package)):
            entry = counts[table].setdefault(name, {s: {"documents": 0, "bytes": 0}
                                                    for s in ("train", "test")})
            entry[split]["documents"] += 1
            entry[split]["bytes"] += nbytes
        size += nbytes

# 4. The split files and the manifest.
zstd_version = subprocess.run(["zstd", "-V"], capture_output=True, text=True,
                              env=environment).stdout.strip()
splits = {}
for split, members in rows.items():
    jsonl = out / split / "00.jsonl"
    digest, size = hashlib.sha256(), 0
    with open(jsonl, "wb") as handle:
        for _, row in sorted(members, key=lambda member: member[0]):
            line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
            digest.update(line)
            size += len(line)
            handle.write(line)
    # One thread and a fixed level: the .zst bytes then depend only on the zstd version.
    subprocess.run(["zstd", "-q", "-f", "-3", "-T1", "--rm", str(jsonl), "-o",
                    str(jsonl) + ".zst"], check=True, env=environment)
    zst = pathlib.Path(str(jsonl) + ".zst")
    splits[split] = {
        "file": f"{split}/00.jsonl.zst", "documents": len(members),
        "text_bytes": sum(counts["sets"][s][split]["bytes"] for s in counts["sets"]),
        "jsonl_sha256": digest.hexdigest(), "jsonl_bytes": size,
        "zst_sha256": sha256_file(zst), "zst_bytes": zst.stat().st_size,
    }
manifest = {
    "format": "lctrain sample pile 1",
    "made_by": "scripts/make_sample_pile.sh",
    "mb_per_set": megabytes,
    "debs": debs,
    "splits": splits,
    "sets": counts["sets"],
    "packages": dict(sorted(counts["packages"].items())),
    "zstd": zstd_version,
}
with open(out / "manifest.json", "w", encoding="utf-8") as handle:
    json.dump(manifest, handle, indent=2, ensure_ascii=False)
    handle.write("\n")

print(f"{'set':<12} {'train docs':>10} {'train MB':>9} {'test docs':>9} {'test MB':>8}")
for name, entry in counts["sets"].items():
    print(f"{name:<12} {entry['train']['documents']:>10} {entry['train']['bytes'] / 1e6:>9.2f} "
          f"{entry['test']['documents']:>9} {entry['test']['bytes'] / 1e6:>8.2f}")
for split, entry in splits.items():
    print(f"{split}: {entry['file']} {entry['documents']} documents, "
          f"{entry['text_bytes'] / 1e6:.2f} MB of text, jsonl sha256 {entry['jsonl_sha256']}")
print(f"manifest: {pathlib.Path(sys.argv[4]) / 'manifest.json'}")
PY
# Only a finished corpus replaces the old one: a failed run leaves OUT_DIR as it was.
mkdir -p "$out/train" "$out/test"
rm -f "$out"/train/*.jsonl* "$out"/test/*.jsonl* "$out/manifest.json"
for split in train test; do mv "$work/out/$split/00.jsonl.zst" "$out/$split/"; done
mv "$work/out/manifest.json" "$out/"

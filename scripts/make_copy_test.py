#!/usr/bin/env python3
"""The copy test: does a model look back and copy (induction heads)? Two small .jsonl files.

Each of --runs documents is a run of --words random words, drawn from the --vocab-words most common
alphabetic words of the corpus:
  * copy-aaa.jsonl: the run written three times (A A A);
  * copy-abc.jsonl: the same first run followed by two new runs (A B C).
The words are random, so only a model that copies can predict the second and third runs of AAA.
Score both with `lctrain eval ppl --add-bos --context 256 --stride 128`: a model that copies scores
AAA far below ABC; one that does not scores them alike. Measured on the tiny base models (issue 6):
the first bundled one (natural text only) 533 / 534, after an induction warm-up 2379 / 14346.

Usage: make_copy_test.py CORPUS.jsonl[.zst] [...] --out FOLDER [--runs N] [--words N] [--seed S]
"""
import argparse
import collections
import itertools
import json
import os
import random
import sys

from make_recall_corpus import read_documents


def common_words(paths, scan_docs, count):
    documents = itertools.chain.from_iterable(read_documents(path) for path in paths)
    words = collections.Counter()
    for document in itertools.islice(documents, scan_docs):
        words.update(w for w in document["text"].split() if w.isalpha())
    return [w for w, _ in words.most_common(count)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="+")
    parser.add_argument("--out", required=True, help="folder for copy-aaa.jsonl and copy-abc.jsonl")
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--words", type=int, default=40, help="words per run")
    parser.add_argument("--vocab-words", type=int, default=3000)
    parser.add_argument("--scan-docs", type=int, default=3000, help="documents to count words in")
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args()
    if args.runs < 1 or args.words < 1 or args.vocab_words < 2 or args.scan_docs < 1:
        parser.error("need --runs >= 1, --words >= 1, --vocab-words >= 2 and --scan-docs >= 1")
    vocabulary = common_words(args.corpus, args.scan_docs, args.vocab_words)
    if len(vocabulary) < 2:
        sys.exit(f"make_copy_test: {' '.join(args.corpus)}: fewer than 2 distinct words to draw from")

    rng = random.Random(args.seed)

    def run():
        return " ".join(rng.choice(vocabulary) for _ in range(args.words))

    os.makedirs(args.out, exist_ok=True)
    aaa_path = os.path.join(args.out, "copy-aaa.jsonl")
    abc_path = os.path.join(args.out, "copy-abc.jsonl")
    with open(aaa_path, "w") as aaa, open(abc_path, "w") as abc:
        for _ in range(args.runs):
            first = run()
            aaa.write(json.dumps({"text": " ".join([first, first, first])}) + "\n")
            abc.write(json.dumps({"text": " ".join([first, run(), run()])}) + "\n")
    print(f"make_copy_test: {args.runs} runs of {args.words} words from {len(vocabulary)} -> "
          f"{aaa_path}, {abc_path}", file=sys.stderr)


if __name__ == "__main__":
    main()

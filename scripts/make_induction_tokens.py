#!/usr/bin/env python3
"""Stage-1 pretraining data for the bundled tiny model: random token runs, each written three times.

The plainest induction task: the first copy of a run is unpredictable, every later token is a copy
of the token that followed the same token one run earlier. A model can only lower its loss on it
by learning to look back and copy (induction heads), which natural text at a few million tokens
rewards too rarely for a 5M-parameter model ever to learn (measured: no copying after 7M tokens of
the sample Pile, nor after 1.6M tokens of copy documents made of words). On this data, trained by
lctrain from random init with configs/pretrain-tiny-induction.yaml, the tiny base model starts to
copy after ~2.7M tokens: loss 8.17 at step 600 of 16 x 256 tokens, 4.88 at step 950 (a model that
copies everything it can scores ~2.8; one that cannot, 8.3).

Output: raw little-endian uint32 ids (what `lctrain train` reads from a .bin data.path):
BOS, then a run of --min-run..--max-run ids drawn uniformly from [--first-id, --vocab-size),
written --repeats times; again until --tokens ids.

Usage: make_induction_tokens.py OUTPUT.bin --vocab-size V [--tokens N] [--seed S] [...]
"""
import argparse
import array
import random
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output")
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=8_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-run", type=int, default=20)
    parser.add_argument("--max-run", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bos-id", type=int, default=1)
    parser.add_argument("--first-id", type=int, default=3, help="skip the special ids below this")
    args = parser.parse_args()
    if not 0 <= args.first_id < args.vocab_size:
        parser.error(f"--first-id {args.first_id} must lie in [0, --vocab-size {args.vocab_size})")
    if not 1 <= args.min_run <= args.max_run or args.repeats < 2 or args.tokens < 1:
        parser.error("need 1 <= --min-run <= --max-run, --repeats >= 2 and --tokens >= 1")
    rng = random.Random(args.seed)
    ids = array.array("I")
    while len(ids) < args.tokens:
        run = [rng.randrange(args.first_id, args.vocab_size)
               for _ in range(rng.randint(args.min_run, args.max_run))]
        ids.append(args.bos_id)
        ids.extend(run * args.repeats)
    del ids[args.tokens:]
    if sys.byteorder != "little":
        ids.byteswap()
    with open(args.output, "wb") as handle:
        ids.tofile(handle)
    print(f"make_induction_tokens: {len(ids)} ids -> {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Stage-2 pretraining corpus for the bundled tiny model: the train split, with recall in it.

A 5M-parameter model trained on a few million tokens of natural text learns n-gram statistics and
barely looks further back than ~64 tokens (measured: sliding-window perplexity 31.6 / 29.4 / 29.1 /
29.3 at windows 32 / 64 / 128 / 256), so it has nothing for Position Interpolation to extend. Long
context becomes useful to a small model through copying (induction heads), which natural text
rewards too rarely at this scale. This corpus makes recall common, at every distance inside the
pretraining window (L = 256 tokens, ~700 characters here):
  * every document gets repeats: after a line boundary, with probability --repeat-rate per line,
    a run of recent lines (--min-span..--max-span characters from the last --reach characters)
    is written again;
  * --copies extra documents are a random run of the corpus's words written two or three times
    (the plainest induction task), and
  * --passkeys extra documents use the passkey prompt (Mohtashami & Jaggi; the paper's section 3.3)
    with the key at a random depth, short enough to fit the window;
  * for fine-tuning to a longer window, --long-passkeys put the key at any distance up to
    --long-max-fillers filler sentences, and --text-passkeys do the same with running text of the
    corpus in place of the filler sentence.
The evaluation stays on the untouched test split, and passkey evaluation asks for distances up to
4x the window, which this corpus never shows.

Usage: make_recall_corpus.py INPUT.jsonl[.zst] OUTPUT.jsonl [--seed N] [...]
"""
import argparse
import io
import json
import random
import subprocess
import sys

INSTRUCTION = ("There is an important info hidden inside a lot of irrelevant text. Find it and "
               "memorize them. I will quiz you about the important information there.")
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
QUESTION = "What is the pass key? The pass key is"


def read_documents(path):
    if path.endswith(".zst"):
        data = subprocess.run(["zstdcat", path], check=True, capture_output=True).stdout
        handle = io.StringIO(data.decode("utf-8"))
    else:
        handle = open(path, encoding="utf-8")
    for line in handle:
        if line.strip():
            yield json.loads(line)


def with_repeats(text, rng, args):
    """The text with runs of recent lines written again a little later."""
    lines = text.split("\n")
    out = []
    recent = []  # (line, length) of the last `reach` characters
    for line in lines:
        out.append(line)
        recent.append(line)
        while sum(len(x) + 1 for x in recent) > args.reach and len(recent) > 1:
            recent.pop(0)
        if rng.random() >= args.repeat_rate or len(recent) < 2:
            continue
        span_chars = rng.randint(args.min_span, args.max_span)
        start = rng.randrange(len(recent) - 1)
        run, size = [], 0
        for candidate in recent[start:]:
            if size >= span_chars:
                break
            run.append(candidate)
            size += len(candidate) + 1
        if size >= args.min_span:
            out.extend(run)
            recent.clear()  # no repeat of a repeat
    return "\n".join(out)


def passkey_document(rng, max_fillers, distance_first=False, min_distance=0):
    """The paper's passkey prompt with its answer, at most max_fillers filler sentences in all.

    By default the fillers before the key are drawn first, which makes short key-to-question
    distances common; distance_first draws the fillers after the key first, so that every
    distance from min_distance to max_fillers sentences is equally likely."""
    key = str(rng.randint(10000, 99999))
    before = rng.randint(min_distance if distance_first else 0, max_fillers)
    after = rng.randint(0, max_fillers - before)
    if distance_first:
        before, after = after, before
    parts = [INSTRUCTION] + [FILLER] * before
    parts.append(f"The pass key is {key}. Remember it. {key} is the pass key.")
    parts += [FILLER] * after
    parts.append(f"{QUESTION} {key}.")
    return " ".join(parts)


# Characters of training text that tokenize to about as many tokens as one filler sentence (36
# tokens; the sample corpus averages ~2.4 characters per token against the filler's 2.5).
TEXT_CHARS_PER_FILLER = 85


def word_boundary(text, index):
    """The first whitespace at or after index (len(text) if none): cuts fall between words."""
    while index < len(text) and not text[index].isspace():
        index += 1
    return index


def text_passkey_document(rng, max_fillers, texts):
    """A passkey document whose filler is running training text instead of the filler sentence.

    Same prompt, key and question as passkey_document(distance_first=True), lengths counted in
    filler sentences' worth of text. The filler sentence is learnt after a few repetitions and
    then teaches nothing; running text keeps every token one the model has to predict, so the
    document teaches the corpus's language as well as retrieval."""
    key = str(rng.randint(10000, 99999))
    distance = rng.randint(0, max_fillers)
    before = rng.randint(0, max_fillers - distance) * TEXT_CHARS_PER_FILLER
    need = before + distance * TEXT_CHARS_PER_FILLER
    text = ""
    while len(text) < need:
        text += rng.choice(texts) + "\n"
    start = rng.randint(0, len(text) - need)
    if start > 0:
        start = word_boundary(text, start)
    end = word_boundary(text, start + need)
    split = min(word_boundary(text, start + before), end)
    parts = [INSTRUCTION, text[start:split].strip(),
             f"The pass key is {key}. Remember it. {key} is the pass key.",
             text[split:end].strip(), f"{QUESTION} {key}."]
    return " ".join(part for part in parts if part)


def copy_document(rng, vocabulary, args):
    run = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(10, args.max_copy_words)))
    return " ".join([run] * rng.randint(2, 3))


def count(text):
    """A whole number >= 0 (argparse type): a negative count or filler total has no meaning."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat-rate", type=float, default=0.04)
    parser.add_argument("--min-span", type=int, default=60)
    parser.add_argument("--max-span", type=int, default=300)
    parser.add_argument("--reach", type=int, default=650)
    parser.add_argument("--passkeys", type=count, default=3000)
    parser.add_argument("--max-fillers", type=count, default=4)
    parser.add_argument("--long-passkeys", type=count, default=0,
                        help="extra passkey documents, key-to-question distance uniform up to "
                        "--long-max-fillers filler sentences")
    parser.add_argument("--long-max-fillers", type=count, default=24)
    parser.add_argument("--long-min-fillers", type=count, default=0,
                        help="fewest filler sentences between key and question in the long "
                        "passkeys (a packed 1024-token row holds a whole far-keyed document "
                        "rarely, so far keys need to be common in the corpus)")
    parser.add_argument("--text-passkeys", type=count, default=0,
                        help="extra passkey documents drawn as the long ones, running text of "
                        "the input's documents in place of the filler sentence")
    parser.add_argument("--copies", type=count, default=0)
    parser.add_argument("--max-copy-words", type=int, default=60)
    args = parser.parse_args()
    if args.long_min_fillers > args.long_max_fillers:
        parser.error(f"--long-min-fillers {args.long_min_fillers} is above --long-max-fillers "
                     f"{args.long_max_fillers}")
    rng = random.Random(args.seed)
    rows = []
    for row in read_documents(args.input):
        rows.append({"text": with_repeats(row["text"], rng, args), "meta": row.get("meta", {})})
    natural = len(rows)
    texts = [row["text"] for row in rows]
    if args.text_passkeys and not texts:
        parser.error(f"--text-passkeys: {args.input} has no documents to fill them with")
    vocabulary = sorted({word for row in rows for word in row["text"].split() if word.isalpha()})
    if args.copies and not vocabulary:
        parser.error(f"--copies: {args.input} has no words to copy")
    for _ in range(args.copies):
        text = copy_document(rng, vocabulary, args)
        rows.append({"text": text, "meta": {"pile_set_name": "Copy"}})
    longest, nearest = args.long_max_fillers, args.long_min_fillers
    kinds = ((args.passkeys, lambda: passkey_document(rng, args.max_fillers)),
             (args.long_passkeys, lambda: passkey_document(rng, longest, True, nearest)),
             (args.text_passkeys, lambda: text_passkey_document(rng, longest, texts)))
    for number, draw in kinds:
        for _ in range(number):
            rows.append({"text": draw(), "meta": {"pile_set_name": "Passkey"}})
    rng.shuffle(rows)
    with open(args.output, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"make_recall_corpus: {natural} documents with repeats, {args.copies} copy documents, "
          f"{args.passkeys} + {args.long_passkeys} + {args.text_passkeys} passkey documents -> "
          f"{args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The demo's results table: sliding-window perplexity per model and window, and passkey accuracy.

Usage: results_table.py OUT_DIR ROW=LABEL ...
Reads OUT_DIR/ppl-ROW.json (lctrain eval ppl --json) and, when present, OUT_DIR/passkey-ROW.json
(lctrain eval passkey --json). Writes OUT_DIR/results.md (printed too) and OUT_DIR/results.tsv
(window, then one perplexity column per row) for plotting.
"""
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    out, rows = sys.argv[1], [arg.split("=", 1) for arg in sys.argv[2:]]
    ppl = {row: load(os.path.join(out, f"ppl-{row}.json")) for row, _ in rows}
    windows = [w["context"] for w in ppl[rows[0][0]]["windows"]]
    first = ppl[rows[0][0]]
    lines = [
        f"Sliding-window perplexity (stride {first['stride']}) on {first['documents']} held-out "
        f"documents of {first['data']}; lower is better.",
        "",
        "| model | " + " | ".join(str(w) for w in windows) + " |",
        "|---|" + "---|" * len(windows),
    ]
    for row, label in rows:
        by_window = {w["context"]: w["perplexity"] for w in ppl[row]["windows"]}
        lines.append(f"| {label} | " + " | ".join(f"{by_window[w]:.2f}" for w in windows) + " |")

    passkey = {row: load(p) for row, _ in rows
               if os.path.exists(p := os.path.join(out, f"passkey-{row}.json"))}
    if passkey:
        distances = [r["k"] for r in next(iter(passkey.values()))["results"]]
        trials = next(iter(passkey.values()))["trials"]
        lines += ["", f"Passkey retrieval accuracy ({trials} trials per distance k, greedy):", "",
                  "| model | " + " | ".join(f"k={k}" for k in distances) +
                  " | effective window |",
                  "|---|" + "---|" * (len(distances) + 1)]
        for row, label in rows:
            if row not in passkey:
                continue
            by_k = {r["k"]: r["accuracy"] for r in passkey[row]["results"]}
            lines.append(f"| {label} | " + " | ".join(f"{100 * by_k[k]:.0f}%" for k in distances) +
                         f" | {passkey[row]['effective_context_window']} |")

    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.tsv"), "w") as f:
        f.write("window\t" + "\t".join(f'"{label}"' for _, label in rows) + "\n")
        for w in windows:
            values = []
            for row, _ in rows:
                by_window = {x["context"]: x["perplexity"] for x in ppl[row]["windows"]}
                values.append(f"{by_window[w]:.6g}")
            f.write(f"{w}\t" + "\t".join(values) + "\n")
    print(text, end="")


if __name__ == "__main__":
    main()

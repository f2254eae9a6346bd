#!/usr/bin/env python3
"""The demo's claims, checked against its own JSON (issue 20): what the paper's result looks like.

Usage: demo_checks.py OUT_DIR [--window L] [--target L']
Reads OUT_DIR/ppl-{base,pi,direct}.json and OUT_DIR/passkey-{base,pi,direct}.json, prints one line
per claim (PASS/MISS and the figures), writes OUT_DIR/checks.md, and exits 0 whatever the outcome:
the demo reports, it does not gate.
  1. the base model falls apart past its window: ppl at L' > 5x its ppl at L;
  2. PI fine-tuning makes the new window as good as the old: ppl at L' <= 1.02x its ppl at L;
  3. ... at little cost inside the old window: PI's ppl at L within 15% of the base's;
  4. PI beats direct fine-tuning at L';
  5. passkey at the longest distance whose prompt fits in L': PI >= 80%, direct < 50%;
  6. the base retrieves inside its own window: >= 90% at every prompt that fits in L.
"""
import argparse
import json
import os


def load(out, name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


def ppl_at(doc, window):
    return {w["context"]: w["perplexity"] for w in doc["windows"]}[window]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--target", type=int, default=1024)
    args = parser.parse_args()
    L, T = args.window, args.target
    ppl = {m: load(args.out, f"ppl-{m}.json") for m in ("base", "pi", "direct")}
    key = {m: load(args.out, f"passkey-{m}.json")["results"] for m in ("base", "pi", "direct")}

    checks = []
    base_l, base_t = ppl_at(ppl["base"], L), ppl_at(ppl["base"], T)
    checks.append((f"base ppl at {T} > 5x at {L}", base_t > 5 * base_l,
                   f"{base_t:.2f} vs {base_l:.2f} ({base_t / base_l:.1f}x)"))
    pi_l, pi_t = ppl_at(ppl["pi"], L), ppl_at(ppl["pi"], T)
    checks.append((f"PI ppl at {T} <= 1.02x at {L}", pi_t <= 1.02 * pi_l,
                   f"{pi_t:.2f} vs {pi_l:.2f} ({pi_t / pi_l:.3f}x)"))
    checks.append((f"PI at {L} within 15% of the base at {L}", abs(pi_l / base_l - 1) <= 0.15,
                   f"{pi_l:.2f} vs {base_l:.2f} ({100 * (pi_l / base_l - 1):+.1f}%)"))
    direct_t = ppl_at(ppl["direct"], T)
    checks.append((f"PI better than direct fine-tuning at {T}", pi_t < direct_t,
                   f"{pi_t:.2f} vs {direct_t:.2f}"))
    fits = [r for r in key["pi"] if r["prompt_tokens"] <= T]
    if fits:
        longest = max(fits, key=lambda r: r["distance"])
        acc = {m: next(r["accuracy"] for r in key[m] if r["k"] == longest["k"])
               for m in ("pi", "direct")}
        checks.append((f"passkey at distance {longest['distance']} ({longest['prompt_tokens']}-token "
                       f"prompt): PI >= 80%, direct < 50%", acc["pi"] >= 0.8 and acc["direct"] < 0.5,
                       f"PI {100 * acc['pi']:.0f}%, direct {100 * acc['direct']:.0f}%"))
    inside = [r for r in key["base"] if r["prompt_tokens"] <= L]
    checks.append((f"base passkey >= 90% at every prompt that fits in {L}",
                   bool(inside) and all(r["accuracy"] >= 0.9 for r in inside),
                   ", ".join(f"{r['distance']}: {100 * r['accuracy']:.0f}%" for r in inside)))

    lines = [f"{'PASS' if ok else 'MISS'}  {what}: {figures}" for what, ok, figures in checks]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "checks.md"), "w") as f:
        f.write("".join(f"- {line}\n" for line in lines))
    print(text, end="")


if __name__ == "__main__":
    main()

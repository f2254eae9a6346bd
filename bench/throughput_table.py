#!/usr/bin/env python3
"""Reads the measurements of bench/train_throughput.sh (JSON lines) and prints the side-by-side
table: tokens/s, MFU and peak memory of lctrain and of PyTorch/transformers, and their ratio.

MFU = tokens/s x (6 N + 12 L d T) / peak, N = all parameters (embeddings included), L layers,
d hidden size, T sequence length (the attention term of PaLM's appendix B), peak = the device's
dense bf16 TFLOP/s (LCTRAIN_PEAK_TFLOPS, e.g. 989.4 for an H100 SXM or H200).
"""
import json
import os
import sys


def parameter_count(config: dict) -> int:
    d, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or d // heads
    attention = d * heads * head_dim * 2 + d * kv_heads * head_dim * 2
    layer = attention + 3 * d * i + 2 * d
    head = 0 if config.get("tie_word_embeddings") else v * d
    return v * d + config["num_hidden_layers"] * layer + d + head


def main() -> int:
    config_path, results_path = sys.argv[1], sys.argv[2]
    peak = float(os.environ.get("LCTRAIN_PEAK_TFLOPS", "0"))
    with open(config_path) as handle:
        config = json.load(handle)
    n = parameter_count(config)
    rows = {}
    with open(results_path) as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                rows.setdefault(record["seq"], {})[record["impl"]] = record

    def mfu(record, seq):
        if not record or not peak:
            return float("nan")
        flops = 6 * n + 12 * config["num_hidden_layers"] * config["hidden_size"] * seq
        return 100.0 * record["tokens_per_second"] * flops / (peak * 1e12)

    def memory(record):
        if not record:
            return float("nan")
        return record.get("peak_reserved_gib", record.get("peak_rss_gib", float("nan")))

    print(f"model: {n / 1e9:.3f}B parameters; MFU peak {peak or 'unknown'} TFLOP/s")
    print(f"{'seq':>6} | {'lctrain tok/s':>13} {'MFU%':>6} {'peak GiB':>8} | "
          f"{'PyTorch tok/s':>13} {'MFU%':>6} {'peak GiB':>8} | {'ratio':>5}")
    for seq in sorted(rows):
        ours, theirs = rows[seq].get("lctrain"), rows[seq].get("pytorch")
        ratio = (ours["tokens_per_second"] / theirs["tokens_per_second"]
                 if ours and theirs else float("nan"))
        tps = lambda record: record["tokens_per_second"] if record else float("nan")
        print(f"{seq:>6} | {tps(ours):>13.0f} {mfu(ours, seq):>6.1f} {memory(ours):>8.2f} | "
              f"{tps(theirs):>13.0f} {mfu(theirs, seq):>6.1f} {memory(theirs):>8.2f} | "
              f"{ratio:>5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

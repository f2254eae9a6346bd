#!/usr/bin/env python3
"""Compares `lctrain forward` logits with Hugging Face transformers' LlamaForCausalLM.

usage: hf_parity.py MODEL_DIR IDS_FILE LCTRAIN_LOGITS.safetensors [--device cuda] [--tolerance T]
Loads MODEL_DIR exactly as a transformers user would (config.json, rope_scaling included),
prints one JSON line with the largest absolute logit difference, exits 1 above the tolerance.
"""
import argparse
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("ids_file")
    parser.add_argument("logits_file")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False  # compare float32 with float32
    torch.backends.cudnn.allow_tf32 = False
    try:
        model = LlamaForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    except TypeError:  # transformers < 4.56 names it torch_dtype
        model = LlamaForCausalLM.from_pretrained(args.model_dir, torch_dtype=torch.float32)
    model = model.to(args.device).eval()
    ids = [int(token) for token in open(args.ids_file).read().split()]
    with torch.no_grad():
        expected = model(torch.tensor([ids], device=args.device)).logits[0].float().cpu()
    actual = load_file(args.logits_file)["logits"]
    if actual.shape != expected.shape:
        print(json.dumps({"model": args.model_dir, "error": f"shape {list(actual.shape)} vs "
                          f"{list(expected.shape)}"}))
        return 1
    difference = (actual - expected).abs().max().item()
    print(json.dumps({"model": args.model_dir, "tokens": len(ids), "device": args.device,
                      "rope_scaling": getattr(model.config, "rope_scaling", None),
                      "max_abs_diff": difference, "max_abs_logit": expected.abs().max().item(),
                      "tolerance": args.tolerance}, default=str))
    return 0 if difference <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())

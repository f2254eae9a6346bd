#!/usr/bin/env python3
"""The training step lctrain runs, in plain PyTorch without transformers: the CPU baseline of
bench/train_throughput.sh (BASELINE=torch_llama_step.py PYTHON=/usr/bin/python3), for machines
whose PyTorch has no transformers, such as Debian's python3-torch 1.13. The same model and step as
bench/hf_train_step.py: LLaMA (RMSNorm, RoPE with Position Interpolation, GQA, SwiGLU, tied or
untied embeddings), fp32 master weights under bf16 autocast, activation checkpointing per layer,
AdamW (0.9, 0.95), clipping at 1.0. Prints one JSON line of measurements.
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


class Llama(torch.nn.Module):
    def __init__(self, c, seq):
        super().__init__()
        self.c = c
        d, v = c["hidden_size"], c["vocab_size"]
        self.heads, self.kv_heads = c["num_attention_heads"], c.get("num_key_value_heads") or c["num_attention_heads"]
        self.head_dim = c.get("head_dim") or d // self.heads
        self.embed = torch.nn.Embedding(v, d)
        self.layers = torch.nn.ModuleList()
        for _ in range(c["num_hidden_layers"]):
            layer = torch.nn.Module()
            layer.norm1 = torch.nn.Parameter(torch.ones(d))
            layer.q = torch.nn.Linear(d, self.heads * self.head_dim, bias=False)
            layer.k = torch.nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
            layer.v = torch.nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
            layer.o = torch.nn.Linear(self.heads * self.head_dim, d, bias=False)
            layer.norm2 = torch.nn.Parameter(torch.ones(d))
            layer.gate = torch.nn.Linear(d, c["intermediate_size"], bias=False)
            layer.up = torch.nn.Linear(d, c["intermediate_size"], bias=False)
            layer.down = torch.nn.Linear(c["intermediate_size"], d, bias=False)
            self.layers.append(layer)
        self.norm = torch.nn.Parameter(torch.ones(d))
        self.lm_head = None if c.get("tie_word_embeddings") else torch.nn.Linear(d, v, bias=False)
        # Position Interpolation: positions scaled by L / L' when the window grows.
        scale = min(1.0, c["max_position_embeddings"] / seq)
        inv_freq = 1.0 / (c.get("rope_theta", 10000.0) **
                          (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        angles = torch.outer(torch.arange(seq).float() * scale, inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        mask = torch.full((seq, seq), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    def rms(self, x, w):
        x32 = x.float()
        return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.c["rms_norm_eps"])).to(x.dtype)

    def rope(self, x):
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * self.cos.to(x.dtype) + rotated * self.sin.to(x.dtype)

    def block(self, layer, x):
        b, t, _ = x.shape
        h = self.rms(x, layer.norm1)
        q = layer.q(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = layer.k(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = layer.v(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = self.rope(q), self.rope(k)
        groups = self.heads // self.kv_heads
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim) + self.mask.to(q.dtype)
        attention = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v
        x = x + layer.o(attention.transpose(1, 2).reshape(b, t, -1))
        h = self.rms(x, layer.norm2)
        return x + layer.down(F.silu(layer.gate(h)) * layer.up(h))

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = checkpoint(self.block, layer, x, use_reentrant=False)
        x = self.rms(x, self.norm)
        return x @ self.embed.weight.t().to(x.dtype) if self.lm_head is None else self.lm_head(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--skip", type=int, default=2)
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.config) as handle:
        config = json.load(handle)
    torch.manual_seed(0)
    model = Llama(config, args.seq)
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.02)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, betas=(0.9, 0.95), eps=1e-8,
                                  weight_decay=0.0)
    tokens = torch.randint(0, config["vocab_size"], (args.steps, 1, args.seq + 1))
    times = []
    for step in range(args.steps):
        started = time.perf_counter()
        inputs, targets = tokens[step, :, :-1], tokens[step, :, 1:]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        times.append(time.perf_counter() - started)
    measured = times[args.skip:] or times
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "seq": args.seq,
                      "steps": args.steps, "loss": loss_value, "device": "cpu",
                      "tokens_per_second": args.seq * len(measured) / sum(measured),
                      "parameters": sum(p.numel() for p in model.parameters()),
                      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}),
          flush=True)


if __name__ == "__main__":
    main()

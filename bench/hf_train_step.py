#!/usr/bin/env python3
"""The training step lctrain runs, written in PyTorch with Hugging Face transformers: the baseline
of bench/train_throughput.sh. LlamaForCausalLM with SDPA attention, fp32 master weights under bf16
autocast (as lctrain: bf16 compute, fp32 weights and AdamW state), gradient checkpointing, AdamW
(0.9, 0.95), gradient clipping at 1.0. Prints one JSON line of measurements.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, help="config.json of the model shape")
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--skip", type=int, default=2, help="first steps left out of the average")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-gradient-checkpointing", action="store_true",
                        help="keep every activation (transformers' fastest setting when it fits)")
    parser.add_argument("--profile", default="",
                        help="Chrome trace of the steps after --skip (at most 3), scoped as "
                             "lctrain's are: `lctrain profile-summary TRACE` splits both alike")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with open(args.config) as handle:
        fields = json.load(handle)
    config = LlamaConfig(**fields)
    original = config.max_position_embeddings
    if args.seq > original:  # Position Interpolation, as lctrain runs it
        # rope_theta inside too: transformers 5 keeps every RoPE parameter in this one dict.
        config.rope_scaling = {"rope_type": "linear", "factor": args.seq / original,
                               "rope_theta": fields.get("rope_theta", 10000.0)}
        config.max_position_embeddings = args.seq
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    device = torch.device(args.device)
    with device:
        model = LlamaForCausalLM(config)  # float32 parameters: the master weights
    if not args.no_gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.config.use_cache = False
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, betas=(0.9, 0.95), eps=1e-8,
                                  weight_decay=0.0)
    tokens = torch.randint(0, config.vocab_size, (args.steps, 1, args.seq + 1), device=device)
    autocast_dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    profiled = range(args.skip, min(args.steps, args.skip + 3)) if args.profile else range(0)
    profiler = None
    times = []
    for step in range(args.steps):
        if step == profiled.start and len(profiled) > 0:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            profiler = torch.profiler.profile(activities=activities)
            profiler.__enter__()
        started = time.perf_counter()
        with torch.profiler.record_function("lctrain::step"):
            inputs, targets = tokens[step, :, :-1], tokens[step, :, 1:]
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=args.dtype == "bf16"):
                logits = model(input_ids=inputs).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)),
                                   targets.reshape(-1))
            loss.backward()
            with torch.profiler.record_function("lctrain::optimizer"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = loss.item()  # lctrain reads its loss every step too
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
        if profiler is not None and step == profiled[-1]:
            profiler.__exit__(None, None, None)
            profiler.export_chrome_trace(args.profile)
            profiler = None

    measured = times[args.skip:] or times
    result = {"impl": "pytorch", "torch": torch.__version__, "seq": args.seq,
              "steps": args.steps, "loss": loss_value,
              "tokens_per_second": args.seq * len(measured) / sum(measured),
              "parameters": sum(p.numel() for p in model.parameters())}
    if device.type == "cuda":
        result["device"] = torch.cuda.get_device_name()
        result["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    else:
        import resource
        result["device"] = "cpu"
        result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Writes the tiny-llama-parity weights in the torch.save layouts lctrain must read, plus broken
variants, for tests/io/test_torch_checkpoints.cpp. Run with Debian's /usr/bin/python3 (python3-torch).

    make_torch_checkpoints.py FIXTURE_DIR OUT_DIR

OUT_DIR/meta         params.json + consolidated.00.pth, consolidated.01.pth (2 model-parallel
                     shards, Meta's interleaved RoPE rows, vocab_size -1, LLaMA 1's rope.freqs)
OUT_DIR/bin          config.json + pytorch_model.bin (shared, offset and strided storages, a
                     Parameter, an OrderedDict with _metadata, float32 and bfloat16)
OUT_DIR/bin-sharded  the same in two shards + pytorch_model.bin.index.json
OUT_DIR/bad/*        malformed checkpoints (see bad_checkpoints())
Every file is written by torch.save itself except the crafted zips of bad_checkpoints().
"""
import collections
import json
import os
import shutil
import struct
import sys
import zipfile

import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = bytearray(f.read())
    dtypes = {"BF16": torch.bfloat16, "F32": torch.float32, "F16": torch.float16}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(data[begin:end], dtype=dtypes[info["dtype"]]) if end > begin else \
            torch.empty(0, dtype=dtypes[info["dtype"]])
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors


def to_meta_order(weight, heads):
    """Inverse of transformers' convert_llama_weights_to_hf.permute: HF halves -> Meta pairs."""
    rows, columns = weight.shape
    return weight.view(heads, 2, rows // heads // 2, columns).transpose(1, 2).reshape(rows, columns)


def write_meta(hf, config, out):
    os.makedirs(out, exist_ok=True)
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    full = {"tok_embeddings.weight": (hf["model.embed_tokens.weight"], 1),
            "norm.weight": (hf["model.norm.weight"], None),
            "output.weight": (hf["model.embed_tokens.weight"], 0)}  # the fixture ties them
    for layer in range(config["num_hidden_layers"]):
        hf_prefix, prefix = f"model.layers.{layer}.", f"layers.{layer}."
        parts = {"attention.wq.weight": (to_meta_order(hf[hf_prefix + "self_attn.q_proj.weight"], heads), 0),
                 "attention.wk.weight": (to_meta_order(hf[hf_prefix + "self_attn.k_proj.weight"], kv_heads), 0),
                 "attention.wv.weight": (hf[hf_prefix + "self_attn.v_proj.weight"], 0),
                 "attention.wo.weight": (hf[hf_prefix + "self_attn.o_proj.weight"], 1),
                 "feed_forward.w1.weight": (hf[hf_prefix + "mlp.gate_proj.weight"], 0),
                 "feed_forward.w2.weight": (hf[hf_prefix + "mlp.down_proj.weight"], 1),
                 "feed_forward.w3.weight": (hf[hf_prefix + "mlp.up_proj.weight"], 0),
                 "attention_norm.weight": (hf[hf_prefix + "input_layernorm.weight"], None),
                 "ffn_norm.weight": (hf[hf_prefix + "post_attention_layernorm.weight"], None)}
        full.update({prefix + name: value for name, value in parts.items()})
    full["rope.freqs"] = (torch.rand(config["hidden_size"] // heads // 2), None)
    for shard in range(2):
        state = {}
        for name, (tensor, dim) in full.items():
            # torch.chunk splits 257 vocabulary rows as 129 + 128: uneven shards must work too.
            state[name] = tensor.clone() if dim is None else torch.chunk(tensor, 2, dim)[shard].clone()
        torch.save(state, os.path.join(out, f"consolidated.{shard:02d}.pth"))
    params = {"dim": config["hidden_size"], "n_layers": config["num_hidden_layers"],
              "n_heads": heads, "n_kv_heads": kv_heads, "vocab_size": -1,
              # int(0.9 * int(2 * 4 * 64 / 3)) = 153, rounded up to a multiple of 32: 160.
              "multiple_of": 32, "ffn_dim_multiplier": 0.9, "norm_eps": config["rms_norm_eps"],
              "rope_theta": config["rope_theta"], "max_seq_len": config["max_position_embeddings"]}
    with open(os.path.join(out, "params.json"), "w") as f:
        json.dump(params, f)


def bin_state(hf):
    """The HF weights as a state dict that exercises what real .bin files hold."""
    state = collections.OrderedDict()
    for name, tensor in hf.items():
        state[name] = tensor
    for layer in (0, 1):
        prefix = f"model.layers.{layer}."
        q, k = state[prefix + "self_attn.q_proj.weight"], state[prefix + "self_attn.k_proj.weight"]
        fused = torch.cat([q, k]).float()  # one storage: k_proj sits at a non-zero offset
        state[prefix + "self_attn.q_proj.weight"] = fused[: q.shape[0]]
        state[prefix + "self_attn.k_proj.weight"] = fused[q.shape[0]:]
        down = state[prefix + "mlp.down_proj.weight"]
        state[prefix + "mlp.down_proj.weight"] = down.t().contiguous().t()  # column-major strides
        state[prefix + "self_attn.rotary_emb.inv_freq"] = torch.rand(8)  # older transformers
    state["model.norm.weight"] = torch.nn.Parameter(state["model.norm.weight"], requires_grad=False)
    state["lm_head.weight"] = state["model.embed_tokens.weight"]  # tied: the same storage
    state._metadata = collections.OrderedDict([("", {"version": 1})])
    return state


def write_bin(hf, fixture, out, sharded):
    os.makedirs(out, exist_ok=True)
    shutil.copy(os.path.join(fixture, "config.json"), out)
    state = bin_state(hf)
    if not sharded:
        torch.save(state, os.path.join(out, "pytorch_model.bin"))
        return
    names = list(state)
    halves = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for index, half in enumerate(halves):
        file = f"pytorch_model-{index + 1:05d}-of-00002.bin"
        torch.save(collections.OrderedDict((n, state[n]) for n in half), os.path.join(out, file))
        weight_map.update({n: file for n in half})
    with open(os.path.join(out, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


class Evil:
    """Pickles as a call to os.system: what loading with Python's pickle would execute."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def rewrite_zip(source, target, change):
    """Copies a zip entry by entry, letting change(name, data) return new bytes (None: drop)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)


def bad_checkpoints(hf, fixture, out):
    bad = os.path.join(out, "bad")
    good_bin = os.path.join(out, "bin", "pytorch_model.bin")

    def folder(name):
        path = os.path.join(bad, name)
        os.makedirs(path, exist_ok=True)
        shutil.copy(os.path.join(fixture, "config.json"), path)
        return path

    with open(good_bin, "rb") as f:
        data = f.read()
    with open(os.path.join(folder("truncated"), "pytorch_model.bin"), "wb") as f:
        f.write(data[: len(data) // 2])

    evil = folder("evil")
    state = bin_state(hf)
    state["model.norm.weight"] = Evil(os.path.join(evil, "PWNED"))
    torch.save(state, os.path.join(evil, "pytorch_model.bin"))

    state = bin_state(hf)
    state["model.layers.1.self_attn.v_proj.weight"] = torch.zeros(31, 64)
    torch.save(state, os.path.join(folder("wrong-shape"), "pytorch_model.bin"))

    state = bin_state(hf)
    state["model.layers.0.input_layernorm.weight"] = 3
    torch.save(state, os.path.join(folder("not-a-tensor"), "pytorch_model.bin"))

    torch.save(bin_state(hf), os.path.join(folder("legacy"), "pytorch_model.bin"),
               _use_new_zipfile_serialization=False)

    # Storage entries cut short: the tensors using them would read past the data.
    rewrite_zip(good_bin, os.path.join(folder("short-storage"), "pytorch_model.bin"),
                lambda name, data: data[:-4] if "/data/" in name else data)
    with zipfile.ZipFile(good_bin) as zin, zipfile.ZipFile(
            os.path.join(folder("compressed"), "pytorch_model.bin"), "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))

    # 200000 nested lists: a reader that recursed (or freed recursively) would overflow its stack.
    deep = b"\x80\x02" + b"]" * 200000 + b"a" * 199999 + b"."
    rewrite_zip(good_bin, os.path.join(folder("deep"), "pytorch_model.bin"),
                lambda name, data: deep if name.endswith("/data.pkl") else data)

    # Meta shards that disagree: wv of layer 1 in shard 1 has 63 input columns instead of 64.
    meta = os.path.join(bad, "meta-mismatch")
    shutil.copytree(os.path.join(out, "meta"), meta)
    shard = torch.load(os.path.join(meta, "consolidated.01.pth"))
    shard["layers.1.attention.wv.weight"] = shard["layers.1.attention.wv.weight"][:, :63].clone()
    torch.save(shard, os.path.join(meta, "consolidated.01.pth"))


def main():
    fixture, out = sys.argv[1], sys.argv[2]
    hf = read_safetensors(os.path.join(fixture, "model.safetensors"))
    with open(os.path.join(fixture, "config.json")) as f:
        config = json.load(f)
    write_meta(hf, config, os.path.join(out, "meta"))
    write_bin(hf, fixture, os.path.join(out, "bin"), sharded=False)
    write_bin(hf, fixture, os.path.join(out, "bin-sharded"), sharded=True)
    bad_checkpoints(hf, fixture, out)


if __name__ == "__main__":
    main()

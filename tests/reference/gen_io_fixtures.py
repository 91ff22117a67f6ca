"""Writes the small checkpoint-reader fixtures in tests/data/io/ (dev-time only; the C tests read the
committed files and never need Python).

Values are a formula the C tests recompute: element i of a tensor with seed s is
    ((i * 7 + s) % 127) * 0.25 - 15.75        (exact in f32, f16 and bf16)

  plain_{f32,f16,bf16}.bin  torch.save of an OrderedDict state dict (with _metadata, as module.state_dict()):
                            'a' [3,4], 'b.weight' [2,3,5], 'scalar' [] , 'empty' [0,3],
                            'slice' = a contiguous view at storage offset 10 of a shared 64-element storage,
                            'param' = an nn.Parameter [4]
  plain_dict.bin            torch.save of a plain dict (EMPTY_DICT, no _metadata), f32
  sharded/                  pytorch_model-0000{1,2}-of-00002.bin + pytorch_model.bin.index.json (f32)
  noncontig.bin             a transposed (non-contiguous) tensor: must be refused
  compressed.bin            plain_f32.bin rewritten with deflate-compressed entries: must be refused
  pickle/*.pkl              hostile pickles crafted byte by byte (also fuzz seeds)
and the fuzz seed corpora tests/fuzz/seeds/{safetensors,pickle,config,torch_bin}/.
"""
import collections
import json
import os
import struct
import sys
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "io")


def values(shape, seed, dtype):
    n = 1
    for d in shape:
        n *= d
    i = torch.arange(n, dtype=torch.int64)
    v = (((i * 7 + seed) % 127).to(torch.float64) * 0.25 - 15.75).to(dtype)
    return v.reshape(shape)


def state_dict(dtype):
    sd = collections.OrderedDict()
    sd["a"] = values((3, 4), 1, dtype)
    sd["b.weight"] = values((2, 3, 5), 2, dtype)
    sd["scalar"] = values((), 3, dtype)
    sd["empty"] = values((0, 3), 4, dtype)
    shared = values((64,), 5, dtype)
    sd["slice"] = shared[10:30].view(4, 5)  # storage offset 10 inside a 64-element storage
    sd["param"] = torch.nn.Parameter(values((4,), 6, dtype), requires_grad=False)
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("b", {"version": 2})])
    return sd


def write_bins():
    for name, dt in (("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)):
        torch.save(state_dict(dt), os.path.join(OUT, f"plain_{name}.bin"))
    torch.save({"x": values((2, 2), 7, torch.float32), "y": values((3,), 8, torch.float32)},
               os.path.join(OUT, "plain_dict.bin"))
    torch.save({"t": values((3, 4), 9, torch.float32).t()}, os.path.join(OUT, "noncontig.bin"))

    sh = os.path.join(OUT, "sharded")
    os.makedirs(sh, exist_ok=True)
    shards = [{"visual.cls_token": values((1, 1, 8), 10, torch.float32),
               "project_up.weight": values((4, 8), 11, torch.float32)},
              {"project_down.weight": values((8, 4), 12, torch.float32),
               "decoder.lm.model.norm.weight": values((4,), 13, torch.float32)}]
    wm = {}
    for k, shard in enumerate(shards):
        fn = f"pytorch_model-{k + 1:05d}-of-00002.bin"
        torch.save(shard, os.path.join(sh, fn))
        wm.update({name: fn for name in shard})
    with open(os.path.join(sh, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f, indent=2)

    src = os.path.join(OUT, "plain_f32.bin")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(os.path.join(OUT, "compressed.bin"), "w",
                                                       compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            # a fixed timestamp keeps the file identical from run to run
            fixed = zipfile.ZipInfo(info.filename, date_time=(2023, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(fixed, zin.read(info.filename))


def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def write_pickles():
    d = os.path.join(OUT, "pickle")
    os.makedirs(d, exist_ok=True)
    pk = {
        # the classic: os.system("echo pwned") via GLOBAL + REDUCE
        "global_os_system": b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.",
        "global_builtins_eval": b"\x80\x02cbuiltins\neval\nX\x06\x00\x00\x001+1+1+\x85R.",
        # posix.system is what pickle writes for os.system on Linux
        "global_posix_system": b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R.",
        "unknown_opcode": b"\x80\x02}q\x00(\xffu.",
        "inst_opcode": b"\x80\x02(ios\nsystem\nX\x04\x00\x00\x00true.",
        "huge_string_length": b"\x80\x02}X\xff\xff\xff\x7fabc.",
        "deep_nesting": b"\x80\x02" + b"(" * 1000 + b".",
        "truncated": b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01",
        "memo_get_unset": b"\x80\x02}h\x07.",
        "huge_memo_index": b"\x80\x02}r\xff\xff\xff\xff.",
        "stack_underflow": b"\x80\x02s.",
        "not_a_dict": b"\x80\x02K\x05.",
        "value_not_tensor": b"\x80\x02}(X\x01\x00\x00\x00aK\x01u.",
        # ('storage', torch.FloatStorage, '0', 'cpu', 4) then _rebuild_tensor_v2 with a size past the storage
        "tensor_past_storage": (b"\x80\x02}X\x01\x00\x00\x00actorch._utils\n_rebuild_tensor_v2\n("
                                b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
                                b"X\x03\x00\x00\x00cpuK\x04tQK\x00K\x05\x85K\x01\x85\x89}tRs."),
        "non_contiguous": (b"\x80\x02}X\x01\x00\x00\x00actorch._utils\n_rebuild_tensor_v2\n("
                           b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
                           b"X\x03\x00\x00\x00cpuK\x06tQK\x00K\x02K\x03\x86K\x01K\x02\x86\x89}tRs."),
        "absurd_shape": (b"\x80\x02}X\x01\x00\x00\x00actorch._utils\n_rebuild_tensor_v2\n("
                         b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
                         b"X\x03\x00\x00\x00cpuK\x04tQK\x00\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x3f"
                         b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x3f\x86K\x01K\x01\x86\x89}tRs."),
        "storage_global_called": b"\x80\x02ctorch\nFloatStorage\n)R.",
        "bad_persistent_id": b"\x80\x02}X\x01\x00\x00\x00aX\x03\x00\x00\x00abcQs.",
        "storage_key_with_slash": (b"\x80\x02}X\x01\x00\x00\x00actorch._utils\n_rebuild_tensor_v2\n("
                                   b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x07\x00\x00\x00../../0"
                                   b"X\x03\x00\x00\x00cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89}tRs."),
        # a valid one-tensor pickle (the shape the C reader accepts), a good fuzz seed
        "valid_one_tensor": (b"\x80\x02}X\x01\x00\x00\x00actorch._utils\n_rebuild_tensor_v2\n("
                             b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
                             b"X\x03\x00\x00\x00cpuK\x06tQK\x00K\x02K\x03\x86K\x03K\x01\x86\x89}tRs."),
    }
    for name, data in pk.items():
        with open(os.path.join(d, name + ".pkl"), "wb") as f:
            f.write(data)
    # real data.pkl of a torch.save'd state dict (fuzz seed and reader test)
    with zipfile.ZipFile(os.path.join(OUT, "plain_bf16.bin")) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        with open(os.path.join(d, "torch_state_dict.pkl"), "wb") as f:
            f.write(z.read(pkl))


def write_seeds():
    import shutil
    from safetensors.torch import save_file
    seeds = os.path.join(HERE, "..", "fuzz", "seeds")
    st = os.path.join(seeds, "safetensors")
    os.makedirs(st, exist_ok=True)
    save_file({"a": values((3, 4), 1, torch.float32), "b": values((2, 5), 2, torch.bfloat16),
               "s": values((), 3, torch.float16), "e": torch.zeros((0, 2), dtype=torch.int64)},
              os.path.join(st, "mixed.safetensors"), metadata={"format": "pt"})
    save_file({"model.visual.blocks.0.attn.qkv.bias": values((12,), 4, torch.bfloat16),
               "project_up.weight": values((4, 4), 5, torch.bfloat16)}, os.path.join(st, "hf_names.safetensors"))
    pk = os.path.join(seeds, "pickle")
    os.makedirs(pk, exist_ok=True)
    for n in ("torch_state_dict", "valid_one_tensor", "non_contiguous", "global_os_system", "memo_get_unset"):
        shutil.copyfile(os.path.join(OUT, "pickle", n + ".pkl"), os.path.join(pk, n + ".pkl"))
    with zipfile.ZipFile(os.path.join(OUT, "plain_dict.bin")) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        with open(os.path.join(pk, "plain_dict.pkl"), "wb") as f:
            f.write(z.read(pkl))
    cf = os.path.join(seeds, "config")
    os.makedirs(cf, exist_ok=True)
    fixtures = os.path.join(HERE, "..", "..", "..", "shared", "fixtures", "emu2-configs")
    for name in ("Emu2", "Emu2-Chat"):
        src = os.path.join(fixtures, name, "config.json")
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(cf, name + ".json"))
    with open(os.path.join(cf, "mlp_ratio.json"), "w") as f:
        json.dump({"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "vocab_size": 32272, "pad_token_id": 32000,
                   "vision_config": {"image_size": 28, "patch_size": 14, "width": 8, "layers": 1, "head_width": 4,
                                     "mlp_ratio": 2.5, "n_query": 4, "postnorm": True}}, f)
    tb = os.path.join(seeds, "torch_bin")
    os.makedirs(tb, exist_ok=True)
    for n in ("plain_bf16.bin", "plain_dict.bin"):
        shutil.copyfile(os.path.join(OUT, n), os.path.join(tb, n))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    write_bins()
    write_pickles()
    write_seeds()
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()

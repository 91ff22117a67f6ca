"""Quantizes a GGUF with llama.cpp's own quantizer (llama_model_quantize, what llama-quantize runs),
through llama-cpp-python's bindings.

    python quantize_gguf.py SRC.gguf DST.gguf q8_0|q4_0 [--recipe matched|default] [--threads T]

--recipe matched (the default): the layer linears in the requested type, token embeddings and the output
  matrix (lm_head) in bf16, as the engine's int8/int4 load keeps embed_tokens and lm_head in their
  stored bf16: the same bits on both sides.
--recipe default: llama-quantize's own choice (q4_0 puts the output matrix in q6_K, q8_0 in q8_0).
"""
import argparse
import ctypes
import os
import sys

import llama_cpp

FTYPES = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}
GGML_TYPE_BF16 = 30  # ggml.h: enum ggml_type


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("type", choices=sorted(FTYPES))
    ap.add_argument("--recipe", choices=("matched", "default"), default="matched")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = FTYPES[a.type]
    p.nthread = a.threads
    if a.recipe == "matched":
        p.output_tensor_type = GGML_TYPE_BF16
        p.token_embedding_type = GGML_TYPE_BF16
    tmp = a.dst + ".partial"
    rc = llama_cpp.llama_model_quantize(a.src.encode(), tmp.encode(), ctypes.byref(p))
    if rc != 0:
        sys.exit(f"quantize_gguf: llama_model_quantize failed ({rc}) for {a.src} -> {a.type}")
    os.replace(tmp, a.dst)
    print(f"quantize_gguf: wrote {a.dst} ({a.type}, recipe {a.recipe})", file=sys.stderr)


if __name__ == "__main__":
    main()

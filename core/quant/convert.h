/* convert.h: `emu2 convert`: a model folder's weights (any checkpoint the loader reads: safetensors
 * or torch .bin, single or sharded, HF or native names) rewritten as sharded safetensors under the
 * canonical (native) names, optionally cast to bf16/f16 and with the LLM linears quantized
 * (`<name>.qweight` + `<name>.scales`, see docs/QUANT.md), plus the folder's config and tokenizer
 * files copied. What was written is verified: the folder is re-opened by the loader and every
 * tensor's dtype, shape and a 64-bit hash of its bytes are compared with what was meant. */
#ifndef EMU2_QUANT_CONVERT_H
#define EMU2_QUANT_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"
#include "io/checkpoint.h"
#include "quant/quant.h"

typedef struct emu2_convert_options {
    emu2_dtype dtype;     /* float tensors are cast to this (F32, F16, BF16); INVALID: kept as stored */
    const char *quant;    /* NULL/"none", "int8", "int4", "int4-g64", ... (quant.h) */
    int keep_vision;      /* vision tower (visual.*) tensors are copied exactly as stored */
    uint64_t shard_bytes; /* largest shard's data; 0: 4 GiB */
    emu2_progress_fn progress; /* stages "write" and "verify", done/total in bytes; non-zero cancels */
    void *progress_user;
} emu2_convert_options;

typedef enum emu2_convert_kind {
    EMU2_CONVERT_COPY = 0, /* bytes as stored */
    EMU2_CONVERT_CAST,     /* float tensor in another float dtype */
    EMU2_CONVERT_QVALUES,  /* <base>.qweight of a quantized linear */
    EMU2_CONVERT_QSCALES   /* <base>.scales */
} emu2_convert_kind;

typedef struct emu2_convert_entry {
    char *name;                   /* written name (canonical) */
    const emu2_ckpt_tensor *src;  /* source tensor (the float weight for QVALUES/QSCALES) */
    emu2_convert_kind kind;
    emu2_quant_spec spec;         /* QVALUES/QSCALES */
    emu2_dtype dtype;
    int ndim;
    int64_t shape[EMU2_MAX_DIMS];
    uint64_t nbytes;
    size_t shard;
    uint64_t hash; /* of the bytes written (after writing) */
} emu2_convert_entry;

typedef struct emu2_convert_plan {
    emu2_convert_entry *e;
    size_t n;
    size_t n_shards;
    uint64_t total_bytes;
    uint64_t params;             /* source elements (a quantized linear counts its N*K once) */
    uint64_t llm_params, llm_bytes;       /* decoder.* */
    uint64_t linear_params, linear_bytes; /* the quantized linears (values + scales) */
} emu2_convert_plan;

/* Plans the output of ck under opts (no file is read beyond the checkpoint's headers). */
emu2_status emu2_convert_plan_make(const emu2_checkpoint *ck, const emu2_convert_options *opts,
                                   emu2_convert_plan *out, emu2_error *err);
void emu2_convert_plan_free(emu2_convert_plan *p);

/* The output bytes of entry e (nbytes of them) into dst. */
emu2_status emu2_convert_entry_bytes(const emu2_convert_entry *e, void *dst, emu2_error *err);

/* Writes the plan's shards + model.safetensors.index.json into dst_dir (created if missing; it
 * must not already hold weights), copies src_dir's other small files (config.json, tokenizer
 * files, ...), then verifies by re-opening dst_dir. */
emu2_status emu2_convert_write(const char *src_dir, const char *dst_dir, emu2_convert_plan *plan,
                               const emu2_convert_options *opts, emu2_error *err);

/* The 64-bit hash the verification uses (FNV-1a over 8-byte words, then the tail). */
uint64_t emu2_convert_hash(const void *data, uint64_t n);

#endif

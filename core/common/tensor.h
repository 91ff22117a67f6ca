/* tensor.h: element types and a read-only view of a tensor (usually inside a mapped checkpoint). */
#ifndef EMU2_COMMON_TENSOR_H
#define EMU2_COMMON_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum emu2_dtype {
    EMU2_DT_INVALID = 0,
    EMU2_DT_F32,
    EMU2_DT_F16,
    EMU2_DT_BF16,
    EMU2_DT_I64,
    EMU2_DT_I32,
    EMU2_DT_I8,
    EMU2_DT_U8,
    EMU2_DT_BOOL,
    EMU2_DT_F64
} emu2_dtype;

#define EMU2_MAX_DIMS 8

typedef struct emu2_tensor_view {
    emu2_dtype dtype;
    int ndim;
    int64_t shape[EMU2_MAX_DIMS];
    const void *data; /* little-endian, contiguous row-major */
    uint64_t nbytes;
} emu2_tensor_view;

size_t emu2_dtype_size(emu2_dtype dt);         /* 0 for EMU2_DT_INVALID */
const char *emu2_dtype_name(emu2_dtype dt);     /* "F32", "BF16", ... as safetensors spells them */
emu2_dtype emu2_dtype_from_name(const char *name); /* safetensors spelling; EMU2_DT_INVALID if unknown */
uint64_t emu2_tensor_numel(const emu2_tensor_view *t);

/* Exact conversions to float (bf16/f16 -> f32 are exact). */
float emu2_bf16_to_f32(uint16_t h);
float emu2_f16_to_f32(uint16_t h);
/* Round-to-nearest-even conversions from float. */
uint16_t emu2_f32_to_bf16(float f);
uint16_t emu2_f32_to_f16(float f);

#endif

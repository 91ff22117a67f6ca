/* kern_bf16dot.h: the bf16 x bf16 -> f32 GEMM of the "bf16" precision (AVX512_BF16 vdpbf16ps: 32
 * bf16 multiply-adds per instruction, twice the f32 FMA's 16).
 *
 * Layouts (all bf16 pairs are 32-bit words: element 2p in the low half, 2p + 1 in the high half):
 *  - a weight panel holds CPU_BF16_NR weight rows: word [p][j] = (W[j][2p], W[j][2p+1]), so one
 *    64-byte load gives 16 output columns' pairs; rows past the matrix and the odd K tail are zero.
 *  - an activation tile is CPU_BF16_MR rows of x rounded to bf16 (round to nearest even), lda words
 *    apart; vdpbf16ps broadcasts one row's pair against the panel's vectors.
 * vdpbf16ps treats bf16 denormals as zero and flushes denormal results: activations and weights of
 * real models are far from that range. */
#ifndef EMU2_OPS_CPU_KERN_BF16DOT_H
#define EMU2_OPS_CPU_KERN_BF16DOT_H

#include <stddef.h>
#include <stdint.h>

#define CPU_BF16_MR 6  /* activation rows per register tile */
#define CPU_BF16_NR 64 /* output columns per register tile (4 vectors): 24 accumulators */

/* Whether the CPU runs these kernels (AVX-512 F/BW/VL plus AVX512_BF16; isa.c). */
int cpu_bf16dot_supported(void);

/* Packs weight rows [0, rows) (rows <= CPU_BF16_NR, row r at w + r * ldw elements) x elements
 * [0, kl) into one panel of ceil(kl / 2) words per column: dst[p * CPU_BF16_NR + j]. */
void cpu_bf16dot_pack_panel(const uint16_t *w, size_t ldw, size_t rows, size_t kl, uint32_t *dst);

/* The same panel from int4 rows (quant/quant.h layout: rb bytes a row, sc f16 scales a row, group
 * G): q and scales point at row 0's group k0 / G of the slice [k0, k0 + kl) (k0 a multiple of G);
 * each value is (nibble - 8) x scale rounded to bf16 (nearest even). Reads whole groups only. */
void cpu_bf16dot_pack_panel_q4(const uint8_t *q, size_t rb, const void *scales, size_t sc, size_t G, size_t rows,
                               size_t kl, uint32_t *dst);

/* The same panel from int8 rows (ldq bytes apart, q at row 0's element k0) with one f32 scale a
 * row (row r's at scales + 4 r bytes, any alignment): q x scale rounded to bf16 (nearest even). */
void cpu_bf16dot_pack_panel_q8(const int8_t *q, size_t ldq, const void *scales, size_t rows, size_t kl,
                               uint32_t *dst);

/* Rounds rows [0, rows) x elements [0, k) of x (rows ldx floats apart) to bf16 into dst, rows lda
 * words apart (lda a multiple of 8, >= ceil(k / 2)); words past ceil(k / 2) up to lda are zero. */
void cpu_bf16dot_round_rows(const float *x, size_t ldx, size_t rows, size_t k, uint32_t *dst, size_t lda);

/* y[i * ldy + j] += sum_p a-tile row i . panel column j over kpairs words, for i < mr, j < nr. */
void cpu_bf16dot_tile(const uint32_t *a, size_t lda, const uint32_t *panel, size_t kpairs, float *y, size_t ldy,
                      size_t mr, size_t nr);

#endif

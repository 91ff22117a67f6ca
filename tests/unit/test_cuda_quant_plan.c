/* test_cuda_quant_plan.c: the host-side rules of the CUDA backend's quantized linears
 * (kernels/quant_plan.c, plain C, compiled into this test): the weight check accepts exactly what
 * the CPU backend's check (core/quant) accepts, on weights core/quant builds and on broken copies
 * of them; the row-size formulas match core/quant's; the widening chunks cover every row within
 * their byte budget. And the kernels' own addressing and integer widening (kernels/quant_layout.h,
 * the functions quant.cu calls) reproduce core/quant's dequantization exactly, on both the
 * 16-byte-chunk and the per-element paths. Runs everywhere, no GPU needed. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "quant/quant.h"
#include "../../kernels/quant_layout.h"
#include "../../kernels/quant_plan.c"

static int only_first_buffer(const void *p);
static const void *allowed_ptr;
static int only_first_buffer(const void *p)
{
    return p == allowed_ptr;
}

typedef struct qw {
    emu2_op_weight w;
    void *q, *s;
} qw;

/* A weight [N, K] quantized by core/quant from a smooth ramp, viewed as the loader views it. */
static int make_qw(qw *t, emu2_weight_format f, int group, size_t N, size_t K)
{
    emu2_quant_spec spec = {.format = f, .group = group};
    size_t rb = emu2_quant_q_row_bytes(spec, K), sc = emu2_quant_scale_row_count(spec, K);
    float *src = malloc(N * K * sizeof *src);
    for (size_t i = 0; i < N * K; i++)
        src[i] = (float)((int)(i * 37 % 101) - 50) / 64.0f;
    t->q = malloc(N * rb);
    t->s = malloc(N * sc * 4);
    emu2_error err;
    int ok = emu2_quantize_rows(spec, src, EMU2_DT_F32, N, K, t->q, t->s, &err) == EMU2_OK;
    free(src);
    memset(&t->w, 0, sizeof t->w);
    t->w.format = f;
    t->w.group = f == EMU2_WEIGHT_Q4 ? group : 0;
    t->w.w = (emu2_tensor_view){.dtype = f == EMU2_WEIGHT_Q8 ? EMU2_DT_I8 : EMU2_DT_U8, .ndim = 2,
                                .shape = {(int64_t)N, (int64_t)rb}, .data = t->q, .nbytes = N * rb};
    if (f == EMU2_WEIGHT_Q8)
        t->w.scales = (emu2_tensor_view){.dtype = EMU2_DT_F32, .ndim = 1, .shape = {(int64_t)N}, .data = t->s,
                                         .nbytes = N * 4};
    else
        t->w.scales = (emu2_tensor_view){.dtype = EMU2_DT_F16, .ndim = 2, .shape = {(int64_t)N, (int64_t)sc},
                                         .data = t->s, .nbytes = N * sc * 2};
    return ok;
}

static void free_qw(qw *t)
{
    free(t->q), free(t->s);
}

TEST(row_sizes_match_core_quant)
{
    const int groups[] = {32, 64, 128};
    for (size_t K = 1; K <= 700; K += 3) {
        emu2_quant_spec q8 = {.format = EMU2_WEIGHT_Q8};
        CHECK(cuda_quant_row_bytes(EMU2_WEIGHT_Q8, 0, K) == emu2_quant_q_row_bytes(q8, K));
        CHECK(cuda_quant_scales_per_row(EMU2_WEIGHT_Q8, 0, K) == emu2_quant_scale_row_count(q8, K));
        for (int g = 0; g < 3; g++) {
            emu2_quant_spec q4 = {.format = EMU2_WEIGHT_Q4, .group = groups[g]};
            CHECKF(cuda_quant_row_bytes(EMU2_WEIGHT_Q4, groups[g], K) == emu2_quant_q_row_bytes(q4, K), "K %zu g %d",
                   K, groups[g]);
            CHECK(cuda_quant_scales_per_row(EMU2_WEIGHT_Q4, groups[g], K) == emu2_quant_scale_row_count(q4, K));
            /* the decode kernel's 16-byte chunks never straddle a group */
            CHECK(cuda_quant_row_bytes(EMU2_WEIGHT_Q4, groups[g], K) % 16 == 0);
        }
    }
    CHECK(cuda_quant_row_bytes(EMU2_WEIGHT_Q4, 48, 96) == 0 && cuda_quant_row_bytes(EMU2_WEIGHT_FLOAT, 0, 9) == 0);
    CHECK(cuda_quant_scales_per_row(EMU2_WEIGHT_Q4, 16, 96) == 0);
}

/* Each broken variant: both checks refuse it (the CUDA one with the stated status). */
TEST(check_agrees_with_the_cpu_check)
{
    const struct { emu2_weight_format f; int g; size_t N, K; } shapes[] = {
        {EMU2_WEIGHT_Q8, 0, 7, 48}, {EMU2_WEIGHT_Q8, 0, 3, 1}, {EMU2_WEIGHT_Q4, 32, 5, 100},
        {EMU2_WEIGHT_Q4, 64, 4, 64}, {EMU2_WEIGHT_Q4, 128, 2, 300}, {EMU2_WEIGHT_Q4, 32, 3, 20}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        qw t;
        size_t N = shapes[i].N, K = shapes[i].K;
        CHECK(make_qw(&t, shapes[i].f, shapes[i].g, N, K));
        emu2_error err;
        CHECKF(cuda_quant_check_weight(&t.w, N, K, NULL, &err) == EMU2_OK, "case %zu: %s", i, err.message);
        CHECK(emu2_quant_check_weight(&t.w, N, K, &err) == EMU2_OK);
        for (int v = 0; v < 10; v++) {
            emu2_op_weight b = t.w;
            size_t n = N, k = K;
            switch (v) {
            case 0: b.w.dtype = b.format == EMU2_WEIGHT_Q8 ? EMU2_DT_U8 : EMU2_DT_I8; break;
            case 1: b.scales.dtype = b.format == EMU2_WEIGHT_Q8 ? EMU2_DT_F16 : EMU2_DT_F32; break;
            case 2: b.w.shape[1] += 1; break;
            case 3: b.w.nbytes -= 1; break;
            case 4: b.scales.nbytes -= 1; break;
            case 5: b.scales.data = NULL; break;
            case 6: b.w.shape[0] -= 1; break;
            case 7: n = N + 1; break;
            case 8: k = K + (b.format == EMU2_WEIGHT_Q8 ? 1 : (size_t)b.group); break;
            case 9: b.group = 16, b.format = EMU2_WEIGHT_Q4; break;
            }
            emu2_status cs = cuda_quant_check_weight(&b, n, k, NULL, &err);
            emu2_status ps = emu2_quant_check_weight(&b, n, k, &err);
            CHECKF(cs != EMU2_OK && ps != EMU2_OK, "case %zu variant %d: cuda %d cpu %d", i, v, (int)cs, (int)ps);
            CHECKF(cs == EMU2_ERR_MISMATCH, "case %zu variant %d: status %d", i, v, (int)cs);
        }
        free_qw(&t);
    }
}

TEST(check_refuses_other_formats_and_host_memory)
{
    qw t;
    CHECK(make_qw(&t, EMU2_WEIGHT_Q4, 32, 4, 64));
    emu2_error err;
    emu2_op_weight f = t.w;
    f.format = EMU2_WEIGHT_FLOAT;
    CHECK(cuda_quant_check_weight(&f, 4, 64, NULL, &err) == EMU2_ERR_INVALID_ARGUMENT);
    allowed_ptr = t.q; /* values in "backend memory", scales not */
    CHECK(cuda_quant_check_weight(&t.w, 4, 64, only_first_buffer, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "prepare_weight") != NULL);
    allowed_ptr = t.s;
    CHECK(cuda_quant_check_weight(&t.w, 4, 64, only_first_buffer, &err) == EMU2_ERR_INVALID_ARGUMENT);
    /* sizes whose byte counts overflow are a limit error, not a wrap-around */
    CHECK(cuda_quant_check_weight(&t.w, SIZE_MAX / 2, 64, NULL, &err) == EMU2_ERR_LIMIT);
    free_qw(&t);
}

TEST(chunks_cover_every_row_within_budget)
{
    const size_t Ns[] = {1, 15, 16, 17, 4100, 6656, 17920, 32000};
    const size_t Ks[] = {1, 64, 2048, 6656, 17920, (size_t)1 << 26};
    const size_t budgets[] = {CUDA_QUANT_CHUNK_BYTES, 4096, 1};
    for (size_t a = 0; a < 8; a++)
        for (size_t b = 0; b < 6; b++)
            for (size_t c = 0; c < 3; c++) {
                size_t N = Ns[a], K = Ks[b], budget = budgets[c], rows = cuda_quant_chunk_rows(N, K, budget);
                CHECKF(rows >= 1 && rows <= N, "N %zu K %zu: %zu rows", N, K, rows);
                CHECKF(rows == 1 || rows * K * 2 <= budget, "N %zu K %zu budget %zu: %zu rows", N, K, budget, rows);
                CHECKF(rows <= 16 || rows == N || rows % 16 == 0, "N %zu K %zu: %zu rows", N, K, rows);
                size_t covered = 0, chunks = 0;
                for (size_t n0 = 0; n0 < N; n0 += rows, chunks++)
                    covered += N - n0 < rows ? N - n0 : rows;
                CHECK(covered == N && chunks == (N + rows - 1) / rows);
            }
    CHECK(cuda_quant_chunk_rows(0, 5, 100) == 0 && cuda_quant_chunk_rows(5, 0, 100) == 0);
    /* the chunk test in test_cuda_ops.c relies on 4100 x 2048 taking two chunks */
    CHECK(cuda_quant_chunk_rows(4100, 2048, CUDA_QUANT_CHUNK_BYTES) == 4096);
}

TEST(kernel_widening_is_exact)
{
    for (int v = -128; v < 128; v++) {
        uint32_t word = (uint32_t)(uint8_t)(int8_t)v << 16; /* byte 2 */
        CHECKF(emu2q_q8_byte(word ^ 0x80808080u, 2) == (float)v, "int8 %d", v);
    }
    for (uint32_t v = 0; v < 16; v++)
        for (int i = 0; i < 8; i++)
            CHECKF(emu2q_q4_nibble(v << (4 * i) | (~(0xfu << (4 * i)) & 0x5a5a5a5au), i) == (float)v - 8.0f,
                   "nibble %u at %d", v, i);
}

/* Each int4 weight as the decode kernel's 16-byte chunks see it, and as the per-element path and
 * the widening kernel see it, against emu2_dequant_row; int8 rows byte by byte. */
TEST(kernel_addressing_matches_core_quant)
{
    const int groups[] = {32, 64, 128};
    const size_t Ks[] = {128, 384, 100, 200, 20};
    for (int g = 0; g < 3; g++)
        for (size_t ki = 0; ki < 5; ki++) {
            size_t N = 3, K = Ks[ki];
            int group = groups[g];
            qw t;
            CHECK(make_qw(&t, EMU2_WEIGHT_Q4, group, N, K));
            size_t rb = cuda_quant_row_bytes(EMU2_WEIGHT_Q4, group, K);
            size_t G = cuda_quant_scales_per_row(EMU2_WEIGHT_Q4, group, K);
            float *want = malloc(K * sizeof *want), *chunked = malloc(G * (size_t)group * sizeof *chunked);
            for (size_t n = 0; n < N; n++) {
                const uint8_t *row = (const uint8_t *)t.q + n * rb;
                const uint16_t *sc = (const uint16_t *)t.s + n * G;
                emu2_dequant_row(&t.w, K, n, 0, K, want);
                /* per element (the scalar path and the widening kernel) */
                for (size_t k = 0; k < K; k++) {
                    size_t gi, byte;
                    int shift;
                    emu2q_q4_element(k, group, &gi, &byte, &shift);
                    float got = (float)((int)((row[byte] >> shift) & 15u) - 8) * emu2_f16_to_f32(sc[gi]);
                    CHECKF(byte < rb && gi < G && got == want[k], "g%d K%zu n%zu k%zu: %g vs %g", group, K, n, k,
                           (double)got, (double)want[k]);
                }
                /* 16-byte chunks (the vector path, taken when K % group == 0) */
                for (size_t i = 0; i < G * (size_t)group; i++)
                    chunked[i] = NAN;
                for (size_t c = 0; c < rb / 16; c++) {
                    size_t gi, k_lo;
                    emu2q_q4_chunk(c, group, &gi, &k_lo);
                    uint32_t words[4];
                    memcpy(words, row + 16 * c, 16);
                    float s = emu2_f16_to_f32(sc[gi]);
                    size_t k_hi = k_lo + (size_t)group / 2;
                    for (int i = 0; i < 16; i++) {
                        chunked[k_lo + (size_t)i] = emu2q_q4_nibble(words[i / 4], 2 * (i % 4)) * s;
                        chunked[k_hi + (size_t)i] = emu2q_q4_nibble(words[i / 4], 2 * (i % 4) + 1) * s;
                    }
                }
                for (size_t k = 0; k < G * (size_t)group; k++) /* every element once; the padding is 0 */
                    CHECKF(chunked[k] == (k < K ? want[k] : 0.0f), "g%d K%zu n%zu chunked k%zu: %g vs %g", group, K,
                           n, k, (double)chunked[k], k < K ? (double)want[k] : 0.0);
            }
            free(want), free(chunked);
            free_qw(&t);
        }
    qw t;
    size_t N = 4, K = 48;
    CHECK(make_qw(&t, EMU2_WEIGHT_Q8, 0, N, K));
    float want[48], scale;
    for (size_t n = 0; n < N; n++) {
        emu2_dequant_row(&t.w, K, n, 0, K, want);
        memcpy(&scale, (const char *)t.s + 4 * n, 4);
        for (size_t c = 0; c < K / 16; c++) {
            uint32_t words[4];
            memcpy(words, (const int8_t *)t.q + n * K + 16 * c, 16);
            for (int i = 0; i < 16; i++)
                CHECK(emu2q_q8_byte(words[i / 4] ^ 0x80808080u, i % 4) * scale == want[16 * c + (size_t)i]);
        }
    }
    free_qw(&t);
}

int main(void)
{
    RUN(row_sizes_match_core_quant);
    RUN(check_agrees_with_the_cpu_check);
    RUN(check_refuses_other_formats_and_host_memory);
    RUN(chunks_cover_every_row_within_budget);
    RUN(kernel_widening_is_exact);
    RUN(kernel_addressing_matches_core_quant);
    return check_finish();
}

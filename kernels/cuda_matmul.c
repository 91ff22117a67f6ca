/* cuda_matmul.c: linear and matmul_nt on the GPU.
 *   - F32 weights: cublasSgemm, true f32 (the handle's default math mode: no TF32).
 *   - BF16/F16 weights, M <= emu2k_gemv_max_rows() (decode): our weight-streaming kernel (f32
 *     activations, weights widened exactly, f32 sums): reads each weight byte once.
 *   - BF16/F16 weights, larger M (prefill, the vision tower): cuBLASLt with the activations rounded
 *     to the weight dtype (as the bf16 reference computes), f32 accumulation and f32 output; the
 *     algorithm chosen by the heuristic is remembered per shape. cublasGemmEx if Lt offers none.
 *   - Quantized (Q8/Q4) weights: cuda_quant.c.
 * Row-major y[M,N] = x[M,K] W^T is, column-major, C[N,M] = op(A) B with A = the stored W read as a
 * K x N column-major matrix, transposed, and B = x read as K x M ("TN", cuBLASLt's preferred form). */
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "cuda_internal.h"
#include "quant_plan.h"

static int pointer_alignment(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int align = 256;
    while (align > 1 && (a & (uintptr_t)(align - 1)))
        align /= 2;
    return align;
}

static emu2_status check_linear(size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                                const emu2_op_weight *W, const emu2_tensor_view *bias, const float *y,
                                size_t y_stride, emu2_error *err)
{
    static const char op[] = "linear";
    emu2_status st = emu2_check_linear_head(M, K, N, x, x_stride, W, y, y_stride, err);
    if (st != EMU2_OK)
        return st;
    if (W->format != EMU2_WEIGHT_FLOAT)
        st = cuda_quant_check_weight(W, N, K, cuda_is_device_ptr, err);
    else
        st = emu2_check_linear_float_weight(&W->w, N, K, cuda_is_device_ptr, err);
    if (st != EMU2_OK)
        return st;
    size_t xspan, yspan; /* the kernels and cuBLAS take int dimensions */
    if (!emu2_linear_extents(M, K, N, x_stride, y_stride, &xspan, &yspan) || x_stride > INT32_MAX ||
        y_stride > INT32_MAX || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: shape or buffer extent is too large", op);
    if (emu2_floats_overlap(x, xspan, y, yspan))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps input", op);
    return emu2_check_vector(op, "bias", bias, N, 0, cuda_is_device_ptr, err);
}

/* The remembered algorithm for this shape, or a new slot for it (round-robin replacement). */
static cuda_lt_plan *find_plan(cuda_backend *cb, size_t M, size_t K, size_t N, size_t ldc, int dtype, int aa,
                               int ab, int ac, int *fresh)
{
    for (int i = 0; i < CUDA_LT_PLANS; i++) {
        cuda_lt_plan *p = &cb->plans[i];
        if (p->used && p->M == M && p->K == K && p->N == N && p->ldc == ldc && p->dtype == dtype &&
            p->align_a == aa && p->align_b == ab && p->align_c == ac) {
            *fresh = 0;
            return p;
        }
    }
    int slot = 0;
    while (slot < CUDA_LT_PLANS && cb->plans[slot].used)
        slot++;
    if (slot == CUDA_LT_PLANS) {
        slot = (int)(M * 31 + N * 7 + K) % CUDA_LT_PLANS;
    }
    cuda_lt_plan *p = &cb->plans[slot];
    memset(p, 0, sizeof *p);
    p->used = 1;
    p->M = M, p->K = K, p->N = N, p->ldc = ldc, p->dtype = dtype;
    p->align_a = aa, p->align_b = ab, p->align_c = ac;
    *fresh = 1;
    return p;
}

#define LT_TRY(call)                                                                                                   \
    do {                                                                                                               \
        bs = (call);                                                                                                   \
        if (bs != CUBLAS_STATUS_SUCCESS)                                                                               \
            goto done;                                                                                                 \
    } while (0)

/* C[N x M] (ldc) = W^T-as-stored (K x N, transposed) * Xh (K x M); half-precision operands. */
emu2_status cuda_lt_matmul(cuda_backend *cb, size_t M, size_t K, size_t N, const void *w, const void *xh,
                           float *y, size_t ldc, emu2_dtype dt, emu2_error *err)
{
    cudaDataType_t ht = dt == EMU2_DT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasStatus_t bs;
    const float one = 1.0f, zero = 0.0f;
    int aa = pointer_alignment(w), ab = pointer_alignment(xh), ac = pointer_alignment(y), fresh;
    cuda_lt_plan *plan = find_plan(cb, M, K, N, ldc, (int)dt, aa, ab, ac, &fresh);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;

    LT_TRY(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_TRY(cublasLtMatrixLayoutCreate(&la, ht, K, N, (int64_t)K));
    LT_TRY(cublasLtMatrixLayoutCreate(&lb, ht, K, M, (int64_t)K));
    LT_TRY(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, (int64_t)ldc));
    if (fresh) {
        uint32_t a32 = (uint32_t)aa, b32 = (uint32_t)ab, c32 = (uint32_t)ac;
        uint64_t ws = cb->lt_workspace_size;
        LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a32,
                                                    sizeof a32));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &b32,
                                                    sizeof b32));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &c32,
                                                    sizeof c32));
        LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &c32,
                                                    sizeof c32));
        cublasLtMatmulHeuristicResult_t result;
        int found = 0;
        bs = cublasLtMatmulAlgoGetHeuristic(cb->lt, desc, la, lb, lc, lc, pref, 1, &result, &found);
        if (bs == CUBLAS_STATUS_SUCCESS && found > 0) {
            plan->algo = result.algo;
            plan->has_algo = 1;
        }
        bs = CUBLAS_STATUS_SUCCESS; /* no algorithm: the GemmEx path below */
    }
    if (plan->has_algo) {
        LT_TRY(cublasLtMatmul(cb->lt, desc, &one, w, la, xh, lb, &zero, y, lc, y, lc, &plan->algo, cb->lt_workspace,
                              cb->lt_workspace_size, cb->stream));
    } else {
        LT_TRY(cublasGemmEx(cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, w, ht, (int)K, xh, ht,
                            (int)K, &zero, y, CUDA_R_32F, (int)ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
done:
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (lc)
        cublasLtMatrixLayoutDestroy(lc);
    if (lb)
        cublasLtMatrixLayoutDestroy(lb);
    if (la)
        cublasLtMatrixLayoutDestroy(la);
    if (desc)
        cublasLtMatmulDescDestroy(desc);
    return bs == CUBLAS_STATUS_SUCCESS ? EMU2_OK : cuda_blas_fail(err, bs, "linear (cuBLASLt)");
}

emu2_status cuda_linear(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                        const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                        emu2_error *err)
{
    emu2_status st = check_linear(M, K, N, x, x_stride, W, bias, y, y_stride, err);
    if (st != EMU2_OK)
        return st;
    cuda_backend *cb = cuda_of(be);
    cuda_use(cb); /* cuBLAS handles work on the device they were made on */
    if (W->format != EMU2_WEIGHT_FLOAT)
        return cuda_linear_quant(cb, M, K, N, x, x_stride, W, bias, y, y_stride, err);
    const emu2_tensor_view *w = &W->w;
    const void *bdata = bias ? bias->data : NULL;
    int bdt = bias ? (int)bias->dtype : 0;

    if (w->dtype == EMU2_DT_F32) {
        const float one = 1.0f, zero = 0.0f;
        cublasStatus_t bs = cublasSgemm(cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one,
                                        (const float *)w->data, (int)K, x, (int)x_stride, &zero, y, (int)y_stride);
        if (bs != CUBLAS_STATUS_SUCCESS)
            return cuda_blas_fail(err, bs, "linear (cublasSgemm)");
    } else if (M <= (size_t)emu2k_gemv_max_rows()) {
        return cuda_launched(err, emu2k_gemv(cb->stream, M, K, N, x, x_stride, w->data, (int)w->dtype, bdata, bdt, y,
                                             y_stride),
                             "linear (gemv)");
    } else {
        size_t bytes;
        if (!emu2_mul_size(M, K, &bytes) || !emu2_mul_size(bytes, 2, &bytes))
            return emu2_fail(err, EMU2_ERR_LIMIT, "linear: activations of %zu x %zu are too large", M, K);
        void *xh = cuda_scratch(cb, CUDA_SCRATCH_CONVERT, bytes, err);
        if (!xh)
            return err ? err->status : EMU2_ERR_NOMEM;
        if ((st = cuda_launched(err, emu2k_to_half(cb->stream, M, K, x, x_stride, xh, (int)w->dtype),
                                "linear (activation conversion)")))
            return st;
        if ((st = cuda_lt_matmul(cb, M, K, N, w->data, xh, y, y_stride, w->dtype, err)))
            return st;
    }
    if (bias)
        return cuda_launched(err, emu2k_add_bias(cb->stream, M, N, y, y_stride, bdata, bdt), "linear (bias)");
    return EMU2_OK;
}

emu2_status cuda_matmul_nt(emu2_backend *be, size_t M, size_t K, size_t N, const float *A, const float *B, float *C,
                           emu2_error *err)
{
    size_t bytes;
    if (!emu2_mul_size(N, K, &bytes) || !emu2_mul_size(bytes, sizeof(float), &bytes))
        return emu2_fail(err, EMU2_ERR_LIMIT, "matmul_nt: B [%zu, %zu] is too large", N, K);
    emu2_op_weight w;
    memset(&w, 0, sizeof w);
    w.w.dtype = EMU2_DT_F32;
    w.w.ndim = 2;
    w.w.shape[0] = (int64_t)N;
    w.w.shape[1] = (int64_t)K;
    w.w.data = B;
    w.w.nbytes = bytes;
    return cuda_linear(be, M, K, N, A, K, &w, NULL, C, N, err);
}

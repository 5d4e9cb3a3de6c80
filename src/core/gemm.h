/* gemm.h - the one place matrix products happen: oneDNN's dnnl_sgemm, row-major.
 * C (M, N) = alpha * op(A) op(B) + beta * C, op(A) (M, K), op(B) (K, N). beta = 1
 * lets backward accumulate into gradients without a temporary. dnnl_sgemm runs
 * the JIT kernels directly, so nothing is created per call. */
#ifndef KD_GEMM_H
#define KD_GEMM_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

void kd_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc);

#ifdef __cplusplus
}
#endif
#endif

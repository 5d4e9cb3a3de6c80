/* dgemm.h - products of double matrices, for the exact solvers (calib's scaling
 * family), where oneDNN's float sgemm (core/gemm.h) is not precise enough. Row-major,
 * accumulating (C += ...), single-threaded: a caller threads over fixed row blocks and
 * adds their partial sums in a fixed order, so its results do not depend on the thread
 * count. Register-blocked AVX-512 kernels with explicit fused multiply-adds when `avx`
 * (core/simd.h's kd_cpu_has_avx512), plain loops otherwise; the two differ in the last
 * bits (fused vs separate rounding), each is deterministic. */
#ifndef KD_DGEMM_H
#define KD_DGEMM_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* C (m, n) += A (m, k) B (k, n); lda, ldb, ldc are the row strides. */
void kd_dgemm_nn(bool avx, int m, int n, int k, const double *A, int lda, const double *B, int ldb, double *C,
                 int ldc);
/* C (m, n) += A^T B with A (k, m), B (k, n): a sum over the k rows, in order. */
void kd_dgemm_tn(bool avx, int m, int n, int k, const double *A, int lda, const double *B, int ldb, double *C,
                 int ldc);

#ifdef __cplusplus
}
#endif
#endif

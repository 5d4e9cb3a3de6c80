/* gemm.c - kd_gemm over dnnl_sgemm. */
#define _POSIX_C_SOURCE 200809L
#include "core/gemm.h"

#include "core/check.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>

/* Products of fewer floating-point operations than KD_GEMM_SERIAL_MAX_FLOP run on
 * the calling thread alone; up to KD_GEMM_SPLIT_MAX_FLOP, with at least twice
 * KD_GEMM_MIN_HALF_ROWS rows, they are cut in halves by kd_gemm. */
#define KD_GEMM_SERIAL_MAX_FLOP 1e6
#define KD_GEMM_SPLIT_MAX_FLOP 16e6
#define KD_GEMM_MIN_HALF_ROWS 16

static int half_start(int M, int h) { return h == 0 ? 0 : M / 2; }
static int half_rows(int M, int h) { return h == 0 ? M / 2 : M - M / 2; }

static dnnl_status_t sgemm_checked(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                                   int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    return dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void report_failure(int status, bool trans_a, bool trans_b, int M, int N, int K, int lda, int ldb, int ldc)
{
    kd_fatal(__FILE__, __LINE__, "oneDNN dnnl_sgemm failed", "status %d for %c%c M=%d N=%d K=%d lda=%d ldb=%d ldc=%d",
             status, trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, lda, ldb, ldc);
}

void kd_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    KD_ASSERT(M >= 0 && N >= 0 && K >= 0, "gemm sizes M=%d N=%d K=%d", M, N, K);
    if (M == 0 || N == 0) return;
    if (K == 0) { /* C = beta C; oneDNN rejects K = 0 */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    double flop = 2.0 * M * N * K;
    /* Tiny products: one call on this thread. A parallel region costs about a
     * microsecond here, as much as the product (the student's 128x10x64 took 4.6 us
     * in halves on two threads, 2.8 us on one). OpenMP's thread count, which oneDNN
     * reads, is lowered for the call and restored. */
    if (flop < KD_GEMM_SERIAL_MAX_FLOP && !omp_in_parallel()) {
        int threads = omp_get_max_threads();
        if (threads > 1) omp_set_num_threads(1);
        dnnl_status_t status = sgemm_checked(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        if (threads > 1) omp_set_num_threads(threads);
        if (status != dnnl_success) report_failure((int)status, trans_a, trans_b, M, N, K, lda, ldb, ldc);
        return;
    }
    /* Small products: the rows of C are cut in halves here, each a single-threaded
     * oneDNN call (oneDNN runs sequentially inside a parallel region), on two
     * threads when there are two. On the student's products oneDNN's own threading
     * cost more than it saved (docs/ARCHITECTURE.md). Always two halves, whatever
     * the thread count: oneDNN picks its kernel from the shape of a call, so the
     * same calls give the same bits on 1, 2 or more threads. */
    if (M >= 2 * KD_GEMM_MIN_HALF_ROWS && flop < KD_GEMM_SPLIT_MAX_FLOP && !omp_in_parallel()) {
        int failed = dnnl_success; /* a failing half's status (oneDNN's are small positive codes) */
#define KD_GEMM_HALF(h) \
    sgemm_checked(trans_a, trans_b, half_rows(M, h), N, K, alpha, trans_a ? A + half_start(M, h) : A + (size_t)half_start(M, h) * lda, \
                  lda, B, ldb, beta, C + (size_t)half_start(M, h) * ldc, ldc)
        if (omp_get_max_threads() > 1) {
#pragma omp parallel for num_threads(2) schedule(static) reduction(max : failed)
            for (int h = 0; h < 2; h++) {
                int status = (int)KD_GEMM_HALF(h);
                if (status > failed) failed = status;
            }
        } else {
            for (int h = 0; h < 2; h++) {
                int status = (int)KD_GEMM_HALF(h);
                if (status > failed) failed = status;
            }
        }
#undef KD_GEMM_HALF
        if (failed != dnnl_success) report_failure(failed, trans_a, trans_b, M, N, K, lda, ldb, ldc);
        return;
    }
    dnnl_status_t status = sgemm_checked(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (status != dnnl_success) report_failure((int)status, trans_a, trans_b, M, N, K, lda, ldb, ldc);
}

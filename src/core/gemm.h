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

/* Threads used by oneDNN and the OpenMP kernels (process-wide, set from main). */
void kd_set_num_threads(int n);
int kd_get_num_threads(void);
/* The threads to use on this machine now: its idle cores, measured over 50 ms
 * (busy receives the busy cores, or -1 when /proc/stat is unreadable). OpenMP
 * threads that share a core with another busy process stall at every barrier
 * (measured: 2 threads beside one busy process train 3.6x slower than 1 thread). */
int kd_auto_threads(double *busy);
/* Flush denormal floats to zero on this thread and every OpenMP worker. Optimiser
 * state of dead units decays into the denormal range, where x86 arithmetic is about
 * 100 times slower; flushing changes only values below 1.2e-38. */
void kd_flush_denormals(void);

#ifdef __cplusplus
}
#endif
#endif

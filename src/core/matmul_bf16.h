/* matmul_bf16.h - matrix products with bfloat16 inputs and float32 accumulation,
 * through oneDNN matmul primitives created once per shape and kept in a cache.
 *
 * C (m, n) = op(A) op(B) [+ bias] [ReLU], or C += op(A) op(B); A and B bf16,
 * row-major with leading dimensions, op transposing when asked; C float32, or bf16
 * (rounded once, by oneDNN, after bias and ReLU).
 *
 * The bits of C depend on the shapes alone, never on the thread count: every
 * primitive is created for one thread, and a large product is cut into two parts
 * (rows, or columns when C is wide and short) by a rule that reads the shape only,
 * each part one single-threaded primitive, the two on two threads when there are
 * two. oneDNN's own threading would be faster by about 10 % on some shapes, but
 * its kernels split the reduction differently on different thread counts
 * (measured: 128 x 1200 x 1200 gives other bits on 1 and 2 threads). The cost:
 * a product uses at most two threads.
 *
 * A cache owns a oneDNN engine and its primitives; it is not shared between
 * threads. After the first step, a product allocates nothing of kdtrain's: the
 * scratchpads are the cache's, the memory objects are kept and re-pointed. */
#ifndef KD_MATMUL_BF16_H
#define KD_MATMUL_BF16_H

#include "core/bf16.h"
#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_mm_cache kd_mm_cache;

typedef struct kd_mm_bf16 {
    bool trans_a, trans_b;
    int m, n, k;
    const kd_bf16 *a; /* op(A) (m, k): A (m, k) or, transposed, (k, m) */
    int lda;
    const kd_bf16 *b; /* op(B) (k, n): B (k, n) or, transposed, (n, k) */
    int ldb;
    void *c;          /* (m, n): float, or kd_bf16 when c_bf16 */
    int ldc;
    bool c_bf16;
    bool accumulate;  /* C += op(A) op(B) (float C, no bias, no ReLU) */
    const float *bias; /* (n) added to every row, or NULL */
    bool relu;
} kd_mm_bf16;

/* A cache with its engine and streams; KD_ERR_LIBRARY when oneDNN fails. */
int kd_mm_cache_create(kd_mm_cache **cache, kd_error *err);
void kd_mm_cache_free(kd_mm_cache *cache);
/* Runs one product (creates its primitives the first time its shape is seen). A
 * oneDNN failure here is fatal: kd_mm_bf16_probe says beforehand whether oneDNN
 * has bf16 products on this CPU. */
void kd_mm_bf16_run(kd_mm_cache *cache, const kd_mm_bf16 *product);
/* Primitive executions so far (the allocation test subtracts oneDNN's own). */
long kd_mm_cache_executions(const kd_mm_cache *cache);

/* Which oneDNN implementation a bf16 product of (m, n, k) gets on this CPU, e.g.
 * "brg:avx512_core_amx_bf16", in impl; *native tells whether it is a native bf16
 * kernel (AVX512_BF16 or AMX) rather than an emulation. Returns KD_ERR_LIBRARY
 * with the reason when oneDNN has no bf16 product here at all. */
int kd_mm_bf16_probe(int m, int n, int k, char *impl, size_t impl_size, bool *native, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif

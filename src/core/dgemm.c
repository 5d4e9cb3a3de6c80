/* dgemm.c - see dgemm.h. The AVX-512 kernels hold an 8 x 16 tile of C in sixteen
 * registers (two of eight doubles per row) while the k dimension goes by: per step,
 * two loads of B's row segment, eight broadcasts of A's, sixteen fused multiply-adds,
 * so the loads (ten) stay below the arithmetic and C is read and written once per
 * tile. Edges: columns past n are masked (masked loads do not fault and read zeros),
 * rows past m repeat the last valid row (its result is computed and not stored), so
 * every tile runs the same loop. */
#include "core/dgemm.h"

#include "core/simd.h"

#if KD_HAVE_AVX512_VARIANTS
#include <immintrin.h>
#endif

#define MR 8  /* rows of a tile */
#define NR 16 /* columns of a tile: two registers */

static void nn_generic(int m, int n, int k, const double *A, int lda, const double *B, int ldb, double *C, int ldc)
{
    for (int i = 0; i < m; i++) {
        double *ci = C + (size_t)i * ldc;
        for (int p = 0; p < k; p++) {
            double a = A[(size_t)i * lda + p];
            const double *bp = B + (size_t)p * ldb;
            for (int j = 0; j < n; j++) ci[j] += a * bp[j];
        }
    }
}

static void tn_generic(int m, int n, int k, const double *A, int lda, const double *B, int ldb, double *C, int ldc)
{
    for (int p = 0; p < k; p++) {
        const double *ap = A + (size_t)p * lda, *bp = B + (size_t)p * ldb;
        for (int i = 0; i < m; i++) {
            double a = ap[i], *ci = C + (size_t)i * ldc;
            for (int j = 0; j < n; j++) ci[j] += a * bp[j];
        }
    }
}

#if KD_HAVE_AVX512_VARIANTS
static __mmask8 lanes(int count) /* the first count (0..8) of eight lanes */
{
    return count >= 8 ? (__mmask8)0xFF : count <= 0 ? (__mmask8)0 : (__mmask8)((1u << count) - 1);
}

/* The tile in sixteen named registers (an array of them is spilled to the stack by
 * GCC): c<r>0, c<r>1 hold row r's columns [0, 8) and [8, 16). */
#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define DECLARE(r) __m512d c##r##0, c##r##1;
#define LOAD(r)                                                                                   \
    {                                                                                             \
        const double *cr = c_tile + (size_t)(r < rows ? r : 0) * ldc;                             \
        c##r##0 = _mm512_maskz_loadu_pd(m0, cr), c##r##1 = _mm512_maskz_loadu_pd(m1, cr + 8);     \
    }
#define STORE(r)                                                                                  \
    if (r < rows) {                                                                               \
        double *cr = c_tile + (size_t)r * ldc;                                                    \
        _mm512_mask_storeu_pd(cr, m0, c##r##0), _mm512_mask_storeu_pd(cr + 8, m1, c##r##1);       \
    }
#define FMA(r, a)                                                                                 \
    {                                                                                             \
        __m512d ar = _mm512_set1_pd(a);                                                           \
        c##r##0 = _mm512_fmadd_pd(ar, b0, c##r##0), c##r##1 = _mm512_fmadd_pd(ar, b1, c##r##1);   \
    }
#define FMA_NN(r) FMA(r, app[r])
#define FMA_TN(r) FMA(r, ap[col##r])
#define ROW_POINTER(r) const double *a##r = A + (size_t)(i0 + (r < rows ? r : rows - 1)) * lda;
#define COLUMN(r) const int col##r = i0 + (r < rows ? r : rows - 1);

/* A's tile rows are first copied into ap (KC, MR): the eight broadcasts of a step then
 * read one cache line instead of eight rows of A (measured: the logits' product twice
 * as fast at C = 100). The sums keep their order: k ascending, in blocks of KC. */
#define KC 128
KD_TARGET_AVX512 static void nn_avx512(int m, int n, int k, const double *A, int lda, const double *B, int ldb,
                                       double *C, int ldc)
{
    double ap[KC * MR];
    for (int i0 = 0; i0 < m; i0 += MR) {
        const int rows = m - i0 < MR ? m - i0 : MR;
        FOR_ROWS(ROW_POINTER)
        for (int k0 = 0; k0 < k; k0 += KC) {
            const int kc = k - k0 < KC ? k - k0 : KC;
            for (int p = 0; p < kc; p++) {
                double *app = ap + (size_t)p * MR;
                app[0] = a0[k0 + p], app[1] = a1[k0 + p], app[2] = a2[k0 + p], app[3] = a3[k0 + p];
                app[4] = a4[k0 + p], app[5] = a5[k0 + p], app[6] = a6[k0 + p], app[7] = a7[k0 + p];
            }
            for (int j0 = 0; j0 < n; j0 += NR) {
                __mmask8 m0 = lanes(n - j0), m1 = lanes(n - j0 - 8);
                double *c_tile = C + (size_t)i0 * ldc + j0;
                FOR_ROWS(DECLARE)
                FOR_ROWS(LOAD)
                const double *bp = B + (size_t)k0 * ldb + j0, *app = ap;
                for (int p = 0; p < kc; p++, bp += ldb, app += MR) {
                    __m512d b0 = _mm512_maskz_loadu_pd(m0, bp), b1 = _mm512_maskz_loadu_pd(m1, bp + 8);
                    FOR_ROWS(FMA_NN)
                }
                FOR_ROWS(STORE)
            }
        }
    }
}

KD_TARGET_AVX512 static void tn_avx512(int m, int n, int k, const double *A, int lda, const double *B, int ldb,
                                       double *C, int ldc)
{
    for (int i0 = 0; i0 < m; i0 += MR) {
        const int rows = m - i0 < MR ? m - i0 : MR;
        FOR_ROWS(COLUMN) /* A's column for each tile row (the last valid one past m) */
        for (int j0 = 0; j0 < n; j0 += NR) {
            __mmask8 m0 = lanes(n - j0), m1 = lanes(n - j0 - 8);
            double *c_tile = C + (size_t)i0 * ldc + j0;
            FOR_ROWS(DECLARE)
            FOR_ROWS(LOAD)
            const double *ap = A, *bp = B + j0;
            for (int p = 0; p < k; p++, ap += lda, bp += ldb) {
                __m512d b0 = _mm512_maskz_loadu_pd(m0, bp), b1 = _mm512_maskz_loadu_pd(m1, bp + 8);
                FOR_ROWS(FMA_TN)
            }
            FOR_ROWS(STORE)
        }
    }
}
#endif

void kd_dgemm_nn(bool avx, int m, int n, int k, const double *A, int lda, const double *B, int ldb, double *C,
                 int ldc)
{
    if (m <= 0 || n <= 0 || k <= 0) return;
#if KD_HAVE_AVX512_VARIANTS
    if (avx) {
        nn_avx512(m, n, k, A, lda, B, ldb, C, ldc);
        return;
    }
#endif
    (void)avx;
    nn_generic(m, n, k, A, lda, B, ldb, C, ldc);
}

void kd_dgemm_tn(bool avx, int m, int n, int k, const double *A, int lda, const double *B, int ldb, double *C,
                 int ldc)
{
    if (m <= 0 || n <= 0 || k <= 0) return;
#if KD_HAVE_AVX512_VARIANTS
    if (avx) {
        tn_avx512(m, n, k, A, lda, B, ldb, C, ldc);
        return;
    }
#endif
    (void)avx;
    tn_generic(m, n, k, A, lda, B, ldb, C, ldc);
}

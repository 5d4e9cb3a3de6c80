/* bf16.c - array conversions and the transpose, see bf16.h. */
#include "core/bf16.h"

#include "core/parallel.h"
#include "core/simd.h"

KD_INLINE_BODY void round_body(const float *restrict in, kd_bf16 *restrict out, size_t begin, size_t end)
{
#pragma omp simd
    for (size_t i = begin; i < end; i++) out[i] = kd_bf16_round(in[i]);
}

KD_TARGET_AVX512 static void round_avx512(const float *restrict in, kd_bf16 *restrict out, size_t begin, size_t end)
{
    round_body(in, out, begin, end);
}

static void round_generic(const float *restrict in, kd_bf16 *restrict out, size_t begin, size_t end)
{
    round_body(in, out, begin, end);
}

#define KD_BF16_BLOCK ((size_t)16384)

void kd_bf16_from_floats(const float *in, kd_bf16 *out, size_t n)
{
    void (*block)(const float *restrict, kd_bf16 *restrict, size_t, size_t) =
        kd_cpu_has_avx512() ? round_avx512 : round_generic;
    size_t blocks = (n + KD_BF16_BLOCK - 1) / KD_BF16_BLOCK;
    KD_PARALLEL_FOR(n >= 4 * KD_PARALLEL_MIN, size_t, b, blocks,
                    size_t begin = b * KD_BF16_BLOCK;
                    block(in, out, begin, begin + KD_BF16_BLOCK < n ? begin + KD_BF16_BLOCK : n));
}

/* Tiles of 32 x 32 keep both the rows read and the rows written in cache. */
#define KD_TILE 32

void kd_bf16_transpose(const kd_bf16 *in, int rows, int cols, kd_bf16 *out)
{
    int tiles_r = (rows + KD_TILE - 1) / KD_TILE;
    KD_PARALLEL_FOR((size_t)rows * cols >= 2 * KD_PARALLEL_MIN, int, tr, tiles_r,
                    int r0 = tr * KD_TILE; int r1 = r0 + KD_TILE < rows ? r0 + KD_TILE : rows;
                    for (int c0 = 0; c0 < cols; c0 += KD_TILE) {
                        int c1 = c0 + KD_TILE < cols ? c0 + KD_TILE : cols;
                        for (int c = c0; c < c1; c++)
                            for (int r = r0; r < r1; r++) out[(size_t)c * rows + r] = in[(size_t)r * cols + c];
                    });
}

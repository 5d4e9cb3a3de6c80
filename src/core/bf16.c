/* bf16.c - array conversions and the transpose, see bf16.h. */
#include "core/bf16.h"

#include "core/parallel.h"
#include "core/simd.h"

#include <emmintrin.h>

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
    KD_PARALLEL_FOR(n >= 2 * KD_PARALLEL_MIN, size_t, b, blocks,
                    size_t begin = b * KD_BF16_BLOCK;
                    block(in, out, begin, begin + KD_BF16_BLOCK < n ? begin + KD_BF16_BLOCK : n));
}

/* 8 x 8 blocks of 16-bit values through SSE2 registers (every x86-64 has them):
 * three rounds of interleaving put column j of the block in register j. */
static void transpose_8x8(const kd_bf16 *in, size_t ld_in, kd_bf16 *out, size_t ld_out)
{
    __m128i r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = _mm_loadu_si128((const __m128i *)(const void *)(in + (size_t)i * ld_in));
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm_unpacklo_epi16(r[2 * i], r[2 * i + 1]);     /* columns 0-3 of rows 2i, 2i+1 */
        t[2 * i + 1] = _mm_unpackhi_epi16(r[2 * i], r[2 * i + 1]); /* columns 4-7 */
    }
    for (int h = 0; h < 2; h++) /* h = 0: rows 0-3, h = 1: rows 4-7 */
        for (int i = 0; i < 2; i++) {
            u[4 * h + 2 * i] = _mm_unpacklo_epi32(t[4 * h + i], t[4 * h + 2 + i]);     /* columns 4i, 4i+1 */
            u[4 * h + 2 * i + 1] = _mm_unpackhi_epi32(t[4 * h + i], t[4 * h + 2 + i]); /* columns 4i+2, 4i+3 */
        }
    for (int j = 0; j < 4; j++) { /* u[j] holds columns 2j, 2j+1 of rows 0-3, u[4 + j] of rows 4-7 */
        _mm_storeu_si128((__m128i *)(void *)(out + (size_t)(2 * j) * ld_out), _mm_unpacklo_epi64(u[j], u[4 + j]));
        _mm_storeu_si128((__m128i *)(void *)(out + (size_t)(2 * j + 1) * ld_out), _mm_unpackhi_epi64(u[j], u[4 + j]));
    }
}

/* Rows [r0, r1) of in: whole 8 x 8 blocks, then the ragged edges one value at a time. */
static void transpose_rows(const kd_bf16 *in, int rows, int cols, kd_bf16 *out, int r0, int r1)
{
    int c8 = cols / 8 * 8;
    int r = r0;
    for (; r + 8 <= r1; r += 8) {
        for (int c = 0; c < c8; c += 8) transpose_8x8(in + (size_t)r * cols + c, (size_t)cols, out + (size_t)c * rows + r, (size_t)rows);
        for (int c = c8; c < cols; c++)
            for (int i = r; i < r + 8; i++) out[(size_t)c * rows + i] = in[(size_t)i * cols + c];
    }
    for (; r < r1; r++)
        for (int c = 0; c < cols; c++) out[(size_t)c * rows + r] = in[(size_t)r * cols + c];
}

/* Bands of 64 rows go to the threads. */
#define KD_BAND 64

void kd_bf16_transpose(const kd_bf16 *in, int rows, int cols, kd_bf16 *out)
{
    int bands = (rows + KD_BAND - 1) / KD_BAND;
    KD_PARALLEL_FOR((size_t)rows * cols >= KD_PARALLEL_MIN && bands > 1, int, b, bands,
                    transpose_rows(in, rows, cols, out, b * KD_BAND, b * KD_BAND + KD_BAND < rows ? b * KD_BAND + KD_BAND : rows));
}

/* bf16.h - bfloat16 numbers: the upper 16 bits of a float32 (sign, the same 8-bit
 * exponent, 7 fraction bits). Every conversion in kdtrain goes through
 * kd_bf16_round, round to nearest with ties to even, written as integer arithmetic
 * so that a vectorised loop, a scalar loop and the optimiser's fused pass give the
 * same bits on any CPU. A NaN becomes the quiet NaN 0x7fc0 (with its sign): the
 * rounding increment would otherwise carry a NaN's payload into the sign bit. */
#ifndef KD_BF16_H
#define KD_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t kd_bf16;

static inline kd_bf16 kd_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t nan = (u >> 16) | 0x0040u, rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (kd_bf16)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

static inline float kd_bf16_to_float(kd_bf16 h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* out[i] = kd_bf16_round(in[i]), i < n; threaded and vectorised when n is large. */
void kd_bf16_from_floats(const float *in, kd_bf16 *out, size_t n);
/* out (cols, rows) = the transpose of in (rows, cols), both row-major. */
void kd_bf16_transpose(const kd_bf16 *in, int rows, int cols, kd_bf16 *out);

#ifdef __cplusplus
}
#endif
#endif

/* simd.h - hot loops compiled twice, for AVX-512 and for any x86-64, and chosen
 * per call by what the CPU reports. An elementwise loop (dropout, AdamW) is written
 * once as a KD_INLINE_BODY function and wrapped by a KD_TARGET_AVX512 function and a
 * plain one; each element's result is the same in both, because the library builds
 * with -ffp-contract=off (no multiply-add is fused that the code does not write).
 * Only a reduction's partial sums are added in a different order. The hand-written
 * AVX-512 rows of the softmax and the temperature fit (core/vexp.h) are another
 * matter: their exp is within about 2 ulp of libm's, not equal to it.
 *
 * (GCC's target_clones would do the dispatch in the loader, but its resolver
 * picked the generic clone on this machine's virtual CPU, which reports AVX-512F:
 * measured, so the choice is made here with __builtin_cpu_supports.) */
#ifndef KD_SIMD_H
#define KD_SIMD_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define KD_HAVE_AVX512_VARIANTS 1
#define KD_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw")))
/* True when the AVX-512 variants run: the CPU has them and the environment does not
 * say KD_SIMD=generic (which the tests use to check the generic variants). */
static inline bool kd_cpu_has_avx512(void)
{
    const char *force = getenv("KD_SIMD");
    if (force && strcmp(force, "generic") == 0) return false;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
}
#else
#define KD_HAVE_AVX512_VARIANTS 0
#define KD_TARGET_AVX512
static inline bool kd_cpu_has_avx512(void) { return false; }
#endif

#define KD_INLINE_BODY static inline __attribute__((always_inline))

#endif

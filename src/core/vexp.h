/* vexp.h - exp and log of eight doubles at once with AVX-512, for the softmax rows
 * of the loss ops, the temperature fit and the Platt fits of scaling-binning. Include
 * after core/simd.h; only defined where KD_HAVE_AVX512_VARIANTS is 1. */
#ifndef KD_VEXP_H
#define KD_VEXP_H

#include "core/simd.h"

#if KD_HAVE_AVX512_VARIANTS
#include <immintrin.h>

/* exp(x) for x <= 0 within about 2 ulp of libm: x = k ln2 + r with |r| <= ln2/2,
 * exp(r) by its Taylor polynomial to degree 12 (truncation below 1.7e-16, about an
 * ulp), then scaled by 2^k (scalef gives 0 below the double range). x is clamped at
 * -746, where exp is already 0 in double, so -inf gives 0 and not NaN. */
KD_TARGET_AVX512 static inline __m512d kd_exp_pd(__m512d x)
{
    x = _mm512_max_pd(x, _mm512_set1_pd(-746.0));
    const __m512d ln2_hi = _mm512_set1_pd(6.93147180369123816490e-01), ln2_lo = _mm512_set1_pd(1.90821492927058770002e-10);
    __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634074)), _MM_FROUND_TO_NEAREST_INT);
    __m512d r = _mm512_fnmadd_pd(k, ln2_lo, _mm512_fnmadd_pd(k, ln2_hi, x));
    static const double inv_factorial[13] = {1.0,          1.0,           0.5,           1.0 / 6,        1.0 / 24,
                                             1.0 / 120,    1.0 / 720,     1.0 / 5040,    1.0 / 40320,    1.0 / 362880,
                                             1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600};
    __m512d p = _mm512_set1_pd(inv_factorial[12]);
    for (int i = 11; i >= 0; i--) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inv_factorial[i]));
    return _mm512_scalef_pd(p, k);
}

/* log(x) for positive normal x within a few ulp of libm: x = m 2^k with m in
 * [0.75, 1.5) (getmant; k one above getexp's when m < 1), then
 * log(m) = 2 atanh(s), s = (m - 1)/(m + 1), |s| <= 0.2, by its odd series to s^23
 * (truncation below 2e-17 relative), plus k ln2 in two parts. */
KD_TARGET_AVX512 static inline __m512d kd_log_pd(__m512d x)
{
    __m512d m = _mm512_getmant_pd(x, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_zero);
    __m512d k = _mm512_getexp_pd(x);
    k = _mm512_mask_add_pd(k, _mm512_cmp_pd_mask(m, _mm512_set1_pd(1.0), _CMP_LT_OQ), k, _mm512_set1_pd(1.0));
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d s = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one)), s2 = _mm512_mul_pd(s, s);
    __m512d q = _mm512_set1_pd(1.0 / 23);
    for (int j = 21; j >= 1; j -= 2) q = _mm512_fmadd_pd(q, s2, _mm512_set1_pd(1.0 / j));
    __m512d log_m = _mm512_mul_pd(_mm512_add_pd(s, s), q); /* 2 s (1 + s^2/3 + ...) */
    const __m512d ln2_hi = _mm512_set1_pd(6.93147180369123816490e-01), ln2_lo = _mm512_set1_pd(1.90821492927058770002e-10);
    return _mm512_fmadd_pd(k, ln2_hi, _mm512_fmadd_pd(k, ln2_lo, log_m));
}
#endif

#endif

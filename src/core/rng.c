/* rng.c - xoshiro256** (Blackman and Vigna) with splitmix64 seeding. */
#include "core/rng.h"

#include <math.h>

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void kd_rng_seed(kd_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++) rng->s[i] = kd_rng_at(seed, (uint64_t)i); /* SplitMix64's first four outputs */
}

uint64_t kd_rng_next(kd_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float kd_rng_uniform(kd_rng *rng) { return (float)(kd_rng_next(rng) >> 40) * 0x1.0p-24f; }

uint64_t kd_rng_below(kd_rng *rng, uint64_t n)
{
    /* Rejection sampling: draws above the largest multiple of n are retried. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = kd_rng_next(rng);
    while (r >= limit);
    return r % n;
}

double kd_rng_normal(kd_rng *rng)
{
    double u1 = ((double)(kd_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(kd_rng_next(rng) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* rng.h - xoshiro256** seeded by splitmix64: fast, reproducible on every
 * platform, and its whole state is four integers that a checkpoint can store. */
#ifndef KD_RNG_H
#define KD_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_rng {
    uint64_t s[4];
} kd_rng;

void kd_rng_seed(kd_rng *rng, uint64_t seed);
uint64_t kd_rng_next(kd_rng *rng);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float kd_rng_uniform(kd_rng *rng);
/* Uniform integer in [0, n), without modulo bias. */
uint64_t kd_rng_below(kd_rng *rng, uint64_t n);
/* Standard normal (Box-Muller, in double). */
double kd_rng_normal(kd_rng *rng);

/* Output number `counter` (0-based) of SplitMix64 seeded with `key` (Steele, Lea and
 * Flood 2014): a counter-based stream, so any element costs a few instructions and
 * elements can be drawn in any order, in parallel and vectorised. Dropout draws
 * one key from a kd_rng and its mask element i from kd_rng_at(key, i). */
static inline uint64_t kd_rng_at(uint64_t key, uint64_t counter)
{
    uint64_t z = key + (counter + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#ifdef __cplusplus
}
#endif
#endif

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

#ifdef __cplusplus
}
#endif
#endif

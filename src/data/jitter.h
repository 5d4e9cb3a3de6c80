/* jitter.h - random image shifts for training (Hinton et al. jittered their
 * teacher's inputs by up to 2 pixels): each image of a batch moves by dx, dy drawn
 * uniformly from [-k, k], and uncovered pixels become 0. */
#ifndef KD_JITTER_H
#define KD_JITTER_H

#include "core/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x (rows, height * width) is shifted in place; scratch holds height * width floats. */
void kd_jitter_batch(float *x, int rows, int height, int width, int max_shift, kd_rng *rng, float *scratch);

#ifdef __cplusplus
}
#endif
#endif

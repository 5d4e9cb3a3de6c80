/* jitter.c - see jitter.h. */
#include "data/jitter.h"

#include <stdbool.h>
#include <string.h>

void kd_jitter_batch(float *x, int rows, int height, int width, int max_shift, kd_rng *rng, float *scratch)
{
    if (max_shift <= 0) return;
    size_t pixels = (size_t)height * (size_t)width;
    uint64_t span = 2 * (uint64_t)max_shift + 1;
    for (int i = 0; i < rows; i++) {
        int dy = (int)kd_rng_below(rng, span) - max_shift;
        int dx = (int)kd_rng_below(rng, span) - max_shift;
        if (dx == 0 && dy == 0) continue;
        float *img = x + (size_t)i * pixels;
        memcpy(scratch, img, pixels * sizeof(float));
        for (int r = 0; r < height; r++) {
            int src_r = r - dy;
            for (int c = 0; c < width; c++) {
                int src_c = c - dx;
                bool inside = src_r >= 0 && src_r < height && src_c >= 0 && src_c < width;
                img[(size_t)r * width + c] = inside ? scratch[(size_t)src_r * width + src_c] : 0.0f;
            }
        }
    }
}

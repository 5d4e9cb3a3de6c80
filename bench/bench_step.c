/* bench_step.c - times the engine's training step (forward, backward, SGD update)
 * for an MLP on random data, and reports samples/s and the effective GFLOP/s of
 * its matrix products (6 B in out per layer: forward, dX and dW).
 *
 *   bench_step [--sizes 784,1200,1200,10] [--batch 128] [--steps 200] [--dropout 0.3]
 *              [--threads N]
 */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "core/gemm.h"
#include "core/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LAYERS 8

static int parse_sizes(const char *text, int *sizes)
{
    int n = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && n <= MAX_LAYERS; tok = strtok_r(NULL, ",", &save))
        sizes[n++] = atoi(tok);
    free(copy);
    return n;
}

int main(int argc, char **argv)
{
    int sizes[MAX_LAYERS + 1] = {784, 1200, 1200, 10}, n_sizes = 4;
    int batch = 128, steps = 200, threads = 0;
    float dropout = 0.3f;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--sizes")) n_sizes = parse_sizes(argv[i + 1], sizes);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dropout")) dropout = (float)atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_step: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (n_sizes < 2 || batch < 1 || steps < 1) {
        fprintf(stderr, "bench_step: need at least two sizes, a positive batch and steps\n");
        return 2;
    }
    if (threads > 0) kd_set_num_threads(threads);
    int layers = n_sizes - 1, classes = sizes[layers];

    kd_rng rng;
    kd_rng_seed(&rng, 1);
    float *params[MAX_LAYERS][2], *grads[MAX_LAYERS][2];
    double flops = 0;
    for (int k = 0; k < layers; k++) {
        size_t nw = (size_t)sizes[k] * sizes[k + 1];
        params[k][0] = malloc(nw * sizeof(float));
        params[k][1] = calloc((size_t)sizes[k + 1], sizeof(float));
        grads[k][0] = calloc(nw, sizeof(float));
        grads[k][1] = calloc((size_t)sizes[k + 1], sizeof(float));
        for (size_t i = 0; i < nw; i++) params[k][0][i] = 0.05f * (float)kd_rng_normal(&rng);
        flops += (k == 0 ? 4.0 : 6.0) * batch * sizes[k] * sizes[k + 1]; /* no dX for the input */
    }
    float *x = malloc((size_t)batch * sizes[0] * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    for (size_t i = 0; i < (size_t)batch * sizes[0]; i++) x[i] = kd_rng_uniform(&rng);
    for (int i = 0; i < batch; i++) y[i] = (int32_t)kd_rng_below(&rng, (uint64_t)classes);

    kd_tape tape;
    kd_tape_init(&tape, 0);
    double start = 0;
    int warmup = steps / 10 + 2;
    for (int step = 0; step < warmup + steps; step++) {
        if (step == warmup) start = kd_now_seconds();
        kd_tape_reset(&tape);
        kd_tensor *h = kd_tape_view(&tape, batch, sizes[0], x, NULL);
        for (int k = 0; k < layers; k++) {
            kd_tensor *w = kd_tape_view(&tape, sizes[k], sizes[k + 1], params[k][0], grads[k][0]);
            kd_tensor *b = kd_tape_view(&tape, 1, sizes[k + 1], params[k][1], grads[k][1]);
            h = kd_op_linear(&tape, h, w, b, k + 1 < layers ? KD_ACT_RELU : KD_ACT_NONE);
            if (k + 1 < layers) h = kd_op_dropout(&tape, h, dropout, &rng);
        }
        kd_tape_backward(&tape, kd_op_softmax_ce(&tape, h, y));
        for (int k = 0; k < layers; k++)
            for (int j = 0; j < 2; j++) {
                size_t n = j ? (size_t)sizes[k + 1] : (size_t)sizes[k] * sizes[k + 1];
                for (size_t i = 0; i < n; i++) {
                    params[k][j][i] -= 0.01f * grads[k][j][i];
                    grads[k][j][i] = 0.0f;
                }
            }
    }
    double seconds = kd_now_seconds() - start;
    printf("sizes");
    for (int k = 0; k < n_sizes; k++) printf("%c%d", k ? '-' : ' ', sizes[k]);
    printf(" batch %d threads %d: %.3f ms/step, %.0f samples/s, %.1f GFLOP/s in products, "
           "arena high water %zu bytes\n",
           batch, kd_get_num_threads(), 1e3 * seconds / steps, (double)batch * steps / seconds,
           flops * steps / seconds * 1e-9, tape.arena.high_water);
    kd_tape_free(&tape);
    for (int k = 0; k < layers; k++)
        for (int j = 0; j < 2; j++) {
            free(params[k][j]);
            free(grads[k][j]);
        }
    free(x);
    free(y);
    return 0;
}

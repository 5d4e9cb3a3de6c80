/* bench_train.c - steady-state training throughput of the real training step
 * (kd_mlp forward with dropout, fused loss, backward, AdamW), as `kdtrain train`
 * and `kdtrain distill` run it, on random data. Prints `name value` lines for
 * scripts/bench.sh:
 *   kdtrain_<model>_b<B>_t<N> samples/s, and kdtrain_<model>_b<B>_t<N>_gflops
 * (kdtrain_bf16_<model>_... with --precision bf16: bf16 products, float32 master
 * weights, as train.precision = bf16 runs them).
 *
 *   bench_train --model teacher|student|distill [--batch 128] [--steps 200] [--threads N]
 *               [--precision fp32|bf16]
 */
#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"
#include "core/arena.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "nn/mlp.h"
#include "nn/optim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    const char *model = "teacher";
    const char *precision = "fp32";
    int batch = 128, steps = 200, threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--precision")) precision = argv[i + 1];
        else {
            fprintf(stderr, "bench_train: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    bool teacher = !strcmp(model, "teacher"), distill = !strcmp(model, "distill");
    if (!teacher && !distill && strcmp(model, "student")) {
        fprintf(stderr, "bench_train: --model: expected teacher, student or distill\n");
        return 2;
    }
    bool bf16 = !strcmp(precision, "bf16");
    if (!bf16 && strcmp(precision, "fp32")) {
        fprintf(stderr, "bench_train: --precision: expected fp32 or bf16\n");
        return 2;
    }
    if (batch < 1 || steps < 1) return 2;
    if (threads > 0) kd_threads_set(threads);
    kd_threads_flush_denormals();
    kd_mlp_config c = teacher ? (kd_mlp_config){.n_layers = 3, .sizes = {784, 1200, 1200, 10}, .dropout = 0.3f}
                              : (kd_mlp_config){.n_layers = 2, .sizes = {784, 64, 10}};
    kd_mlp mlp;
    kd_error err;
    if (kd_mlp_create(&mlp, &c, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    kd_mlp_init(&mlp, 1);
    kd_mm_cache *products = NULL;
    char impl[64];
    bool native;
    if (bf16 && kd_mm_bf16_probe(batch, c.sizes[1], c.sizes[0], impl, sizeof impl, &native, &err)) {
        fprintf(stderr, "bench_train: no bf16 measurement: %s\n", err.message);
        return 0;
    }
    if (bf16 && (kd_mm_cache_create(&products, &err) || kd_mlp_use_bf16(&mlp, products, &err)))
        return fprintf(stderr, "%s\n", err.message), 1;
    kd_optim_config oc = {.kind = KD_OPTIM_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    kd_optim opt;
    if (kd_optim_create(&opt, &oc, mlp.n_params, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    kd_rng rng;
    kd_rng_seed(&rng, 3);
    /* 64-byte aligned, as the loader's batches are */
    float *x = kd_calloc_aligned((size_t)batch * 784, sizeof(float)), *t = kd_calloc_aligned((size_t)batch * 10, sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    for (int i = 0; i < batch * 784; i++) x[i] = kd_rng_uniform(&rng);
    for (int i = 0; i < batch * 10; i++) t[i] = 4.0f * (float)kd_rng_normal(&rng);
    for (int i = 0; i < batch; i++) y[i] = (int32_t)kd_rng_below(&rng, 10);
    kd_tape tape;
    kd_tape_init(&tape, 0);
    int warmup = 10;
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = kd_now_seconds();
        kd_tape_reset(&tape);
        /* the optimiser step leaves the gradients zeroed */
        kd_tensor *in = kd_tape_view(&tape, batch, 784, x, NULL);
        kd_tensor *logits = kd_mlp_forward(&mlp, &tape, in, true, &rng);
        kd_tensor *loss = distill ? kd_op_kd_loss(&tape, logits, kd_tape_view(&tape, batch, 10, t, NULL), y, 4.0f, 0.9f)
                                  : kd_op_softmax_ce(&tape, logits, y);
        kd_tape_backward(&tape, loss);
        kd_optim_step_bf16(&opt, mlp.params, mlp.grads, mlp.params_bf16);
    }
    double seconds = kd_now_seconds() - t0;
    double flops = 0; /* forward, dW and dX of every layer; no dX for the input */
    for (int k = 0; k < c.n_layers; k++) flops += (k == 0 ? 4.0 : 6.0) * batch * c.sizes[k] * c.sizes[k + 1];
    int n = kd_threads_count();
    const char *tag = bf16 ? "bf16_" : "";
    printf("kdtrain_%s%s_b%d_t%d %.1f\n", tag, model, batch, n, (double)batch * steps / seconds);
    printf("kdtrain_%s%s_b%d_t%d_gflops %.1f\n", tag, model, batch, n, flops * steps / seconds * 1e-9);
    printf("kdtrain_%s%s_b%d_t%d_ms %.3f\n", tag, model, batch, n, 1e3 * seconds / steps);
    kd_mm_cache_free(products);
    kd_tape_free(&tape);
    kd_optim_free(&opt);
    kd_mlp_free(&mlp);
    free(x);
    free(t);
    free(y);
    return 0;
}

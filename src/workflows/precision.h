/* precision.h - which precision a training run takes (train.precision), and why.
 * fp32 is float32 throughout. bf16 takes bfloat16 products (core/matmul_bf16.h),
 * also where oneDNN only emulates them. auto takes bf16 where oneDNN dispatches a
 * native bf16 kernel for the model's first product (AVX512_BF16 or AMX), else
 * fp32: emulated bf16 is slower than float32 (measured: gemm:jit at 34 GFLOP/s
 * against about 200 in float32 on this machine, 1 thread). */
#ifndef KD_PRECISION_H
#define KD_PRECISION_H

#include "core/error.h"
#include "workflows/config.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kd_precision_choice {
    bool bf16;          /* the run takes bf16 products */
    const char *name;   /* "fp32" or "bf16": what summary.json records */
    char impl[64];      /* oneDNN's bf16 product implementation, "" when not asked */
    char reason[256];   /* why, for the log and summary.json */
} kd_precision_choice;

/* Resolves c->train.precision for a model whose first product is (batch, n, k).
 * KD_ERR_CONFIG when train.precision = bf16 and oneDNN has no bf16 product here. */
int kd_precision_resolve(const kd_config *c, int batch, int n, int k, kd_precision_choice *out, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* ops.h - the engine's operations. Each computes its output eagerly into the
 * tape's arena and, when an input requires a gradient, records a node so that
 * kd_tape_backward can push the gradient back (ops_*.c hold forward and backward
 * side by side). Shapes are (rows, cols); B is the batch, C the class count. */
#ifndef KD_OPS_H
#define KD_OPS_H

#include "core/matmul_bf16.h"
#include "core/rng.h"
#include "core/tape.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_activation { KD_ACT_NONE = 0, KD_ACT_RELU = 1 } kd_activation;

/* C = op(A) op(B); op transposes when the flag is set. */
kd_tensor *kd_op_matmul(kd_tape *tape, kd_tensor *a, kd_tensor *b, bool trans_a, bool trans_b);
/* Y (B, out) = act(X (B, in) W (in, out) + b (1, out)): bias, product and ReLU fused. */
kd_tensor *kd_op_linear(kd_tape *tape, kd_tensor *x, kd_tensor *w, kd_tensor *b, kd_activation act);
/* The same with bf16 products (ops_bf16.c), for a bf16 training step: X's bf16
 * values (X->bf16, else X->data rounded), W's bf16 copy (w->bf16, which must be
 * set), float32 bias and accumulation. Y is a bf16-only tensor when bf16_out (a
 * hidden layer: bias and ReLU applied before the one rounding), else float32. The
 * backward rounds dY to bf16 for its two products and accumulates dW, dX and db in
 * float32. */
kd_tensor *kd_op_linear_bf16(kd_tape *tape, kd_mm_cache *products, kd_tensor *x, kd_tensor *w, kd_tensor *b,
                             kd_activation act, bool bf16_out);
/* Y = X + b, b (1, cols) broadcast over rows. */
kd_tensor *kd_op_bias_add(kd_tape *tape, kd_tensor *x, kd_tensor *b);
kd_tensor *kd_op_relu(kd_tape *tape, kd_tensor *x);
/* Inverted dropout: each element kept with probability 1 - p and scaled by
 * 1/(1 - p). p = 0 returns x itself. The mask is drawn from rng. On a bf16-only x
 * the output is bf16 only, bf16(x m), with the same mask. */
kd_tensor *kd_op_dropout(kd_tape *tape, kd_tensor *x, float p, kd_rng *rng);
kd_tensor *kd_op_scale(kd_tape *tape, kd_tensor *x, float c);
/* (1, 1) mean of every element. */
kd_tensor *kd_op_mean(kd_tape *tape, kd_tensor *x);
/* Y = log_softmax(X / T) by row, T > 0. */
kd_tensor *kd_op_log_softmax(kd_tape *tape, kd_tensor *x, float temperature);
/* (1, 1) batch-mean cross-entropy of softmax(logits) against labels in [0, C). */
kd_tensor *kd_op_softmax_ce(kd_tape *tape, kd_tensor *logits, const int32_t *labels);
/* (1, 1) distillation loss, batch mean:
 *   alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(softmax(s), y).
 * The teacher logits get no gradient. A row whose label is -1 is unlabelled: it
 * contributes T^2 KL alone (its alpha is 1), as the transfer-set rows of
 * distillation with scarce labels do. labels may be NULL only when alpha = 1. */
kd_tensor *kd_op_kd_loss(kd_tape *tape, kd_tensor *student, kd_tensor *teacher,
                         const int32_t *labels, float temperature, float alpha);

/* The divergences the distillation loss can use between teacher and student at
 * temperature T (p = softmax(t/T), q = softmax(s/T)); docs/ARCHITECTURE.md has the
 * numerics of each. */
typedef enum kd_distill_loss_kind {
    KD_DISTILL_KL = 0,     /* T^2 KL(p || q), Hinton et al. 2015 (kd_op_kd_loss) */
    KD_DISTILL_REVERSE_KL, /* T^2 KL(q || p) */
    KD_DISTILL_JS,         /* T^2 JS(p, q) = T^2 [KL(p || m) + KL(q || m)] / 2, m = (p + q) / 2 */
    KD_DISTILL_DKD,        /* decoupled KD (Zhao et al. 2022): T^2 [a TCKD + b NCKD], C >= 3 */
    KD_DISTILL_LSK,        /* T^2 KL on logits standardised per row (Sun et al. 2024) */
    KD_DISTILL_KIND_COUNT
} kd_distill_loss_kind;

typedef struct kd_distill_loss {
    kd_distill_loss_kind kind;
    float temperature;          /* T > 0 */
    float alpha;                /* weight of the divergence on a labelled row, in [0, 1] */
    float dkd_target_weight;    /* DKD's a (TCKD), >= 0; other kinds ignore it */
    float dkd_nontarget_weight; /* DKD's b (NCKD), >= 0; other kinds ignore it */
} kd_distill_loss;

/* (1, 1) distillation loss, batch mean over rows i of
 *   alpha D_T(t_i, s_i) + (1 - alpha) CE(softmax(s_i), y_i),
 * D_T the chosen divergence, T^2 included (also at alpha = 1). A row labelled -1
 * contributes D_T alone; labels may be NULL only when alpha = 1. DKD takes a row's
 * label as its target class, and the teacher's top class (the first on ties) for an
 * unlabelled row. KD_DISTILL_KL is kd_op_kd_loss itself (the same node, the same bits).
 * The teacher logits get no gradient. */
kd_tensor *kd_op_distill_loss(kd_tape *tape, kd_tensor *student, kd_tensor *teacher, const int32_t *labels,
                              const kd_distill_loss *loss);

/* D (B, K): D_ik = ||X_i - M_k||^2 for X (B, d) and M (K, d), summed in double. */
kd_tensor *kd_op_sqdist(kd_tape *tape, kd_tensor *x, kd_tensor *m);
/* Y = s X where s is a (1, 1) tensor (it may require a gradient, e.g. a learned
 * inverse temperature). */
kd_tensor *kd_op_mul_scalar(kd_tape *tape, kd_tensor *x, kd_tensor *s);

#ifdef __cplusplus
}
#endif
#endif

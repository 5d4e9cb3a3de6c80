/* tape.h - reverse-mode autodiff. A tape is an arena plus an append-only list of
 * nodes. Each op (ops.h) computes its output eagerly into the arena and appends a
 * node; append order is topological, so backward walks the list in reverse and
 * dispatches on the op. kd_tape_reset forgets every node and activation but keeps
 * the memory, so the steady-state training step allocates nothing. */
#ifndef KD_TAPE_H
#define KD_TAPE_H

#include "core/arena.h"
#include "core/tensor.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kd_op {
    KD_OP_MATMUL,      /* C = op(A) op(B), transposes in iparam[0..1] */
    KD_OP_LINEAR,      /* Y = act(X W + b), act in iparam[0] */
    KD_OP_LINEAR_BF16, /* the same with bf16 products (ops_bf16.c), Y bf16 when iparam[1] */
    KD_OP_BIAS_ADD,    /* Y = X + b (b broadcast over rows) */
    KD_OP_RELU,        /* Y = max(X, 0) */
    KD_OP_DROPOUT,     /* Y = X * mask, mask in {0, 1/(1-p)} */
    KD_OP_SCALE,       /* Y = c X */
    KD_OP_MEAN,        /* y = mean of all elements of X, (1, 1) */
    KD_OP_LOG_SOFTMAX, /* Y = log_softmax(X / T) by row */
    KD_OP_SOFTMAX_CE,  /* y = mean_i CE(softmax(X_i), y_i), (1, 1) */
    KD_OP_KD_LOSS,     /* y = alpha T^2 KL(p_t || p_s) + (1 - alpha) CE, batch mean */
    KD_OP_DISTILL_LOSS, /* y = alpha D_T(t, s) + (1 - alpha) CE, batch mean; D_T in iparam[0] */
    KD_OP_SQDIST,      /* D = squared distances of the rows of X to the rows of M */
    KD_OP_MUL_SCALAR,  /* Y = s X, s a (1, 1) tensor that may learn */
    KD_OP_COUNT
} kd_op;

const char *kd_op_name(kd_op op);

typedef struct kd_node {
    kd_op op;
    kd_tensor *out;
    kd_tensor *in[3];
    float fparam[3];        /* op scalars: T, alpha, scale, dropout p */
    int iparam[2];          /* op flags: transposes, activation */
    float *saved;           /* op buffer in the arena: dropout mask, d(loss)/d(logits) */
    void *scratch;          /* another arena buffer (bf16 linear: dY and X^T in bf16) */
    void *context;          /* what the backward needs beyond tensors (bf16 linear: the product cache) */
    const int32_t *labels;  /* class labels for the loss ops (caller keeps them alive) */
    struct kd_node *prev;
} kd_node;

typedef struct kd_tape {
    kd_arena arena;
    kd_node *last;     /* newest node; nodes link backwards */
    int node_count;
    bool grad_enabled; /* false: ops compute forward only and record nothing */
    bool backward_done;
} kd_tape;

/* block_bytes: arena block size (0 picks 4 MiB). */
void kd_tape_init(kd_tape *tape, size_t block_bytes);
void kd_tape_free(kd_tape *tape);
/* Forgets nodes and activations, keeps the arena's memory. */
void kd_tape_reset(kd_tape *tape);
void kd_tape_set_grad_enabled(kd_tape *tape, bool enabled);

/* A new (rows, cols) tensor in the arena, data uninitialised, no gradient. */
kd_tensor *kd_tape_tensor(kd_tape *tape, int rows, int cols);
/* A new (rows, cols) bf16-only tensor in the arena (data NULL), values uninitialised. */
kd_tensor *kd_tape_tensor_bf16(kd_tape *tape, int rows, int cols);
/* A tensor in the arena that refers to caller-owned buffers (no copy). */
kd_tensor *kd_tape_view(kd_tape *tape, int rows, int cols, float *data, float *grad);

/* Backpropagates from a (1, 1) loss: seeds d(loss) = 1. */
void kd_tape_backward(kd_tape *tape, kd_tensor *loss);
/* Backpropagates from any output with a given seed d(out) (rows*cols floats). */
void kd_tape_backward_seeded(kd_tape *tape, kd_tensor *out, const float *seed);

/* For ops (ops*.c): record a node whose output is `out`. Returns NULL (and records
 * nothing) when no input requires a gradient or gradients are disabled. */
kd_node *kd_tape_record(kd_tape *tape, kd_op op, kd_tensor *out, kd_tensor *a, kd_tensor *b,
                        kd_tensor *c);

#ifdef __cplusplus
}
#endif
#endif

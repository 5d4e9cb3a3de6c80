/* tape.c - node recording, gradient allocation and the reverse walk. */
#include "core/tape.h"

#include "core/check.h"
#include "core/ops_backward.h"

#include <string.h>

typedef void (*kd_backward_fn)(const kd_node *node);

typedef struct kd_op_info {
    const char *name;
    kd_backward_fn backward;
} kd_op_info;

static const kd_op_info op_table[] = {
    [KD_OP_MATMUL] = {"matmul", kd_matmul_backward},
    [KD_OP_LINEAR] = {"linear", kd_linear_backward},
    [KD_OP_LINEAR_BF16] = {"linear_bf16", kd_linear_bf16_backward},
    [KD_OP_BIAS_ADD] = {"bias_add", kd_bias_add_backward},
    [KD_OP_RELU] = {"relu", kd_relu_backward},
    [KD_OP_DROPOUT] = {"dropout", kd_dropout_backward},
    [KD_OP_SCALE] = {"scale", kd_scale_backward},
    [KD_OP_MEAN] = {"mean", kd_mean_backward},
    [KD_OP_LOG_SOFTMAX] = {"log_softmax", kd_log_softmax_backward},
    [KD_OP_SOFTMAX_CE] = {"softmax_ce", kd_softmax_ce_backward},
    [KD_OP_KD_LOSS] = {"kd_loss", kd_kd_loss_backward},
    [KD_OP_DISTILL_LOSS] = {"distill_loss", kd_distill_loss_backward},
    [KD_OP_SQDIST] = {"sqdist", kd_sqdist_backward},
    [KD_OP_MUL_SCALAR] = {"mul_scalar", kd_mul_scalar_backward},
};
_Static_assert(sizeof op_table / sizeof op_table[0] == KD_OP_COUNT,
               "every op needs a name and a backward kernel in op_table");

const char *kd_op_name(kd_op op)
{
    KD_ASSERT(op >= 0 && op < KD_OP_COUNT, "unknown op %d", (int)op);
    return op_table[op].name;
}

void kd_tape_init(kd_tape *tape, size_t block_bytes)
{
    memset(tape, 0, sizeof *tape);
    kd_arena_init(&tape->arena, block_bytes ? block_bytes : (size_t)4 << 20);
    tape->grad_enabled = true;
}

void kd_tape_free(kd_tape *tape)
{
    kd_arena_free(&tape->arena);
    tape->last = NULL;
    tape->node_count = 0;
}

void kd_tape_reset(kd_tape *tape)
{
    kd_arena_reset(&tape->arena);
    tape->last = NULL;
    tape->node_count = 0;
    tape->backward_done = false;
}

void kd_tape_set_grad_enabled(kd_tape *tape, bool enabled) { tape->grad_enabled = enabled; }

kd_tensor *kd_tape_tensor(kd_tape *tape, int rows, int cols)
{
    KD_ASSERT(rows > 0 && cols > 0, "tensor shape (%d, %d) must be positive", rows, cols);
    kd_tensor *t = kd_arena_alloc(&tape->arena, sizeof *t);
    t->rows = rows;
    t->cols = cols;
    t->data = kd_arena_alloc(&tape->arena, (size_t)rows * (size_t)cols * sizeof(float));
    t->grad = NULL;
    t->requires_grad = false;
    t->bf16 = NULL;
    return t;
}

kd_tensor *kd_tape_tensor_bf16(kd_tape *tape, int rows, int cols)
{
    KD_ASSERT(rows > 0 && cols > 0, "tensor shape (%d, %d) must be positive", rows, cols);
    kd_tensor *t = kd_arena_alloc(&tape->arena, sizeof *t);
    memset(t, 0, sizeof *t);
    t->rows = rows;
    t->cols = cols;
    t->bf16 = kd_arena_alloc(&tape->arena, (size_t)rows * (size_t)cols * sizeof(kd_bf16));
    return t;
}

kd_tensor *kd_tape_view(kd_tape *tape, int rows, int cols, float *data, float *grad)
{
    kd_tensor *t = kd_arena_alloc(&tape->arena, sizeof *t);
    *t = kd_tensor_view(rows, cols, data, grad);
    return t;
}

kd_node *kd_tape_record(kd_tape *tape, kd_op op, kd_tensor *out, kd_tensor *a, kd_tensor *b,
                        kd_tensor *c)
{
    bool needs = (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
    if (!tape->grad_enabled || !needs) return NULL;
    KD_ASSERT(!tape->backward_done, "recording %s after backward: reset the tape first",
              kd_op_name(op));
    kd_node *node = kd_arena_alloc(&tape->arena, sizeof *node);
    memset(node, 0, sizeof *node);
    node->op = op;
    node->out = out;
    node->in[0] = a;
    node->in[1] = b;
    node->in[2] = c;
    node->prev = tape->last;
    out->requires_grad = true;
    tape->last = node;
    tape->node_count++;
    return node;
}

void kd_tape_backward_seeded(kd_tape *tape, kd_tensor *out, const float *seed)
{
    KD_ASSERT(!tape->backward_done, "backward called twice on one tape: reset it between steps");
    KD_ASSERT(out->requires_grad, "backward from a tensor that no recorded op produced");
    kd_node *start = tape->last;
    while (start && start->out != out) start = start->prev;
    KD_ASSERT(start != NULL, "backward from a tensor that is not on this tape");

    /* Activation gradients live in the arena, zeroed, one per recorded output. */
    for (kd_node *n = start; n; n = n->prev)
        if (!n->out->grad)
            n->out->grad = kd_arena_calloc(&tape->arena, kd_tensor_numel(n->out) * sizeof(float));
    size_t count = kd_tensor_numel(out);
    for (size_t i = 0; i < count; i++) out->grad[i] += seed[i];

    for (kd_node *n = start; n; n = n->prev) op_table[n->op].backward(n);
    tape->backward_done = true;
}

void kd_tape_backward(kd_tape *tape, kd_tensor *loss)
{
    KD_ASSERT(loss->rows == 1 && loss->cols == 1, "loss must be (1, 1), got (%d, %d)",
              loss->rows, loss->cols);
    const float one = 1.0f;
    kd_tape_backward_seeded(tape, loss, &one);
}

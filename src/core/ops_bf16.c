/* ops_bf16.c - the linear layer of a bf16 training step, forward and backward.
 *
 * What is rounded where (everything else is float32):
 *   forward:  X -> bf16 (unless it is already a bf16 value), W's bf16 copy (written by
 *             the optimiser), Y = act(X W + b) accumulated in float32 and, for a
 *             hidden layer, rounded once to bf16;
 *   backward: dY (float32, masked by ReLU) -> bf16 once, read by both products;
 *             dW += X^T dY and dX += dY W^T accumulate in float32; db in float32.
 * For a wide layer X^T is copied (bf16) before dW's product: oneDNN's kernels read a
 * transposed A much more slowly (784 x 1200 x 128 on 2 threads: 280 us against 175
 * us plus about 35 us for the copy). For a narrow one the copy costs more than it saves
 * (784 x 64 x 128: 27 us transposed against 12 us plus the same 35 us), and the
 * product reads X transposed in place. */
#include "core/check.h"
#include "core/ops.h"
#include "core/ops_backward.h"
#include "core/parallel.h"
#include "core/simd.h"

#include <string.h>

static bool wants_grad(const kd_tensor *t) { return t && t->requires_grad && t->grad; }

/* Layers at least this wide (outputs) copy X^T for dW's product. */
#define KD_TRANSPOSE_MIN_OUT 256

kd_tensor *kd_op_linear_bf16(kd_tape *tape, kd_mm_cache *products, kd_tensor *x, kd_tensor *w, kd_tensor *b,
                             kd_activation act, bool bf16_out)
{
    KD_ASSERT(x->cols == w->rows, "linear_bf16: X is (%d, %d) but W is (%d, %d)", x->rows, x->cols, w->rows, w->cols);
    KD_ASSERT(b->rows == 1 && b->cols == w->cols, "linear_bf16: b is (%d, %d), expected (1, %d)", b->rows, b->cols,
              w->cols);
    KD_ASSERT(w->bf16 != NULL, "linear_bf16: W (%d, %d) has no bf16 copy", w->rows, w->cols);
    int batch = x->rows, in = x->cols, out = w->cols;
    if (!x->bf16) { /* an input batch: rounded here, and kept for dW */
        x->bf16 = kd_arena_alloc(&tape->arena, kd_tensor_numel(x) * sizeof(kd_bf16));
        kd_bf16_from_floats(x->data, x->bf16, kd_tensor_numel(x));
    }
    kd_tensor *y = bf16_out ? kd_tape_tensor_bf16(tape, batch, out) : kd_tape_tensor(tape, batch, out);
    kd_mm_bf16 product = {.m = batch, .n = out, .k = in, .a = x->bf16, .lda = in, .b = w->bf16, .ldb = out,
                          .c = bf16_out ? (void *)y->bf16 : (void *)y->data, .ldc = out, .c_bf16 = bf16_out,
                          .bias = b->data, .relu = act == KD_ACT_RELU};
    kd_mm_bf16_run(products, &product);
    kd_node *node = kd_tape_record(tape, KD_OP_LINEAR_BF16, y, x, w, b);
    if (node) {
        node->iparam[0] = act;
        node->iparam[1] = bf16_out;
        node->context = products;
        /* dY (batch, out) in bf16 for the backward, and X^T (in, batch) for a wide layer */
        size_t transposed = out >= KD_TRANSPOSE_MIN_OUT ? (size_t)in * batch : 0;
        node->scratch = kd_arena_alloc(&tape->arena, ((size_t)batch * out + transposed) * sizeof(kd_bf16));
    }
    return y;
}

/* dy[i] = 0 where the ReLU cut (its output is not positive), and dy_bf16 = dy rounded. */
KD_INLINE_BODY void mask_round_body(float *restrict dy, const kd_bf16 *restrict y_bf16, const float *restrict y,
                                    kd_bf16 *restrict dy_bf16, size_t begin, size_t end, int mode)
{
#pragma omp simd
    for (size_t i = begin; i < end; i++) {
        float g = dy[i];
        if (mode == 1) g = kd_bf16_to_float(y_bf16[i]) > 0.0f ? g : 0.0f;
        if (mode == 2) g = y[i] > 0.0f ? g : 0.0f;
        dy[i] = g;
        dy_bf16[i] = kd_bf16_round(g);
    }
}

/* mode 0: no ReLU; 1: ReLU with a bf16 output; 2: ReLU with a float32 output. */
#define MASK_ROUND_VARIANTS(suffix, target)                                                                          \
    target static void mask_round_##suffix(float *restrict dy, const kd_bf16 *restrict y_bf16, const float *restrict y, \
                                           kd_bf16 *restrict dy_bf16, size_t begin, size_t end, int mode)             \
    {                                                                                                                \
        if (mode == 0) mask_round_body(dy, y_bf16, y, dy_bf16, begin, end, 0);                                       \
        else if (mode == 1) mask_round_body(dy, y_bf16, y, dy_bf16, begin, end, 1);                                  \
        else mask_round_body(dy, y_bf16, y, dy_bf16, begin, end, 2);                                                 \
    }
MASK_ROUND_VARIANTS(avx512, KD_TARGET_AVX512)
MASK_ROUND_VARIANTS(generic, )

#define KD_MASK_BLOCK ((size_t)8192)

void kd_linear_bf16_backward(const kd_node *node)
{
    kd_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2], *y = node->out;
    kd_mm_cache *products = node->context;
    int batch = x->rows, in = x->cols, out = w->cols;
    bool relu = node->iparam[0] == KD_ACT_RELU, bf16_out = node->iparam[1];
    int mode = !relu ? 0 : bf16_out ? 1 : 2;
    kd_bf16 *dy_bf16 = node->scratch, *xt = dy_bf16 + (size_t)batch * out;
    float *dy = y->grad;
    /* The ReLU's gradient is applied in place, as kd_linear_backward does. */
    void (*block)(float *restrict, const kd_bf16 *restrict, const float *restrict, kd_bf16 *restrict, size_t, size_t,
                  int) = kd_cpu_has_avx512() ? mask_round_avx512 : mask_round_generic;
    size_t count = kd_tensor_numel(y), blocks = (count + KD_MASK_BLOCK - 1) / KD_MASK_BLOCK;
    KD_PARALLEL_FOR(count >= KD_PARALLEL_MIN, size_t, blk, blocks,
                    size_t begin = blk * KD_MASK_BLOCK;
                    block(dy, y->bf16, y->data, dy_bf16, begin,
                          begin + KD_MASK_BLOCK < count ? begin + KD_MASK_BLOCK : count, mode));
    if (wants_grad(b)) kd_bias_gradient(dy, b->grad, batch, out);
    if (wants_grad(w)) { /* dW (in, out) += X^T dY */
        bool copy = out >= KD_TRANSPOSE_MIN_OUT;
        if (copy) kd_bf16_transpose(x->bf16, batch, in, xt);
        kd_mm_bf16 product = {.m = in, .n = out, .k = batch, .trans_a = !copy, .a = copy ? xt : x->bf16,
                              .lda = copy ? batch : in, .b = dy_bf16, .ldb = out, .c = w->grad, .ldc = out,
                              .accumulate = true};
        kd_mm_bf16_run(products, &product);
    }
    if (wants_grad(x)) { /* dX (batch, in) += dY W^T */
        kd_mm_bf16 product = {.m = batch, .n = in, .k = out, .a = dy_bf16, .lda = out, .trans_b = true,
                              .b = w->bf16, .ldb = out, .c = x->grad, .ldc = in, .accumulate = true};
        kd_mm_bf16_run(products, &product);
    }
}

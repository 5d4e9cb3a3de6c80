/* ops_dense.c - matrix product, fused linear layer, bias, ReLU, dropout, scale
 * and mean: forward and backward side by side. */
#include "core/check.h"
#include "core/gemm.h"
#include "core/ops.h"
#include "core/ops_backward.h"
#include "core/parallel.h"
#include "core/simd.h"

#include <math.h>
#include <string.h>

static bool wants_grad(const kd_tensor *t) { return t && t->requires_grad && t->grad; }

/* db[j0 .. j0 + 64) += the rows of dy (B, out), in row order. */
static void sum_columns(const float *dy, float *db, int batch, int out, int j0)
{
    int j1 = j0 + 64 < out ? j0 + 64 : out;
    for (int i = 0; i < batch; i++) {
        const float *row = dy + (size_t)i * out;
        for (int j = j0; j < j1; j++) db[j] += row[j];
    }
}

void kd_bias_gradient(const float *dy, float *db, int batch, int out)
{
    /* Threads own blocks of columns; each column still sums its rows in order,
     * so the result does not depend on the thread count. */
    size_t blocks = ((size_t)out + 63) / 64;
    KD_PARALLEL_FOR((size_t)batch * out >= KD_PARALLEL_MIN, size_t, blk, blocks,
                    sum_columns(dy, db, batch, out, (int)blk * 64));
}

/* ---- matmul: C = op(A) op(B) ------------------------------------------------ */

kd_tensor *kd_op_matmul(kd_tape *tape, kd_tensor *a, kd_tensor *b, bool trans_a, bool trans_b)
{
    int m = trans_a ? a->cols : a->rows, k = trans_a ? a->rows : a->cols;
    int kb = trans_b ? b->cols : b->rows, n = trans_b ? b->rows : b->cols;
    KD_ASSERT(k == kb, "matmul inner sizes differ: op(A) is (%d, %d), op(B) is (%d, %d)", m, k,
              kb, n);
    kd_tensor *c = kd_tape_tensor(tape, m, n);
    kd_gemm(trans_a, trans_b, m, n, k, 1.0f, a->data, a->cols, b->data, b->cols, 0.0f, c->data, n);
    kd_node *node = kd_tape_record(tape, KD_OP_MATMUL, c, a, b, NULL);
    if (node) {
        node->iparam[0] = trans_a;
        node->iparam[1] = trans_b;
    }
    return c;
}

void kd_matmul_backward(const kd_node *node)
{
    kd_tensor *a = node->in[0], *b = node->in[1], *c = node->out;
    bool ta = node->iparam[0], tb = node->iparam[1];
    int m = c->rows, n = c->cols, k = ta ? a->rows : a->cols;
    if (wants_grad(a)) {
        if (!ta) /* dA (m, k) += dC op(B)^T */
            kd_gemm(false, !tb, m, k, n, 1.0f, c->grad, n, b->data, b->cols, 1.0f, a->grad, a->cols);
        else /* dA (k, m) += op(B) dC^T */
            kd_gemm(tb, true, k, m, n, 1.0f, b->data, b->cols, c->grad, n, 1.0f, a->grad, a->cols);
    }
    if (wants_grad(b)) {
        if (!tb) /* dB (k, n) += op(A)^T dC */
            kd_gemm(!ta, false, k, n, m, 1.0f, a->data, a->cols, c->grad, n, 1.0f, b->grad, b->cols);
        else /* dB (n, k) += dC^T op(A) */
            kd_gemm(true, ta, n, k, m, 1.0f, c->grad, n, a->data, a->cols, 1.0f, b->grad, b->cols);
    }
}

/* ---- linear: Y = act(X W + b) ------------------------------------------------- */

kd_tensor *kd_op_linear(kd_tape *tape, kd_tensor *x, kd_tensor *w, kd_tensor *b, kd_activation act)
{
    KD_ASSERT(x->cols == w->rows, "linear: X is (%d, %d) but W is (%d, %d)", x->rows, x->cols,
              w->rows, w->cols);
    KD_ASSERT(x->data != NULL, "linear: X (%d, %d) is bf16 only; kd_op_linear_bf16 reads it", x->rows, x->cols);
    KD_ASSERT(b->rows == 1 && b->cols == w->cols, "linear: b is (%d, %d), expected (1, %d)",
              b->rows, b->cols, w->cols);
    int batch = x->rows, in = x->cols, out = w->cols;
    kd_tensor *y = kd_tape_tensor(tape, batch, out); /* (B, out) */
    KD_PARALLEL_FOR((size_t)batch * out >= KD_PARALLEL_MIN, int, i, batch,
                    memcpy(y->data + (size_t)i * out, b->data, out * sizeof(float)));
    kd_gemm(false, false, batch, out, in, 1.0f, x->data, in, w->data, out, 1.0f, y->data, out);
    if (act == KD_ACT_RELU) {
        float *restrict v = y->data;
        KD_ELEMENTWISE(kd_tensor_numel(y), i, v[i] = v[i] > 0.0f ? v[i] : 0.0f);
    }
    kd_node *node = kd_tape_record(tape, KD_OP_LINEAR, y, x, w, b);
    if (node) node->iparam[0] = act;
    return y;
}

void kd_linear_backward(const kd_node *node)
{
    kd_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2], *y = node->out;
    int batch = x->rows, in = x->cols, out = w->cols;
    float *restrict dy = y->grad; /* (B, out) */
    if (node->iparam[0] == KD_ACT_RELU) {
        /* The ReLU's gradient is applied in place: every consumer of Y has already
         * added into dY, and nothing reads dY after this node. */
        const float *restrict yv = y->data;
        KD_ELEMENTWISE(kd_tensor_numel(y), i, dy[i] = yv[i] > 0.0f ? dy[i] : 0.0f);
    }
    if (wants_grad(b)) kd_bias_gradient(dy, b->grad, batch, out);
    if (wants_grad(w)) /* dW (in, out) += X^T dY */
        kd_gemm(true, false, in, out, batch, 1.0f, x->data, in, dy, out, 1.0f, w->grad, out);
    if (wants_grad(x)) /* dX (B, in) += dY W^T */
        kd_gemm(false, true, batch, in, out, 1.0f, dy, out, w->data, out, 1.0f, x->grad, in);
}

/* ---- bias add ----------------------------------------------------------------- */

kd_tensor *kd_op_bias_add(kd_tape *tape, kd_tensor *x, kd_tensor *b)
{
    KD_ASSERT(b->rows == 1 && b->cols == x->cols, "bias_add: b is (%d, %d), expected (1, %d)",
              b->rows, b->cols, x->cols);
    kd_tensor *y = kd_tape_tensor(tape, x->rows, x->cols);
    for (int i = 0; i < x->rows; i++) {
        const float *xr = x->data + (size_t)i * x->cols;
        float *yr = y->data + (size_t)i * x->cols;
        for (int j = 0; j < x->cols; j++) yr[j] = xr[j] + b->data[j];
    }
    kd_tape_record(tape, KD_OP_BIAS_ADD, y, x, b, NULL);
    return y;
}

void kd_bias_add_backward(const kd_node *node)
{
    kd_tensor *x = node->in[0], *b = node->in[1], *y = node->out;
    if (wants_grad(x)) {
        size_t count = kd_tensor_numel(y);
        for (size_t i = 0; i < count; i++) x->grad[i] += y->grad[i];
    }
    if (wants_grad(b))
        for (int i = 0; i < y->rows; i++) {
            const float *row = y->grad + (size_t)i * y->cols;
            for (int j = 0; j < y->cols; j++) b->grad[j] += row[j];
        }
}

/* ---- ReLU ----------------------------------------------------------------------- */

kd_tensor *kd_op_relu(kd_tape *tape, kd_tensor *x)
{
    kd_tensor *y = kd_tape_tensor(tape, x->rows, x->cols);
    size_t count = kd_tensor_numel(x);
    for (size_t i = 0; i < count; i++) y->data[i] = x->data[i] > 0.0f ? x->data[i] : 0.0f;
    kd_tape_record(tape, KD_OP_RELU, y, x, NULL, NULL);
    return y;
}

void kd_relu_backward(const kd_node *node)
{
    kd_tensor *x = node->in[0], *y = node->out;
    if (!wants_grad(x)) return;
    size_t count = kd_tensor_numel(x);
    for (size_t i = 0; i < count; i++)
        if (x->data[i] > 0.0f) x->grad[i] += y->grad[i];
}

/* ---- dropout -------------------------------------------------------------------- */

/* mask[i] = keep_scale where the top 32 bits of kd_rng_at(key, i) reach the
 * threshold, else 0; y = x mask. Elements [begin, end). */
KD_INLINE_BODY void dropout_body(const float *restrict x, float *restrict y, float *restrict mask, size_t begin,
                                 size_t end, uint64_t key, uint32_t threshold, float keep_scale)
{
#pragma omp simd
    for (size_t i = begin; i < end; i++) {
        uint32_t bits = (uint32_t)(kd_rng_at(key, i) >> 32);
        float m = bits >= threshold ? keep_scale : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

KD_TARGET_AVX512 static void dropout_avx512(const float *restrict x, float *restrict y, float *restrict mask,
                                            size_t begin, size_t end, uint64_t key, uint32_t threshold,
                                            float keep_scale)
{
    dropout_body(x, y, mask, begin, end, key, threshold, keep_scale);
}

static void dropout_generic(const float *restrict x, float *restrict y, float *restrict mask, size_t begin,
                            size_t end, uint64_t key, uint32_t threshold, float keep_scale)
{
    dropout_body(x, y, mask, begin, end, key, threshold, keep_scale);
}

/* The same mask on a bf16-only tensor: y = bf16(x m). */
KD_INLINE_BODY void dropout_bf16_body(const kd_bf16 *restrict x, kd_bf16 *restrict y, float *restrict mask,
                                      size_t begin, size_t end, uint64_t key, uint32_t threshold, float keep_scale)
{
#pragma omp simd
    for (size_t i = begin; i < end; i++) {
        uint32_t bits = (uint32_t)(kd_rng_at(key, i) >> 32);
        float m = bits >= threshold ? keep_scale : 0.0f;
        mask[i] = m;
        y[i] = kd_bf16_round(kd_bf16_to_float(x[i]) * m);
    }
}

KD_TARGET_AVX512 static void dropout_bf16_avx512(const kd_bf16 *restrict x, kd_bf16 *restrict y, float *restrict mask,
                                                 size_t begin, size_t end, uint64_t key, uint32_t threshold,
                                                 float keep_scale)
{
    dropout_bf16_body(x, y, mask, begin, end, key, threshold, keep_scale);
}

static void dropout_bf16_generic(const kd_bf16 *restrict x, kd_bf16 *restrict y, float *restrict mask, size_t begin,
                                 size_t end, uint64_t key, uint32_t threshold, float keep_scale)
{
    dropout_bf16_body(x, y, mask, begin, end, key, threshold, keep_scale);
}

/* Elements per block of the dropout loop; the mask does not depend on how the
 * blocks are spread over threads. */
#define KD_DROPOUT_BLOCK ((size_t)4096)

kd_tensor *kd_op_dropout(kd_tape *tape, kd_tensor *x, float p, kd_rng *rng)
{
    KD_ASSERT(p >= 0.0f && p < 1.0f, "dropout probability %g must be in [0, 1)", (double)p);
    if (p == 0.0f) return x;
    bool bf16 = x->data == NULL; /* a bf16 training step's hidden activation */
    kd_tensor *y = bf16 ? kd_tape_tensor_bf16(tape, x->rows, x->cols) : kd_tape_tensor(tape, x->rows, x->cols);
    size_t count = kd_tensor_numel(x);
    float *mask = kd_arena_alloc(&tape->arena, count * sizeof(float)); /* (rows, cols) */
    float keep_scale = 1.0f / (1.0f - p);
    /* P(drop) = threshold / 2^32 = p rounded up to a multiple of 2^-32 (< 2^32 as p < 1) */
    uint32_t threshold = (uint32_t)ceil((double)p * 4294967296.0);
    uint64_t key = kd_rng_next(rng); /* one draw a call: the whole mask follows from it */
    bool avx512 = kd_cpu_has_avx512();
    void (*block)(const float *restrict, float *restrict, float *restrict, size_t, size_t, uint64_t, uint32_t,
                  float) = avx512 ? dropout_avx512 : dropout_generic;
    void (*block_bf16)(const kd_bf16 *restrict, kd_bf16 *restrict, float *restrict, size_t, size_t, uint64_t,
                       uint32_t, float) = avx512 ? dropout_bf16_avx512 : dropout_bf16_generic;
    size_t blocks = (count + KD_DROPOUT_BLOCK - 1) / KD_DROPOUT_BLOCK;
    KD_PARALLEL_FOR(count >= KD_PARALLEL_MIN, size_t, b, blocks,
                    size_t begin = b * KD_DROPOUT_BLOCK;
                    size_t end = begin + KD_DROPOUT_BLOCK < count ? begin + KD_DROPOUT_BLOCK : count;
                    if (bf16) block_bf16(x->bf16, y->bf16, mask, begin, end, key, threshold, keep_scale);
                    else block(x->data, y->data, mask, begin, end, key, threshold, keep_scale));
    kd_node *node = kd_tape_record(tape, KD_OP_DROPOUT, y, x, NULL, NULL);
    if (node) {
        node->saved = mask;
        node->fparam[0] = p;
    }
    return y;
}

void kd_dropout_backward(const kd_node *node)
{
    kd_tensor *x = node->in[0], *y = node->out;
    if (!wants_grad(x)) return;
    size_t count = kd_tensor_numel(x);
    float *restrict dx = x->grad;
    const float *restrict dy = y->grad, *restrict mask = node->saved;
    KD_ELEMENTWISE(count, i, dx[i] += dy[i] * mask[i]);
}

/* ---- scale ---------------------------------------------------------------------- */

kd_tensor *kd_op_scale(kd_tape *tape, kd_tensor *x, float c)
{
    kd_tensor *y = kd_tape_tensor(tape, x->rows, x->cols);
    size_t count = kd_tensor_numel(x);
    for (size_t i = 0; i < count; i++) y->data[i] = c * x->data[i];
    kd_node *node = kd_tape_record(tape, KD_OP_SCALE, y, x, NULL, NULL);
    if (node) node->fparam[0] = c;
    return y;
}

void kd_scale_backward(const kd_node *node)
{
    kd_tensor *x = node->in[0], *y = node->out;
    if (!wants_grad(x)) return;
    float c = node->fparam[0];
    size_t count = kd_tensor_numel(x);
    for (size_t i = 0; i < count; i++) x->grad[i] += c * y->grad[i];
}

/* ---- mean ----------------------------------------------------------------------- */

kd_tensor *kd_op_mean(kd_tape *tape, kd_tensor *x)
{
    kd_tensor *y = kd_tape_tensor(tape, 1, 1);
    size_t count = kd_tensor_numel(x);
    double sum = 0.0; /* double: a float sum of 10^5 terms loses digits */
    for (size_t i = 0; i < count; i++) sum += x->data[i];
    y->data[0] = (float)(sum / (double)count);
    kd_tape_record(tape, KD_OP_MEAN, y, x, NULL, NULL);
    return y;
}

void kd_mean_backward(const kd_node *node)
{
    kd_tensor *x = node->in[0];
    if (!wants_grad(x)) return;
    size_t count = kd_tensor_numel(x);
    float g = node->out->grad[0] / (float)count;
    for (size_t i = 0; i < count; i++) x->grad[i] += g;
}

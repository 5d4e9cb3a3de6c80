/* ops_distance.c - squared distances to centres and multiplication by a learned
 * scalar: the pieces of a distance-softmax classifier, logits = -tau ||x - mu_k||^2. */
#include "core/check.h"
#include "core/ops.h"
#include "core/ops_backward.h"

static bool wants_grad(const kd_tensor *t) { return t && t->requires_grad && t->grad; }

kd_tensor *kd_op_sqdist(kd_tape *tape, kd_tensor *x, kd_tensor *m)
{
    KD_ASSERT(x->cols == m->cols, "sqdist: X is (%d, %d) but M is (%d, %d)", x->rows, x->cols, m->rows, m->cols);
    int B = x->rows, K = m->rows, d = x->cols;
    kd_tensor *out = kd_tape_tensor(tape, B, K); /* (B, K) */
    for (int i = 0; i < B; i++)
        for (int k = 0; k < K; k++) {
            const float *xi = x->data + (size_t)i * d, *mk = m->data + (size_t)k * d;
            double sum = 0.0; /* the direct form: no |x|^2 + |m|^2 - 2 x.m cancellation */
            for (int j = 0; j < d; j++) sum += ((double)xi[j] - mk[j]) * ((double)xi[j] - mk[j]);
            out->data[(size_t)i * K + k] = (float)sum;
        }
    kd_tape_record(tape, KD_OP_SQDIST, out, x, m, NULL);
    return out;
}

void kd_sqdist_backward(const kd_node *node)
{
    /* dD_ik/dX_i = 2 (X_i - M_k), dD_ik/dM_k = -2 (X_i - M_k). */
    kd_tensor *x = node->in[0], *m = node->in[1], *out = node->out;
    int B = x->rows, K = m->rows, d = x->cols;
    bool gx = wants_grad(x), gm = wants_grad(m);
    for (int i = 0; i < B; i++)
        for (int k = 0; k < K; k++) {
            float g = 2.0f * out->grad[(size_t)i * K + k];
            if (g == 0.0f) continue;
            const float *xi = x->data + (size_t)i * d, *mk = m->data + (size_t)k * d;
            for (int j = 0; j < d; j++) {
                float diff = xi[j] - mk[j];
                if (gx) x->grad[(size_t)i * d + j] += g * diff;
                if (gm) m->grad[(size_t)k * d + j] -= g * diff;
            }
        }
}

kd_tensor *kd_op_mul_scalar(kd_tape *tape, kd_tensor *x, kd_tensor *s)
{
    KD_ASSERT(s->rows == 1 && s->cols == 1, "mul_scalar: the scalar is (%d, %d), expected (1, 1)", s->rows, s->cols);
    kd_tensor *y = kd_tape_tensor(tape, x->rows, x->cols);
    size_t count = kd_tensor_numel(x);
    float c = s->data[0];
    for (size_t i = 0; i < count; i++) y->data[i] = c * x->data[i];
    kd_tape_record(tape, KD_OP_MUL_SCALAR, y, x, s, NULL);
    return y;
}

void kd_mul_scalar_backward(const kd_node *node)
{
    kd_tensor *x = node->in[0], *s = node->in[1], *y = node->out;
    size_t count = kd_tensor_numel(x);
    if (wants_grad(x))
        for (size_t i = 0; i < count; i++) x->grad[i] += s->data[0] * y->grad[i];
    if (wants_grad(s)) {
        double sum = 0.0;
        for (size_t i = 0; i < count; i++) sum += (double)x->data[i] * y->grad[i];
        s->grad[0] += (float)sum;
    }
}

/* ops_softmax.c - log-softmax with temperature, fused softmax cross-entropy and the
 * fused distillation loss. Every row is worked in double: z/T is formed as
 * (z - max z)/T, so softmax(z/T) never divides exp(z), and T = 0.05 with logits of
 * 1e3 stays finite. The loss ops compute d(loss)/d(logits) during forward and keep
 * it, so their backward is one scaled add. */
#include "core/check.h"
#include "core/ops.h"
#include "core/ops_backward.h"

#include <math.h>

static bool wants_grad(const kd_tensor *t) { return t && t->requires_grad && t->grad; }

/* logp[c] = log softmax(z / T)[c] for one row of n logits. */
static void row_log_softmax(const float *z, int n, double temperature, double *logp)
{
    double max = z[0];
    for (int c = 1; c < n; c++)
        if (z[c] > max) max = z[c];
    double sum = 0.0;
    for (int c = 0; c < n; c++) {
        logp[c] = ((double)z[c] - max) / temperature;
        sum += exp(logp[c]);
    }
    double log_sum = log(sum);
    for (int c = 0; c < n; c++) logp[c] -= log_sum;
}

static void check_labels(const int32_t *labels, int rows, int classes)
{
    KD_ASSERT(labels != NULL, "cross-entropy needs labels");
    for (int i = 0; i < rows; i++)
        KD_ASSERT(labels[i] >= 0 && labels[i] < classes, "label %d of row %d is outside [0, %d)",
                  (int)labels[i], i, classes);
}

/* Per-row scratch lives on the stack; classifiers here have far fewer classes. */
#define KD_MAX_CLASSES 4096

/* ---- log-softmax with temperature ------------------------------------------------ */

kd_tensor *kd_op_log_softmax(kd_tape *tape, kd_tensor *x, float temperature)
{
    KD_ASSERT(temperature > 0.0f, "temperature %g must be positive", (double)temperature);
    KD_ASSERT(x->cols <= KD_MAX_CLASSES, "log_softmax over %d > %d columns", x->cols, KD_MAX_CLASSES);
    kd_tensor *y = kd_tape_tensor(tape, x->rows, x->cols);
    double logp[KD_MAX_CLASSES];
    for (int i = 0; i < x->rows; i++) {
        row_log_softmax(x->data + (size_t)i * x->cols, x->cols, temperature, logp);
        float *yr = y->data + (size_t)i * x->cols;
        for (int c = 0; c < x->cols; c++) yr[c] = (float)logp[c];
    }
    kd_node *node = kd_tape_record(tape, KD_OP_LOG_SOFTMAX, y, x, NULL, NULL);
    if (node) node->fparam[0] = temperature;
    return y;
}

void kd_log_softmax_backward(const kd_node *node)
{
    /* dX = (dY - softmax * rowsum(dY)) / T, softmax = exp(Y). */
    kd_tensor *x = node->in[0], *y = node->out;
    if (!wants_grad(x)) return;
    double temperature = node->fparam[0];
    for (int i = 0; i < x->rows; i++) {
        const float *yr = y->data + (size_t)i * x->cols, *dy = y->grad + (size_t)i * x->cols;
        float *dx = x->grad + (size_t)i * x->cols;
        double dy_sum = 0.0;
        for (int c = 0; c < x->cols; c++) dy_sum += dy[c];
        for (int c = 0; c < x->cols; c++)
            dx[c] += (float)(((double)dy[c] - exp((double)yr[c]) * dy_sum) / temperature);
    }
}

/* ---- softmax cross-entropy --------------------------------------------------------- */

kd_tensor *kd_op_softmax_ce(kd_tape *tape, kd_tensor *logits, const int32_t *labels)
{
    int rows = logits->rows, classes = logits->cols;
    KD_ASSERT(classes <= KD_MAX_CLASSES, "cross-entropy over %d > %d classes", classes, KD_MAX_CLASSES);
    check_labels(labels, rows, classes);
    kd_tensor *loss = kd_tape_tensor(tape, 1, 1);
    bool grad = tape->grad_enabled && logits->requires_grad;
    float *dlogits = grad ? kd_arena_alloc(&tape->arena, kd_tensor_numel(logits) * sizeof(float)) : NULL;
    double logp[KD_MAX_CLASSES], total = 0.0;
    for (int i = 0; i < rows; i++) {
        row_log_softmax(logits->data + (size_t)i * classes, classes, 1.0, logp);
        total -= logp[labels[i]];
        if (grad) {
            float *d = dlogits + (size_t)i * classes; /* (softmax - onehot) / B */
            for (int c = 0; c < classes; c++)
                d[c] = (float)((exp(logp[c]) - (c == labels[i] ? 1.0 : 0.0)) / rows);
        }
    }
    loss->data[0] = (float)(total / rows);
    kd_node *node = kd_tape_record(tape, KD_OP_SOFTMAX_CE, loss, logits, NULL, NULL);
    if (node) {
        node->saved = dlogits;
        node->labels = labels;
    }
    return loss;
}

void kd_softmax_ce_backward(const kd_node *node)
{
    kd_tensor *logits = node->in[0];
    if (!wants_grad(logits)) return;
    float g = node->out->grad[0];
    size_t count = kd_tensor_numel(logits);
    for (size_t i = 0; i < count; i++) logits->grad[i] += g * node->saved[i];
}

/* ---- distillation loss --------------------------------------------------------------- */

kd_tensor *kd_op_kd_loss(kd_tape *tape, kd_tensor *student, kd_tensor *teacher,
                         const int32_t *labels, float temperature, float alpha)
{
    int rows = student->rows, classes = student->cols;
    KD_ASSERT(teacher->rows == rows && teacher->cols == classes,
              "kd_loss: student logits (%d, %d) but teacher logits (%d, %d)", rows, classes,
              teacher->rows, teacher->cols);
    KD_ASSERT(temperature > 0.0f, "kd_loss: temperature %g must be positive", (double)temperature);
    KD_ASSERT(alpha >= 0.0f && alpha <= 1.0f, "kd_loss: alpha %g must be in [0, 1]", (double)alpha);
    KD_ASSERT(classes <= KD_MAX_CLASSES, "kd_loss over %d > %d classes", classes, KD_MAX_CLASSES);
    KD_ASSERT(labels != NULL || alpha == 1.0f, "kd_loss: labels are needed when alpha < 1");
    for (int i = 0; labels && i < rows; i++)
        KD_ASSERT(labels[i] >= -1 && labels[i] < classes, "label %d of row %d is outside [-1, %d)",
                  (int)labels[i], i, classes);

    kd_tensor *loss = kd_tape_tensor(tape, 1, 1);
    bool grad = tape->grad_enabled && student->requires_grad;
    float *dstudent = grad ? kd_arena_alloc(&tape->arena, kd_tensor_numel(student) * sizeof(float)) : NULL;
    double T = temperature;
    double log_ps[KD_MAX_CLASSES], log_pt[KD_MAX_CLASSES], log_p1[KD_MAX_CLASSES];
    double total = 0.0;
    for (int i = 0; i < rows; i++) {
        const float *s = student->data + (size_t)i * classes, *t = teacher->data + (size_t)i * classes;
        float *d = grad ? dstudent + (size_t)i * classes : NULL;
        int32_t y = labels ? labels[i] : -1;
        double a = y >= 0 ? alpha : 1.0; /* an unlabelled row (-1) has only the soft term */
        if (grad)
            for (int c = 0; c < classes; c++) d[c] = 0.0f;
        if (a > 0.0) {
            row_log_softmax(s, classes, T, log_ps);
            row_log_softmax(t, classes, T, log_pt);
            double kl = 0.0, grad_scale = a * T / rows;
            for (int c = 0; c < classes; c++) {
                double pt = exp(log_pt[c]);
                if (pt > 0.0) kl += pt * (log_pt[c] - log_ps[c]); /* 0 log 0 = 0 */
                if (grad) d[c] = (float)(grad_scale * (exp(log_ps[c]) - pt));
            }
            total += a * T * T * kl;
        }
        if (a < 1.0) {
            row_log_softmax(s, classes, 1.0, log_p1);
            total -= (1.0 - a) * log_p1[y];
            if (grad) {
                double grad_scale = (1.0 - a) / rows;
                for (int c = 0; c < classes; c++)
                    d[c] += (float)(grad_scale * (exp(log_p1[c]) - (c == y ? 1.0 : 0.0)));
            }
        }
    }
    loss->data[0] = (float)(total / rows);
    kd_node *node = kd_tape_record(tape, KD_OP_KD_LOSS, loss, student, NULL, NULL);
    if (node) {
        node->saved = dstudent;
        node->labels = labels;
        node->fparam[0] = temperature;
        node->fparam[1] = alpha;
    }
    return loss;
}

void kd_kd_loss_backward(const kd_node *node)
{
    kd_tensor *student = node->in[0];
    if (!wants_grad(student)) return;
    float g = node->out->grad[0];
    size_t count = kd_tensor_numel(student);
    for (size_t i = 0; i < count; i++) student->grad[i] += g * node->saved[i];
}

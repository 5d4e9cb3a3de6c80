/* ops_softmax.c - log-softmax with temperature, fused softmax cross-entropy and the
 * fused distillation loss. Every row is worked in double: z/T is formed as
 * (z - max z)/T, so softmax(z/T) never divides exp(z), and T = 0.05 with logits of
 * 1e3 stays finite. The loss ops compute d(loss)/d(logits) during forward and keep
 * it, so their backward is one scaled add. */
#include "core/check.h"
#include "core/ops.h"
#include "core/ops_backward.h"
#include "core/ops_loss_internal.h"
#include "core/parallel.h"
#include "core/vexp.h"

#include <math.h>

static bool wants_grad(const kd_tensor *t) { return t && t->requires_grad && t->grad; }

/* One row of softmax(z / T) for n logits, in double: logp[c] = log p[c] and p[c].
 * One exp a class: p = e / sum and log p = (z - max) / T - log(sum). */
static void row_softmax_scalar(const float *z, int n, double temperature, double *logp, double *p)
{
    double max = z[0];
    for (int c = 1; c < n; c++)
        if (z[c] > max) max = z[c];
    double sum = 0.0;
    for (int c = 0; c < n; c++) {
        logp[c] = ((double)z[c] - max) / temperature;
        p[c] = exp(logp[c]);
        sum += p[c];
    }
    double log_sum = log(sum);
    for (int c = 0; c < n; c++) {
        logp[c] -= log_sum;
        p[c] /= sum;
    }
}

#if KD_HAVE_AVX512_VARIANTS
/* The same, eight classes at a time (kd_exp_pd is within about 2 ulp of libm). */
KD_TARGET_AVX512 static void row_softmax_avx512(const float *z, int n, double temperature, double *logp, double *p)
{
    double max = z[0];
    for (int c = 1; c < n; c++)
        if (z[c] > max) max = z[c];
    __m512d vmax = _mm512_set1_pd(max), vt = _mm512_set1_pd(temperature), sum = _mm512_setzero_pd();
    for (int c = 0; c < n; c += 8) {
        __mmask8 m = n - c >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - c)) - 1);
        __m512d x = _mm512_div_pd(_mm512_maskz_sub_pd(m, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, z + c)), vmax), vt);
        __m512d e = _mm512_maskz_mov_pd(m, kd_exp_pd(x));
        _mm512_mask_storeu_pd(logp + c, m, x);
        _mm512_mask_storeu_pd(p + c, m, e);
        sum = _mm512_add_pd(sum, e);
    }
    double s = _mm512_reduce_add_pd(sum);
    __m512d vlog = _mm512_set1_pd(log(s)), vs = _mm512_set1_pd(s);
    for (int c = 0; c < n; c += 8) {
        __mmask8 m = n - c >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - c)) - 1);
        _mm512_mask_storeu_pd(logp + c, m, _mm512_sub_pd(_mm512_maskz_loadu_pd(m, logp + c), vlog));
        _mm512_mask_storeu_pd(p + c, m, _mm512_div_pd(_mm512_maskz_loadu_pd(m, p + c), vs));
    }
}
#endif

typedef void (*row_softmax_fn)(const float *z, int n, double temperature, double *logp, double *p);

static row_softmax_fn row_softmax_for_cpu(void)
{
#if KD_HAVE_AVX512_VARIANTS
    if (kd_cpu_has_avx512()) return row_softmax_avx512;
#endif
    return row_softmax_scalar;
}

static void check_labels(const int32_t *labels, int rows, int classes)
{
    KD_ASSERT(labels != NULL, "cross-entropy needs labels");
    for (int i = 0; i < rows; i++)
        KD_ASSERT(labels[i] >= 0 && labels[i] < classes, "label %d of row %d is outside [0, %d)",
                  (int)labels[i], i, classes);
}

/* ---- log-softmax with temperature ------------------------------------------------ */

kd_tensor *kd_op_log_softmax(kd_tape *tape, kd_tensor *x, float temperature)
{
    KD_ASSERT(temperature > 0.0f, "temperature %g must be positive", (double)temperature);
    KD_ASSERT(x->cols <= KD_MAX_CLASSES, "log_softmax over %d > %d columns", x->cols, KD_MAX_CLASSES);
    kd_tensor *y = kd_tape_tensor(tape, x->rows, x->cols);
    row_softmax_fn row_softmax = row_softmax_for_cpu();
    double logp[KD_MAX_CLASSES], p[KD_MAX_CLASSES];
    for (int i = 0; i < x->rows; i++) {
        row_softmax(x->data + (size_t)i * x->cols, x->cols, temperature, logp, p);
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

/* The cross-entropy of row i; writes (softmax - onehot) / rows into d when d is set. */
static double softmax_ce_row(row_softmax_fn row_softmax, const float *z, int classes, int32_t label, int rows,
                             float *d)
{
    double logp[KD_MAX_CLASSES], p[KD_MAX_CLASSES];
    row_softmax(z, classes, 1.0, logp, p);
    if (d)
        for (int c = 0; c < classes; c++) d[c] = (float)((p[c] - (c == label ? 1.0 : 0.0)) / rows);
    return -logp[label];
}

kd_tensor *kd_op_softmax_ce(kd_tape *tape, kd_tensor *logits, const int32_t *labels)
{
    int rows = logits->rows, classes = logits->cols;
    KD_ASSERT(classes <= KD_MAX_CLASSES, "cross-entropy over %d > %d classes", classes, KD_MAX_CLASSES);
    check_labels(labels, rows, classes);
    kd_tensor *loss = kd_tape_tensor(tape, 1, 1);
    bool grad = tape->grad_enabled && logits->requires_grad;
    float *dlogits = grad ? kd_arena_alloc(&tape->arena, kd_tensor_numel(logits) * sizeof(float)) : NULL;
    double *row_loss = kd_arena_alloc(&tape->arena, (size_t)rows * sizeof(double));
    row_softmax_fn row_softmax = row_softmax_for_cpu();
    const float *z = logits->data;
    KD_PARALLEL_FOR((size_t)rows * classes >= KD_LOSS_PARALLEL_MIN, int, i, rows,
                    row_loss[i] = softmax_ce_row(row_softmax, z + (size_t)i * classes, classes, labels[i], rows,
                                                 dlogits ? dlogits + (size_t)i * classes : NULL));
    loss->data[0] = (float)(kd_loss_sum_rows(row_loss, rows) / rows);
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

/* Row i of the distillation loss: a T^2 KL(teacher_T || student_T) + (1 - a) CE,
 * a = alpha for a labelled row and 1 for an unlabelled one (label -1). Writes the
 * row's d(loss)/d(student logits) into d when d is set. */
static double kd_loss_row(row_softmax_fn row_softmax, const float *s, const float *t, int classes, int32_t y,
                          double T, double alpha, int rows, float *d)
{
    double log_ps[KD_MAX_CLASSES], log_pt[KD_MAX_CLASSES], ps[KD_MAX_CLASSES], pt[KD_MAX_CLASSES];
    double a = y >= 0 ? alpha : 1.0, total = 0.0;
    if (d)
        for (int c = 0; c < classes; c++) d[c] = 0.0f;
    if (a > 0.0) {
        row_softmax(s, classes, T, log_ps, ps);
        row_softmax(t, classes, T, log_pt, pt);
        double kl = 0.0, grad_scale = a * T / rows;
        for (int c = 0; c < classes; c++) {
            if (pt[c] > 0.0) kl += pt[c] * (log_pt[c] - log_ps[c]); /* 0 log 0 = 0 */
            if (d) d[c] = (float)(grad_scale * (ps[c] - pt[c]));
        }
        total += a * T * T * kl;
    }
    if (a < 1.0) { /* the T = 1 softmax reuses the buffers */
        row_softmax(s, classes, 1.0, log_ps, ps);
        total -= (1.0 - a) * log_ps[y];
        if (d) {
            double grad_scale = (1.0 - a) / rows;
            for (int c = 0; c < classes; c++) d[c] += (float)(grad_scale * (ps[c] - (c == y ? 1.0 : 0.0)));
        }
    }
    return total;
}

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
    double *row_loss = kd_arena_alloc(&tape->arena, (size_t)rows * sizeof(double));
    row_softmax_fn row_softmax = row_softmax_for_cpu();
    const float *zs = student->data, *zt = teacher->data;
    KD_PARALLEL_FOR((size_t)rows * classes >= KD_LOSS_PARALLEL_MIN, int, i, rows,
                    row_loss[i] = kd_loss_row(row_softmax, zs + (size_t)i * classes, zt + (size_t)i * classes, classes,
                                              labels ? labels[i] : -1, temperature, alpha, rows,
                                              dstudent ? dstudent + (size_t)i * classes : NULL));
    loss->data[0] = (float)(kd_loss_sum_rows(row_loss, rows) / rows);
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

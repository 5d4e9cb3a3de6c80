/* ops_distill.c - the distillation loss with a choice of divergence
 * (kd_op_distill_loss, ops.h): batch mean of alpha D_T(t, s) + (1 - alpha) CE(s, y),
 * D_T one of T^2 KL(p || q) (kd_op_kd_loss in ops_softmax.c, called as it is),
 * T^2 KL(q || p), T^2 JS(p, q), decoupled KD and KL on standardised logits, with
 * p = softmax(t/T), q = softmax(s/T). As in ops_softmax.c every row is worked in
 * double from (z - max z)/T, the gradient with respect to the student logits is
 * formed during forward and kept as float, and backward is one scaled add. The
 * per-row scratch (six rows of doubles) is on the stack; nothing is allocated
 * beyond the tape's arena.
 *
 * Notation for a row: u = s/T, v = t/T, so d/ds = (1/T) d/du and the T^2 of D_T
 * leaves T: d(T^2 D)/ds = T dD/du. Each divergence below returns D (without T^2)
 * and g = dD/du (for lsk, the gradient pushed back through the standardisation). */
#include "core/check.h"
#include "core/ops.h"
#include "core/ops_backward.h"
#include "core/ops_loss_internal.h"
#include "core/parallel.h"
#include "core/vexp.h"

#include <math.h>

/* LSK's standardisation z' = (z - mean) / (LSK_EPS + std), as the reference code. */
#define LSK_EPS 1e-7
#define LN2 0.693147180559945309417232121458176568

/* softmax(z / T) of a row of n doubles: logp, p and the row's log-sum-exp
 * log sum_c exp(z_c / T) as the return value (max/T + log of the shifted sum), so
 * that two such sums over different classes of one row can be compared. */
typedef double (*row_log_softmax_fn)(const double *z, int n, double temperature, double *logp, double *p);

static double row_log_softmax_scalar(const double *z, int n, double temperature, double *logp, double *p)
{
    double max = z[0];
    for (int c = 1; c < n; c++)
        if (z[c] > max) max = z[c];
    double sum = 0.0;
    for (int c = 0; c < n; c++) {
        logp[c] = (z[c] - max) / temperature;
        p[c] = exp(logp[c]);
        sum += p[c];
    }
    double log_sum = log(sum);
    for (int c = 0; c < n; c++) {
        logp[c] -= log_sum;
        p[c] /= sum;
    }
    return max / temperature + log_sum;
}

#if KD_HAVE_AVX512_VARIANTS
/* The same, eight classes at a time (kd_exp_pd is within about 2 ulp of libm). */
KD_TARGET_AVX512 static double row_log_softmax_avx512(const double *z, int n, double temperature, double *logp,
                                                      double *p)
{
    double max = z[0];
    for (int c = 1; c < n; c++)
        if (z[c] > max) max = z[c];
    __m512d vmax = _mm512_set1_pd(max), vt = _mm512_set1_pd(temperature), sum = _mm512_setzero_pd();
    for (int c = 0; c < n; c += 8) {
        __mmask8 m = n - c >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - c)) - 1);
        __m512d x = _mm512_div_pd(_mm512_maskz_sub_pd(m, _mm512_maskz_loadu_pd(m, z + c), vmax), vt);
        __m512d e = _mm512_maskz_mov_pd(m, kd_exp_pd(x));
        _mm512_mask_storeu_pd(logp + c, m, x);
        _mm512_mask_storeu_pd(p + c, m, e);
        sum = _mm512_add_pd(sum, e);
    }
    double s = _mm512_reduce_add_pd(sum), log_sum = log(s);
    __m512d vlog = _mm512_set1_pd(log_sum), vs = _mm512_set1_pd(s);
    for (int c = 0; c < n; c += 8) {
        __mmask8 m = n - c >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - c)) - 1);
        _mm512_mask_storeu_pd(logp + c, m, _mm512_sub_pd(_mm512_maskz_loadu_pd(m, logp + c), vlog));
        _mm512_mask_storeu_pd(p + c, m, _mm512_div_pd(_mm512_maskz_loadu_pd(m, p + c), vs));
    }
    return max / temperature + log_sum;
}
#endif

static row_log_softmax_fn row_log_softmax_for_cpu(void)
{
#if KD_HAVE_AVX512_VARIANTS
    if (kd_cpu_has_avx512()) return row_log_softmax_avx512;
#endif
    return row_log_softmax_scalar;
}

/* What every row needs: the loss settings, the shapes and the softmax variant. */
typedef struct distill_ctx {
    const kd_distill_loss *loss;
    row_log_softmax_fn softmax;
    int rows, classes;
} distill_ctx;

/* The per-row scratch: six rows of doubles (192 KiB at KD_MAX_CLASSES). */
typedef struct row_scratch {
    double x[KD_MAX_CLASSES];            /* the logits being worked, as doubles */
    double lq[KD_MAX_CLASSES], q[KD_MAX_CLASSES]; /* student: log q, q */
    double lp[KD_MAX_CLASSES], p[KD_MAX_CLASSES]; /* teacher: log p, p */
    double g[KD_MAX_CLASSES];            /* dD/du */
} row_scratch;

static void to_double(const float *z, int n, double *x)
{
    KD_ASSERT(n > 0, "an empty row"); /* and GCC then sees every x[c] written */
    for (int c = 0; c < n; c++) x[c] = z[c];
}

/* The teacher's distribution into lp, p, then the student's into lq, q. */
static void both_softmax(const distill_ctx *cx, const float *s, const float *t, row_scratch *w)
{
    double T = cx->loss->temperature;
    to_double(t, cx->classes, w->x);
    cx->softmax(w->x, cx->classes, T, w->lp, w->p);
    to_double(s, cx->classes, w->x);
    cx->softmax(w->x, cx->classes, T, w->lq, w->q);
}

/* KL(q || p) = sum_c q_c r_c, r = log q - log p. Through q = softmax(u):
 * dD/du_j = sum_c q_c (delta_cj - q_j)(r_c + 1) = q_j (r_j - D). The logs are formed
 * as logits minus a log-sum-exp, so they are finite even where q_c underflows to 0,
 * and such a class adds 0 (0 log 0 = 0). */
static double reverse_kl_row(const distill_ctx *cx, const float *s, const float *t, row_scratch *w)
{
    int n = cx->classes;
    both_softmax(cx, s, t, w);
    double D = 0.0;
    for (int c = 0; c < n; c++) {
        w->g[c] = w->lq[c] - w->lp[c];
        D += w->q[c] * w->g[c];
    }
    for (int c = 0; c < n; c++) w->g[c] = w->q[c] * (w->g[c] - D);
    return D;
}

/* JS(p, q) = KL(p || m)/2 + KL(q || m)/2, m = (p + q)/2, with
 * log m = logaddexp(log p, log q) - log 2 (never log of a sum that underflowed).
 * With q free, dD/dq_c = (log q_c - log m_c)/2 =: h_c (the p/m and q/m terms cancel:
 * (p_c + q_c)/(2 m_c) = 1), so dD/du_j = q_j (h_j - sum_c q_c h_c). */
static double js_row(const distill_ctx *cx, const float *s, const float *t, row_scratch *w)
{
    int n = cx->classes;
    both_softmax(cx, s, t, w);
    double D = 0.0, qh = 0.0;
    for (int c = 0; c < n; c++) {
        double a = w->lp[c], b = w->lq[c];
        double lm = (a > b ? a : b) + log1p(exp(-fabs(a - b))) - LN2;
        D += 0.5 * (w->p[c] * (a - lm) + w->q[c] * (b - lm));
        w->g[c] = 0.5 * (b - lm);
        qh += w->q[c] * w->g[c];
    }
    for (int c = 0; c < n; c++) w->g[c] = w->q[c] * (w->g[c] - qh);
    return D;
}

/* The first of the largest teacher logits: DKD's target for an unlabelled row. */
static int top_class(const float *t, int n)
{
    int top = 0;
    for (int c = 1; c < n; c++)
        if (t[c] > t[top]) top = c;
    return top;
}

/* The non-target classes of z (every class but y, in order) into x. */
static void without_class(const float *z, int n, int y, double *x)
{
    for (int c = 0, k = 0; c < n; c++)
        if (c != y) x[k++] = z[c];
}

/* Decoupled KD (Zhao et al. 2022, mdistiller's dkd_loss): D = a TCKD + b NCKD with
 *   TCKD = KL([p_y, 1 - p_y] || [q_y, 1 - q_y]),
 *   NCKD = KL(phat || qhat), phat, qhat the softmax over the classes other than y.
 * log(1 - q_y) is the non-target log-sum-exp minus the full one (never 1 - q_y by
 * subtraction: near q_y = 1 that loses every digit), and qhat comes from its own
 * softmax, not q / (1 - q_y). Gradients (qhat is independent of u_y):
 *   dTCKD/du_y = q_y - p_y,  dTCKD/du_j = qhat_j (p_y - q_y),  dNCKD/du_j = qhat_j - phat_j,
 * j != y, and dNCKD/du_y = 0. q_y - p_y is taken as (1 - p_y) - (1 - q_y) when either
 * is above 1/2, where the complements carry the digits. */
static double dkd_row(const distill_ctx *cx, const float *s, const float *t, int y, row_scratch *w)
{
    int n = cx->classes, m = n - 1;
    double T = cx->loss->temperature, wa = cx->loss->dkd_target_weight, wb = cx->loss->dkd_nontarget_weight;
    /* student: q_y, log q_y, log(1 - q_y), then qhat into lq, q */
    to_double(s, n, w->x);
    double lse_s = cx->softmax(w->x, n, T, w->lq, w->q);
    double qy = w->q[y], lqy = w->lq[y];
    without_class(s, n, y, w->x);
    double lq1m = cx->softmax(w->x, m, T, w->lq, w->q) - lse_s, q1m = exp(lq1m);
    /* teacher: the same into lp, p */
    to_double(t, n, w->x);
    double lse_t = cx->softmax(w->x, n, T, w->lp, w->p);
    double py = w->p[y], lpy = w->lp[y];
    without_class(t, n, y, w->x);
    double lp1m = cx->softmax(w->x, m, T, w->lp, w->p) - lse_t, p1m = exp(lp1m);

    double tckd = py * (lpy - lqy) + p1m * (lp1m - lq1m), nckd = 0.0;
    for (int k = 0; k < m; k++) nckd += w->p[k] * (w->lp[k] - w->lq[k]);
    double dy = (qy > 0.5 || py > 0.5) ? p1m - q1m : qy - py; /* q_y - p_y */
    w->g[y] = wa * dy;
    for (int c = 0, k = 0; c < n; c++)
        if (c != y) {
            w->g[c] = -wa * w->q[k] * dy + wb * (w->q[k] - w->p[k]);
            k++;
        }
    return wa * tckd + wb * nckd;
}

/* z' = (z - mean) / (LSK_EPS + std), std with n - 1 (torch.std), into x; returns std. */
static double standardise(const float *z, int n, double *x, double *mean)
{
    double sum = 0.0;
    for (int c = 0; c < n; c++) sum += z[c];
    *mean = sum / n;
    double ss = 0.0;
    for (int c = 0; c < n; c++) ss += ((double)z[c] - *mean) * ((double)z[c] - *mean);
    double sd = sqrt(ss / (n - 1));
    for (int c = 0; c < n; c++) x[c] = ((double)z[c] - *mean) / (LSK_EPS + sd);
    return sd;
}

/* Logit-standardised KD (Sun et al. 2024): KL(softmax(t'/T) || softmax(s'/T)), t', s'
 * the standardised rows. dD/du' = q - p =: g, and back through s' = d k, d = s - mean,
 * k = 1/(eps + sd), sd = sqrt(sum d^2 / (n - 1)):
 *   dD/d(s_j/T) = k (g_j - mean g) - k^2 (sum_i g_i d_i) d_j / ((n - 1) sd).
 * A constant student row (sd = 0, so d = 0) takes the second term as 0, its limit
 * (it is O(sd / eps^2)), so the gradient is continuous there and finite; the first
 * term remains, as large as |g| / eps: the reference's function is that steep there.
 * (torch's autograd does the same: its std backward is 0 where std is 0.) */
static double lsk_row(const distill_ctx *cx, const float *s, const float *t, row_scratch *w)
{
    int n = cx->classes;
    double T = cx->loss->temperature, mean_t, mean_s;
    standardise(t, n, w->x, &mean_t);
    cx->softmax(w->x, n, T, w->lp, w->p);
    double sd = standardise(s, n, w->x, &mean_s);
    cx->softmax(w->x, n, T, w->lq, w->q);
    double D = 0.0, g_sum = 0.0, gd = 0.0;
    for (int c = 0; c < n; c++) {
        D += w->p[c] * (w->lp[c] - w->lq[c]);
        w->g[c] = w->q[c] - w->p[c];
        g_sum += w->g[c];
        gd += w->g[c] * ((double)s[c] - mean_s);
    }
    double k = 1.0 / (LSK_EPS + sd), g_mean = g_sum / n;
    double sd_term = sd > 0.0 ? k * k * gd / ((n - 1) * sd) : 0.0;
    for (int c = 0; c < n; c++) w->g[c] = k * (w->g[c] - g_mean) - sd_term * ((double)s[c] - mean_s);
    return D;
}

/* Row i of the loss: a D_T + (1 - a) CE, a = alpha for a labelled row and 1 for an
 * unlabelled one (label -1). Writes the row's d(loss)/d(student logits) into d when
 * d is set. */
static double distill_row(const distill_ctx *cx, const float *s, const float *t, int32_t y, float *d)
{
    row_scratch w;
    int n = cx->classes;
    double T = cx->loss->temperature, a = y >= 0 ? cx->loss->alpha : 1.0, total = 0.0;
    if (d)
        for (int c = 0; c < n; c++) d[c] = 0.0f;
    if (a > 0.0) {
        double D = 0.0;
        switch (cx->loss->kind) {
        case KD_DISTILL_REVERSE_KL: D = reverse_kl_row(cx, s, t, &w); break;
        case KD_DISTILL_JS: D = js_row(cx, s, t, &w); break;
        case KD_DISTILL_DKD: D = dkd_row(cx, s, t, y >= 0 ? y : top_class(t, n), &w); break;
        case KD_DISTILL_LSK: D = lsk_row(cx, s, t, &w); break;
        default: KD_ASSERT(false, "distill_loss: kind %d has no row", (int)cx->loss->kind);
        }
        total += a * T * T * D;
        if (d) {
            double grad_scale = a * T / cx->rows;
            for (int c = 0; c < n; c++) d[c] = (float)(grad_scale * w.g[c]);
        }
    }
    if (a < 1.0) { /* cross-entropy on the raw student logits at T = 1 */
        to_double(s, n, w.x);
        cx->softmax(w.x, n, 1.0, w.lq, w.q);
        total -= (1.0 - a) * w.lq[y];
        if (d) {
            double grad_scale = (1.0 - a) / cx->rows;
            for (int c = 0; c < n; c++) d[c] += (float)(grad_scale * (w.q[c] - (c == y ? 1.0 : 0.0)));
        }
    }
    return total;
}

kd_tensor *kd_op_distill_loss(kd_tape *tape, kd_tensor *student, kd_tensor *teacher, const int32_t *labels,
                              const kd_distill_loss *loss)
{
    KD_ASSERT(loss->kind >= 0 && loss->kind < KD_DISTILL_KIND_COUNT, "distill_loss: unknown kind %d",
              (int)loss->kind);
    if (loss->kind == KD_DISTILL_KL) /* today's loss, node and bits */
        return kd_op_kd_loss(tape, student, teacher, labels, loss->temperature, loss->alpha);

    int rows = student->rows, classes = student->cols;
    KD_ASSERT(teacher->rows == rows && teacher->cols == classes,
              "distill_loss: student logits (%d, %d) but teacher logits (%d, %d)", rows, classes, teacher->rows,
              teacher->cols);
    KD_ASSERT(loss->temperature > 0.0f, "distill_loss: temperature %g must be positive", (double)loss->temperature);
    KD_ASSERT(loss->alpha >= 0.0f && loss->alpha <= 1.0f, "distill_loss: alpha %g must be in [0, 1]",
              (double)loss->alpha);
    KD_ASSERT(classes <= KD_MAX_CLASSES, "distill_loss over %d > %d classes", classes, KD_MAX_CLASSES);
    KD_ASSERT(classes >= 2, "distill_loss needs at least 2 classes, found %d", classes);
    KD_ASSERT(loss->kind != KD_DISTILL_DKD || classes >= 3,
              "distill_loss: dkd needs at least 3 classes (its non-target term is a distribution over C - 1), found %d",
              classes);
    KD_ASSERT(loss->kind != KD_DISTILL_DKD || (loss->dkd_target_weight >= 0.0f && loss->dkd_nontarget_weight >= 0.0f),
              "distill_loss: dkd weights %g, %g must be non-negative", (double)loss->dkd_target_weight,
              (double)loss->dkd_nontarget_weight);
    KD_ASSERT(labels != NULL || loss->alpha == 1.0f, "distill_loss: labels are needed when alpha < 1");
    for (int i = 0; labels && i < rows; i++)
        KD_ASSERT(labels[i] >= -1 && labels[i] < classes, "label %d of row %d is outside [-1, %d)", (int)labels[i],
                  i, classes);

    kd_tensor *out = kd_tape_tensor(tape, 1, 1);
    bool grad = tape->grad_enabled && student->requires_grad;
    float *dstudent = grad ? kd_arena_alloc(&tape->arena, kd_tensor_numel(student) * sizeof(float)) : NULL;
    double *row_loss = kd_arena_alloc(&tape->arena, (size_t)rows * sizeof(double));
    distill_ctx cx = {.loss = loss, .softmax = row_log_softmax_for_cpu(), .rows = rows, .classes = classes};
    const float *zs = student->data, *zt = teacher->data;
    KD_PARALLEL_FOR((size_t)rows * classes >= KD_LOSS_PARALLEL_MIN, int, i, rows,
                    row_loss[i] = distill_row(&cx, zs + (size_t)i * classes, zt + (size_t)i * classes,
                                              labels ? labels[i] : -1,
                                              dstudent ? dstudent + (size_t)i * classes : NULL));
    out->data[0] = (float)(kd_loss_sum_rows(row_loss, rows) / rows);
    kd_node *node = kd_tape_record(tape, KD_OP_DISTILL_LOSS, out, student, NULL, NULL);
    if (node) {
        node->saved = dstudent;
        node->labels = labels;
        node->fparam[0] = loss->temperature;
        node->fparam[1] = loss->alpha;
        node->iparam[0] = (int)loss->kind;
    }
    return out;
}

void kd_distill_loss_backward(const kd_node *node)
{
    kd_tensor *student = node->in[0];
    if (!(student->requires_grad && student->grad)) return;
    float g = node->out->grad[0];
    size_t count = kd_tensor_numel(student);
    for (size_t i = 0; i < count; i++) student->grad[i] += g * node->saved[i];
}

/* isotonic.c - see isotonic.h. */
#include "calib/isotonic.h"

#include <stdlib.h>

typedef struct block {
    double first, last;        /* x of the block's first and last group */
    double sum, squares, weight; /* sums of y and y^2, count of samples */
} block;

int64_t kd_isotonic_fit(const double *x, const double *y, int64_t n, double *tx, double *ty, double *sse)
{
    block *stack = malloc((size_t)n * sizeof *stack);
    if (!stack) return -1;
    int64_t top = 0; /* blocks on the stack: means strictly increasing from the bottom */
    for (int64_t i = 0; i < n;) {
        /* one group: every x within KD_ISOTONIC_TIE of the group's first x */
        block g = {x[i], x[i], y[i], y[i] * y[i], 1.0};
        for (i++; i < n && !(x[i] - g.first >= KD_ISOTONIC_TIE); i++) g.sum += y[i], g.squares += y[i] * y[i], g.weight += 1.0;
        /* pool while the block below is not below this one: means compared as sum / weight
         * cross-multiplied (weights are positive), so no division decides a pooling */
        while (top > 0 && stack[top - 1].sum * g.weight >= g.sum * stack[top - 1].weight) {
            block *b = &stack[--top];
            g.first = b->first;
            g.sum += b->sum;
            g.squares += b->squares;
            g.weight += b->weight;
        }
        stack[top++] = g;
    }
    int64_t k = 0;
    double total = 0.0;
    for (int64_t b = 0; b < top; b++) {
        double v = stack[b].sum / stack[b].weight;
        v = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v; /* y_min = 0, y_max = 1 */
        /* the block's squared error sum (y - v)^2 = sum y^2 - 2 v sum y + weight v^2 */
        total += stack[b].squares - 2 * v * stack[b].sum + stack[b].weight * v * v;
        tx[k] = stack[b].first, ty[k++] = v;
        if (stack[b].last != stack[b].first) tx[k] = stack[b].last, ty[k++] = v;
    }
    free(stack);
    if (sse) *sse = total;
    return k;
}

double kd_isotonic_predict(const double *tx, const double *ty, int64_t k, double x)
{
    if (x != x) return x;
    if (x <= tx[0]) return ty[0];
    if (x >= tx[k - 1]) return ty[k - 1];
    /* tx[lo] < x < tx[hi]: the largest lo with tx[lo] <= x */
    int64_t lo = 0, hi = k - 1;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (tx[mid] <= x) lo = mid;
        else hi = mid;
    }
    if (tx[lo] == x) return ty[lo];
    double slope = (ty[lo + 1] - ty[lo]) / (tx[lo + 1] - tx[lo]);
    return slope * (x - tx[lo]) + ty[lo];
}

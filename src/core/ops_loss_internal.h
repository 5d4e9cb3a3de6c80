/* ops_loss_internal.h - what the loss ops (ops_softmax.c, ops_distill.c) share: the
 * class limit of their per-row stack scratch, the size from which they split rows
 * over the threads, and the sum of per-row losses in row order. Not part of the
 * public API. */
#ifndef KD_OPS_LOSS_INTERNAL_H
#define KD_OPS_LOSS_INTERNAL_H

/* Per-row scratch lives on the stack; classifiers here have far fewer classes. */
#define KD_MAX_CLASSES 4096

/* Loss ops split their rows over the threads from this many logits; each row's
 * loss goes to its own slot and the slots are summed in row order, so the loss
 * does not depend on the thread count. */
#define KD_LOSS_PARALLEL_MIN 1024

static inline double kd_loss_sum_rows(const double *row_loss, int rows)
{
    double total = 0.0;
    for (int i = 0; i < rows; i++) total += row_loss[i];
    return total;
}

#endif

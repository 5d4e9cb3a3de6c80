/* ops_backward.h - the backward kernels, one per op, for tape.c's dispatch table.
 * Each reads node->out->grad and accumulates (+=) into the inputs' gradients. */
#ifndef KD_OPS_BACKWARD_H
#define KD_OPS_BACKWARD_H

#include "core/tape.h"

void kd_matmul_backward(const kd_node *node);
void kd_linear_backward(const kd_node *node);
void kd_linear_bf16_backward(const kd_node *node);
/* db (out) += the column sums of dy (batch, out), each column in row order (the
 * same bits on any thread count); shared by both linear ops. */
void kd_bias_gradient(const float *dy, float *db, int batch, int out);
void kd_bias_add_backward(const kd_node *node);
void kd_relu_backward(const kd_node *node);
void kd_dropout_backward(const kd_node *node);
void kd_scale_backward(const kd_node *node);
void kd_mean_backward(const kd_node *node);
void kd_log_softmax_backward(const kd_node *node);
void kd_softmax_ce_backward(const kd_node *node);
void kd_kd_loss_backward(const kd_node *node);
void kd_distill_loss_backward(const kd_node *node);
void kd_sqdist_backward(const kd_node *node);
void kd_mul_scalar_backward(const kd_node *node);

#endif

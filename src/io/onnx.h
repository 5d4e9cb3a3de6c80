/* onnx.h - a trained MLP as a standard ONNX model (docs/EXPORT.md): the protobuf
 * bytes of a ModelProto, written by a small encoder of the wire format (varints,
 * length-delimited fields, float32 tensors as little-endian raw_data), so no
 * protobuf or ONNX library is needed. This module owns the graph's layout and the
 * encoding; opening the model, the options and the file belong to the export
 * workflow (workflows/export.h).
 *
 * The graph (opset KD_ONNX_OPSET of the default domain, IR version KD_ONNX_IR_VERSION):
 *   input "input" float32 [N, D], N a dynamic dimension named "N"
 *   (input_scale != 0: Mul by the float32 scalar "input_scale" -> "input_scaled")
 *   per layer k: Gemm(h, "layerK.W" [in, out], "layerK.b" [out]) -> "layerK.out",
 *                Relu -> "layerK.relu" after every layer but the last
 *   the last Gemm's output is "logits" ([N, C]); with probabilities, Softmax(axis 1)
 *   of it is the graph's output "probabilities" instead.
 * Dropout is absent: it acts in training only. */
#ifndef KD_ONNX_H
#define KD_ONNX_H

#include "core/error.h"
#include "io/strbuf.h"
#include "nn/mlp.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Accepted by onnxruntime (1.31 tested) and by Debian 12's python3-onnx 1.12, whose
 * checker knows IR versions up to 8 and opsets up to 17. Opset 13 is the first with
 * Softmax over one axis (earlier ones flatten to 2-D, the same for [N, C]). */
#define KD_ONNX_OPSET 13
#define KD_ONNX_IR_VERSION 8

/* A metadata_props entry (StringStringEntryProto). */
typedef struct kd_onnx_entry {
    const char *key, *value;
} kd_onnx_entry;

typedef struct kd_onnx_options {
    /* The last layer's weights and bias are divided by this (in double, each
     * rounded once to float32), so the output is logits / T. 1 leaves them as they
     * are (dividing by 1 is exact). Must be finite and > 0. */
    double temperature;
    bool probabilities;          /* append Softmax(axis 1), output "probabilities" */
    float input_scale;           /* 0: none; else the input is multiplied by it first */
    const char *producer_version; /* ModelProto.producer_version (producer_name is "kdtrain") */
    const char *doc_string;      /* NULL: none */
    const kd_onnx_entry *metadata; /* (n_metadata) ModelProto.metadata_props */
    int n_metadata;
} kd_onnx_options;

/* Appends the ModelProto's bytes to out (a byte buffer here: it holds NULs; read
 * out->length). Fails, appending nothing usable, when a folded weight is not
 * finite, the temperature is not finite and positive, or memory runs out. */
int kd_onnx_encode(const kd_mlp *mlp, const kd_onnx_options *options, kd_strbuf *out, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* onnx.c - see onnx.h.
 *
 * The protobuf wire format, as onnx.proto's proto2 messages are encoded: a field is
 * a key varint, (field number << 3) | wire type, then its value. Wire type 0: a
 * varint (7 bits a byte, least significant group first, the top bit set on every
 * byte but the last; an int64 is taken as its 64-bit two's complement). Wire type 2:
 * a varint byte count, then the bytes (strings, bytes, nested messages). A nested
 * message is encoded into a buffer of its own first, so that its length is known
 * when it is appended to its parent. Repeated fields are written one key-value pair
 * an element (unpacked), which every protobuf parser reads. Field numbers are
 * onnx.proto's (onnx 1.12, the same in every later release). */
#include "io/onnx.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

/* Field numbers, one enum a message. */
enum { MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_DOC_STRING = 6,
       MODEL_GRAPH = 7, MODEL_OPSET_IMPORT = 8, MODEL_METADATA_PROPS = 14 };
enum { OPSET_DOMAIN = 1, OPSET_VERSION = 2 };                 /* OperatorSetIdProto */
enum { ENTRY_KEY = 1, ENTRY_VALUE = 2 };                      /* StringStringEntryProto */
enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12 };
enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5 };
enum { ATTR_NAME = 1, ATTR_I = 3, ATTR_TYPE = 20 };           /* AttributeProto */
enum { TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9 };
enum { VALUE_NAME = 1, VALUE_TYPE = 2 };                      /* ValueInfoProto */
enum { TYPE_TENSOR = 1 };                                     /* TypeProto.tensor_type */
enum { TYPE_TENSOR_ELEM_TYPE = 1, TYPE_TENSOR_SHAPE = 2 };    /* TypeProto.Tensor */
enum { SHAPE_DIM = 1 };                                       /* TensorShapeProto */
enum { DIM_VALUE = 1, DIM_PARAM = 2 };                        /* TensorShapeProto.Dimension */

enum { ONNX_FLOAT = 1 };     /* TensorProto.DataType.FLOAT */
enum { ATTRIBUTE_INT = 2 };  /* AttributeProto.AttributeType.INT */

/* ---- the wire format -------------------------------------------------------------- */

static void put_varint(kd_strbuf *b, uint64_t v)
{
    char bytes[10];
    size_t n = 0;
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) byte |= 0x80;
        bytes[n++] = (char)byte;
    } while (v);
    kd_strbuf_append(b, bytes, n);
}

static void put_key(kd_strbuf *b, int field, int wire) { put_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

static void put_int(kd_strbuf *b, int field, int64_t v)
{
    put_key(b, field, WIRE_VARINT);
    put_varint(b, (uint64_t)v);
}

static void put_bytes(kd_strbuf *b, int field, const void *data, size_t n)
{
    put_key(b, field, WIRE_LEN);
    put_varint(b, n);
    kd_strbuf_append(b, n ? data : "", n);
}

static void put_string(kd_strbuf *b, int field, const char *s) { put_bytes(b, field, s, strlen(s)); }

/* Appends the message built in m as field `field` of b, and frees m. */
static void put_message(kd_strbuf *b, int field, kd_strbuf *m)
{
    if (m->failed) b->failed = true;
    put_bytes(b, field, m->text, m->length);
    kd_strbuf_free(m);
}

/* n float32 values as raw_data: 4 bytes each, little-endian whatever the host's order. */
static void put_raw_floats(kd_strbuf *b, int field, const float *v, size_t n)
{
    put_key(b, field, WIRE_LEN);
    put_varint(b, 4 * n);
    char chunk[4 * 256];
    for (size_t i = 0; i < n;) {
        size_t m = n - i < 256 ? n - i : 256;
        for (size_t j = 0; j < m; j++) {
            uint32_t u;
            memcpy(&u, &v[i + j], 4);
            for (int k = 0; k < 4; k++) chunk[4 * j + (size_t)k] = (char)(uint8_t)(u >> (8 * k));
        }
        kd_strbuf_append(b, chunk, 4 * m);
        i += m;
    }
}

/* ---- ONNX messages ------------------------------------------------------------------ */

/* A float32 initializer (TensorProto) of the graph. */
static void put_initializer(kd_strbuf *graph, const char *name, const int64_t *dims, int n_dims, const float *v,
                            size_t count)
{
    kd_strbuf t = {0};
    for (int i = 0; i < n_dims; i++) put_int(&t, TENSOR_DIMS, dims[i]);
    put_int(&t, TENSOR_DATA_TYPE, ONNX_FLOAT);
    put_string(&t, TENSOR_NAME, name);
    put_raw_floats(&t, TENSOR_RAW_DATA, v, count);
    put_message(graph, GRAPH_INITIALIZER, &t);
}

/* A graph input or output (ValueInfoProto): float32 [N, cols], N a named dynamic dimension. */
static void put_value_info(kd_strbuf *graph, int field, const char *name, int64_t cols)
{
    kd_strbuf rows = {0}, width = {0}, shape = {0}, tensor = {0}, type = {0}, info = {0};
    put_string(&rows, DIM_PARAM, "N");
    put_int(&width, DIM_VALUE, cols);
    put_message(&shape, SHAPE_DIM, &rows);
    put_message(&shape, SHAPE_DIM, &width);
    put_int(&tensor, TYPE_TENSOR_ELEM_TYPE, ONNX_FLOAT);
    put_message(&tensor, TYPE_TENSOR_SHAPE, &shape);
    put_message(&type, TYPE_TENSOR, &tensor);
    put_string(&info, VALUE_NAME, name);
    put_message(&info, VALUE_TYPE, &type);
    put_message(graph, field, &info);
}

/* A node (NodeProto) of the default domain; axis >= 0 adds the INT attribute "axis". */
static void put_node(kd_strbuf *graph, const char *op_type, const char *name, const char *const *inputs, int n_inputs,
                     const char *output, int axis)
{
    kd_strbuf node = {0};
    for (int i = 0; i < n_inputs; i++) put_string(&node, NODE_INPUT, inputs[i]);
    put_string(&node, NODE_OUTPUT, output);
    put_string(&node, NODE_NAME, name);
    put_string(&node, NODE_OP_TYPE, op_type);
    if (axis >= 0) {
        kd_strbuf attr = {0};
        put_string(&attr, ATTR_NAME, "axis");
        put_int(&attr, ATTR_I, axis);
        put_int(&attr, ATTR_TYPE, ATTRIBUTE_INT);
        put_message(&node, NODE_ATTRIBUTE, &attr);
    }
    put_message(graph, GRAPH_NODE, &node);
}

/* ---- the MLP as a graph ----------------------------------------------------------- */

/* The last layer's parameters divided by T: each quotient formed in double from the
 * float32 weight and rounded once to float32, so the folded layer gives logits / T up
 * to that one rounding per parameter (and the Gemm's own, as the unfolded one). */
static int fold(const float *v, size_t n, double T, float *out, const char *what, kd_error *err)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (float)((double)v[i] / T);
        if (!isfinite(out[i]))
            return kd_error_set(err, KD_ERR_DATA, "%s[%zu] = %g divided by T = %g: expected a finite float32, found %g",
                                what, i, (double)v[i], T, (double)out[i]);
    }
    return KD_OK;
}

static int put_graph(kd_strbuf *graph, const kd_mlp *mlp, const kd_onnx_options *o, kd_error *err)
{
    const kd_mlp_config *c = &mlp->config;
    int L = c->n_layers;
    put_string(graph, GRAPH_NAME, "kdtrain_mlp");
    char h[32] = "input", name[32], weight[32], bias[32], out[32];
    if (o->input_scale != 0.0f) {
        const char *in[2] = {"input", "input_scale"};
        put_node(graph, "Mul", "input.scale", in, 2, "input_scaled", -1);
        snprintf(h, sizeof h, "input_scaled");
    }
    for (int k = 1; k <= L; k++) {
        bool last = k == L;
        snprintf(weight, sizeof weight, "layer%d.W", k);
        snprintf(bias, sizeof bias, "layer%d.b", k);
        if (last) snprintf(out, sizeof out, "logits");
        else snprintf(out, sizeof out, "layer%d.out", k);
        snprintf(name, sizeof name, "layer%d.gemm", k);
        const char *in[3] = {h, weight, bias};
        put_node(graph, "Gemm", name, in, 3, out, -1);
        if (!last) {
            snprintf(name, sizeof name, "layer%d.relu", k);
            const char *r[1] = {out};
            snprintf(h, sizeof h, "layer%d.relu", k);
            put_node(graph, "Relu", name, r, 1, h, -1);
        }
    }
    if (o->probabilities) {
        const char *in[1] = {"logits"};
        put_node(graph, "Softmax", "softmax", in, 1, "probabilities", 1);
    }

    if (o->input_scale != 0.0f) put_initializer(graph, "input_scale", NULL, 0, &o->input_scale, 1);
    int rc = KD_OK;
    for (int k = 1; k <= L && !rc; k++) {
        const kd_tensor *W = &mlp->weight[k - 1], *b = &mlp->bias[k - 1];
        size_t nw = (size_t)W->rows * (size_t)W->cols, nb = (size_t)b->cols;
        int64_t dw[2] = {W->rows, W->cols}, db[1] = {b->cols};
        snprintf(weight, sizeof weight, "layer%d.W", k);
        snprintf(bias, sizeof bias, "layer%d.b", k);
        if (k < L || o->temperature == 1.0) {
            put_initializer(graph, weight, dw, 2, W->data, nw);
            put_initializer(graph, bias, db, 1, b->data, nb);
            continue;
        }
        float *folded = malloc((nw > nb ? nw : nb) * sizeof(float));
        if (!folded) return kd_error_set(err, KD_ERR_IO, "out of memory for the folded last layer (%zu floats)", nw);
        rc = fold(W->data, nw, o->temperature, folded, weight, err);
        if (!rc) put_initializer(graph, weight, dw, 2, folded, nw);
        if (!rc) rc = fold(b->data, nb, o->temperature, folded, bias, err);
        if (!rc) put_initializer(graph, bias, db, 1, folded, nb);
        free(folded);
    }
    put_value_info(graph, GRAPH_INPUT, "input", c->sizes[0]);
    put_value_info(graph, GRAPH_OUTPUT, o->probabilities ? "probabilities" : "logits", c->sizes[L]);
    return rc;
}

int kd_onnx_encode(const kd_mlp *mlp, const kd_onnx_options *o, kd_strbuf *out, kd_error *err)
{
    if (!isfinite(o->temperature) || o->temperature <= 0.0)
        return kd_error_set(err, KD_ERR_CONFIG, "ONNX export: temperature %g: expected a finite number > 0", o->temperature);
    if (!isfinite(o->input_scale))
        return kd_error_set(err, KD_ERR_CONFIG, "ONNX export: input scale %g: expected a finite number",
                            (double)o->input_scale);
    kd_strbuf graph = {0};
    int rc = put_graph(&graph, mlp, o, err);
    if (rc) {
        kd_strbuf_free(&graph);
        return rc;
    }
    kd_strbuf model = {0}, opset = {0};
    put_int(&model, MODEL_IR_VERSION, KD_ONNX_IR_VERSION);
    put_string(&model, MODEL_PRODUCER_NAME, "kdtrain");
    put_string(&model, MODEL_PRODUCER_VERSION, o->producer_version ? o->producer_version : "");
    if (o->doc_string) put_string(&model, MODEL_DOC_STRING, o->doc_string);
    put_message(&model, MODEL_GRAPH, &graph);
    put_string(&opset, OPSET_DOMAIN, "");
    put_int(&opset, OPSET_VERSION, KD_ONNX_OPSET);
    put_message(&model, MODEL_OPSET_IMPORT, &opset);
    for (int i = 0; i < o->n_metadata; i++) {
        kd_strbuf entry = {0};
        put_string(&entry, ENTRY_KEY, o->metadata[i].key);
        put_string(&entry, ENTRY_VALUE, o->metadata[i].value);
        put_message(&model, MODEL_METADATA_PROPS, &entry);
    }
    if (model.failed) {
        kd_strbuf_free(&model);
        return kd_error_set(err, KD_ERR_IO, "out of memory while encoding the ONNX model");
    }
    kd_strbuf_append(out, model.text, model.length);
    kd_strbuf_free(&model);
    return out->failed ? kd_error_set(err, KD_ERR_IO, "out of memory while encoding the ONNX model") : KD_OK;
}

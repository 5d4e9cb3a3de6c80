/* cmd_export.c - `kdtrain export`: the options of workflows/export.h, and the summary line. */
#include "cli/args.h"
#include "cli/commands.h"

#include "io/onnx.h"
#include "workflows/export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_help(void)
{
    printf("usage: kdtrain export --model RUN_OR_CHECKPOINT --onnx OUT.onnx [--fold-temperature]\n"
           "                      [--probabilities] [--raw-input [--data FILE]] [--force]\n\n"
           "Writes the model as a standard ONNX file (opset %d, IR version %d; docs/EXPORT.md):\n"
           "input \"input\" float32 [N, D], a Gemm per layer with Relu between, output \"logits\"\n"
           "float32 [N, C]. The input is what kdtrain feeds the network: the data set's stored\n"
           "values times its x_scale (for kdtrain prepare's images: pixels / 255).\n\n"
           "  --fold-temperature  divide the last layer's weights and bias by the model's fitted\n"
           "                      temperature T (kdtrain calibrate), so the output is logits / T\n"
           "  --probabilities     append Softmax over the classes; the output is \"probabilities\"\n"
           "  --raw-input         multiply the input by the data set's x_scale inside the graph, so\n"
           "                      stored values (pixels 0..255 as floats) can be fed; the data set is\n"
           "                      the one the run's config names, or --data FILE\n"
           "  --force             replace an existing OUT.onnx\n\n"
           "The file is written whole and renamed into place; it is never the checkpoint or the\n"
           "data set being read, and its folder must exist.\n",
           KD_ONNX_OPSET, KD_ONNX_IR_VERSION);
}

static int parse(int argc, char **argv, kd_export_request *r)
{
    kd_args a = {argc, argv, 1, "kdtrain export"};
    memset(r, 0, sizeof *r);
    for (; a.i < argc; a.i++) {
        const char *v;
        int m;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            print_help();
            return -1;
        }
        if (kd_arg_flag(&a, "--fold-temperature")) {
            r->fold_temperature = true;
        } else if (kd_arg_flag(&a, "--probabilities")) {
            r->probabilities = true;
        } else if (kd_arg_flag(&a, "--raw-input")) {
            r->raw_input = true;
        } else if (kd_arg_flag(&a, "--force")) {
            r->replace = true;
        } else if ((m = kd_arg_value(&a, "--model", "a run folder or checkpoint", &v))) {
            if (m < 0) return 2;
            r->model = v;
        } else if ((m = kd_arg_value(&a, "--onnx", "an output .onnx file", &v))) {
            if (m < 0) return 2;
            r->onnx_out = v;
        } else if ((m = kd_arg_value(&a, "--data", "an HDF5 data set", &v))) {
            if (m < 0) return 2;
            r->data = v;
        } else {
            return kd_arg_unknown(&a);
        }
    }
    if (!r->model) {
        fprintf(stderr, "kdtrain export: --model: required (a run folder or a checkpoint)\n");
        return 2;
    }
    if (!r->onnx_out) {
        fprintf(stderr, "kdtrain export: --onnx: required (the .onnx file to write)\n");
        return 2;
    }
    if (r->data && !r->raw_input) {
        fprintf(stderr, "kdtrain export: --data: only read with --raw-input (for the data set's x_scale)\n");
        return 2;
    }
    return 0;
}

int kd_cmd_export(int argc, char **argv)
{
    kd_export_request r;
    int rc = parse(argc, argv, &r);
    if (rc) return rc < 0 ? 0 : rc;
    kd_error err;
    kd_error_clear(&err);
    kd_export_result *res = malloc(sizeof *res);
    rc = res ? kd_export_onnx(&r, res, &err) : kd_error_set(&err, KD_ERR_IO, "out of memory");
    if (!rc) {
        printf("%s: the %s model of %s as ONNX (opset %d), output \"%s\"", r.onnx_out, res->architecture,
               res->checkpoint, KD_ONNX_OPSET, r.probabilities ? "probabilities" : "logits");
        if (r.fold_temperature) printf(", T = %.4g folded in", res->temperature);
        if (r.raw_input) printf(", input times x_scale = %.6g in the graph", res->x_scale);
        printf(" (%zu bytes)\n", res->bytes);
    }
    free(res);
    if (rc) {
        fprintf(stderr, "kdtrain export: %s\n", err.message);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}

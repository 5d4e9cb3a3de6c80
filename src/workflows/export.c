/* export.c - `kdtrain export` as a library call (see export.h): the model opened,
 * the options checked against it (a temperature to fold, a data set for x_scale),
 * the output path checked before anything is encoded, then the provenance as the
 * model's doc string and metadata, and one atomic write. The bytes depend only on
 * the checkpoint, the options and the exporting build (no date), so exporting twice
 * gives the same file. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/export.h"

#include "io/onnx.h"
#include "io/provenance.h"
#include "io/strbuf.h"
#include "kd_version.h"
#include "workflows/model.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The output's folder must exist (a typo in it should not grow a tree of folders),
 * and the output must be neither an input nor, without replace, an existing file. */
static int check_output(const kd_export_request *r, const char *checkpoint, const char *data, kd_error *err)
{
    char dir[KD_PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", r->onnx_out) >= (int)sizeof dir)
        return kd_error_set(err, KD_ERR_CONFIG, "--onnx %s: path too long", r->onnx_out);
    const char *folder = dirname(dir);
    if (!kd_file_is_directory(folder))
        return kd_error_set(err, KD_ERR_IO, "--onnx %s: the folder %s does not exist; create it first", r->onnx_out,
                            folder);
    const char *inputs[2] = {checkpoint, data};
    return kd_file_check_output("--onnx", r->onnx_out, inputs, 2, r->replace, err);
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v: "2.371", not "2.3709999999999999". */
static void format_double(char *buf, size_t size, double v)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static void describe(kd_strbuf *doc, const kd_model *m, const kd_export_result *res, const kd_export_request *r,
                     const char *trained, const char *exported, const char *temperature)
{
    const kd_mlp_config *c = &m->mlp.config;
    int classes = c->sizes[c->n_layers];
    kd_strbuf_printf(doc, "kdtrain %s: the MLP %s of %s", KD_VERSION_STRING, res->architecture, res->checkpoint);
    if (m->has_train) kd_strbuf_printf(doc, " after epoch %lld", (long long)m->train.epoch);
    kd_strbuf_printf(doc, " (trained by kdtrain commit %s), exported by kdtrain commit %s.\n", trained, exported);
    if (r->raw_input)
        kd_strbuf_printf(doc,
                         "Input \"input\": float32 [N, %d], the data set's stored feature values as float32 (uint8 "
                         "pixels as 0..255); the graph multiplies them by x_scale = %.9g (float32) first, as kdtrain "
                         "does when it reads a batch.\n",
                         c->sizes[0], (double)(float)res->x_scale);
    else
        kd_strbuf_printf(doc,
                         "Input \"input\": float32 [N, %d], the features kdtrain feeds the network: the data set's "
                         "stored values times its x_scale attribute, in float32 (uint8 pixels times (float)(1/255) for "
                         "kdtrain prepare's data sets), what `kdtrain eval --logits` evaluates.\n",
                         c->sizes[0]);
    const char *output = r->probabilities ? "probabilities" : "logits";
    if (r->fold_temperature)
        kd_strbuf_printf(doc,
                         "Output \"%s\": float32 [N, %d], %s of logits / T, T = %s the model's fitted calibration "
                         "temperature, folded into the last layer (W / T and b / T formed in double and rounded once "
                         "to float32).\n",
                         output, classes, r->probabilities ? "the softmax (axis 1)" : "the value", temperature);
    else
        kd_strbuf_printf(doc, "Output \"%s\": float32 [N, %d], %s, no temperature applied.\n", output, classes,
                         r->probabilities ? "the softmax (axis 1) of the logits" : "the logits");
}

int kd_export_onnx(const kd_export_request *r, kd_export_result *res, kd_error *err)
{
    memset(res, 0, sizeof *res);
    res->temperature = 1.0;
    if (!r->onnx_out || !r->onnx_out[0])
        return kd_error_set(err, KD_ERR_CONFIG, "--onnx: required (the .onnx file to write)");
    kd_model m;
    int rc = kd_model_open(&m, r->model, err);
    if (rc) return rc;
    snprintf(res->checkpoint, sizeof res->checkpoint, "%s", m.checkpoint);
    kd_mlp_describe(&m.mlp.config, res->architecture, sizeof res->architecture);
    if (r->fold_temperature && !m.calibration.present)
        rc = kd_error_set(err, KD_ERR_DATA,
                          "--fold-temperature: %s has no fitted temperature (no /calibration group); run `kdtrain "
                          "calibrate --model %s` first, or export without --fold-temperature",
                          m.checkpoint, r->model);
    if (!rc && r->fold_temperature) res->temperature = m.calibration.temperature;
    char data_path[KD_DIR_MAX] = "";
    if (!rc && r->raw_input) {
        kd_dataset ds;
        rc = kd_model_open_data(&m, r->data, false, &ds, err);
        if (!rc) {
            res->x_scale = ds.x_scale;
            snprintf(data_path, sizeof data_path, "%s", ds.path);
            kd_dataset_close(&ds);
        }
    }
    if (!rc) rc = check_output(r, m.checkpoint, data_path[0] ? data_path : NULL, err);

    char trained[64], exported[64], temperature[32], x_scale[32], epoch[32];
    snprintf(trained, sizeof trained, "%s", m.has_train && m.train.commit[0] ? m.train.commit : "not recorded");
    kd_provenance_commit(exported, sizeof exported);
    if (m.calibration.present)
        format_double(temperature, sizeof temperature, m.calibration.temperature);
    else
        snprintf(temperature, sizeof temperature, "none");
    snprintf(x_scale, sizeof x_scale, "%.9g", (double)(float)res->x_scale);
    snprintf(epoch, sizeof epoch, "%lld", (long long)m.train.epoch);
    const kd_onnx_entry metadata[] = {
        {"kdtrain.source", m.checkpoint},
        {"kdtrain.architecture", res->architecture},
        {"kdtrain.epoch", m.has_train ? epoch : "not recorded"},
        {"kdtrain.trained_commit", trained},
        {"kdtrain.exported_commit", exported},
        {"kdtrain.temperature", temperature},
        {"kdtrain.temperature_folded", r->fold_temperature ? "true" : "false"},
        {"kdtrain.output", r->probabilities ? "probabilities" : "logits"},
        {"kdtrain.input", r->raw_input ? "raw" : "scaled"},
        {"kdtrain.x_scale", r->raw_input ? x_scale : "not in the graph"},
    };
    kd_strbuf doc = {0}, bytes = {0};
    if (!rc) {
        describe(&doc, &m, res, r, trained, exported, temperature);
        if (doc.failed) rc = kd_error_set(err, KD_ERR_IO, "out of memory");
    }
    if (!rc) {
        kd_onnx_options o = {.temperature = res->temperature, .probabilities = r->probabilities,
                             .input_scale = (float)res->x_scale, .producer_version = KD_VERSION_STRING,
                             .doc_string = doc.text, .metadata = metadata,
                             .n_metadata = (int)(sizeof metadata / sizeof metadata[0])};
        rc = kd_onnx_encode(&m.mlp, &o, &bytes, err);
    }
    if (!rc) rc = kd_file_write_atomic(r->onnx_out, bytes.text, bytes.length, err);
    if (!rc) res->bytes = bytes.length;
    kd_strbuf_free(&doc);
    kd_strbuf_free(&bytes);
    kd_model_close(&m);
    return rc;
}

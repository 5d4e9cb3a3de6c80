/* model.c - opening a trained model (see model.h). */
#define _POSIX_C_SOURCE 200809L
#include "workflows/model.h"

#include "io/fileutil.h"
#include "io/h5util.h"
#include "workflows/run_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *kd_model_checkpoint_path(const char *path, char *buf, size_t size)
{
    if (kd_file_is_directory(path))
        snprintf(buf, size, "%s/model.h5", path);
    else
        snprintf(buf, size, "%s", path);
    return buf;
}

int kd_model_classes(const kd_model *model) { return model->mlp.config.sizes[model->mlp.config.n_layers]; }

int kd_model_open(kd_model *m, const char *path, kd_error *err)
{
    memset(m, 0, sizeof *m);
    m->from_run_folder = kd_file_is_directory(path);
    kd_model_checkpoint_path(path, m->checkpoint, sizeof m->checkpoint);
    if (m->from_run_folder && !kd_file_exists(m->checkpoint))
        return kd_error_set(err, KD_ERR_IO, "%s: a run folder without model.h5 (stopped before its first epoch ended?)",
                            path);
    kd_mlp_config mc;
    int rc = kd_checkpoint_read_config(m->checkpoint, &mc, err);
    if (rc) return rc;
    hid_t file = kd_h5_open_read(m->checkpoint, err);
    if (file < 0) return err ? err->code : KD_ERR_IO;
    m->has_train = kd_h5_link_exists(file, "/train");
    H5Fclose(file);
    if ((rc = kd_mlp_create(&m->mlp, &mc, err))) return rc;
    m->config_text = calloc(KD_CONFIG_TEXT_MAX, 1);
    if (!m->config_text) rc = kd_error_set(err, KD_ERR_IO, "out of memory");
    if (!rc)
        rc = kd_checkpoint_load(m->checkpoint, &m->mlp, NULL, m->has_train ? &m->train : NULL,
                                m->has_train ? m->config_text : NULL, KD_CONFIG_TEXT_MAX, &m->calibration, err);
    kd_config_defaults(&m->config);
    if (!rc && m->has_train && kd_config_load_text(&m->config, m->config_text, "the checkpoint's config", err)) {
        rc = KD_ERR_DATA; /* a value read from a file: data, not the user's config */
        if (err) {
            size_t used = strlen(err->message);
            snprintf(err->message + used, sizeof err->message - used, " (in %s:/train)", m->checkpoint);
            err->code = rc;
        }
    }
    m->train.config_text = m->config_text;
    if (rc) kd_model_close(m);
    return rc;
}

void kd_model_close(kd_model *m)
{
    kd_mlp_free(&m->mlp);
    free(m->config_text);
    m->config_text = NULL;
    m->train.config_text = NULL;
}

int kd_model_open_data(const kd_model *m, const char *data, bool require_test, kd_dataset *ds, kd_error *err)
{
    memset(ds, 0, sizeof *ds);
    const char *path = data ? data : m->config.data.path;
    if (!path[0])
        return kd_error_set(err, KD_ERR_CONFIG, "%s: %s names no data set; pass --data FILE", m->checkpoint,
                            m->has_train ? "its config" : "it has no /train group (no run config), so it");
    int rc = kd_run_data_open(&m->config, path, require_test, ds, err);
    if (rc) return rc;
    const kd_mlp_config *mc = &m->mlp.config;
    if (ds->dim != mc->sizes[0] || ds->num_classes != kd_model_classes(m)) {
        char arch[256];
        rc = kd_error_set(err, KD_ERR_DATA, "%s: expected %d features and %d classes for the %s model, found %d and %d",
                          path, mc->sizes[0], kd_model_classes(m), kd_mlp_describe(mc, arch, sizeof arch), ds->dim,
                          ds->num_classes);
        kd_dataset_close(ds);
    }
    return rc;
}

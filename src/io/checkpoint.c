/* checkpoint.c - see checkpoint.h; the layout is in docs/CHECKPOINT.md. This file
 * writes checkpoints (kd_checkpoint_save) and replaces their calibration
 * (kd_checkpoint_write_calibration), and holds the helpers it shares with
 * checkpoint_read.c (checkpoint_internal.h). Every error names the file and the
 * HDF5 object: "FILE:/model/layer2/W: ...". */
#define _POSIX_C_SOURCE 200809L
#include "io/checkpoint.h"
#include "io/checkpoint_internal.h"

#include "io/h5util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- checks before writing ---- */

/* The attribute writers name only the attribute; add the file and object. */
static int in_object(int rc, kd_error *err, const char *path, const char *object)
{
    if (rc != KD_OK && err) {
        char inner[sizeof err->message];
        memcpy(inner, err->message, sizeof inner);
        snprintf(err->message, sizeof err->message, "%s:%s: %.900s", path, object, inner);
    }
    return rc;
}

static int check_block(const kd_mlp *m, const char *prefix, const float *block, const char *path,
                       kd_error *err)
{
    int rc = KD_OK;
    for (int i = 0; i < kd_ckpt_n_parts(m) && rc == KD_OK; i++) {
        block_part p;
        kd_ckpt_get_part(m, prefix, i, &p);
        rc = kd_ckpt_check_finite(block + p.offset, p.count, path, p.name, err);
    }
    return rc;
}

static bool valid_name(const char *name, size_t size)
{
    return memchr(name, '\0', size) && name[0] != '\0' && !strchr(name, '/');
}

/* The optimiser module fills the struct: a bad one is a programmer error. */
static void assert_optim_valid(const kd_optim_state *o)
{
    KD_ASSERT(valid_name(o->kind, sizeof o->kind), "optimizer kind must be a short non-empty name");
    KD_ASSERT(o->n_slots >= 0 && o->n_slots <= KD_OPTIM_MAX_SLOTS, "n_slots is %d", o->n_slots);
    KD_ASSERT(o->n_hyper >= 0 && o->n_hyper <= KD_OPTIM_MAX_HYPER, "n_hyper is %d", o->n_hyper);
    for (int s = 0; s < o->n_slots; s++) {
        KD_ASSERT(valid_name(o->slot_names[s], sizeof o->slot_names[s]) && o->slots[s],
                  "optimizer slot %d needs a name without '/' and a buffer", s);
        KD_ASSERT(s == 0 || strcmp(o->slot_names[0], o->slot_names[s]), "slot names must differ");
    }
    for (int h = 0; h < o->n_hyper; h++) {
        KD_ASSERT(valid_name(o->hyper_names[h], sizeof o->hyper_names[h]) &&
                      !kd_ckpt_reserved_optim_attr(o->hyper_names[h]),
                  "hyper-parameter %d has an empty, reserved or unterminated name", h);
        for (int g = 0; g < h; g++)
            KD_ASSERT(strcmp(o->hyper_names[g], o->hyper_names[h]), "hyper-parameter %s is repeated",
                      o->hyper_names[h]);
    }
}

static int check_calibration(const char *path, const kd_calibration *c, kd_error *err)
{
    if (!c || !c->present) return KD_OK;
    KD_ASSERT(memchr(c->split, '\0', sizeof c->split), "calibration split is not terminated");
    return kd_ckpt_check_calibration(c, path, err);
}

/* ---- writing ---- */

/* Through HDF5's uint64 types: int64 or double would lose the top bits of a
 * seed or an RNG state word. count 1 writes a scalar. */
static int write_attr_u64(hid_t obj, const char *name, const uint64_t *values, int count, kd_error *err)
{
    char msg[256];
    hsize_t dims[1] = {(hsize_t)count};
    int rc = KD_OK;
    hid_t space = count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    hid_t attr = space < 0 ? H5I_INVALID_HID
                           : H5Acreate2(obj, name, H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, H5T_NATIVE_UINT64, values) < 0)
        rc = kd_error_set(err, KD_ERR_IO, "attribute %s: cannot write (%s)", name,
                          kd_h5_last_message(msg, sizeof msg));
    if (attr >= 0 && H5Aclose(attr) < 0 && rc == KD_OK)
        rc = kd_error_set(err, KD_ERR_IO, "attribute %s: cannot close", name);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int write_block(hid_t file, const kd_mlp *m, const char *prefix, const float *block,
                       const char *path, kd_error *err)
{
    int rc = KD_OK;
    for (int i = 0; i < kd_ckpt_n_parts(m) && rc == KD_OK; i++) {
        block_part p;
        kd_ckpt_get_part(m, prefix, i, &p);
        rc = kd_h5_write_dataset(file, p.name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, p.rank, p.dims,
                                 block + p.offset, NULL, -1, false, path, err);
    }
    return rc;
}

static hid_t create_group(hid_t file, const char *name, const char *path, kd_error *err)
{
    hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) kd_ckpt_h5_error(err, KD_ERR_IO, path, name, "cannot create the group");
    return g;
}

static int write_model(hid_t file, const kd_mlp *m, const char *path, kd_error *err)
{
    const kd_mlp_config *c = &m->config;
    int64_t sizes[KD_MLP_MAX_LAYERS + 1];
    for (int k = 0; k <= c->n_layers; k++) sizes[k] = c->sizes[k];
    hid_t g = create_group(file, "/model", path, err);
    if (g < 0) return KD_ERR_IO;
    int rc = kd_h5_write_attr_string(g, "format", KD_CKPT_FORMAT_NAME, err);
    if (!rc) rc = kd_h5_write_attr_int64(g, "format_version", KD_CHECKPOINT_FORMAT_VERSION, err);
    if (!rc) rc = kd_h5_write_attr_int64_array(g, "layer_sizes", sizes, c->n_layers + 1, err);
    if (!rc) rc = kd_h5_write_attr_string(g, "activation", "relu", err);
    if (!rc) rc = kd_h5_write_attr_double(g, "dropout", c->dropout, err);
    if (!rc) rc = kd_h5_write_attr_double(g, "input_dropout", c->input_dropout, err);
    if (!rc) rc = kd_h5_write_attr_string(g, "init", c->init == KD_INIT_GLOROT ? "glorot" : "he", err);
    rc = kd_ckpt_close_group(g, in_object(rc, err, path, "/model"), path, "/model", err);
    return rc ? rc : write_block(file, m, "/model", m->params, path, err);
}

static int write_optim(hid_t file, const kd_mlp *m, const kd_optim_state *o, const char *path,
                       kd_error *err)
{
    const char *names[KD_OPTIM_MAX_SLOTS] = {o->slot_names[0], o->slot_names[1]};
    hid_t g = create_group(file, "/optimizer", path, err);
    if (g < 0) return KD_ERR_IO;
    int rc = kd_h5_write_attr_string(g, "kind", o->kind, err);
    if (!rc) rc = kd_h5_write_attr_int64(g, "step", o->step, err);
    if (!rc) rc = kd_h5_write_attr_strings(g, "slots", names, o->n_slots, err);
    for (int h = 0; h < o->n_hyper && !rc; h++)
        rc = kd_h5_write_attr_double(g, o->hyper_names[h], o->hyper[h], err);
    rc = kd_ckpt_close_group(g, in_object(rc, err, path, "/optimizer"), path, "/optimizer", err);
    for (int s = 0; s < o->n_slots && !rc; s++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "/optimizer/%s", o->slot_names[s]);
        rc = write_block(file, m, prefix, o->slots[s], path, err);
    }
    return rc;
}

static int write_train(hid_t file, const kd_train_state *t, const char *path, kd_error *err)
{
    hid_t g = create_group(file, "/train", path, err);
    if (g < 0) return KD_ERR_IO;
    int rc = kd_h5_write_attr_int64(g, "epoch", t->epoch, err);
    if (!rc) rc = kd_h5_write_attr_int64(g, "step", t->step, err);
    if (!rc) rc = write_attr_u64(g, "seed", &t->seed, 1, err);
    if (!rc) rc = write_attr_u64(g, "rng_state", t->rng.s, 4, err);
    if (!rc) rc = kd_h5_write_attr_string(g, "config", t->config_text ? t->config_text : "", err);
    if (!rc && t->commit[0]) rc = kd_h5_write_attr_string(g, "commit", t->commit, err);
    if (!rc && t->records_teacher) rc = kd_h5_write_attr_string(g, "teacher", t->teacher, err);
    if (!rc && t->has_metrics) {
        const char *names[] = {"val_accuracy", "val_nll", "val_ece", "best_val_accuracy", "best_val_nll", "best_val_ece"};
        double values[] = {t->val_accuracy, t->val_nll, t->val_ece, t->best_val_accuracy, t->best_val_nll, t->best_val_ece};
        for (int i = 0; i < 6 && !rc; i++) rc = kd_h5_write_attr_double(g, names[i], values[i], err);
        if (!rc) rc = kd_h5_write_attr_int64(g, "best_epoch", t->best_epoch, err);
    }
    return kd_ckpt_close_group(g, in_object(rc, err, path, "/train"), path, "/train", err);
}

static int write_calib(hid_t file, const kd_calibration *c, const char *path, kd_error *err)
{
    hid_t g = create_group(file, "/calibration", path, err);
    if (g < 0) return KD_ERR_IO;
    int rc = kd_h5_write_attr_double(g, "temperature", c->temperature, err);
    if (!rc) rc = kd_h5_write_attr_string(g, "split", c->split, err);
    if (!rc) rc = kd_h5_write_attr_double(g, "nll_before", c->nll_before, err);
    if (!rc) rc = kd_h5_write_attr_double(g, "nll_after", c->nll_after, err);
    return kd_ckpt_close_group(g, in_object(rc, err, path, "/calibration"), path, "/calibration", err);
}

int kd_checkpoint_save(const char *path, const kd_mlp *model, const kd_optim_state *optim,
                       const kd_train_state *train, const kd_calibration *calib, kd_error *err)
{
    /* Everything refusable is refused before a file exists. */
    int rc = check_block(model, "/model", model->params, path, err);
    if (optim) assert_optim_valid(optim);
    for (int s = 0; optim && s < optim->n_slots && !rc; s++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "/optimizer/%s", optim->slot_names[s]);
        rc = check_block(model, prefix, optim->slots[s], path, err);
    }
    if (!rc) rc = check_calibration(path, calib, err);
    kd_h5_atomic af;
    if (!rc) rc = kd_h5_atomic_create(&af, path, err);
    if (rc) return rc;
    rc = write_model(af.file, model, path, err);
    if (!rc && optim) rc = write_optim(af.file, model, optim, path, err);
    if (!rc && train) rc = write_train(af.file, train, path, err);
    if (!rc && calib && calib->present) rc = write_calib(af.file, calib, path, err);
    if (rc) {
        kd_h5_atomic_abort(&af);
        return rc;
    }
    return kd_h5_atomic_commit(&af, err);
}

/* ---- replacing the calibration ---- */

typedef struct copy_walk {
    hid_t dst;
    const char *skip;
    char failed[64];
} copy_walk;

static herr_t copy_link(hid_t src, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    copy_walk *w = data;
    if (!strcmp(name, w->skip)) return 0;
    if (H5Ocopy(src, name, w->dst, name, H5P_DEFAULT, H5P_DEFAULT) >= 0) return 0;
    snprintf(w->failed, sizeof w->failed, "%s", name);
    return -1;
}

/* Copies every top-level object but one: a fresh file rather than an edited
 * copy, so the replaced group leaves no unreclaimed space behind. */
static int copy_all_but(hid_t src, hid_t dst, const char *skip, const char *path, kd_error *err)
{
    copy_walk w = {dst, skip, ""};
    hsize_t index = 0;
    if (H5Literate(src, H5_INDEX_NAME, H5_ITER_INC, &index, copy_link, &w) < 0) {
        char object[80];
        snprintf(object, sizeof object, "/%s", w.failed);
        return kd_ckpt_h5_error(err, KD_ERR_IO, path, object, "cannot copy into the new file");
    }
    return KD_OK;
}

int kd_checkpoint_write_calibration(const char *path, const kd_calibration *calib, kd_error *err)
{
    int rc = check_calibration(path, calib, err);
    if (rc) return rc;
    hid_t src = kd_h5_open_read(path, err);
    if (src < 0) return err ? err->code : KD_ERR_IO;
    kd_mlp_config config; /* refuses to rewrite a file that is not a checkpoint */
    rc = kd_ckpt_read_model_config(src, path, &config, err);
    kd_h5_atomic af;
    bool created = false;
    if (!rc) created = (rc = kd_h5_atomic_create(&af, path, err)) == KD_OK;
    if (!rc) rc = copy_all_but(src, af.file, "calibration", path, err);
    if (!rc && calib->present) rc = write_calib(af.file, calib, path, err);
    rc = kd_ckpt_close_file(src, rc, path, err);
    if (created && rc) kd_h5_atomic_abort(&af);
    if (created && !rc) rc = kd_h5_atomic_commit(&af, err);
    return rc;
}

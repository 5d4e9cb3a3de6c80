/* checkpoint_read.c - reading checkpoints (see checkpoint.h; the layout is in
 * docs/CHECKPOINT.md): kd_checkpoint_load, which checks every dataset's type,
 * shape and values before it changes anything the caller passed, and
 * kd_checkpoint_read_config. Every error names the file and the HDF5 object. */
#define _POSIX_C_SOURCE 200809L
#include "io/checkpoint.h"
#include "io/checkpoint_internal.h"

#include "io/h5util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_SIZE (PATH_MAX + 64)


/* kd_h5_read_attr_string truncates quietly, and a truncated kind, split or
 * config is wrong data: read one byte more and refuse what does not fit. */
static int read_string_fit(hid_t obj, const char *name, char *out, size_t size, const char *what,
                           kd_error *err)
{
    char *tmp = malloc(size + 1);
    if (!tmp) return kd_error_set(err, KD_ERR_IO, "%s: out of memory reading attribute %s", what, name);
    int rc = kd_h5_read_attr_string(obj, name, tmp, size + 1, what, err);
    size_t len = rc ? 0 : strlen(tmp);
    if (!rc && len >= size)
        rc = kd_error_set(err, KD_ERR_DATA,
                          "%s: attribute %s: expected at most %zu characters, found more", what, name,
                          size ? size - 1 : 0);
    if (!rc) memcpy(out, tmp, len + 1);
    free(tmp);
    return rc;
}

static int read_attr_u64(hid_t obj, const char *name, uint64_t *values, int count, const char *what,
                         kd_error *err)
{
    if (!kd_h5_attr_exists(obj, name))
        return kd_error_set(err, KD_ERR_DATA, "%s: expected attribute %s, found none", what, name);
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    hid_t space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    int rc = KD_OK;
    if (type < 0 || points < 0)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot open attribute %s", what, name);
    else if (H5Tget_class(type) != H5T_INTEGER || H5Tget_sign(type) != H5T_SGN_NONE)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected unsigned integers", what, name);
    else if (points != count)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected %d values, found %lld", what,
                          name, count, (long long)points);
    else if (H5Aread(attr, H5T_NATIVE_UINT64, values) < 0)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot read attribute %s", what, name);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    return rc;
}

static const char *format_dims(char *buf, size_t size, int rank, const hsize_t *dims)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %llu" : "%llu",
                                 (unsigned long long)dims[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

static int check_layout(hid_t type, hid_t space, const block_part *p, const char *path, kd_error *err)
{
    if (type < 0 || space < 0)
        return kd_ckpt_h5_error(err, KD_ERR_DATA, path, p->name, "cannot query type and shape");
    if (H5Tget_class(type) != H5T_FLOAT)
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected float32 values, found %s", path, p->name,
                            H5Tget_class(type) == H5T_INTEGER ? "integers" : "a non-numeric type");
    hsize_t dims[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    bool same = rank == p->rank;
    for (int i = 0; same && i < rank; i++) same = dims[i] == p->dims[i];
    if (!same) {
        char want[64], found[256];
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected shape %s, found %s", path, p->name,
                            format_dims(want, sizeof want, p->rank, p->dims),
                            format_dims(found, sizeof found, rank < 0 ? 0 : rank, dims));
    }
    return KD_OK;
}

static int read_part(hid_t file, const block_part *p, float *out, const char *path, kd_error *err)
{
    if (!kd_h5_link_exists(file, p->name))
        return kd_error_set(err, KD_ERR_DATA, "%s:%s: expected a dataset, found none", path, p->name);
    hid_t dset = H5Dopen2(file, p->name, H5P_DEFAULT);
    if (dset < 0) return kd_ckpt_h5_error(err, KD_ERR_DATA, path, p->name, "cannot open as a dataset");
    hid_t type = H5Dget_type(dset), space = H5Dget_space(dset);
    int rc = check_layout(type, space, p, path, err);
    if (!rc && H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        rc = kd_ckpt_h5_error(err, KD_ERR_DATA, path, p->name, "cannot read");
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (H5Dclose(dset) < 0 && !rc) rc = kd_ckpt_h5_error(err, KD_ERR_IO, path, p->name, "cannot close");
    return rc ? rc : kd_ckpt_check_finite(out, p->count, path, p->name, err);
}

static int read_block(hid_t file, const kd_mlp *m, const char *prefix, float *block, const char *path,
                      kd_error *err)
{
    int rc = KD_OK;
    for (int i = 0; i < kd_ckpt_n_parts(m) && rc == KD_OK; i++) {
        block_part p;
        kd_ckpt_get_part(m, prefix, i, &p);
        rc = read_part(file, &p, block + p.offset, path, err);
    }
    return rc;
}

/* Everything read from a file, kept apart until the whole load has succeeded. */
typedef struct loaded {
    float *params;                      /* (n_params) */
    float *slots[KD_OPTIM_MAX_SLOTS];   /* (n_params) each */
    kd_optim_state optim;
    kd_train_state train;
    char *config_text;                  /* (config_size) */
    kd_calibration calib;
} loaded;

static float *alloc_block(const kd_mlp *m, const char *path, kd_error *err)
{
    float *block = malloc(m->n_params * sizeof(float));
    if (!block) kd_error_set(err, KD_ERR_IO, "%s: out of memory for %zu parameters", path, m->n_params);
    return block;
}

static int load_model(hid_t file, const char *path, const kd_mlp *model, loaded *L, kd_error *err)
{
    kd_mlp_config c;
    int rc = kd_ckpt_read_model_config(file, path, &c, err);
    if (rc) return rc;
    bool same = c.n_layers == model->config.n_layers;
    for (int k = 0; same && k <= c.n_layers; k++) same = c.sizes[k] == model->config.sizes[k];
    if (!same) {
        char theirs[256], ours[256];
        return kd_error_set(err, KD_ERR_DATA, "%s: checkpoint has %s, model is %s", path,
                            kd_mlp_describe(&c, theirs, sizeof theirs),
                            kd_mlp_describe(&model->config, ours, sizeof ours));
    }
    if (!(L->params = alloc_block(model, path, err))) return KD_ERR_IO;
    return read_block(file, model, "/model", L->params, path, err);
}

static int take_slot_names(char *const *names, int n, kd_optim_state *o, const char *what,
                           kd_error *err)
{
    for (int s = 0; s < n; s++) {
        if (!names[s] || !names[s][0] || strlen(names[s]) >= sizeof o->slot_names[s] ||
            strchr(names[s], '/'))
            return kd_error_set(err, KD_ERR_DATA,
                                "%s: attribute slots: name %d is empty, too long or holds '/'", what, s);
        strcpy(o->slot_names[s], names[s]);
    }
    o->n_slots = n;
    return KD_OK;
}

/* The slot names are a 1-D array of variable-length strings, as h5py writes a list of str. */
static int read_slot_names(hid_t g, kd_optim_state *o, const char *what, kd_error *err)
{
    if (!kd_h5_attr_exists(g, "slots"))
        return kd_error_set(err, KD_ERR_DATA, "%s: expected attribute slots, found none", what);
    hid_t attr = H5Aopen(g, "slots", H5P_DEFAULT);
    hid_t type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    hid_t space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    char *names[KD_OPTIM_MAX_SLOTS] = {NULL, NULL};
    int rc = KD_OK;
    if (type < 0 || n < 0)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot open attribute slots", what);
    else if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) <= 0)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute slots: expected variable-length strings", what);
    else if (n > KD_OPTIM_MAX_SLOTS)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute slots: expected at most %d names, found %lld",
                          what, KD_OPTIM_MAX_SLOTS, (long long)n);
    else if (n > 0 && H5Aread(attr, type, names) < 0)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot read attribute slots", what);
    if (!rc) rc = take_slot_names(names, (int)n, o, what, err);
    for (int s = 0; s < KD_OPTIM_MAX_SLOTS; s++) H5free_memory(names[s]);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    return rc;
}

typedef struct hyper_walk {
    kd_optim_state *o;
    char rejected[64];
} hyper_walk;

static herr_t collect_hyper(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)loc;
    (void)info;
    hyper_walk *w = data;
    if (kd_ckpt_reserved_optim_attr(name)) return 0;
    if (w->o->n_hyper == KD_OPTIM_MAX_HYPER || strlen(name) >= sizeof w->o->hyper_names[0]) {
        snprintf(w->rejected, sizeof w->rejected, "%s", name);
        return 1; /* stops the walk */
    }
    strcpy(w->o->hyper_names[w->o->n_hyper++], name);
    return 0;
}

static int read_hypers(hid_t g, kd_optim_state *o, const char *what, kd_error *err)
{
    hyper_walk w = {o, ""};
    hsize_t index = 0;
    herr_t status = H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &index, collect_hyper, &w);
    if (status < 0) return kd_error_set(err, KD_ERR_DATA, "%s: cannot list the attributes", what);
    if (status > 0)
        return kd_error_set(err, KD_ERR_DATA,
                            "%s: attribute %s: expected at most %d hyper-parameters, names under %zu "
                            "characters", what, w.rejected, KD_OPTIM_MAX_HYPER, sizeof o->hyper_names[0]);
    int rc = KD_OK;
    for (int h = 0; h < o->n_hyper && !rc; h++)
        rc = kd_h5_read_attr_double(g, o->hyper_names[h], &o->hyper[h], what, err);
    return rc;
}

static int load_optim(hid_t file, const char *path, const kd_mlp *model, const kd_optim_state *want,
                      loaded *L, kd_error *err)
{
    char what[LABEL_SIZE];
    snprintf(what, sizeof what, "%s:/optimizer", path);
    hid_t g = kd_ckpt_open_group(file, "/optimizer", path, err);
    if (g < 0) return KD_ERR_DATA;
    kd_optim_state *o = &L->optim;
    int rc = read_string_fit(g, "kind", o->kind, sizeof o->kind, what, err);
    if (!rc && want->kind[0] && strncmp(want->kind, o->kind, sizeof o->kind))
        rc = kd_error_set(err, KD_ERR_DATA, "%s: checkpoint holds %s state, optimizer is %.16s", what,
                          o->kind, want->kind);
    if (!rc) rc = kd_h5_read_attr_int64(g, "step", &o->step, what, err);
    if (!rc && o->step < 0)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute step: expected a count >= 0, found %lld", what, (long long)o->step);
    if (!rc) rc = read_slot_names(g, o, what, err);
    if (!rc) rc = read_hypers(g, o, what, err);
    rc = kd_ckpt_close_group(g, rc, path, "/optimizer", err);
    for (int s = 0; s < o->n_slots && !rc; s++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "/optimizer/%s", o->slot_names[s]);
        if (!want->slots[s])
            return kd_error_set(err, KD_ERR_DATA,
                                "%s: checkpoint holds %d state arrays, slot %d has no buffer", what,
                                o->n_slots, s);
        if (!(L->slots[s] = alloc_block(model, path, err))) return KD_ERR_IO;
        rc = read_block(file, model, prefix, L->slots[s], path, err);
    }
    return rc;
}

/* The optional validation metrics: all seven or none. */
static int load_train_metrics(hid_t g, kd_train_state *t, const char *what, kd_error *err)
{
    const char *names[] = {"val_accuracy", "val_nll", "val_ece", "best_val_accuracy", "best_val_nll", "best_val_ece"};
    double *values[] = {&t->val_accuracy, &t->val_nll, &t->val_ece, &t->best_val_accuracy, &t->best_val_nll, &t->best_val_ece};
    t->has_metrics = false;
    if (!kd_h5_attr_exists(g, "val_accuracy")) return KD_OK;
    int rc = KD_OK;
    for (int i = 0; i < 6 && !rc; i++) rc = kd_h5_read_attr_double(g, names[i], values[i], what, err);
    if (!rc) rc = kd_h5_read_attr_int64(g, "best_epoch", &t->best_epoch, what, err);
    t->has_metrics = rc == KD_OK;
    return rc;
}

static int load_train(hid_t file, const char *path, bool want_train, bool want_config,
                      size_t config_size, loaded *L, kd_error *err)
{
    char what[LABEL_SIZE];
    snprintf(what, sizeof what, "%s:/train", path);
    hid_t g = kd_ckpt_open_group(file, "/train", path, err);
    if (g < 0) return KD_ERR_DATA;
    kd_train_state *t = &L->train;
    int rc = KD_OK;
    if (want_train) {
        rc = kd_h5_read_attr_int64(g, "epoch", &t->epoch, what, err);
        if (!rc) rc = kd_h5_read_attr_int64(g, "step", &t->step, what, err);
        if (!rc && (t->epoch < 0 || t->step < 0))
            rc = kd_error_set(err, KD_ERR_DATA, "%s: attributes epoch and step: expected counts >= 0, found %lld and %lld",
                              what, (long long)t->epoch, (long long)t->step);
        if (!rc) rc = read_attr_u64(g, "seed", &t->seed, 1, what, err);
        if (!rc) rc = read_attr_u64(g, "rng_state", t->rng.s, 4, what, err);
        if (!rc && kd_h5_attr_exists(g, "commit"))
            rc = read_string_fit(g, "commit", t->commit, sizeof t->commit, what, err);
        t->records_teacher = !rc && kd_h5_attr_exists(g, "teacher");
        if (t->records_teacher) rc = read_string_fit(g, "teacher", t->teacher, sizeof t->teacher, what, err);
        if (!rc) rc = load_train_metrics(g, t, what, err);
    }
    if (!rc && want_config && !(L->config_text = malloc(config_size ? config_size : 1)))
        rc = kd_error_set(err, KD_ERR_IO, "%s: out of memory for the config text", what);
    if (!rc && want_config) rc = read_string_fit(g, "config", L->config_text, config_size, what, err);
    return kd_ckpt_close_group(g, rc, path, "/train", err);
}

static int load_calib(hid_t file, const char *path, kd_calibration *c, kd_error *err)
{
    c->present = false;
    if (!kd_h5_link_exists(file, "/calibration")) return KD_OK;
    char what[LABEL_SIZE];
    snprintf(what, sizeof what, "%s:/calibration", path);
    hid_t g = kd_ckpt_open_group(file, "/calibration", path, err);
    if (g < 0) return KD_ERR_DATA;
    int rc = kd_h5_read_attr_double(g, "temperature", &c->temperature, what, err);
    if (!rc) rc = read_string_fit(g, "split", c->split, sizeof c->split, what, err);
    if (!rc) rc = kd_h5_read_attr_double(g, "nll_before", &c->nll_before, what, err);
    if (!rc) rc = kd_h5_read_attr_double(g, "nll_after", &c->nll_after, what, err);
    if (!rc) rc = kd_ckpt_check_calibration(c, path, err); /* values from a file are data, not invariants */
    c->present = rc == KD_OK;
    return kd_ckpt_close_group(g, rc, path, "/calibration", err);
}

static void apply_loaded(const loaded *L, kd_mlp *model, kd_optim_state *optim, kd_train_state *train,
                         char *config_buf, kd_calibration *calib)
{
    size_t bytes = model->n_params * sizeof(float);
    memcpy(model->params, L->params, bytes);
    if (optim) {
        float *buffers[KD_OPTIM_MAX_SLOTS] = {optim->slots[0], optim->slots[1]};
        *optim = L->optim;
        for (int s = 0; s < KD_OPTIM_MAX_SLOTS; s++) {
            optim->slots[s] = buffers[s];
            if (s < optim->n_slots) memcpy(buffers[s], L->slots[s], bytes);
        }
    }
    if (config_buf) strcpy(config_buf, L->config_text);
    if (train) {
        *train = L->train;
        train->config_text = config_buf;
    }
    if (calib) *calib = L->calib;
}

int kd_checkpoint_load(const char *path, kd_mlp *model, kd_optim_state *optim, kd_train_state *train,
                       char *config_buf, size_t config_size, kd_calibration *calib, kd_error *err)
{
    hid_t file = kd_h5_open_read(path, err);
    if (file < 0) return err ? err->code : KD_ERR_IO;
    loaded L;
    memset(&L, 0, sizeof L);
    int rc = load_model(file, path, model, &L, err);
    if (!rc && optim) rc = load_optim(file, path, model, optim, &L, err);
    if (!rc && (train || config_buf))
        rc = load_train(file, path, train != NULL, config_buf != NULL, config_size, &L, err);
    if (!rc && calib) rc = load_calib(file, path, &L.calib, err);
    rc = kd_ckpt_close_file(file, rc, path, err);
    if (!rc) apply_loaded(&L, model, optim, train, config_buf, calib);
    free(L.params);
    for (int s = 0; s < KD_OPTIM_MAX_SLOTS; s++) free(L.slots[s]);
    free(L.config_text);
    return rc;
}

int kd_checkpoint_read_config(const char *path, kd_mlp_config *config, kd_error *err)
{
    hid_t file = kd_h5_open_read(path, err);
    if (file < 0) return err ? err->code : KD_ERR_IO;
    return kd_ckpt_close_file(file, kd_ckpt_read_model_config(file, path, config, err), path, err);
}

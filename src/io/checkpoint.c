/* checkpoint.c - see checkpoint.h; the layout is in docs/CHECKPOINT.md. Every
 * error names the file and the HDF5 object: "FILE:/model/layer2/W: ...". */
#define _POSIX_C_SOURCE 200809L
#include "io/checkpoint.h"

#include "io/h5util.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_NAME "kdtrain-checkpoint"
#define LABEL_SIZE (PATH_MAX + 64)

/* One dataset of a parameter-shaped block: layer k's W (in, out) or b (out). */
typedef struct block_part {
    char name[96]; /* "/model/layer2/W", "/optimizer/m/layer1/b" */
    size_t offset, count;
    int rank;
    hsize_t dims[2];
} block_part;

static int n_parts(const kd_mlp *m) { return 2 * m->config.n_layers; }

static void get_part(const kd_mlp *m, const char *prefix, int i, block_part *p)
{
    int k = i / 2;
    bool bias = i % 2 == 1;
    const kd_tensor *t = bias ? &m->bias[k] : &m->weight[k];
    snprintf(p->name, sizeof p->name, "%s/layer%d/%s", prefix, k + 1, bias ? "b" : "W");
    p->offset = (size_t)(t->data - m->params);
    p->count = kd_tensor_numel(t);
    p->rank = bias ? 1 : 2;
    p->dims[0] = (hsize_t)(bias ? t->cols : t->rows);
    p->dims[1] = (hsize_t)t->cols;
}

static int h5_error(kd_error *err, int code, const char *path, const char *object, const char *action)
{
    char msg[256];
    return kd_error_set(err, code, "%s:%s: %s (%s)", path, object, action,
                        kd_h5_last_message(msg, sizeof msg));
}

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

static int check_finite(const float *v, size_t n, const char *path, const char *object, kd_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return kd_error_set(err, KD_ERR_DATA,
                                "%s:%s: element %zu is %s; a checkpoint holds finite values only",
                                path, object, i, isnan(v[i]) ? "NaN" : "Inf");
    return KD_OK;
}

static int check_block(const kd_mlp *m, const char *prefix, const float *block, const char *path,
                       kd_error *err)
{
    int rc = KD_OK;
    for (int i = 0; i < n_parts(m) && rc == KD_OK; i++) {
        block_part p;
        get_part(m, prefix, i, &p);
        rc = check_finite(block + p.offset, p.count, path, p.name, err);
    }
    return rc;
}

static bool valid_name(const char *name, size_t size)
{
    return memchr(name, '\0', size) && name[0] != '\0' && !strchr(name, '/');
}

static bool reserved_optim_attr(const char *name)
{
    return !strcmp(name, "kind") || !strcmp(name, "step") || !strcmp(name, "slots");
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
                      !reserved_optim_attr(o->hyper_names[h]),
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
    if (!(isfinite(c->temperature) && c->temperature > 0))
        return kd_error_set(err, KD_ERR_DATA,
                            "%s:/calibration: temperature is %g, expected a finite value > 0", path,
                            c->temperature);
    return KD_OK;
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
    for (int i = 0; i < n_parts(m) && rc == KD_OK; i++) {
        block_part p;
        get_part(m, prefix, i, &p);
        rc = kd_h5_write_dataset(file, p.name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, p.rank, p.dims,
                                 block + p.offset, NULL, -1, false, path, err);
    }
    return rc;
}

static hid_t create_group(hid_t file, const char *name, const char *path, kd_error *err)
{
    hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) h5_error(err, KD_ERR_IO, path, name, "cannot create the group");
    return g;
}

/* Closes a group opened by the caller; rc is the caller's status so far. */
static int close_group(hid_t g, int rc, const char *path, const char *name, kd_error *err)
{
    if (H5Gclose(g) < 0 && rc == KD_OK) return h5_error(err, KD_ERR_IO, path, name, "cannot close");
    return rc;
}

static int write_model(hid_t file, const kd_mlp *m, const char *path, kd_error *err)
{
    const kd_mlp_config *c = &m->config;
    int64_t sizes[KD_MLP_MAX_LAYERS + 1];
    for (int k = 0; k <= c->n_layers; k++) sizes[k] = c->sizes[k];
    hid_t g = create_group(file, "/model", path, err);
    if (g < 0) return KD_ERR_IO;
    int rc = kd_h5_write_attr_string(g, "format", FORMAT_NAME, err);
    if (!rc) rc = kd_h5_write_attr_int64(g, "format_version", KD_CHECKPOINT_FORMAT_VERSION, err);
    if (!rc) rc = kd_h5_write_attr_int64_array(g, "layer_sizes", sizes, c->n_layers + 1, err);
    if (!rc) rc = kd_h5_write_attr_string(g, "activation", "relu", err);
    if (!rc) rc = kd_h5_write_attr_double(g, "dropout", c->dropout, err);
    if (!rc) rc = kd_h5_write_attr_double(g, "input_dropout", c->input_dropout, err);
    if (!rc) rc = kd_h5_write_attr_string(g, "init", c->init == KD_INIT_GLOROT ? "glorot" : "he", err);
    rc = close_group(g, in_object(rc, err, path, "/model"), path, "/model", err);
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
    rc = close_group(g, in_object(rc, err, path, "/optimizer"), path, "/optimizer", err);
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
    return close_group(g, in_object(rc, err, path, "/train"), path, "/train", err);
}

static int write_calib(hid_t file, const kd_calibration *c, const char *path, kd_error *err)
{
    hid_t g = create_group(file, "/calibration", path, err);
    if (g < 0) return KD_ERR_IO;
    int rc = kd_h5_write_attr_double(g, "temperature", c->temperature, err);
    if (!rc) rc = kd_h5_write_attr_string(g, "split", c->split, err);
    if (!rc) rc = kd_h5_write_attr_double(g, "nll_before", c->nll_before, err);
    if (!rc) rc = kd_h5_write_attr_double(g, "nll_after", c->nll_after, err);
    return close_group(g, in_object(rc, err, path, "/calibration"), path, "/calibration", err);
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

/* ---- reading ---- */

static hid_t open_group(hid_t file, const char *name, const char *path, kd_error *err)
{
    if (!kd_h5_link_exists(file, name)) {
        kd_error_set(err, KD_ERR_DATA, "%s: expected group %s, found none", path, name);
        return H5I_INVALID_HID;
    }
    hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
    if (g < 0) h5_error(err, KD_ERR_DATA, path, name, "cannot open as a group");
    return g;
}

static int close_file(hid_t file, int rc, const char *path, kd_error *err)
{
    if (H5Fclose(file) < 0 && rc == KD_OK) return h5_error(err, KD_ERR_IO, path, "/", "cannot close");
    return rc;
}

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
        return h5_error(err, KD_ERR_DATA, path, p->name, "cannot query type and shape");
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
    if (dset < 0) return h5_error(err, KD_ERR_DATA, path, p->name, "cannot open as a dataset");
    hid_t type = H5Dget_type(dset), space = H5Dget_space(dset);
    int rc = check_layout(type, space, p, path, err);
    if (!rc && H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        rc = h5_error(err, KD_ERR_DATA, path, p->name, "cannot read");
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (H5Dclose(dset) < 0 && !rc) rc = h5_error(err, KD_ERR_IO, path, p->name, "cannot close");
    return rc ? rc : check_finite(out, p->count, path, p->name, err);
}

static int read_block(hid_t file, const kd_mlp *m, const char *prefix, float *block, const char *path,
                      kd_error *err)
{
    int rc = KD_OK;
    for (int i = 0; i < n_parts(m) && rc == KD_OK; i++) {
        block_part p;
        get_part(m, prefix, i, &p);
        rc = read_part(file, &p, block + p.offset, path, err);
    }
    return rc;
}

static int parse_sizes(const int64_t *sizes, int count, kd_mlp_config *c, const char *what,
                       kd_error *err)
{
    if (count < 2)
        return kd_error_set(err, KD_ERR_DATA,
                            "%s: attribute layer_sizes: expected at least 2 sizes, found %d", what, count);
    for (int k = 0; k < count; k++) {
        if (sizes[k] < 1 || sizes[k] > INT_MAX)
            return kd_error_set(err, KD_ERR_DATA,
                                "%s: attribute layer_sizes: size %d is %lld, expected >= 1", what, k,
                                (long long)sizes[k]);
        c->sizes[k] = (int)sizes[k];
    }
    c->n_layers = count - 1;
    return KD_OK;
}

static int expect_string(hid_t g, const char *name, const char *expected, char *found, size_t size,
                         const char *what, kd_error *err)
{
    int rc = kd_h5_read_attr_string(g, name, found, size, what, err);
    if (!rc && strcmp(found, expected))
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute %s: expected \"%s\", found \"%s\"", what, name,
                          expected, found);
    return rc;
}

static int read_model_config(hid_t file, const char *path, kd_mlp_config *out, kd_error *err)
{
    char what[LABEL_SIZE], text[64];
    snprintf(what, sizeof what, "%s:/model", path);
    hid_t g = open_group(file, "/model", path, err);
    if (g < 0) return KD_ERR_DATA;
    kd_mlp_config c;
    memset(&c, 0, sizeof c);
    int64_t version = 0, sizes[KD_MLP_MAX_LAYERS + 1];
    int count = 0;
    double dropout = 0, input_dropout = 0;
    int rc = expect_string(g, "format", FORMAT_NAME, text, sizeof text, what, err);
    if (!rc) rc = kd_h5_read_attr_int64(g, "format_version", &version, what, err);
    if (!rc && version != KD_CHECKPOINT_FORMAT_VERSION)
        rc = kd_error_set(err, KD_ERR_DATA, "%s: format_version is %lld, this kdtrain reads version %d",
                          what, (long long)version, KD_CHECKPOINT_FORMAT_VERSION);
    if (!rc)
        rc = kd_h5_read_attr_int64_array(g, "layer_sizes", sizes, KD_MLP_MAX_LAYERS + 1, &count, what,
                                         err);
    if (!rc) rc = parse_sizes(sizes, count, &c, what, err);
    if (!rc) rc = expect_string(g, "activation", "relu", text, sizeof text, what, err);
    if (!rc) rc = kd_h5_read_attr_double(g, "dropout", &dropout, what, err);
    if (!rc) rc = kd_h5_read_attr_double(g, "input_dropout", &input_dropout, what, err);
    if (!rc) rc = kd_h5_read_attr_string(g, "init", text, sizeof text, what, err);
    if (!rc && strcmp(text, "he") && strcmp(text, "glorot"))
        rc = kd_error_set(err, KD_ERR_DATA, "%s: attribute init: expected \"he\" or \"glorot\", found \"%s\"",
                          what, text);
    rc = close_group(g, rc, path, "/model", err);
    if (rc) return rc;
    c.dropout = (float)dropout;
    c.input_dropout = (float)input_dropout;
    c.init = strcmp(text, "glorot") ? KD_INIT_HE : KD_INIT_GLOROT;
    *out = c;
    return KD_OK;
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
    int rc = read_model_config(file, path, &c, err);
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
    if (reserved_optim_attr(name)) return 0;
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
    hid_t g = open_group(file, "/optimizer", path, err);
    if (g < 0) return KD_ERR_DATA;
    kd_optim_state *o = &L->optim;
    int rc = read_string_fit(g, "kind", o->kind, sizeof o->kind, what, err);
    if (!rc && want->kind[0] && strncmp(want->kind, o->kind, sizeof o->kind))
        rc = kd_error_set(err, KD_ERR_DATA, "%s: checkpoint holds %s state, optimizer is %.16s", what,
                          o->kind, want->kind);
    if (!rc) rc = kd_h5_read_attr_int64(g, "step", &o->step, what, err);
    if (!rc) rc = read_slot_names(g, o, what, err);
    if (!rc) rc = read_hypers(g, o, what, err);
    rc = close_group(g, rc, path, "/optimizer", err);
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

static int load_train(hid_t file, const char *path, bool want_train, bool want_config,
                      size_t config_size, loaded *L, kd_error *err)
{
    char what[LABEL_SIZE];
    snprintf(what, sizeof what, "%s:/train", path);
    hid_t g = open_group(file, "/train", path, err);
    if (g < 0) return KD_ERR_DATA;
    kd_train_state *t = &L->train;
    int rc = KD_OK;
    if (want_train) {
        rc = kd_h5_read_attr_int64(g, "epoch", &t->epoch, what, err);
        if (!rc) rc = kd_h5_read_attr_int64(g, "step", &t->step, what, err);
        if (!rc) rc = read_attr_u64(g, "seed", &t->seed, 1, what, err);
        if (!rc) rc = read_attr_u64(g, "rng_state", t->rng.s, 4, what, err);
    }
    if (!rc && want_config && !(L->config_text = malloc(config_size ? config_size : 1)))
        rc = kd_error_set(err, KD_ERR_IO, "%s: out of memory for the config text", what);
    if (!rc && want_config) rc = read_string_fit(g, "config", L->config_text, config_size, what, err);
    return close_group(g, rc, path, "/train", err);
}

static int load_calib(hid_t file, const char *path, kd_calibration *c, kd_error *err)
{
    c->present = false;
    if (!kd_h5_link_exists(file, "/calibration")) return KD_OK;
    char what[LABEL_SIZE];
    snprintf(what, sizeof what, "%s:/calibration", path);
    hid_t g = open_group(file, "/calibration", path, err);
    if (g < 0) return KD_ERR_DATA;
    int rc = kd_h5_read_attr_double(g, "temperature", &c->temperature, what, err);
    if (!rc) rc = read_string_fit(g, "split", c->split, sizeof c->split, what, err);
    if (!rc) rc = kd_h5_read_attr_double(g, "nll_before", &c->nll_before, what, err);
    if (!rc) rc = kd_h5_read_attr_double(g, "nll_after", &c->nll_after, what, err);
    c->present = rc == KD_OK;
    return close_group(g, rc, path, "/calibration", err);
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
    rc = close_file(file, rc, path, err);
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
    return close_file(file, read_model_config(file, path, config, err), path, err);
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
        return h5_error(err, KD_ERR_IO, path, object, "cannot copy into the new file");
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
    rc = read_model_config(src, path, &config, err);
    kd_h5_atomic af;
    bool created = false;
    if (!rc) created = (rc = kd_h5_atomic_create(&af, path, err)) == KD_OK;
    if (!rc) rc = copy_all_but(src, af.file, "calibration", path, err);
    if (!rc && calib->present) rc = write_calib(af.file, calib, path, err);
    rc = close_file(src, rc, path, err);
    if (created && rc) kd_h5_atomic_abort(&af);
    if (created && !rc) rc = kd_h5_atomic_commit(&af, err);
    return rc;
}

/* config.h - the run configuration: INI files with [data], [model], [train],
 * [distill] and [run] sections, `--set section.key=value` overrides, and the
 * resolved text (every key, defaults included) that a run folder and its
 * checkpoints keep. Every key is declared once in config.c's table with its type,
 * default and bounds; an unknown section or key is an error that suggests the
 * nearest valid one, and a bad value names section.key and what was expected. */
#ifndef KD_CONFIG_H
#define KD_CONFIG_H

#include "core/error.h"
#include "core/ops.h"
#include "data/loader.h"
#include "nn/mlp.h"
#include "nn/optim.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_CONFIG_STR 512
/* The longest resolved config text a run writes, and a checkpoint's reader accepts. */
#define KD_CONFIG_TEXT_MAX 16384

/* Which checkpoints a run keeps besides model.h5 (the last epoch). */
typedef enum kd_checkpoint_policy {
    KD_CHECKPOINTS_LAST_BEST = 0, /* best.h5: the best validation accuracy so far */
    KD_CHECKPOINTS_EVERY = 1      /* best.h5 and epoch-NNN.h5 after every epoch */
} kd_checkpoint_policy;

/* train.precision: the products of a training step. */
typedef enum kd_precision {
    KD_PRECISION_FP32 = 0, /* float32 throughout */
    KD_PRECISION_BF16 = 1, /* bf16 products with float32 accumulation and master weights */
    KD_PRECISION_AUTO = 2  /* bf16 where oneDNN has a native bf16 kernel, else fp32 */
} kd_precision;

typedef struct kd_config {
    struct {
        char path[KD_CONFIG_STR];
        char train_x[256], train_y[256]; /* dataset paths inside the file */
        char val_x[256], val_y[256];
        char test_x[256], test_y[256];
        int64_t val_from_train;
        bool streaming;
        int64_t buffer_rows;
        int64_t labelled;      /* 0: every training row has its label; N: only the first N */
    } data;
    struct {
        int n_layers;
        int sizes[KD_MLP_MAX_LAYERS + 1];
        double dropout, input_dropout;
        kd_init init;          /* he | glorot */
    } model;
    struct {
        int64_t epochs, batch_size, threads, jitter;
        int64_t shards;          /* the batch's fixed row ranges, summed in order (1: the whole batch) */
        uint64_t seed;
        kd_optim_kind optimizer; /* adamw | sgd */
        kd_precision precision;  /* fp32 | bf16 | auto */
        double lr, momentum, beta1, beta2, eps, weight_decay, clip_norm, min_lr, gamma;
        bool nesterov;
        kd_schedule schedule;  /* constant | step | cosine */
        int64_t warmup_epochs, step_epochs;
        kd_last_batch last_batch;         /* keep | drop */
        kd_checkpoint_policy checkpoints; /* last_best | every */
        int64_t temperature_every; /* > 0: fit T on validation every N epochs (and the last) */
        int64_t train_eval_rows;   /* training rows evaluated for that diagnostic */
    } train;
    struct {
        double temperature, alpha;
        kd_distill_loss_kind loss;                       /* kl | reverse_kl | js | dkd | lsk */
        double dkd_target_weight, dkd_nontarget_weight; /* DKD's a (TCKD) and b (NCKD) */
        char teacher[KD_CONFIG_STR];         /* a run folder or checkpoint (or a logits file) */
        char teacher_logits[KD_CONFIG_STR];  /* a logits file, FILE[:/dataset] or FILE.npy */
        char teachers[KD_CONFIG_STR];        /* a comma list of either: an ensemble */
        bool calibrate_teachers;             /* divide each teacher's logits by its own T first */
    } distill;
    struct {
        char dir[KD_CONFIG_STR];
        char name[KD_CONFIG_STR];
    } run;
} kd_config;

/* Every key at its default (required keys empty). */
void kd_config_defaults(kd_config *config);
/* Reads an INI file over the defaults. */
int kd_config_load_file(kd_config *config, const char *path, kd_error *err);
/* Parses INI text (source names it in errors). */
int kd_config_load_text(kd_config *config, const char *text, const char *source, kd_error *err);
/* Applies "section.key=value". */
int kd_config_set(kd_config *config, const char *assignment, kd_error *err);
/* Checks required keys and the relations between keys. */
int kd_config_validate(const kd_config *config, kd_error *err);
/* The resolved configuration as INI text, every key included; returns the length
 * (as snprintf: may exceed size, then the text is cut). */
size_t kd_config_format(const kd_config *config, char *buf, size_t size);
/* The resolved text of a config text (defaults < text): texts written before a key
 * existed compare equal to new ones that leave it at its default. */
int kd_config_normalize(const char *text, char *out, size_t size, kd_error *err);
/* Whether a stored config text (a run's config.ini, a checkpoint's config) resolves
 * to the same configuration as config. */
bool kd_config_matches(const char *stored_text, const kd_config *config);
/* The value of a numeric key ("distill.temperature") as a double; false when the
 * key is unknown or not a number. */
bool kd_config_get_number(const kd_config *config, const char *name, double *value);
/* The name of a choice key's value ("adamw" for train.optimizer = KD_OPTIM_ADAMW). */
const char *kd_config_choice_name(const char *key, int value);
/* The optimiser part, with the epoch counts of schedules turned into steps. */
void kd_config_optim(const kd_config *config, int64_t batches_per_epoch, kd_optim_config *optim);
/* The training loader's options (shuffled; data.labelled is the caller's to apply). */
void kd_config_loader(const kd_config *config, kd_loader_options *loader);
/* The distillation loss's settings, as kd_op_distill_loss takes them. */
void kd_config_distill_loss(const kd_config *config, kd_distill_loss *loss);
/* The model part as an MLP config. */
int kd_config_model(const kd_config *config, kd_mlp_config *mlp, kd_error *err);

#ifdef __cplusplus
}
#endif
#endif

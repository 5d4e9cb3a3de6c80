/* trainer.c - see trainer.h. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/trainer.h"

#include "calib/temperature.h"
#include "core/arena.h"
#include "core/comm.h"
#include "core/parallel.h"
#include "core/threads.h"
#include "core/timer.h"
#include "data/jitter.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "io/fileutil.h"
#include "io/h5util.h"
#include "io/provenance.h"
#include "nn/optim.h"
#include "workflows/evaluate.h"
#include "workflows/job_check.h"
#include "workflows/model.h"
#include "workflows/precision.h"
#include "workflows/run_data.h"
#include "workflows/run_dir.h"
#include "workflows/teacher.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


typedef struct trainer {
    const kd_train_request *request;
    const kd_config *cfg;
    kd_dataset ds;
    kd_mlp model;
    kd_optim optim;
    kd_rng rng;               /* dropout and jitter */
    kd_tape tape;
    kd_precision_choice precision;
    kd_mm_cache *products;    /* bf16 training: oneDNN's primitives; NULL in fp32 */
    kd_loader loader;
    kd_run_dir run;
    bool distill;             /* request->distill, or a teacher given */
    kd_teacher_logits teacher; /* distillation only: .logits NULL otherwise */
    char recorded_teacher[sizeof(((kd_train_state *)0)->teacher)]; /* a resumed checkpoint's */
    float *batch_teacher;     /* (batch_size, classes) */
    bool created_run;         /* this call made the run folder (not a resume) */
    bool best_from_checkpoint; /* a resume took the best epoch from the checkpoint's /train */
    int32_t *batch_labels;    /* (batch_size) with -1 for unlabelled rows */
    float *jitter_scratch;    /* (dim) */
    float *shard_sum;         /* (n_params) train.shards > 1: the shards' gradients summed in order */
    /* a parallel job (request->comm of more than one rank): */
    kd_comm *comm;            /* NULL: one process */
    bool writer;              /* rank 0: the run folder, checkpoints and reports; the others write nothing */
    int shard_first, shard_end; /* this rank's shards [first, end) of train.shards */
    float *shard_grads;       /* (end - first, n_params): each of its shards' gradient, to be summed in order */
    double *step_totals;      /* (batches, end - first, 3): each shard's loss sum, correct rows, rows */
    double *all_totals;       /* (ranks, batches, end - first, 3): every rank's, gathered at the epoch's end */
    double exchange_seconds;  /* this epoch's time in kd_comm_sum_shards (waiting for the slowest rank included) */
    float *val_logits;        /* (val rows, classes), for the temperature diagnostic */
    int classes;
    int64_t start_epoch, best_epoch;
    double best_val_acc, best_val_nll, best_val_ece;
    char config_text[KD_CONFIG_TEXT_MAX];
} trainer;

/* ---- set-up ------------------------------------------------------------------------------ */

static int open_data(trainer *t, kd_error *err)
{
    const kd_config *c = t->cfg;
    int rc = kd_run_data_open(c, c->data.path, false, &t->ds, err);
    if (rc) return rc;
    if (t->ds.notes[0]) kd_run_log(&t->run, "data: %s", t->ds.notes);
    if (!t->ds.split[KD_SPLIT_VAL].present)
        return kd_error_set(err, KD_ERR_CONFIG, "data.val_from_train: %s has no validation split; set it > 0",
                            c->data.path);
    if (c->model.sizes[0] != t->ds.dim)
        return kd_error_set(err, KD_ERR_CONFIG, "model.layers: expected the first size to be %d (the features of %s), found %d",
                            t->ds.dim, c->data.path, c->model.sizes[0]);
    t->classes = c->model.sizes[c->model.n_layers];
    if (t->classes != t->ds.num_classes)
        return kd_error_set(err, KD_ERR_CONFIG, "model.layers: expected the last size to be %d (the classes of %s), found %d",
                            t->ds.num_classes, c->data.path, t->classes);
    if (c->data.labelled > t->ds.split[KD_SPLIT_TRAIN].rows)
        return kd_error_set(err, KD_ERR_CONFIG, "data.labelled: expected at most %lld (the training rows), found %lld",
                            (long long)t->ds.split[KD_SPLIT_TRAIN].rows, (long long)c->data.labelled);
    if (c->train.jitter > 0 && !t->ds.image_shape[0])
        return kd_error_set(err, KD_ERR_CONFIG, "train.jitter: needs image data, but %s has no image_shape", c->data.path);
    if (c->train.jitter > 0 && t->distill)
        return kd_error_set(err, KD_ERR_CONFIG,
                            "train.jitter: must be 0 for distillation (teacher logits are cached for unshifted images)");
    if (!c->data.streaming) {
        kd_run_log(&t->run, "data: loading %s into memory", c->data.path);
        if ((rc = kd_dataset_load(&t->ds, KD_SPLIT_TRAIN, err))) return rc;
        if ((rc = kd_dataset_load(&t->ds, KD_SPLIT_VAL, err))) return rc;
    }
    kd_loader_options lo;
    kd_config_loader(c, &lo);
    /* Plain training with scarce labels trains on the labelled rows alone. */
    if (!t->distill) lo.limit_rows = c->data.labelled;
    if (kd_comm_parallel(t->comm)) { /* this rank's shards' rows of each batch, no others */
        lo.parts = (int)c->train.shards;
        lo.part_first = t->shard_first;
        lo.part_end = t->shard_end;
    }
    return kd_loader_open(&t->loader, &t->ds, KD_SPLIT_TRAIN, &lo, err);
}

/* row: the epoch just finished, whose validation metrics the checkpoint records. */
static int save_checkpoint(trainer *t, const char *name, const kd_epoch_row *row, kd_error *err)
{
    char path[KD_PATH_MAX];
    kd_optim_state os;
    kd_optim_export_state(&t->optim, &os);
    kd_train_state ts = {.epoch = row->epoch, .step = t->optim.step, .rng = t->rng, .seed = t->cfg->train.seed,
                         .config_text = t->config_text};
    kd_provenance_commit(ts.commit, sizeof ts.commit);
    ts.records_teacher = true;
    snprintf(ts.teacher, sizeof ts.teacher, "%s", t->distill ? t->teacher.identity : "");
    ts.has_metrics = true;
    ts.val_accuracy = row->val_acc;
    ts.val_nll = row->val_nll;
    ts.val_ece = row->val_ece;
    ts.best_epoch = t->best_epoch;
    ts.best_val_accuracy = t->best_val_acc;
    ts.best_val_nll = t->best_val_nll;
    ts.best_val_ece = t->best_val_ece;
    return kd_checkpoint_save(kd_run_dir_file(&t->run, name, path, sizeof path), &t->model, &os, &ts, NULL, err);
}

/* The tape's memory for a step (and an evaluation batch), reserved before anything
 * is written: a model too large for the machine is an error here, not an abort
 * inside the first step. Measured (arena high-water mark): 5 to 8 tensors of
 * (rows, width) a hidden layer; reserved: 9, and 1 MiB. */
static int reserve_step_memory(trainer *t, kd_error *err)
{
    const kd_mlp_config *mc = &t->model.config;
    int64_t rows = t->cfg->train.batch_size, most = t->ds.split[KD_SPLIT_TRAIN].rows;
    if (t->ds.split[KD_SPLIT_VAL].rows > most) most = t->ds.split[KD_SPLIT_VAL].rows;
    if (rows > most) rows = most;
    double widths = 0;
    for (int l = 1; l <= mc->n_layers; l++) widths += mc->sizes[l];
    double bytes = 9.0 * (double)rows * widths * sizeof(float) + (1 << 20);
    char arch[256];
    if (bytes > (double)SIZE_MAX / 2 || !kd_arena_reserve(&t->tape.arena, (size_t)bytes))
        return kd_error_set(err, KD_ERR_IO,
                            "out of memory: a step of the %s model on batches of %lld rows needs about %.1f GB; "
                            "lower train.batch_size or the widths in model.layers",
                            kd_mlp_describe(mc, arch, sizeof arch), (long long)rows, bytes / 1e9);
    return KD_OK;
}

static int resume_state(trainer *t, kd_error *err)
{
    char path[KD_PATH_MAX], text[KD_CONFIG_TEXT_MAX];
    kd_run_dir_file(&t->run, "model.h5", path, sizeof path);
    kd_optim_state os;
    kd_optim_export_state(&t->optim, &os);
    kd_train_state ts;
    int rc = kd_checkpoint_load(path, &t->model, &os, &ts, text, sizeof text, NULL, err);
    if (rc) return rc;
    if (!kd_config_matches(text, t->cfg))
        return kd_error_set(err, KD_ERR_CONFIG, "%s: its config differs from %s/config.ini; resume needs the run's own config",
                            path, t->run.path);
    /* train --resume of a distilled run would go on without its teacher, silently. A
     * teacher named in config.ini (files, ensembles) is found by distill --resume alone;
     * a file's recorded identity ("SPEC [fnv1a64 HEX]") is no path to give --teacher. */
    const char *named = t->cfg->distill.teacher;
    bool in_config = t->cfg->distill.teacher_logits[0] || t->cfg->distill.teachers[0] ||
                     (named[0] && kd_teacher_is_logits(named));
    if (ts.records_teacher && ts.teacher[0] && !t->distill && in_config)
        return kd_error_set(err, KD_ERR_CONFIG, "%s was distilled from %s: resume it with kdtrain distill --resume %s",
                            t->run.path, ts.teacher, t->run.path);
    if (ts.records_teacher && ts.teacher[0] && !t->distill)
        return kd_error_set(err, KD_ERR_CONFIG, "%s was distilled from %s: resume it with kdtrain distill --resume %s --teacher %s",
                            t->run.path, ts.teacher, t->run.path, ts.teacher);
    /* Another teacher would go on distilling something else under the same run: compared
     * once the teacher is loaded (a file teacher by its content, load_teacher). */
    if (ts.records_teacher) snprintf(t->recorded_teacher, sizeof t->recorded_teacher, "%s", ts.teacher);
    if (ts.records_teacher && !ts.teacher[0] && t->distill)
        return kd_error_set(err, KD_ERR_CONFIG, "%s was trained without a teacher: resume it with kdtrain train --resume %s",
                            t->run.path, t->run.path);
    /* The counts come from a file: they must describe this run, or the run would
     * number its epochs wrongly, stop early, or schedule the wrong learning rate. */
    int64_t batches = kd_loader_batches_per_epoch(&t->loader), epochs = t->cfg->train.epochs;
    if (ts.epoch < 1 || ts.epoch > epochs)
        return kd_error_set(err, KD_ERR_DATA, "%s:/train: epoch is %lld, expected 1 to %lld (train.epochs)", path,
                            (long long)ts.epoch, (long long)epochs);
    if (ts.step != ts.epoch * batches || os.step != ts.step)
        return kd_error_set(err, KD_ERR_DATA,
                            "%s: /train step %lld and /optimizer step %lld, expected %lld (%lld epochs of %lld batches)",
                            path, (long long)ts.step, (long long)os.step, (long long)(ts.epoch * batches),
                            (long long)ts.epoch, (long long)batches);
    t->optim.step = os.step;
    t->rng = ts.rng;
    t->start_epoch = ts.epoch;
    /* The best epoch so far, exactly as the uninterrupted run holds it (metrics.csv
     * keeps 9 digits, too few to compare the next epochs' accuracies against). */
    t->best_from_checkpoint = ts.has_metrics;
    if (t->best_from_checkpoint) {
        t->best_epoch = ts.best_epoch;
        t->best_val_acc = ts.best_val_accuracy;
        t->best_val_nll = ts.best_val_nll;
        t->best_val_ece = ts.best_val_ece;
    }
    return KD_OK;
}

static int load_teacher(trainer *t, kd_error *err)
{
    const kd_teacher_logits *tl = &t->teacher;
    int rc = kd_teacher_logits_load(&t->teacher, t->request->teacher, t->cfg, &t->ds, &t->tape, err);
    if (rc) return rc;
    if (t->recorded_teacher[0] && !kd_teacher_same(t->recorded_teacher, tl))
        return kd_error_set(err, KD_ERR_CONFIG, "%s was distilled from %s, not %s: resume it with the same teacher",
                            t->request->resume, t->recorded_teacher, tl->identity);
    for (int k = 0; k < tl->n_members && (tl->n_members > 1 || t->cfg->distill.calibrate_teachers); k++) {
        const kd_teacher_member *m = &tl->member[k];
        char val[64] = "";
        if (!isnan(m->val_accuracy)) snprintf(val, sizeof val, ", val accuracy %.2f%%", 100 * m->val_accuracy);
        kd_run_log(&t->run, "teacher %d/%d %s (%s): T = %.4f%s%s%s, train accuracy %.2f%%%s", k + 1, tl->n_members, m->source,
                   m->description, m->temperature, m->temperature_from[0] ? " (" : "", m->temperature_from,
                   m->temperature_from[0] ? ")" : "", 100 * m->train_accuracy, val);
    }
    kd_run_log(&t->run, "teacher %s (%s): logits of %lld training rows cached in %.2f s, train accuracy %.2f%%", tl->source,
               tl->description, (long long)tl->rows, tl->seconds, 100 * tl->train_accuracy);
    return KD_OK;
}

/* ---- the loop --------------------------------------------------------------------------------- */

typedef struct epoch_totals {
    double loss_sum, correct, rows;
} epoch_totals;

/* Forward and backward of rows [r0, r1) of the batch: the loss op's batch mean over
 * those rows, its gradient scaled by `scale` (the rows' share of the batch, so the
 * shards' gradients add up to the batch mean's), accumulated into the model's
 * gradients. Dropout draws from rng. */
static epoch_totals shard_pass(trainer *t, const kd_batch *b, int r0, int r1, kd_rng *rng, float scale)
{
    const kd_config *c = t->cfg;
    kd_tape *tape = &t->tape;
    int rows = r1 - r0;
    kd_tape_reset(tape);
    kd_tensor *x = kd_tape_view(tape, rows, t->ds.dim, b->x + (size_t)r0 * t->ds.dim, NULL);
    kd_tensor *logits = kd_mlp_forward(&t->model, tape, x, true, rng);
    kd_tensor *loss;
    if (t->teacher.logits) {
        size_t k = (size_t)t->classes;
        for (int i = r0; i < r1; i++) {
            memcpy(t->batch_teacher + i * k, t->teacher.logits + (size_t)b->index[i] * k, k * sizeof(float));
            bool labelled = c->data.labelled == 0 || b->index[i] < c->data.labelled;
            t->batch_labels[i] = labelled ? b->y[i] : -1;
        }
        kd_tensor *teacher = kd_tape_view(tape, rows, t->classes, t->batch_teacher + (size_t)r0 * k, NULL);
        kd_distill_loss settings;
        kd_config_distill_loss(c, &settings);
        loss = kd_op_distill_loss(tape, logits, teacher, t->batch_labels + r0, &settings);
    } else {
        loss = kd_op_softmax_ce(tape, logits, b->y + r0);
    }
    kd_tape_backward_seeded(tape, loss, &scale);
    epoch_totals totals = {(double)loss->data[0] * rows, 0, rows};
    for (int i = 0; i < rows; i++) {
        const float *z = logits->data + (size_t)i * t->classes;
        int top = 0;
        for (int j = 1; j < t->classes; j++)
            if (z[j] > z[top]) top = j;
        totals.correct += top == b->y[r0 + i];
    }
    return totals;
}

static void add_totals(epoch_totals *sum, epoch_totals part)
{
    sum->loss_sum += part.loss_sum;
    sum->correct += part.correct;
    sum->rows += part.rows;
}

/* One optimiser step on a batch. train.shards = 1: the whole batch at once, dropout
 * and jitter from the run's stream. S > 1: the batch cut into S row ranges
 * (rows s B / S to (s + 1) B / S of a batch of B rows), each shard's jitter and
 * dropout drawn from its own key (the seed, the step, the shard), each shard's
 * gradient computed from zero, and the S gradients added element by element in shard
 * order: any process can compute any shard, and the sum does not depend on which
 * computed which. A parallel job's rank computes its shards [first, end) only (the
 * loader serves it their rows alone), and kd_comm_sum_shards adds every rank's in
 * the same order. `step` numbers the batch within the epoch (the shards' totals). */
static int train_step(trainer *t, const kd_batch *b, int64_t step, epoch_totals *totals, kd_error *err)
{
    const kd_config *c = t->cfg;
    int shards = (int)c->train.shards;
    bool parallel = kd_comm_parallel(t->comm);
    if (shards <= 1 && !parallel) {
        if (c->train.jitter > 0)
            kd_jitter_batch(b->x, b->rows, t->ds.image_shape[0], t->ds.image_shape[1], (int)c->train.jitter, &t->rng,
                            t->jitter_scratch);
        add_totals(totals, shard_pass(t, b, 0, b->rows, &t->rng, 1.0f));
    } else {
        uint64_t key = (uint64_t)t->optim.step;
        size_t n = t->model.n_params;
        int mine = t->shard_end - t->shard_first;
        float *restrict sum = t->shard_sum, *restrict grads = t->model.grads;
        if (!parallel) memset(sum, 0, n * sizeof(float));
        for (int s = t->shard_first; s < t->shard_end; s++) {
            int64_t whole = b->batch_rows;
            int r0 = (int)((int64_t)s * whole / shards) - b->offset, r1 = (int)((int64_t)(s + 1) * whole / shards) - b->offset;
            epoch_totals part = {0, 0, 0};
            if (r1 > r0) { /* else a last batch with fewer rows than shards: a zero gradient */
                kd_rng rng;
                kd_rng_seed(&rng, kd_rng_at(c->train.seed ^ 0x9E3779B97F4A7C15ULL, key * (uint64_t)shards + (uint64_t)s));
                if (c->train.jitter > 0)
                    kd_jitter_batch(b->x + (size_t)r0 * t->ds.dim, r1 - r0, t->ds.image_shape[0], t->ds.image_shape[1],
                                    (int)c->train.jitter, &rng, t->jitter_scratch);
                part = shard_pass(t, b, r0, r1, &rng, (float)(r1 - r0) / (float)whole);
            }
            add_totals(totals, part);
            if (parallel) {
                double *slot = t->step_totals + ((size_t)step * (size_t)mine + (size_t)(s - t->shard_first)) * 3;
                slot[0] = part.loss_sum, slot[1] = part.correct, slot[2] = part.rows;
                /* this shard's gradient, kept for the exchange; the next starts from zero */
                float *restrict mine_s = t->shard_grads + (size_t)(s - t->shard_first) * n;
                KD_ELEMENTWISE(n, i, mine_s[i] = grads[i]; grads[i] = 0.0f);
            } else {
                /* Each shard's gradient on its own (the products accumulate into what the
                 * gradient holds, in an order of their own), then added in shard order:
                 * element by element, the sum a process holding other shards would make
                 * (an empty shard's zeros too, as the ranks add them). */
                KD_ELEMENTWISE(n, i, sum[i] += grads[i]; grads[i] = 0.0f);
            }
        }
        if (parallel) {
            /* 0 + g_0 + g_1 + ... in shard order, the sum one process makes above. */
            double t0 = kd_now_seconds();
            int rc = kd_comm_sum_shards(t->comm, t->shard_grads, mine, n, grads, err);
            t->exchange_seconds += kd_now_seconds() - t0;
            if (rc) return rc;
        } else {
            memcpy(grads, sum, n * sizeof(float));
        }
    }
    kd_optim_step_bf16(&t->optim, t->model.params, t->model.grads, t->model.params_bf16);
    return KD_OK;
}

/* A parallel job's epoch totals, exactly as one process adds them: every rank's
 * per-shard totals gathered, then added step by step, shard by shard. */
static int gather_totals(trainer *t, int64_t steps, epoch_totals *totals, kd_error *err)
{
    int mine = t->shard_end - t->shard_first, ranks = kd_comm_size(t->comm);
    size_t per_rank = (size_t)kd_loader_batches_per_epoch(&t->loader) * (size_t)mine * 3;
    int rc = kd_comm_allgather(t->comm, t->step_totals, per_rank * sizeof(double), t->all_totals, err);
    if (rc) return rc;
    *totals = (epoch_totals){0, 0, 0};
    for (int64_t step = 0; step < steps; step++)
        for (int r = 0; r < ranks; r++)
            for (int j = 0; j < mine; j++) {
                const double *slot = t->all_totals + (size_t)r * per_rank + ((size_t)step * (size_t)mine + (size_t)j) * 3;
                add_totals(totals, (epoch_totals){slot[0], slot[1], slot[2]});
            }
    return KD_OK;
}

/* The overfitting diagnostic: the temperature the model needs now (fitted on the
 * validation logits) and its accuracy on training rows in evaluation mode. */
static int diagnose_epoch(trainer *t, kd_epoch_row *row, kd_error *err)
{
    const kd_config *c = t->cfg;
    const kd_split_info *val = &t->ds.split[KD_SPLIT_VAL];
    kd_temperature_fit fit;
    int rc = kd_temperature_solve(t->val_logits, val->labels, val->rows, t->classes, &fit, err);
    if (rc) return rc;
    row->temperature = fit.temperature;
    row->val_nll_at_t = fit.nll_after;
    kd_eval_options eo = {.batch_size = (int)c->train.batch_size, .streaming = c->data.streaming, .temperature = 1.0,
                          .n_bins = 15, .limit_rows = c->train.train_eval_rows};
    kd_metrics m;
    if ((rc = kd_evaluate(&t->model, &t->tape, &t->ds, KD_SPLIT_TRAIN, &eo, NULL, NULL, &m, err))) return rc;
    kd_metrics_summary s = kd_metrics_summarize(&m);
    row->train_eval_acc = s.accuracy;
    row->train_eval_nll = s.nll;
    kd_run_log(&t->run, "          diagnostic: T = %.3f (val NLL %.4f -> %.4f), train accuracy %.2f%% (eval mode) vs val %.2f%%: gap %.2f points",
               fit.temperature, fit.nll_before, fit.nll_after, 100 * s.accuracy, 100 * row->val_acc,
               100 * (s.accuracy - row->val_acc));
    return KD_OK;
}

static void note_best(trainer *t, const kd_epoch_row *row)
{
    t->best_val_acc = row->val_acc;
    t->best_val_nll = row->val_nll;
    t->best_val_ece = row->val_ece;
    t->best_epoch = row->epoch;
}

/* The epoch's end on the writer (rank 0): validation, the diagnostic, metrics.csv
 * and the checkpoints. */
static int finish_epoch(trainer *t, int64_t epoch, const epoch_totals *totals, double seconds, double lr,
                        double norm_sum, int64_t done, kd_error *err)
{
    const kd_config *c = t->cfg;
    bool diagnose = c->train.temperature_every > 0 &&
                    ((epoch + 1) % c->train.temperature_every == 0 || epoch + 1 == c->train.epochs);
    kd_eval_options eo = {.batch_size = (int)c->train.batch_size, .streaming = c->data.streaming, .temperature = 1.0,
                          .n_bins = 15};
    kd_metrics m;
    int rc;
    if ((rc = kd_evaluate(&t->model, &t->tape, &t->ds, KD_SPLIT_VAL, &eo, diagnose ? t->val_logits : NULL, NULL, &m, err)))
        return rc;
    kd_metrics_summary v = kd_metrics_summarize(&m);
    kd_epoch_row row = {.epoch = epoch + 1,
                        .lr = lr,
                        .train_loss = totals->loss_sum / totals->rows,
                        .train_acc = totals->correct / totals->rows,
                        .val_loss = v.nll,
                        .val_acc = v.accuracy,
                        .val_nll = v.nll,
                        .val_ece = v.ece,
                        .val_brier = v.brier,
                        .epoch_seconds = seconds,
                        .samples_per_second = totals->rows / seconds,
                        .grad_norm = norm_sum / (double)(done ? done : 1),
                        .temperature = NAN, /* the diagnostic's four, on the epochs it runs */
                        .val_nll_at_t = NAN,
                        .train_eval_acc = NAN,
                        .train_eval_nll = NAN};
    if (!isfinite(row.train_loss))
        return kd_error_set(err, KD_ERR_DATA, "epoch %lld: the training loss is not finite; lower train.lr (%g)",
                            (long long)epoch + 1, c->train.lr);
    kd_run_log(&t->run, "epoch %3lld/%lld  lr %.3g  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%% ECE %.2f%%  %.2f s (%.0f samples/s)",
               (long long)epoch + 1, (long long)c->train.epochs, lr, row.train_loss, 100 * row.train_acc, row.val_loss,
               100 * row.val_acc, 100 * row.val_ece, seconds, row.samples_per_second);
    if (kd_comm_parallel(t->comm))
        kd_run_log(&t->run, "          exchange: %.2f s of the epoch's %.2f s (%.0f%%) summing the gradients of %lld shards over %d ranks",
                   t->exchange_seconds, seconds, 100 * t->exchange_seconds / seconds, (long long)c->train.shards,
                   kd_comm_size(t->comm));
    if (diagnose && (rc = diagnose_epoch(t, &row, err))) return rc;
    /* metrics.csv first: a crash before the checkpoint only leaves a row that resume drops */
    if ((rc = kd_run_dir_add_epoch(&t->run, &row, err))) return rc;
    bool improved = row.val_acc > t->best_val_acc;
    if (improved) note_best(t, &row);
    if (c->train.checkpoints == KD_CHECKPOINTS_EVERY) {
        char name[64];
        snprintf(name, sizeof name, "epoch-%03lld.h5", (long long)epoch + 1);
        if ((rc = save_checkpoint(t, name, &row, err))) return rc;
    }
    if (improved && (rc = save_checkpoint(t, "best.h5", &row, err))) return rc;
    return save_checkpoint(t, "model.h5", &row, err);
}

static int run_epoch(trainer *t, int64_t epoch, kd_error *err)
{
    const kd_config *c = t->cfg;
    kd_loader_start_epoch(&t->loader, epoch);
    t->exchange_seconds = 0;
    int64_t batches = kd_loader_batches_per_epoch(&t->loader), done = 0;
    epoch_totals totals = {0, 0, 0};
    double t0 = kd_now_seconds(), lr = kd_optim_lr(&t->optim.config, t->optim.step), norm_sum = 0;
    kd_batch b;
    int rc;
    char label[64], extra[96];
    snprintf(label, sizeof label, "epoch %lld/%lld", (long long)epoch + 1, (long long)c->train.epochs);
    while ((rc = kd_loader_next(&t->loader, &b, err)) == KD_OK && b.batch_rows > 0) {
        if ((rc = train_step(t, &b, done, &totals, err))) break;
        norm_sum += t->optim.last_grad_norm;
        if (++done % 20 == 0 || done == batches) { /* a parallel job's rank 0: its own shards' numbers */
            snprintf(extra, sizeof extra, "loss %.4f acc %.2f%%", totals.loss_sum / totals.rows,
                     100 * totals.correct / totals.rows);
            kd_run_progress(&t->run, label, done, batches, extra);
        }
    }
    /* A rank that failed alone inside the epoch stops here; the others find out in
     * their next exchange (its deadline, or the launcher ending the job). */
    if (rc) return rc;
    double seconds = kd_now_seconds() - t0;
    if (kd_comm_parallel(t->comm) && (rc = gather_totals(t, done, &totals, err))) return rc;
    if (t->writer) rc = finish_epoch(t, epoch, &totals, seconds, lr, norm_sum, done, err);
    /* every rank learns whether rank 0's epoch end (its files) went well */
    return kd_comm_agree(t->comm, rc, err);
}

static int write_summary(trainer *t, double total_seconds, kd_error *err)
{
    char arch[256];
    kd_run_summary s = {.model = kd_mlp_describe(&t->model.config, arch, sizeof arch),
                        .parameters = t->model.n_params,
                        .seed = t->cfg->train.seed,
                        .teacher = t->distill ? t->teacher.identity : NULL,
                        .temperature = t->cfg->distill.temperature,
                        .alpha = t->cfg->distill.alpha,
                        .loss = kd_config_choice_name("distill.loss", (int)t->cfg->distill.loss),
                        .labelled = t->cfg->data.labelled,
                        .best_epoch = t->best_epoch,
                        .best_val_accuracy = t->best_val_acc,
                        .session_seconds = total_seconds,
                        .threads = kd_threads_count(),
                        .precision = t->precision.name,
                        .precision_reason = t->precision.reason};
    return kd_run_dir_write_summary(&t->run, &s, err);
}

/* Everything that can reject the config or the data runs before the run folder
 * exists: a bad config writes nothing. */
static int setup(trainer *t, kd_error *err)
{
    const kd_train_request *req = t->request;
    const kd_config *c = t->cfg;
    int rc;
    if (kd_config_format(c, t->config_text, sizeof t->config_text) >= sizeof t->config_text)
        return kd_error_set(err, KD_ERR_CONFIG, "the resolved config is longer than %d bytes", KD_CONFIG_TEXT_MAX);
    t->run.quiet = req->quiet || !t->writer;
    t->run.interactive = false;
    double busy = -1;
    bool parallel = kd_comm_parallel(t->comm);
    int threads = req->threads_override > 0 ? req->threads_override
                  : c->train.threads > 0    ? (int)c->train.threads
                  : parallel                ? kd_comm_cores(t->comm)
                                            : kd_threads_idle(&busy);
    kd_threads_set(threads);
    if (busy >= 0)
        kd_run_log(&t->run, "threads: %d (train.threads = 0: the idle cores, %.1f of %d were busy)", threads, busy,
                   omp_get_num_procs());
    int ranks = kd_comm_size(t->comm), shards = (int)c->train.shards;
    if (shards % ranks != 0)
        return kd_error_set(err, KD_ERR_CONFIG,
                            "train.shards: expected a multiple of the %d ranks the job runs on (each rank computes "
                            "train.shards / ranks shards of every batch), found %d; %s%d",
                            ranks, shards, req->resume ? "run it on a rank count that divides " : "e.g. --set train.shards=",
                            req->resume ? shards : ranks * ((shards + ranks - 1) / ranks));
    t->shard_first = kd_comm_rank(t->comm) * (shards / ranks);
    t->shard_end = t->shard_first + shards / ranks;
    kd_threads_flush_denormals();
    kd_tape_init(&t->tape, 0);
    if ((rc = open_data(t, err))) return rc;
    kd_mlp_config mc;
    if ((rc = kd_config_model(c, &mc, err)) || (rc = kd_mlp_create(&t->model, &mc, err))) return rc;
    if ((rc = reserve_step_memory(t, err))) return rc;
    kd_mlp_init(&t->model, c->train.seed);
    if ((rc = kd_precision_resolve(c, (int)c->train.batch_size, mc.sizes[1], mc.sizes[0], &t->precision, err)))
        return rc;
    if (t->precision.bf16 && ((rc = kd_mm_cache_create(&t->products, err)) ||
                              (rc = kd_mlp_use_bf16(&t->model, t->products, err))))
        return rc;
    kd_rng_seed(&t->rng, c->train.seed ^ 0x5DEECE66DULL);
    if (kd_loader_batches_per_epoch(&t->loader) == 0)
        return kd_error_set(err, KD_ERR_CONFIG,
                            "train.batch_size: expected at most %lld (the training rows) with train.last_batch = drop, found %lld",
                            (long long)t->loader.rows, (long long)c->train.batch_size);
    kd_optim_config oc;
    kd_config_optim(c, kd_loader_batches_per_epoch(&t->loader), &oc);
    if ((rc = kd_optim_create(&t->optim, &oc, t->model.n_params, err))) return rc;
    size_t b = (size_t)c->train.batch_size;
    t->batch_teacher = malloc(b * (size_t)t->classes * sizeof(float));
    t->batch_labels = malloc(b * sizeof(int32_t));
    t->jitter_scratch = malloc((size_t)t->ds.dim * sizeof(float));
    if (c->train.shards > 1 && !parallel && !(t->shard_sum = kd_calloc_aligned(t->model.n_params, sizeof(float))))
        return kd_error_set(err, KD_ERR_IO, "out of memory for the shards' gradient sum (%zu parameters)", t->model.n_params);
    if (parallel) {
        size_t mine = (size_t)(t->shard_end - t->shard_first), batches = (size_t)kd_loader_batches_per_epoch(&t->loader);
        t->shard_grads = kd_calloc_aligned(mine * t->model.n_params, sizeof(float));
        t->step_totals = calloc(batches * mine * 3, sizeof(double));
        t->all_totals = calloc((size_t)ranks * batches * mine * 3, sizeof(double));
        if (!t->shard_grads || !t->step_totals || !t->all_totals)
            return kd_error_set(err, KD_ERR_IO, "out of memory for %zu shards' gradients (%zu parameters each)", mine,
                                t->model.n_params);
    }
    if (c->train.temperature_every > 0)
        t->val_logits = malloc((size_t)t->ds.split[KD_SPLIT_VAL].rows * (size_t)t->classes * sizeof(float));
    if (!t->batch_teacher || !t->batch_labels || !t->jitter_scratch || (c->train.temperature_every > 0 && !t->val_logits))
        return kd_error_set(err, KD_ERR_IO, "out of memory for batch buffers");
    /* A fresh run's teacher is loaded before its folder exists (a bad teacher leaves
     * no folder behind); a resumed run's after its checkpoint has been checked. */
    if (t->distill && !req->resume && (rc = load_teacher(t, err))) return rc;

    char checkpoint[KD_PATH_MAX];
    snprintf(checkpoint, sizeof checkpoint, "%s/model.h5", req->resume ? req->resume : "");
    if (req->resume && !t->writer) {
        /* The other ranks read the checkpoint rank 0 reads (check_same_job compares
         * what they found) and write nothing: the folder stays rank 0's. */
        snprintf(t->run.path, sizeof t->run.path, "%s", req->resume);
        if (kd_file_exists(checkpoint)) {
            if ((rc = resume_state(t, err))) return rc;
            kd_mlp_sync_bf16(&t->model);
        }
    } else if (req->resume && !kd_file_exists(checkpoint)) {
        /* Stopped inside its first epoch: nothing to resume, start it again in place. */
        if ((rc = kd_run_dir_open(&t->run, req->resume, 0, err))) return rc;
    } else if (req->resume) {
        if ((rc = kd_run_dir_open(&t->run, req->resume, 0, err))) return rc;
        if ((rc = resume_state(t, err))) return rc;
        kd_mlp_sync_bf16(&t->model); /* the copy the optimiser would have written */
        kd_run_dir_close(&t->run);
        if ((rc = kd_run_dir_open(&t->run, req->resume, t->start_epoch, err))) return rc;
        for (int64_t i = 0; i < t->run.n_rows && !t->best_from_checkpoint; i++) /* older checkpoints */
            if (t->run.rows[i].val_acc > t->best_val_acc) note_best(t, &t->run.rows[i]);
    }
    if (t->distill && req->resume && (rc = load_teacher(t, err))) return rc;
    return KD_OK;
}

/* The run folder, once every rank has set up and agrees on the job: made by rank 0
 * (a new run), or its log started (a resumed one). */
static int start_run(trainer *t, char *run_dir, size_t run_dir_size, kd_error *err)
{
    const kd_train_request *req = t->request;
    const kd_config *c = t->cfg;
    int rc;
    if (!t->writer) {
        snprintf(run_dir, run_dir_size, "%s", req->resume ? req->resume : "");
        return KD_OK;
    }
    if (!req->resume) {
        const char *name = c->run.name[0] ? c->run.name : req->name_hint ? req->name_hint : "run";
        if ((rc = kd_run_dir_create(&t->run, c->run.dir, name, err))) return rc;
        t->created_run = true;
        if ((rc = kd_run_dir_write(&t->run, "config.ini", t->config_text, err))) return rc;
    }
    t->run.quiet = req->quiet;
    snprintf(run_dir, run_dir_size, "%s", t->run.path);
    if (req->resume) {
        kd_run_dir_start_log(&t->run); /* every check passed: from here the attempt is the run's */
        kd_run_log(&t->run, "resuming %s after epoch %lld", t->run.path, (long long)t->start_epoch);
    }
    return KD_OK;
}

int kd_train(const kd_train_request *request, char *run_dir, size_t run_dir_size, kd_error *err)
{
    trainer *t = calloc(1, sizeof *t);
    if (!t) return kd_error_set(err, KD_ERR_IO, "out of memory");
    t->request = request;
    t->cfg = &request->config;
    t->distill = request->distill || request->teacher;
    t->best_val_acc = -1;
    kd_loader_init(&t->loader);
    double t0 = kd_now_seconds();
    t->comm = request->comm;
    t->writer = kd_comm_rank(t->comm) == 0;
    run_dir[0] = '\0';
    int rc = setup(t, err);
    /* every rank set up, then the same job on each, then rank 0's folder */
    rc = kd_comm_agree(t->comm, rc, err);
    if (!rc && kd_comm_parallel(t->comm)) {
        kd_job_state js = {.config_text = t->config_text,
                           .ds = &t->ds,
                           .params = t->model.params,
                           .n_params = t->model.n_params,
                           .optim_step = t->optim.step,
                           .teacher_logits = t->teacher.logits,
                           .teacher_floats = t->teacher.logits ? (size_t)t->teacher.rows * (size_t)t->classes : 0,
                           .start_epoch = t->start_epoch,
                           .stop_after = t->request->stop_after,
                           .resume = t->request->resume};
        rc = kd_job_check_same(t->comm, &js, err);
    }
    if (!rc) rc = kd_comm_agree(t->comm, start_run(t, run_dir, run_dir_size, err), err);
    bool started = rc == KD_OK;
    if (!rc) {
        char arch[256];
        kd_run_log(&t->run, "%s %s (%zu parameters) on %s: %lld training rows, %lld epochs of %lld batches, %d threads -> %s",
                   t->distill ? "distilling" : "training", kd_mlp_describe(&t->model.config, arch, sizeof arch),
                   t->model.n_params, t->cfg->data.path, (long long)t->loader.rows, (long long)t->cfg->train.epochs,
                   (long long)kd_loader_batches_per_epoch(&t->loader), kd_threads_count(), t->run.path);
        kd_run_log(&t->run, "precision: %s (%s)", t->precision.name, t->precision.reason);
        if (kd_comm_parallel(t->comm))
            kd_run_log(&t->run, "parallel: %d ranks, %lld shards of each batch (%d a rank), %d threads a rank",
                       kd_comm_size(t->comm), (long long)t->cfg->train.shards, t->shard_end - t->shard_first,
                       kd_threads_count());
    }
    int64_t end = t->cfg->train.epochs;
    if (request->stop_after > 0 && request->stop_after < end) end = request->stop_after;
    for (int64_t e = t->start_epoch; !rc && e < end; e++) rc = run_epoch(t, e, err);
    if (!rc && end < t->cfg->train.epochs)
        kd_run_log(&t->run, "stopped after epoch %lld as asked; continue with --resume %s", (long long)end, t->run.path);
    /* summary.json marks a finished run (the pipeline reuses such runs) */
    if (!rc && end == t->cfg->train.epochs)
        rc = kd_comm_agree(t->comm, t->writer ? write_summary(t, kd_now_seconds() - t0, err) : KD_OK, err);
    if (!rc)
        kd_run_log(&t->run, "done: best val accuracy %.2f%% at epoch %lld; model %s/model.h5", 100 * t->best_val_acc,
                   (long long)t->best_epoch, t->run.path);
    else if (started) /* a refused resume leaves the run's log as it was */
        kd_run_log(&t->run, "failed: %s", err ? err->message : "");
    /* A new run that failed before any epoch ended leaves no folder behind. */
    if (rc && t->created_run && t->run.n_rows == 0) kd_run_dir_discard(&t->run);
    kd_loader_close(&t->loader);
    kd_dataset_close(&t->ds);
    kd_mlp_free(&t->model);
    kd_mm_cache_free(t->products);
    free(t->shard_sum);
    free(t->shard_grads);
    free(t->step_totals);
    free(t->all_totals);
    kd_optim_free(&t->optim);
    kd_tape_free(&t->tape);
    kd_run_dir_close(&t->run);
    kd_teacher_logits_free(&t->teacher);
    free(t->batch_teacher);
    free(t->batch_labels);
    free(t->jitter_scratch);
    free(t->val_logits);
    free(t);
    return rc;
}

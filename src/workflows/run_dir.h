/* run_dir.h - a run's folder: its name, the resolved config, metrics.csv (one row
 * per epoch, rewritten atomically each epoch), a log that mirrors what the user
 * sees, and the paths of its checkpoints. An existing run folder is never reused
 * by a new run: the name gets a numeric suffix instead. */
#ifndef KD_RUN_DIR_H
#define KD_RUN_DIR_H

#include "core/error.h"
#include "io/fileutil.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_METRICS_COLUMNS 16
#define KD_MAX_EPOCHS_KEPT 100000

typedef struct kd_epoch_row {
    int64_t epoch; /* 1-based */
    double lr, train_loss, train_acc, val_loss, val_acc, val_nll, val_ece, val_brier;
    double epoch_seconds, samples_per_second, grad_norm;
    /* the overfitting diagnostic (train.temperature_every), NaN on other epochs: */
    double temperature;     /* fitted on the validation split after this epoch */
    double val_nll_at_t;    /* validation NLL at that temperature */
    double train_eval_acc;  /* accuracy and NLL on training rows in evaluation mode */
    double train_eval_nll;
} kd_epoch_row;

typedef struct kd_run_dir {
    char path[KD_DIR_MAX];
    char log_path[KD_PATH_MAX];
    kd_epoch_row *rows;
    int64_t n_rows, capacity;
    char pending[8192]; /* lines logged before the folder existed, written to it on creation */
    bool quiet;       /* nothing on stderr (the log still gets everything) */
    bool interactive; /* stderr is a terminal: progress bars */
    bool locked;      /* lock_fd holds PATH/.lock (a zeroed struct holds nothing) */
    int lock_fd;
} kd_run_dir;

/* Creates base/name (or base/name-2, -3, ... when taken) and locks it. */
int kd_run_dir_create(kd_run_dir *run, const char *base, const char *name, kd_error *err);
/* Opens an existing run folder to write it: locks it (KD_ERR_BUSY when another
 * process has it), removes the temporary files of dead processes, and reads its
 * metrics.csv, keeping rows up to keep_epochs. Lines logged stay pending (the
 * run's train.log unchanged) until kd_run_dir_start_log. */
int kd_run_dir_open(kd_run_dir *run, const char *path, int64_t keep_epochs, kd_error *err);
/* Appends the pending lines to train.log, and every line from then on. */
void kd_run_dir_start_log(kd_run_dir *run);
/* Reads a run folder's metrics.csv without opening it for writing (no lock, no log). */
int kd_run_dir_read(kd_run_dir *run, const char *path, kd_error *err);
/* Frees the rows and releases the lock. */
void kd_run_dir_close(kd_run_dir *run);
/* Removes a folder kd_run_dir_create made, for a run that failed before its first
 * epoch ended: the files kdtrain wrote into it, then the folder (kept when anything
 * else is in it). A new attempt then gets the same name. Closes the run. */
void kd_run_dir_discard(kd_run_dir *run);
/* Locks PATH/.lock of a run folder for a writer other than training (calibrate
 * storing a temperature): returns the descriptor for kd_file_unlock, or -1 with a
 * KD_ERR_BUSY message naming the folder and the holder. */
int kd_run_dir_lock(const char *path, kd_error *err);
/* base/NAME into buf. */
const char *kd_run_dir_file(const kd_run_dir *run, const char *name, char *buf, size_t size);
int kd_run_dir_write(const kd_run_dir *run, const char *name, const char *text, kd_error *err);
int kd_run_dir_add_epoch(kd_run_dir *run, const kd_epoch_row *row, kd_error *err);
/* What summary.json says of a finished run besides what the folder knows itself
 * (its path, its metrics rows, the build's commit, the date). */
typedef struct kd_run_summary {
    const char *model;          /* the architecture, "784-1200-1200-10" */
    size_t parameters;
    uint64_t seed;
    const char *teacher;        /* NULL for plain training */
    double temperature, alpha;  /* distillation's, written only with a teacher */
    const char *loss;           /* distill.loss's name ("kl"), written only with a teacher */
    int64_t labelled;           /* data.labelled */
    int64_t best_epoch;
    double best_val_accuracy;
    double session_seconds;     /* this invocation's wall time (a resumed run: since the resume) */
    int threads;
    const char *precision;        /* "fp32" or "bf16": what the training steps took */
    const char *precision_reason; /* why (train.precision and what oneDNN offers) */
} kd_run_summary;

/* summary.json, which marks a finished run (the pipeline reuses such runs). */
int kd_run_dir_write_summary(const kd_run_dir *run, const kd_run_summary *summary, kd_error *err);

/* A line for the user (stderr unless quiet) and the log (always). */
void kd_run_log(kd_run_dir *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A progress bar on a terminal; nothing otherwise. */
void kd_run_progress(const kd_run_dir *run, const char *label, int64_t done, int64_t total, const char *extra);

#ifdef __cplusplus
}
#endif
#endif

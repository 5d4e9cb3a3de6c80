/* run_dir.c - see run_dir.h. */
#define _POSIX_C_SOURCE 200809L
#include "workflows/run_dir.h"

#include "io/fileutil.h"
#include "io/json.h"
#include "io/provenance.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *csv_header =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_nll,val_ece,val_brier,epoch_seconds,samples_per_second,grad_norm,"
    "temperature,val_nll_at_t,train_eval_acc,train_eval_nll\n";

static void init_run(kd_run_dir *run)
{
    char pending[sizeof run->pending];
    bool quiet = run->quiet;
    memcpy(pending, run->pending, sizeof pending);
    memset(run, 0, sizeof *run);
    memcpy(run->pending, pending, sizeof pending);
    run->quiet = quiet;
    run->interactive = isatty(STDERR_FILENO);
}

static int lock_run(kd_run_dir *run, kd_error *err)
{
    run->lock_fd = kd_run_dir_lock(run->path, err);
    run->locked = run->lock_fd >= 0;
    return run->locked ? KD_OK : err ? err->code : KD_ERR_IO;
}

int kd_run_dir_lock(const char *path, kd_error *err)
{
    char lock[KD_PATH_MAX];
    snprintf(lock, sizeof lock, "%s/.lock", path);
    int fd = kd_file_lock(lock, err);
    if (fd < 0 && err && err->code == KD_ERR_BUSY) {
        char why[sizeof err->message];
        memcpy(why, err->message, sizeof why);
        kd_error_set(err, KD_ERR_BUSY, "%s: another kdtrain is writing this run folder (%s); one writer at a time", path,
                     why);
    }
    return fd;
}

static void set_log(kd_run_dir *run)
{
    snprintf(run->log_path, sizeof run->log_path, "%s/train.log", run->path);
    if (run->pending[0]) kd_file_append(run->log_path, run->pending, NULL);
    run->pending[0] = '\0';
}

int kd_run_dir_create(kd_run_dir *run, const char *base, const char *name, kd_error *err)
{
    init_run(run);
    int rc = kd_file_mkdir_p(base, err);
    if (rc) return rc;
    for (int suffix = 1; suffix < 10000; suffix++) {
        int n = suffix == 1 ? snprintf(run->path, sizeof run->path, "%s/%s", base, name)
                            : snprintf(run->path, sizeof run->path, "%s/%s-%d", base, name, suffix);
        if (n >= (int)sizeof run->path) return kd_error_set(err, KD_ERR_IO, "%s/%s: path too long", base, name);
        if (mkdir(run->path, 0755) == 0) {
            if ((rc = lock_run(run, err))) return rc;
            set_log(run);
            return KD_OK;
        }
        if (errno != EEXIST) return kd_error_set(err, KD_ERR_IO, "%s: cannot create: %s", run->path, strerror(errno));
    }
    return kd_error_set(err, KD_ERR_IO, "%s/%s: too many runs of this name", base, name);
}

/* A metrics.csv row: 16 columns, or the first 12 (files written before the
 * temperature diagnostic existed; the rest become NaN). */
static int append_row(kd_run_dir *run, const kd_epoch_row *row, kd_error *err)
{
    if (run->n_rows == run->capacity) {
        int64_t cap = run->capacity ? 2 * run->capacity : 64;
        kd_epoch_row *rows = realloc(run->rows, (size_t)cap * sizeof *rows);
        if (!rows) return kd_error_set(err, KD_ERR_IO, "out of memory for metrics rows");
        run->rows = rows;
        run->capacity = cap;
    }
    run->rows[run->n_rows++] = *row;
    return KD_OK;
}

static int parse_row(const char *line, kd_epoch_row *row)
{
    double v[KD_METRICS_COLUMNS];
    const char *p = line;
    int i = 0;
    for (; i < KD_METRICS_COLUMNS; i++) {
        char *end;
        v[i] = strtod(p, &end);
        if (end == p) return -1;
        p = end;
        if (*p != ',') break;
        p++;
    }
    if (*p != '\0' || (i + 1 != KD_METRICS_COLUMNS && i + 1 != 12)) return -1;
    for (int k = i + 1; k < KD_METRICS_COLUMNS; k++) v[k] = NAN;
    *row = (kd_epoch_row){(int64_t)v[0], v[1], v[2], v[3], v[4],  v[5],  v[6],  v[7],
                          v[8],          v[9], v[10], v[11], v[12], v[13], v[14], v[15]};
    return 0;
}

/* metrics.csv's rows up to keep_epochs into run->rows. */
static int read_rows(kd_run_dir *run, int64_t keep_epochs, kd_error *err)
{
    char csv[KD_PATH_MAX];
    kd_run_dir_file(run, "metrics.csv", csv, sizeof csv);
    if (!kd_file_exists(csv)) return KD_OK;
    char *text = kd_file_read_text(csv, 64u << 20, err);
    if (!text) return err ? err->code : KD_ERR_IO;
    int rc = KD_OK;
    char *save = NULL;
    bool header = true;
    for (char *line = strtok_r(text, "\n", &save); line && rc == KD_OK; line = strtok_r(NULL, "\n", &save)) {
        if (header) {
            header = false;
            continue;
        }
        kd_epoch_row row;
        if (parse_row(line, &row) != 0) {
            rc = kd_error_set(err, KD_ERR_DATA, "%s: cannot parse the row '%s'", csv, line);
            break;
        }
        if (row.epoch <= keep_epochs) rc = append_row(run, &row, err);
    }
    free(text);
    return rc; /* reading never rewrites the file; the next kd_run_dir_add_epoch does */
}

int kd_run_dir_read(kd_run_dir *run, const char *path, kd_error *err)
{
    init_run(run);
    if (!kd_file_is_directory(path)) return kd_error_set(err, KD_ERR_IO, "%s: expected a run folder, found none", path);
    snprintf(run->path, sizeof run->path, "%s", path);
    return read_rows(run, INT64_MAX, err);
}

int kd_run_dir_open(kd_run_dir *run, const char *path, int64_t keep_epochs, kd_error *err)
{
    init_run(run);
    if (!kd_file_is_directory(path)) return kd_error_set(err, KD_ERR_IO, "%s: expected a run folder, found none", path);
    snprintf(run->path, sizeof run->path, "%s", path);
    int rc = lock_run(run, err);
    if (rc) return rc;
    int stale = kd_file_remove_stale_temporaries(run->path);
    if (stale) kd_run_log(run, "removed %d temporary file%s left by a process that was killed", stale, stale == 1 ? "" : "s");
    return read_rows(run, keep_epochs, err);
}

void kd_run_dir_start_log(kd_run_dir *run) { set_log(run); }

void kd_run_dir_close(kd_run_dir *run)
{
    free(run->rows);
    run->rows = NULL;
    run->n_rows = run->capacity = 0;
    if (run->locked) kd_file_unlock(run->lock_fd);
    run->locked = false;
}

void kd_run_dir_discard(kd_run_dir *run)
{
    const char *ours[] = {"config.ini", "train.log", "metrics.csv", ".lock"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        char path[KD_PATH_MAX];
        unlink(kd_run_dir_file(run, ours[i], path, sizeof path));
    }
    kd_run_dir_close(run);
    rmdir(run->path); /* fails, and keeps the folder, when anything else is in it */
    run->path[0] = '\0';
}

const char *kd_run_dir_file(const kd_run_dir *run, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", run->path, name);
    return buf;
}

int kd_run_dir_write(const kd_run_dir *run, const char *name, const char *text, kd_error *err)
{
    char path[KD_PATH_MAX];
    return kd_file_write_atomic(kd_run_dir_file(run, name, path, sizeof path), text, strlen(text), err);
}

int kd_run_dir_add_epoch(kd_run_dir *run, const kd_epoch_row *row, kd_error *err)
{
    int rc = append_row(run, row, err);
    if (rc) return rc;
    size_t size = strlen(csv_header) + (size_t)run->n_rows * 420 + 1;
    char *text = malloc(size);
    if (!text) return kd_error_set(err, KD_ERR_IO, "out of memory for metrics.csv");
    size_t used = (size_t)snprintf(text, size, "%s", csv_header);
    for (int64_t i = 0; i < run->n_rows; i++) {
        const kd_epoch_row *r = &run->rows[i];
        used += (size_t)snprintf(text + used, size - used,
                                 "%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.6g,%.6g,%.9g,%.9g,%.9g,%.9g,%.9g\n",
                                 (long long)r->epoch, r->lr, r->train_loss, r->train_acc, r->val_loss, r->val_acc, r->val_nll,
                                 r->val_ece, r->val_brier, r->epoch_seconds, r->samples_per_second, r->grad_norm,
                                 r->temperature, r->val_nll_at_t, r->train_eval_acc, r->train_eval_nll);
    }
    rc = kd_run_dir_write(run, "metrics.csv", text, err);
    free(text);
    return rc;
}

void kd_run_log(kd_run_dir *run, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (!run->quiet) {
        if (run->interactive) fputs("\r\033[K", stderr); /* clear a progress bar */
        fprintf(stderr, "%s\n", line);
    }
    size_t len = strlen(line);
    if (len + 1 < sizeof line) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    if (run->log_path[0]) {
        kd_file_append(run->log_path, line, NULL); /* the log is best effort */
    } else {
        size_t used = strlen(run->pending);
        snprintf(run->pending + used, sizeof run->pending - used, "%s", line);
    }
}

void kd_run_progress(const kd_run_dir *run, const char *label, int64_t done, int64_t total, const char *extra)
{
    if (run->quiet || !run->interactive || total <= 0) return;
    const int width = 30;
    int filled = (int)(width * done / total);
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%s [%s] %lld/%lld %s", label, bar, (long long)done, (long long)total, extra ? extra : "");
    fflush(stderr);
}

int kd_run_dir_write_summary(const kd_run_dir *r, const kd_run_summary *s, kd_error *err)
{
    const kd_epoch_row *last = r->n_rows ? &r->rows[r->n_rows - 1] : NULL;
    double epoch_seconds = 0;
    for (int64_t i = 0; i < r->n_rows; i++) epoch_seconds += r->rows[i].epoch_seconds;
    kd_json j;
    kd_json_init(&j);
    kd_json_begin_object(&j, NULL);
    kd_json_string(&j, "run", r->path);
    kd_json_string(&j, "kind", s->teacher ? "distill" : "train");
    kd_json_string(&j, "model", s->model);
    kd_json_int(&j, "parameters", (int64_t)s->parameters);
    kd_json_int(&j, "epochs", r->n_rows);
    kd_json_int(&j, "seed", (int64_t)s->seed);
    if (s->teacher) {
        kd_json_string(&j, "teacher", s->teacher);
        kd_json_number(&j, "temperature", s->temperature);
        kd_json_number(&j, "alpha", s->alpha);
        if (s->loss) kd_json_string(&j, "loss", s->loss);
    }
    kd_json_int(&j, "labelled", s->labelled);
    kd_json_number(&j, "final_val_accuracy", last ? last->val_acc : NAN);
    kd_json_number(&j, "final_val_nll", last ? last->val_nll : NAN);
    kd_json_number(&j, "final_val_ece", last ? last->val_ece : NAN);
    kd_json_int(&j, "best_epoch", s->best_epoch);
    kd_json_number(&j, "best_val_accuracy", s->best_val_accuracy);
    kd_json_number(&j, "mean_epoch_seconds", r->n_rows ? epoch_seconds / (double)r->n_rows : NAN);
    kd_json_number(&j, "this_session_seconds", s->session_seconds);
    kd_json_int(&j, "threads", s->threads);
    if (s->precision) kd_json_string(&j, "precision", s->precision);
    if (s->precision_reason) kd_json_string(&j, "precision_reason", s->precision_reason);
    char commit[128], date[64];
    kd_provenance_commit(commit, sizeof commit);
    kd_provenance_date(date, sizeof date);
    kd_json_string(&j, "commit", commit);
    kd_json_string(&j, "finished", date);
    kd_json_end_object(&j);
    int rc = j.out.failed ? kd_error_set(err, KD_ERR_IO, "out of memory for summary.json")
                          : kd_run_dir_write(r, "summary.json", j.out.text, err);
    kd_json_free(&j);
    return rc;
}

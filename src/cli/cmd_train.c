/* cmd_train.c - `kdtrain train` and `kdtrain distill`: parse the options, build the
 * config (file, then --set overrides), and hand it to the trainer. */
#define _POSIX_C_SOURCE 200809L
#include "cli/args.h"
#include "cli/commands.h"
#include "io/fileutil.h"

#include "workflows/config.h"
#include "workflows/teacher.h"
#include "workflows/trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SETS 64

static void print_help(bool distill)
{
    printf("usage: kdtrain %s -c CONFIG%s [--set section.key=value ...] [--threads N] [--stop-after E] [--quiet]\n"
           "       kdtrain %s --resume RUN%s [--threads N] [--stop-after E] [--quiet]\n\n",
           distill ? "distill" : "train", distill ? " [--teacher RUN_CHECKPOINT_OR_LOGITS]" : "",
           distill ? "distill" : "train", distill ? " [--teacher RUN_CHECKPOINT_OR_LOGITS]" : "");
    if (distill)
        printf("Trains a student by distillation: alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE,\n"
               "with the teacher's logits computed once and cached ([distill] temperature, alpha);\n"
               "distill.loss = reverse_kl, js, dkd or lsk puts another divergence in KL's place.\n"
               "The teacher: a kdtrain run or checkpoint (distill.teacher), a logits file of every\n"
               "training row in the data set's order (distill.teacher_logits), or an ensemble of\n"
               "them (distill.teachers = A, B, ...: their softmax at T averaged; docs/TEACHERS.md).\n"
               "With data.labelled = N only the first N training rows keep their labels; the others\n"
               "are a transfer set whose rows contribute the soft term alone.\n\n");
    else
        printf("Trains a model from an INI config ([data], [model], [train], [run]).\n\n");
    printf("The run folder (run.dir/run.name, or the config's name; a taken name gets a suffix)\n"
           "holds config.ini, metrics.csv, train.log, model.h5 (the last epoch, with optimiser\n"
           "state), best.h5 (best validation accuracy) and summary.json. Progress goes to\n"
           "stderr; stdout gets only the run folder's path, for scripts.\n\n"
           "options:\n"
           "  -c, --config FILE   the INI config\n"
           "  --set S.K=V         override one key (repeatable), e.g. --set train.epochs=5\n"
           "  --resume RUN        continue RUN from its model.h5: the result equals an\n"
           "                      uninterrupted run bit for bit (with the same thread count);\n"
           "                      a distilled run resumes with `kdtrain distill --resume`, its\n"
           "                      teacher taken from config.ini (runs made by `kdtrain run` need --teacher)\n"
           "  --threads N         threads, N >= 1 (default: the config's train.threads, whose\n"
           "                      default 0 takes the cores that are idle when training starts)\n"
           "  --stop-after E      stop once E epochs are done; continue later with --resume\n"
           "  --quiet             no progress on stderr (train.log still gets every line)\n");
    if (distill)
        printf("  --teacher PATH      the teacher's run folder or checkpoint, recorded as distill.teacher\n"
               "                      in the run's config.ini; or a logits file (FILE.npy, an HDF5 file\n"
               "                      without /model, FILE:/dataset), recorded as distill.teacher_logits\n");
}

static const char *stem_of(const char *path, char *buf, size_t size)
{
    const char *base = strrchr(path, '/');
    snprintf(buf, size, "%s", base ? base + 1 : path);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = '\0';
    return buf;
}

static int run(bool distill, int argc, char **argv, kd_comm *comm)
{
    kd_args a = {argc, argv, 1, distill ? "kdtrain distill" : "kdtrain train"};
    const char *config_path = NULL, *resume = NULL, *teacher = NULL, *sets[MAX_SETS];
    int n_sets = 0;
    long threads = -1, stop_after = 0;
    bool quiet = false;
    for (; a.i < argc; a.i++) {
        const char *v;
        int m;
        if (kd_arg_flag(&a, "--help") || kd_arg_flag(&a, "-h")) {
            print_help(distill);
            return 0;
        }
        if (kd_arg_flag(&a, "--quiet")) {
            quiet = true;
            continue;
        }
        if ((m = kd_arg_value(&a, "-c", "a config file", &v)) || (m = kd_arg_value(&a, "--config", "a config file", &v))) {
            if (m < 0) return 2;
            config_path = v;
        } else if ((m = kd_arg_value(&a, "--set", "section.key=value", &v))) {
            if (m < 0) return 2;
            if (n_sets == MAX_SETS) {
                fprintf(stderr, "%s: --set: at most %d overrides\n", a.command, MAX_SETS);
                return 2;
            }
            sets[n_sets++] = v;
        } else if ((m = kd_arg_value(&a, "--resume", "a run folder", &v))) {
            if (m < 0) return 2;
            resume = v;
        } else if (distill && (m = kd_arg_value(&a, "--teacher", "a run folder, checkpoint or logits file", &v))) {
            if (m < 0) return 2;
            teacher = v;
        } else if ((m = kd_arg_value(&a, "--stop-after", "a number of epochs", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--stop-after", v, 1, 1000000, &stop_after)) return 2;
        } else if ((m = kd_arg_value(&a, "--threads", "a thread count", &v))) {
            if (m < 0 || !kd_arg_int(&a, "--threads", v, 1, 1024, &threads)) return 2;
        } else {
            return kd_arg_unknown(&a);
        }
    }
    if (!config_path == !resume) {
        fprintf(stderr, "%s: expected either -c CONFIG or --resume RUN\n", a.command);
        return 2;
    }
    if (resume && n_sets) {
        fprintf(stderr, "%s: --set cannot change a resumed run (its config.ini is used as it is)\n", a.command);
        return 2;
    }
    kd_train_request *req = calloc(1, sizeof *req);
    if (!req) return 1;
    kd_error err;
    kd_error_clear(&err);
    char config_buf[KD_PATH_MAX], name[256];
    kd_config_defaults(&req->config);
    if (resume) snprintf(config_buf, sizeof config_buf, "%s/config.ini", resume);
    int rc = kd_config_load_file(&req->config, resume ? config_buf : config_path, &err);
    for (int i = 0; !rc && i < n_sets; i++) rc = kd_config_set(&req->config, sets[i], &err);
    if (!rc && threads > 0 && !resume) req->config.train.threads = threads;
    if (!rc) rc = kd_config_validate(&req->config, &err);
    kd_teacher_list teachers;
    if (!rc && distill) rc = kd_teacher_list_resolve(&teachers, teacher, &req->config, &err);
    /* The run's config.ini records the teacher, so `distill --resume RUN` finds it again:
     * a model as distill.teacher, a logits file as distill.teacher_logits. */
    if (!rc && distill && teacher && !resume) {
        bool logits = teachers.kind[0] == KD_TEACHER_LOGITS;
        char *key = logits ? req->config.distill.teacher_logits : req->config.distill.teacher;
        snprintf(key, KD_CONFIG_STR, "%s", teacher); /* resolve checked the length */
        (logits ? req->config.distill.teacher : req->config.distill.teacher_logits)[0] = '\0';
        teacher = NULL;
    }
    /* A parallel job's ranks stop together on a config one of them cannot read */
    rc = kd_comm_agree(comm, rc, &err);
    if (!rc) {
        req->name_hint = config_path ? stem_of(config_path, name, sizeof name) : NULL;
        req->distill = distill;
        req->teacher = distill ? teacher : NULL;
        req->resume = resume;
        req->threads_override = resume && threads > 0 ? (int)threads : 0;
        req->quiet = quiet;
        req->stop_after = stop_after;
        req->comm = comm;
        char run_dir[KD_PATH_MAX];
        rc = kd_train(req, run_dir, sizeof run_dir, &err);
        /* stdout holds only the run folder, for scripts (a parallel job's: rank 0's) */
        if (!rc && kd_comm_rank(comm) == 0) printf("%s\n", run_dir);
    }
    free(req);
    if (rc) {
        kd_cli_report_error(a.command, comm, &err);
        return rc == KD_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}

int kd_cmd_train(int argc, char **argv, kd_comm *comm) { return run(false, argc, argv, comm); }
int kd_cmd_distill(int argc, char **argv, kd_comm *comm) { return run(true, argc, argv, comm); }

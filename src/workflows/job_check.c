/* job_check.c - see job_check.h. */
#include "workflows/job_check.h"

#include "core/hash.h"
#include "workflows/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What every rank of a parallel job must share, compared at the start. */
typedef struct job_print {
    uint64_t config;  /* the resolved config text */
    uint64_t data;    /* the splits' shapes, scale and labels (and loaded features) */
    uint64_t state;   /* the weights and optimiser step training starts from */
    uint64_t teacher; /* distillation: the teacher's cached logits */
    int64_t start_epoch, stop_after;
} job_print;

static job_print fingerprint(const kd_job_state *t)
{
    const uint64_t basis = KD_FNV1A64_BASIS;
    job_print p = {kd_fnv1a64(basis, t->config_text, strlen(t->config_text)), basis, basis, basis, t->start_epoch,
                   t->stop_after};
    if (t->teacher_logits) p.teacher = kd_fnv1a64(p.teacher, t->teacher_logits, t->teacher_floats * sizeof(float));
    const kd_dataset *ds = t->ds;
    p.data = kd_fnv1a64(p.data, &ds->dim, sizeof ds->dim);
    p.data = kd_fnv1a64(p.data, &ds->num_classes, sizeof ds->num_classes);
    p.data = kd_fnv1a64(p.data, &ds->x_scale, sizeof ds->x_scale);
    for (int s = 0; s < KD_SPLIT_COUNT; s++) {
        const kd_split_info *info = &ds->split[s];
        if (!info->present) continue;
        p.data = kd_fnv1a64(p.data, &info->rows, sizeof info->rows);
        p.data = kd_fnv1a64(p.data, info->labels, (size_t)info->rows * sizeof *info->labels);
        if (info->features)
            p.data = kd_fnv1a64(p.data, info->features,
                           (size_t)info->rows * (size_t)ds->dim * (info->stored_type == KD_FEATURE_UINT8 ? 1 : sizeof(float)));
    }
    p.state = kd_fnv1a64(p.state, t->params, t->n_params * sizeof *t->params);
    p.state = kd_fnv1a64(p.state, &t->optim_step, sizeof t->optim_step);
    return p;
}

/* The first line of b that differs from a's, as "section.key = value" (the config
 * text is INI: [section] headers, then key = value lines), into mine and theirs. */
static void first_difference(const char *a, const char *b, char *mine, char *theirs, size_t size)
{
    char section[64] = "";
    while (*a || *b) {
        int la = (int)strcspn(a, "\n"), lb = (int)strcspn(b, "\n");
        if (la != lb || memcmp(a, b, (size_t)la) != 0) {
            const char *dot = section[0] ? "." : "";
            snprintf(mine, size, "%s%s%.*s", section, dot, lb, b);
            snprintf(theirs, size, "%s%s%.*s", section, dot, la, a);
            return;
        }
        if (la > 2 && a[0] == '[' && a[la - 1] == ']') snprintf(section, sizeof section, "%.*s", la - 2, a + 1);
        a += la + (a[la] == '\n');
        b += lb + (b[lb] == '\n');
    }
    snprintf(mine, size, "(none)");
    snprintf(theirs, size, "(none)");
}

int kd_job_check_same(kd_comm *comm, const kd_job_state *t, kd_error *err)
{
    int ranks = kd_comm_size(comm);
    job_print mine = fingerprint(t), *all = calloc((size_t)ranks, sizeof *all);
    int rc = kd_comm_agree(comm, all ? KD_OK : kd_error_set(err, KD_ERR_IO, "out of memory"), err);
    if (!rc) rc = kd_comm_allgather(comm, &mine, sizeof mine, all, err);
    int bad = -1;
    for (int r = 1; !rc && r < ranks && bad < 0; r++)
        if (memcmp(&all[r], &all[0], sizeof mine) != 0) bad = r;
    if (!rc && bad >= 0 && all[bad].config != all[0].config) {
        char *texts = calloc((size_t)ranks, KD_CONFIG_TEXT_MAX);
        rc = kd_comm_agree(comm, texts ? KD_OK : kd_error_set(err, KD_ERR_IO, "out of memory"), err);
        if (!rc) rc = kd_comm_allgather(comm, t->config_text, KD_CONFIG_TEXT_MAX, texts, err);
        if (!rc) {
            char theirs[256], zero[256];
            first_difference(texts, texts + (size_t)bad * KD_CONFIG_TEXT_MAX, theirs, zero, sizeof theirs);
            rc = kd_error_set(err, KD_ERR_CONFIG,
                              "rank %d of %d has another config than rank 0: `%s` where rank 0 has `%s`; start every rank "
                              "with the same config and --set options",
                              bad, ranks, theirs, zero);
        }
        free(texts);
    } else if (!rc && bad >= 0 && all[bad].data != all[0].data) {
        rc = kd_error_set(err, KD_ERR_DATA,
                          "rank %d of %d read other data than rank 0 from %s (shapes, labels or features differ); every "
                          "rank needs the same data file",
                          bad, ranks, t->ds->path);
    } else if (!rc && bad >= 0 && all[bad].teacher != all[0].teacher) {
        rc = kd_error_set(err, KD_ERR_DATA,
                          "rank %d of %d has other teacher logits than rank 0 (another teacher file, or a teacher "
                          "evaluated on another thread count); every rank needs the same teacher",
                          bad, ranks);
    } else if (!rc && bad >= 0 && all[bad].stop_after != all[0].stop_after) {
        rc = kd_error_set(err, KD_ERR_CONFIG, "rank %d of %d was given --stop-after %lld, rank 0 %lld; give every rank the same",
                          bad, ranks, (long long)all[bad].stop_after, (long long)all[0].stop_after);
    } else if (!rc && bad >= 0) {
        rc = kd_error_set(err, KD_ERR_DATA,
                          "rank %d of %d starts from another state than rank 0 (epoch %lld against %lld, or other "
                          "weights): every rank must read the same run folder %s",
                          bad, ranks, (long long)all[bad].start_epoch, (long long)all[0].start_epoch,
                          t->resume ? t->resume : "(new run)");
    }
    free(all);
    if (bad >= 0 && rc && rc != KD_ERR_PEER) comm->failure_agreed = 2; /* every rank found the same */
    return rc;
}

/* provenance.h - what a committed result must say about where it came from: the
 * git commit the program was built from (marked when the build had uncommitted
 * changes; recorded at every build by cmake/build_commit.cmake) and the date, for
 * the headers of reports and the runs' summary.json. */
#ifndef KD_PROVENANCE_H
#define KD_PROVENANCE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "abc1234", "abc1234 (with uncommitted changes)" or "unknown" (built outside a checkout). */
void kd_provenance_commit(char *buf, size_t size);
/* "2026-11-29 02:22 UTC". */
void kd_provenance_date(char *buf, size_t size);

/* The commits that trained a set of runs, as each run's summary.json records them:
 * a report written later from reused runs says which code trained them. */
#define KD_MAX_COMMITS 8
typedef struct kd_commit_set {
    char commit[KD_MAX_COMMITS][48];
    int n;
    bool unknown; /* a run without a recorded commit (or more than KD_MAX_COMMITS) */
} kd_commit_set;

/* Adds the commit recorded in RUN_DIR/summary.json. */
void kd_commit_set_add_run(kd_commit_set *set, const char *run_dir);
/* "b195d67", "b195d67, a853769", "b195d67 and runs that do not record theirs", or "unknown". */
void kd_commit_set_format(const kd_commit_set *set, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif

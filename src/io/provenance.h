/* provenance.h - what a committed result must say about where it came from: the
 * git commit of the working tree (marked when it has uncommitted changes) and the
 * date, for the headers of reports. */
#ifndef KD_PROVENANCE_H
#define KD_PROVENANCE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "abc1234", "abc1234 (with uncommitted changes)" or "unknown" outside a checkout. */
void kd_git_commit(char *buf, size_t size);
/* "2026-11-29 02:22 UTC". */
void kd_utc_now(char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif

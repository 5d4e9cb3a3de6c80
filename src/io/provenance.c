/* provenance.c - see provenance.h. */
#define _POSIX_C_SOURCE 200809L
#include "io/provenance.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void kd_git_commit(char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *f = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    if (!f) return;
    if (fgets(buf, (int)size, f)) buf[strcspn(buf, "\n")] = '\0';
    pclose(f);
    if (!buf[0]) snprintf(buf, size, "unknown");
    /* results/ holds outputs, not inputs: rewriting one report must not mark the next */
    f = popen("git status --porcelain --untracked-files=no -- . ':(exclude)results' 2>/dev/null", "r");
    char line[8];
    if (f && fgets(line, sizeof line, f)) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, " (with uncommitted changes)");
    }
    if (f) pclose(f);
}

void kd_utc_now(char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M UTC", &tm);
}

/* provenance.c - see provenance.h. */
#define _POSIX_C_SOURCE 200809L
#include "io/provenance.h"

#include "io/fileutil.h"
#include "kd_build_commit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void kd_provenance_commit(char *buf, size_t size) { snprintf(buf, size, "%s", KD_BUILD_COMMIT); }

void kd_provenance_date(char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M UTC", &tm);
}

/* The string value of "key" in a JSON text written by kd_json (no escapes in it). */
static bool json_string_value(const char *text, const char *key, char *out, size_t size)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": \"", key);
    const char *at = strstr(text, pattern);
    if (!at) return false;
    at += strlen(pattern);
    const char *end = strchr(at, '"');
    if (!end || end == at || (size_t)(end - at) >= size) return false;
    memcpy(out, at, (size_t)(end - at));
    out[end - at] = '\0';
    return true;
}

void kd_commit_set_add_run(kd_commit_set *set, const char *run_dir)
{
    char path[KD_PATH_MAX], commit[48];
    snprintf(path, sizeof path, "%s/summary.json", run_dir);
    char *text = kd_file_read_text(path, 1 << 20, NULL);
    bool found = text && json_string_value(text, "commit", commit, sizeof commit);
    free(text);
    if (!found) {
        set->unknown = true;
        return;
    }
    for (int i = 0; i < set->n; i++)
        if (!strcmp(set->commit[i], commit)) return;
    if (set->n == KD_MAX_COMMITS) {
        set->unknown = true;
        return;
    }
    snprintf(set->commit[set->n++], sizeof set->commit[0], "%s", commit);
}

void kd_commit_set_format(const kd_commit_set *set, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < set->n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", set->commit[i]);
    if (set->unknown && used < size)
        snprintf(buf + used, size - used, "%s", set->n ? " and runs that do not record theirs" : "unknown");
    else if (!set->n && !set->unknown)
        snprintf(buf, size, "unknown");
}

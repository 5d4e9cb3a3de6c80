/* keys.c - typed key tables (see keys.h). */
#define _POSIX_C_SOURCE 200809L
#include "io/keys.h"

#include "core/check.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- suggestions --------------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[128];
    if (la >= 127 || lb >= 127) return 99;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Near enough to suggest: about a third of the name's letters, at most 3 edits. */
static bool near_enough(size_t distance, const char *name)
{
    size_t limit = strlen(name) / 3 + 1;
    return distance <= (limit < 3 ? limit : 3);
}

const char *kd_keys_nearest(const char *name, const char *const *names, int n)
{
    size_t best = 99;
    const char *found = NULL;
    for (int i = 0; i < n; i++) {
        size_t d = edit_distance(name, names[i]);
        if (d < best) {
            best = d;
            found = names[i];
        }
    }
    return found && near_enough(best, name) ? found : NULL;
}

/* The nearest "section.key" (or "section" when want_section) of the table to name. */
static const char *nearest_in(const kd_key *table, size_t n, const char *name, bool want_section, char *buf, size_t size)
{
    size_t best = 99;
    for (size_t i = 0; i < n; i++) {
        char candidate[160];
        if (want_section)
            snprintf(candidate, sizeof candidate, "%s", table[i].section);
        else
            snprintf(candidate, sizeof candidate, "%s.%s", table[i].section, table[i].key);
        size_t d = edit_distance(name, candidate);
        if (d < best) {
            best = d;
            snprintf(buf, size, "%s", candidate);
        }
    }
    return best < 99 && near_enough(best, name) ? buf : NULL;
}

const kd_key *kd_keys_find(const kd_key *table, size_t n, const char *section, const char *display_section,
                           const char *key, const char *where, kd_error *err)
{
    bool section_known = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].section, section) != 0) continue;
        section_known = true;
        if (strcmp(table[i].key, key) == 0) return &table[i];
    }
    const char *shown = display_section ? display_section : section;
    char hint[160], full[160], suggestion[320];
    if (!section_known) {
        const char *s = nearest_in(table, n, section, true, hint, sizeof hint);
        kd_error_set(err, KD_ERR_CONFIG, "%sunknown section [%s]%s%s%s", where, shown, s ? "; did you mean [" : "",
                     s ? s : "", s ? "]?" : "");
        return NULL;
    }
    snprintf(full, sizeof full, "%s.%s", section, key);
    const char *s = nearest_in(table, n, full, false, hint, sizeof hint);
    /* A suggestion in the same section is shown under the section's own name. */
    size_t ls = strlen(section);
    if (s && !strncmp(s, section, ls) && s[ls] == '.')
        snprintf(suggestion, sizeof suggestion, "%s.%s", shown, s + ls + 1);
    else
        snprintf(suggestion, sizeof suggestion, "%s", s ? s : "");
    kd_error_set(err, KD_ERR_CONFIG, "%sunknown key %s.%s%s%s%s", where, shown, key, s ? "; did you mean " : "",
                 s ? suggestion : "", s ? "?" : "");
    return NULL;
}

/* ---- values --------------------------------------------------------------------------- */

static bool parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return *text && *end == '\0' && errno == 0 && isfinite(*out);
}

static bool parse_int(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    *out = v;
    return *text && *end == '\0' && errno == 0;
}

int kd_keys_bad_value(const kd_key *k, const char *display, const char *where, const char *value, const char *expected,
                      kd_error *err)
{
    if (display) return kd_error_set(err, KD_ERR_CONFIG, "%s%s: expected %s, found '%s'", where, display, expected, value);
    return kd_error_set(err, KD_ERR_CONFIG, "%s%s.%s: expected %s, found '%s'", where, k->section, k->key, expected, value);
}

static void describe_range(const kd_key *k, bool integer, char *buf, size_t size)
{
    const char *kind = integer ? "an integer" : "a number";
    if (k->max >= KD_KEY_BIG)
        snprintf(buf, size, "%s %s %.15g", kind, k->min_open ? ">" : ">=", k->min);
    else
        snprintf(buf, size, "%s in %s%.15g, %.15g]", kind, k->min_open ? "(" : "[", k->min, k->max);
}

static bool in_range(const kd_key *k, double v) { return (k->min_open ? v > k->min : v >= k->min) && v <= k->max; }

int kd_keys_assign(const kd_key *k, void *target, const char *display, const char *value, const char *where,
                   kd_error *err)
{
    char *field = (char *)target + k->offset;
    char expected[128];
    switch (k->type) {
    case KD_KEY_TEXT:
        if (strlen(value) >= k->size) return kd_keys_bad_value(k, display, where, value, "a shorter text", err);
        snprintf(field, k->size, "%s", value);
        return KD_OK;
    case KD_KEY_CHOICE: {
        size_t used = (size_t)snprintf(expected, sizeof expected, "one of ");
        for (const kd_key_choice *ch = k->choices; ch->name; ch++) {
            if (!strcmp(ch->name, value)) {
                *(int *)field = ch->value;
                return KD_OK;
            }
            if (used < sizeof expected)
                used += (size_t)snprintf(expected + used, sizeof expected - used, "%s%s", ch == k->choices ? "" : "|", ch->name);
        }
        return kd_keys_bad_value(k, display, where, value, expected, err);
    }
    case KD_KEY_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1")) *(bool *)field = true;
        else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "0")) *(bool *)field = false;
        else return kd_keys_bad_value(k, display, where, value, "true or false", err);
        return KD_OK;
    case KD_KEY_INT: {
        int64_t v;
        describe_range(k, true, expected, sizeof expected);
        if (!parse_int(value, &v) || !in_range(k, (double)v)) return kd_keys_bad_value(k, display, where, value, expected, err);
        *(int64_t *)field = v;
        return KD_OK;
    }
    case KD_KEY_U64: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (!*value || *end || errno || value[0] == '-')
            return kd_keys_bad_value(k, display, where, value, "a non-negative integer", err);
        *(uint64_t *)field = v;
        return KD_OK;
    }
    case KD_KEY_FLOAT: {
        double v;
        describe_range(k, false, expected, sizeof expected);
        if (!parse_double(value, &v) || !in_range(k, v)) return kd_keys_bad_value(k, display, where, value, expected, err);
        *(double *)field = v;
        return KD_OK;
    }
    case KD_KEY_CUSTOM:
        return k->parse(k, field, display, value, where, err);
    }
    return KD_OK;
}

void kd_keys_defaults(const kd_key *table, size_t n, void *target)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].def && table[i].def[0]) {
            int rc = kd_keys_assign(&table[i], target, NULL, table[i].def, "", NULL);
            KD_ASSERT(rc == KD_OK, "the default of %s.%s does not parse", table[i].section, table[i].key);
        }
}

const char *kd_keys_choice_name(const kd_key *k, int value)
{
    for (const kd_key_choice *ch = k->choices; ch->name; ch++)
        if (ch->value == value) return ch->name;
    KD_ASSERT(false, "%s.%s holds %d, not one of its choices", k->section, k->key, value);
    return "";
}

static void format_double(double v, char *buf, size_t size)
{
    /* The shortest text that reads back as the same double. */
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, size, "%.*g", precision, v);
        if (strtod(buf, NULL) == v) return;
    }
}

void kd_keys_format(const kd_key *k, const void *target, char *buf, size_t size)
{
    const char *field = (const char *)target + k->offset;
    switch (k->type) {
    case KD_KEY_TEXT: snprintf(buf, size, "%s", field); break;
    case KD_KEY_CHOICE: snprintf(buf, size, "%s", kd_keys_choice_name(k, *(const int *)field)); break;
    case KD_KEY_BOOL: snprintf(buf, size, "%s", *(const bool *)field ? "true" : "false"); break;
    case KD_KEY_INT: snprintf(buf, size, "%lld", (long long)*(const int64_t *)field); break;
    case KD_KEY_U64: snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)field); break;
    case KD_KEY_FLOAT: format_double(*(const double *)field, buf, size); break;
    case KD_KEY_CUSTOM: KD_ASSERT(false, "%s.%s is custom: its owner formats it", k->section, k->key); break;
    }
}

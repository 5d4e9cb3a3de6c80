/* ini.c - see ini.h. */
#include "io/ini.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

/* Drops a trailing comment: '#' or ';' preceded by whitespace. */
static void strip_comment(char *value)
{
    for (char *p = value; *p; p++)
        if ((*p == '#' || *p == ';') && (p == value || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
}

static bool valid_name(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.') return false;
    return true;
}

/* Text as a message may quote it: at most 60 bytes, anything but printable ASCII
 * and UTF-8 as \xNN (a binary file is not echoed to the terminal). */
static const char *quoted(const char *s, char *buf, size_t size)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 8 < size; p++) {
        if (p - (const unsigned char *)s >= 60) {
            n += (size_t)snprintf(buf + n, size - n, "...");
            break;
        }
        if (*p >= 0x20 && *p != 0x7f) buf[n++] = (char)*p;
        else n += (size_t)snprintf(buf + n, size - n, "\\x%02x", *p);
    }
    buf[n] = '\0';
    return buf;
}

/* The first control character of a line (tab and a final CR are text). */
static const char *control_char(const char *line)
{
    for (const char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t' && !(*p == '\r' && p[1] == '\0')) return p;
    return NULL;
}

typedef struct seen_key {
    char section[KD_INI_NAME_MAX], key[KD_INI_NAME_MAX];
    int line;
} seen_key;

/* The line where section.key was set before, or 0; remembers it otherwise. */
static int earlier_line(seen_key **seen, int *n, int *cap, const kd_ini_entry *e, bool *oom)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*seen)[i].section, e->section) && !strcmp((*seen)[i].key, e->key)) return (*seen)[i].line;
    if (*n == *cap) {
        int grown = *cap ? 2 * *cap : 64;
        seen_key *more = realloc(*seen, (size_t)grown * sizeof *more);
        if (!more) {
            *oom = true;
            return 0;
        }
        *seen = more;
        *cap = grown;
    }
    seen_key *k = &(*seen)[(*n)++];
    memcpy(k->section, e->section, sizeof k->section);
    memcpy(k->key, e->key, sizeof k->key);
    k->line = e->line;
    return 0;
}

static int parse_lines(const char *text, const char *source,
                       int (*on_entry)(const kd_ini_entry *entry, void *user, kd_error *err), void *user,
                       seen_key **seen, int *n_seen, int *cap_seen, kd_error *err)
{
    kd_ini_entry entry;
    memset(&entry, 0, sizeof entry);
    char line[KD_INI_VALUE_MAX + KD_INI_NAME_MAX + 8], q[256];
    const char *p = text;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3; /* a UTF-8 byte-order mark, as some editors write: not part of the first line */
    for (int number = 1; *p; number++) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len >= sizeof line)
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: line longer than %zu characters", source, number,
                                sizeof line - 1);
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol ? eol + 1 : p + len;
        const char *bad = control_char(line);
        if (bad)
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: expected text, found the byte 0x%02x at column %d (a binary file?)",
                                source, number, (unsigned char)*bad, (int)(bad - line) + 1);
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || *trim(close + 1) != '\0')
                return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: expected [section], found '%s'", source, number,
                                    quoted(s, q, sizeof q));
            *close = '\0';
            char *name = trim(s + 1);
            if (!valid_name(name) || strlen(name) >= KD_INI_NAME_MAX)
                return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: bad section name '%s'", source, number,
                                    quoted(name, q, sizeof q));
            snprintf(entry.section, sizeof entry.section, "%s", name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq)
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: expected key = value, found '%s'", source, number,
                                quoted(s, q, sizeof q));
        *eq = '\0';
        char *key = trim(s), *value = eq + 1;
        strip_comment(value);
        value = trim(value);
        if (!entry.section[0])
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: key '%s' before any [section]", source, number,
                                quoted(key, q, sizeof q));
        if (!valid_name(key) || strlen(key) >= KD_INI_NAME_MAX)
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: bad key name '%s'", source, number,
                                quoted(key, q, sizeof q));
        snprintf(entry.key, sizeof entry.key, "%s", key);
        snprintf(entry.value, sizeof entry.value, "%s", value);
        entry.line = number;
        bool oom = false;
        int before = earlier_line(seen, n_seen, cap_seen, &entry, &oom);
        if (oom) return kd_error_set(err, KD_ERR_IO, "%s: out of memory", source);
        if (before)
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: %s.%s was already set on line %d (a key may appear once)",
                                source, number, entry.section, entry.key, before);
        int rc = on_entry(&entry, user, err);
        if (rc) return rc;
    }
    return KD_OK;
}

int kd_ini_parse(const char *text, const char *source,
                 int (*on_entry)(const kd_ini_entry *entry, void *user, kd_error *err), void *user,
                 kd_error *err)
{
    seen_key *seen = NULL;
    int n_seen = 0, cap_seen = 0;
    int rc = parse_lines(text, source, on_entry, user, &seen, &n_seen, &cap_seen, err);
    free(seen);
    return rc;
}

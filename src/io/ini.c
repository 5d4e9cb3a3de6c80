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

int kd_ini_parse(const char *text, const char *source,
                 int (*on_entry)(const kd_ini_entry *entry, void *user, kd_error *err), void *user,
                 kd_error *err)
{
    kd_ini_entry entry;
    memset(&entry, 0, sizeof entry);
    char line[KD_INI_VALUE_MAX + KD_INI_NAME_MAX + 8];
    const char *p = text;
    for (int number = 1; *p; number++) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len >= sizeof line)
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: line longer than %zu characters", source, number,
                                sizeof line - 1);
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol ? eol + 1 : p + len;
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || *trim(close + 1) != '\0')
                return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: expected [section], found '%s'", source, number, s);
            *close = '\0';
            char *name = trim(s + 1);
            if (!valid_name(name) || strlen(name) >= KD_INI_NAME_MAX)
                return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: bad section name '%s'", source, number, name);
            snprintf(entry.section, sizeof entry.section, "%s", name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq)
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: expected key = value, found '%s'", source, number, s);
        *eq = '\0';
        char *key = trim(s), *value = eq + 1;
        strip_comment(value);
        value = trim(value);
        if (!entry.section[0])
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: key '%s' before any [section]", source, number, key);
        if (!valid_name(key) || strlen(key) >= KD_INI_NAME_MAX)
            return kd_error_set(err, KD_ERR_CONFIG, "%s:%d: bad key name '%s'", source, number, key);
        snprintf(entry.key, sizeof entry.key, "%s", key);
        snprintf(entry.value, sizeof entry.value, "%s", value);
        entry.line = number;
        int rc = on_entry(&entry, user, err);
        if (rc) return rc;
    }
    return KD_OK;
}

/* ini.h - a small INI reader: `[section]`, `key = value`, comments starting with
 * '#' or ';' (whole lines, or after whitespace at the end of a value). Every entry
 * keeps its line number so errors can point at it. A key may appear once in a
 * section; a leading UTF-8 byte-order mark is skipped; control characters (a binary
 * file) are an error, and messages quote text with non-printable bytes escaped. (libinih's Debian build gives
 * its handler no line numbers and cuts lines at 200 characters; this is simpler.) */
#ifndef KD_INI_H
#define KD_INI_H

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KD_INI_NAME_MAX 64
#define KD_INI_VALUE_MAX 1024

typedef struct kd_ini_entry {
    char section[KD_INI_NAME_MAX];
    char key[KD_INI_NAME_MAX];
    char value[KD_INI_VALUE_MAX];
    int line;
} kd_ini_entry;

/* Calls on_entry for each key = value in text; a syntax error names source:line.
 * on_entry returns KD_OK or an error code (and fills err) to stop. */
int kd_ini_parse(const char *text, const char *source,
                 int (*on_entry)(const kd_ini_entry *entry, void *user, kd_error *err), void *user,
                 kd_error *err);


#ifdef __cplusplus
}
#endif
#endif

/* args.c - see args.h. */
#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kd_arg_value(kd_args *a, const char *name, const char *expected, const char **value)
{
    const char *arg = a->argv[a->i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0 || (arg[len] != '\0' && arg[len] != '=')) return 0;
    bool attached = arg[len] == '=';
    if (attached)
        *value = arg + len + 1;
    else
        *value = a->i + 1 < a->argc ? a->argv[++a->i] : NULL;
    if (!*value || !**value) {
        fprintf(stderr, "%s: %s: expected %s, found no value\n", a->command, name, expected);
        return -1;
    }
    /* `-c --quiet` forgot the value: the next option is not taken as one. */
    if (!attached && strncmp(*value, "--", 2) == 0) {
        fprintf(stderr, "%s: %s: expected %s, found the option '%s' (write %s=VALUE for a value starting with --)\n",
                a->command, name, expected, *value, name);
        return -1;
    }
    return 1;
}

bool kd_arg_flag(const kd_args *a, const char *name) { return strcmp(a->argv[a->i], name) == 0; }

bool kd_arg_int(const kd_args *a, const char *name, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!*text || *end || errno || v < min || v > max) {
        fprintf(stderr, "%s: %s: expected a whole number in %ld..%ld, found '%s'\n", a->command, name, min, max, text);
        return false;
    }
    *out = v;
    return true;
}

int kd_arg_unknown(const kd_args *a)
{
    fprintf(stderr, "%s: unknown argument '%s'; '%s --help' lists the options\n", a->command, a->argv[a->i],
            a->command);
    return 2;
}

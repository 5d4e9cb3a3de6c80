/* fuzz_config.c - the INI reader and the run config on arbitrary text: every input is
 * accepted or refused with a message, never a crash. */
#include "workflows/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* a NUL inside ends the text, as kd_file_read_text refuses such files */
    kd_config *c = malloc(sizeof *c);
    kd_error err;
    kd_error_clear(&err);
    kd_config_defaults(c);
    if (kd_config_load_text(c, text, "fuzz.ini", &err) == KD_OK) {
        (void)kd_config_validate(c, &err);
        char normal[KD_CONFIG_TEXT_MAX];
        (void)kd_config_normalize(text, normal, sizeof normal, &err);
    }
    free(c);
    free(text);
    return 0;
}

/* precision.c - see precision.h. */
#include "workflows/precision.h"

#include "core/matmul_bf16.h"

#include <stdio.h>
#include <string.h>

int kd_precision_resolve(const kd_config *c, int batch, int n, int k, kd_precision_choice *out, kd_error *err)
{
    memset(out, 0, sizeof *out);
    out->name = "fp32";
    if (c->train.precision == KD_PRECISION_FP32) {
        snprintf(out->reason, sizeof out->reason, "train.precision = fp32");
        return KD_OK;
    }
    bool native = false;
    kd_error probe_err;
    int rc = kd_mm_bf16_probe(batch, n, k, out->impl, sizeof out->impl, &native, &probe_err);
    if (c->train.precision == KD_PRECISION_BF16) {
        if (rc)
            return kd_error_set(err, KD_ERR_CONFIG, "train.precision = bf16: %s; use fp32 or auto", probe_err.message);
        out->bf16 = true;
        out->name = "bf16";
        snprintf(out->reason, sizeof out->reason, "train.precision = bf16; oneDNN's kernel: %s%s", out->impl,
                 native ? " (native bf16)" : " (an emulation, slower than fp32 on this CPU)");
        return KD_OK;
    }
    if (rc) {
        snprintf(out->reason, sizeof out->reason, "train.precision = auto: no bf16 product on this CPU (%.160s)",
                 probe_err.message);
    } else if (!native) {
        snprintf(out->reason, sizeof out->reason,
                 "train.precision = auto: oneDNN's bf16 kernel here is %s, an emulation slower than fp32", out->impl);
    } else {
        out->bf16 = true;
        out->name = "bf16";
        snprintf(out->reason, sizeof out->reason, "train.precision = auto: oneDNN runs bf16 natively here (%s)",
                 out->impl);
    }
    return KD_OK;
}

/* tensorfile.c - dtype names and conversion of any float or GGML block
 * dtype to fp32. Source data comes straight from a file mapping, which makes
 * no alignment promise, so scalars are read with memcpy (little-endian host
 * assumed, as in both file formats). */
#include "io/tensorfile.h"

#include <string.h>

#include "core/util.h"
#include "quant/ggml_blocks.h"

/* Names as the file formats spell them (safetensors for the plain dtypes,
 * ggml for the block formats). */
const char *lorac_dtype_name(lorac_dtype t) {
    static const char *const names[LORAC_DTYPE_COUNT] = {
        [LORAC_F32] = "F32",   [LORAC_F16] = "F16",   [LORAC_BF16] = "BF16", [LORAC_F64] = "F64",
        [LORAC_I8] = "I8",     [LORAC_U8] = "U8",     [LORAC_I16] = "I16",   [LORAC_I32] = "I32",
        [LORAC_I64] = "I64",   [LORAC_BOOL] = "BOOL", [LORAC_Q4_0] = "Q4_0", [LORAC_Q4_1] = "Q4_1",
        [LORAC_Q8_0] = "Q8_0", [LORAC_Q4_K] = "Q4_K", [LORAC_Q6_K] = "Q6_K", [LORAC_Q5_0] = "Q5_0",
        [LORAC_Q5_1] = "Q5_1", [LORAC_Q2_K] = "Q2_K", [LORAC_Q3_K] = "Q3_K", [LORAC_Q5_K] = "Q5_K",
        [LORAC_IQ4_NL] = "IQ4_NL", [LORAC_IQ4_XS] = "IQ4_XS",
    };
    return (unsigned)t < LORAC_DTYPE_COUNT ? names[t] : "invalid-dtype";
}

lorac_status lorac_to_f32(float *dst, const void *src, lorac_dtype t, int64_t n) {
    const uint8_t *p = src;
    if (n < 0) return lorac_fail(LORAC_ERR_ARG, "lorac_to_f32: negative element count %lld", (long long)n);
    switch (t) {
    case LORAC_F32:
        if (n) memcpy(dst, p, (size_t)n * sizeof(float));
        return LORAC_OK;
    case LORAC_F16:
    case LORAC_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = t == LORAC_F16 ? lorac_f16_to_f32(h) : lorac_bf16_to_f32(h);
        }
        return LORAC_OK;
    case LORAC_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        return LORAC_OK;
    default:
        if (lorac_is_block_type(t)) return lorac_dequant_row(t, src, dst, n);
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "cannot convert %s tensor data to fp32 (only float and GGML block dtypes)",
                          lorac_dtype_name(t));
    }
}

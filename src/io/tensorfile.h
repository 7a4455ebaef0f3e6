/* tensorfile.h - dtypes and tensor descriptors shared by the safetensors and
 * GGUF readers. A descriptor points into a read-only mapping that the file
 * object owns; it stays valid until that file object is closed. */
#ifndef LORAC_IO_TENSORFILE_H
#define LORAC_IO_TENSORFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum lorac_dtype {
    LORAC_F32 = 0,
    LORAC_F16,
    LORAC_BF16,
    LORAC_F64,
    LORAC_I8,
    LORAC_U8,
    LORAC_I16,
    LORAC_I32,
    LORAC_I64,
    LORAC_BOOL,
    /* GGML block formats (GGUF only) */
    LORAC_Q4_0,
    LORAC_Q4_1,
    LORAC_Q8_0,
    LORAC_Q4_K,
    LORAC_Q6_K,
    LORAC_Q5_0,
    LORAC_Q5_1,
    LORAC_Q2_K,
    LORAC_Q3_K,
    LORAC_Q5_K,
    LORAC_IQ4_NL,
    LORAC_IQ4_XS,
    LORAC_DTYPE_COUNT
} lorac_dtype;

const char *lorac_dtype_name(lorac_dtype t);

#define LORAC_MAX_DIMS 8

typedef struct lorac_tensor_desc {
    const char *name;               /* owned by the file object */
    lorac_dtype dtype;
    int ndim;
    int64_t shape[LORAC_MAX_DIMS];  /* in the file's own order: safetensors is
                                       row-major [rows, cols]; GGUF ne[] is
                                       reported REVERSED here so that both
                                       read as row-major (ne0 = last dim) */
    int64_t numel;
    const void *data;               /* into the mapping */
    size_t nbytes;
} lorac_tensor_desc;

/* Convert `n` elements of a tensor of dtype t (any float or GGML block type)
 * to fp32. For block types n must be a multiple of the block size. */
lorac_status lorac_to_f32(float *dst, const void *src, lorac_dtype t, int64_t n);

#endif

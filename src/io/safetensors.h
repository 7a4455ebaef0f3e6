/* safetensors.h - read (mmap, zero-copy) and write safetensors files.
 *
 * Format: u64 little-endian header length N, then N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data buffer; offsets are relative
 * to the buffer start. Every offset, length and shape is checked against the
 * file before use: end - begin must equal numel * dtype size, end <= buffer
 * size, offsets non-overlapping, header <= 100 MB. */
#ifndef LORAC_IO_SAFETENSORS_H
#define LORAC_IO_SAFETENSORS_H

#include "io/tensorfile.h"

typedef struct lorac_st lorac_st; /* one file, or a sharded set */

/* Open `path`: a .safetensors file, a model.safetensors.index.json, or a
 * directory containing model.safetensors or model.safetensors.index.json.
 * Sharded sets are presented as one tensor namespace. */
lorac_status lorac_st_open(const char *path, lorac_st **out);
void lorac_st_close(lorac_st *st);

int lorac_st_count(const lorac_st *st);
const lorac_tensor_desc *lorac_st_get(const lorac_st *st, int i);
/* NULL if absent. */
const lorac_tensor_desc *lorac_st_find(const lorac_st *st, const char *name);
/* "__metadata__" value for key, or NULL. */
const char *lorac_st_metadata(const lorac_st *st, const char *key);
/* Path of the file a tensor came from (for error messages). */
const char *lorac_st_path_of(const lorac_st *st, const lorac_tensor_desc *t);

/* Writing. Each entry is fp32 data with its shape, written as `dtype`
 * (F32, F16 or BF16; converted on write), or U8 bytes given in raw. Atomic: temporary file, fsync,
 * rename. metadata: NULL or NULL-terminated key/value string pairs. */
typedef struct lorac_st_entry {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[LORAC_MAX_DIMS];
    lorac_dtype dtype;
    const void *raw; /* LORAC_U8 only: the bytes, written as they are (data unused) */
} lorac_st_entry;
lorac_status lorac_st_write(const char *path, const lorac_st_entry *entries, int n, const char *const *metadata);

#endif

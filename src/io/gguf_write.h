/* gguf_write.h - write GGUF v3 files (llama.cpp's format): metadata pairs,
 * tensor infos, tensor data in F32 or F16.
 *
 * Usage: lorac_gguf_writer_new, any number of lorac_gguf_set_* and
 * lorac_gguf_add_tensor calls, lorac_gguf_writer_write (atomic: temporary
 * file, fsync, rename), lorac_gguf_writer_free.
 *
 * Layout written (little-endian, as src/io/gguf.h reads it): "GGUF", u32 3,
 * u64 tensor_count, u64 kv_count, the kv pairs in the order they were set,
 * the tensor infos in the order they were added (ne[] in ggml order, i.e.
 * the row-major shape reversed; offsets relative to the data section), zero
 * padding to the alignment, then each tensor's data, each padded with zeros
 * to the alignment (the last one too, as ggml's own writer does).
 *
 * The alignment is general.alignment: 32 unless lorac_gguf_writer_set_alignment
 * says otherwise; it is always written as a UINT32 pair (ggml reads that key
 * with gguf_get_val_u32, which insists on the type).
 *
 * Tensor data is NOT copied: the float arrays passed to add_tensor must stay
 * valid until lorac_gguf_writer_write returns. Keys and names are copied. */
#ifndef LORAC_IO_GGUF_WRITE_H
#define LORAC_IO_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "io/tensorfile.h"

typedef struct lorac_gguf_writer lorac_gguf_writer;

/* ggml limits a tensor name to GGML_MAX_NAME - 1 = 63 bytes. */
#define LORAC_GGUF_MAX_NAME 63

lorac_status lorac_gguf_writer_new(lorac_gguf_writer **out);
void lorac_gguf_writer_free(lorac_gguf_writer *w);

/* A power of two between 1 and 2^20 (default 32). Call before writing. */
lorac_status lorac_gguf_writer_set_alignment(lorac_gguf_writer *w, uint32_t align);

/* Metadata. Each key may be set once (a second set is LORAC_ERR_ARG);
 * general.alignment is reserved for set_alignment. */
lorac_status lorac_gguf_set_str(lorac_gguf_writer *w, const char *key, const char *val);
lorac_status lorac_gguf_set_u32(lorac_gguf_writer *w, const char *key, uint32_t val);
lorac_status lorac_gguf_set_i32(lorac_gguf_writer *w, const char *key, int32_t val);
lorac_status lorac_gguf_set_u64(lorac_gguf_writer *w, const char *key, uint64_t val);
lorac_status lorac_gguf_set_f32(lorac_gguf_writer *w, const char *key, float val);
lorac_status lorac_gguf_set_bool(lorac_gguf_writer *w, const char *key, int val);
/* Arrays of UINT32 / FLOAT32 / STRING elements (copied). */
lorac_status lorac_gguf_set_arr_u32(lorac_gguf_writer *w, const char *key, const uint32_t *v, size_t n);
lorac_status lorac_gguf_set_arr_f32(lorac_gguf_writer *w, const char *key, const float *v, size_t n);
lorac_status lorac_gguf_set_arr_str(lorac_gguf_writer *w, const char *key, const char *const *v, size_t n);

/* A tensor of row-major `shape` (ndim 1..4, every dim >= 1) from fp32 `data`,
 * stored as `type` (LORAC_F32, or LORAC_F16 with round-to-nearest-even).
 * Names are unique and at most LORAC_GGUF_MAX_NAME bytes. */
lorac_status lorac_gguf_add_tensor(lorac_gguf_writer *w, const char *name, const float *data, int ndim,
                                   const int64_t *shape, lorac_dtype type);

/* Size in bytes of the file lorac_gguf_writer_write would produce now. */
uint64_t lorac_gguf_writer_size(const lorac_gguf_writer *w);
int lorac_gguf_writer_tensor_count(const lorac_gguf_writer *w);

/* Write everything to `path` atomically (an existing file is replaced only
 * when the new one is complete and fsync'd). */
lorac_status lorac_gguf_writer_write(const lorac_gguf_writer *w, const char *path);

#endif

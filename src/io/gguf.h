/* gguf.h - read GGUF v2/v3 files (llama.cpp's format), mmap'd.
 *
 * Layout: magic "GGUF", u32 version, u64 tensor_count, u64 kv_count, then
 * kv pairs (gguf string key, u32 type, value), then tensor infos (name,
 * u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), then padding to
 * general.alignment (default 32), then tensor data. Every count, length and
 * offset is bounds-checked against the file before use; counts are capped
 * against the file size so a hostile header cannot force a huge allocation. */
#ifndef LORAC_IO_GGUF_H
#define LORAC_IO_GGUF_H

#include "io/tensorfile.h"

typedef struct lorac_gguf lorac_gguf;

typedef enum lorac_gguf_type {
    LORAC_GGUF_U8 = 0, LORAC_GGUF_I8 = 1, LORAC_GGUF_U16 = 2, LORAC_GGUF_I16 = 3,
    LORAC_GGUF_U32 = 4, LORAC_GGUF_I32 = 5, LORAC_GGUF_F32 = 6, LORAC_GGUF_BOOL = 7,
    LORAC_GGUF_STRING = 8, LORAC_GGUF_ARRAY = 9, LORAC_GGUF_U64 = 10, LORAC_GGUF_I64 = 11,
    LORAC_GGUF_F64 = 12
} lorac_gguf_type;

lorac_status lorac_gguf_open(const char *path, lorac_gguf **out);
/* The key-value metadata alone (tokenizer, config): tensor infos are not
 * read, so tensor types lorac cannot load do not matter; the tensor
 * accessors then see no tensors. */
lorac_status lorac_gguf_open_metadata(const char *path, lorac_gguf **out);
void lorac_gguf_close(lorac_gguf *g);

uint32_t lorac_gguf_version(const lorac_gguf *g);

/* ---- metadata. Lookups return -1 / NULL / 0 when the key is absent. ---- */
int lorac_gguf_find_key(const lorac_gguf *g, const char *key);   /* index or -1 */
int lorac_gguf_kv_count(const lorac_gguf *g);
const char *lorac_gguf_key(const lorac_gguf *g, int i);
lorac_gguf_type lorac_gguf_kv_type(const lorac_gguf *g, int i);
/* Typed getters with a default; any integer type converts to int64, any
 * float type to double. Return 1 if found with a compatible type, else 0. */
int lorac_gguf_get_int(const lorac_gguf *g, const char *key, int64_t *out);
int lorac_gguf_get_float(const lorac_gguf *g, const char *key, double *out);
/* A BOOL value as 0/1; returns 1 if found with type BOOL. */
int lorac_gguf_get_bool(const lorac_gguf *g, const char *key, int *out);
/* NUL-terminated copy owned by g; NULL if absent or not a string. */
const char *lorac_gguf_get_str(const lorac_gguf *g, const char *key);
/* Arrays: element type and length; 0 if absent or not an array. */
int lorac_gguf_get_arr(const lorac_gguf *g, const char *key, lorac_gguf_type *elem_type, uint64_t *len);
/* Element i of a string array (NUL-terminated, owned by g; strings may
 * contain any bytes except that embedded NULs end them early: use
 * lorac_gguf_arr_str_len for the true length). */
const char *lorac_gguf_arr_str(const lorac_gguf *g, const char *key, uint64_t i);
uint64_t lorac_gguf_arr_str_len(const lorac_gguf *g, const char *key, uint64_t i);
/* Numeric array element as double / int64 (any numeric element type). */
double lorac_gguf_arr_f64(const lorac_gguf *g, const char *key, uint64_t i);
int64_t lorac_gguf_arr_i64(const lorac_gguf *g, const char *key, uint64_t i);

/* ---- tensors: shape reported row-major (GGUF ne[] reversed). ---- */
int lorac_gguf_tensor_count(const lorac_gguf *g);
const lorac_tensor_desc *lorac_gguf_tensor(const lorac_gguf *g, int i);
const lorac_tensor_desc *lorac_gguf_find_tensor(const lorac_gguf *g, const char *name);
const char *lorac_gguf_path(const lorac_gguf *g);
/* Byte offset of t's data (a tensor of g) from the start of the file. */
uint64_t lorac_gguf_tensor_file_offset(const lorac_gguf *g, const lorac_tensor_desc *t);

#endif

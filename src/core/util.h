/* util.h - small helpers shared by every part of liblorac: checked
 * allocation, whole-file reads, mmap, atomic writes, half-float conversion,
 * a monotonic clock. Ownership: every pointer returned through an `out`
 * argument is owned by the caller and freed with the matching release call. */
#ifndef LORAC_CORE_UTIL_H
#define LORAC_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* calloc that reports "out of memory allocating <what> (<bytes> bytes)". */
lorac_status lorac_alloc(void **out, size_t n, size_t size, const char *what);
/* Overflow-checked a*b; returns 0 on overflow. */
int lorac_mul_ok(size_t a, size_t b, size_t *out);

/* Read a whole file into a NUL-terminated buffer (free with free()).
 * Files larger than max_bytes are refused with a clear error. */
lorac_status lorac_read_file(const char *path, size_t max_bytes, char **out, size_t *len);

/* Read-only mapping of a whole file. */
typedef struct lorac_mmap {
    const uint8_t *data;
    size_t size;
} lorac_mmap;
lorac_status lorac_mmap_open(const char *path, lorac_mmap *m);
void lorac_mmap_close(lorac_mmap *m);

/* Atomic file write: data goes to "<path>.tmp.<pid>", is fsync'd, then
 * renamed over `path`; on any failure the old file is untouched and the
 * temporary removed. The writer callback streams the content. */
lorac_status lorac_write_atomic(const char *path, const void *data, size_t len);
/* Streaming variant: `fn` writes to the FILE*; returns non-zero on error. */
#include <stdio.h>
lorac_status lorac_write_atomic_stream(const char *path,
                                       int (*fn)(void *ctx, FILE *f),
                                       void *ctx);

/* mkdir -p */
lorac_status lorac_mkdirs(const char *dir);
int lorac_file_exists(const char *path);
/* join "dir/name" into buf (size n); returns buf. */
char *lorac_path_join(char *buf, size_t n, const char *dir, const char *name);

/* IEEE half and bfloat16 conversion (round-to-nearest-even on the way down). */
float lorac_f16_to_f32(uint16_t h);
uint16_t lorac_f32_to_f16(float f);
float lorac_bf16_to_f32(uint16_t h);
uint16_t lorac_f32_to_bf16(float f);

/* Monotonic seconds. */
double lorac_now(void);
/* LORAC_ERR_NUMERIC naming `file`, `tensor`, the first NaN / Inf of x[0..n)
 * and `hint`, or LORAC_OK when every value is finite. */
lorac_status lorac_check_finite(const float *x, size_t n, const char *file, const char *tensor, const char *hint);
/* Peak resident set size of this process in bytes (0 if unknown). */
size_t lorac_peak_rss(void);

#endif

#define _GNU_SOURCE
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

lorac_status lorac_alloc(void **out, size_t n, size_t size, const char *what) {
    size_t total;
    *out = NULL;
    if (!lorac_mul_ok(n, size, &total))
        return lorac_fail(LORAC_ERR_NOMEM, "size overflow allocating %s (%zu x %zu bytes)", what, n, size);
    if (total == 0) total = 1;
    void *p = calloc(1, total);
    if (!p) return lorac_fail(LORAC_ERR_NOMEM, "out of memory allocating %s (%zu bytes)", what, total);
    *out = p;
    return LORAC_OK;
}

int lorac_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

lorac_status lorac_read_file(const char *path, size_t max_bytes, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lorac_fail(LORAC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lorac_fail(LORAC_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return lorac_fail(LORAC_ERR_FORMAT, "%s: file is %lld bytes, more than the %zu allowed for this kind of file",
                          path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    if (n && fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return lorac_fail(LORAC_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return LORAC_OK;
}

lorac_status lorac_mmap_open(const char *path, lorac_mmap *m) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lorac_fail(LORAC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lorac_fail(LORAC_ERR_IO, "%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size == 0) {
        close(fd);
        return LORAC_OK; /* empty file: callers report it as truncated */
    }
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return lorac_fail(LORAC_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    return LORAC_OK;
}

void lorac_mmap_close(lorac_mmap *m) {
    if (m && m->data) munmap((void *)m->data, m->size);
    if (m) {
        m->data = NULL;
        m->size = 0;
    }
}

static int write_buf(void *ctx, FILE *f) {
    const struct { const void *d; size_t n; } *b = ctx;
    return b->n && fwrite(b->d, 1, b->n, f) != b->n;
}

lorac_status lorac_write_atomic(const char *path, const void *data, size_t len) {
    struct { const void *d; size_t n; } b = {data, len};
    return lorac_write_atomic_stream(path, write_buf, &b);
}

lorac_status lorac_write_atomic_stream(const char *path, int (*fn)(void *ctx, FILE *f), void *ctx) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return lorac_fail(LORAC_ERR_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return lorac_fail(LORAC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fn(ctx, f);
    if (!bad && fflush(f) != 0) bad = 1;
    if (!bad && fsync(fileno(f)) != 0) bad = 1;
    int err = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        unlink(tmp);
        return lorac_fail(LORAC_ERR_IO, "%s: write failed (%s); the previous file, if any, is untouched", path,
                          err ? strerror(err) : "writer error");
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        return lorac_fail(LORAC_ERR_IO, "%s: rename failed: %s", path, strerror(err));
    }
    return LORAC_OK;
}

lorac_status lorac_mkdirs(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) return lorac_fail(LORAC_ERR_ARG, "bad directory name '%s'", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return lorac_fail(LORAC_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return lorac_fail(LORAC_ERR_IO, "%s: exists and is not a directory", dir);
    return LORAC_OK;
}

int lorac_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *lorac_path_join(char *buf, size_t n, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    snprintf(buf, n, "%s%s%s", dir, (dl && dir[dl - 1] == '/') ? "" : "/", name);
    return buf;
}

float lorac_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lorac_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff);
    uint32_t man = x & 0x7fffff;
    if (exp == 255) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    exp = exp - 127 + 15;
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

float lorac_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lorac_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

double lorac_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t lorac_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024;
}

lorac_status lorac_check_finite(const float *x, size_t n, const char *file, const char *tensor, const char *hint) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return lorac_fail(LORAC_ERR_NUMERIC, "%s: tensor '%s' holds %s at element %zu; hint: %s", file, tensor,
                              isnan(x[i]) ? "NaN" : "an infinite value", i, hint);
    return LORAC_OK;
}

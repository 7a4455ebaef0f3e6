/* gguf_write.c - GGUF v3 writer (see gguf_write.h for the layout).
 *
 * Each metadata pair is encoded once, when it is set, into a byte blob
 * (u32 value type + value), so writing and sizing the file are simple sums.
 * Tensor data offsets are assigned as tensors are added: each one starts at
 * the aligned end of the previous one. */
#include "io/gguf_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/gguf.h"

#define GGUF_VERSION 3
#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define ALIGN_KEY "general.alignment"
#define MAX_ALIGNMENT (1u << 20)

typedef struct w_kv {
    char *key;
    uint8_t *blob; /* u32 type, then the value */
    size_t len;
} w_kv;

typedef struct w_tensor {
    char name[LORAC_GGUF_MAX_NAME + 1];
    int ndim;
    uint64_t ne[GGUF_MAX_DIMS]; /* ggml order: ne[0] is the row length */
    lorac_dtype type;
    const float *data;
    uint64_t numel, nbytes, offset;
} w_tensor;

struct lorac_gguf_writer {
    uint32_t align;
    w_kv *kv;
    int n_kv, cap_kv;
    w_tensor *t;
    int n_t, cap_t;
};

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

lorac_status lorac_gguf_writer_new(lorac_gguf_writer **out) {
    *out = NULL;
    lorac_gguf_writer *w;
    LORAC_TRY(lorac_alloc((void **)&w, 1, sizeof *w, "GGUF writer"));
    w->align = GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return LORAC_OK;
}

void lorac_gguf_writer_free(lorac_gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].blob);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* Data offsets depend on the alignment: recompute them all. */
static void place_tensors(lorac_gguf_writer *w) {
    uint64_t at = 0;
    for (int i = 0; i < w->n_t; i++) {
        w->t[i].offset = at;
        at = pad_to(at + w->t[i].nbytes, w->align);
    }
}

lorac_status lorac_gguf_writer_set_alignment(lorac_gguf_writer *w, uint32_t align) {
    if (align == 0 || (align & (align - 1)) != 0 || align > MAX_ALIGNMENT)
        return lorac_fail(LORAC_ERR_ARG, "GGUF alignment %u is not a power of two in 1..%u", align, MAX_ALIGNMENT);
    w->align = align;
    place_tensors(w);
    return LORAC_OK;
}

/* ------------------------------------------------------------- metadata */

/* A growing byte buffer for one encoded value. */
typedef struct buf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    put_u64(b, (uint64_t)strlen(s));
    put(b, s, strlen(s));
}

static int key_index(const lorac_gguf_writer *w, const char *key) {
    for (int i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return i;
    return -1;
}

/* Take ownership of b (freed on failure) as the value of a new key. */
static lorac_status add_kv(lorac_gguf_writer *w, const char *key, buf *b) {
    lorac_status st = LORAC_OK;
    if (b->oom) st = lorac_fail(LORAC_ERR_NOMEM, "out of memory encoding GGUF key '%s'", key);
    else if (key_index(w, key) >= 0) st = lorac_fail(LORAC_ERR_ARG, "GGUF key '%s' is set twice", key);
    if (st != LORAC_OK) {
        free(b->p);
        return st;
    }
    if (w->n_kv == w->cap_kv) {
        int cap = w->cap_kv ? 2 * w->cap_kv : 16;
        w_kv *kv = realloc(w->kv, sizeof *kv * (size_t)cap);
        if (!kv) {
            free(b->p);
            return lorac_fail(LORAC_ERR_NOMEM, "out of memory adding GGUF key '%s'", key);
        }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = malloc(strlen(key) + 1);
    if (!k) {
        free(b->p);
        return lorac_fail(LORAC_ERR_NOMEM, "out of memory adding GGUF key '%s'", key);
    }
    memcpy(k, key, strlen(key) + 1);
    w->kv[w->n_kv++] = (w_kv){k, b->p, b->n};
    return LORAC_OK;
}

static lorac_status check_key(const char *key) {
    if (!key || !*key) return lorac_fail(LORAC_ERR_ARG, "empty GGUF key");
    if (!strcmp(key, ALIGN_KEY))
        return lorac_fail(LORAC_ERR_ARG, "GGUF key '%s' is set through lorac_gguf_writer_set_alignment", key);
    return LORAC_OK;
}

static lorac_status set_scalar(lorac_gguf_writer *w, const char *key, lorac_gguf_type t, const void *v, size_t n) {
    LORAC_TRY(check_key(key));
    buf b = {0};
    put_u32(&b, (uint32_t)t);
    put(&b, v, n);
    return add_kv(w, key, &b);
}

lorac_status lorac_gguf_set_str(lorac_gguf_writer *w, const char *key, const char *val) {
    LORAC_TRY(check_key(key));
    if (!val) return lorac_fail(LORAC_ERR_ARG, "GGUF key '%s': NULL string", key);
    buf b = {0};
    put_u32(&b, LORAC_GGUF_STRING);
    put_str(&b, val);
    return add_kv(w, key, &b);
}

lorac_status lorac_gguf_set_u32(lorac_gguf_writer *w, const char *key, uint32_t val) {
    return set_scalar(w, key, LORAC_GGUF_U32, &val, 4);
}
lorac_status lorac_gguf_set_i32(lorac_gguf_writer *w, const char *key, int32_t val) {
    return set_scalar(w, key, LORAC_GGUF_I32, &val, 4);
}
lorac_status lorac_gguf_set_u64(lorac_gguf_writer *w, const char *key, uint64_t val) {
    return set_scalar(w, key, LORAC_GGUF_U64, &val, 8);
}
lorac_status lorac_gguf_set_f32(lorac_gguf_writer *w, const char *key, float val) {
    return set_scalar(w, key, LORAC_GGUF_F32, &val, 4);
}
lorac_status lorac_gguf_set_bool(lorac_gguf_writer *w, const char *key, int val) {
    uint8_t v = val != 0;
    return set_scalar(w, key, LORAC_GGUF_BOOL, &v, 1);
}

static lorac_status set_arr(lorac_gguf_writer *w, const char *key, lorac_gguf_type et, const void *v, size_t esz,
                            size_t n) {
    LORAC_TRY(check_key(key));
    if (n && !v) return lorac_fail(LORAC_ERR_ARG, "GGUF key '%s': NULL array", key);
    buf b = {0};
    put_u32(&b, LORAC_GGUF_ARRAY);
    put_u32(&b, (uint32_t)et);
    put_u64(&b, (uint64_t)n);
    if (et == LORAC_GGUF_STRING) {
        const char *const *s = v;
        for (size_t i = 0; i < n; i++) put_str(&b, s[i] ? s[i] : "");
    } else if (n) {
        put(&b, v, esz * n);
    }
    return add_kv(w, key, &b);
}

lorac_status lorac_gguf_set_arr_u32(lorac_gguf_writer *w, const char *key, const uint32_t *v, size_t n) {
    return set_arr(w, key, LORAC_GGUF_U32, v, 4, n);
}
lorac_status lorac_gguf_set_arr_f32(lorac_gguf_writer *w, const char *key, const float *v, size_t n) {
    return set_arr(w, key, LORAC_GGUF_F32, v, 4, n);
}
lorac_status lorac_gguf_set_arr_str(lorac_gguf_writer *w, const char *key, const char *const *v, size_t n) {
    return set_arr(w, key, LORAC_GGUF_STRING, v, 0, n);
}

/* -------------------------------------------------------------- tensors */

lorac_status lorac_gguf_add_tensor(lorac_gguf_writer *w, const char *name, const float *data, int ndim,
                                   const int64_t *shape, lorac_dtype type) {
    if (!name || !*name || strlen(name) > LORAC_GGUF_MAX_NAME)
        return lorac_fail(LORAC_ERR_ARG, "GGUF tensor name '%s' is empty or longer than %d bytes (ggml's limit)",
                          name ? name : "", LORAC_GGUF_MAX_NAME);
    if (ndim < 1 || ndim > GGUF_MAX_DIMS)
        return lorac_fail(LORAC_ERR_ARG, "GGUF tensor '%s': %d dimensions (1..%d allowed)", name, ndim, GGUF_MAX_DIMS);
    if (type != LORAC_F32 && type != LORAC_F16)
        return lorac_fail(LORAC_ERR_ARG, "GGUF tensor '%s': type %s cannot be written; hint: F32 or F16", name,
                          lorac_dtype_name(type));
    if (!data) return lorac_fail(LORAC_ERR_ARG, "GGUF tensor '%s': no data", name);
    for (int i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return lorac_fail(LORAC_ERR_ARG, "GGUF tensor '%s' is added twice", name);
    w_tensor t = {.ndim = ndim, .type = type, .data = data, .numel = 1};
    memcpy(t.name, name, strlen(name) + 1);
    for (int j = 0; j < ndim; j++) {
        int64_t d = shape[ndim - 1 - j];
        if (d < 1 || (uint64_t)d > (UINT64_C(1) << 40) / t.numel)
            return lorac_fail(LORAC_ERR_ARG, "GGUF tensor '%s': dimension %lld is zero, negative or too large", name,
                              (long long)d);
        t.ne[j] = (uint64_t)d;
        t.numel *= (uint64_t)d;
    }
    t.nbytes = t.numel * (type == LORAC_F32 ? 4 : 2);
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 32;
        w_tensor *p = realloc(w->t, sizeof *p * (size_t)cap);
        if (!p) return lorac_fail(LORAC_ERR_NOMEM, "out of memory adding GGUF tensor '%s'", name);
        w->t = p;
        w->cap_t = cap;
    }
    w->t[w->n_t++] = t;
    place_tensors(w);
    return LORAC_OK;
}

int lorac_gguf_writer_tensor_count(const lorac_gguf_writer *w) { return w ? w->n_t : 0; }

/* ------------------------------------------------------------- writing */

/* The alignment pair, encoded on the fly (it is always written). */
static size_t align_kv_bytes(void) { return 8 + strlen(ALIGN_KEY) + 4 + 4; }

static uint64_t header_bytes(const lorac_gguf_writer *w) {
    uint64_t n = 4 + 4 + 8 + 8 + align_kv_bytes();
    for (int i = 0; i < w->n_kv; i++) n += 8 + strlen(w->kv[i].key) + w->kv[i].len;
    for (int i = 0; i < w->n_t; i++) n += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].ndim + 4 + 8;
    return n;
}

static uint64_t data_bytes(const lorac_gguf_writer *w) {
    if (w->n_t == 0) return 0;
    const w_tensor *last = &w->t[w->n_t - 1];
    return pad_to(last->offset + last->nbytes, w->align);
}

uint64_t lorac_gguf_writer_size(const lorac_gguf_writer *w) {
    return w->n_t ? pad_to(header_bytes(w), w->align) + data_bytes(w) : header_bytes(w);
}

static int wr(FILE *f, const void *p, size_t n) { return n && fwrite(p, 1, n, f) != n; }
static int wr_u32(FILE *f, uint32_t v) { return wr(f, &v, 4); }
static int wr_u64(FILE *f, uint64_t v) { return wr(f, &v, 8); }
static int wr_str(FILE *f, const char *s) { return wr_u64(f, strlen(s)) || wr(f, s, strlen(s)); }
static int wr_zeros(FILE *f, uint64_t n) {
    static const uint8_t z[64];
    while (n) {
        size_t k = n < sizeof z ? (size_t)n : sizeof z;
        if (wr(f, z, k)) return 1;
        n -= k;
    }
    return 0;
}

/* One tensor's data, converted in chunks. */
static int wr_tensor(FILE *f, const w_tensor *t) {
    if (t->type == LORAC_F32) return wr(f, t->data, (size_t)t->nbytes);
    uint16_t h[1024];
    for (uint64_t i = 0; i < t->numel;) {
        size_t k = 0;
        for (; k < 1024 && i < t->numel; k++, i++) h[k] = lorac_f32_to_f16(t->data[i]);
        if (wr(f, h, k * 2)) return 1;
    }
    return 0;
}

static int write_all(void *ctx, FILE *f) {
    const lorac_gguf_writer *w = ctx;
    int bad = wr(f, "GGUF", 4) || wr_u32(f, GGUF_VERSION) || wr_u64(f, (uint64_t)w->n_t) ||
              wr_u64(f, (uint64_t)w->n_kv + 1);
    bad = bad || wr_str(f, ALIGN_KEY) || wr_u32(f, LORAC_GGUF_U32) || wr_u32(f, w->align);
    for (int i = 0; i < w->n_kv && !bad; i++) bad = wr_str(f, w->kv[i].key) || wr(f, w->kv[i].blob, w->kv[i].len);
    for (int i = 0; i < w->n_t && !bad; i++) {
        const w_tensor *t = &w->t[i];
        bad = wr_str(f, t->name) || wr_u32(f, (uint32_t)t->ndim);
        for (int j = 0; j < t->ndim && !bad; j++) bad = wr_u64(f, t->ne[j]);
        bad = bad || wr_u32(f, t->type == LORAC_F32 ? 0u : 1u) /* GGML_TYPE_F32 / GGML_TYPE_F16 */ ||
              wr_u64(f, t->offset);
    }
    if (bad || w->n_t == 0) return bad;
    const uint64_t hb = header_bytes(w);
    bad = wr_zeros(f, pad_to(hb, w->align) - hb);
    for (int i = 0; i < w->n_t && !bad; i++) {
        const w_tensor *t = &w->t[i];
        const uint64_t end = i + 1 < w->n_t ? w->t[i + 1].offset : data_bytes(w);
        bad = wr_tensor(f, t) || wr_zeros(f, end - t->offset - t->nbytes);
    }
    return bad;
}

lorac_status lorac_gguf_writer_write(const lorac_gguf_writer *w, const char *path) {
    return lorac_write_atomic_stream(path, write_all, (void *)w);
}

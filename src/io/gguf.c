/* gguf.c - reader for GGUF v2/v3, llama.cpp's checkpoint format.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 tensor_count, u64
 * kv_count; kv_count pairs of (string key, u32 value type, value); then
 * tensor_count infos of (string name, u32 n_dims, u64 ne[n_dims], u32 ggml
 * type, u64 offset); padding to general.alignment (default 32); tensor data.
 * A string is u64 length + bytes (no NUL); an array is u32 element type +
 * u64 count + elements. v1 used 32-bit counts and is refused; v2 and v3
 * share one little-endian layout.
 *
 * The whole file is mapped; a cursor reads it and checks each length
 * against the bytes left before use. Counts are capped by what could fit in
 * the file, so allocations stay proportional to the file size. */
#include "io/gguf.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "quant/ggml_blocks.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4        /* GGML_MAX_DIMS */
#define GGUF_MAX_ARRAY_DEPTH 8 /* arrays of arrays nest no deeper */
#define GGUF_MIN_KV_BYTES 13   /* u64 key length + u32 type + 1-byte value */
#define GGUF_MIN_INFO_BYTES 24 /* u64 name length + u32 n_dims + u32 type + u64 offset */
/* Absolute caps on the two header counts, on top of "fits in the file": real
 * files have tens of metadata keys and at most tens of thousands of tensors,
 * and a corrupt count in a multi-GB file must not turn into a multi-GB
 * allocation (each entry costs ~70 bytes of memory for 13-24 of file). */
#define GGUF_MAX_KV (1 << 20)
#define GGUF_MAX_TENSORS (1 << 20)
#define HINT_CORRUPT "hint: the file is truncated or corrupt"

/* ggml's type numbers (enum ggml_type) and names, for messages. */
static const char *ggml_type_name(uint32_t t) {
    static const char *const names[] = {
        "F32",     "F16",    "Q4_0",    "Q4_1",   "Q4_2",  "Q4_3",   "Q5_0",   "Q5_1",   "Q8_0",   "Q8_1",
        "Q2_K",    "Q3_K",   "Q4_K",    "Q5_K",   "Q6_K",  "Q8_K",   "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
        "IQ4_NL",  "IQ3_S",  "IQ2_S",   "IQ4_XS", "I8",    "I16",    "I32",    "I64",    "F64",    "IQ1_M",
        "BF16",    "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8",
        "IQ4_NL_8_8", "MXFP4",
    };
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* The ggml types lorac reads, as lorac dtypes. */
static int ggml_to_dtype(uint32_t t, lorac_dtype *out) {
    switch (t) {
    case 0: *out = LORAC_F32; return 1;
    case 1: *out = LORAC_F16; return 1;
    case 2: *out = LORAC_Q4_0; return 1;
    case 3: *out = LORAC_Q4_1; return 1;
    case 6: *out = LORAC_Q5_0; return 1;
    case 7: *out = LORAC_Q5_1; return 1;
    case 8: *out = LORAC_Q8_0; return 1;
    case 10: *out = LORAC_Q2_K; return 1;
    case 11: *out = LORAC_Q3_K; return 1;
    case 12: *out = LORAC_Q4_K; return 1;
    case 13: *out = LORAC_Q5_K; return 1;
    case 14: *out = LORAC_Q6_K; return 1;
    case 20: *out = LORAC_IQ4_NL; return 1;
    case 23: *out = LORAC_IQ4_XS; return 1;
    case 24: *out = LORAC_I8; return 1;
    case 25: *out = LORAC_I16; return 1;
    case 26: *out = LORAC_I32; return 1;
    case 27: *out = LORAC_I64; return 1;
    case 28: *out = LORAC_F64; return 1;
    case 30: *out = LORAC_BF16; return 1;
    default: return 0;
    }
}

/* Bytes of a fixed-size kv value type; 0 for STRING, ARRAY and unknown. */
static size_t value_size(uint32_t t) {
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof sz / sizeof sz[0] ? sz[t] : 0;
}

/* One metadata pair. Numeric values (and numeric array elements) stay in
 * the mapping; strings are copied so they can be NUL-terminated. */
typedef struct gguf_kv {
    char *key;
    lorac_gguf_type type;
    const uint8_t *val;   /* scalar value, or first element of a numeric array */
    char *str;            /* STRING: NUL-terminated copy */
    lorac_gguf_type arr_type;
    uint64_t arr_len;
    char *arr_blob;       /* string array: element i at arr_blob + arr_off[i], */
    uint64_t *arr_off;    /* length arr_off[i+1] - arr_off[i] - 1 (its NUL) */
} gguf_kv;

struct lorac_gguf {
    char *path;
    lorac_mmap map;
    uint32_t version;
    gguf_kv *kv;
    int n_kv;
    gguf_kv **kv_by_key; /* sorted by key */
    lorac_tensor_desc *tensors;
    int n_tensors;
    const lorac_tensor_desc **t_by_name; /* sorted by name */
};

/* ----------------------------------------------------------- the cursor */

/* Reads the mapping front to back; `what` names the item being read so a
 * truncation error says where it happened. */
typedef struct cursor {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
    char what[160];
} cursor;

static size_t left(const cursor *c) { return c->size - c->pos; }

/* Copy the next n bytes into dst and advance; an error if the file ends first. */
static lorac_status rd(cursor *c, void *dst, size_t n) {
    if (n > left(c))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: file ends inside %s (needs %zu bytes at offset %zu, file is %zu); %s",
                          c->path, c->what, n, c->pos, c->size, HINT_CORRUPT);
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return LORAC_OK;
}

/* A gguf string: u64 length, then that many bytes (checked against the file). */
static lorac_status rd_str(cursor *c, const uint8_t **s, uint64_t *len) {
    LORAC_TRY(rd(c, len, 8));
    if (*len > left(c))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: %s: string length %llu runs past the end of the file (%zu bytes left); %s",
                          c->path, c->what, (unsigned long long)*len, left(c), HINT_CORRUPT);
    *s = c->p + c->pos;
    c->pos += (size_t)*len;
    return LORAC_OK;
}

/* NUL-terminated copy of n bytes (n is bounded by the file size). */
static char *copy_bytes(const uint8_t *s, uint64_t n) {
    char *p = malloc((size_t)n + 1);
    if (p) {
        if (n) memcpy(p, s, (size_t)n);
        p[n] = 0;
    }
    return p;
}

/* A name from the file made safe for a one-line message. */
static const char *printable(char *out, size_t n, const char *s) {
    size_t k = 0;
    for (; *s && k + 4 < n; s++) out[k++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    if (*s) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = 0;
    return out;
}

/* ------------------------------------------------------------ kv values */

/* Read (kv != NULL) or skip (nested array elements) one value of `type`. */
static lorac_status parse_value(cursor *c, gguf_kv *kv, uint32_t type, int depth) {
    size_t sz = value_size(type);
    if (sz) {
        if (kv) kv->val = c->p + c->pos;
        uint8_t tmp[8];
        return rd(c, tmp, sz);
    }
    const uint8_t *s = NULL;
    uint64_t len = 0;
    if (type == LORAC_GGUF_STRING) {
        LORAC_TRY(rd_str(c, &s, &len));
        if (kv && !(kv->str = copy_bytes(s, len)))
            return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory reading %s", c->path, c->what);
        return LORAC_OK;
    }
    if (type != LORAC_GGUF_ARRAY)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: %s has unknown value type %u; %s", c->path, c->what, type, HINT_CORRUPT);
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: %s: arrays nested more than %d deep; %s", c->path, c->what,
                          GGUF_MAX_ARRAY_DEPTH, HINT_CORRUPT);
    uint32_t et = 0;
    uint64_t n = 0;
    LORAC_TRY(rd(c, &et, 4));
    LORAC_TRY(rd(c, &n, 8));
    size_t esz = value_size(et), min = esz ? esz : et == LORAC_GGUF_STRING ? 8 : 12;
    if (!esz && et != LORAC_GGUF_STRING && et != LORAC_GGUF_ARRAY)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: %s: array of unknown element type %u; %s", c->path, c->what, et,
                          HINT_CORRUPT);
    if (n > left(c) / min)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: %s: array of %llu elements cannot fit in the %zu bytes left; %s",
                          c->path, c->what, (unsigned long long)n, left(c), HINT_CORRUPT);
    if (kv) {
        kv->arr_type = (lorac_gguf_type)et;
        kv->arr_len = n;
        kv->val = c->p + c->pos;
    }
    if (esz) {
        c->pos += (size_t)(n * esz); /* fits: checked above */
        return LORAC_OK;
    }
    if (et == LORAC_GGUF_ARRAY || !kv) {
        for (uint64_t i = 0; i < n; i++) LORAC_TRY(parse_value(c, NULL, et, depth + 1));
        return LORAC_OK;
    }
    /* String array: one pass to check and size, one to copy. */
    size_t start = c->pos;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        LORAC_TRY(rd_str(c, &s, &len));
        total += len + 1;
    }
    kv->arr_off = malloc((size_t)(n + 1) * sizeof *kv->arr_off);
    kv->arr_blob = malloc((size_t)total + 1);
    if (!kv->arr_off || !kv->arr_blob)
        return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory for %s (%llu strings)", c->path, c->what,
                          (unsigned long long)n);
    c->pos = start;
    uint64_t at = 0;
    for (uint64_t i = 0; i < n; i++) {
        LORAC_TRY(rd_str(c, &s, &len));
        kv->arr_off[i] = at;
        if (len) memcpy(kv->arr_blob + at, s, (size_t)len);
        kv->arr_blob[at + len] = 0;
        at += len + 1;
    }
    kv->arr_off[n] = at;
    return LORAC_OK;
}

/* Numeric value of kv type t at p: 1 with *iv for integers (and bool),
 * 2 with *fv for floats, 0 otherwise. */
static int read_num(lorac_gguf_type t, const uint8_t *p, int64_t *iv, double *fv) {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    float f32;
    switch (t) {
    case LORAC_GGUF_U8: case LORAC_GGUF_BOOL: memcpy(&u8, p, 1); *iv = u8; return 1;
    case LORAC_GGUF_I8: memcpy(&u8, p, 1); *iv = (int8_t)u8; return 1;
    case LORAC_GGUF_U16: memcpy(&u16, p, 2); *iv = u16; return 1;
    case LORAC_GGUF_I16: memcpy(&u16, p, 2); *iv = (int16_t)u16; return 1;
    case LORAC_GGUF_U32: memcpy(&u32, p, 4); *iv = u32; return 1;
    case LORAC_GGUF_I32: memcpy(&u32, p, 4); *iv = (int32_t)u32; return 1;
    case LORAC_GGUF_U64: /* beyond int64 it reads only as a float */
        memcpy(&u64, p, 8);
        if (u64 > INT64_MAX) return *fv = (double)u64, 2;
        *iv = (int64_t)u64;
        return 1;
    case LORAC_GGUF_I64: memcpy(iv, p, 8); return 1;
    case LORAC_GGUF_F32: memcpy(&f32, p, 4); *fv = f32; return 2;
    case LORAC_GGUF_F64: memcpy(fv, p, 8); return 2;
    default: return 0;
    }
}

/* -------------------------------------------------------------- parsing */

static int cmp_kv_ptr(const void *a, const void *b) {
    return strcmp((*(gguf_kv *const *)a)->key, (*(gguf_kv *const *)b)->key);
}

static int cmp_desc_ptr(const void *a, const void *b) {
    return strcmp((*(const lorac_tensor_desc *const *)a)->name, (*(const lorac_tensor_desc *const *)b)->name);
}

/* Magic, version, the two counts (capped by the bytes left), and the kv pairs. */
static lorac_status parse_kvs(lorac_gguf *g, cursor *c, uint64_t *n_tensors) {
    char magic[4] = {0}, pm[5];
    uint64_t n_kv = 0;
    snprintf(c->what, sizeof c->what, "the GGUF magic");
    if (c->size < 4 || memcmp(c->p, "GGUF", 4) != 0) {
        if (c->size) memcpy(magic, c->p, c->size < 4 ? c->size : 4);
        for (int i = 0; i < 4; i++) pm[i] = magic[i] >= 0x20 && magic[i] < 0x7f ? magic[i] : '?';
        pm[4] = 0;
        return lorac_fail(LORAC_ERR_FORMAT, "%s: not a GGUF file (starts with '%s', expected 'GGUF'); hint: is this a "
                          "safetensors or legacy GGML file?", c->path, pm);
    }
    c->pos = 4;
    snprintf(c->what, sizeof c->what, "the header");
    LORAC_TRY(rd(c, &g->version, 4));
    if (g->version == 1)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (v2 and v3 are); hint: convert "
                          "it again with a current llama.cpp", c->path);
    if ((g->version & 0xFFFF) == 0 && g->version != 0)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported; hint: use a little-endian file",
                          c->path);
    if (g->version != 2 && g->version != 3)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (v2 and v3 are)", c->path,
                          g->version);
    LORAC_TRY(rd(c, n_tensors, 8));
    LORAC_TRY(rd(c, &n_kv, 8));
    if (*n_tensors > GGUF_MAX_TENSORS && *n_tensors <= left(c) / GGUF_MIN_INFO_BYTES)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor count %llu is over the limit of %d; %s", c->path,
                          (unsigned long long)*n_tensors, GGUF_MAX_TENSORS, HINT_CORRUPT);
    if (*n_tensors > left(c) / GGUF_MIN_INFO_BYTES)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor count %llu cannot fit in a %zu-byte file; %s", c->path,
                          (unsigned long long)*n_tensors, c->size, HINT_CORRUPT);
    if (n_kv > GGUF_MAX_KV && n_kv <= left(c) / GGUF_MIN_KV_BYTES)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: metadata count %llu is over the limit of %d; %s", c->path,
                          (unsigned long long)n_kv, GGUF_MAX_KV, HINT_CORRUPT);
    if (n_kv > left(c) / GGUF_MIN_KV_BYTES)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: metadata count %llu cannot fit in a %zu-byte file; %s", c->path,
                          (unsigned long long)n_kv, c->size, HINT_CORRUPT);
    LORAC_TRY(lorac_alloc((void **)&g->kv, (size_t)n_kv + 1, sizeof *g->kv, "GGUF metadata"));
    LORAC_TRY(lorac_alloc((void **)&g->kv_by_key, (size_t)n_kv + 1, sizeof *g->kv_by_key, "GGUF metadata"));
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        const uint8_t *s = NULL;
        uint64_t len = 0;
        uint32_t type = 0;
        snprintf(c->what, sizeof c->what, "metadata pair %llu", (unsigned long long)i);
        LORAC_TRY(rd_str(c, &s, &len));
        if (!(kv->key = copy_bytes(s, len))) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", c->path);
        g->n_kv++;
        char pk[96];
        snprintf(c->what, sizeof c->what, "metadata '%s'", printable(pk, sizeof pk, kv->key));
        LORAC_TRY(rd(c, &type, 4));
        kv->type = (lorac_gguf_type)type;
        LORAC_TRY(parse_value(c, kv, type, 0));
        g->kv_by_key[i] = kv;
    }
    qsort(g->kv_by_key, (size_t)g->n_kv, sizeof *g->kv_by_key, cmp_kv_ptr);
    for (int i = 1; i < g->n_kv; i++)
        if (strcmp(g->kv_by_key[i]->key, g->kv_by_key[i - 1]->key) == 0) {
            char pk[96];
            return lorac_fail(LORAC_ERR_FORMAT, "%s: duplicate metadata key '%s'; %s", c->path,
                              printable(pk, sizeof pk, g->kv_by_key[i]->key), HINT_CORRUPT);
        }
    return LORAC_OK;
}

/* One tensor info: name, dims (1..4, each >= 1, product without overflow),
 * a ggml type lorac reads, a row length that is a whole number of blocks. */
static lorac_status parse_info(cursor *c, lorac_tensor_desc *t, uint64_t *offset) {
    const uint8_t *s = NULL;
    uint64_t len = 0, ne[GGUF_MAX_DIMS] = {0};
    uint32_t n_dims = 0, type = 0;
    LORAC_TRY(rd_str(c, &s, &len));
    if (!(t->name = copy_bytes(s, len))) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", c->path);
    char pn[96];
    printable(pn, sizeof pn, t->name);
    snprintf(c->what, sizeof c->what, "the info of tensor '%s'", pn);
    LORAC_TRY(rd(c, &n_dims, 4));
    if (n_dims > GGUF_MAX_DIMS)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s' has %u dimensions, GGUF allows at most %d; %s", c->path,
                          pn, n_dims, GGUF_MAX_DIMS, HINT_CORRUPT);
    uint64_t numel = 1;
    for (uint32_t j = 0; j < n_dims; j++) {
        LORAC_TRY(rd(c, &ne[j], 8));
        if (ne[j] == 0 || ne[j] > (uint64_t)INT64_MAX / numel)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': dimension ne[%u] = %llu is zero or makes the element "
                              "count overflow; %s", c->path, pn, j, (unsigned long long)ne[j], HINT_CORRUPT);
        numel *= ne[j];
    }
    LORAC_TRY(rd(c, &type, 4));
    LORAC_TRY(rd(c, offset, 8));
    if (!ggml_to_dtype(type, &t->dtype))
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: tensor '%s' has ggml type %u (%s), which lorac cannot read; hint: "
                          "lorac reads F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL IQ4_XS, "
                          "re-quantize with llama-quantize",
                          c->path, pn, type, ggml_type_name(type));
    const int bs = lorac_block_size(t->dtype);
    const uint64_t row = n_dims ? ne[0] : 1;
    if (row % (uint64_t)bs != 0)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': row length ne[0] = %llu is not a multiple of the %s block "
                          "size %d (a block count that does not match the shape); %s", c->path, pn,
                          (unsigned long long)row, lorac_dtype_name(t->dtype), bs, HINT_CORRUPT);
    size_t nbytes;
    if (numel > SIZE_MAX || !lorac_mul_ok((size_t)numel / (size_t)bs, lorac_block_bytes(t->dtype), &nbytes))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s' is too large to address; %s", c->path, pn, HINT_CORRUPT);
    t->ndim = (int)n_dims;
    for (uint32_t j = 0; j < n_dims; j++) t->shape[j] = (int64_t)ne[n_dims - 1 - j]; /* row-major */
    t->numel = (int64_t)numel;
    t->nbytes = nbytes;
    return LORAC_OK;
}

/* Byte range of a tensor relative to the data section, for overlap checks. */
typedef struct t_range {
    uint64_t begin, end;
    const char *name;
} t_range;

static int cmp_range(const void *a, const void *b) {
    const t_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* general.alignment: an integer power of two (default 32). */
static lorac_status get_alignment(const lorac_gguf *g, uint64_t *align) {
    *align = GGUF_DEFAULT_ALIGNMENT;
    int i = lorac_gguf_find_key(g, "general.alignment");
    if (i < 0) return LORAC_OK;
    int64_t v = 0;
    double f;
    if (read_num(g->kv[i].type, g->kv[i].val, &v, &f) != 1 || v <= 0 || (v & (v - 1)) != 0 || v > (1 << 30))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: general.alignment must be a power of two integer; %s", g->path,
                          HINT_CORRUPT);
    *align = (uint64_t)v;
    return LORAC_OK;
}

/* Tensor infos, then data placement: data starts at the first aligned
 * offset after the infos; each tensor's offset is aligned, its bytes lie
 * inside the file, and no two tensors overlap. */
static lorac_status parse_tensors(lorac_gguf *g, cursor *c, uint64_t n) {
    uint64_t align, *off = NULL;
    t_range *rng = NULL;
    LORAC_TRY(get_alignment(g, &align));
    LORAC_TRY(lorac_alloc((void **)&g->tensors, (size_t)n + 1, sizeof *g->tensors, "GGUF tensor infos"));
    LORAC_TRY(lorac_alloc((void **)&g->t_by_name, (size_t)n + 1, sizeof *g->t_by_name, "GGUF tensor infos"));
    lorac_status s = lorac_alloc((void **)&off, (size_t)n + 1, sizeof *off, "GGUF tensor infos");
    if (s == LORAC_OK) s = lorac_alloc((void **)&rng, (size_t)n + 1, sizeof *rng, "GGUF tensor infos");
    for (uint64_t i = 0; i < n && s == LORAC_OK; i++) {
        snprintf(c->what, sizeof c->what, "tensor info %llu", (unsigned long long)i);
        s = parse_info(c, &g->tensors[i], &off[i]);
        g->n_tensors += g->tensors[i].name != NULL;
    }
    const uint64_t data_start = (c->pos + align - 1) / align * align;
    if (s == LORAC_OK && n > 0 && data_start > c->size)
        s = lorac_fail(LORAC_ERR_FORMAT, "%s: file ends before its tensor data (data would start at byte %llu, file is "
                       "%zu bytes); %s", g->path, (unsigned long long)data_start, c->size, HINT_CORRUPT);
    for (uint64_t i = 0; i < n && s == LORAC_OK; i++) {
        lorac_tensor_desc *t = &g->tensors[i];
        char pn[96];
        printable(pn, sizeof pn, t->name);
        if (off[i] % align != 0)
            s = lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': data offset %llu is not aligned to %llu bytes; %s",
                           g->path, pn, (unsigned long long)off[i], (unsigned long long)align, HINT_CORRUPT);
        else if (off[i] > c->size - data_start || t->nbytes > c->size - data_start - off[i])
            s = lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': %s data at offset %llu (%zu bytes) runs past the end of "
                           "the file (%zu bytes of data); %s", g->path, pn, lorac_dtype_name(t->dtype),
                           (unsigned long long)off[i], t->nbytes, c->size - (size_t)data_start, HINT_CORRUPT);
        else {
            t->data = c->p + data_start + off[i];
            rng[i] = (t_range){off[i], off[i] + t->nbytes, t->name};
            g->t_by_name[i] = t;
        }
    }
    if (s == LORAC_OK) {
        qsort(rng, (size_t)n, sizeof *rng, cmp_range);
        for (uint64_t i = 1; i < n && s == LORAC_OK; i++)
            if (rng[i].begin < rng[i - 1].end) {
                char a[96], b[96];
                s = lorac_fail(LORAC_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section; %s", g->path,
                               printable(a, sizeof a, rng[i - 1].name), printable(b, sizeof b, rng[i].name),
                               HINT_CORRUPT);
            }
    }
    if (s == LORAC_OK) {
        qsort(g->t_by_name, (size_t)n, sizeof *g->t_by_name, cmp_desc_ptr);
        for (uint64_t i = 1; i < n && s == LORAC_OK; i++)
            if (strcmp(g->t_by_name[i]->name, g->t_by_name[i - 1]->name) == 0) {
                char pn[96];
                s = lorac_fail(LORAC_ERR_FORMAT, "%s: duplicate tensor name '%s'; %s", g->path,
                               printable(pn, sizeof pn, g->t_by_name[i]->name), HINT_CORRUPT);
            }
    }
    free(off);
    free(rng);
    return s;
}

/* with_tensors 0: the metadata alone (no tensor infos are read). */
static lorac_status open_gguf(const char *path, int with_tensors, lorac_gguf **out) {
    *out = NULL;
    lorac_gguf *g = calloc(1, sizeof *g);
    char *p = calloc(1, strlen(path) + 1);
    if (!g || !p) {
        free(g);
        free(p);
        return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(p, path, strlen(path));
    g->path = p;
    lorac_status s = lorac_mmap_open(path, &g->map);
    cursor c = {.p = g->map.data, .size = g->map.size, .path = g->path};
    uint64_t n_tensors = 0;
    if (s == LORAC_OK) s = parse_kvs(g, &c, &n_tensors);
    if (s == LORAC_OK && with_tensors) s = parse_tensors(g, &c, n_tensors);
    if (s != LORAC_OK) {
        lorac_gguf_close(g);
        return s;
    }
    *out = g;
    return LORAC_OK;
}

lorac_status lorac_gguf_open(const char *path, lorac_gguf **out) { return open_gguf(path, 1, out); }
lorac_status lorac_gguf_open_metadata(const char *path, lorac_gguf **out) { return open_gguf(path, 0, out); }

void lorac_gguf_close(lorac_gguf *g) {
    if (!g) return;
    for (int i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str);
        free(g->kv[i].arr_blob);
        free(g->kv[i].arr_off);
    }
    for (int i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->kv_by_key);
    free(g->tensors);
    free(g->t_by_name);
    lorac_mmap_close(&g->map);
    free(g->path);
    free(g);
}

/* ------------------------------------------------------------ accessors */

uint32_t lorac_gguf_version(const lorac_gguf *g) { return g ? g->version : 0; }

int lorac_gguf_find_key(const lorac_gguf *g, const char *key) {
    if (!g || !key || !g->kv_by_key) return -1;
    gguf_kv probe = {.key = (char *)key}, *pp = &probe;
    gguf_kv **hit = bsearch(&pp, g->kv_by_key, (size_t)g->n_kv, sizeof *g->kv_by_key, cmp_kv_ptr);
    return hit ? (int)(*hit - g->kv) : -1;
}

int lorac_gguf_kv_count(const lorac_gguf *g) { return g ? g->n_kv : 0; }

const char *lorac_gguf_key(const lorac_gguf *g, int i) { return g && i >= 0 && i < g->n_kv ? g->kv[i].key : NULL; }

lorac_gguf_type lorac_gguf_kv_type(const lorac_gguf *g, int i) {
    return g && i >= 0 && i < g->n_kv ? g->kv[i].type : (lorac_gguf_type)-1;
}

static const gguf_kv *find(const lorac_gguf *g, const char *key) {
    int i = lorac_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

int lorac_gguf_get_int(const lorac_gguf *g, const char *key, int64_t *out) {
    const gguf_kv *kv = find(g, key);
    int64_t v;
    double f;
    if (!kv || kv->type == LORAC_GGUF_BOOL || read_num(kv->type, kv->val, &v, &f) != 1) return 0;
    *out = v;
    return 1;
}

int lorac_gguf_get_bool(const lorac_gguf *g, const char *key, int *out) {
    const gguf_kv *kv = find(g, key);
    if (!kv || kv->type != LORAC_GGUF_BOOL) return 0;
    *out = kv->val[0] != 0; /* a GGUF bool is one byte */
    return 1;
}

int lorac_gguf_get_float(const lorac_gguf *g, const char *key, double *out) {
    const gguf_kv *kv = find(g, key);
    int64_t v;
    double f;
    int k = kv && kv->type != LORAC_GGUF_BOOL ? read_num(kv->type, kv->val, &v, &f) : 0;
    if (k) *out = k == 2 ? f : (double)v; /* integers convert too */
    return k != 0;
}

const char *lorac_gguf_get_str(const lorac_gguf *g, const char *key) {
    const gguf_kv *kv = find(g, key);
    return kv && kv->type == LORAC_GGUF_STRING ? kv->str : NULL;
}

int lorac_gguf_get_arr(const lorac_gguf *g, const char *key, lorac_gguf_type *elem_type, uint64_t *len) {
    const gguf_kv *kv = find(g, key);
    if (!kv || kv->type != LORAC_GGUF_ARRAY) return 0;
    if (elem_type) *elem_type = kv->arr_type;
    if (len) *len = kv->arr_len;
    return 1;
}

/* The string-array kv for key with element i in range, or NULL. */
static const gguf_kv *str_elem(const lorac_gguf *g, const char *key, uint64_t i) {
    const gguf_kv *kv = find(g, key);
    return kv && kv->type == LORAC_GGUF_ARRAY && kv->arr_type == LORAC_GGUF_STRING && kv->arr_off && i < kv->arr_len
               ? kv
               : NULL;
}

const char *lorac_gguf_arr_str(const lorac_gguf *g, const char *key, uint64_t i) {
    const gguf_kv *kv = str_elem(g, key, i);
    return kv ? kv->arr_blob + kv->arr_off[i] : NULL;
}

uint64_t lorac_gguf_arr_str_len(const lorac_gguf *g, const char *key, uint64_t i) {
    const gguf_kv *kv = str_elem(g, key, i);
    return kv ? kv->arr_off[i + 1] - kv->arr_off[i] - 1 : 0;
}

/* Numeric element i of an array: 1 int, 2 float, 0 absent / not numeric. */
static int arr_num(const lorac_gguf *g, const char *key, uint64_t i, int64_t *iv, double *fv) {
    const gguf_kv *kv = find(g, key);
    size_t sz = kv && kv->type == LORAC_GGUF_ARRAY ? value_size(kv->arr_type) : 0;
    if (!sz || i >= kv->arr_len) return 0;
    return read_num(kv->arr_type, kv->val + i * sz, iv, fv);
}

double lorac_gguf_arr_f64(const lorac_gguf *g, const char *key, uint64_t i) {
    int64_t v = 0;
    double f = 0;
    int k = arr_num(g, key, i, &v, &f);
    return k == 2 ? f : k == 1 ? (double)v : 0.0;
}

int64_t lorac_gguf_arr_i64(const lorac_gguf *g, const char *key, uint64_t i) {
    int64_t v = 0;
    double f = 0;
    int k = arr_num(g, key, i, &v, &f);
    if (k == 2) return f >= -9.2e18 && f <= 9.2e18 ? (int64_t)f : 0; /* NaN and out of range: 0 */
    return k == 1 ? v : 0;
}

int lorac_gguf_tensor_count(const lorac_gguf *g) { return g ? g->n_tensors : 0; }

const lorac_tensor_desc *lorac_gguf_tensor(const lorac_gguf *g, int i) {
    return g && i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const lorac_tensor_desc *lorac_gguf_find_tensor(const lorac_gguf *g, const char *name) {
    if (!g || !name || !g->t_by_name) return NULL;
    lorac_tensor_desc probe = {.name = name};
    const lorac_tensor_desc *pp = &probe, **hit;
    hit = bsearch(&pp, g->t_by_name, (size_t)g->n_tensors, sizeof *g->t_by_name, cmp_desc_ptr);
    return hit ? *hit : NULL;
}

const char *lorac_gguf_path(const lorac_gguf *g) { return g ? g->path : NULL; }

uint64_t lorac_gguf_tensor_file_offset(const lorac_gguf *g, const lorac_tensor_desc *t) {
    return (uint64_t)((const uint8_t *)t->data - g->map.data);
}

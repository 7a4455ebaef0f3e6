/* safetensors.c - zero-copy reader (mmap) and atomic writer for safetensors.
 *
 * File layout: u64 little-endian N, N bytes of JSON header, data buffer.
 * The header maps each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} with offsets relative to the buffer, plus an optional
 * "__metadata__" object of string -> string. Everything in the header is
 * checked against the file before a descriptor is handed out: sizes, bounds,
 * overlap (gaps between tensors are tolerated) and duplicate names.
 * A sharded checkpoint is a model.safetensors.index.json whose "weight_map"
 * maps tensor name -> shard file; its shards are presented as one namespace. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* as the reference implementation */
#define ST_MAX_INDEX ((size_t)64 << 20)
#define HINT_CORRUPT "hint: the file is truncated or corrupt"

/* The safetensors dtype strings lorac reads, with their element sizes. */
static const struct {
    const char *name;
    lorac_dtype dtype;
    size_t size;
} g_dtypes[] = {
    {"F32", LORAC_F32, 4}, {"F16", LORAC_F16, 2}, {"BF16", LORAC_BF16, 2}, {"F64", LORAC_F64, 8},
    {"I8", LORAC_I8, 1},   {"U8", LORAC_U8, 1},   {"I16", LORAC_I16, 2},   {"I32", LORAC_I32, 4},
    {"I64", LORAC_I64, 8}, {"BOOL", LORAC_BOOL, 1},
};
#define N_DTYPES (int)(sizeof g_dtypes / sizeof g_dtypes[0])

static size_t dtype_size(lorac_dtype t) {
    for (int i = 0; i < N_DTYPES; i++)
        if (g_dtypes[i].dtype == t) return g_dtypes[i].size;
    return 0;
}

/* One mapped .safetensors file of the set. */
typedef struct st_file {
    char *path;
    lorac_mmap map;
} st_file;

struct lorac_st {
    st_file *files;
    int nfiles;
    lorac_tensor_desc *tensors; /* all tensors of all files, in header order */
    int *file_of;               /* tensors[i] lives in files[file_of[i]] */
    int count, cap;
    const lorac_tensor_desc **by_name; /* sorted by name, for lookups */
    char **meta;                       /* key0, value0, key1, value1, ... */
    int nmeta;                         /* number of pairs */
};

/* ---------------------------------------------------------------- helpers */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* A JSON number that is an integer in [0, 2^53] (exactly representable). */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0)) return 0;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return 0;
    *out = u;
    return 1;
}

/* "[5,6]" for error messages. */
static const char *fmt_shape(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static int cmp_desc_name(const void *a, const void *b) {
    return strcmp((*(const lorac_tensor_desc *const *)a)->name, (*(const lorac_tensor_desc *const *)b)->name);
}

/* ------------------------------------------------------- one header entry */

/* A tensor's byte range [begin, end) in its file's data buffer. */
typedef struct st_range {
    uint64_t begin, end;
    const char *name;
} st_range;

/* Parse one tensor entry `e` of the header of `path` into t and its byte
 * range *r in a data buffer of buf_size bytes. The rules:
 * dtype known; shape a list of <= LORAC_MAX_DIMS non-negative integers whose
 * product does not overflow; data_offsets two integers with
 * begin <= end <= buf_size and end - begin == numel * sizeof(dtype). */
static lorac_status parse_entry(const char *path, const cJSON *e, size_t buf_size, lorac_tensor_desc *t,
                                st_range *r) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': header entry is not a JSON object; %s", path, name,
                          HINT_CORRUPT);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    const char *missing = !jd ? "dtype" : !js ? "shape" : !jo ? "data_offsets" : NULL;
    if (missing)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': header entry is missing \"%s\"; %s", path, name, missing,
                          HINT_CORRUPT);
    if (!cJSON_IsString(jd))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string; %s", path, name, HINT_CORRUPT);
    int di = -1;
    for (int i = 0; i < N_DTYPES && di < 0; i++)
        if (strcmp(jd->valuestring, g_dtypes[i].name) == 0) di = i;
    if (di < 0)
        return lorac_fail(LORAC_ERR_UNSUPPORTED,
                          "%s: tensor '%s': unknown dtype \"%.40s\"; hint: lorac reads F32 F16 BF16 F64 I8 U8 I16 I32 "
                          "I64 BOOL",
                          path, name, jd->valuestring);
    t->dtype = g_dtypes[di].dtype;

    if (!cJSON_IsArray(js))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not a list; %s", path, name, HINT_CORRUPT);
    int ndim = cJSON_GetArraySize(js);
    if (ndim > LORAC_MAX_DIMS)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: tensor '%s': shape has %d dimensions, more than the %d lorac handles",
                          path, name, ndim, LORAC_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    int k = 0;
    for (const cJSON *d = js->child; d; d = d->next, k++) {
        uint64_t v;
        if (!json_uint(d, &v))
            return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer; %s", path,
                              name, k, HINT_CORRUPT);
        if (v != 0 && numel > (uint64_t)INT64_MAX / v)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': shape has more elements than fit in 64 bits; %s", path,
                              name, HINT_CORRUPT);
        numel *= v;
        t->shape[k] = (int64_t)v;
    }
    t->numel = (int64_t)numel;
    char sh[160];
    fmt_shape(sh, sizeof sh, t->shape, ndim);
    size_t need;
    if (numel > SIZE_MAX || !lorac_mul_ok((size_t)numel, g_dtypes[di].size, &need))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': %s %s is too large to address; %s", path, name,
                          g_dtypes[di].name, sh, HINT_CORRUPT);

    uint64_t b, en;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &b) ||
        !json_uint(jo->child->next, &en))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not two non-negative integers; %s",
                          path, name, HINT_CORRUPT);
    if (b > en)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu,%llu] are reversed (begin > end); %s",
                          path, name, (unsigned long long)b, (unsigned long long)en, HINT_CORRUPT);
    if (en > buf_size)
        return lorac_fail(LORAC_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%llu,%llu] run past the end of the %zu-byte data buffer; %s",
                          path, name, (unsigned long long)b, (unsigned long long)en, buf_size, HINT_CORRUPT);
    if (en - b != need)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu,%llu] hold %llu bytes but %s %s needs %zu; %s",
                          path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                          g_dtypes[di].name, sh, need, HINT_CORRUPT);
    t->nbytes = need;
    r->begin = b;
    r->end = en;
    return LORAC_OK;
}

static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* No two non-empty ranges may share a byte (gaps are tolerated). */
static lorac_status check_overlap(const char *path, st_range *r, int n) {
    qsort(r, (size_t)n, sizeof *r, cmp_range);
    const st_range *prev = NULL;
    for (int i = 0; i < n; i++) {
        if (r[i].begin == r[i].end) continue;
        if (prev && r[i].begin < prev->end)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: tensors '%s' [%llu,%llu] and '%s' [%llu,%llu] overlap; %s", path,
                              prev->name, (unsigned long long)prev->begin, (unsigned long long)prev->end, r[i].name,
                              (unsigned long long)r[i].begin, (unsigned long long)r[i].end, HINT_CORRUPT);
        if (!prev || r[i].end > prev->end) prev = &r[i];
    }
    return LORAC_OK;
}

/* ------------------------------------------------------------ one file */

/* "__metadata__" is an object of string -> string; keys already seen (from
 * an earlier shard) keep their first value. */
static lorac_status add_meta(lorac_st *st, const char *path, const cJSON *m) {
    if (!cJSON_IsObject(m))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object; %s", path, HINT_CORRUPT);
    for (const cJSON *kv = m->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return lorac_fail(LORAC_ERR_FORMAT, "%s: \"__metadata__\" value for '%s' is not a string; %s", path,
                              kv->string, HINT_CORRUPT);
        if (lorac_st_metadata(st, kv->string)) continue; /* first shard wins */
        char **nm = realloc(st->meta, (size_t)(st->nmeta + 1) * 2 * sizeof *nm);
        if (!nm) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory reading metadata", path);
        st->meta = nm;
        nm[2 * st->nmeta] = dup_str(kv->string);
        nm[2 * st->nmeta + 1] = dup_str(kv->valuestring);
        st->nmeta++;
        if (!nm[2 * st->nmeta - 2] || !nm[2 * st->nmeta - 1])
            return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory reading metadata", path);
    }
    return LORAC_OK;
}

/* Walk the parsed header of file `fi`: collect metadata, check and append
 * each tensor entry (data in buf[0, buf_size)), then refuse overlaps. */
static lorac_status parse_header(lorac_st *st, int fi, const cJSON *root, const uint8_t *buf, size_t buf_size) {
    const char *path = st->files[fi].path;
    if (!cJSON_IsObject(root))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: header is JSON but not an object; %s", path, HINT_CORRUPT);

    int n = cJSON_GetArraySize(root);
    st_range *rng = calloc((size_t)n + 1, sizeof *rng);
    if (!rng) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory for %d header entries", path, n);
    if (st->count + n > st->cap) {
        int cap = st->count + n;
        lorac_tensor_desc *nt = realloc(st->tensors, (size_t)cap * sizeof *nt);
        if (nt) st->tensors = nt;
        int *no = nt ? realloc(st->file_of, (size_t)cap * sizeof *no) : NULL;
        if (no) st->file_of = no;
        if (!nt || !no) {
            free(rng);
            return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory for %d tensors", path, cap);
        }
        st->cap = cap;
    }
    lorac_status s = LORAC_OK;
    int nr = 0;
    for (const cJSON *e = root->child; e && s == LORAC_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            s = add_meta(st, path, e);
            continue;
        }
        lorac_tensor_desc *t = &st->tensors[st->count];
        memset(t, 0, sizeof *t);
        s = parse_entry(path, e, buf_size, t, &rng[nr]);
        if (s != LORAC_OK) break;
        t->name = dup_str(e->string);
        if (!t->name) {
            s = lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        t->data = buf + rng[nr].begin;
        rng[nr].name = t->name;
        st->file_of[st->count++] = fi;
        nr++;
    }
    if (s == LORAC_OK) s = check_overlap(path, rng, nr);
    free(rng);
    return s;
}

/* Offset of the first byte of s[0..n) that breaks UTF-8, or n. The
 * reference implementation parses the header with serde_json, which
 * refuses invalid UTF-8; cJSON would pass the bytes through into names. */
static size_t utf8_bad_at(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], lo = 0x80, hi = 0xBF;
        size_t more;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) more = 1;
        else if (c == 0xE0) more = 2, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEF) more = 2, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c == 0xF0) more = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) more = 3;
        else if (c == 0xF4) more = 3, hi = 0x8F;
        else return i;
        if (more >= n - i || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += more + 1;
    }
    return n;
}

/* Map `path`, parse and check its header, append its tensors to st. */
static lorac_status open_file(lorac_st *st, const char *path) {
    st_file *nf = realloc(st->files, (size_t)(st->nfiles + 1) * sizeof *nf);
    if (!nf) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", path);
    st->files = nf;
    st_file *f = &st->files[st->nfiles];
    memset(f, 0, sizeof *f);
    f->path = dup_str(path);
    if (!f->path) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", path);
    st->nfiles++;
    LORAC_TRY(lorac_mmap_open(path, &f->map));

    const size_t size = f->map.size;
    if (size < 8)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: file is %zu bytes, too short for the 8-byte header length; %s", path,
                          size, HINT_CORRUPT);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map.data[i];
    if (hlen > ST_MAX_HEADER)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: header length %llu is over the 100 MB limit; %s", path,
                          (unsigned long long)hlen, HINT_CORRUPT);
    if (hlen > size - 8)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: header length %llu is more than the %zu bytes after it; %s", path,
                          (unsigned long long)hlen, size - 8, HINT_CORRUPT);
    const char *text = (const char *)f->map.data + 8, *end = NULL;
    size_t bad = utf8_bad_at(f->map.data + 8, (size_t)hlen);
    if (bad < hlen)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: header is not valid UTF-8 (byte 0x%02x at offset %zu); %s", path,
                          f->map.data[8 + bad], bad + 8, HINT_CORRUPT);
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    if (!root)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: header is not valid JSON (error near byte %lld); hint: not a "
                          "safetensors file, or it is corrupt",
                          path, (long long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - text + 8 : -1));
    for (; end && end < text + hlen; end++) /* only padding may follow the JSON */
        if (*end != ' ' && *end != '\n' && *end != '\r' && *end != '\t' && *end != 0) {
            cJSON_Delete(root);
            return lorac_fail(LORAC_ERR_FORMAT, "%s: header has bytes after its JSON object (at byte %lld); %s", path,
                              (long long)(end - text + 8), HINT_CORRUPT);
        }
    lorac_status s = parse_header(st, st->nfiles - 1, root, f->map.data + 8 + hlen, size - 8 - (size_t)hlen);
    cJSON_Delete(root);
    return s;
}

/* --------------------------------------------------------- sharded sets */

/* A shard name from an index must stay inside the index's directory. */
static int shard_name_ok(const char *s) {
    if (!*s || s[0] == '/') return 0;
    for (const char *p = s; *p; p++)
        if (p[0] == '.' && p[1] == '.' && (p == s || p[-1] == '/') && (p[2] == '/' || p[2] == 0)) return 0;
    return 1;
}

static lorac_status build_lookup(lorac_st *st);

/* Parse model.safetensors.index.json: open every shard named in
 * "weight_map", then check each listed tensor is in the shard named. */
static lorac_status open_index(lorac_st *st, const char *index_path) {
    char *text = NULL;
    size_t len = 0;
    LORAC_TRY(lorac_read_file(index_path, ST_MAX_INDEX, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: not valid JSON; hint: the index file is corrupt", index_path);
    lorac_status s = LORAC_OK;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm))
        s = lorac_fail(LORAC_ERR_FORMAT, "%s: no \"weight_map\" object; hint: not a safetensors index file", index_path);

    char dir[4096], full[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    for (const cJSON *e = wm ? wm->child : NULL; e && s == LORAC_OK; e = e->next) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            s = lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s': shard name is not a relative file name; hint: the index "
                           "file is corrupt", index_path, e->string);
            break;
        }
        lorac_path_join(full, sizeof full, dir, e->valuestring);
        int seen = 0;
        for (int i = 0; i < st->nfiles && !seen; i++) seen = strcmp(st->files[i].path, full) == 0;
        if (seen) continue;
        if (!lorac_file_exists(full)) {
            s = lorac_fail(LORAC_ERR_IO, "%s: shard '%s' (holding tensor '%s') is missing; hint: download every shard "
                           "listed in the index", index_path, e->valuestring, e->string);
            break;
        }
        s = open_file(st, full);
    }
    if (s == LORAC_OK) s = build_lookup(st);
    for (const cJSON *e = wm ? wm->child : NULL; e && s == LORAC_OK; e = e->next) {
        const lorac_tensor_desc *t = lorac_st_find(st, e->string);
        lorac_path_join(full, sizeof full, dir, e->valuestring);
        if (!t || strcmp(lorac_st_path_of(st, t), full) != 0)
            s = lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s' is listed in shard '%s' but that shard does not hold it; "
                           "hint: the index and the shards come from different downloads", index_path, e->string,
                           e->valuestring);
    }
    cJSON_Delete(root);
    return s;
}

/* Sort the name index and refuse duplicate names (within or across files). */
static lorac_status build_lookup(lorac_st *st) {
    free(st->by_name);
    st->by_name = calloc((size_t)st->count + 1, sizeof *st->by_name);
    if (!st->by_name) return lorac_fail(LORAC_ERR_NOMEM, "out of memory indexing %d tensors", st->count);
    for (int i = 0; i < st->count; i++) st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, (size_t)st->count, sizeof *st->by_name, cmp_desc_name);
    for (int i = 1; i < st->count; i++)
        if (strcmp(st->by_name[i]->name, st->by_name[i - 1]->name) == 0)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: duplicate tensor name '%s' (also in %s); %s",
                              lorac_st_path_of(st, st->by_name[i]), st->by_name[i]->name,
                              lorac_st_path_of(st, st->by_name[i - 1]), HINT_CORRUPT);
    return LORAC_OK;
}

/* -------------------------------------------------------------- public */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

lorac_status lorac_st_open(const char *path, lorac_st **out) {
    *out = NULL;
    lorac_st *st = calloc(1, sizeof *st);
    if (!st) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", path);
    struct stat sb;
    char buf[4096];
    lorac_status s;
    if (stat(path, &sb) != 0) {
        s = lorac_fail(LORAC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        if (lorac_file_exists(lorac_path_join(buf, sizeof buf, path, "model.safetensors.index.json")))
            s = open_index(st, buf);
        else if (lorac_file_exists(lorac_path_join(buf, sizeof buf, path, "model.safetensors")))
            s = open_file(st, buf);
        else
            s = lorac_fail(LORAC_ERR_IO, "%s: directory has neither model.safetensors nor "
                           "model.safetensors.index.json; hint: pass the .safetensors file itself", path);
    } else if (ends_with(path, ".json")) {
        s = open_index(st, path);
    } else {
        s = open_file(st, path);
    }
    if (s == LORAC_OK && !st->by_name) s = build_lookup(st);
    if (s != LORAC_OK) {
        lorac_st_close(st);
        return s;
    }
    *out = st;
    return LORAC_OK;
}

void lorac_st_close(lorac_st *st) {
    if (!st) return;
    for (int i = 0; i < st->nfiles; i++) {
        lorac_mmap_close(&st->files[i].map);
        free(st->files[i].path);
    }
    for (int i = 0; i < st->count; i++) free((char *)st->tensors[i].name);
    for (int i = 0; i < 2 * st->nmeta; i++) free(st->meta[i]);
    free(st->files);
    free(st->tensors);
    free(st->file_of);
    free(st->by_name);
    free(st->meta);
    free(st);
}

int lorac_st_count(const lorac_st *st) { return st ? st->count : 0; }

const lorac_tensor_desc *lorac_st_get(const lorac_st *st, int i) {
    return st && i >= 0 && i < st->count ? &st->tensors[i] : NULL;
}

const lorac_tensor_desc *lorac_st_find(const lorac_st *st, const char *name) {
    if (!st || !st->by_name || !name) return NULL;
    lorac_tensor_desc key = {.name = name};
    const lorac_tensor_desc *kp = &key;
    const lorac_tensor_desc **hit = bsearch(&kp, st->by_name, (size_t)st->count, sizeof *st->by_name, cmp_desc_name);
    return hit ? *hit : NULL;
}

const char *lorac_st_metadata(const lorac_st *st, const char *key) {
    for (int i = 0; st && key && i < st->nmeta; i++)
        if (st->meta[2 * i] && strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

const char *lorac_st_path_of(const lorac_st *st, const lorac_tensor_desc *t) {
    if (!st || !t || t < st->tensors || t >= st->tensors + st->count) return NULL;
    return st->files[st->file_of[t - st->tensors]].path;
}

/* ----------------------------------------------------------- writing */

/* A growing text buffer for the JSON header. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static void sb_json(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *named = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\t' ? "\\t"
                            : c == '\r' ? "\\r" : NULL;
        char esc[8];
        if (named) {
            sb_put(b, named, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, s, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* Write order: larger elements first (so every tensor stays aligned to
 * its element size, as the reference writer does), then by name. */
typedef struct st_out {
    const lorac_st_entry *e;
    size_t esize, nbytes;
} st_out;

static int cmp_out_name(const void *a, const void *b) {
    return strcmp(((const st_out *)a)->e->name, ((const st_out *)b)->e->name);
}

static int cmp_out_order(const void *a, const void *b) {
    const st_out *x = a, *y = b;
    if (x->esize != y->esize) return x->esize > y->esize ? -1 : 1;
    return strcmp(x->e->name, y->e->name);
}

typedef struct st_writer {
    const st_out *order;
    int n;
    const char *header;
    size_t hlen; /* padded to a multiple of 8 */
} st_writer;

static int write_body(void *ctx, FILE *f) {
    const st_writer *w = ctx;
    uint8_t len8[8], chunk[4096 * 4];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)w->hlen >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(w->header, 1, w->hlen, f) != w->hlen) return 1;
    for (int i = 0; i < w->n; i++) {
        const lorac_st_entry *e = w->order[i].e;
        size_t numel = w->order[i].nbytes / w->order[i].esize;
        if (e->dtype == LORAC_U8) {
            if (numel && fwrite(e->raw, 1, numel, f) != numel) return 1;
            continue;
        }
        for (size_t at = 0; at < numel; at += 4096) {
            size_t k = numel - at < 4096 ? numel - at : 4096;
            const float *x = e->data + at;
            for (size_t j = 0; j < k; j++) {
                if (e->dtype == LORAC_F32) {
                    memcpy(chunk + 4 * j, &x[j], 4); /* little-endian host */
                } else {
                    uint16_t h = e->dtype == LORAC_F16 ? lorac_f32_to_f16(x[j]) : lorac_f32_to_bf16(x[j]);
                    chunk[2 * j] = (uint8_t)h;
                    chunk[2 * j + 1] = (uint8_t)(h >> 8);
                }
            }
            if (fwrite(chunk, w->order[i].esize, k, f) != k) return 1;
        }
    }
    return 0;
}

/* Validate the entries (dtype F32/F16/BF16, sane shape, unique names). */
static lorac_status check_entries(const char *path, const lorac_st_entry *entries, int n, st_out *o) {
    for (int i = 0; i < n; i++) {
        const lorac_st_entry *e = &entries[i];
        if (!e->name || !*e->name || strcmp(e->name, "__metadata__") == 0)
            return lorac_fail(LORAC_ERR_ARG, "%s: entry %d has an empty or reserved name", path, i);
        if (e->dtype != LORAC_F32 && e->dtype != LORAC_F16 && e->dtype != LORAC_BF16 && e->dtype != LORAC_U8)
            return lorac_fail(LORAC_ERR_ARG, "%s: tensor '%s': can only write F32, F16, BF16 or U8, not %s", path, e->name,
                              lorac_dtype_name(e->dtype));
        if (e->ndim < 0 || e->ndim > LORAC_MAX_DIMS)
            return lorac_fail(LORAC_ERR_ARG, "%s: tensor '%s': bad ndim %d", path, e->name, e->ndim);
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++)
            if (e->shape[d] < 0 || (uint64_t)e->shape[d] > SIZE_MAX || !lorac_mul_ok(numel, (size_t)e->shape[d], &numel))
                return lorac_fail(LORAC_ERR_ARG, "%s: tensor '%s': bad shape", path, e->name);
        o[i].e = e;
        o[i].esize = dtype_size(e->dtype);
        if (!lorac_mul_ok(numel, o[i].esize, &o[i].nbytes) || (numel && !(e->dtype == LORAC_U8 ? e->raw : (const void *)e->data)))
            return lorac_fail(LORAC_ERR_ARG, "%s: tensor '%s': too large or no data", path, e->name);
    }
    qsort(o, (size_t)n, sizeof *o, cmp_out_name);
    for (int i = 1; i < n; i++)
        if (strcmp(o[i].e->name, o[i - 1].e->name) == 0)
            return lorac_fail(LORAC_ERR_ARG, "%s: tensor name '%s' given twice", path, o[i].e->name);
    qsort(o, (size_t)n, sizeof *o, cmp_out_order);
    return LORAC_OK;
}

lorac_status lorac_st_write(const char *path, const lorac_st_entry *entries, int n, const char *const *metadata) {
    if (n < 0 || (n > 0 && !entries)) return lorac_fail(LORAC_ERR_ARG, "%s: bad tensor list", path);
    st_out *o = calloc((size_t)n + 1, sizeof *o);
    if (!o) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", path);
    lorac_status s = check_entries(path, entries, n, o);
    sbuf b = {0};
    sb_str(&b, "{");
    if (s == LORAC_OK && metadata && metadata[0]) {
        sb_str(&b, "\"__metadata__\":{");
        for (int i = 0; metadata[i]; i += 2) {
            if (!metadata[i + 1]) {
                s = lorac_fail(LORAC_ERR_ARG, "%s: metadata key '%s' has no value", path, metadata[i]);
                break;
            }
            if (i) sb_str(&b, ",");
            sb_json(&b, metadata[i]);
            sb_str(&b, ":");
            sb_json(&b, metadata[i + 1]);
        }
        sb_str(&b, "}");
        if (n) sb_str(&b, ",");
    }
    uint64_t off = 0;
    for (int i = 0; i < n && s == LORAC_OK; i++) {
        char num[64];
        if (i) sb_str(&b, ",");
        sb_json(&b, o[i].e->name);
        snprintf(num, sizeof num, ":{\"dtype\":\"%s\",\"shape\":[", lorac_dtype_name(o[i].e->dtype));
        sb_str(&b, num);
        for (int d = 0; d < o[i].e->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)o[i].e->shape[d]);
            sb_str(&b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + o[i].nbytes));
        sb_str(&b, num);
        off += o[i].nbytes;
    }
    sb_str(&b, "}");
    while (!b.oom && b.n % 8) sb_str(&b, " "); /* pad so the data buffer starts 8-aligned */
    if (s == LORAC_OK && b.oom) s = lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory building the header", path);
    if (s == LORAC_OK) {
        st_writer w = {o, n, b.p, b.n};
        s = lorac_write_atomic_stream(path, write_body, &w);
    }
    free(b.p);
    free(o);
    return s;
}

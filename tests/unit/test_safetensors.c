/* test_safetensors.c - the safetensors reader and writer: the shared real
 * checkpoints (counts, shapes, offsets covering the file), a write/read round
 * trip in F32/F16/BF16 with metadata, every readable dtype, sharded sets via
 * the index and via a directory. Malformed files are in test_malformed_io.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "testutil.h"

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

/* Write a safetensors file by hand: u64 header length, header, data. */
static void write_raw(const char *path, const char *header, const void *data, size_t n) {
    size_t hl = strlen(header);
    char *buf = malloc(8 + hl + n + 1);
    for (int i = 0; i < 8; i++) buf[i] = (char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (n) memcpy(buf + 8 + hl, data, n);
    CHECK_OK(lorac_write_atomic(path, buf, 8 + hl + n));
    free(buf);
}

static int cmp_ptr(const void *a, const void *b) {
    const lorac_tensor_desc *x = *(const lorac_tensor_desc *const *)a, *y = *(const lorac_tensor_desc *const *)b;
    return (const char *)x->data < (const char *)y->data ? -1 : (const char *)x->data > (const char *)y->data;
}

/* A real checkpoint: tensor count, a shape, and tensors that tile the data
 * buffer exactly from the end of the header to the end of the file. */
static void check_real(const char *rel, int count, const char *name, int64_t d0, int64_t d1) {
    const char *path = test_data_path(rel);
    if (!lorac_file_exists(path)) {
        printf("test_safetensors: %s skipped (absent)\n", path);
        return;
    }
    lorac_st *st = NULL;
    CHECK_OK(lorac_st_open(path, &st));
    if (!st) return;
    CHECK(lorac_st_count(st) == count, "%s: %d tensors, want %d", rel, lorac_st_count(st), count);
    const lorac_tensor_desc *t = lorac_st_find(st, name);
    CHECK(t && t->dtype == LORAC_F32 && t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1, "%s: %s shape", rel,
          name);
    const char *meta = lorac_st_metadata(st, "format");
    CHECK(meta && strcmp(meta, "pt") == 0, "%s: __metadata__ format", rel);
    CHECK(strcmp(lorac_st_path_of(st, t), path) == 0, "path_of");

    char *raw = NULL;
    size_t len = 0;
    CHECK_OK(lorac_read_file(path, 64 << 20, &raw, &len));
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)raw[i];
    const lorac_tensor_desc **v = calloc((size_t)count, sizeof *v);
    for (int i = 0; i < lorac_st_count(st) && i < count; i++) v[i] = lorac_st_get(st, i);
    qsort(v, (size_t)count, sizeof *v, cmp_ptr);
    const char *base = (const char *)v[0]->data - 8 - hl; /* mapping start */
    size_t at = 8 + hl;
    int tiled = 1;
    for (int i = 0; i < count; i++) {
        tiled &= (size_t)((const char *)v[i]->data - base) == at;
        tiled &= memcmp(v[i]->data, raw + at, v[i]->nbytes) == 0;
        at += v[i]->nbytes;
    }
    CHECK(tiled && at == len, "%s: tensors cover the data buffer exactly (%zu of %zu bytes)", rel, at, len);
    float *x = malloc((size_t)t->numel * sizeof *x);
    CHECK_OK(lorac_to_f32(x, t->data, t->dtype, t->numel));
    CHECK(memcmp(x, t->data, t->nbytes) == 0, "F32 to_f32 is a copy");
    free(x);
    free(v);
    free(raw);
    lorac_st_close(st);
}

/* Write F32/F16/BF16 tensors with metadata; read them back. */
static void test_roundtrip(void) {
    float a[6] = {1, -2, 3.5f, 1e-8f, 65504, -0.0f}, b[5] = {0.1f, 0.2f, 1e5f, -1e-7f, 3}, c[6] = {1, 2, 3, 4, 5, 6.01f};
    float s = 42;
    lorac_st_entry e[] = {
        {"layer.b", b, 1, {5}, LORAC_F16, NULL},
        {"layer.a", a, 2, {2, 3}, LORAC_F32, NULL},
        {"c \"quoted\"\\name", c, 3, {3, 1, 2}, LORAC_BF16, NULL},
        {"scalar", &s, 0, {0}, LORAC_F32, NULL},
        {"empty", NULL, 2, {0, 4}, LORAC_F32, NULL},
    };
    const char *meta[] = {"format", "pt", "note", "line\nbreak \"q\"", NULL};
    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(lorac_st_write(path, e, 5, meta));
    CHECK_OK(lorac_st_write(path, e, 5, meta)); /* over an existing file */
    lorac_st *st = NULL;
    CHECK_OK(lorac_st_open(path, &st));
    if (!st) return;
    CHECK(lorac_st_count(st) == 5, "count %d", lorac_st_count(st));
    CHECK(strcmp(lorac_st_metadata(st, "note"), "line\nbreak \"q\"") == 0, "metadata escapes");
    CHECK(lorac_st_metadata(st, "absent") == NULL, "absent metadata");
    for (int i = 0; i < 5; i++) {
        const lorac_tensor_desc *t = lorac_st_find(st, e[i].name);
        CHECK(t && t->dtype == e[i].dtype && t->ndim == e[i].ndim, "%s: dtype/ndim", e[i].name);
        if (!t) continue;
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            CHECK(t->shape[d] == e[i].shape[d], "%s shape[%d]", e[i].name, d);
            numel *= e[i].shape[d];
        }
        CHECK(t->numel == numel, "%s numel", e[i].name);
        CHECK((uintptr_t)t->data % (t->dtype == LORAC_F32 ? 4 : 2) == 0, "%s aligned", e[i].name);
        float x[8];
        CHECK_OK(lorac_to_f32(x, t->data, t->dtype, numel));
        for (int64_t k = 0; k < numel; k++) {
            float want = e[i].dtype == LORAC_F16    ? lorac_f16_to_f32(lorac_f32_to_f16(e[i].data[k]))
                         : e[i].dtype == LORAC_BF16 ? lorac_bf16_to_f32(lorac_f32_to_bf16(e[i].data[k]))
                                                    : e[i].data[k];
            CHECK(memcmp(&x[k], &want, 4) == 0, "%s[%lld] = %g want %g", e[i].name, (long long)k, x[k], want);
        }
    }
    lorac_st_close(st);
    lorac_st_close(NULL);

    /* the header length is a multiple of 8, and no temporary file is left */
    char *raw = NULL;
    size_t len = 0;
    CHECK_OK(lorac_read_file(path, 1 << 20, &raw, &len));
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (uint8_t)raw[i];
    CHECK(hl % 8 == 0 && raw[8] == '{', "header length %llu", (unsigned long long)hl);
    free(raw);
    DIR *d = opendir(test_tmpdir());
    int tmp_left = 0;
    for (struct dirent *de; d && (de = readdir(d));) tmp_left |= strstr(de->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    CHECK(!tmp_left, "temporary file left behind");

    /* refused writes leave the old file alone */
    lorac_st_entry bad = {"i", a, 1, {6}, LORAC_I32, NULL};
    CHECK(lorac_st_write(path, &bad, 1, NULL) == LORAC_ERR_ARG, "I32 write refused");
    lorac_st_entry dup[] = {{"x", a, 1, {2}, LORAC_F32, NULL}, {"x", b, 1, {2}, LORAC_F16, NULL}};
    CHECK(lorac_st_write(path, dup, 2, NULL) == LORAC_ERR_ARG, "duplicate names refused");
    CHECK(strstr(lorac_last_error(), "'x'") != NULL, "names the tensor: %s", lorac_last_error());
    CHECK_OK(lorac_st_open(path, &st));
    CHECK(lorac_st_count(st) == 5, "old file intact");
    lorac_st_close(st);
}

/* Every dtype the reader accepts, from a hand-written header. */
static void test_dtypes(void) {
    uint8_t data[64] = {0};
    double f64[2] = {1.5, -2.25};
    memcpy(data, f64, 16);
    const char *hdr = "{\"f64\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                      "\"i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]},"
                      "\"i32\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[24,32]},"
                      "\"i16\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[32,36]},"
                      "\"i8\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[36,38]},"
                      "\"u8\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[38,40]},"
                      "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[40,43]},"
                      "\"gap_after\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[48,49]}}";
    const char *path = tmp_path("dtypes.safetensors");
    write_raw(path, hdr, data, 49);
    lorac_st *st = NULL;
    CHECK_OK(lorac_st_open(path, &st));
    if (!st) return;
    const char *names[] = {"f64", "i64", "i32", "i16", "i8", "u8", "bool"};
    lorac_dtype types[] = {LORAC_F64, LORAC_I64, LORAC_I32, LORAC_I16, LORAC_I8, LORAC_U8, LORAC_BOOL};
    for (int i = 0; i < 7; i++) {
        const lorac_tensor_desc *t = lorac_st_find(st, names[i]);
        CHECK(t && t->dtype == types[i], "%s dtype", names[i]);
    }
    CHECK(strcmp(lorac_dtype_name(LORAC_BF16), "BF16") == 0 && strcmp(lorac_dtype_name(LORAC_Q4_K), "Q4_K") == 0, "names");
    float x[2];
    CHECK_OK(lorac_to_f32(x, lorac_st_find(st, "f64")->data, LORAC_F64, 2));
    CHECK(x[0] == 1.5f && x[1] == -2.25f, "F64 to f32");
    CHECK(lorac_to_f32(x, lorac_st_find(st, "i32")->data, LORAC_I32, 2) == LORAC_ERR_UNSUPPORTED, "I32 to f32");
    lorac_st_close(st);
}

/* A sharded set: two shards + index, opened by index path and by directory. */
static void test_sharded(void) {
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6}, c[3] = {7, 8, 9};
    const char *dir = tmp_path("sharded");
    CHECK_OK(lorac_mkdirs(dir));
    char p1[600], p2[600], idx[600];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    lorac_st_entry s1[] = {{"a", a, 2, {2, 2}, LORAC_F32, NULL}, {"b", b, 1, {2}, LORAC_F32, NULL}};
    lorac_st_entry s2[] = {{"c", c, 1, {3}, LORAC_BF16, NULL}};
    const char *m1[] = {"format", "pt", NULL}, *m2[] = {"format", "other", "extra", "yes", NULL};
    CHECK_OK(lorac_st_write(p1, s1, 2, m1));
    CHECK_OK(lorac_st_write(p2, s2, 1, m2));
    const char *json = "{\"metadata\": {\"total_size\": 30}, \"weight_map\": {"
                       "\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
                       "\"c\": \"model-00002-of-00002.safetensors\"}}";
    CHECK_OK(lorac_write_atomic(idx, json, strlen(json)));
    for (int k = 0; k < 2; k++) {
        lorac_st *st = NULL;
        CHECK_OK(lorac_st_open(k ? dir : idx, &st));
        if (!st) continue;
        CHECK(lorac_st_count(st) == 3, "sharded count %d", lorac_st_count(st));
        const lorac_tensor_desc *t = lorac_st_find(st, "c");
        CHECK(t && t->dtype == LORAC_BF16 && strcmp(lorac_st_path_of(st, t), p2) == 0, "c in shard 2");
        t = lorac_st_find(st, "a");
        CHECK(t && strcmp(lorac_st_path_of(st, t), p1) == 0 && ((const float *)t->data)[3] == 4, "a in shard 1");
        CHECK(strcmp(lorac_st_metadata(st, "format"), "pt") == 0, "first shard's metadata wins");
        CHECK(lorac_st_metadata(st, "extra") && strcmp(lorac_st_metadata(st, "extra"), "yes") == 0, "merged metadata");
        CHECK(lorac_st_find(st, "zz") == NULL && lorac_st_get(st, 3) == NULL && lorac_st_get(st, -1) == NULL, "absent");
        lorac_tensor_desc foreign = {0};
        CHECK(lorac_st_path_of(st, &foreign) == NULL, "path_of a foreign desc");
        lorac_st_close(st);
    }
    /* a directory holding a single model.safetensors */
    const char *one = tmp_path("single");
    char p[600];
    CHECK_OK(lorac_mkdirs(one));
    snprintf(p, sizeof p, "%s/model.safetensors", one);
    CHECK_OK(lorac_st_write(p, s1, 2, NULL));
    lorac_st *st = NULL;
    CHECK_OK(lorac_st_open(one, &st));
    CHECK(lorac_st_count(st) == 2 && lorac_st_metadata(st, "format") == NULL, "single-file directory");
    lorac_st_close(st);
}

int main(void) {
    check_real("stories260K/hf/model.safetensors", 47, "model.embed_tokens.weight", 512, 64);
    check_real("tiny_gpt2_random/model.safetensors", 28, "transformer.h.0.attn.c_attn.weight", 2, 6);
    test_roundtrip();
    test_dtypes();
    test_sharded();
    return test_summary("test_safetensors");
}

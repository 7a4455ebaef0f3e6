/* test_gguf.c - the GGUF reader and the GGML block dequantizers against
 * llama.cpp's `gguf` Python package (fixtures from tests/ref/make_gguf_fixtures.py):
 * every supported type dequantizes bit for bit as gguf.quants does, every
 * metadata type reads back, v2 files open, and the real SmolLM2 Q4_1 file
 * (if fetched) has the expected structure and values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "quant/ggml_blocks.h"
#include "testutil.h"

/* Dequantize a whole tensor to a fresh fp32 buffer (NULL on failure). */
static float *to_f32(const lorac_tensor_desc *t) {
    float *x = malloc((size_t)t->numel * sizeof *x + 1);
    if (x && lorac_to_f32(x, t->data, t->dtype, t->numel) != LORAC_OK) {
        fprintf(stderr, "to_f32(%s): %s\n", t->name, lorac_last_error());
        free(x);
        return NULL;
    }
    return x;
}

/* Same bits (so -0.0 and NaN payloads count too). */
static int bits_equal(const float *a, const void *ref, int64_t n, int64_t *bad) {
    for (int64_t i = 0; i < n; i++) {
        float r;
        memcpy(&r, (const char *)ref + 4 * i, 4);
        if (memcmp(&a[i], &r, 4) != 0) {
            *bad = i;
            return 0;
        }
    }
    return 1;
}

/* Every tensor of types.gguf equals its gguf.quants dequantization. */
static void test_types(void) {
    lorac_gguf *g = NULL;
    lorac_st *ref = NULL;
    CHECK_OK(lorac_gguf_open(test_src_path("tests/fixtures/gguf/types.gguf"), &g));
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/gguf/types_ref.safetensors"), &ref));
    if (!g || !ref) goto done;
    CHECK(lorac_gguf_version(g) == 3, "version %u", lorac_gguf_version(g));
    CHECK(lorac_gguf_tensor_count(g) == 14, "tensor count %d", lorac_gguf_tensor_count(g));
    CHECK(lorac_st_count(ref) == 14, "ref count %d", lorac_st_count(ref));
    const char *arch = lorac_gguf_get_str(g, "general.architecture");
    CHECK(arch && strcmp(arch, "llama") == 0, "architecture %s", arch ? arch : "(null)");
    for (int i = 0; i < lorac_st_count(ref); i++) {
        const lorac_tensor_desc *r = lorac_st_get(ref, i), *t = lorac_gguf_find_tensor(g, r->name);
        CHECK(t != NULL, "tensor %s missing", r->name);
        if (!t) continue;
        int same_shape = t->ndim == r->ndim && t->numel == r->numel;
        for (int d = 0; same_shape && d < t->ndim; d++) same_shape = t->shape[d] == r->shape[d];
        CHECK(same_shape, "%s: shape differs from the reference (ndim %d vs %d)", r->name, t->ndim, r->ndim);
        size_t want = (size_t)t->numel / (size_t)lorac_block_size(t->dtype) * lorac_block_bytes(t->dtype);
        CHECK(t->nbytes == want, "%s: nbytes %zu want %zu", t->name, t->nbytes, want);
        float *x = same_shape ? to_f32(t) : NULL;
        int64_t bad = -1;
        CHECK(x && bits_equal(x, r->data, r->numel, &bad), "%s (%s): element %lld differs from gguf.quants", r->name,
              lorac_dtype_name(t->dtype), (long long)bad);
        free(x);
    }
    /* dtype mapping and the row-major (reversed ne) shape */
    const lorac_tensor_desc *t = lorac_gguf_find_tensor(g, "q4_k");
    CHECK(t && t->dtype == LORAC_Q4_K && t->ndim == 2 && t->shape[0] == 7 && t->shape[1] == 256, "q4_k desc");
    t = lorac_gguf_find_tensor(g, "q6_k");
    CHECK(t && t->dtype == LORAC_Q6_K && t->nbytes == 7 * 210, "q6_k desc");
    t = lorac_gguf_find_tensor(g, "f32_3d");
    CHECK(t && t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 4, "f32_3d shape");
    t = lorac_gguf_find_tensor(g, "bf16");
    CHECK(t && t->dtype == LORAC_BF16, "bf16 dtype");
    CHECK(lorac_gguf_find_tensor(g, "nope") == NULL, "absent tensor");
    int64_t v = 0;
    CHECK(lorac_gguf_get_int(g, "test.n_tensors", &v) && v == 14, "test.n_tensors %lld", (long long)v);
    /* a partial block is refused, not read past */
    float tmp[64];
    CHECK(lorac_to_f32(tmp, lorac_gguf_find_tensor(g, "q4_0")->data, LORAC_Q4_0, 33) == LORAC_ERR_ARG, "partial block");
done:
    lorac_st_close(ref);
    lorac_gguf_close(g);
}

/* Every metadata value type of meta.gguf, nested arrays, alignment 64. */
static void test_meta(void) {
    lorac_gguf *g = NULL;
    CHECK_OK(lorac_gguf_open(test_src_path("tests/fixtures/gguf/meta.gguf"), &g));
    if (!g) return;
    int64_t i = 0;
    double f = 0;
    CHECK(lorac_gguf_kv_count(g) == 23, "kv count %d", lorac_gguf_kv_count(g));
    CHECK(lorac_gguf_get_int(g, "general.alignment", &i) && i == 64, "alignment");
    const struct { const char *key; int64_t want; lorac_gguf_type type; } ints[] = {
        {"t.u8", 200, LORAC_GGUF_U8},     {"t.i8", -100, LORAC_GGUF_I8},
        {"t.u16", 60000, LORAC_GGUF_U16}, {"t.i16", -30000, LORAC_GGUF_I16},
        {"t.u32", 4000000000LL, LORAC_GGUF_U32}, {"t.i32", -2000000000LL, LORAC_GGUF_I32},
        {"t.i64", -9000000000000000000LL, LORAC_GGUF_I64}, {"t.after_nested", 77, LORAC_GGUF_U32},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        i = 0;
        int idx = lorac_gguf_find_key(g, ints[k].key);
        CHECK(idx >= 0 && lorac_gguf_kv_type(g, idx) == ints[k].type && strcmp(lorac_gguf_key(g, idx), ints[k].key) == 0,
              "%s: type", ints[k].key);
        CHECK(lorac_gguf_get_int(g, ints[k].key, &i) && i == ints[k].want, "%s = %lld", ints[k].key, (long long)i);
    }
    CHECK(!lorac_gguf_get_int(g, "t.u64", &i), "u64 beyond int64 is not an int");
    CHECK(lorac_gguf_get_float(g, "t.u64", &f) && f == 1e19, "t.u64 as float %g", f);
    CHECK(lorac_gguf_get_float(g, "t.f32", &f) && f == 0.15625, "t.f32 %g", f);
    CHECK(lorac_gguf_get_float(g, "t.f64", &f) && f == -2.5e-300, "t.f64 %g", f);
    CHECK(lorac_gguf_get_float(g, "t.u16", &f) && f == 60000, "int as float");
    CHECK(lorac_gguf_kv_type(g, lorac_gguf_find_key(g, "t.bool")) == LORAC_GGUF_BOOL, "bool type");
    int bv = -1;
    CHECK(lorac_gguf_get_bool(g, "t.bool", &bv) && bv == 1, "t.bool = %d (the fixture writes True)", bv);
    CHECK(!lorac_gguf_get_bool(g, "t.u8", &bv), "a number is not a bool");
    CHECK(!lorac_gguf_get_int(g, "t.str", &i) && !lorac_gguf_get_float(g, "t.str", &f), "string is not a number");
    const char *s = lorac_gguf_get_str(g, "t.str");
    CHECK(s && strcmp(s, "h\xc3\xa9llo w\xc3\xb6rld") == 0, "utf-8 string");
    s = lorac_gguf_get_str(g, "t.str_bytes");
    CHECK(s && strcmp(s, "a") == 0, "string with NUL ends early in C");
    CHECK(lorac_gguf_get_str(g, "t.u8") == NULL, "get_str on a number");

    lorac_gguf_type et;
    uint64_t n = 0;
    CHECK(lorac_gguf_get_arr(g, "t.arr_str", &et, &n) && et == LORAC_GGUF_STRING && n == 4, "arr_str");
    CHECK(strcmp(lorac_gguf_arr_str(g, "t.arr_str", 0), "<s>") == 0, "arr_str[0]");
    CHECK(lorac_gguf_arr_str_len(g, "t.arr_str", 1) == 0 && lorac_gguf_arr_str(g, "t.arr_str", 1)[0] == 0, "empty");
    CHECK(lorac_gguf_arr_str_len(g, "t.arr_str", 2) == 3 && memcmp(lorac_gguf_arr_str(g, "t.arr_str", 2), "x\0y", 3) == 0,
          "embedded NUL keeps its length");
    CHECK(strcmp(lorac_gguf_arr_str(g, "t.arr_str", 3), "\xe2\x96\x81the") == 0, "arr_str[3]");
    CHECK(lorac_gguf_arr_str(g, "t.arr_str", 4) == NULL && lorac_gguf_arr_str_len(g, "t.arr_str", 4) == 0, "oob");
    CHECK(lorac_gguf_get_arr(g, "t.arr_i32", &et, &n) && et == LORAC_GGUF_I32 && n == 4, "arr_i32");
    CHECK(lorac_gguf_arr_i64(g, "t.arr_i32", 0) == -1 && lorac_gguf_arr_i64(g, "t.arr_i32", 3) == 2147483647, "i32s");
    CHECK(lorac_gguf_arr_f64(g, "t.arr_i32", 2) == 7.0, "int element as double");
    CHECK(lorac_gguf_arr_f64(g, "t.arr_f32", 1) == -1.25 && lorac_gguf_arr_i64(g, "t.arr_f32", 2) == 3, "f32s");
    CHECK(lorac_gguf_arr_i64(g, "t.arr_u8", 2) == 255 && lorac_gguf_arr_i64(g, "t.arr_bool", 0) == 1, "u8/bool");
    CHECK(lorac_gguf_arr_f64(g, "t.arr_f32", 3) == 0.0, "oob numeric is 0");
    CHECK(lorac_gguf_get_arr(g, "t.arr_nested", &et, &n) && et == LORAC_GGUF_ARRAY && n == 3, "nested array");
    CHECK(lorac_gguf_arr_i64(g, "t.arr_nested", 0) == 0 && lorac_gguf_arr_str(g, "t.arr_nested", 0) == NULL, "nested");
    CHECK(lorac_gguf_get_arr(g, "t.arr_nested2", &et, &n) && et == LORAC_GGUF_ARRAY && n == 2, "nested2");
    CHECK(!lorac_gguf_get_arr(g, "t.u8", &et, &n) && !lorac_gguf_get_arr(g, "absent", &et, &n), "not arrays");
    CHECK(lorac_gguf_find_key(g, "absent") == -1 && lorac_gguf_get_str(g, "absent") == NULL, "absent key");
    CHECK(!lorac_gguf_get_int(g, "absent", &i) && lorac_gguf_key(g, 99) == NULL, "absent int");

    const lorac_tensor_desc *w = lorac_gguf_find_tensor(g, "w"), *v = lorac_gguf_find_tensor(g, "v");
    CHECK(w && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3 && w->dtype == LORAC_F32, "w desc");
    CHECK(v && v->ndim == 1 && v->shape[0] == 5, "v desc");
    if (w && v) {
        CHECK((uintptr_t)w->data % 64 == 0 && (uintptr_t)v->data % 64 == 0, "tensor data 64-aligned");
        float x[6];
        CHECK_OK(lorac_to_f32(x, w->data, w->dtype, 6));
        CHECK(x[0] == 0 && x[5] == 5, "w values");
        CHECK_OK(lorac_to_f32(x, v->data, v->dtype, 5));
        CHECK(x[4] == -4, "v values");
    }
    lorac_gguf_close(g);
}

/* v2 shares v3's layout: the same file with version 2 opens identically. */
static void test_v2(void) {
    char *buf = NULL, path[512];
    size_t len = 0;
    CHECK_OK(lorac_read_file(test_src_path("tests/fixtures/gguf/types.gguf"), 1 << 20, &buf, &len));
    if (!buf) return;
    buf[4] = 2;
    snprintf(path, sizeof path, "%s/v2.gguf", test_tmpdir());
    CHECK_OK(lorac_write_atomic(path, buf, len));
    free(buf);
    lorac_gguf *g = NULL;
    CHECK_OK(lorac_gguf_open(path, &g));
    CHECK(lorac_gguf_version(g) == 2 && lorac_gguf_tensor_count(g) == 14, "v2 file");
    CHECK(strcmp(lorac_gguf_path(g), path) == 0, "path");
    lorac_gguf_close(g);
    lorac_gguf_close(NULL);
}

/* The real SmolLM2-135M-Instruct Q4_1 file (token_embd is Q8_0 in it). */
static void test_real(void) {
    const char *path = test_cache_path("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!lorac_file_exists(path)) {
        printf("test_gguf: real SmolLM2 GGUF skipped (%s absent)\n", path);
        return;
    }
    lorac_gguf *g = NULL;
    lorac_st *ref = NULL;
    CHECK_OK(lorac_gguf_open(path, &g));
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/gguf/smollm2_ref.safetensors"), &ref));
    if (!g || !ref) goto done;
    int64_t v = 0;
    uint64_t n = 0;
    lorac_gguf_type et;
    CHECK(lorac_gguf_tensor_count(g) == 272 && lorac_gguf_kv_count(g) == 33, "counts %d %d",
          lorac_gguf_tensor_count(g), lorac_gguf_kv_count(g));
    const char *arch = lorac_gguf_get_str(g, "general.architecture");
    CHECK(arch && strcmp(arch, "llama") == 0, "architecture");
    CHECK(lorac_gguf_get_int(g, "llama.block_count", &v) && v == 30, "block_count");
    CHECK(lorac_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) && et == LORAC_GGUF_STRING && n == 49152, "vocab");
    CHECK(lorac_gguf_arr_i64(g, "tokenizer.ggml.token_type", 0) == 3, "token_type[0] (control)");
    const lorac_tensor_desc *te = lorac_gguf_find_tensor(g, "token_embd.weight");
    const lorac_tensor_desc *fd = lorac_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    CHECK(te && te->dtype == LORAC_Q8_0 && te->ndim == 2 && te->shape[0] == 49152 && te->shape[1] == 576, "token_embd");
    CHECK(fd && fd->dtype == LORAC_Q4_1 && fd->shape[0] == 576 && fd->shape[1] == 1536, "ffn_down");
    const struct { const lorac_tensor_desc *t; int64_t row; const char *ref; } rows[] = {
        {te, 0, "token_embd.weight.row0"}, {te, 1234, "token_embd.weight.row1234"}, {fd, 0, "blk.0.ffn_down.weight.row0"}};
    for (int k = 0; k < 3 && te && fd; k++) {
        const lorac_tensor_desc *t = rows[k].t, *r = lorac_st_find(ref, rows[k].ref);
        int64_t cols = t->shape[1], bad = -1;
        size_t row_bytes = t->nbytes / (size_t)t->shape[0];
        float *x = malloc((size_t)cols * sizeof *x);
        CHECK(r && r->numel == cols, "%s in reference", rows[k].ref);
        CHECK_OK(lorac_to_f32(x, (const char *)t->data + row_bytes * (size_t)rows[k].row, t->dtype, cols));
        CHECK(r && bits_equal(x, r->data, cols, &bad), "%s: element %lld differs", rows[k].ref, (long long)bad);
        free(x);
    }
    /* every tensor dequantizes to finite numbers, one row at a time */
    float *row = malloc(49152 * sizeof *row);
    int all_finite = 1;
    for (int k = 0; k < lorac_gguf_tensor_count(g) && row; k++) {
        const lorac_tensor_desc *t = lorac_gguf_tensor(g, k);
        int64_t cols = t->shape[t->ndim - 1], nrows = t->numel / cols;
        size_t rb = t->nbytes / (size_t)nrows;
        for (int64_t r = 0; r < nrows; r++) {
            if (lorac_to_f32(row, (const char *)t->data + rb * (size_t)r, t->dtype, cols) != LORAC_OK) all_finite = 0;
            for (int64_t c = 0; c < cols; c++) all_finite &= isfinite(row[c]) != 0;
        }
    }
    CHECK(all_finite, "all tensors dequantize to finite values");
    free(row);
done:
    lorac_st_close(ref);
    lorac_gguf_close(g);
}

int main(void) {
    test_types();
    test_meta();
    test_v2();
    test_real();
    return test_summary("test_gguf");
}

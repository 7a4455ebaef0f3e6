/* test_malformed_io.c - hostile safetensors and GGUF files, generated here
 * into test_tmpdir(). Each must be refused with the expected status and a
 * one-line message naming the file and containing a key phrase; none may
 * crash (this test is also run under -fsanitize=address,undefined). Then
 * every truncation of small valid files, and random byte flips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "testutil.h"

static int g_cases; /* distinct malformed files checked */

/* ------------------------------------------------------------- helpers */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_zeros(buf *b, size_t n) {
    static const uint8_t z[256];
    for (; n > 256; n -= 256) put(b, z, 256);
    put(b, z, n);
}

static const char *tmp_path(const char *name) {
    static char p[8][512];
    static int k;
    char *out = p[k++ % 8];
    snprintf(out, 512, "%s/%s", test_tmpdir(), name);
    return out;
}

static const char *save(const char *name, const void *data, size_t n) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (f) {
        if (n) fwrite(data, 1, n, f);
        fclose(f);
    }
    return path;
}

static lorac_status open_st(const char *path) {
    lorac_st *st = NULL;
    lorac_status s = lorac_st_open(path, &st);
    lorac_st_close(st);
    return s;
}

static lorac_status open_gguf(const char *path) {
    lorac_gguf *g = NULL;
    lorac_status s = lorac_gguf_open(path, &g);
    lorac_gguf_close(g);
    return s;
}

/* Open must fail with `want`, one line naming `name_in_msg` and `phrase`. */
static void expect(lorac_status (*open)(const char *), const char *path, lorac_status want, const char *phrase,
                   const char *name_in_msg) {
    lorac_clear_error();
    lorac_status s = open(path);
    const char *msg = lorac_last_error();
    CHECK(s == want, "%s: got %s, want %s: %s", path, lorac_status_name(s), lorac_status_name(want), msg);
    CHECK(strstr(msg, phrase) != NULL, "%s: message lacks \"%s\": %s", path, phrase, msg);
    CHECK(strstr(msg, name_in_msg) != NULL && strchr(msg, '\n') == NULL, "%s: not one line naming %s: %s", path,
          name_in_msg, msg);
    g_cases++;
}

/* ---------------------------------------------------------- safetensors */

/* A safetensors file with the given header and `n` zero bytes of data. */
static const char *st_file(const char *name, const char *header, size_t n) {
    buf b = {0};
    put_u64(&b, strlen(header));
    put(&b, header, strlen(header));
    put_zeros(&b, n);
    const char *p = save(name, b.p, b.n);
    free(b.p);
    return p;
}

#define E(name, off, dt, shape) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}"

static void test_safetensors_cases(void) {
    const lorac_status F = LORAC_ERR_FORMAT;
    expect(open_st, save("empty.safetensors", "", 0), F, "too short", "empty.safetensors");
    expect(open_st, save("five.safetensors", "\x10\0\0\0\0", 5), F, "too short", "five");
    {
        buf b = {0};
        put_u64(&b, 1000);
        put(&b, "{}", 2);
        expect(open_st, save("hlen_big.safetensors", b.p, b.n), F, "more than the", "hlen_big");
        b.n = 0;
        put_u64(&b, (uint64_t)200 << 20);
        put(&b, "{}", 2);
        expect(open_st, save("hlen_100mb.safetensors", b.p, b.n), F, "100 MB", "hlen_100mb");
        free(b.p);
    }
    expect(open_st, st_file("notjson.safetensors", "{not json", 0), F, "not valid JSON", "notjson");
    expect(open_st, st_file("array.safetensors", "[1,2]", 0), F, "not an object", "array");
    expect(open_st, st_file("trailing.safetensors", "{} x", 0), F, "bytes after its JSON", "trailing");
    expect(open_st, st_file("nooffsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8), F,
           "missing \"data_offsets\"", "'w'");
    expect(open_st, st_file("nodtype.safetensors", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8), F,
           "missing \"dtype\"", "'w'");
    expect(open_st, st_file("dtype.safetensors", "{" E("w", "[0,8]", "F33", "[2]") "}", 8), LORAC_ERR_UNSUPPORTED,
           "unknown dtype \"F33\"", "'w'");
    expect(open_st, st_file("negdim.safetensors", "{" E("w", "[0,8]", "F32", "[-2]") "}", 8), F,
           "not a non-negative integer", "'w'");
    expect(open_st, st_file("fracdim.safetensors", "{" E("w", "[0,8]", "F32", "[2.5]") "}", 8), F,
           "not a non-negative integer", "'w'");
    expect(open_st,
           st_file("absurd.safetensors", "{" E("w", "[0,8]", "F32", "[4294967296,4294967296,4294967296]") "}", 8), F,
           "more elements than fit", "'w'");
    expect(open_st, st_file("ndim9.safetensors", "{" E("w", "[0,4]", "F32", "[1,1,1,1,1,1,1,1,1]") "}", 4),
           LORAC_ERR_UNSUPPORTED, "9 dimensions", "'w'");
    expect(open_st, st_file("pastend.safetensors", "{" E("w", "[0,400]", "F32", "[100]") "}", 24), F,
           "run past the end", "[0,400]");
    expect(open_st, st_file("size.safetensors", "{" E("h.0.attn.c_attn.weight", "[0,100]", "F32", "[5,6]") "}", 120),
           F, "hold 100 bytes but F32 [5,6] needs 120", "'h.0.attn.c_attn.weight'");
    expect(open_st, st_file("reversed.safetensors", "{" E("w", "[8,0]", "F32", "[2]") "}", 8), F, "reversed", "'w'");
    expect(open_st, st_file("arity.safetensors", "{" E("w", "[0,8,16]", "F32", "[2]") "}", 16), F,
           "\"data_offsets\" is not two", "'w'");
    expect(open_st,
           st_file("overlap.safetensors", "{" E("a", "[0,16]", "F32", "[4]") "," E("b", "[8,24]", "F32", "[4]") "}", 24),
           F, "overlap", "'a' [0,16] and 'b' [8,24]");
    expect(open_st,
           st_file("dup.safetensors", "{" E("a", "[0,8]", "F32", "[2]") "," E("a", "[8,16]", "F32", "[2]") "}", 16), F,
           "duplicate tensor name 'a'", "dup.safetensors");
    expect(open_st, st_file("meta.safetensors", "{\"__metadata__\":{\"k\":3}}", 0), F, "__metadata__", "'k'");
    expect(open_st, st_file("entry.safetensors", "{\"w\":[1]}", 0), F, "not a JSON object", "'w'");
    expect(open_st, tmp_path("does_not_exist.safetensors"), LORAC_ERR_IO, "cannot open", "does_not_exist");

    /* permissive: a gap between tensors and an empty tensor are fine */
    lorac_st *st = NULL;
    CHECK_OK(lorac_st_open(
        st_file("gap.safetensors", "{" E("a", "[0,8]", "F32", "[2]") "," E("z", "[8,8]", "F32", "[0]") "," E("b", "[16,24]", "F32", "[2]") "}", 24), &st));
    CHECK(lorac_st_count(st) == 3, "gap file");
    lorac_st_close(st);
}

/* Sharded sets: missing shard, tensor not where the index says, duplicates
 * across shards, escaping shard names, index without weight_map. */
static void test_sharded_cases(void) {
    const char *dir = tmp_path("shards");
    char p[700], idx[700];
    float a[2] = {1, 2};
    lorac_st_entry e[] = {{"a", a, 1, {2}, LORAC_F32, NULL}};
    CHECK_OK(lorac_mkdirs(dir));
    snprintf(p, sizeof p, "%s/s1.safetensors", dir);
    CHECK_OK(lorac_st_write(p, e, 1, NULL));
    snprintf(p, sizeof p, "%s/s2.safetensors", dir);
    CHECK_OK(lorac_st_write(p, e, 1, NULL));
    struct { const char *json; lorac_status st; const char *phrase, *file; } cases[] = {
        {"{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"gone.safetensors\"}}", LORAC_ERR_IO, "'gone.safetensors' (holding tensor 'b') is missing", "index.json"},
        {"{\"weight_map\":{\"a\":\"s1.safetensors\",\"zz\":\"s1.safetensors\"}}", LORAC_ERR_FORMAT, "tensor 'zz' is listed in shard 's1.safetensors' but", "index.json"},
        {"{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}", LORAC_ERR_FORMAT, "duplicate tensor name 'a'", "s1.safetensors"},
        {"{\"weight_map\":{\"a\":\"../s1.safetensors\"}}", LORAC_ERR_FORMAT, "not a relative file name", "index.json"},
        {"{\"weight_map\":{\"a\":7}}", LORAC_ERR_FORMAT, "not a relative file name", "index.json"},
        {"{\"metadata\":{}}", LORAC_ERR_FORMAT, "no \"weight_map\"", "index.json"},
        {"{\"weight_map\":", LORAC_ERR_FORMAT, "not valid JSON", "index.json"},
    };
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_OK(lorac_write_atomic(idx, cases[i].json, strlen(cases[i].json)));
        expect(open_st, idx, cases[i].st, cases[i].phrase, cases[i].file);
    }
    const char *empty = tmp_path("emptydir");
    CHECK_OK(lorac_mkdirs(empty));
    expect(open_st, empty, LORAC_ERR_IO, "neither model.safetensors nor", "emptydir");
}

/* ----------------------------------------------------------------- GGUF */

/* GGUF header: magic, version, tensor count, kv count. */
static void gguf_head(buf *b, const char *magic, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, magic, 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}

static void kv_str(buf *b, const char *key, const char *val) {
    put_str(b, key);
    put_u32(b, 8);
    put_str(b, val);
}

static void kv_u32(buf *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, 4);
    put_u32(b, v);
}

static void tinfo(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) put_u64(b, ne[i]);
    put_u32(b, type);
    put_u64(b, offset);
}

static void pad_to(buf *b, size_t align) { put_zeros(b, (align - b->n % align) % align); }

/* A valid file: one kv, one tensor 'w' (ggml type `type`, dims ne[0..n_dims)),
 * `data` bytes of tensor data after alignment to 32. */
static buf gguf_one(uint32_t type, uint32_t n_dims, const uint64_t *ne, uint64_t offset, size_t data) {
    buf b = {0};
    gguf_head(&b, "GGUF", 3, 1, 1);
    kv_str(&b, "general.architecture", "llama");
    tinfo(&b, "w", n_dims, ne, type, offset);
    pad_to(&b, 32);
    put_zeros(&b, data);
    return b;
}

static const char *gsave(const char *name, buf *b) {
    const char *p = save(name, b->p, b->n);
    free(b->p);
    *b = (buf){0};
    return p;
}

static void test_gguf_cases(void) {
    const lorac_status F = LORAC_ERR_FORMAT, U = LORAC_ERR_UNSUPPORTED;
    const uint64_t ne8[] = {8};
    buf b = gguf_one(0, 1, ne8, 0, 32);
    CHECK(open_gguf(gsave("ok.gguf", &b)) == LORAC_OK, "the base case opens: %s", lorac_last_error());

    expect(open_gguf, save("empty.gguf", "", 0), F, "not a GGUF file", "empty.gguf");
    gguf_head(&b, "GGUX", 3, 0, 0);
    expect(open_gguf, gsave("magic.gguf", &b), F, "not a GGUF file (starts with 'GGUX'", "magic.gguf");
    gguf_head(&b, "GGUF", 1, 0, 0);
    expect(open_gguf, gsave("v1.gguf", &b), U, "version 1 is not supported", "v1.gguf");
    gguf_head(&b, "GGUF", 4, 0, 0);
    expect(open_gguf, gsave("v4.gguf", &b), U, "version 4", "v4.gguf");
    gguf_head(&b, "GGUF", 3u << 24, 0, 0);
    expect(open_gguf, gsave("bigendian.gguf", &b), U, "big-endian", "bigendian.gguf");
    gguf_head(&b, "GGUF", 3, (uint64_t)1 << 40, 0);
    expect(open_gguf, gsave("ntensors.gguf", &b), F, "tensor count 1099511627776 cannot fit", "ntensors.gguf");
    gguf_head(&b, "GGUF", 3, 0, UINT64_MAX);
    expect(open_gguf, gsave("nkv.gguf", &b), F, "metadata count", "nkv.gguf");

    gguf_head(&b, "GGUF", 3, 0, 1); /* key length past the end */
    put_u64(&b, (uint64_t)1 << 40);
    put_zeros(&b, 16);
    expect(open_gguf, gsave("keylen.gguf", &b), F, "string length 1099511627776 runs past the end", "metadata pair 0");
    gguf_head(&b, "GGUF", 3, 0, 1); /* value string length past the end */
    put_str(&b, "general.name");
    put_u32(&b, 8);
    put_u64(&b, 1000);
    put(&b, "abc", 3);
    expect(open_gguf, gsave("vallen.gguf", &b), F, "string length 1000", "'general.name'");
    gguf_head(&b, "GGUF", 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 99);
    put_zeros(&b, 8);
    expect(open_gguf, gsave("kvtype.gguf", &b), F, "unknown value type 99", "'k'");
    gguf_head(&b, "GGUF", 3, 0, 1); /* array count larger than the file */
    put_str(&b, "arr");
    put_u32(&b, 9);
    put_u32(&b, 4);
    put_u64(&b, (uint64_t)1 << 60);
    put_zeros(&b, 16);
    expect(open_gguf, gsave("arrlen.gguf", &b), F, "cannot fit in the", "'arr'");
    gguf_head(&b, "GGUF", 3, 0, 1); /* arrays nested 10 deep */
    put_str(&b, "deep");
    put_u32(&b, 9);
    for (int i = 0; i < 10; i++) {
        put_u32(&b, 9);
        put_u64(&b, 1);
    }
    put_zeros(&b, 64);
    expect(open_gguf, gsave("deep.gguf", &b), F, "nested more than 8 deep", "'deep'");
    gguf_head(&b, "GGUF", 3, 0, 2);
    kv_u32(&b, "k", 1);
    kv_u32(&b, "k", 2);
    expect(open_gguf, gsave("dupkey.gguf", &b), F, "duplicate metadata key 'k'", "dupkey.gguf");
    gguf_head(&b, "GGUF", 3, 1, 1);
    kv_u32(&b, "general.alignment", 3);
    tinfo(&b, "w", 1, ne8, 0, 0);
    put_zeros(&b, 64);
    expect(open_gguf, gsave("align.gguf", &b), F, "power of two", "align.gguf");

    const uint64_t ne5[] = {1, 1, 1, 1, 1}, ne0[] = {4, 0}, nebig[] = {(uint64_t)1 << 40, (uint64_t)1 << 40},
                   ne48[] = {48, 2}, ne1000[] = {1000};
    b = gguf_one(0, 5, ne5, 0, 32);
    expect(open_gguf, gsave("ndims.gguf", &b), F, "has 5 dimensions", "'w'");
    b = gguf_one(0, 2, ne0, 0, 32);
    expect(open_gguf, gsave("zerodim.gguf", &b), F, "ne[1] = 0 is zero", "'w'");
    b = gguf_one(0, 2, nebig, 0, 32);
    expect(open_gguf, gsave("overflow.gguf", &b), F, "overflow", "'w'");
    b = gguf_one(16, 1, ne8, 0, 32); /* a ggml type lorac does not read */
    expect(open_gguf, gsave("iq2xxs.gguf", &b), U, "ggml type 16 (IQ2_XXS)", "tensor 'w'");
    b = gguf_one(13, 1, ne8, 0, 32); /* Q5_K, read since issue 14: 8 values are no whole 256-value block */
    expect(open_gguf, gsave("q5k.gguf", &b), F, "not a multiple of the Q5_K block size 256", "tensor 'w'");
    b = gguf_one(999, 1, ne8, 0, 32);
    expect(open_gguf, gsave("type999.gguf", &b), U, "ggml type 999 (unknown)", "tensor 'w'");
    b = gguf_one(2, 2, ne48, 0, 64);
    expect(open_gguf, gsave("blocks.gguf", &b), F, "ne[0] = 48 is not a multiple of the Q4_0 block size 32", "'w'");
    b = gguf_one(0, 1, ne8, 4, 64);
    expect(open_gguf, gsave("misaligned.gguf", &b), F, "offset 4 is not aligned to 32", "'w'");
    b = gguf_one(0, 1, ne1000, 0, 32);
    expect(open_gguf, gsave("datapast.gguf", &b), F, "runs past the end", "'w'");
    b = gguf_one(0, 1, ne8, (uint64_t)-32, 32);
    expect(open_gguf, gsave("offwrap.gguf", &b), F, "runs past the end", "'w'");
    gguf_head(&b, "GGUF", 3, 1, 0); /* infos end the file: no data section */
    tinfo(&b, "w", 1, ne8, 0, 0);
    put_zeros(&b, 1);
    expect(open_gguf, gsave("nodata.gguf", &b), F, "ends before its tensor data", "nodata.gguf");
    gguf_head(&b, "GGUF", 3, 2, 0);
    tinfo(&b, "w", 1, ne8, 0, 0);
    tinfo(&b, "w", 1, ne8, 0, 32);
    pad_to(&b, 32);
    put_zeros(&b, 64);
    expect(open_gguf, gsave("duptensor.gguf", &b), F, "duplicate tensor name 'w'", "duptensor.gguf");
    gguf_head(&b, "GGUF", 3, 2, 0);
    tinfo(&b, "w", 1, ne8, 0, 0);
    tinfo(&b, "v", 1, ne8, 0, 0);
    pad_to(&b, 32);
    put_zeros(&b, 64);
    expect(open_gguf, gsave("overlap.gguf", &b), F, "overlap", "'w' and 'v'");
    gguf_head(&b, "GGUF", 3, 1, 0); /* control bytes in a name stay on one line */
    tinfo(&b, "bad\nname", 2, ne0, 0, 0);
    put_zeros(&b, 64);
    expect(open_gguf, gsave("ctrlname.gguf", &b), F, "'bad?name'", "ctrlname.gguf");
}

/* ------------------------------------------- truncations and byte flips */

/* Every proper prefix of a valid file must be refused as malformed, except
 * that cutting only the last `tail_ok` bytes (padding after the last
 * tensor's data) may still give a readable file. */
static void truncations(lorac_status (*open)(const char *), const char *src, const char *name, size_t tail_ok) {
    char *data = NULL;
    size_t len = 0;
    CHECK_OK(lorac_read_file(src, 1 << 20, &data, &len));
    int bad = 0;
    for (size_t n = 0; n < len && data; n++) {
        lorac_status s = open(save(name, data, n));
        if (s != LORAC_ERR_FORMAT && !(s == LORAC_OK && n >= len - tail_ok) && bad++ < 3)
            fprintf(stderr, "FAIL %s cut to %zu of %zu bytes: %s: %s\n", src, n, len, lorac_status_name(s),
                    lorac_last_error());
    }
    CHECK(bad == 0 && len > 0, "%s: %d truncations not refused", src, bad);
    g_cases++;
    free(data);
}

/* Bytes of alignment padding after the last tensor of a GGUF file. */
static size_t gguf_tail_padding(const char *path) {
    lorac_gguf *g = NULL;
    CHECK_OK(lorac_gguf_open(path, &g));
    const lorac_tensor_desc *last = NULL;
    for (int i = 0; i < lorac_gguf_tensor_count(g); i++) {
        const lorac_tensor_desc *t = lorac_gguf_tensor(g, i);
        if (!last || (const char *)t->data > (const char *)last->data) last = t;
    }
    int64_t align = 32;
    lorac_gguf_get_int(g, "general.alignment", &align);
    size_t pad = last ? (size_t)((align - (int64_t)(last->nbytes % (size_t)align)) % align) : 0;
    lorac_gguf_close(g);
    return pad;
}

/* Random byte flips: any status is fine, a crash is not; when a damaged
 * file still opens, all its tensors must convert. */
static void byte_flips(int is_gguf, const char *src, const char *name, int rounds) {
    char *data = NULL;
    size_t len = 0;
    CHECK_OK(lorac_read_file(src, 1 << 20, &data, &len));
    if (!data) return;
    uint64_t r = 88172645463325252ull;
    int odd = 0, opened = 0;
    float *x = malloc(1 << 20);
    for (int it = 0; it < rounds; it++) {
        char *m = malloc(len);
        memcpy(m, data, len);
        for (int k = 0; k < 1 + it % 4; k++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            m[(r >> 8) % len] ^= (char)(1u << (r % 8));
        }
        const char *p = save(name, m, len);
        free(m);
        lorac_st *st = NULL;
        lorac_gguf *g = NULL;
        lorac_status s = is_gguf ? lorac_gguf_open(p, &g) : lorac_st_open(p, &st);
        odd += s != LORAC_OK && s != LORAC_ERR_FORMAT && s != LORAC_ERR_UNSUPPORTED;
        int n = is_gguf ? lorac_gguf_tensor_count(g) : lorac_st_count(st);
        opened += s == LORAC_OK;
        for (int i = 0; i < n; i++) {
            const lorac_tensor_desc *t = is_gguf ? lorac_gguf_tensor(g, i) : lorac_st_get(st, i);
            if (t->numel <= (1 << 18)) lorac_to_f32(x, t->data, t->dtype, t->numel);
        }
        lorac_gguf_close(g);
        lorac_st_close(st);
    }
    CHECK(odd == 0, "%s: %d flips gave an unexpected status", src, odd);
    printf("test_malformed_io: %d byte-flip rounds on %s, %d still opened\n", rounds, name, opened);
    free(x);
    free(data);
}

int main(void) {
    test_safetensors_cases();
    test_sharded_cases();
    test_gguf_cases();

    float w[6] = {1, 2, 3, 4, 5, 6};
    lorac_st_entry e[] = {{"a", w, 2, {2, 3}, LORAC_F32, NULL}, {"b", w, 1, {4}, LORAC_F16, NULL}};
    const char *meta[] = {"format", "pt", NULL};
    char valid[512], ok_gguf[512], meta_gguf[512], types_gguf[512];
    snprintf(valid, sizeof valid, "%s", tmp_path("valid.safetensors"));
    snprintf(ok_gguf, sizeof ok_gguf, "%s", tmp_path("ok.gguf"));
    snprintf(meta_gguf, sizeof meta_gguf, "%s", test_src_path("tests/fixtures/gguf/meta.gguf"));
    snprintf(types_gguf, sizeof types_gguf, "%s", test_src_path("tests/fixtures/gguf/types.gguf"));
    CHECK_OK(lorac_st_write(valid, e, 2, meta));
    truncations(open_st, valid, "cut.safetensors", 0);
    truncations(open_gguf, ok_gguf, "cut.gguf", 0);
    truncations(open_gguf, meta_gguf, "cut_meta.gguf", gguf_tail_padding(meta_gguf));
    truncations(open_gguf, types_gguf, "cut_types.gguf", gguf_tail_padding(types_gguf));
    byte_flips(0, valid, "flip.safetensors", 3000);
    byte_flips(1, meta_gguf, "flip_meta.gguf", 3000);
    byte_flips(1, types_gguf, "flip_types.gguf", 3000);
    printf("test_malformed_io: %d malformed cases\n", g_cases);
    return test_summary("test_malformed_io");
}

/* test_nf4.c - NF4 + double quantization against bitsandbytes 0.50.2
 * (tests/fixtures/quant/nf4_ref.safetensors, written by
 * tests/ref/make_nf4_fixtures.py).
 *
 * Exactness required here:
 *  - the 16 NF4 values and the 256 dynamic-map values: bit for bit;
 *  - packed 4-bit codes and first-level absmax: equal exactly;
 *  - the 8-bit double quantization of (absmax - offset) given bitsandbytes'
 *    offset: codes and second-level absmax equal exactly;
 *  - the offset: bit for bit on these fixtures (allowed 2 ulp in general,
 *    see lorac_nf4_mean); with an equal offset, everything lorac_nf4_quantize
 *    produces equals bitsandbytes' state exactly;
 *  - dequantization of bitsandbytes' own quantized state: bit for bit
 *    (0 ulp), both the block absmax and the weights. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "quant/nf4.h"
#include "testutil.h"

static const lorac_st *g_ref;

static const uint8_t *u8_of(const char *name, int64_t *n) {
    const lorac_tensor_desc *t = test_st_need(g_ref, name);
    if (t->dtype != LORAC_U8) {
        fprintf(stderr, "fixture tensor '%s' is not U8\n", name);
        exit(2);
    }
    *n = t->numel;
    return t->data;
}

static float *f32_of(const char *fmt, const char *a, size_t *n) {
    char name[128];
    snprintf(name, sizeof name, fmt, a);
    return test_st_f32(g_ref, name, n);
}

/* Index of the first differing bit pattern, or -1. */
static int64_t first_diff_bits(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) return i;
    return -1;
}

static int64_t ulp_dist(float a, float b) {
    int32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    if ((x < 0) != (y < 0)) return a == b ? 0 : INT32_MAX;
    int64_t d = (int64_t)x - (int64_t)y;
    return d < 0 ? -d : d;
}

static void test_tables(void) {
    size_t n4 = 0, n8 = 0;
    float *c4 = test_st_f32(g_ref, "nf4_code", &n4), *c8 = test_st_f32(g_ref, "dynamic_map", &n8);
    CHECK(n4 == 16 && first_diff_bits(c4, lorac_nf4_code, 16) < 0, "NF4 values differ from bitsandbytes");
    CHECK(n8 == 256 && first_diff_bits(c8, lorac_dynamic_map, 256) < 0, "dynamic map differs at %lld",
          (long long)first_diff_bits(c8, lorac_dynamic_map, 256));
    CHECK(lorac_dynamic_map[127] == 0.0f && lorac_dynamic_map[255] == 1.0f, "map has 0 at 127 and 1 at 255");
    for (int i = 0; i < 255; i++) CHECK(lorac_dynamic_map[i] < lorac_dynamic_map[i + 1], "map ascending at %d", i);
    free(c4);
    free(c8);
}

static void test_case(const char *name, int64_t rows, int64_t cols) {
    char key[128];
    size_t n = 0, nb = 0, nb2 = 0, tmp = 0;
    float *w = f32_of("%s.w", name, &n);
    float *absmax32 = f32_of("%s.absmax32", name, &nb);
    float *absmax2 = f32_of("%s.absmax2", name, &nb2);
    float *off = f32_of("%s.offset", name, &tmp);
    float *absdeq = f32_of("%s.absmax_deq", name, &tmp);
    float *deq = f32_of("%s.deq", name, &tmp);
    int64_t ncodes = 0, nq = 0;
    snprintf(key, sizeof key, "%s.codes", name);
    const uint8_t *codes = u8_of(key, &ncodes);
    snprintf(key, sizeof key, "%s.qabsmax", name);
    const uint8_t *qabsmax = u8_of(key, &nq);
    CHECK((int64_t)n == rows * cols && ncodes == (rows * cols + 1) / 2 && nq == (int64_t)nb, "%s: fixture sizes", name);

    /* 1. first level: codes and fp32 absmax */
    uint8_t *c = malloc((size_t)ncodes);
    float *am = malloc(sizeof(float) * nb);
    lorac_nf4_quantize_blocks(w, (int64_t)n, 64, c, am);
    int64_t bad = -1;
    for (int64_t i = 0; i < ncodes && bad < 0; i++)
        if (c[i] != codes[i]) bad = i;
    CHECK(bad < 0, "%s: packed byte %lld = 0x%02x, bitsandbytes 0x%02x", name, (long long)bad, bad >= 0 ? c[bad] : 0,
          bad >= 0 ? codes[bad] : 0);
    CHECK(first_diff_bits(am, absmax32, (int64_t)nb) < 0, "%s: first-level absmax differs at block %lld", name,
          (long long)first_diff_bits(am, absmax32, (int64_t)nb));

    /* 2. double quantization given bitsandbytes' offset */
    uint8_t *q8 = malloc(nb);
    float *a2 = malloc(sizeof(float) * nb2);
    for (size_t b = 0; b < nb; b++) am[b] = absmax32[b] - off[0];
    lorac_blockwise8_quantize(am, (int64_t)nb, 256, q8, a2);
    bad = -1;
    for (size_t b = 0; b < nb && bad < 0; b++)
        if (q8[b] != qabsmax[b]) bad = (int64_t)b;
    CHECK(bad < 0, "%s: absmax code %lld = %d, bitsandbytes %d", name, (long long)bad, bad >= 0 ? q8[bad] : 0,
          bad >= 0 ? qabsmax[bad] : 0);
    CHECK(first_diff_bits(a2, absmax2, (int64_t)nb2) < 0, "%s: second-level absmax differs", name);

    /* 3. the whole thing */
    lorac_nf4 q;
    CHECK_OK(lorac_nf4_quantize(w, rows, cols, &q));
    CHECK(q.nblocks == (int64_t)nb && q.nblocks2 == (int64_t)nb2, "%s: block counts %lld %lld", name,
          (long long)q.nblocks, (long long)q.nblocks2);
    CHECK(q.codes && memcmp(q.codes, codes, (size_t)ncodes) == 0, "%s: codes", name);
    CHECK(ulp_dist(q.offset, off[0]) <= 2, "%s: offset %.9g vs bitsandbytes %.9g", name, q.offset, off[0]);
    CHECK(q.offset == off[0], "%s: offset %.9g bit-exact with bitsandbytes' %.9g on this fixture", name, q.offset,
          off[0]);
    if (q.offset == off[0]) {
        CHECK(memcmp(q.qabsmax, qabsmax, nb) == 0, "%s: qabsmax", name);
        CHECK(first_diff_bits(q.absmax2, absmax2, (int64_t)nb2) < 0, "%s: absmax2", name);
    }
    lorac_nf4_free(&q);

    /* 4. dequantize bitsandbytes' state: bit for bit */
    lorac_nf4 s = {.rows = rows, .cols = cols, .numel = rows * cols, .nblocks = (int64_t)nb, .nblocks2 = (int64_t)nb2,
                   .codes = (uint8_t *)codes, .qabsmax = (uint8_t *)qabsmax, .absmax2 = absmax2, .offset = off[0]};
    CHECK_OK(lorac_nf4_validate(&s));
    for (size_t b = 0; b < nb; b++) am[b] = lorac_nf4_block_absmax(&s, (int64_t)b);
    CHECK(first_diff_bits(am, absdeq, (int64_t)nb) < 0, "%s: dequantized absmax differs at %lld", name,
          (long long)first_diff_bits(am, absdeq, (int64_t)nb));
    float *d = malloc(sizeof(float) * n);
    CHECK_OK(lorac_nf4_dequantize(&s, d));
    bad = first_diff_bits(d, deq, (int64_t)n);
    CHECK(bad < 0, "%s: dequantized [%lld] = %.9g, bitsandbytes %.9g", name, (long long)bad, bad >= 0 ? d[bad] : 0.0f,
          bad >= 0 ? deq[bad] : 0.0f);
    /* a sub-range of a row equals the same slice of the full dequantization */
    if (cols > 7) {
        float seg[512];
        int64_t r = rows - 1, c0 = 3, c1 = cols < 500 ? cols - 2 : 500;
        CHECK_OK(lorac_nf4_dequantize_row(&s, r, c0, c1, seg));
        CHECK(first_diff_bits(seg, deq + r * cols + c0, c1 - c0) < 0, "%s: row segment", name);
    }
    /* reconstruction error is bounded by half the widest NF4 gap ((1 - 0.6962) / 2) times the block absmax */
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        const float a = absdeq[i / 64];
        ok = fabsf(d[i] - w[i]) <= 0.1520f * fabsf(a) + 1e-6f + fabsf(a - absmax32[i / 64]);
        if (!ok) fprintf(stderr, "%s: |w - deq| too large at %zu: %g vs %g (absmax %g)\n", name, i, w[i], d[i], a);
    }
    CHECK(ok, "%s: reconstruction error bound", name);

    free(d);
    free(q8);
    free(a2);
    free(c);
    free(am);
    free(w);
    free(absmax32);
    free(absmax2);
    free(off);
    free(absdeq);
    free(deq);
}

static void test_q8(const char *name) {
    char key[128];
    size_t n = 0, nb = 0, tmp = 0;
    float *x = f32_of("%s.x", name, &n);
    float *absmax = f32_of("%s.absmax", name, &nb);
    float *deq = f32_of("%s.deq", name, &tmp);
    int64_t nq = 0;
    snprintf(key, sizeof key, "%s.q", name);
    const uint8_t *want = u8_of(key, &nq);
    uint8_t *q = malloc(n);
    float *am = malloc(sizeof(float) * nb), *d = malloc(sizeof(float) * n);
    lorac_blockwise8_quantize(x, (int64_t)n, 256, q, am);
    int64_t bad = -1;
    for (size_t i = 0; i < n && bad < 0; i++)
        if (q[i] != want[i]) bad = (int64_t)i;
    CHECK(bad < 0, "%s: code %lld = %d, bitsandbytes %d (x = %.9g)", name, (long long)bad, bad >= 0 ? q[bad] : 0,
          bad >= 0 ? want[bad] : 0, bad >= 0 ? x[bad] : 0.0f);
    CHECK(first_diff_bits(am, absmax, (int64_t)nb) < 0, "%s: absmax", name);
    lorac_blockwise8_dequantize(want, absmax, (int64_t)n, 256, d);
    CHECK(first_diff_bits(d, deq, (int64_t)n) < 0, "%s: dequantized", name);
    free(q);
    free(am);
    free(d);
    free(x);
    free(absmax);
    free(deq);
}

static void test_bits_and_errors(void) {
    CHECK(lorac_nf4_bits_per_param(NULL) == 4.126953125, "nominal bits %.9f", lorac_nf4_bits_per_param(NULL));
    const int64_t R = 768, C = 768;
    float *w = malloc(sizeof(float) * R * C);
    for (int64_t i = 0; i < R * C; i++) w[i] = (float)((i * 7919) % 2001 - 1000) * 1e-3f;
    lorac_nf4 q;
    CHECK_OK(lorac_nf4_quantize(w, R, C, &q));
    const double bits = lorac_nf4_bits_per_param(&q);
    /* 589824 weights: 9216 blocks, 36 groups: 4 + 8/64 + 36*32/589824 + 32/589824 */
    CHECK(fabs(bits - (4.0 + 0.125 + 36.0 * 32 / 589824 + 32.0 / 589824)) < 1e-12, "768x768 bits %.9f", bits);
    CHECK(fabs(bits - 4.127) < 5e-4, "768x768: %.6f bits per parameter, ~4.127", bits);
    CHECK(lorac_nf4_nbytes(&q) == 589824 / 2 + 9216 + 36 * 4 + 4, "nbytes %zu", lorac_nf4_nbytes(&q));

    /* bad inputs are errors, with a message */
    float out[64];
    CHECK(lorac_nf4_dequantize_row(&q, R, 0, 4, out) == LORAC_ERR_ARG, "row out of range");
    CHECK(lorac_nf4_dequantize_row(&q, 0, 5, C + 1, out) == LORAC_ERR_ARG, "cols out of range");
    lorac_nf4 bad = q;
    bad.nblocks--;
    CHECK(lorac_nf4_validate(&bad) == LORAC_ERR_SHAPE && strstr(lorac_last_error(), "blocks"), "block count: %s",
          lorac_last_error());
    CHECK(lorac_nf4_dequantize_row(&bad, 0, 0, 4, out) == LORAC_ERR_SHAPE, "dequantize refuses a bad block count");
    bad = q;
    bad.nblocks2 = 1;
    CHECK(lorac_nf4_validate(&bad) == LORAC_ERR_SHAPE, "second-level count");
    bad = q;
    bad.cols = 700;
    CHECK(lorac_nf4_validate(&bad) == LORAC_ERR_SHAPE, "shape vs numel");
    lorac_nf4_free(&q);
    lorac_nf4 z;
    CHECK(lorac_nf4_quantize(w, 0, 5, &z) == LORAC_ERR_ARG, "empty shape");
    w[12345] = NAN;
    CHECK(lorac_nf4_quantize(w, R, C, &z) == LORAC_ERR_NUMERIC && strstr(lorac_last_error(), "[16, 57]"),
          "NaN weight: %s", lorac_last_error());
    w[12345] = INFINITY;
    CHECK(lorac_nf4_quantize(w, R, C, &z) == LORAC_ERR_NUMERIC, "Inf weight");
    free(w);
}

int main(void) {
    lorac_st *st = NULL;
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/quant/nf4_ref.safetensors"), &st));
    if (!st) return test_summary("test_nf4");
    g_ref = st;
    const char *ver = lorac_st_metadata(st, "bitsandbytes");
    CHECK(ver && strcmp(ver, "0.50.2") == 0, "fixture written by bitsandbytes %s", ver ? ver : "(none)");
    test_tables();
    test_case("a_3x100", 3, 100);
    test_case("b_64x64", 64, 64);
    test_case("c_7x333", 7, 333);
    test_case("d_90x193", 90, 193);
    test_case("e_1x64", 1, 64);
    test_case("f_zeros_4x64", 4, 64);
    test_case("g_ties_2x64", 2, 64);
    test_case("h_5x13", 5, 13);
    test_q8("q8_a");
    test_q8("q8_b");
    test_q8("q8_c");
    test_bits_and_errors();
    lorac_st_close(st);
    return test_summary("test_nf4");
}

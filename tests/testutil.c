#define _GNU_SOURCE
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "quant/qmatmul_impl.h"

int g_test_pass, g_test_fail;

int test_close(const char *what, const float *a, const float *b, size_t n, double rtol, double atol) {
    double worst = 0, maxabs = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxabs)) maxabs = d;
        double tol = atol + rtol * fabs((double)b[i]);
        double ratio = d / tol;
        if (!(ratio <= worst)) { /* also catches NaN */
            worst = ratio;
            wi = i;
            if (isnan(ratio)) break;
        }
    }
    int ok = worst <= 1.0;
    if (ok) {
        g_test_pass++;
    } else {
        g_test_fail++;
        fprintf(stderr, "FAIL %s: element %zu of %zu: got %.8g want %.8g (rtol %g atol %g; max |diff| %.3g)\n", what, wi,
                n, (double)a[wi], (double)b[wi], rtol, atol, maxabs);
    }
    return ok;
}

static const char *join(const char *env, const char *fallback, const char *rel) {
    static char buf[8][4096];
    static int k;
    const char *root = getenv(env);
    if (!root || !*root) root = fallback;
    char *out = buf[k++ % 8];
    snprintf(out, 4096, "%s/%s", root, rel);
    return out;
}

const char *test_data_path(const char *rel) { return join("LORAC_DATA", "../shared/data", rel); }
const char *test_cache_path(const char *rel) { return join("LORAC_CACHE", ".cache", rel); }
const char *test_src_path(const char *rel) { return join("LORAC_SRC", ".", rel); }

static char g_tmpdir[256];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The scratch directory goes when the test exits (LORAC_TEST_KEEP=1 keeps it, for a look). */
static void remove_tmpdir(void) {
    const char *keep = getenv("LORAC_TEST_KEEP");
    if (g_tmpdir[0] && !(keep && *keep == '1')) nftw(g_tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *test_tmpdir(void) {
    char *dir = g_tmpdir;
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof g_tmpdir, "%s/lorac_test_XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
        atexit(remove_tmpdir);
    }
    return dir;
}

int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, g_test_pass, g_test_fail);
    return g_test_fail ? 1 : 0;
}

const lorac_tensor_desc *test_st_need(const lorac_st *st, const char *name) {
    const lorac_tensor_desc *t = lorac_st_find(st, name);
    if (!t) {
        fprintf(stderr, "fixture lacks tensor '%s'\n", name);
        exit(2);
    }
    return t;
}

float *test_st_f32(const lorac_st *st, const char *name, size_t *n) {
    const lorac_tensor_desc *t = test_st_need(st, name);
    float *x = malloc(sizeof(float) * (size_t)(t->numel > 0 ? t->numel : 1));
    if (!x || lorac_to_f32(x, t->data, t->dtype, t->numel) != LORAC_OK) {
        fprintf(stderr, "fixture tensor '%s': %s\n", name, lorac_last_error());
        exit(2);
    }
    if (n) *n = (size_t)t->numel;
    return x;
}

int *test_st_ints(const lorac_st *st, const char *name) {
    const lorac_tensor_desc *t = test_st_need(st, name);
    if (t->dtype != LORAC_I64) {
        fprintf(stderr, "fixture tensor '%s' is not I64\n", name);
        exit(2);
    }
    int *x = malloc(sizeof(int) * (size_t)(t->numel > 0 ? t->numel : 1));
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        x[i] = (int)v;
    }
    return x;
}

cJSON *test_read_json(const char *path) {
    char *text;
    size_t len;
    if (lorac_read_file(path, (size_t)1 << 28, &text, &len) != LORAC_OK) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

char *test_unhex(const char *hex, size_t *n) {
    size_t h = strlen(hex);
    char *out = malloc(h / 2 + 1);
    for (size_t i = 0; i < h / 2; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[h / 2] = 0;
    *n = h / 2;
    return out;
}

lorac_tokenized test_random_tokenized(int n, int vocab, uint64_t seed) {
    lorac_tokenized t;
    memset(&t, 0, sizeof t);
    t.n = n;
    t.ids = calloc(n, sizeof(int *));
    t.len = calloc(n, sizeof(int));
    t.label = calloc(n, sizeof(int));
    lorac_rng r;
    lorac_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        t.len[i] = 3 + (int)lorac_rng_below(&r, 6);
        t.ids[i] = malloc(sizeof(int) * t.len[i]);
        for (int j = 0; j < t.len[i]; j++) t.ids[i][j] = 1 + (int)lorac_rng_below(&r, vocab - 1);
        t.label[i] = t.ids[i][0] % 2;
    }
    t.max_len = 8;
    return t;
}

/* ---- gradients ---- */
#include "lora/lora.h"

static void grads_zero_one(lorac_weight *w, void *ctx) {
    (void)ctx;
    memset(w->grad, 0, sizeof(float) * w->n);
}

static void grads_copy_one(lorac_weight *w, void *ctx) {
    test_grads *g = ctx;
    if (g->n + w->n > g->cap) {
        g->cap = (g->n + w->n) * 2;
        g->buf = realloc(g->buf, sizeof(float) * g->cap);
    }
    memcpy(g->buf + g->n, w->grad, sizeof(float) * w->n);
    g->n += w->n;
}

void test_zero_grads(lorac_model *m) { lorac_for_each_trainable(m, grads_zero_one, NULL); }

void test_collect_grads(lorac_model *m, test_grads *g) {
    g->n = 0;
    lorac_for_each_trainable(m, grads_copy_one, g);
}

void test_write_sms_fixture(const char *dir, char *vocab, char *sms, size_t n) {
    snprintf(vocab, n, "%s/vocab.txt", dir);
    snprintf(sms, n, "%s/sms.tsv", dir);
    FILE *f = fopen(vocab, "w");
    const char *words[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "win", "a", "prize", "now", "free", "cash",
                           "claim", "see", "you", "at", "five", "ok", "call", "me", "later"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) fprintf(f, "%s\n", words[i]);
    fclose(f);
    f = fopen(sms, "w");
    for (int i = 0; i < 20; i++)
        fprintf(f, "ham\tsee you at five\nspam\twin a prize now\nham\tok call me later\nspam\tclaim free cash now\n");
    fclose(f);
}

/* Random GGML blocks with finite f16 scales (random bytes elsewhere exercise
 * every bit of the packed codes and K-quant scales). */
uint8_t *test_random_ggml_blocks(lorac_rng *rng, int fmt, int64_t rows, int64_t cols, size_t *nbytes) {
    const lorac_qformat f = (lorac_qformat)fmt;
    const int bs = lorac_qformat_row_block(f);
    const size_t bb = qmm_block_bytes(f), nb = (size_t)(rows * (cols / bs));
    uint8_t *p = malloc(nb * bb);
    for (size_t i = 0; i < nb * bb; i++) p[i] = (uint8_t)lorac_rng_u64(rng);
    for (size_t b = 0; b < nb; b++) {
        uint8_t *blk = p + b * bb;
        int at[2] = {-1, -1};
        switch (f) {
        case LORAC_QF_Q4_0: case LORAC_QF_Q8_0: case LORAC_QF_Q5_0: case LORAC_QF_IQ4_NL: case LORAC_QF_IQ4_XS:
            at[0] = 0;
            break;
        case LORAC_QF_Q4_1: case LORAC_QF_Q4_K: case LORAC_QF_Q5_1: case LORAC_QF_Q5_K: at[0] = 0, at[1] = 2; break;
        case LORAC_QF_Q2_K: at[0] = 80, at[1] = 82; break;
        case LORAC_QF_Q3_K: at[0] = 108; break;
        case LORAC_QF_Q6_K: at[0] = 208; break;
        default: break;
        }
        for (int k = 0; k < 2; k++) {
            if (at[k] < 0) continue;
            float v = (lorac_rng_uniform(rng) - 0.5f) * (k ? 0.2f : 0.02f);
            if (f == LORAC_QF_Q6_K) v *= 0.1f;
            const uint16_t h = lorac_f32_to_f16(v);
            blk[at[k]] = (uint8_t)(h & 0xFF);
            blk[at[k] + 1] = (uint8_t)(h >> 8);
        }
    }
    *nbytes = nb * bb;
    return p;
}

double test_rel_err(const float *a, const float *b, size_t n) {
    double e = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, isfinite(a[i]) ? fabs((double)a[i] - b[i]) : INFINITY);
        mx = fmax(mx, fabs(b[i]));
    }
    return mx > 0 ? e / mx : e;
}

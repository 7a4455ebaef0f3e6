/* test_tokenizer_wordpiece.c - the WordPiece (BERT) tokenizer against HF.
 *
 * References: tests/fixtures/tokenizer/wordpiece_bert.json, written by
 * tests/ref/make_wordpiece_fixtures.py with BertTokenizerFast on
 * $LORAC_DATA/bert_uncased_tokenizer (bert-base-uncased's vocabulary, as
 * shipped with all-MiniLM-L6-v2). Checked, for vocab.txt, the directory
 * (tokenizer.json) and a cased copy (do_lower_case false):
 *   ids with and without [CLS] ... [SEP], decode with and without special
 *   tokens, streaming pieces, the special ids;
 *   2,000 IMDb reviews: an FNV-1a hash of all ids equals HF's;
 *   malformed vocab.txt / tokenizer.json: one clear error line naming the
 *   file (and line). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "testutil.h"

/* The hex of string `name`, from strings.json or the fixture's extras. */
static const char *hex_of(const cJSON *strings, const cJSON *extra, const char *name) {
    const cJSON *lists[2] = {cJSON_GetObjectItem(strings, "strings"), extra};
    for (int k = 0; k < 2; k++)
        for (const cJSON *e = lists[k] ? lists[k]->child : NULL; e; e = e->next)
            if (strcmp(cJSON_GetObjectItem(e, "name")->valuestring, name) == 0)
                return cJSON_GetObjectItem(e, "hex")->valuestring;
    return NULL;
}

static int *json_ids(const cJSON *arr, int *n) {
    int cnt = cJSON_GetArraySize(arr), k = 0;
    int *v = malloc(((size_t)cnt + 1) * sizeof *v);
    for (const cJSON *e = arr->child; e; e = e->next) v[k++] = e->valueint;
    *n = k;
    return v;
}

static void print_ids(const char *what, const int *v, int n) {
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

static void check_encode(const lorac_tokenizer *t, const char *label, const char *name, const char *s, size_t len,
                         int add_special, const cJSON *want) {
    int *got = NULL, ngot = 0, nwant;
    int *w = json_ids(want, &nwant);
    lorac_status st = lorac_tokenizer_encode(t, s, len, add_special, &got, &ngot);
    int same = st == LORAC_OK && ngot == nwant && (nwant == 0 || memcmp(got, w, (size_t)nwant * sizeof *w) == 0);
    CHECK(same, "%s: encode('%s', add_special=%d) differs from HF", label, name, add_special);
    if (!same) {
        print_ids("got ", got, ngot);
        print_ids("want", w, nwant);
    }
    free(got);
    free(w);
}

static void check_decode(const lorac_tokenizer *t, const char *label, const char *name, const cJSON *ids, int skip,
                         const char *want_hex) {
    int n;
    int *v = json_ids(ids, &n);
    size_t wn, gn = 0;
    char *want = test_unhex(want_hex, &wn), *got = NULL;
    lorac_status st = lorac_tokenizer_decode(t, v, n, skip, &got, &gn);
    int same = st == LORAC_OK && gn == wn && memcmp(got, want, wn) == 0;
    CHECK(same, "%s: decode('%s', skip_special=%d) = \"%s\", want \"%s\"", label, name, skip, got ? got : "(error)",
          want);
    free(v);
    free(want);
    free(got);
}

/* Every fixture case: ids (key ids_key) without special tokens; with them
 * and the decodes unless `cased`. */
static void check_cases(const lorac_tokenizer *t, const char *label, const cJSON *fx, const cJSON *strings,
                        const char *ids_key, int cased) {
    const cJSON *extra = cJSON_GetObjectItem(fx, "extra_strings");
    for (const cJSON *c = cJSON_GetObjectItem(fx, "cases")->child; c; c = c->next) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring, *hex = hex_of(strings, extra, name);
        CHECK(hex != NULL, "string '%s' not found", name);
        if (!hex) continue;
        size_t len;
        char *s = test_unhex(hex, &len);
        check_encode(t, label, name, s, len, 0, cJSON_GetObjectItem(c, ids_key));
        if (!cased) {
            const cJSON *sp = cJSON_GetObjectItem(c, "ids_special");
            check_encode(t, label, name, s, len, 1, sp);
            check_decode(t, label, name, sp, 0, cJSON_GetObjectItem(c, "decode")->valuestring);
            check_decode(t, label, name, sp, 1, cJSON_GetObjectItem(c, "decode_skip")->valuestring);
        }
        free(s);
    }
}

static void check_basics(const lorac_tokenizer *t, const char *label) {
    CHECK(strcmp(lorac_tokenizer_kind(t), "wordpiece") == 0, "%s: kind %s", label, lorac_tokenizer_kind(t));
    CHECK(lorac_tokenizer_vocab_size(t) == 30522, "%s: vocab size %d", label, lorac_tokenizer_vocab_size(t));
    CHECK(lorac_tokenizer_bos(t) == 101 && lorac_tokenizer_eos(t) == 102 && lorac_tokenizer_pad(t) == 0,
          "%s: bos/eos/pad %d %d %d, want 101 102 0", label, lorac_tokenizer_bos(t), lorac_tokenizer_eos(t),
          lorac_tokenizer_pad(t));
    CHECK(lorac_tokenizer_adds_bos(t) && lorac_tokenizer_adds_eos(t), "%s: add_special adds [CLS] and [SEP]", label);
    CHECK(lorac_tokenizer_is_special(t, 101) && lorac_tokenizer_is_special(t, 103) &&
              lorac_tokenizer_is_special(t, 100) && !lorac_tokenizer_is_special(t, 7592),
          "%s: special flags", label);
    CHECK(lorac_tokenizer_find(t, "##ing") == 2075, "%s: find(##ing) = %d", label, lorac_tokenizer_find(t, "##ing"));
    /* streaming the pieces between [CLS] and [SEP] (the first one right after
     * [CLS], so with no space) gives decode(skip_special) */
    int *ids = NULL, n = 0;
    CHECK_OK(lorac_tokenizer_encode(t, "hello unaffable world", 21, 1, &ids, &n));
    char *whole = NULL, got[256];
    size_t glen = 0;
    CHECK_OK(lorac_tokenizer_decode(t, ids, n, 1, &whole, NULL));
    for (int i = 1; i + 1 < n; i++) {
        size_t k = 0;
        CHECK_OK(lorac_tokenizer_decode_piece(t, ids[i - 1], ids[i], got + glen, sizeof got - glen, &k));
        glen += k;
    }
    got[glen] = 0;
    CHECK(n > 5 && whole && strcmp(got, whole) == 0, "%s: streamed '%s', decoded '%s'", label, got,
          whole ? whole : "(error)");
    free(ids);
    free(whole);
}

/* ---------------------------------------------------------------- IMDb */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void test_imdb(const lorac_tokenizer *t, const cJSON *fx) {
    const char *path = test_data_path("imdb/imdb_test.tsv.gz");
    if (!lorac_file_exists(path)) {
        printf("test_tokenizer_wordpiece: %s missing: IMDb check skipped\n", path);
        return;
    }
    const cJSON *ref = cJSON_GetObjectItem(fx, "imdb");
    int want_n = cJSON_GetObjectItem(ref, "n")->valueint;
    lorac_data_opts o = LORAC_DATA_OPTS_DEFAULT;
    o.text_col = "text";
    lorac_dataset d = {0};
    CHECK_OK(lorac_dataset_load(path, &o, &d));
    CHECK(d.n >= want_n, "IMDb has %d rows, need %d", d.n, want_n);
    uint64_t h_ids = 14695981039346656037ull, h_text = h_ids;
    long n_ids = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < want_n && i < d.n; i++) {
        int *ids = NULL, n = 0;
        size_t len = strlen(d.ex[i].text);
        CHECK_OK(lorac_tokenizer_encode(t, d.ex[i].text, len, 1, &ids, &n));
        for (int k = 0; k < n; k++) {
            unsigned char le[4] = {(unsigned char)ids[k], (unsigned char)(ids[k] >> 8), (unsigned char)(ids[k] >> 16),
                                   (unsigned char)(ids[k] >> 24)};
            h_ids = fnv1a(h_ids, le, 4);
        }
        h_text = fnv1a(h_text, d.ex[i].text, len);
        n_ids += n;
        free(ids);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char got_ids[17], got_text[17];
    snprintf(got_ids, sizeof got_ids, "%016llx", (unsigned long long)h_ids);
    snprintf(got_text, sizeof got_text, "%016llx", (unsigned long long)h_text);
    const char *want_text = cJSON_GetObjectItem(ref, "fnv1a_text")->valuestring;
    CHECK(strcmp(got_text, want_text) == 0, "IMDb review text hash %s, HF script read %s", got_text, want_text);
    CHECK(n_ids == (long)cJSON_GetObjectItem(ref, "n_ids")->valuedouble, "IMDb: %ld ids, HF %g", n_ids,
          cJSON_GetObjectItem(ref, "n_ids")->valuedouble);
    const char *want_ids = cJSON_GetObjectItem(ref, "fnv1a_ids")->valuestring;
    CHECK(strcmp(got_ids, want_ids) == 0, "IMDb ids hash %s, HF %s", got_ids, want_ids);
    printf("test_tokenizer_wordpiece: %d IMDb reviews, %ld ids in %.3f s (%.0f ids/s)\n", want_n, n_ids, sec,
           sec > 0 ? (double)n_ids / sec : 0.0);
    lorac_dataset_free(&d);
}

/* ---------------------------------------------------------------- errors */
static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Loading `name` (written with `text` into a fresh directory) fails with one
 * error line that contains the file name and `also`. */
static void check_refused(const char *name, const char *text, const char *also) {
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    lorac_path_join(path, sizeof path, dir, name);
    write_file(path, text);
    lorac_tokenizer *t = NULL;
    lorac_status st = lorac_tokenizer_load(path, &t);
    const char *err = lorac_last_error();
    CHECK(st != LORAC_OK && t == NULL, "%s with '%s' should be refused", name, also);
    CHECK(strstr(err, path) && strstr(err, also) && !strchr(err, '\n'), "error for %s: '%s' (want the path and '%s')",
          name, err, also);
    lorac_tokenizer_free(t);
}

static void test_malformed(void) {
    check_refused("vocab.txt", "[PAD]\n[UNK]\n\nhello\n", "vocab.txt:3: empty line");
    check_refused("vocab.txt", "[PAD]\n[UNK]\nhello\nworld\nhello\n", "vocab.txt:5: token 'hello' repeats line 3");
    check_refused("vocab.txt", "[PAD]\n[CLS]\nhello\n", "no unknown token '[UNK]'");
    check_refused("tokenizer.json",
                  "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\"}, \"normalizer\": null, "
                  "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
                  "WordPiece model needs a \"vocab\" object");
    check_refused("tokenizer.json",
                  "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"a\": 0}}, "
                  "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}, \"decoder\": {\"type\": \"WordPiece\"}}",
                  "model.unk_token '[UNK]' is not in the vocabulary");
    check_refused("tokenizer.json",
                  "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0}}, \"pre_tokenizer\": "
                  "{\"type\": \"Whitespace\"}, \"decoder\": {\"type\": \"WordPiece\"}}",
                  "pre_tokenizer 'Whitespace'");
    /* a small well-formed vocab.txt with CRLF ends and no final newline */
    char path[4096];
    lorac_path_join(path, sizeof path, test_tmpdir(), "vocab.txt");
    write_file(path, "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nun\r\n##aff\r\n##able\r\n!");
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_tokenizer_load(path, &t));
    if (t) {
        int *ids = NULL, n = 0;
        CHECK_OK(lorac_tokenizer_encode(t, "UnAffable! xyz", 14, 1, &ids, &n));
        int want[] = {2, 4, 5, 6, 7, 1, 3};
        CHECK(n == 7 && memcmp(ids, want, sizeof want) == 0, "tiny vocab: got %d ids", n);
        free(ids);
    }
    lorac_tokenizer_free(t);
}

/* ---------------------------------------------------------------- main */
int main(void) {
    cJSON *fx = test_read_json(test_src_path("tests/fixtures/tokenizer/wordpiece_bert.json"));
    cJSON *strings = test_read_json(test_src_path("tests/fixtures/tokenizer/strings.json"));
    CHECK(fx && strings, "fixtures missing (set LORAC_SRC)");
    test_malformed();
    const char *dir = test_data_path("bert_uncased_tokenizer");
    char vocab[4096];
    lorac_path_join(vocab, sizeof vocab, dir, "vocab.txt");
    if (!fx || !strings || !lorac_file_exists(vocab)) {
        printf("test_tokenizer_wordpiece: %s missing: HF comparisons skipped\n", vocab);
    } else {
        lorac_tokenizer *t = NULL;
        CHECK_OK(lorac_tokenizer_load(vocab, &t));
        if (t) {
            check_basics(t, "vocab.txt");
            check_cases(t, "vocab.txt", fx, strings, "ids", 0);
            test_imdb(t, fx);
        }
        lorac_tokenizer_free(t);
        t = NULL;
        CHECK_OK(lorac_tokenizer_load(dir, &t)); /* tokenizer.json */
        if (t) {
            check_basics(t, "tokenizer.json");
            check_cases(t, "tokenizer.json", fx, strings, "ids", 0);
        }
        lorac_tokenizer_free(t);
        /* cased: the same vocab.txt with do_lower_case false */
        char cdir[4096], path[4096], *text = NULL;
        size_t len;
        snprintf(cdir, sizeof cdir, "%s", test_tmpdir());
        lorac_path_join(path, sizeof path, cdir, "tokenizer_config.json");
        write_file(path, "{\"do_lower_case\": false}");
        lorac_path_join(path, sizeof path, cdir, "vocab.txt");
        if (lorac_read_file(vocab, (size_t)1 << 26, &text, &len) == LORAC_OK) {
            FILE *f = fopen(path, "wb");
            if (f) {
                fwrite(text, 1, len, f);
                fclose(f);
            }
            free(text);
        }
        t = NULL;
        CHECK_OK(lorac_tokenizer_load(path, &t));
        if (t) check_cases(t, "vocab.txt (cased)", fx, strings, "ids_cased", 1);
        lorac_tokenizer_free(t);
    }
    cJSON_Delete(fx);
    cJSON_Delete(strings);
    return test_summary("test_tokenizer_wordpiece");
}

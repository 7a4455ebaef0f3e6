/* test_tokenizer.c - token ids and decoded text against Hugging Face.
 *
 * The references (tests/fixtures/tokenizer/gpt2.json, tok512.json,
 * smollm2.json) were written by
 * tests/ref/make_tokenizer_fixtures.py from the strings in strings.json
 * (hex-encoded, so invalid UTF-8 survives). Each tokenizer source is checked
 * against its reference:
 *   gpt2_tokenizer/ (tokenizer.json) and vocab.json+merges.txt  -> HF fast GPT-2
 *   stories260K/tok512.model                                    -> sentencepiece
 *   fixtures/tok512_tokenizer.json, fixtures/tok512_vocab.gguf  -> HF fast (Llama-2 style)
 *   fixtures/tok512_metaspace_tokenizer.json                    -> HF fast (Metaspace style)
 *   SmolLM2-135M-Instruct GGUF (model cache; skipped if absent) -> HF fast */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/gguf.h"
#include "io/tokenizer.h"
#include "testutil.h"

typedef struct tstr {
    const char *name;
    char *bytes;
    size_t len;
} tstr;

static tstr g_str[128];
static int g_nstr;

static cJSON *g_strings_json;

static int load_strings(void) {
    g_strings_json = test_read_json(test_src_path("tests/fixtures/tokenizer/strings.json"));
    if (!g_strings_json) return 0;
    const cJSON *arr = cJSON_GetObjectItem(g_strings_json, "strings");
    for (const cJSON *e = arr ? arr->child : NULL; e && g_nstr < 128; e = e->next) {
        tstr *s = &g_str[g_nstr++];
        s->name = cJSON_GetObjectItem(e, "name")->valuestring;
        s->bytes = test_unhex(cJSON_GetObjectItem(e, "hex")->valuestring, &s->len);
    }
    return g_nstr;
}

static const tstr *find_str(const char *name) {
    for (int i = 0; i < g_nstr; i++)
        if (strcmp(g_str[i].name, name) == 0) return &g_str[i];
    return NULL;
}

/* ids as a malloc'd int array, optionally with `first` put in front. */
static int *json_ids(const cJSON *arr, int first, int *n) {
    int cnt = cJSON_GetArraySize(arr), k = 0;
    int *v = malloc(((size_t)cnt + 1) * sizeof *v);
    if (first >= 0) v[k++] = first;
    for (const cJSON *e = arr->child; e; e = e->next) v[k++] = e->valueint;
    *n = k;
    return v;
}

static void print_ids(const char *what, const int *v, int n) {
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* encode(s) == want (with `first` in front of want when >= 0). */
static void check_encode(const lorac_tokenizer *t, const char *label, const tstr *s, int add_special,
                         const cJSON *want, int first) {
    int *got = NULL, ngot = 0, nwant;
    int *w = json_ids(want, first, &nwant);
    lorac_status st = lorac_tokenizer_encode(t, s->bytes, s->len, add_special, &got, &ngot);
    int same = st == LORAC_OK && ngot == nwant && (nwant == 0 || memcmp(got, w, (size_t)nwant * sizeof *w) == 0);
    CHECK(same, "%s: encode('%s', add_special=%d) differs from the reference", label, s->name, add_special);
    if (!same) {
        print_ids("got ", got, ngot);
        print_ids("want", w, nwant);
    }
    free(got);
    free(w);
}

/* decode(ids) == the text whose hex is want_hex. */
static void check_decode(const lorac_tokenizer *t, const char *label, const char *name, const cJSON *ids, int first,
                         int skip, const char *want_hex) {
    int n;
    int *v = json_ids(ids, first, &n);
    size_t wn, gn = 0;
    char *want = test_unhex(want_hex, &wn), *got = NULL;
    lorac_status st = lorac_tokenizer_decode(t, v, n, skip, &got, &gn);
    int same = st == LORAC_OK && gn == wn && memcmp(got, want, wn) == 0 && got[gn] == 0;
    CHECK(same, "%s: decode('%s', skip_special=%d) = \"%s\", want \"%s\"", label, name, skip, got ? got : "(error)",
          want);
    free(v);
    free(want);
    free(got);
}

/* Streaming: the pieces of ids, each given the previous id, concatenate to
 * `want` (used for valid UTF-8 text without special tokens). */
static void check_stream(const lorac_tokenizer *t, const char *label, const char *name, const int *ids, int n,
                         int prev, const char *want, size_t wn) {
    char buf[256], *all = malloc(wn + 1024);
    size_t total = 0;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        size_t len;
        ok = lorac_tokenizer_decode_piece(t, prev, ids[i], buf, sizeof buf, &len) == LORAC_OK &&
             total + len <= wn + 1000;
        if (ok) memcpy(all + total, buf, len);
        total += len;
        prev = ids[i];
    }
    CHECK(ok && total == wn && memcmp(all, want, wn) == 0, "%s: streamed pieces of '%s' do not rebuild the text",
          label, name);
    free(all);
}

static const cJSON *cases_of(const cJSON *fx) { return cJSON_GetObjectItem(fx, "cases"); }
static const char *str_of(const cJSON *c, const char *k) { return cJSON_GetObjectItem(c, k)->valuestring; }

static int has_special_text(const tstr *s) {
    static const char *marks[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>"};
    for (size_t k = 0; k < sizeof marks / sizeof *marks; k++)
        for (size_t i = 0; i + strlen(marks[k]) <= s->len; i++)
            if (memcmp(s->bytes + i, marks[k], strlen(marks[k])) == 0) return 1;
    return 0;
}

/* ---------------------------------------------------------------- GPT-2 */
/* Where HF's decode gives the text back (valid UTF-8: byte-level BPE is
 * lossless), decode(encode(s)) == s, and so do the streamed pieces. */
static void check_round_trip(const lorac_tokenizer *t, const char *label, const tstr *s, const char *hf_hex) {
    size_t hn;
    char *hf = test_unhex(hf_hex, &hn);
    if (hn == s->len && memcmp(hf, s->bytes, hn) == 0) {
        int *ids = NULL, n = 0;
        char *text = NULL;
        size_t len = 0;
        CHECK_OK(lorac_tokenizer_encode(t, s->bytes, s->len, 0, &ids, &n));
        CHECK_OK(lorac_tokenizer_decode(t, ids, n, 0, &text, &len));
        CHECK(text && len == s->len && memcmp(text, s->bytes, len) == 0, "%s: '%s' does not round-trip", label,
              s->name);
        check_stream(t, label, s->name, ids, n, -1, s->bytes, s->len);
        free(ids);
        free(text);
    }
    free(hf);
}

static void check_gpt2(const lorac_tokenizer *t, const char *label, const cJSON *fx) {
    CHECK(strcmp(lorac_tokenizer_kind(t), "gpt2-bpe") == 0, "%s: kind %s", label, lorac_tokenizer_kind(t));
    CHECK(lorac_tokenizer_vocab_size(t) == 50257, "%s: vocab %d", label, lorac_tokenizer_vocab_size(t));
    CHECK(lorac_tokenizer_bos(t) == 50256 && lorac_tokenizer_eos(t) == 50256 && lorac_tokenizer_pad(t) == -1,
          "%s: bos %d eos %d pad %d", label, lorac_tokenizer_bos(t), lorac_tokenizer_eos(t), lorac_tokenizer_pad(t));
    for (const cJSON *c = cases_of(fx)->child; c; c = c->next) {
        const tstr *s = find_str(str_of(c, "name"));
        check_encode(t, label, s, 1, cJSON_GetObjectItem(c, "ids"), -1);
        check_encode(t, label, s, 0, cJSON_GetObjectItem(c, "ids_no_special"), -1);
        check_decode(t, label, s->name, cJSON_GetObjectItem(c, "ids"), -1, 0, str_of(c, "decoded_hex"));
        check_decode(t, label, s->name, cJSON_GetObjectItem(c, "ids"), -1, 1, str_of(c, "decoded_skip_hex"));
        check_round_trip(t, label, s, str_of(c, "decoded_hex"));
    }
}

static void test_gpt2(void) {
    cJSON *fx = test_read_json(test_src_path("tests/fixtures/tokenizer/gpt2.json"));
    CHECK(fx != NULL, "gpt2.json fixture missing");
    if (!fx) return;
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_tokenizer_load(test_data_path("gpt2_tokenizer"), &t)); /* the directory: tokenizer.json */
    if (t) check_gpt2(t, "gpt2 tokenizer.json", fx);
    if (t) {
        CHECK(lorac_tokenizer_find(t, "\xC4\xA0the") == 262, "find(Gthe) = %d", lorac_tokenizer_find(t, "\xC4\xA0the"));
        CHECK(lorac_tokenizer_find(t, "<|endoftext|>") == 50256, "find(eot)");
        CHECK(lorac_tokenizer_find(t, "no such piece") == -1, "find(missing)");
        CHECK(lorac_tokenizer_is_special(t, 50256) && !lorac_tokenizer_is_special(t, 262), "is_special");
        CHECK(!lorac_tokenizer_adds_bos(t) && !lorac_tokenizer_adds_eos(t), "gpt2 adds nothing");
    }
    lorac_tokenizer_free(t);
    t = NULL;
    CHECK_OK(lorac_tokenizer_load(test_data_path("gpt2_tokenizer/vocab.json"), &t));
    if (t) check_gpt2(t, "gpt2 vocab.json+merges.txt", fx);
    lorac_tokenizer_free(t);
    cJSON_Delete(fx);
}

/* ---------------------------------------------------------------- tok512 */
static void check_spm_common(const lorac_tokenizer *t, const char *label) {
    CHECK(strcmp(lorac_tokenizer_kind(t), "sentencepiece-bpe") == 0, "%s: kind %s", label, lorac_tokenizer_kind(t));
    CHECK(lorac_tokenizer_vocab_size(t) == 512, "%s: vocab %d", label, lorac_tokenizer_vocab_size(t));
    CHECK(lorac_tokenizer_bos(t) == 1 && lorac_tokenizer_eos(t) == 2 && lorac_tokenizer_pad(t) == -1,
          "%s: bos %d eos %d pad %d", label, lorac_tokenizer_bos(t), lorac_tokenizer_eos(t), lorac_tokenizer_pad(t));
    CHECK(lorac_tokenizer_adds_bos(t) && !lorac_tokenizer_adds_eos(t), "%s: adds BOS only", label);
}

/* tok512.model follows sentencepiece (which squeezes spaces in this model). */
static void test_tok512_model(const cJSON *fx) {
    const char *label = "tok512.model";
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_tokenizer_load(test_data_path("stories260K/tok512.model"), &t));
    if (!t) return;
    check_spm_common(t, label);
    for (const cJSON *c = cases_of(fx)->child; c; c = c->next) {
        const tstr *s = find_str(str_of(c, "name"));
        const cJSON *spm = cJSON_GetObjectItem(c, "spm_ids");
        check_encode(t, label, s, 0, spm, -1);
        check_encode(t, label, s, 1, spm, 1);
        check_decode(t, label, s->name, spm, 1, 1, str_of(c, "hf_decode_of_spm_skip_hex"));
        if (!has_special_text(s) && !memchr(s->bytes, 0xEF, s->len)) {
            int n;
            int *ids = json_ids(spm, -1, &n);
            char *text;
            size_t len;
            if (lorac_tokenizer_decode(t, ids, n, 0, &text, &len) == LORAC_OK) {
                check_stream(t, label, s->name, ids, n, 1, text, len);
                free(text);
            }
            free(ids);
        }
    }
    lorac_tokenizer_free(t);
}

/* tok512_tokenizer.json and tok512_vocab.gguf follow HF fast (Llama-2
 * shape, key prefix "hf"); tok512_metaspace_tokenizer.json the Metaspace
 * shape (prefix "meta"). */
static void check_tok512_hf(const lorac_tokenizer *t, const char *label, const cJSON *fx, const char *prefix) {
    char k_ids[32], k_dec[32], k_skip[32];
    snprintf(k_ids, sizeof k_ids, "%s_ids", prefix);
    snprintf(k_dec, sizeof k_dec, "%s_decoded_hex", prefix);
    snprintf(k_skip, sizeof k_skip, "%s_decoded_skip_hex", prefix);
    check_spm_common(t, label);
    for (const cJSON *c = cases_of(fx)->child; c; c = c->next) {
        const tstr *s = find_str(str_of(c, "name"));
        const cJSON *ids = cJSON_GetObjectItem(c, k_ids);
        check_encode(t, label, s, 0, ids, -1);
        check_encode(t, label, s, 1, ids, 1);
        check_decode(t, label, s->name, ids, 1, 0, str_of(c, k_dec));
        check_decode(t, label, s->name, ids, 1, 1, str_of(c, k_skip));
    }
}

static void test_tok512(void) {
    cJSON *fx = test_read_json(test_src_path("tests/fixtures/tokenizer/tok512.json"));
    CHECK(fx != NULL, "tok512.json fixture missing");
    if (!fx) return;
    test_tok512_model(fx);
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_tokenizer_load(test_src_path("tests/fixtures/tokenizer/tok512_tokenizer.json"), &t));
    if (t) check_tok512_hf(t, "tok512_tokenizer.json", fx, "hf");
    lorac_tokenizer_free(t);
    t = NULL;
    CHECK_OK(lorac_tokenizer_load(test_src_path("tests/fixtures/tokenizer/tok512_metaspace_tokenizer.json"), &t));
    if (t) check_tok512_hf(t, "tok512_metaspace_tokenizer.json", fx, "meta");
    lorac_tokenizer_free(t);
    t = NULL;
    lorac_gguf *g = NULL;
    CHECK_OK(lorac_gguf_open(test_src_path("tests/fixtures/tokenizer/tok512_vocab.gguf"), &g));
    if (g) CHECK_OK(lorac_tokenizer_from_gguf(g, &t));
    lorac_gguf_close(g); /* the tokenizer keeps no reference to it */
    if (t) check_tok512_hf(t, "tok512_vocab.gguf", fx, "hf");
    lorac_tokenizer_free(t);
    cJSON_Delete(fx);
}

/* ---------------------------------------------------------------- SmolLM2 */
static void test_smollm2(void) {
    const char *path = test_cache_path("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!lorac_file_exists(path)) {
        printf("test_tokenizer: SmolLM2 GGUF not in the model cache: skipped\n");
        return;
    }
    cJSON *fx = test_read_json(test_src_path("tests/fixtures/tokenizer/smollm2.json"));
    CHECK(fx != NULL, "smollm2.json fixture missing");
    lorac_gguf *g = NULL;
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_gguf_open(path, &g));
    if (g) CHECK_OK(lorac_tokenizer_from_gguf(g, &t));
    lorac_gguf_close(g);
    if (t && fx) {
        const char *label = "SmolLM2 GGUF";
        CHECK(strcmp(lorac_tokenizer_kind(t), "gpt2-bpe") == 0, "%s: kind", label);
        CHECK(lorac_tokenizer_vocab_size(t) == 49152, "%s: vocab %d", label, lorac_tokenizer_vocab_size(t));
        CHECK(lorac_tokenizer_bos(t) == 1 && lorac_tokenizer_eos(t) == 2 && lorac_tokenizer_pad(t) == 2,
              "%s: bos %d eos %d pad %d", label, lorac_tokenizer_bos(t), lorac_tokenizer_eos(t),
              lorac_tokenizer_pad(t));
        CHECK(lorac_tokenizer_find(t, "<|im_end|>") == 2, "%s: find(<|im_end|>)", label);
        for (const cJSON *c = cases_of(fx)->child; c; c = c->next) {
            const tstr *s = find_str(str_of(c, "name"));
            check_encode(t, label, s, 0, cJSON_GetObjectItem(c, "ids"), -1);
            check_encode(t, label, s, 1, cJSON_GetObjectItem(c, "ids"), -1); /* add_bos_token is false */
            check_decode(t, label, s->name, cJSON_GetObjectItem(c, "ids"), -1, 0, str_of(c, "decoded_hex"));
            check_decode(t, label, s->name, cJSON_GetObjectItem(c, "ids"), -1, 1, str_of(c, "decoded_skip_hex"));
            check_round_trip(t, label, s, str_of(c, "decoded_hex"));
        }
    }
    lorac_tokenizer_free(t);
    cJSON_Delete(fx);
}

/* ---------------------------------------------------------------- API edges */
static void test_api(void) {
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_tokenizer_load(test_data_path("stories260K/tok512.model"), &t));
    if (!t) return;
    int *ids = NULL, n = -1;
    CHECK_OK(lorac_tokenizer_encode(t, "", 0, 1, &ids, &n));
    CHECK(n == 1 && ids && ids[0] == 1, "encode(\"\", add_special) = [BOS], got n=%d", n);
    free(ids);
    CHECK_OK(lorac_tokenizer_encode(t, NULL, 0, 0, &ids, &n));
    CHECK(n == 0 && ids != NULL, "encode(NULL, 0) gives an empty array");
    free(ids);
    CHECK(lorac_tokenizer_encode(t, NULL, 5, 0, &ids, &n) == LORAC_ERR_ARG, "encode(NULL, 5) is an error");
    char *text = NULL;
    int bad[] = {1, 600};
    CHECK(lorac_tokenizer_decode(t, bad, 2, 0, &text, NULL) == LORAC_ERR_ARG && text == NULL,
          "decode of an out-of-range id is an error");
    CHECK(strstr(lorac_last_error(), "600") != NULL, "error names the id: %s", lorac_last_error());
    char small[2];
    size_t len;
    int the = lorac_tokenizer_find(t, "\xE2\x96\x81the");
    CHECK(the > 0, "find(_the)");
    CHECK(lorac_tokenizer_decode_piece(t, 1, the, small, sizeof small, &len) == LORAC_ERR_ARG,
          "a too-small buffer is an error");
    char buf[16];
    CHECK_OK(lorac_tokenizer_decode_piece(t, 1, the, buf, sizeof buf, &len));
    CHECK(len == 3 && memcmp(buf, "the", 3) == 0, "after BOS the leading space is dropped");
    CHECK_OK(lorac_tokenizer_decode_piece(t, the, the, buf, sizeof buf, &len));
    CHECK(len == 4 && memcmp(buf, " the", 4) == 0, "mid-text the space stays");
    CHECK_OK(lorac_tokenizer_decode_piece(t, the, lorac_tokenizer_find(t, "<0x0A>"), buf, sizeof buf, &len));
    CHECK(len == 1 && buf[0] == '\n', "byte piece streams its byte");
    size_t plen;
    const char *p = lorac_tokenizer_piece(t, the, &plen);
    CHECK(p && plen == 6 && memcmp(p, "\xE2\x96\x81the", 6) == 0, "piece(id)");
    CHECK(lorac_tokenizer_piece(t, 512, NULL) == NULL, "piece(out of range)");
    lorac_tokenizer_free(t);
    lorac_tokenizer_free(NULL);
}

int main(void) {
    if (!load_strings()) {
        fprintf(stderr, "cannot read tests/fixtures/tokenizer/strings.json (set LORAC_SRC)\n");
        return 1;
    }
    test_gpt2();
    test_tok512();
    test_smollm2();
    test_api();
    for (int i = 0; i < g_nstr; i++) free(g_str[i].bytes);
    cJSON_Delete(g_strings_json);
    return test_summary("test_tokenizer");
}

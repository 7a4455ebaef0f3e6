/* test_tokenizer_regex.c - regex pre-tokenizers, Gemma's SentencePiece and
 * added tokens, id for id against Hugging Face.
 *
 * The references were written by tests/ref/make_tokenizer_regex_fixtures.py
 * (transformers 5 / tokenizers); each case holds its text (hex) and the ids
 * of encode(text, add_special_tokens=False), plus decode(ids) with and
 * without skip_special_tokens:
 *   llama3_regex_tokenizer.json  Llama 3's Split regex + ByteLevel, trained
 *                                small, with special tokens and a BOS template
 *   split_mix_tokenizer.json     the other Split behaviors, Digits, NFKC
 *   Qwen2.5 GGUF (tokenizer.ggml.pre "qwen2")       model cache; skipped if absent
 *   Gemma 3 GGUF (SentencePiece, 262k pieces)       model cache; skipped if absent
 * Also: a long text must tokenize in time linear in its length. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "io/gguf.h"
#include "io/tokenizer.h"
#include "testutil.h"

/* 1 if ids[0..n) equal the JSON array want; prints both when not. */
static int same_ids(const char *label, const char *name, const int *ids, int n, const cJSON *want) {
    int ok = cJSON_GetArraySize(want) == n, i = 0;
    for (const cJSON *e = want->child; ok && e; e = e->next) ok = e->valueint == ids[i++];
    if (!ok) {
        fprintf(stderr, "  %s '%s': got", label, name);
        for (int k = 0; k < n && k < 30; k++) fprintf(stderr, " %d", ids[k]);
        fprintf(stderr, "\n  %*s want", (int)(strlen(label) + strlen(name) + 3), "");
        int k = 0;
        for (const cJSON *e = want->child; e && k < 30; e = e->next, k++) fprintf(stderr, " %d", e->valueint);
        fprintf(stderr, "\n");
    }
    return ok;
}

static const char *field(const cJSON *c, const char *k) {
    const cJSON *j = cJSON_GetObjectItem(c, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* decode(want ids, skip) == the text of hex `key`. */
static void check_decode(const lorac_tokenizer *t, const char *label, const cJSON *c, int skip, const char *key) {
    const cJSON *want = cJSON_GetObjectItem(c, "ids");
    int n = cJSON_GetArraySize(want), k = 0;
    int *ids = malloc(((size_t)n + 1) * sizeof *ids);
    for (const cJSON *e = want->child; e; e = e->next) ids[k++] = e->valueint;
    size_t wn, gn = 0;
    char *text = test_unhex(field(c, key), &wn), *got = NULL;
    lorac_status st = lorac_tokenizer_decode(t, ids, n, skip, &got, &gn);
    CHECK(st == LORAC_OK && gn == wn && memcmp(got, text, wn) == 0, "%s: decode('%s', skip_special=%d) = \"%s\"",
          label, field(c, "name"), skip, got ? got : lorac_last_error());
    free(ids);
    free(text);
    free(got);
}

/* Where lorac knowingly differs from the reference. Gemma's GGUF stores its
 * whitespace-run pieces with real spaces ("  ", user-defined), which lorac
 * (like llama.cpp) matches in the raw text; transformers' GGUF converter
 * respells them "▁▁" inside the BPE model, so text that already holds
 * a "▁" after a space ("<0x41> ▁already") can merge into one there. */
static const struct {
    const char *label, *name;
} k_known[] = {{"Gemma 3 GGUF", "spm_byte_text"}};

static int known_difference(const char *label, const char *name) {
    for (size_t k = 0; k < sizeof k_known / sizeof *k_known; k++)
        if (!strcmp(k_known[k].label, label) && !strcmp(k_known[k].name, name)) {
            printf("test_tokenizer_regex: %s '%s': known difference, not compared (see k_known)\n", label, name);
            return 1;
        }
    return 0;
}

/* Every case of fixture `fx` against t. */
static void check_cases(const lorac_tokenizer *t, const char *label, const cJSON *fx) {
    int n_cases = 0;
    for (const cJSON *c = cJSON_GetObjectItem(fx, "cases")->child; c; c = c->next, n_cases++) {
        if (known_difference(label, field(c, "name"))) continue;
        size_t len;
        char *text = test_unhex(field(c, "hex"), &len);
        for (int special = 0; special < 2; special++) {
            const cJSON *want = cJSON_GetObjectItem(c, special ? "ids_special" : "ids");
            if (!want) continue;
            int *ids = NULL, n = 0;
            lorac_status st = lorac_tokenizer_encode(t, text, len, special, &ids, &n);
            CHECK(st == LORAC_OK && same_ids(label, field(c, "name"), ids, n, want),
                  "%s: encode('%s', add_special=%d) differs from Hugging Face", label, field(c, "name"), special);
            free(ids);
        }
        check_decode(t, label, c, 0, "decoded_hex");
        check_decode(t, label, c, 1, "decoded_skip_hex");
        free(text);
    }
    CHECK(n_cases >= 60, "%s: only %d cases in the fixture", label, n_cases);
}

/* Load `tok` (a path under tests/fixtures/tokenizer, or a GGUF of the model
 * cache) and check it against fixture `fx_name`. */
static void check_fixture(const char *label, const char *fx_name, const char *tok_file, int from_cache) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/tokenizer/%s", fx_name);
    cJSON *fx = test_read_json(test_src_path(rel));
    CHECK(fx != NULL, "%s: fixture %s missing", label, rel);
    if (!fx) return;
    lorac_tokenizer *t = NULL;
    if (from_cache) {
        const char *gg = test_cache_path(field(fx, "gguf"));
        if (!lorac_file_exists(gg)) {
            printf("test_tokenizer_regex: %s not in the model cache: skipped\n", gg);
            cJSON_Delete(fx);
            return;
        }
        lorac_gguf *g = NULL;
        clock_t t0 = clock();
        CHECK_OK(lorac_gguf_open_metadata(gg, &g));
        if (g) CHECK_OK(lorac_tokenizer_from_gguf(g, &t));
        lorac_gguf_close(g);
        printf("test_tokenizer_regex: %s loaded in %.2f s\n", label, (double)(clock() - t0) / CLOCKS_PER_SEC);
    } else {
        snprintf(rel, sizeof rel, "tests/fixtures/tokenizer/%s", tok_file);
        CHECK_OK(lorac_tokenizer_load(test_src_path(rel), &t));
    }
    if (t) {
        const cJSON *vs = cJSON_GetObjectItem(fx, "vocab_size");
        CHECK(lorac_tokenizer_vocab_size(t) == vs->valueint, "%s: vocab %d, HF %d", label,
              lorac_tokenizer_vocab_size(t), vs->valueint);
        check_cases(t, label, fx);
    }
    lorac_tokenizer_free(t);
    cJSON_Delete(fx);
}

/* Tokenizing must be linear: 8x the text may take at most ~8x the time
 * (allowing 20x for noise on a shared machine). Texts that stress the
 * regex: long runs of spaces, of digits, of punctuation, of one letter. */
static double encode_seconds(const lorac_tokenizer *t, const char *unit, int reps) {
    size_t ul = strlen(unit), n = ul * (size_t)reps;
    char *s = malloc(n + 1);
    for (int i = 0; i < reps; i++) memcpy(s + (size_t)i * ul, unit, ul);
    int *ids = NULL, k = 0;
    clock_t t0 = clock();
    CHECK_OK(lorac_tokenizer_encode(t, s, n, 0, &ids, &k));
    double sec = (double)(clock() - t0) / CLOCKS_PER_SEC;
    free(ids);
    free(s);
    return sec;
}

static void test_linear(void) {
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_tokenizer_load(test_src_path("tests/fixtures/tokenizer/llama3_regex_tokenizer.json"), &t));
    if (!t) return;
    static const char *units[] = {" ", "7", "!", "a", "ab ", "\n \t", "it's 12 "};
    for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
        double small = encode_seconds(t, units[u], 20000), big = encode_seconds(t, units[u], 160000);
        CHECK(big < 20 * small + 0.05, "encode of '%s' x 160000 took %.3f s, x 20000 %.3f s: not linear", units[u],
              big, small);
    }
    lorac_tokenizer_free(t);
}

int main(void) {
    check_fixture("Llama 3 regex tokenizer.json", "llama3_regex.json", "llama3_regex_tokenizer.json", 0);
    check_fixture("Split mix tokenizer.json", "split_mix.json", "split_mix_tokenizer.json", 0);
    check_fixture("Qwen2.5 GGUF", "qwen25.json", NULL, 1);
    check_fixture("Gemma 3 GGUF", "gemma3.json", NULL, 1);
    test_linear();
    return test_summary("test_tokenizer_regex");
}

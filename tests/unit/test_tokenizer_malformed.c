/* test_tokenizer_malformed.c - hostile tokenizer files: every one must give
 * a non-OK status and one error line naming the file, and nothing may crash
 * (run under -fsanitize=address,undefined). Also: random bytes through every
 * tokenizer's encode and random ids through decode. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/gguf.h"
#include "io/tokenizer.h"
#include "testutil.h"

static const char *tmp_path(const char *name) {
    static char buf[4][4096];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 4096, "%s/%s", test_tmpdir(), name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

/* A failed load: the status is `want` (or any error when want is 0), the
 * message is one line, names `file` and contains `needle`. */
static void expect_fail(lorac_status st, lorac_tokenizer *t, lorac_status want, const char *file, const char *needle,
                        const char *what) {
    const char *msg = lorac_last_error();
    CHECK(st != LORAC_OK && t == NULL, "%s: loaded although malformed", what);
    if (st == LORAC_OK) return;
    CHECK(want == 0 || st == want, "%s: status %s, want %s (%s)", what, lorac_status_name(st), lorac_status_name(want),
          msg);
    CHECK(strstr(msg, file) != NULL, "%s: message does not name %s: %s", what, file, msg);
    CHECK(!needle || strstr(msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, msg);
    CHECK(strchr(msg, '\n') == NULL, "%s: message is more than one line: %s", what, msg);
}

/* Load `path` expecting failure; the message must name `file` (default:
 * the last part of path). */
static void load_expect_fail_named(const char *path, const char *file, lorac_status want, const char *needle,
                                   const char *what) {
    lorac_tokenizer *t = NULL;
    lorac_clear_error();
    lorac_status st = lorac_tokenizer_load(path, &t);
    const char *base = strrchr(path, '/');
    expect_fail(st, t, want, file ? file : base ? base + 1 : path, needle, what);
    lorac_tokenizer_free(t);
}

static void load_expect_fail(const char *path, lorac_status want, const char *needle, const char *what) {
    load_expect_fail_named(path, NULL, want, needle, what);
}

/* ------------------------------------------------ tokenizer.model */
static uint32_t g_rng = 12345;
static uint32_t rnd(void) { return g_rng = g_rng * 1664525u + 1013904223u; }

static void test_spm_model(void) {
    char *data;
    size_t len;
    if (lorac_read_file(test_data_path("stories260K/tok512.model"), 1 << 24, &data, &len) != LORAC_OK) {
        CHECK(0, "cannot read tok512.model: %s", lorac_last_error());
        return;
    }
    const char *path = tmp_path("cut.model");
    /* every truncation: an error naming the file, or (cut at a field
     * boundary) a clean load */
    int failures = 0, step = len > 4000 ? 7 : 1;
    for (size_t n = 0; n < len; n += (size_t)step) {
        write_bytes(path, data, n);
        lorac_tokenizer *t = NULL;
        lorac_status st = lorac_tokenizer_load(path, &t);
        if (st != LORAC_OK) {
            failures++;
            if (!strstr(lorac_last_error(), "cut.model") || strchr(lorac_last_error(), '\n'))
                CHECK(0, "truncated at %zu: bad message: %s", n, lorac_last_error());
        }
        lorac_tokenizer_free(t);
    }
    CHECK(failures > 0, "truncated models were all accepted");
    write_bytes(path, data, len / 2);
    load_expect_fail(path, LORAC_ERR_FORMAT, "truncated", "tokenizer.model cut in half");
    write_bytes(path, "", 0);
    load_expect_fail(path, LORAC_ERR_FORMAT, "no pieces", "empty tokenizer.model");

    /* garbled: random bytes overwritten; load may fail or succeed, encode
     * of what loads must work */
    char *g = malloc(len);
    for (int round = 0; round < 300; round++) {
        memcpy(g, data, len);
        int flips = 1 + (int)(rnd() % 8);
        for (int k = 0; k < flips; k++) g[rnd() % len] = (char)rnd();
        write_bytes(path, g, len);
        lorac_tokenizer *t = NULL;
        if (lorac_tokenizer_load(path, &t) == LORAC_OK) {
            int *ids, n;
            if (lorac_tokenizer_encode(t, "Once upon a time, 123 <s> \xff", 27, 1, &ids, &n) == LORAC_OK) {
                char *text;
                if (lorac_tokenizer_decode(t, ids, n, 0, &text, NULL) == LORAC_OK) free(text);
                free(ids);
            }
        } else if (!strstr(lorac_last_error(), "cut.model")) {
            CHECK(0, "garbled model: message does not name the file: %s", lorac_last_error());
        }
        lorac_tokenizer_free(t);
    }
    free(g);
    /* a valid protobuf that is not a BPE model: a unigram model_type */
    static const unsigned char unigram[] = {0x0A, 0x05, 0x0A, 0x01, 'a', 0x18, 0x01, /* piece "a" type 1 */
                                            0x12, 0x02, 0x18, 0x01};                 /* trainer_spec model_type 1 */
    write_bytes(path, unigram, sizeof unigram);
    load_expect_fail(path, LORAC_ERR_UNSUPPORTED, "unigram", "unigram tokenizer.model");
    free(data);
}

/* ------------------------------------------------ vocab.json + merges.txt */
static void test_vocab_merges(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/gpt2ish", test_tmpdir());
    lorac_mkdirs(dir);
    char vocab[4200], merges[4200];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);

    write_text(vocab, "{\"a\": 0, \"b\": 1, \"ab\": 2}");
    write_text(merges, "#version: 0.2\na b\na c\n");
    load_expect_fail_named(vocab, "merges.txt:3", LORAC_ERR_FORMAT, "'a c'", "merge with an unknown token");
    CHECK(strstr(lorac_last_error(), "'c'") != NULL, "the unknown token is named: %s", lorac_last_error());

    write_text(merges, "a b c\n");
    load_expect_fail(merges, LORAC_ERR_FORMAT, "merges.txt:1", "merge line with three pieces");
    write_text(merges, "b a\n");
    load_expect_fail_named(vocab, "merges.txt:1", LORAC_ERR_FORMAT, "'ba'",
                           "merge whose result is not in the vocabulary");

    write_text(merges, "a b\n");
    write_text(vocab, "[1, 2, 3]");
    load_expect_fail(vocab, LORAC_ERR_FORMAT, "JSON object", "vocab.json is an array");
    write_text(vocab, "{\"a\": 0, \"b\": -4}");
    load_expect_fail(dir, LORAC_ERR_FORMAT, "'b'", "negative id in vocab.json");
    write_text(vocab, "{\"a\": 0, \"b\": \"one\"}");
    load_expect_fail(vocab, LORAC_ERR_FORMAT, "vocab.json", "string id in vocab.json");
    write_text(vocab, "{\"a\": 0, ");
    load_expect_fail(vocab, LORAC_ERR_FORMAT, "not valid JSON", "truncated vocab.json");

    /* a good pair loads and works */
    write_text(vocab, "{\"a\": 0, \"b\": 1, \"ab\": 2, \"\xC4\xA0\": 3}");
    write_text(merges, "#version: 0.2\r\na b\r\n");
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_tokenizer_load(dir, &t));
    if (t) {
        int *ids, n;
        CHECK_OK(lorac_tokenizer_encode(t, "ab ba", 5, 0, &ids, &n));
        CHECK(n == 4 && ids[0] == 2 && ids[1] == 3 && ids[2] == 1 && ids[3] == 0, "tiny BPE: n=%d", n);
        free(ids);
        /* bytes with no piece are dropped, as HF does without an unk token */
        CHECK_OK(lorac_tokenizer_encode(t, "a\xE2\x82\xAC", 4, 0, &ids, &n));
        CHECK(n == 1 && ids[0] == 0, "unknown bytes dropped: n=%d", n);
        free(ids);
    }
    lorac_tokenizer_free(t);
    snprintf(vocab, sizeof vocab, "%s/empty_dir", test_tmpdir());
    lorac_mkdirs(vocab);
    load_expect_fail(vocab, LORAC_ERR_IO, "tokenizer.json", "directory without tokenizer files");
    load_expect_fail(tmp_path("does_not_exist.json"), LORAC_ERR_IO, NULL, "missing file");
}

/* ------------------------------------------------ tokenizer.json */
static const char *k_tiny_json =
    "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 3, \"content\": \"<eot>\", \"special\": true}],"
    " \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
    " \"post_processor\": null, \"decoder\": {\"type\": \"ByteLevel\"},"
    " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"<eot>\": 3}, \"merges\": [\"a b\"]}}";

static void test_json(void) {
    const char *path = tmp_path("tokenizer.json");
    write_text(path, "{\"version\": \"1.0\", \"added_tokens\": []}");
    load_expect_fail(path, LORAC_ERR_FORMAT, "model", "tokenizer.json without a model");
    /* a WordPiece tokenizer.json without BERT's pre-tokenizer is a pipeline lorac does not run */
    write_text(path, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    load_expect_fail(path, LORAC_ERR_UNSUPPORTED, "WordPiece", "WordPiece tokenizer.json without a BertPreTokenizer");
    write_text(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a q\"]},"
                     " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"}}");
    load_expect_fail(path, LORAC_ERR_FORMAT, "merges[0]", "tokenizer.json merge with an unknown token");
    write_text(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                     " \"pre_tokenizer\": {\"type\": \"Split\"}}");
    load_expect_fail(path, LORAC_ERR_UNSUPPORTED, NULL, "unsupported pre_tokenizer");
    write_text(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                     " \"normalizer\": {\"type\": \"Lowercase\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    load_expect_fail(path, LORAC_ERR_UNSUPPORTED, "Lowercase", "unsupported normalizer");
    write_text(path, "[]");
    load_expect_fail(path, LORAC_ERR_FORMAT, "JSON object", "tokenizer.json is an array");

    /* the tiny valid file works; garbled copies never crash */
    write_text(path, k_tiny_json);
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_tokenizer_load(path, &t));
    if (t) {
        int *ids, n;
        CHECK_OK(lorac_tokenizer_encode(t, "ab<eot>ba", 9, 1, &ids, &n));
        CHECK(n == 4 && ids[0] == 2 && ids[1] == 3 && ids[2] == 1 && ids[3] == 0, "tiny tokenizer.json: n=%d", n);
        free(ids);
    }
    lorac_tokenizer_free(t);

    /* An added token listed with the id of a different model piece: HF
     * ignores the listed id and gives it the next free one (checked with
     * tokenizers 0.22: encode("ab<x>ba") = [2, 4, 1, 0], vocab size 5). */
    write_text(path, "{\"added_tokens\": [{\"id\": 2, \"content\": \"<x>\", \"special\": true}],"
                     " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"},"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"c\": 3},"
                     " \"merges\": [\"a b\"]}}");
    t = NULL;
    CHECK_OK(lorac_tokenizer_load(path, &t));
    if (t) {
        int *ids, n;
        CHECK_OK(lorac_tokenizer_encode(t, "ab<x>ba", 7, 0, &ids, &n));
        CHECK(n == 4 && ids[0] == 2 && ids[1] == 4 && ids[2] == 1 && ids[3] == 0, "renamed added token: n=%d", n);
        CHECK(lorac_tokenizer_vocab_size(t) == 5, "vocab %d", lorac_tokenizer_vocab_size(t));
        free(ids);
    }
    lorac_tokenizer_free(t);
    size_t len = strlen(k_tiny_json);
    char *g = malloc(len + 1);
    for (int round = 0; round < 400; round++) {
        memcpy(g, k_tiny_json, len + 1);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++) g[rnd() % len] = "{}[]\":,0123456789-ab \\"[rnd() % 22];
        write_bytes(path, g, len);
        t = NULL;
        if (lorac_tokenizer_load(path, &t) == LORAC_OK) {
            int *ids, n;
            if (lorac_tokenizer_encode(t, "abba<eot>", 9, 1, &ids, &n) == LORAC_OK) free(ids);
        } else if (!strstr(lorac_last_error(), "tokenizer.json")) {
            CHECK(0, "garbled tokenizer.json: message does not name the file: %s", lorac_last_error());
        }
        lorac_tokenizer_free(t);
    }
    free(g);
}

/* ------------------------------------------------ GGUF metadata */
static void test_gguf(void) {
    static const struct {
        const char *file, *needle;
        lorac_status want;
    } cases[] = {
        {"no_tokenizer.gguf", "no tokenizer.ggml.model", LORAC_ERR_FORMAT},
        {"model_bert.gguf", "'bert'", LORAC_ERR_UNSUPPORTED},
        {"pre_falcon.gguf", "'falcon' is not supported", LORAC_ERR_UNSUPPORTED},
        {"merge_unknown.gguf", "'zz'", LORAC_ERR_FORMAT},
        {"llama_no_scores.gguf", "scores", LORAC_ERR_FORMAT},
        {"llama_bad_bos.gguf", "9999", LORAC_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/fixtures/tokenizer/malformed/%s", cases[i].file);
        lorac_gguf *g = NULL;
        lorac_tokenizer *t = NULL;
        CHECK_OK(lorac_gguf_open(test_src_path(rel), &g));
        if (!g) continue;
        lorac_status st = lorac_tokenizer_from_gguf(g, &t);
        expect_fail(st, t, cases[i].want, cases[i].file, cases[i].needle, cases[i].file);
        lorac_tokenizer_free(t);
        lorac_gguf_close(g);
    }
}

/* ------------------------------------------------ hostile input to good tokenizers */
static void fuzz_encode(const char *label, lorac_tokenizer *t) {
    char buf[256];
    for (int round = 0; round < 2000; round++) {
        size_t n = rnd() % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            uint32_t r = rnd();
            buf[i] = (r & 3) == 0 ? ' ' : (r & 3) == 1 ? (char)(0x80 | (r >> 8 & 0x3F)) : (char)(r >> 8);
        }
        int *ids, k;
        if (lorac_tokenizer_encode(t, buf, n, 1, &ids, &k) != LORAC_OK) {
            CHECK(0, "%s: encode failed on random bytes: %s", label, lorac_last_error());
            return;
        }
        char *text;
        lorac_status st = lorac_tokenizer_decode(t, ids, k, round & 1, &text, NULL);
        free(ids);
        if (st != LORAC_OK) {
            CHECK(0, "%s: decode failed on its own ids: %s", label, lorac_last_error());
            return;
        }
        free(text);
    }
    int v = lorac_tokenizer_vocab_size(t), ids[64], ok = 1;
    for (int round = 0; round < 200 && ok; round++) {
        for (int i = 0; i < 64; i++) ids[i] = (int)(rnd() % (uint32_t)v);
        char *text, piece[256];
        size_t len;
        ok = lorac_tokenizer_decode(t, ids, 64, 0, &text, NULL) == LORAC_OK;
        if (ok) free(text);
        for (int i = 1; i < 64 && ok; i++)
            ok = lorac_tokenizer_decode_piece(t, ids[i - 1], ids[i], piece, sizeof piece, &len) == LORAC_OK;
    }
    CHECK(ok, "%s: decoding random ids failed: %s", label, lorac_last_error());
    CHECK(1, "%s: 2000 random byte strings encoded and decoded", label);
}

static void test_fuzz_encode(void) {
    const char *paths[] = {"gpt2_tokenizer", "stories260K/tok512.model"};
    for (int k = 0; k < 2; k++) {
        lorac_tokenizer *t = NULL;
        CHECK_OK(lorac_tokenizer_load(test_data_path(paths[k]), &t));
        if (t) fuzz_encode(paths[k], t);
        lorac_tokenizer_free(t);
    }
    lorac_tokenizer *t = NULL;
    CHECK_OK(lorac_tokenizer_load(test_src_path("tests/fixtures/tokenizer/tok512_tokenizer.json"), &t));
    if (t) fuzz_encode("tok512_tokenizer.json", t);
    lorac_tokenizer_free(t);
}

int main(void) {
    test_spm_model();
    test_vocab_merges();
    test_json();
    test_gguf();
    test_fuzz_encode();
    return test_summary("test_tokenizer_malformed");
}

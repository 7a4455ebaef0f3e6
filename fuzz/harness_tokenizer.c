/* harness_tokenizer.c - fuzz entry points for the tokenizer files:
 * tokenizer.json, vocab.txt / vocab.json + merges.txt, tokenizer.model, each
 * with the tokenizer_config.json / special_tokens_map.json that may sit
 * beside it. A tokenizer that loads is used: text with added tokens, every
 * script class and invalid UTF-8 is encoded and decoded, ids are streamed
 * through decode_piece, and out-of-range ids must be refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/tokenizer.h"

static const char g_text[] =
    "Hello, world! It's 2024.\n\tcaf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\xa4\x97 "
    "<|endoftext|> <s> </s> [CLS] [SEP] [UNK] [MASK] <unk> \xe2\x96\x81x  \xff\xfe ab\xc3 don't   ";

/* Encode, decode and stream with a loaded tokenizer; `extra` (may be empty)
 * is encoded too, capped so that one input stays fast. */
static void use_tokenizer(const lorac_tokenizer *t, const uint8_t *extra, size_t n_extra) {
    int vocab = lorac_tokenizer_vocab_size(t);
    (void)lorac_tokenizer_kind(t);
    (void)lorac_tokenizer_bos(t);
    (void)lorac_tokenizer_eos(t);
    (void)lorac_tokenizer_pad(t);
    (void)lorac_tokenizer_adds_bos(t);
    (void)lorac_tokenizer_adds_eos(t);
    (void)lorac_tokenizer_find(t, "the");
    for (int pass = 0; pass < 2; pass++) {
        const char *s = pass ? (const char *)extra : g_text;
        size_t n = pass ? (n_extra > 512 ? 512 : n_extra) : sizeof g_text - 1;
        int *ids = NULL, nid = 0;
        if (lorac_tokenizer_encode(t, s, n, 1, &ids, &nid) == LORAC_OK) {
            for (int skip = 0; skip < 2; skip++) {
                char *out = NULL;
                size_t olen = 0;
                if (lorac_tokenizer_decode(t, ids, nid, skip, &out, &olen) == LORAC_OK) {
                    if (out[olen] != 0) abort();
                    free(out);
                }
            }
            int prev = -1;
            for (int i = 0; i < nid; i++) {
                char buf[256];
                size_t len;
                if (ids[i] < 0 || ids[i] >= vocab) abort(); /* encode gave an id outside the vocabulary */
                (void)lorac_tokenizer_decode_piece(t, prev, ids[i], buf, sizeof buf, &len);
                size_t plen;
                const char *p = lorac_tokenizer_piece(t, ids[i], &plen);
                if (p && plen) (void)p[plen - 1];
                (void)lorac_tokenizer_is_special(t, ids[i]);
                prev = ids[i];
            }
        }
        free(ids);
    }
    /* ids the tokenizer does not have must be refused, not read */
    int bad[] = {-1, vocab, vocab + 1, 0x7fffffff};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL, buf[16];
        size_t len;
        if (lorac_tokenizer_decode(t, &bad[i], 1, 0, &out, &len) == LORAC_OK) abort();
        if (lorac_tokenizer_decode_piece(t, 0, bad[i], buf, sizeof buf, &len) == LORAC_OK) abort();
        if (lorac_tokenizer_piece(t, bad[i], NULL) != NULL) abort();
    }
}

/* Write parts[0..n) as tok/<names[i]> (missing parts: no file), load the
 * directory, use the tokenizer. */
static void load_dir(const fuzz_part *part, int n, const char *const *names, int n_names) {
    for (int i = 0; i < n && i < n_names; i++) {
        char name[128];
        snprintf(name, sizeof name, "tok/%s", names[i]);
        fuzz_write(name, part[i].p, part[i].n);
    }
    lorac_tokenizer *t = NULL;
    if (lorac_tokenizer_load(fuzz_path("tok"), &t) == LORAC_OK) {
        const fuzz_part *last = &part[n - 1];
        use_tokenizer(t, last->p, last->n);
    }
    lorac_tokenizer_free(t);
}

/* tokenizer.json [SEP tokenizer_config.json [SEP special_tokens_map.json]] */
int lorac_fuzz_tokenizer_json(const uint8_t *data, size_t size) {
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    fuzz_part part[3];
    int n = fuzz_split(data, size, part, 3);
    fuzz_reset();
    load_dir(part, n, names, 3);
    return 0;
}

/* A first part that starts with '{': vocab.json SEP merges.txt
 * [SEP tokenizer_config.json [SEP special_tokens_map.json]] (byte-level BPE).
 * Otherwise: vocab.txt [SEP tokenizer_config.json] (WordPiece). */
int lorac_fuzz_vocab_merges(const uint8_t *data, size_t size) {
    static const char *const bpe[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    static const char *const wp[] = {"vocab.txt", "tokenizer_config.json"};
    fuzz_part part[4];
    int n = fuzz_split(data, size, part, 4);
    fuzz_reset();
    size_t i = 0;
    while (i < part[0].n && (part[0].p[i] == ' ' || part[0].p[i] == '\n' || part[0].p[i] == '\t')) i++;
    if (i < part[0].n && part[0].p[i] == '{')
        load_dir(part, n, bpe, 4);
    else
        load_dir(part, n > 2 ? 2 : n, wp, 2);
    return 0;
}

/* tokenizer.model [SEP tokenizer_config.json [SEP special_tokens_map.json]] */
int lorac_fuzz_spm_model(const uint8_t *data, size_t size) {
    static const char *const names[] = {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"};
    fuzz_part part[3];
    int n = fuzz_split(data, size, part, 3);
    fuzz_reset();
    load_dir(part, n, names, 3);
    return 0;
}

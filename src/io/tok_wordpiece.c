/* tok_wordpiece.c - the WordPiece family (BERT, MiniLM, sentence-transformers).
 *
 * Encoding one stretch of text is HF tokenizers' pipeline for BERT:
 *   1. BertNormalizer: clean the text (drop control characters, whitespace
 *      becomes ' '), put spaces around CJK ideographs, strip accents (NFD,
 *      then drop nonspacing marks) and lowercase;
 *   2. BertPreTokenizer: words are split on whitespace, and every
 *      punctuation character is a word of its own;
 *   3. WordPiece: each word is cut greedily into the longest vocabulary
 *      pieces from the left, later pieces spelled with the "##" prefix; a
 *      word that cannot be cut, or is longer than 100 characters, is [UNK].
 * add_special puts [CLS] before and [SEP] after (TemplateProcessing).
 * Decoding joins the pieces with spaces, glues "##" pieces to the one before
 * and cleans up spaces before punctuation as BertTokenizerFast.decode does.
 *
 * Sources: vocab.txt (one piece per line, id = line number - 1) with the
 * transformers settings of tokenizer_config.json next to it, or a
 * tokenizer.json with model.type "WordPiece" (tok_json.c reads its
 * vocabulary, added tokens and post_processor, then calls tok_wp_read_json).
 *
 * Known differences from HF: a vocab.txt with an empty line or a repeated
 * piece is refused (transformers gives "" an id, and lets the last copy of
 * a repeated piece win, leaving a hole); "\r\n" line ends are accepted and
 * the "\r" dropped (transformers keeps it in the piece). Unicode tables are
 * utf8proc's, which may be a different Unicode version than Rust's.
 * tokenizer.json's truncation and padding are ignored (lorac's callers cut
 * and pad). decode matches BertTokenizerFast.decode, i.e. tokenizers'
 * WordPiece decoder followed by transformers' clean_up_tokenization_spaces
 * (on unless tokenizer_config.json turns it off): "don't" decodes to
 * "don't", where tokenizers' own Tokenizer.decode gives "don ' t".
 * decode_piece cannot do that whole-text clean-up. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/log.h"
#include "core/util.h"
#include "io/tok_internal.h"

/* ------------------------------------------------ character classes */
/* BertNormalizer's is_control: the Unicode categories Cc, Cf, Co and Cs,
 * except tab, newline and carriage return, which count as whitespace.
 * Unassigned code points (Cn) stay, as they do in HF tokenizers. */
static int is_control(uint32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') return 0;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS: return 1;
    default: return 0;
    }
}

/* BertNormalizer's is_whitespace: tab, newline, CR and Rust's
 * char::is_whitespace (the Unicode White_Space property). */
static int is_whitespace(uint32_t cp) { return cp == '\t' || cp == '\n' || cp == '\r' || tok_is_space(cp); }

/* The CJK Unified Ideograph blocks HF tokenizers treats as Chinese (its
 * ranges, which skip Extension D's tail U+2B820..2B91F unlike BERT's
 * Python code). */
static int is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* BertPreTokenizer's punctuation: ASCII punctuation (33-47, 58-64, 91-96,
 * 123-126: every printable non-alphanumeric symbol, as BERT does) or a
 * Unicode P* category. */
static int is_punct(uint32_t cp) {
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return 1;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return 1;
    default: return 0;
    }
}

static lorac_status put_cp(tok_buf *b, uint32_t cp) {
    char u[4];
    return tok_buf_put(b, u, tok_utf8_encode(cp, u));
}

/* ------------------------------------------------ normalize */
/* Steps 1-2 of BertNormalizer, in its order: clean_text (drop NUL, U+FFFD
 * and control characters; whitespace -> ' '), then handle_chinese_chars
 * (" X " for each CJK ideograph). */
static lorac_status clean(const lorac_tokenizer *t, const char *s, size_t n, tok_buf *out) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += tok_utf8_len_valid(s + i, n - i, &cp);
        if (t->wp.clean_text) {
            if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
            if (is_whitespace(cp)) cp = ' ';
        }
        if (t->wp.handle_cjk && is_cjk(cp)) {
            LORAC_TRY(tok_buf_putc(out, ' '));
            LORAC_TRY(put_cp(out, cp));
            LORAC_TRY(tok_buf_putc(out, ' '));
        } else {
            LORAC_TRY(put_cp(out, cp));
        }
    }
    return LORAC_OK;
}

/* Steps 3-4: strip_accents (NFD, then drop Mn marks), then lowercase with
 * Rust's char::to_lowercase (the simple mapping, except U+0130 "İ", whose
 * full lowercase is "i" + U+0307). */
static lorac_status fold(const lorac_tokenizer *t, const char *s, size_t n, tok_buf *out) {
    utf8proc_uint8_t *nfd = NULL;
    if (t->wp.strip_accents && n) {
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &nfd,
                                          UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
        if (r < 0) return lorac_fail(LORAC_ERR_NOMEM, "tokenizer: NFD failed (%s)", utf8proc_errmsg(r));
        s = (const char *)nfd;
        n = (size_t)r;
    }
    lorac_status st = LORAC_OK;
    for (size_t i = 0; i < n && st == LORAC_OK;) {
        uint32_t cp;
        i += tok_utf8_len_valid(s + i, n - i, &cp);
        if (t->wp.strip_accents && utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_MN) continue;
        if (t->wp.lowercase && cp == 0x130) {
            st = tok_buf_put(out, "i\xCC\x87", 3);
            continue;
        }
        if (t->wp.lowercase) cp = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
        st = put_cp(out, cp);
    }
    free(nfd);
    return st;
}

/* ------------------------------------------------ WordPiece */
/* Greedy longest-match-first: from the start of the word take the longest
 * prefix that is a piece, then, from where it ended, the longest
 * "##"-prefixed piece, and so on. If some position has no piece, or the word
 * has more than max_word_chars characters, the whole word is one unk. */
static lorac_status word_to_ids(const lorac_tokenizer *t, const char *w, size_t n, tok_buf *scratch, tok_ids *out) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)w[i] & 0xC0) != 0x80;
    if (chars > (size_t)t->wp.max_word_chars) return tok_ids_push(out, t->unk);
    size_t mark = out->n, start = 0;
    while (start < n) {
        size_t end = n;
        int id = -1;
        while (end > start) {
            scratch->n = 0;
            if (start > 0) LORAC_TRY(tok_buf_put(scratch, t->wp.prefix, t->wp.prefix_len));
            LORAC_TRY(tok_buf_put(scratch, w + start, end - start));
            if ((id = tok_strmap_get(&t->vocab, scratch->v, scratch->n)) >= 0) break;
            do end--; /* back one whole character */
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            out->n = mark; /* drop the pieces found so far */
            return tok_ids_push(out, t->unk);
        }
        LORAC_TRY(tok_ids_push(out, id));
        start = end;
    }
    return LORAC_OK;
}

/* Normalize, then BertPreTokenizer: whitespace ends a word and is dropped;
 * a punctuation character ends a word and is a word by itself. */
static lorac_status wp_encode(const lorac_tokenizer *t, const char *s, size_t n, int at_start, tok_ids *out) {
    (void)at_start;
    tok_buf cleaned = {0}, norm = {0}, scratch = {0};
    lorac_status st = clean(t, s, n, &cleaned);
    if (st == LORAC_OK) st = fold(t, cleaned.v ? cleaned.v : "", cleaned.n, &norm);
    const char *p = norm.v;
    size_t word = 0; /* p[word..i) is the word being read */
    for (size_t i = 0; st == LORAC_OK && i < norm.n;) {
        uint32_t cp;
        size_t len = tok_utf8_len_valid(p + i, norm.n - i, &cp);
        int space = tok_is_space(cp), punct = !space && is_punct(cp);
        if (space || punct) {
            if (word < i) st = word_to_ids(t, p + word, i - word, &scratch, out);
            if (st == LORAC_OK && punct) st = word_to_ids(t, p + i, len, &scratch, out);
            word = i + len;
        }
        i += len;
    }
    if (st == LORAC_OK && word < norm.n) st = word_to_ids(t, p + word, norm.n - word, &scratch, out);
    free(cleaned.v);
    free(norm.v);
    free(scratch.v);
    return st;
}

/* ------------------------------------------------ decode */
/* The clean-up of HF's WordPiece decoder and of transformers'
 * clean_up_tokenization: these replacements, in this order, each over the
 * whole of b->v[from..) left to right. Every one shortens the text, so it
 * is done in place. */
static void cleanup(tok_buf *b, size_t from) {
    static const char *const rule[][2] = {{" .", "."},    {" ?", "?"},     {" !", "!"},        {" ,", ","},
                                          {" ' ", "'"},   {" n't", "n't"}, {" 'm", "'m"},      {" do not", " don't"},
                                          {" 's", "'s"},  {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t r = 0; r < sizeof rule / sizeof rule[0]; r++) {
        size_t fl = strlen(rule[r][0]), tl = strlen(rule[r][1]), w = from;
        for (size_t i = from; i < b->n;) {
            if (i + fl <= b->n && memcmp(b->v + i, rule[r][0], fl) == 0) {
                memmove(b->v + w, rule[r][1], tl);
                w += tl;
                i += fl;
            } else {
                b->v[w++] = b->v[i++];
            }
        }
        b->n = w;
    }
}

/* One piece as HF's WordPiece decoder writes it: "##x" -> "x" glued to
 * the previous piece; any other piece after the first gets a space. */
static lorac_status put_piece(const lorac_tokenizer *t, int id, int first, tok_buf *out) {
    const char *p = t->piece[id];
    size_t len = t->piece_len[id];
    if (!first && len >= t->wp.prefix_len && memcmp(p, t->wp.prefix, t->wp.prefix_len) == 0) {
        p += t->wp.prefix_len;
        len -= t->wp.prefix_len;
    } else if (!first) {
        LORAC_TRY(tok_buf_putc(out, ' '));
    }
    return tok_buf_put(out, p, len);
}

static lorac_status wp_decode(const lorac_tokenizer *t, const int *ids, int n, tok_buf *out) {
    size_t start = out->n;
    for (int i = 0; i < n; i++) {
        size_t at = out->n;
        LORAC_TRY(put_piece(t, ids[i], i == 0, out));
        if (t->wp.decode_cleanup) cleanup(out, at); /* the decoder cleans each token */
    }
    if (t->wp.cleanup_spaces) cleanup(out, start); /* transformers cleans the text */
    return LORAC_OK;
}

/* Streaming: as decode, with no space before the first piece or right after
 * [CLS]; the whole-text clean-up cannot be applied piece by piece. */
static lorac_status wp_piece(const lorac_tokenizer *t, int prev, int id, tok_buf *out) {
    return put_piece(t, id, prev < 0 || prev == t->bos, out);
}

const tok_family tok_family_wordpiece = {"wordpiece", wp_encode, wp_decode, wp_piece};

/* ------------------------------------------------ settings */
static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static const char *get_str(const cJSON *o, const char *k) {
    const cJSON *j = get(o, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}
/* A boolean field: its value, def when absent. */
static int get_bool(const cJSON *o, const char *k, int def) {
    const cJSON *j = get(o, k);
    return cJSON_IsBool(j) ? cJSON_IsTrue(j) : def;
}

static void set_defaults(tok_wp_cfg *c) {
    c->clean_text = c->handle_cjk = c->strip_accents = c->lowercase = 1;
    c->max_word_chars = 100;
    memcpy(c->prefix, "##", 3);
    c->prefix_len = 2;
    c->decode_cleanup = c->cleanup_spaces = 1;
}

/* tokenizer_config.json next to the tokenizer (NULL when absent). */
static lorac_status read_config(const char *source, cJSON **out) {
    char dir[4096], path[4096];
    *out = NULL;
    tok_dir_of(source, dir, sizeof dir);
    lorac_path_join(path, sizeof path, dir, "tokenizer_config.json");
    if (!lorac_file_exists(path)) return LORAC_OK;
    char *text;
    size_t len;
    LORAC_TRY(lorac_read_file(path, (size_t)1 << 28, &text, &len));
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return lorac_fail(LORAC_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return LORAC_OK;
}

/* The id of special token `key` of tokenizer_config.json (default spelling
 * def), or -1 when the vocabulary lacks it. */
static int named_id(const lorac_tokenizer *t, const cJSON *cfg, const char *key, const char *def) {
    const cJSON *j = get(cfg, key);
    const char *s = cJSON_IsString(j) ? j->valuestring : get_str(j, "content");
    if (!s) s = def;
    return tok_lookup(t, s, strlen(s));
}

/* bos = [CLS], eos = [SEP] (the post-processor's tokens when it has them),
 * pad = [PAD]; unk must exist, as HF's WordPiece needs it. */
static lorac_status finish_specials(lorac_tokenizer *t, const cJSON *cfg) {
    if (t->bos < 0) t->bos = t->n_prefix ? t->prefix[0] : named_id(t, cfg, "cls_token", "[CLS]");
    if (t->eos < 0) t->eos = t->n_suffix ? t->suffix[t->n_suffix - 1] : named_id(t, cfg, "sep_token", "[SEP]");
    if (t->pad < 0) t->pad = named_id(t, cfg, "pad_token", "[PAD]");
    const cJSON *c = get(cfg, "clean_up_tokenization_spaces");
    if (cJSON_IsBool(c)) t->wp.cleanup_spaces = cJSON_IsTrue(c);
    return LORAC_OK;
}

/* The WordPiece parts of tokenizer.json: model (unk_token,
 * continuing_subword_prefix, max_input_chars_per_word), normalizer
 * (BertNormalizer or null), pre_tokenizer (BertPreTokenizer), decoder
 * (WordPiece). Anything else is refused, naming the field. */
lorac_status tok_wp_read_json(lorac_tokenizer *t, const cJSON *root, const char *path) {
    tok_wp_cfg *c = &t->wp;
    set_defaults(c);
    const cJSON *model = get(root, "model"), *norm = get(root, "normalizer"), *pre = get(root, "pre_tokenizer"),
                *dec = get(root, "decoder"), *max = get(model, "max_input_chars_per_word");
    const char *unk = get_str(model, "unk_token"), *prefix = get_str(model, "continuing_subword_prefix");
    if (prefix) {
        if (strlen(prefix) >= sizeof c->prefix)
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: continuing_subword_prefix '%s' is too long", path, prefix);
        c->prefix_len = strlen(prefix);
        memcpy(c->prefix, prefix, c->prefix_len + 1);
    }
    if (cJSON_IsNumber(max)) c->max_word_chars = max->valueint < 0 ? 0 : max->valueint; /* saturated, no cast of 1e300 */
    if (!norm || cJSON_IsNull(norm)) {
        c->clean_text = c->handle_cjk = c->strip_accents = c->lowercase = 0;
    } else if (get_str(norm, "type") && strcmp(get_str(norm, "type"), "BertNormalizer") == 0) {
        c->clean_text = get_bool(norm, "clean_text", 1);
        c->handle_cjk = get_bool(norm, "handle_chinese_chars", 1);
        c->lowercase = get_bool(norm, "lowercase", 1);
        c->strip_accents = get_bool(norm, "strip_accents", c->lowercase); /* null: follow lowercase */
    } else {
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported with WordPiece", path,
                          get_str(norm, "type") ? get_str(norm, "type") : "(no type)");
    }
    if (!get_str(pre, "type") || strcmp(get_str(pre, "type"), "BertPreTokenizer") != 0)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported with WordPiece", path,
                          get_str(pre, "type") ? get_str(pre, "type") : "(none)");
    const char *dp = get_str(dec, "prefix");
    if (!get_str(dec, "type") || strcmp(get_str(dec, "type"), "WordPiece") != 0 || (dp && strcmp(dp, c->prefix) != 0))
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: decoder '%s' is not supported with WordPiece", path,
                          get_str(dec, "type") ? get_str(dec, "type") : "(none)");
    c->decode_cleanup = get_bool(dec, "cleanup", 1);
    if (!unk) unk = "[UNK]"; /* the pipeline's shape is checked first, then the vocabulary */
    if ((t->unk = tok_strmap_get(&t->vocab, unk, strlen(unk))) < 0)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: model.unk_token '%s' is not in the vocabulary", path, unk);
    cJSON *cfg;
    LORAC_TRY(read_config(path, &cfg));
    lorac_status st = finish_specials(t, cfg);
    cJSON_Delete(cfg);
    return st;
}

/* ------------------------------------------------ vocab.txt */
/* One piece per line, id = line number - 1, as transformers' load_vocab
 * reads it; "\r\n" ends are accepted. An empty line or a piece seen before
 * is an error naming file:line. */
static lorac_status read_vocab_txt(const char *path, lorac_tokenizer **out) {
    char *text;
    size_t len;
    LORAC_TRY(lorac_read_file(path, (size_t)1 << 30, &text, &len));
    {
        lorac_status bad = tok_check_utf8(path, text, len);
        if (bad != LORAC_OK) {
            free(text);
            return bad;
        }
    }
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (len && text[len - 1] != '\n') lines++; /* a last line with no '\n' */
    lorac_tokenizer *t = NULL;
    lorac_status st = tok_create(&tok_family_wordpiece, lines, path, &t);
    size_t i = 0;
    for (int id = 0; st == LORAC_OK && id < lines; id++) {
        size_t end = i;
        while (end < len && text[end] != '\n') end++;
        size_t next = end + 1, n = end - i;
        if (n && text[end - 1] == '\r') n--;
        int seen = n ? tok_strmap_get(&t->vocab, text + i, n) : -1;
        if (n == 0)
            st = lorac_fail(LORAC_ERR_FORMAT, "%s:%d: empty line (every line of a vocab.txt is one token)", path,
                            id + 1);
        else if (seen >= 0)
            st = lorac_fail(LORAC_ERR_FORMAT, "%s:%d: token '%.*s' repeats line %d (lorac refuses duplicate tokens)",
                            path, id + 1, (int)(n > 60 ? 60 : n), text + i, seen + 1);
        else
            st = tok_set_piece(t, id, text + i, n, 0, TOK_NORMAL, 1);
        i = next;
    }
    free(text);
    if (st != LORAC_OK) {
        tok_destroy(t);
        return st;
    }
    *out = t;
    return LORAC_OK;
}

/* vocab.txt as BertTokenizerFast(vocab_file) builds it, with
 * tokenizer_config.json's do_lower_case (default true), strip_accents
 * (default: follow lowercase), tokenize_chinese_chars (default true) and
 * special token names (defaults [UNK] [SEP] [PAD] [CLS] [MASK]). The five
 * special tokens are added tokens matched in the text; add_special gives
 * [CLS] ... [SEP]. */
lorac_status tok_load_wordpiece_vocab(const char *path, lorac_tokenizer **out) {
    *out = NULL;
    lorac_tokenizer *t;
    LORAC_TRY(read_vocab_txt(path, &t));
    cJSON *cfg = NULL;
    lorac_status st = read_config(path, &cfg);
    set_defaults(&t->wp);
    t->wp.lowercase = get_bool(cfg, "do_lower_case", 1);
    t->wp.strip_accents = get_bool(cfg, "strip_accents", t->wp.lowercase);
    t->wp.handle_cjk = get_bool(cfg, "tokenize_chinese_chars", 1);
    static const char *const keys[] = {"unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
    static const char *const defs[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
    int id[5];
    for (int k = 0; k < 5; k++) {
        id[k] = named_id(t, cfg, keys[k], defs[k]);
        if (st == LORAC_OK && id[k] >= 0) st = tok_add_token(t, id[k], 1, 0, 0, 0);
    }
    if (st == LORAC_OK && id[0] < 0)
        st = lorac_fail(LORAC_ERR_FORMAT, "%s: no unknown token '%s' in the vocabulary (WordPiece needs one)", path,
                        get_str(cfg, "unk_token") ? get_str(cfg, "unk_token") : "[UNK]");
    t->unk = id[0];
    t->bos = id[3];
    t->eos = id[1];
    t->pad = id[2];
    if (id[3] >= 0) t->prefix[t->n_prefix++] = id[3];
    if (id[1] >= 0) t->suffix[t->n_suffix++] = id[1];
    char dir[4096];
    tok_dir_of(path, dir, sizeof dir);
    if (st == LORAC_OK) st = tok_apply_hf_config(t, dir, 0); /* added_tokens_decoder, extra specials */
    if (st == LORAC_OK) st = finish_specials(t, cfg);
    cJSON_Delete(cfg);
    return tok_hand_over(t, st, out);
}

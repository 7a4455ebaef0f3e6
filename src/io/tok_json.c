/* tok_json.c - HF tokenizer.json (the `tokenizers` serialization).
 *
 * Read: model (type "BPE": vocab, merges as "a b" strings or [a, b] pairs,
 * unk_token, byte_fallback, fuse_unk, ignore_merges), added_tokens,
 * normalizer, pre_tokenizer, decoder and post_processor. Only the shapes of
 * the supported families are accepted; anything else is refused with the
 * field that was not understood, never silently approximated:
 *   either:     normalizer NFC / NFKC / NFD / NFKD (first); pre_tokenizer
 *               steps Split (Regex or String pattern, any behavior, invert),
 *               Digits, alone or in a Sequence (tok_split.c).
 *   byte-level: pre_tokenizer with ByteLevel (use_regex: GPT-2's regex;
 *               add_prefix_space); decoder ByteLevel. Llama 3 and Qwen2 are
 *               Sequence[Split(their regex, Isolated), ByteLevel(use_regex
 *               false)].
 *   SentencePiece-like: normalizer null, Prepend("▁"), Replace(" ", "▁") or
 *               a Sequence of those; pre_tokenizer null, Metaspace or the
 *               steps above; decoder
 *               a Sequence of Replace("▁", " "), ByteFallback, Fuse,
 *               Strip(" ", n, 0) after Fuse, Metaspace.
 * Added tokens are matched on the raw text (HF matches normalized=true ones
 * after normalizing; the supported normalizers leave the usual ASCII ones
 * unchanged). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "io/tok_internal.h"

#define SPACE_MARK "\xE2\x96\x81" /* "▁" U+2581 */

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static const char *get_str(const cJSON *o, const char *k) {
    const cJSON *j = get(o, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}
static int is_type(const cJSON *o, const char *type) {
    const char *t = get_str(o, "type");
    return t && strcmp(t, type) == 0;
}
static const char *type_of(const cJSON *o) {
    const char *t = get_str(o, "type");
    return t ? t : "(no type)";
}
/* The "pattern" of Replace: {"String": "x"}; NULL for a regex. */
static const char *pattern_str(const cJSON *o) { return get_str(get(o, "pattern"), "String"); }

static lorac_status unsupported(const char *path, const char *what, const cJSON *o) {
    return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: %s '%s' is not supported by lorac's tokenizers", path, what,
                      type_of(o));
}

/* Iterate a component or the members of its Sequence. */
static const cJSON *members(const cJSON *o, const char *list_key) {
    if (is_type(o, "Sequence")) {
        const cJSON *l = get(o, list_key);
        return cJSON_IsArray(l) ? l->child : NULL;
    }
    return o;
}

/* Which family the components describe: byte-level if ByteLevel appears as
 * pre-tokenizer, SentencePiece-like for "▁" spaces or byte fallback. */
static const tok_family *pick_family(const cJSON *root, const cJSON *model) {
    const cJSON *pre = get(root, "pre_tokenizer");
    for (const cJSON *p = members(pre, "pretokenizers"); p; p = p->next) {
        if (is_type(p, "ByteLevel")) return &tok_family_bytelevel;
        if (p == pre) break;
    }
    return cJSON_IsTrue(get(model, "byte_fallback")) || cJSON_IsObject(get(root, "normalizer")) ||
                   is_type(pre, "Metaspace")
               ? &tok_family_spm
               : NULL;
}

/* TOK_NF_* of a Unicode normalizer's type, or TOK_NF_NONE. */
static int normal_form(const cJSON *n) {
    static const char *names[] = {"NFC", "NFKC", "NFD", "NFKD"};
    for (int k = 0; k < 4; k++)
        if (is_type(n, names[k])) return TOK_NF_NFC + k;
    return TOK_NF_NONE;
}

/* Unicode normal forms for either family (applied first: lorac supports
 * them as the first normalizer only); Prepend / Replace for SentencePiece. */
static lorac_status read_normalizer(lorac_tokenizer *t, const cJSON *norm, const char *path) {
    if (!norm || cJSON_IsNull(norm)) return LORAC_OK;
    const cJSON *first = members(norm, "normalizers");
    for (const cJSON *n = first; n; n = n->next) {
        const char *p;
        if (n == first && normal_form(n))
            t->unicode_nf = normal_form(n);
        else if (t->fam == &tok_family_spm && is_type(n, "Prepend") && (p = get_str(n, "prepend")) &&
            strcmp(p, SPACE_MARK) == 0)
            t->spm.add_dummy_prefix = 1;
        else if (t->fam == &tok_family_spm && is_type(n, "Replace") && (p = pattern_str(n)) && strcmp(p, " ") == 0 &&
                 get_str(n, "content") && strcmp(get_str(n, "content"), SPACE_MARK) == 0)
            t->spm.replace_space = 1;
        else
            return unsupported(path, "normalizer", n);
        if (n == norm) break;
    }
    return LORAC_OK;
}

static lorac_status read_metaspace(const cJSON *m, int *scheme, const char *path) {
    const char *rep = get_str(m, "replacement");
    if (rep && strcmp(rep, SPACE_MARK) != 0) return unsupported(path, "Metaspace replacement", m);
    const char *ps = get_str(m, "prepend_scheme");
    if (ps) {
        *scheme = strcmp(ps, "always") == 0 ? TOK_PREPEND_ALWAYS
                  : strcmp(ps, "first") == 0 ? TOK_PREPEND_FIRST
                  : strcmp(ps, "never") == 0 ? TOK_PREPEND_NEVER
                                             : 0;
        if (!*scheme) return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: Metaspace prepend_scheme '%s'", path, ps);
    } else { /* older files: add_prefix_space */
        *scheme = cJSON_IsFalse(get(m, "add_prefix_space")) ? TOK_PREPEND_NEVER : TOK_PREPEND_ALWAYS;
    }
    return LORAC_OK;
}

/* Split(pattern, behavior, invert): pattern {"Regex": ...} or {"String": ...}. */
static lorac_status read_split(lorac_tokenizer *t, const cJSON *p, const char *path) {
    const cJSON *pat = get(p, "pattern");
    const char *re = get_str(pat, "Regex"), *lit = get_str(pat, "String");
    int behavior = tok_split_behavior(get_str(p, "behavior"));
    char where[600];
    snprintf(where, sizeof where, "%s: pre_tokenizer Split", path);
    if (behavior < 0)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: behavior '%s' is not one of Removed, Isolated, "
                          "MergedWithPrevious, MergedWithNext, Contiguous", where,
                          get_str(p, "behavior") ? get_str(p, "behavior") : "(missing)");
    int invert = cJSON_IsTrue(get(p, "invert"));
    if (re) return tok_pretok_add_regex(&t->pre, re, behavior, invert, where);
    if (lit) return tok_pretok_add_literal(&t->pre, lit, behavior, invert, where);
    return lorac_fail(LORAC_ERR_FORMAT, "%s: pattern needs a \"Regex\" or a \"String\"", where);
}

/* The steps that cut text into words, in order (tok_split.c): Split,
 * Digits and ByteLevel for either family, Metaspace for SentencePiece. */
static lorac_status read_pre_tokenizer(lorac_tokenizer *t, const cJSON *pre, const char *path) {
    if (!pre || cJSON_IsNull(pre))
        return t->fam == &tok_family_spm ? LORAC_OK : unsupported(path, "pre_tokenizer", pre);
    for (const cJSON *p = members(pre, "pretokenizers"); p; p = p->next) {
        if (is_type(p, "Split")) {
            LORAC_TRY(read_split(t, p, path));
        } else if (is_type(p, "Digits")) { /* HF: each \p{N} alone, or runs of them together */
            LORAC_TRY(tok_pretok_add_regex(&t->pre, TOK_RE_DIGIT,
                                           cJSON_IsTrue(get(p, "individual_digits")) ? TOK_SPLIT_ISOLATED
                                                                                     : TOK_SPLIT_CONTIGUOUS,
                                           0, path));
        } else if (t->fam == &tok_family_bytelevel && is_type(p, "ByteLevel")) {
            if (cJSON_IsTrue(get(p, "add_prefix_space"))) LORAC_TRY(tok_pretok_add_prefix_space(&t->pre, path));
            if (!cJSON_IsFalse(get(p, "use_regex")))
                LORAC_TRY(tok_pretok_add_regex(&t->pre, TOK_RE_GPT2, TOK_SPLIT_ISOLATED, 0, path));
        } else if (t->fam == &tok_family_spm && is_type(p, "Metaspace")) {
            LORAC_TRY(read_metaspace(p, &t->spm.metaspace, path));
            t->spm.metaspace_split = !cJSON_IsFalse(get(p, "split"));
        } else {
            return unsupported(path, "pre_tokenizer", p);
        }
        if (p == pre) break;
    }
    return LORAC_OK;
}

/* The SentencePiece-like decoder chain: Replace("▁", " ") or Metaspace turn
 * "▁" into spaces, ByteFallback turns <0xXX> runs into bytes, Fuse joins,
 * and a Strip after Fuse trims leading spaces of the whole text. */
static lorac_status read_decoder(lorac_tokenizer *t, const cJSON *dec, const char *path) {
    if (t->fam == &tok_family_bytelevel)
        return is_type(dec, "ByteLevel") ? LORAC_OK : unsupported(path, "decoder (byte-level needs ByteLevel)", dec);
    if (!dec || cJSON_IsNull(dec)) return unsupported(path, "decoder", dec);
    int fused = 0;
    for (const cJSON *d = members(dec, "decoders"); d; d = d->next) {
        const char *p = pattern_str(d), *c = get_str(d, "content");
        const cJSON *start = get(d, "start"), *stop = get(d, "stop");
        if (is_type(d, "Replace") && p && c && strcmp(p, SPACE_MARK) == 0 && strcmp(c, " ") == 0) {
            t->spm.decode_replace = 1;
        } else if (is_type(d, "ByteFallback")) {
            t->spm.decode_bytes = 1;
        } else if (is_type(d, "Fuse")) {
            fused = 1;
        } else if (fused && is_type(d, "Strip") && c && strcmp(c, " ") == 0 && cJSON_IsNumber(start) &&
                   start->valueint >= 0 && start->valueint <= 16 && cJSON_IsNumber(stop) && stop->valueint == 0) {
            t->spm.decode_strip = start->valueint;
        } else if (is_type(d, "Metaspace")) {
            int scheme;
            LORAC_TRY(read_metaspace(d, &scheme, path));
            t->spm.decode_replace = 1;
            t->spm.decode_metaspace = scheme != TOK_PREPEND_NEVER;
        } else {
            return unsupported(path, "decoder", d);
        }
        if (d == dec) break;
    }
    return LORAC_OK;
}

/* post_processor: which special tokens add_special_tokens puts around the
 * text (TemplateProcessing "single", or Roberta/Bert cls ... sep). */
static lorac_status read_post_processor(lorac_tokenizer *t, const cJSON *pp, const char *path) {
    if (!pp || cJSON_IsNull(pp)) return LORAC_OK;
    for (const cJSON *p = members(pp, "processors"); p; p = p->next) {
        if (is_type(p, "ByteLevel")) {
            /* offsets only */
        } else if (is_type(p, "TemplateProcessing")) {
            int seen_a = 0;
            const cJSON *single = get(p, "single");
            for (const cJSON *it = cJSON_IsArray(single) ? single->child : NULL; it; it = it->next) {
                const cJSON *sp = get(it, "SpecialToken");
                if (!sp) {
                    seen_a = 1;
                    continue;
                }
                const char *name = get_str(sp, "id");
                const cJSON *ids = get(get(get(p, "special_tokens"), name ? name : ""), "ids");
                if (!cJSON_IsArray(ids))
                    return lorac_fail(LORAC_ERR_FORMAT, "%s: post_processor uses '%s', missing from its special_tokens",
                                      path, name ? name : "?");
                for (const cJSON *i = ids->child; i; i = i->next) {
                    int *list = seen_a ? t->suffix : t->prefix, *cnt = seen_a ? &t->n_suffix : &t->n_prefix;
                    if (!cJSON_IsNumber(i) || *cnt >= 4)
                        return lorac_fail(LORAC_ERR_FORMAT, "%s: post_processor template is not understood", path);
                    list[(*cnt)++] = i->valueint;
                }
            }
        } else if (is_type(p, "RobertaProcessing") || is_type(p, "BertProcessing")) {
            const cJSON *cls = get(p, "cls"), *sep = get(p, "sep");
            if (!cJSON_IsArray(cls) || !cJSON_IsArray(sep) || cJSON_GetArraySize(cls) != 2 ||
                cJSON_GetArraySize(sep) != 2)
                return lorac_fail(LORAC_ERR_FORMAT, "%s: post_processor cls/sep are not [token, id]", path);
            t->n_prefix = t->n_suffix = 1;
            t->prefix[0] = cJSON_GetArrayItem(cls, 1)->valueint;
            t->suffix[0] = cJSON_GetArrayItem(sep, 1)->valueint;
        } else {
            return unsupported(path, "post_processor", p);
        }
        if (p == pp) break;
    }
    return LORAC_OK;
}

/* model.vocab fills the piece table; added_tokens are added by text with
 * HF's id rule (tok_add_text), which for a consistent file gives the ids it
 * lists; where it does not, HF's ids win and a warning says so. */
static lorac_status read_vocab(lorac_tokenizer *t, const cJSON *vocab, const cJSON *added, const char *path) {
    int max_id = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(v >= 0 && v < (1 << 24) && v == (double)(int)v))
            return lorac_fail(LORAC_ERR_FORMAT, "%s: model.vocab: token '%s' needs an integer id in [0, 2^24)", path,
                              e->string);
        if ((int)v > max_id) max_id = (int)v;
    }
    LORAC_TRY(tok_check_sparse(path, "model.vocab", max_id, cJSON_GetArraySize(vocab)));
    LORAC_TRY(tok_resize(t, max_id + 1));
    for (const cJSON *e = vocab->child; e; e = e->next)
        LORAC_TRY(tok_set_piece(t, e->valueint, e->string, strlen(e->string), 0, TOK_NORMAL, 1));
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        const char *c = get_str(a, "content");
        const cJSON *listed = get(a, "id");
        if (!c || !*c) return lorac_fail(LORAC_ERR_FORMAT, "%s: added_tokens: an entry has no content", path);
        int id;
        LORAC_TRY(tok_add_text(t, c, strlen(c), cJSON_IsTrue(get(a, "special")), cJSON_IsTrue(get(a, "lstrip")),
                               cJSON_IsTrue(get(a, "rstrip")), cJSON_IsTrue(get(a, "single_word")), &id));
        if (cJSON_IsNumber(listed) && listed->valuedouble != id)
            lorac_log(1, "%s: added token '%s' is listed with id %g but gets id %d (as in HF tokenizers)", path, c,
                      listed->valuedouble, id);
    }
    return LORAC_OK;
}

static lorac_status read_merges(lorac_tokenizer *t, const cJSON *merges, const char *path) {
    int rank = 0;
    char where[600];
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        snprintf(where, sizeof where, "%s: model.merges[%d]", path, rank);
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(m)) { /* "a b" */
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || sp == m->valuestring || !sp[1] || strchr(sp + 1, ' '))
                return lorac_fail(LORAC_ERR_FORMAT, "%s: expected \"left right\", found \"%.60s\"", where,
                                  m->valuestring);
            a = m->valuestring;
            al = (size_t)(sp - a);
            b = sp + 1;
            bl = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) { /* ["a", "b"] */
            a = m->child->valuestring;
            b = m->child->next->valuestring;
            al = strlen(a);
            bl = strlen(b);
        } else {
            return lorac_fail(LORAC_ERR_FORMAT, "%s: expected \"left right\" or [left, right]", where);
        }
        LORAC_TRY(tok_add_merge(t, a, al, b, bl, rank, where));
    }
    return LORAC_OK;
}

static lorac_status read_model(lorac_tokenizer *t, const cJSON *model, const char *path) {
    const char *s;
    if ((s = get_str(model, "continuing_subword_prefix")) && *s)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: BPE continuing_subword_prefix '%s'", path, s);
    if ((s = get_str(model, "end_of_word_suffix")) && *s)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: BPE end_of_word_suffix '%s'", path, s);
    const cJSON *drop = get(model, "dropout");
    if (cJSON_IsNumber(drop) && drop->valuedouble > 0)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: BPE dropout (random segmentation) is not supported", path);
    t->byte_fallback = cJSON_IsTrue(get(model, "byte_fallback"));
    t->fuse_unk = cJSON_IsTrue(get(model, "fuse_unk"));
    t->ignore_merges = cJSON_IsTrue(get(model, "ignore_merges"));
    if ((s = get_str(model, "unk_token"))) {
        t->unk = tok_strmap_get(&t->vocab, s, strlen(s));
        if (t->unk < 0)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: model.unk_token '%s' is not in the vocabulary", path, s);
    }
    return LORAC_OK;
}

/* bos / eos when no tokenizer_config.json names them: the template's first
 * special token, else the usual spellings. */
static void guess_specials(lorac_tokenizer *t) {
    static const char *bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>"};
    static const char *eos_names[] = {"</s>", "<|endoftext|>", "<|end_of_text|>"};
    if (t->n_prefix) t->bos = t->prefix[0];
    for (int k = 0; k < 3 && t->bos < 0; k++) t->bos = tok_lookup(t, bos_names[k], strlen(bos_names[k]));
    for (int k = 0; k < 3 && t->eos < 0; k++) t->eos = tok_lookup(t, eos_names[k], strlen(eos_names[k]));
}

/* model.type "WordPiece" (BERT): vocab and added tokens as for BPE, the
 * post_processor's [CLS] ... [SEP], the side files, then the WordPiece
 * settings (tok_wordpiece.c). */
static lorac_status build_wordpiece(lorac_tokenizer **out, const cJSON *root, const char *path) {
    const cJSON *vocab = get(get(root, "model"), "vocab");
    if (!cJSON_IsObject(vocab))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: WordPiece model needs a \"vocab\" object", path);
    lorac_tokenizer *t;
    LORAC_TRY(tok_create(&tok_family_wordpiece, 0, path, &t));
    *out = t; /* the caller destroys it on failure */
    LORAC_TRY(read_vocab(t, vocab, get(root, "added_tokens"), path));
    LORAC_TRY(read_post_processor(t, get(root, "post_processor"), path));
    char dir[4096];
    tok_dir_of(path, dir, sizeof dir);
    LORAC_TRY(tok_apply_hf_config(t, dir, 0));
    LORAC_TRY(tok_wp_read_json(t, root, path));
    return tok_finish(t);
}

static lorac_status build(lorac_tokenizer **out, const cJSON *root, const char *path) {
    const cJSON *model = get(root, "model");
    if (!cJSON_IsObject(model))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: no \"model\" object; hint: is this a tokenizer.json?", path);
    const char *type = get_str(model, "type");
    if (type && strcmp(type, "WordPiece") == 0) return build_wordpiece(out, root, path);
    if (type && strcmp(type, "BPE") != 0)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (lorac reads BPE and WordPiece tokenizers)",
                          path, type);
    const cJSON *vocab = get(model, "vocab"), *merges = get(model, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return lorac_fail(LORAC_ERR_FORMAT, "%s: model needs a \"vocab\" object and a \"merges\" array", path);
    const tok_family *fam = pick_family(root, model);
    if (!fam)
        return lorac_fail(LORAC_ERR_UNSUPPORTED,
                          "%s: neither byte-level (ByteLevel pre_tokenizer) nor SentencePiece-like (\"\xE2\x96\x81\" "
                          "normalizer or byte_fallback) BPE",
                          path);
    lorac_tokenizer *t;
    LORAC_TRY(tok_create(fam, 0, path, &t));
    *out = t; /* the caller destroys it on failure */
    LORAC_TRY(read_vocab(t, vocab, get(root, "added_tokens"), path));
    LORAC_TRY(read_merges(t, merges, path));
    LORAC_TRY(read_model(t, model, path));
    LORAC_TRY(read_normalizer(t, get(root, "normalizer"), path));
    LORAC_TRY(read_pre_tokenizer(t, get(root, "pre_tokenizer"), path));
    LORAC_TRY(read_decoder(t, get(root, "decoder"), path));
    LORAC_TRY(read_post_processor(t, get(root, "post_processor"), path));
    for (int k = 0; k < t->n_prefix; k++)
        if (t->prefix[k] < 0 || t->prefix[k] >= t->n_vocab)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: post_processor uses token id %d, out of range", path,
                              t->prefix[k]);
    for (int k = 0; k < t->n_suffix; k++)
        if (t->suffix[k] < 0 || t->suffix[k] >= t->n_vocab)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: post_processor uses token id %d, out of range", path,
                              t->suffix[k]);
    char dir[4096];
    tok_dir_of(path, dir, sizeof dir);
    LORAC_TRY(tok_apply_hf_config(t, dir, 0));
    guess_specials(t);
    return tok_finish(t);
}

lorac_status tok_read_json(const char *path, size_t max_bytes, cJSON **root) {
    char *text;
    size_t len;
    *root = NULL;
    LORAC_TRY(lorac_read_file(path, max_bytes, &text, &len));
    lorac_status st = tok_check_utf8(path, text, len);
    if (st == LORAC_OK) {
        *root = cJSON_ParseWithLength(text, len);
        if (!*root) {
            size_t at = (size_t)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - text : 0);
            st = lorac_fail(LORAC_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", path, at);
        }
    }
    free(text);
    return st;
}

lorac_status tok_load_json(const char *path, lorac_tokenizer **out) {
    *out = NULL;
    cJSON *root;
    LORAC_TRY(tok_read_json(path, (size_t)1 << 30, &root));
    lorac_tokenizer *t = NULL;
    lorac_status st = cJSON_IsObject(root) ? build(&t, root, path)
                                           : lorac_fail(LORAC_ERR_FORMAT, "%s: expected a JSON object", path);
    cJSON_Delete(root);
    if (st != LORAC_OK) {
        tok_destroy(t);
        return st;
    }
    *out = t;
    return LORAC_OK;
}

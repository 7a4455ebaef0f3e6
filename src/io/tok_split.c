/* tok_split.c - pre-tokenizer splits: cutting a stretch of text into the
 * "words" that BPE then merges inside, as HF's pre-tokenizers do.
 *
 * A pre-tokenizer is a list of steps run in order; each step cuts every
 * piece the previous step left (HF Sequence). A step is one of
 *   Split(pattern, behavior, invert)  pattern a regex or a literal string;
 *   ByteLevel's prefix space          " " before each piece lacking one.
 * HF's other splitting pre-tokenizers are Splits in disguise, and the
 * loaders (tok_json.c, tok_gguf.c) write them so:
 *   ByteLevel(use_regex=true)     Split(GPT-2 regex, Isolated)
 *   Digits(individual_digits)     Split(\p{N}, Isolated), or Contiguous
 *                                 without individual_digits.
 *
 * How one Split cuts a piece (HF tokenizers, pattern.rs + normalizer.rs):
 * the pattern's matches, found left to right without overlap, and the
 * stretches between them form a list of segments, each flagged "match" or
 * not (invert swaps the flags). The behavior then says what becomes of
 * them:
 *   Isolated            every segment is a piece;
 *   Removed             only the non-matches are pieces;
 *   MergedWithPrevious  a match joins the piece before it (unless that
 *                       piece is itself a match);
 *   MergedWithNext      a match joins the piece after it (unless that one
 *                       is a match);
 *   Contiguous          adjacent segments with the same flag join.
 * Empty pieces are dropped.
 *
 * Regexes are HF's Oniguruma patterns run by PCRE2 (8-bit, UTF + UCP, with
 * JIT when the library has it). The two dialects agree on what tokenizer
 * patterns use (\p{L}, \p{N}, (?i:...), (?!...)) but for two details,
 * which compile_regex settles the Oniguruma way:
 *   \s   Oniguruma: Unicode White_Space. PCRE2 adds U+180E (no longer a
 *        space since Unicode 6.3), so \s and \S are spelled out as classes;
 *   ^ $  Oniguruma (Ruby syntax) anchors at every line: PCRE2_MULTILINE. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "io/tok_internal.h"

/* White_Space as a class body: TAB..CR, NEL, and the separators (Zs Zl Zp). */
#define WS_BODY "\\t-\\r\\x{85}\\p{Z}"

/* Oniguruma's \s / \S written out for PCRE2: outside a class as a class
 * of their own; inside one, \s as its body, while a \S there (which has
 * no such spelling) is refused. Everything else is copied as is. */
static lorac_status translate(const char *re, size_t n, tok_buf *out, const char *where) {
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char e = re[++i];
            if (e == 's')
                LORAC_TRY(tok_buf_put(out, in_class ? WS_BODY : "[" WS_BODY "]", strlen(WS_BODY) + (in_class ? 0 : 2)));
            else if (e == 'S' && !in_class)
                LORAC_TRY(tok_buf_put(out, "[^" WS_BODY "]", strlen(WS_BODY) + 3));
            else if (e == 'S')
                return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: \\S inside a character class (offset %zu) is not "
                                  "supported", where, i - 1);
            else {
                LORAC_TRY(tok_buf_putc(out, '\\'));
                LORAC_TRY(tok_buf_putc(out, e));
            }
            continue;
        }
        if (!in_class && c == '[') { /* a class opens; "[]" or "[^]" starts with a literal ']' */
            in_class = 1;
            LORAC_TRY(tok_buf_putc(out, c));
            if (i + 1 < n && re[i + 1] == '^') LORAC_TRY(tok_buf_putc(out, re[++i]));
            if (i + 1 < n && re[i + 1] == ']') LORAC_TRY(tok_buf_putc(out, re[++i]));
            continue;
        }
        if (in_class && c == ']') in_class = 0;
        LORAC_TRY(tok_buf_putc(out, c));
    }
    return LORAC_OK;
}

static lorac_status compile_regex(const char *re, size_t n, const char *where, void **code) {
    tok_buf pat = {0};
    lorac_status st = translate(re, n, &pat, where);
    pcre2_compile_context *cc = st == LORAC_OK ? pcre2_compile_context_create(NULL) : NULL;
    if (st == LORAC_OK && !cc) st = lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory for a regex", where);
    if (st == LORAC_OK) {
        int err;
        PCRE2_SIZE at;
        pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
        pcre2_code *c = pcre2_compile((PCRE2_SPTR)(pat.v ? pat.v : ""), pat.n, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE,
                                      &err, &at, cc);
        if (!c) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            st = lorac_fail(LORAC_ERR_FORMAT, "%s: regex '%.*s' does not compile: %s; hint: lorac runs HF's "
                            "(Oniguruma) patterns with PCRE2", where, (int)n, re, (const char *)msg);
        } else {
            pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); /* an interpreter run if JIT is missing */
            *code = c;
        }
    }
    pcre2_compile_context_free(cc);
    free(pat.v);
    return st;
}

static lorac_status add_step(tok_pretok *p, tok_split s, const char *where) {
    if (p->n == TOK_MAX_SPLITS) {
        if (s.re) pcre2_code_free(s.re);
        free(s.lit);
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer steps", where, TOK_MAX_SPLITS);
    }
    p->step[p->n++] = s;
    return LORAC_OK;
}

lorac_status tok_pretok_add_regex(tok_pretok *p, const char *re, int behavior, int invert, const char *where) {
    tok_split s = {TOK_STEP_SPLIT, NULL, NULL, 0, behavior, invert};
    LORAC_TRY(compile_regex(re, strlen(re), where, &s.re));
    return add_step(p, s, where);
}

lorac_status tok_pretok_add_literal(tok_pretok *p, const char *lit, int behavior, int invert, const char *where) {
    size_t n = strlen(lit);
    tok_split s = {TOK_STEP_SPLIT, NULL, malloc(n + 1), n, behavior, invert};
    if (!s.lit) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", where);
    memcpy(s.lit, lit, n + 1);
    return add_step(p, s, where);
}

lorac_status tok_pretok_add_prefix_space(tok_pretok *p, const char *where) {
    return add_step(p, (tok_split){TOK_STEP_PREFIX_SPACE, NULL, NULL, 0, 0, 0}, where);
}

int tok_split_behavior(const char *name) {
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; name && i < 5; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

void tok_pretok_free(tok_pretok *p) {
    for (int i = 0; i < p->n; i++) {
        if (p->step[i].re) pcre2_code_free(p->step[i].re);
        free(p->step[i].lit);
    }
    p->n = 0;
}

/* ------------------------------------------------ running */
typedef struct run_ctx {
    const tok_pretok *p;
    pcre2_match_data *md;
    tok_piece_fn fn;
    void *user;
} run_ctx;

static lorac_status run_from(run_ctx *c, int k, const char *s, size_t n);

/* The behavior's fold, one segment at a time: `pend` holds a piece that a
 * later segment may still grow (MergedWithPrevious: the last piece;
 * MergedWithNext: a match waiting for its follower; Contiguous: the
 * current run). */
typedef struct folder {
    run_ctx *c;
    int k, behavior;
    const char *s;
    size_t ps, pe; /* the pending piece s[ps..pe) */
    int has, pmatch;
} folder;

static lorac_status emit(folder *f, size_t a, size_t b) {
    return b > a ? run_from(f->c, f->k + 1, f->s + a, b - a) : LORAC_OK; /* empty pieces are dropped */
}

static lorac_status flush(folder *f) {
    int had = f->has;
    f->has = 0;
    return had ? emit(f, f->ps, f->pe) : LORAC_OK;
}

static lorac_status hold(folder *f, size_t a, size_t b, int match) {
    f->ps = a;
    f->pe = b;
    f->has = 1;
    f->pmatch = match;
    return LORAC_OK;
}

static lorac_status segment(folder *f, size_t a, size_t b, int match) {
    switch (f->behavior) {
    case TOK_SPLIT_REMOVED:
        return match ? LORAC_OK : emit(f, a, b);
    case TOK_SPLIT_ISOLATED:
        return emit(f, a, b);
    case TOK_SPLIT_MERGED_PREV:
        if (match && f->has && !f->pmatch) { /* the match ends the piece before it */
            f->pe = b;
            f->pmatch = 1;
            return LORAC_OK;
        }
        LORAC_TRY(flush(f));
        return hold(f, a, b, match);
    case TOK_SPLIT_MERGED_NEXT:
        if (f->has && !match) { /* the waiting match starts this piece */
            f->has = 0;
            return emit(f, f->ps, b);
        }
        LORAC_TRY(flush(f));
        return match ? hold(f, a, b, 1) : emit(f, a, b);
    default: /* TOK_SPLIT_CONTIGUOUS */
        if (f->has && f->pmatch == match) {
            f->pe = b;
            return LORAC_OK;
        }
        LORAC_TRY(flush(f));
        return hold(f, a, b, match);
    }
}

/* Next match of step st in s[from..n): its bounds in *ms, *me; 0 if none. */
static int next_match(run_ctx *c, const tok_split *st, const char *s, size_t n, size_t from, size_t *ms, size_t *me) {
    if (st->lit) {
        if (st->lit_len == 0 || st->lit_len > n - from) return 0;
        for (size_t i = from; i + st->lit_len <= n; i++)
            if (s[i] == st->lit[0] && memcmp(s + i, st->lit, st->lit_len) == 0) {
                *ms = i;
                *me = i + st->lit_len;
                return 1;
            }
        return 0;
    }
    int rc = pcre2_match(st->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, c->md, NULL);
    if (rc < 0) return rc == PCRE2_ERROR_NOMATCH ? 0 : rc;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* Split s[0..n) with step k and hand each piece to step k + 1. Matches are
 * found as Oniguruma's iterator finds them: an empty match right where the
 * previous match ended is skipped by moving one character on. */
static lorac_status split_piece(run_ctx *c, int k, const char *s, size_t n) {
    const tok_split *st = &c->p->step[k];
    folder f = {c, k, st->behavior, s, 0, 0, 0, 0};
    size_t prev = 0, from = 0, last_end = (size_t)-1;
    while (from <= n) {
        size_t ms, me;
        int r = next_match(c, st, s, n, from, &ms, &me);
        if (r < 0)
            return lorac_fail(LORAC_ERR_DATA, "tokenizer: regex match failed (PCRE2 error %d) on a piece of %zu "
                              "bytes", r, n);
        if (r == 0) break;
        if (ms == me && ms == last_end) { /* empty, touching the last match: step over a character */
            uint32_t cp;
            from = ms < n ? ms + tok_utf8_len_valid(s + ms, n - ms, &cp) : n + 1;
            continue;
        }
        if (prev < ms) LORAC_TRY(segment(&f, prev, ms, st->invert));
        LORAC_TRY(segment(&f, ms, me, !st->invert));
        prev = last_end = me;
        if (me > ms) {
            from = me;
        } else { /* an empty match: search on from the next character */
            uint32_t cp;
            from = me < n ? me + tok_utf8_len_valid(s + me, n - me, &cp) : n + 1;
        }
    }
    if (prev < n) LORAC_TRY(segment(&f, prev, n, st->invert));
    return flush(&f);
}

/* ByteLevel(add_prefix_space): " " in front of a piece not starting with one. */
static lorac_status prefix_space(run_ctx *c, int k, const char *s, size_t n) {
    if (n && s[0] == ' ') return run_from(c, k + 1, s, n);
    tok_buf b = {0};
    lorac_status st = tok_buf_putc(&b, ' ');
    if (st == LORAC_OK) st = tok_buf_put(&b, s, n);
    if (st == LORAC_OK) st = run_from(c, k + 1, b.v, b.n);
    free(b.v);
    return st;
}

static lorac_status run_from(run_ctx *c, int k, const char *s, size_t n) {
    if (k == c->p->n) return c->fn(c->user, s, n);
    if (c->p->step[k].kind == TOK_STEP_PREFIX_SPACE) return prefix_space(c, k, s, n);
    return split_piece(c, k, s, n);
}

lorac_status tok_pretok_run(const tok_pretok *p, const char *s, size_t n, tok_piece_fn fn, void *user) {
    if (n == 0) return LORAC_OK;
    run_ctx c = {p, NULL, fn, user};
    int needs_md = 0;
    for (int k = 0; k < p->n; k++) needs_md |= p->step[k].re != NULL;
    if (needs_md && !(c.md = pcre2_match_data_create(1, NULL)))
        return lorac_fail(LORAC_ERR_NOMEM, "tokenizer: out of memory for regex match data");
    lorac_status st = run_from(&c, 0, s, n);
    pcre2_match_data_free(c.md);
    return st;
}

/* tok_encode_words: the pre-tokenizer's pieces go one by one to the
 * family's word encoder. */
typedef struct words_ctx {
    const lorac_tokenizer *t;
    tok_word_fn fn;
    tok_work *work;
    tok_ids *out;
} words_ctx;

static lorac_status on_word(void *user, const char *s, size_t n) {
    words_ctx *c = user;
    return c->fn(c->t, s, n, c->work, c->out);
}

lorac_status tok_encode_words(const lorac_tokenizer *t, const char *s, size_t n, tok_word_fn fn, tok_work *work,
                              tok_ids *out) {
    words_ctx c = {t, fn, work, out};
    return tok_pretok_run(&t->pre, s, n, on_word, &c);
}

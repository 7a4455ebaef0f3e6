/* tok_spm_model.c - SentencePiece's tokenizer.model: a protobuf ModelProto,
 * read with a small bounds-checked protobuf decoder.
 *
 * The fields used (sentencepiece_model.proto):
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec,
 *                   3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum,
 *                   default NORMAL = 1)
 *   TrainerSpec     3 model_type (UNIGRAM = 1 default, BPE = 2),
 *                   24 treat_whitespace_as_suffix, 35 byte_fallback,
 *                   40 unk_id (default 0), 41 bos_id (1), 42 eos_id (2),
 *                   43 pad_id (-1)
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix (true),
 *                   4 remove_extra_whitespaces (true), 5 escape_whitespaces (true)
 * Protobuf wire format: each field is a varint key (field << 3 | wire type)
 * followed by a varint (type 0), 8 bytes (1), a varint length and that many
 * bytes (2), or 4 bytes (5). Unknown fields are skipped; every length is
 * checked against the bytes that remain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/tok_internal.h"

typedef struct pb {
    const uint8_t *p, *end, *base; /* base: start of the file, for offsets in messages */
    const char *path;
} pb;

static lorac_status truncated(const pb *r, const char *what) {
    return lorac_fail(LORAC_ERR_FORMAT,
                      "%s: truncated or corrupt protobuf (%s at byte %zu); hint: is this a SentencePiece "
                      "tokenizer.model?",
                      r->path, what, (size_t)(r->p - r->base));
}

static lorac_status pb_varint(pb *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return truncated(r, "varint");
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return LORAC_OK;
        }
    }
    return truncated(r, "varint longer than 10 bytes");
}

/* Read one field header; *field = 0 at the end of the message. */
static lorac_status pb_key(pb *r, uint32_t *field, uint32_t *wire) {
    *field = 0;
    if (r->p >= r->end) return LORAC_OK;
    uint64_t k = 0;
    LORAC_TRY(pb_varint(r, &k));
    *field = (uint32_t)(k >> 3);
    *wire = (uint32_t)(k & 7);
    if (*field == 0 || k >> 32) return truncated(r, "bad field number");
    return LORAC_OK;
}

/* A length-delimited payload as a sub-reader. */
static lorac_status pb_bytes(pb *r, pb *sub) {
    uint64_t n = 0;
    LORAC_TRY(pb_varint(r, &n));
    if (n > (uint64_t)(r->end - r->p)) return truncated(r, "length past the end");
    *sub = (pb){r->p, r->p + n, r->base, r->path};
    r->p += n;
    return LORAC_OK;
}

static lorac_status pb_skip(pb *r, uint32_t wire) {
    uint64_t v = 0;
    pb sub;
    switch (wire) {
    case 0: return pb_varint(r, &v);
    case 2: return pb_bytes(r, &sub);
    case 1:
    case 5: {
        size_t n = wire == 1 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n) return truncated(r, "fixed-size field");
        r->p += n;
        return LORAC_OK;
    }
    default: return truncated(r, "unsupported wire type");
    }
}

/* A field's value as an integer (wire type 0 required). */
static lorac_status pb_int(pb *r, uint32_t wire, int64_t *v) {
    if (wire != 0) return truncated(r, "expected a varint");
    uint64_t u = 0;
    LORAC_TRY(pb_varint(r, &u));
    *v = (int64_t)u; /* int32 negatives are sign-extended to 64 bits */
    return LORAC_OK;
}

typedef struct spm_piece {
    const uint8_t *s;
    size_t len;
    float score;
    int type;
} spm_piece;

typedef struct spm_model {
    spm_piece *pieces;
    size_t n, cap;
    int64_t model_type, unk_id, bos_id, eos_id, pad_id, byte_fallback, ws_suffix;
    int64_t add_dummy_prefix, remove_extra_ws, escape_ws;
    size_t charsmap_len;
} spm_model;

static lorac_status read_piece(pb *r, spm_model *m) {
    spm_piece p = {NULL, 0, 0, TOK_NORMAL};
    uint32_t f = 0, w = 0;
    int have_piece = 0;
    for (;;) {
        LORAC_TRY(pb_key(r, &f, &w));
        if (!f) break;
        int64_t v = 0;
        pb sub;
        if (f == 1 && w == 2) {
            LORAC_TRY(pb_bytes(r, &sub));
            p.s = sub.p;
            p.len = (size_t)(sub.end - sub.p);
            have_piece = 1;
        } else if (f == 2 && w == 5) {
            if (r->end - r->p < 4) return truncated(r, "score");
            uint32_t bits = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                            (uint32_t)r->p[3] << 24; /* little-endian float */
            memcpy(&p.score, &bits, 4);
            r->p += 4;
        } else if (f == 3) {
            LORAC_TRY(pb_int(r, w, &v));
            if (v < 1 || v > 6) return truncated(r, "piece type out of range");
            p.type = (int)v;
        } else {
            LORAC_TRY(pb_skip(r, w));
        }
    }
    if (!have_piece) return truncated(r, "a piece without text");
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 1024;
        spm_piece *np = realloc(m->pieces, cap * sizeof *np);
        if (!np) return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", r->path);
        m->pieces = np;
        m->cap = cap;
    }
    m->pieces[m->n++] = p;
    return LORAC_OK;
}

/* The scalar fields of TrainerSpec (which = 2) or NormalizerSpec (3). */
static lorac_status read_spec(pb *r, spm_model *m, int which) {
    uint32_t f = 0, w = 0;
    for (;;) {
        LORAC_TRY(pb_key(r, &f, &w));
        if (!f) return LORAC_OK;
        int64_t *dst = NULL;
        if (which == 2) {
            dst = f == 3 ? &m->model_type : f == 24 ? &m->ws_suffix : f == 35 ? &m->byte_fallback
                : f == 40 ? &m->unk_id : f == 41 ? &m->bos_id : f == 42 ? &m->eos_id : f == 43 ? &m->pad_id : NULL;
        } else if (f == 2 && w == 2) {
            pb sub;
            LORAC_TRY(pb_bytes(r, &sub));
            m->charsmap_len = (size_t)(sub.end - sub.p);
            continue;
        } else {
            dst = f == 3 ? &m->add_dummy_prefix : f == 4 ? &m->remove_extra_ws : f == 5 ? &m->escape_ws : NULL;
        }
        if (dst) {
            LORAC_TRY(pb_int(r, w, dst));
            if (dst != &m->model_type) *dst = (int32_t)*dst; /* int32 / bool fields */
        } else {
            LORAC_TRY(pb_skip(r, w));
        }
    }
}

static lorac_status parse(pb *r, spm_model *m) {
    uint32_t f = 0, w = 0;
    for (;;) {
        LORAC_TRY(pb_key(r, &f, &w));
        if (!f) return LORAC_OK;
        pb sub;
        if ((f == 1 || f == 2 || f == 3) && w == 2) {
            LORAC_TRY(pb_bytes(r, &sub));
            LORAC_TRY(f == 1 ? read_piece(&sub, m) : read_spec(&sub, m, (int)f));
        } else {
            LORAC_TRY(pb_skip(r, w));
        }
    }
}

/* Check the model is one lorac encodes exactly, then build the tokenizer. */
static lorac_status build(const spm_model *m, const char *path, lorac_tokenizer **out) {
    if (m->n == 0)
        return lorac_fail(LORAC_ERR_FORMAT, "%s: no pieces; hint: is this a SentencePiece tokenizer.model?", path);
    if (m->n > (1u << 24)) return lorac_fail(LORAC_ERR_FORMAT, "%s: %zu pieces is implausible", path, m->n);
    if (m->model_type != 2)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: SentencePiece model_type %lld (%s); lorac reads BPE models", path,
                          (long long)m->model_type, m->model_type == 1 ? "unigram" : "not BPE");
    if (m->charsmap_len)
        return lorac_fail(LORAC_ERR_UNSUPPORTED,
                          "%s: normalizer with a precompiled character map (e.g. nmt_nfkc) is not supported; "
                          "Llama-style models use \"identity\"",
                          path);
    if (m->ws_suffix || !m->escape_ws)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: treat_whitespace_as_suffix / escape_whitespaces=false", path);
    int64_t ids[] = {m->unk_id, m->bos_id, m->eos_id, m->pad_id};
    for (int k = 0; k < 4; k++)
        if (ids[k] < -1 || ids[k] >= (int64_t)m->n)
            return lorac_fail(LORAC_ERR_FORMAT, "%s: special token id %lld out of range [0, %zu)", path,
                              (long long)ids[k], m->n);
    lorac_tokenizer *t;
    LORAC_TRY(tok_create(&tok_family_spm, (int)m->n, path, &t));
    lorac_status st = LORAC_OK;
    for (size_t i = 0; i < m->n && st == LORAC_OK; i++) {
        const spm_piece *p = &m->pieces[i];
        st = tok_set_piece(t, (int)i, (const char *)p->s, p->len, p->score, p->type, 1);
        /* HF's LlamaTokenizer makes control and unknown pieces special added
         * tokens and user-defined ones plain added tokens */
        if (st == LORAC_OK && (p->type == TOK_CONTROL || p->type == TOK_UNKNOWN || p->type == TOK_USER))
            st = tok_add_token(t, (int)i, p->type != TOK_USER, 0, 0, 0);
    }
    t->unk = (int)m->unk_id;
    t->bos = (int)m->bos_id;
    t->eos = (int)m->eos_id;
    t->pad = (int)m->pad_id;
    t->merge_by_score = 1;
    t->byte_fallback = m->byte_fallback != 0;
    t->spm.sp_normalizer = 1;
    t->spm.add_dummy_prefix = m->add_dummy_prefix != 0;
    t->spm.remove_extra_ws = m->remove_extra_ws != 0;
    t->spm.decode_strip = t->spm.add_dummy_prefix;
    t->spm.decode_replace = t->spm.decode_bytes = 1;
    tok_set_add_special(t, 1, 0); /* Llama adds BOS unless tokenizer_config.json says otherwise */
    char dir[4096];
    tok_dir_of(path, dir, sizeof dir);
    if (st == LORAC_OK) st = tok_apply_hf_config(t, dir, 1);
    return tok_hand_over(t, st, out);
}

lorac_status tok_load_spm_model(const char *path, lorac_tokenizer **out) {
    *out = NULL;
    char *data;
    size_t len;
    LORAC_TRY(lorac_read_file(path, (size_t)1 << 30, &data, &len));
    spm_model m = {0};
    m.model_type = 1;
    m.bos_id = 1;
    m.eos_id = 2;
    m.pad_id = -1;
    m.add_dummy_prefix = m.remove_extra_ws = m.escape_ws = 1;
    pb r = {(const uint8_t *)data, (const uint8_t *)data + len, (const uint8_t *)data, path};
    lorac_status st = parse(&r, &m);
    if (st == LORAC_OK) st = build(&m, path, out);
    free(m.pieces);
    free(data);
    return st;
}

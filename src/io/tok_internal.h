/* tok_internal.h - the inside of a lorac_tokenizer, shared by the tokenizer
 * files and nothing else.
 *
 * A tokenizer is Hugging Face's pipeline, cut where HF cuts it:
 *   1. split the text on added tokens (tokenizer.c), then for each stretch
 *      of ordinary text the *family* does
 *   2. normalize (tokenizer.c: NFC / NFKC ...; tok_spm.c: spaces to "▁",
 *      dummy prefix) and pre-tokenize (tok_split.c: the Split regexes of
 *      GPT-2, Llama 3, Qwen2 ... run by PCRE2) into words; byte-level BPE
 *      (tok_bpe.c) spells each word's bytes in GPT-2's byte alphabet,
 *   3. run the BPE model (tok_merge.c: merges by rank or by piece score),
 *   and decoding runs the family's decoder chain.
 *
 * Files: tokenizer.c (API, added tokens, dispatch by path), tok_split.c
 * (pre-tokenizer splits), tok_vocab.c
 * (piece table, hash maps, buffers), tok_unicode.c (UTF-8, categories, byte
 * alphabet), tok_merge.c (BPE merge loop), tok_bpe.c + tok_spm.c (the two
 * BPE families), tok_wordpiece.c (the WordPiece family for BERT, with its
 * vocab.txt loader), and one loader per source format: tok_files.c (vocab.json +
 * merges.txt), tok_json.c (tokenizer.json), tok_hfconfig.c
 * (tokenizer_config.json / special_tokens_map.json), tok_spm_model.c
 * (tokenizer.model protobuf), tok_gguf.c (GGUF metadata).
 *
 * Adding a family (say WordPiece for BERT) is one new file that defines a
 * tok_family and a loader for its vocab.txt; the loaders that can meet it
 * (tokenizer.c's path dispatch, tok_json.c's model.type switch) each gain
 * one line. Family-specific settings live in the family's config struct. */
#ifndef LORAC_IO_TOK_INTERNAL_H
#define LORAC_IO_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/tokenizer.h"

/* ------------------------------------------------ growable buffers */
typedef struct tok_ids {
    int *v;
    size_t n, cap;
} tok_ids;
typedef struct tok_buf {
    char *v;
    size_t n, cap;
} tok_buf;
lorac_status tok_ids_push(tok_ids *a, int id);
lorac_status tok_buf_put(tok_buf *b, const void *p, size_t n);
lorac_status tok_buf_putc(tok_buf *b, char c);

/* ------------------------------------------------ hash maps */
/* bytes -> int. Keys are borrowed (they point into the piece table). */
typedef struct tok_str_entry {
    const char *key; /* NULL: empty slot */
    uint32_t len;
    int val;
} tok_str_entry;
typedef struct tok_strmap {
    tok_str_entry *e;
    size_t cap, n; /* cap is 0 or a power of two */
} tok_strmap;
lorac_status tok_strmap_put(tok_strmap *m, const char *key, size_t len, int val); /* replaces */
int tok_strmap_get(const tok_strmap *m, const char *key, size_t len);            /* -1 if absent */
void tok_strmap_free(tok_strmap *m);

/* (left id, right id) -> (rank, merged id): the BPE merge table. */
typedef struct tok_pair_entry {
    uint64_t key; /* (left << 32 | right) + 1; 0 marks an empty slot */
    int rank, id;
} tok_pair_entry;
typedef struct tok_pairmap {
    tok_pair_entry *e;
    size_t cap, n;
} tok_pairmap;
lorac_status tok_pairmap_put(tok_pairmap *m, int a, int b, int rank, int id); /* replaces */
int tok_pairmap_get(const tok_pairmap *m, int a, int b, int *rank);          /* merged id or -1 */
void tok_pairmap_free(tok_pairmap *m);

/* ------------------------------------------------ unicode (tok_unicode.c) */
/* Length (1-4) of the well-formed UTF-8 character at s, storing it in *cp;
 * 0 if the bytes there are ill-formed, with *bad set to the length of the
 * maximal ill-formed subpart (the bytes one U+FFFD replaces, >= 1). */
size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad);
/* Decode a character of text already known to be valid UTF-8. */
size_t tok_utf8_len_valid(const char *s, size_t n, uint32_t *cp);
/* Encode cp; returns its length (1-4). */
size_t tok_utf8_encode(uint32_t cp, char out[4]);
/* Append s to out with every maximal ill-formed subpart replaced by U+FFFD
 * (Python's decode("utf-8", "replace"), Rust's from_utf8_lossy). */
lorac_status tok_utf8_sanitize(const char *s, size_t n, tok_buf *out);
/* 1 if s[0..n) is valid UTF-8. */
int tok_utf8_valid(const char *s, size_t n);
/* LORAC_OK if the text of file `path` is valid UTF-8, else LORAC_ERR_FORMAT
 * naming the line and the first bad byte (as HF's loaders refuse it). */
lorac_status tok_check_utf8(const char *path, const char *s, size_t n);
/* Character classes as the GPT-2 regex sees them (Oniguruma, Unicode):
 * \p{L} = Lu Ll Lt Lm Lo; \p{N} = Nd Nl No (also Rust's char::is_numeric);
 * \s = U+0009-000D, U+0085, Zs, Zl, Zp (also Rust's char::is_whitespace). */
int tok_is_letter(uint32_t cp);
int tok_is_number(uint32_t cp);
int tok_is_space(uint32_t cp);
/* GPT-2's byte alphabet (bytes_to_unicode): printable Latin-1 bytes stand for
 * themselves, the other 68 bytes for U+0100.. in order. */
uint32_t tok_byte_to_cp(unsigned b);
int tok_cp_to_byte(uint32_t cp); /* -1 if cp is not in the alphabet */

/* ------------------------------------------------ the tokenizer */
/* Piece types: SentencePiece's numbering, which GGUF's token_type shares. */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };
/* Per-id flags: an added token; a special one (skipped by skip_special). */
enum { TOK_F_ADDED = 1, TOK_F_SPECIAL = 2 };

/* A token matched whole in the input text before anything else runs
 * (HF "added tokens"); its text is piece[id]; flags[id] says whether it is
 * special. */
typedef struct tok_added {
    int id;
    uint32_t len;        /* piece_len[id], cached for sorting */
    uint8_t lstrip;      /* swallows whitespace on its left */
    uint8_t rstrip;      /* ... and on its right */
    uint8_t single_word; /* only matches when not inside a word */
} tok_added;

typedef struct tok_family {
    const char *kind;
    /* Append the ids of s[0..n), valid UTF-8 holding no added token.
     * at_start: s begins the whole input (HF's "offset 0"). */
    lorac_status (*encode)(const lorac_tokenizer *t, const char *s, size_t n, int at_start, tok_ids *out);
    /* Append the raw bytes HF's decoder chain makes of ids (already
     * filtered for skip_special); the caller repairs invalid UTF-8. */
    lorac_status (*decode)(const lorac_tokenizer *t, const int *ids, int n, tok_buf *out);
    /* Append the bytes of one token when streaming. */
    lorac_status (*piece)(const lorac_tokenizer *t, int prev, int id, tok_buf *out);
} tok_family;

extern const tok_family tok_family_bytelevel; /* tok_bpe.c */
extern const tok_family tok_family_spm;       /* tok_spm.c */
extern const tok_family tok_family_wordpiece; /* tok_wordpiece.c */

/* ------------------------------------------------ pre-tokenizer (tok_split.c) */
/* What a Split does with the pattern's matches (HF SplitDelimiterBehavior). */
enum { TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT, TOK_SPLIT_CONTIGUOUS };
enum { TOK_STEP_SPLIT, TOK_STEP_PREFIX_SPACE };
typedef struct tok_split {
    int kind;       /* TOK_STEP_*: a Split, or ByteLevel's prefix space */
    void *re;       /* compiled PCRE2 regex (pcre2_code *), or NULL ... */
    char *lit;      /* ... for a literal pattern (owned) */
    size_t lit_len;
    int behavior;   /* TOK_SPLIT_* */
    int invert;     /* the non-matches are the delimiters */
} tok_split;
#define TOK_MAX_SPLITS 8
/* The steps, run in order, each over every piece the one before left. */
typedef struct tok_pretok {
    tok_split step[TOK_MAX_SPLITS];
    int n;
} tok_pretok;
/* Append a step; `where` names the file and field for errors. */
lorac_status tok_pretok_add_regex(tok_pretok *p, const char *re, int behavior, int invert, const char *where);
lorac_status tok_pretok_add_literal(tok_pretok *p, const char *lit, int behavior, int invert, const char *where);
lorac_status tok_pretok_add_prefix_space(tok_pretok *p, const char *where);
/* TOK_SPLIT_* of an HF behavior name ("Isolated", ...), or -1. */
int tok_split_behavior(const char *name);
/* Cut s[0..n) (valid UTF-8) and call fn on each final piece in order
 * (never on an empty one); with no steps, s is the one piece. */
typedef lorac_status (*tok_piece_fn)(void *user, const char *s, size_t n);
lorac_status tok_pretok_run(const tok_pretok *p, const char *s, size_t n, tok_piece_fn fn, void *user);
void tok_pretok_free(tok_pretok *p);
/* The regexes HF's ByteLevel(use_regex=true) and Digits stand for. */
#define TOK_RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define TOK_RE_DIGIT "\\p{N}"

/* SentencePiece family settings. */
typedef struct tok_spm_cfg {
    int sp_normalizer;    /* 1: sentencepiece's own normalizer (below); 0: HF's steps */
    int add_dummy_prefix; /* "▁" before each stretch (sentencepiece / HF Prepend) */
    int remove_extra_ws;  /* sentencepiece: drop leading, trailing and repeated ' ' */
    int replace_space;    /* HF Replace(" ", "▁") (sentencepiece always escapes) */
    int metaspace;        /* HF Metaspace pre-tokenizer: 0 absent, else prepend scheme */
    int metaspace_split;  /* Metaspace(split=true): words start at each "▁" */
    int decode_replace;   /* decoder turns "▁" into ' ' (HF Replace / Metaspace) */
    int decode_bytes;     /* decoder turns <0xXX> runs into bytes (HF ByteFallback) */
    int decode_strip;     /* leading spaces the decoder removes (HF Strip decoder) */
    int decode_metaspace; /* HF Metaspace decoder: strip the first token's leading "▁" */
} tok_spm_cfg;
enum { TOK_PREPEND_ALWAYS = 1, TOK_PREPEND_FIRST = 2, TOK_PREPEND_NEVER = 3 };
/* unicode_nf: the Unicode normal forms (HF normalizers of those names). */
enum { TOK_NF_NONE, TOK_NF_NFC, TOK_NF_NFKC, TOK_NF_NFD, TOK_NF_NFKD };

/* WordPiece (BERT) family settings: HF BertNormalizer, WordPiece model and
 * decoder, transformers' clean_up_tokenization_spaces. */
typedef struct tok_wp_cfg {
    int clean_text;       /* drop control characters, whitespace -> ' ' */
    int handle_cjk;       /* spaces around CJK ideographs */
    int strip_accents;    /* NFD, then drop nonspacing marks (Mn) */
    int lowercase;        /* lowercase every character */
    int max_word_chars;   /* a longer word becomes unk (max_input_chars_per_word) */
    char prefix[16];      /* continuing-subword prefix, "##" */
    size_t prefix_len;
    int decode_cleanup;   /* WordPiece decoder's cleanup, token by token */
    int cleanup_spaces;   /* transformers' clean_up_tokenization_spaces, whole text */
} tok_wp_cfg;

struct lorac_tokenizer {
    const tok_family *fam;
    const char *source; /* file it came from, for messages (owned) */

    /* Every id's piece, as the vocabulary spells it. */
    int n_vocab;
    char **piece;
    uint32_t *piece_len;
    float *score;   /* SentencePiece score (0 where none) */
    uint8_t *attr;  /* TOK_* */
    uint8_t *flags; /* TOK_F_* */
    tok_strmap vocab; /* pieces the model can produce -> id */
    char **retired;   /* replaced pieces still used as vocab keys (freed last) */
    int n_retired;

    tok_added *added; /* matched in the text, longest first at each position */
    int n_added;
    int max_added_id; /* -1 if none */
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */
    tok_strmap added_map;     /* added token text -> index in added[] (tok_finish) */
    uint32_t *added_lens;     /* the distinct lengths of added tokens, longest first */
    int n_added_lens;

    int bos, eos, pad, unk;     /* -1 if none */
    int prefix[4], n_prefix;    /* what add_special puts before ... */
    int suffix[4], n_suffix;    /* ... and after the text */

    /* The BPE model. */
    int merge_by_score;  /* 1: best piece score first (sentencepiece); 0: merge rank (HF) */
    tok_pairmap merges;  /* used when merge_by_score == 0 */
    int byte_fallback;   /* unknown characters become <0xXX> pieces */
    int fuse_unk;        /* consecutive unknowns become one unk */
    int ignore_merges;   /* HF: a word that is itself a piece skips merging */
    int byte_id[256];    /* id standing for each byte: its byte-alphabet char, or <0xXX>; -1 */

    /* Before the family's own steps: Unicode normalization of each stretch
     * (HF NFC / NFKC / NFD / NFKD normalizer; 0 none), and the pre-tokenizer
     * that cuts it into words (byte-level: GPT-2's regex, Llama 3's, ...;
     * SentencePiece: usually none). */
    int unicode_nf;
    tok_pretok pre;
    tok_spm_cfg spm;
    tok_wp_cfg wp;
};

/* ---- building one (tok_vocab.c). Loaders: tok_create, tok_set_piece for
 * every id, tok_add_merge, tok_add_token, then tok_finish. ---- */
lorac_status tok_create(const tok_family *fam, int n_vocab, const char *source, lorac_tokenizer **out);
/* Set id's piece (copied). in_model: the BPE model may produce it. */
lorac_status tok_set_piece(lorac_tokenizer *t, int id, const char *s, size_t len, float score, int attr, int in_model);
/* Grow the table to n_vocab ids (new ids get empty pieces). */
lorac_status tok_resize(lorac_tokenizer *t, int n_vocab);
/* A vocabulary of n_entries pieces whose largest id is max_id: refuses one
 * that is mostly holes (max_id >= 2 * n_entries + 1024), so a few bytes
 * such as {"a": 16000000} cannot make the table of every id up to max_id
 * cost a gigabyte. `what` names the object in the message. */
lorac_status tok_check_sparse(const char *path, const char *what, int max_id, int n_entries);
/* Merge "a b" with priority rank; a, b and a+b must be model pieces. `where`
 * names the line for the error ("merges.txt:12"). */
lorac_status tok_add_merge(lorac_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int rank,
                           const char *where);
/* Make id an added token (if it already is one, `special` can only turn
 * its special flag on). */
lorac_status tok_add_token(lorac_tokenizer *t, int id, int special, int lstrip, int rstrip, int single_word);
/* Add a token by its text, giving it the id HF's AddedVocabulary would:
 * the id the text already has (model piece or added token), else the next
 * id after the model vocabulary and the added tokens so far. *id gets it. */
lorac_status tok_add_text(lorac_tokenizer *t, const char *s, size_t len, int special, int lstrip, int rstrip,
                          int single_word, int *id);
/* Id of a model piece or added token spelled exactly s, or -1. */
int tok_lookup(const lorac_tokenizer *t, const char *s, size_t len);
/* Byte tables, added-token order, defaults; checks ids. Call last. */
lorac_status tok_finish(lorac_tokenizer *t);
void tok_destroy(lorac_tokenizer *t);
/* The end of every file loader: when st is OK, tok_finish(t) and *out = t;
 * otherwise (or if finishing fails) t is destroyed. Returns the status. */
lorac_status tok_hand_over(lorac_tokenizer *t, lorac_status st, lorac_tokenizer **out);

/* ---- the merge loop (tok_merge.c) ---- */
typedef struct tok_sym {
    uint32_t start, len; /* bytes of the text this symbol covers; len 0: merged away */
    int id;              /* piece id, -1 while unknown (score mode only) */
    int prev, next;      /* neighbours, -1 at the ends */
} tok_sym;
typedef struct tok_cand tok_cand;
typedef struct tok_work {
    tok_sym *sym;
    size_t sym_cap;
    tok_cand *heap;
    size_t heap_n, heap_cap;
    uint32_t *unused; /* (start, len, left_len) triples of merges into TOK_UNUSED pieces */
    size_t unused_n, unused_cap;
} tok_work;
lorac_status tok_work_reserve(tok_work *w, size_t n_sym);
void tok_work_free(tok_work *w);
/* Merge the n symbols in w->sym (linked in order over `text`) until no
 * adjacent pair is mergeable, always taking the best pair: lowest rank
 * (or highest score), leftmost on ties. Symbols merged away get len 0. */
lorac_status tok_merge(const lorac_tokenizer *t, const char *text, int n, tok_work *w);

/* Run t's pre-tokenizer over s[0..n) and encode each word with fn, the
 * family's BPE on one word (tok_split.c). */
typedef lorac_status (*tok_word_fn)(const lorac_tokenizer *t, const char *w, size_t n, tok_work *work, tok_ids *out);
lorac_status tok_encode_words(const lorac_tokenizer *t, const char *s, size_t n, tok_word_fn fn, tok_work *work,
                              tok_ids *out);

/* ---- loaders ---- */
/* The directory part of a file path ("." when there is none). */
void tok_dir_of(const char *path, char *dir, size_t cap);
lorac_status tok_load_vocab_merges(const char *vocab_path, const char *merges_path, lorac_tokenizer **out);
lorac_status tok_load_json(const char *path, lorac_tokenizer **out);
/* Read a JSON file of at most max_bytes that must be valid UTF-8 (tok_json.c). */
struct cJSON;
lorac_status tok_read_json(const char *path, size_t max_bytes, struct cJSON **root);
lorac_status tok_load_spm_model(const char *path, lorac_tokenizer **out);
/* WordPiece (tok_wordpiece.c): a BERT vocab.txt (with tokenizer_config.json
 * next to it), and the WordPiece parts of a tokenizer.json whose vocabulary
 * and added tokens tok_json.c has already read into t. */
struct cJSON;
lorac_status tok_load_wordpiece_vocab(const char *path, lorac_tokenizer **out);
lorac_status tok_wp_read_json(lorac_tokenizer *t, const struct cJSON *root, const char *path);
/* Apply tokenizer_config.json / special_tokens_map.json found in `dir`:
 * special token names, extra added tokens, and (when use_add_flags)
 * add_bos_token / add_eos_token. Missing files are fine. */
lorac_status tok_apply_hf_config(lorac_tokenizer *t, const char *dir, int use_add_flags);
/* Set prefix/suffix from add_bos / add_eos and the current bos / eos. */
void tok_set_add_special(lorac_tokenizer *t, int add_bos, int add_eos);

#endif

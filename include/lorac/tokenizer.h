/* lorac/tokenizer.h - lorac_tok: a model's tokenizer or one alone, encode /
 * decode / streaming pieces, and chat templates (lorac_llm_chat). Part of
 * lorac.h (its conventions apply). */
#ifndef LORAC_TOKENIZER_H
#define LORAC_TOKENIZER_H

#include "core.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * Tokenizers
 * ====================================================================== */

/* The model's tokenizer, borrowed: valid until lorac_llm_close; never pass
 * it to lorac_tok_close (which ignores it). NULL for a NULL llm or one opened
 * with no_tokenizer. [read-only] */
LORAC_API const lorac_tok *lorac_llm_tok(const lorac_llm *llm);
/* A tokenizer alone (no weights read): tokenizer.json, vocab.json +
 * merges.txt, tokenizer.model, vocab.txt, a directory holding one, or a
 * .gguf's metadata. [any thread] */
LORAC_API lorac_status lorac_tok_open(const char *path, lorac_tok **out);
LORAC_API void lorac_tok_close(lorac_tok *t); /* [one thread per tok] */

/* The lorac_tok_* calls below are [read-only]: any number of threads may
 * encode / decode with one tokenizer at once. */
/* text[0..len) -> ids (*ids from malloc: lorac_free). add_special = 1 adds
 * the model's special tokens (BOS ...) as HF's add_special_tokens=True;
 * special-token strings in the text ("<|im_start|>") map to their ids. */
LORAC_API lorac_status lorac_tok_encode(const lorac_tok *t, const char *text, size_t len, int add_special, int **ids,
                                        int *n);
/* ids -> text (*text NUL-terminated, from malloc: lorac_free); *len may be NULL. */
LORAC_API lorac_status lorac_tok_decode(const lorac_tok *t, const int *ids, int n, int skip_special, char **text,
                                        size_t *len);
/* The bytes of one token following `prev` (streaming; a piece may end in
 * a partial UTF-8 sequence). */
LORAC_API lorac_status lorac_tok_decode_piece(const lorac_tok *t, int prev, int id, char *buf, size_t cap, size_t *len);
LORAC_API int lorac_tok_vocab_size(const lorac_tok *t); /* 0 for NULL */
LORAC_API int lorac_tok_bos(const lorac_tok *t);        /* -1: none */
LORAC_API int lorac_tok_eos(const lorac_tok *t);        /* -1: none */
LORAC_API int lorac_tok_find(const lorac_tok *t, const char *piece); /* id of an exact vocabulary piece, -1: none */

/* Chat templates: a conversation written in the model's chat format.
 * format: NULL or "auto" (the template of the tokenizer / model, else
 * alpaca) or a family name: chatml, llama3, gemma, phi3, mistral, llama2,
 * alpaca. add_generation_prompt = 1 ends with the assistant's header.
 * *text from malloc (lorac_free); text NULL: only info. info may be NULL.
 * [read-only] */
typedef struct lorac_chat_message {
    const char *role;    /* "system" (first only), "user", "assistant" */
    const char *content;
} lorac_chat_message;
typedef struct lorac_chat_info {
    char family[16];         /* the format used */
    char source[1200];       /* where it came from: the template's file, else "named format" or
                                "the model has no chat template" */
    int from_template;       /* 1: read from the model's (or tokenizer's) template */
    char default_system[1024];/* the template's default system message ("" if none) */
    int end_of_turn;         /* the token ending an assistant turn (stop there), -1 if none */
    int writes_bos;          /* 1: the text starts with BOS itself (encode with add_special 0) */
} lorac_chat_info;
LORAC_API lorac_status lorac_llm_chat(const lorac_llm *llm, const char *format, const lorac_chat_message *msgs, int n,
                                      int add_generation_prompt, char **text, lorac_chat_info *info);

#ifdef __cplusplus
}
#endif
#endif
